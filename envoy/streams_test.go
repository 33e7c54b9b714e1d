package envoy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestStreamLimit: jwt-authz refuses Check streams past grpc_max_concurrent_streams on
// one connection (issue 18). Envoy sends every check of its worker over its authz
// connections; with the cluster's max_concurrent_streams at or under jwt-authz's limit, as
// envoy.yaml and the README set it, Envoy opens more connections and every check is
// answered. Without it (Envoy 1.40 here), Envoy answers the checks jwt-authz refused with
// status_on_error (503): the test logs how many, and checks that it still fails closed.
//
// To hold many checks in flight at once, the provider gets a second JWKS that answers
// slowly after its first fetch: a burst of tokens with an unknown kid all wait on the one
// shared refetch, then get 401 unknown_key.
func TestStreamLimit(t *testing.T) {
	const (
		limit = 4  // jwt-authz's grpc_max_concurrent_streams here
		burst = 24 // checks in flight at once
	)
	for _, tc := range []struct {
		name         string
		envoyStreams int // the authz cluster's max_concurrent_streams; 0: Envoy's default (unbounded)
	}{
		{"envoy max_concurrent_streams at the limit", limit},
		{"envoy default", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slowJWKS := slowKeySet(t, 600*time.Millisecond)
			s := startStack(t, stackOptions{
				editAuthz: func(t *testing.T, root map[string]any, _ ports) {
					root["grpc_max_concurrent_streams"] = limit
					providers, _ := list(root, "providers")
					p := providers[0].(map[string]any)
					p["keys"] = append(p["keys"].([]any), map[string]any{"jwks_uri": slowJWKS.url, "refresh_interval": "5m"})
				},
				editEnvoy: func(t *testing.T, root map[string]any, _ ports) {
					h2 := authzHTTP2Options(t, root)
					delete(h2, "max_concurrent_streams")
					if tc.envoyStreams > 0 {
						h2["max_concurrent_streams"] = tc.envoyStreams
					}
				},
			})
			slowJWKS.slow.Store(true)

			token := mint(t, s.key, "not-yet-published", s.claims())
			h := http.Header{"Authorization": {"Bearer " + token}}
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				statuses = map[string]int{}
				start    = make(chan struct{})
			)
			for range burst {
				wg.Go(func() {
					<-start
					r, err := s.send("GET", "/api/things", h, "")
					key := fmt.Sprint(r.status)
					if err != nil {
						key = "error"
					} else if r.status == http.StatusUnauthorized {
						var body struct{ Reason string }
						_ = json.Unmarshal(r.body, &body)
						key += " " + body.Reason
					}
					mu.Lock()
					statuses[key]++
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			t.Logf("%d checks at once, jwt-authz grpc_max_concurrent_streams %d, Envoy max_concurrent_streams %v: answers %v (slow JWKS fetched %d times)",
				burst, limit, tc.envoyStreams, statuses, slowJWKS.gets.Load())
			if tc.envoyStreams > 0 && statuses["401 unknown_key"] != burst {
				t.Errorf("answers %v, want all %d to be 401 unknown_key: no check may fail on a refused stream", statuses, burst)
			}
			// Whatever Envoy does with a refused stream, it fails closed (status_on_error).
			if n := statuses["401 unknown_key"] + statuses["503"]; n != burst {
				t.Errorf("answers %v, want only 401 unknown_key or 503", statuses)
			}
		})
	}
}

type slowJWKS struct {
	url  string
	slow atomic.Bool // answer after the delay
	gets atomic.Int64
}

// slowKeySet serves a JWKS of one fresh key, after delay once slow is set.
func slowKeySet(t *testing.T, delay time.Duration) *slowJWKS {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "partner-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	j := &slowJWKS{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.gets.Add(1)
		if j.slow.Load() {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	j.url = srv.URL + "/jwks"
	return j
}

// authzHTTP2Options is the authz cluster's http2_protocol_options in envoy.yaml's tree.
func authzHTTP2Options(t *testing.T, root map[string]any) map[string]any {
	t.Helper()
	clusters, err := list(root, "static_resources", "clusters")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clusters {
		if name, _ := dig(c, "name"); name != "authz" {
			continue
		}
		h2, err := dig(c, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"explicit_http_config", "http2_protocol_options")
		if err != nil {
			t.Fatal(err)
		}
		m, ok := h2.(map[string]any)
		if !ok {
			t.Fatalf("authz cluster http2_protocol_options is %T, want a mapping", h2)
		}
		return m
	}
	t.Fatal("envoy.yaml has no authz cluster")
	return nil
}
