package extauthz

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/introspect"
)

// introspectionConfig: "op" introspects opaque tokens at %s; "jwt" does not. The rule asks
// for the read scope and sets x-user from sub.
const introspectionConfig = `
providers:
- name: op
  issuer: https://op.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-user}
  introspection:
    endpoint: %s
    client_id: "jwt authz"
    client_secret_file: secret
    timeout: 1s
- name: jwt
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: api
  match: {path_prefix: /}
  require: {scopes: [read]}
`

// introspectionPolicy builds the config above against a real introspection endpoint,
// wired like cmd/jwt-authz does (the real introspect.Client).
func introspectionPolicy(t *testing.T, endpoint string) *Policy {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cr:et\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("grpc_address: 127.0.0.1:0\n"+fmt.Sprintf(introspectionConfig, endpoint)), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := introspect.New(*cfg.Providers[0].Introspection, cfg.Providers[0].Issuer, cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]KeySource{"op": newFakeKeys("k1"), "jwt": newFakeKeys("k1")}
	p, err := NewPolicy(cfg, keys, WithIntrospectors(map[string]Introspector{"op": c}))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntrospection runs opaque tokens through Check against a real HTTP introspection
// endpoint on 127.0.0.1 whose answers depend on the token.
func TestIntrospection(t *testing.T) {
	exp := testNow.Unix() + 3600
	answers := map[string]string{
		"good":       fmt.Sprintf(`{"active":true,"iss":"https://op.example","sub":"alice","aud":"demo-api","scope":"read write","exp":%d}`, exp),
		"noscope":    fmt.Sprintf(`{"active":true,"sub":"bob","aud":"demo-api","scope":"write","exp":%d}`, exp),
		"inactive":   `{"active":false}`,
		"stringtrue": `{"active":"true","sub":"eve","aud":"demo-api","scope":"read"}`,
		"expired":    fmt.Sprintf(`{"active":true,"sub":"alice","aud":"demo-api","scope":"read","exp":%d}`, testNow.Unix()-3600),
		"otheraud":   fmt.Sprintf(`{"active":true,"sub":"alice","aud":"other","scope":"read","exp":%d}`, exp),
		"otheriss":   fmt.Sprintf(`{"active":true,"iss":"https://issuer.example","sub":"alice","aud":"demo-api","scope":"read","exp":%d}`, exp),
		"noexp":      `{"active":true,"sub":"alice","aud":"demo-api","scope":"read"}`,
		"huge":       `{"active":true,"pad":"` + strings.Repeat("x", 70<<10) + `"}`,
		"notjson":    `<html>`,
		"array":      `[{"active":true}]`,
	}
	var badAuth atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		if !ok || id != "jwt+authz" || secret != "s3cr%3Aet" || r.Method != http.MethodPost || r.PostFormValue("token_type_hint") != "access_token" {
			badAuth.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch tok := r.PostFormValue("token"); tok {
		case "status500":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			fmt.Fprint(w, answers[tok])
		}
	}))
	defer srv.Close()
	p := introspectionPolicy(t, srv.URL)

	for _, tc := range []struct {
		token  string
		reason Reason
		status int
	}{
		{"good", ReasonAllowed, 200},
		{"noscope", ReasonScope, 403},
		{"inactive", ReasonInactive, 401},
		{"unknown", ReasonIntrospectionUnavailable, 503}, // an empty body
		{"stringtrue", ReasonIntrospectionUnavailable, 503},
		{"expired", ReasonExpired, 401},
		{"otheraud", ReasonAudience, 401},
		{"otheriss", ReasonUnknownIssuer, 401},
		{"noexp", ReasonMissingExp, 401},
		{"huge", ReasonIntrospectionUnavailable, 503},
		{"notjson", ReasonIntrospectionUnavailable, 503},
		{"array", ReasonIntrospectionUnavailable, 503},
		{"status500", ReasonIntrospectionUnavailable, 503},
	} {
		resp, d := check(t, p, envoyRequest{headers: bearer(tc.token)}.proto())
		if d.Reason != tc.reason || d.HTTPStatus != tc.status {
			t.Errorf("%s: got %s %d, want %s %d", tc.token, d.Reason, d.HTTPStatus, tc.reason, tc.status)
		}
		if tc.token == "good" {
			got := map[string]string{}
			for _, h := range resp.GetOkResponse().GetHeaders() {
				got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			if got["x-user"] != "alice" || d.Provider != "op" || d.Subject != "alice" {
				t.Errorf("good: headers %v, provider %q, subject %q", got, d.Provider, d.Subject)
			}
		}
	}
	if n := badAuth.Load(); n != 0 {
		t.Errorf("%d introspection requests without the right client authentication", n)
	}

	// A JWT is never introspected: a three-segment token of the other provider is verified
	// as before (here: unknown key), and the endpoint is not asked.
	_, d := check(t, p, envoyRequest{headers: bearer("a.b.c")}.proto())
	if d.Reason != ReasonMalformedToken {
		t.Errorf("a.b.c: got %s, want %s", d.Reason, ReasonMalformedToken)
	}

	// The endpoint down: fail closed with 503.
	srv.Close()
	_, d = check(t, p, envoyRequest{headers: bearer("other-token")}.proto())
	if d.Reason != ReasonIntrospectionUnavailable || d.HTTPStatus != 503 || d.Allowed {
		t.Errorf("endpoint down: got %s %d allowed=%v", d.Reason, d.HTTPStatus, d.Allowed)
	}
}

// TestIntrospectionOff: without any provider configuring introspection an opaque token is
// malformed, as it always was.
func TestIntrospectionOff(t *testing.T) {
	p := newPolicy(t, bindingConfig, map[string]KeySource{
		"plain": newFakeKeys("k1"), "required": newFakeKeys("k1"), "xfcc": newFakeKeys("k1"), "pem": newFakeKeys("k1"),
	})
	if p.introspectors != nil {
		t.Fatal("introspectors set without configuration")
	}
	_, d := check(t, p, envoyRequest{headers: bearer("opaque-token")}.proto())
	if d.Reason != ReasonMalformedToken {
		t.Errorf("got %s, want %s", d.Reason, ReasonMalformedToken)
	}
}

// TestIntrospectionWithoutClient: a face that builds the Policy without introspectors
// (-explain, -test, the in-process module) answers opaque tokens of an introspecting
// provider 503, never as if introspection were off and never an allow.
func TestIntrospectionWithoutClient(t *testing.T) {
	p := newPolicy(t, fmt.Sprintf(introspectionConfig, "https://op.example/introspect"),
		map[string]KeySource{"op": newFakeKeys("k1"), "jwt": newFakeKeys("k1")})
	_, d := check(t, p, envoyRequest{headers: bearer("opaque-token")}.proto())
	if d.Reason != ReasonIntrospectionUnavailable || d.HTTPStatus != 503 {
		t.Errorf("got %s %d, want %s 503", d.Reason, d.HTTPStatus, ReasonIntrospectionUnavailable)
	}
}
