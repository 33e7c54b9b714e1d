package envoy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestIntrospectionThroughEnvoy: opaque access tokens behind a real Envoy, checked by
// jwt-authz at an RFC 7662 introspection endpoint (a real HTTP server on 127.0.0.1 that
// authenticates jwt-authz by client_secret_basic): an active token reaches the upstream
// with the identity headers of the answer, an inactive one is 401 token_inactive with its
// challenge, and while the endpoint is down a new token is 503 and a cached one still
// allowed. The same with the in-process module: on Envoy's worker thread it reads only the
// client's cache, and a token it has not asked about is decided off the thread.
func TestIntrospectionThroughEnvoy(t *testing.T) {
	t.Run("ext_authz", func(t *testing.T) { testIntrospection(t, startStack) })
	t.Run("module", func(t *testing.T) { testIntrospection(t, startModuleStack) })
}

func testIntrospection(t *testing.T, start func(*testing.T, stackOptions) *stack) {
	const active, inactive, unseen = "2YotnFZFEjr1zCsicMWpAA", "tGzv3JOkF0XG5Qx2TlKWIA", "mF9B5f41JqMxQ2Yx7ZrWnA"
	var audience atomic.Value // the demo provider's audience, read from the config
	var calls atomic.Int64
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "jwt-authz" || secret != "introspection-secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		answer := map[string]any{"active": false}
		if r.PostFormValue("token") == active {
			answer = map[string]any{"active": true, "sub": "bob", "scope": "read", "client_id": "svc",
				"aud": audience.Load(), "exp": time.Now().Add(5 * time.Minute).Unix()}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
	}))
	defer endpoint.Close()
	secret := filepath.Join(t.TempDir(), "introspection-secret")
	writeFile(t, secret, []byte("introspection-secret\n"))

	s := start(t, stackOptions{
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			providers, err := list(root, "providers")
			if err != nil || len(providers) != 1 {
				t.Fatalf("jwt-authz.yaml: want 1 provider (%v)", err)
			}
			p := providers[0].(map[string]any)
			audiences, _ := p["audiences"].([]any)
			if len(audiences) == 0 {
				t.Fatalf("jwt-authz.yaml: the provider has no audiences")
			}
			audience.Store(fmt.Sprint(audiences[0]))
			p["introspection"] = map[string]any{
				"endpoint": endpoint.URL, "client_id": "jwt-authz", "client_secret_file": secret,
			}
		},
	})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	reason := func(r reply) string {
		var body struct{ Reason string }
		json.Unmarshal(r.body, &body)
		return body.Reason
	}

	e := s.do(t, "GET", "/api/things", bearer(active), "").upstream(t, 200)
	if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("GET /api/things (active opaque token): upstream saw x-jwt-sub %q, want [bob]", got)
	}
	if got := e.values("x-jwt-scope"); !slices.Equal(got, []string{"read"}) {
		t.Errorf("GET /api/things (active opaque token): upstream saw x-jwt-scope %q, want [read]", got)
	}

	r := s.do(t, "GET", "/api/things", bearer(inactive), "")
	r.challenge(t, 401, "invalid_token")
	if got := reason(r); got != "token_inactive" {
		t.Errorf("GET /api/things (inactive opaque token): reason %q, want token_inactive", got)
	}
	t.Logf("inactive: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))

	endpoint.Close()
	before := calls.Load()
	r = s.do(t, "GET", "/api/things", bearer(unseen), "")
	if r.isEcho() || r.status != http.StatusServiceUnavailable || reason(r) != "introspection_unavailable" {
		t.Errorf("GET /api/things (endpoint down): status %d, reason %q, upstream reached %t; want 503 introspection_unavailable from jwt-authz",
			r.status, reason(r), r.isEcho())
	}
	if calls.Load() != before {
		t.Errorf("the closed endpoint answered")
	}
	// The active answer is cached (cache_for 60s, never past its exp): still allowed.
	s.do(t, "GET", "/api/things", bearer(active), "").upstream(t, 200)
}
