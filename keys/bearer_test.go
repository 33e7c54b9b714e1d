package keys

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// apiServer stands in for the Kubernetes API server: its discovery document and JWKS are
// served only to a request with the current service-account token, over TLS.
type apiServer struct {
	mu    sync.Mutex
	token string
	seen  []string // the Authorization headers received
	is    *testIssuer
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.seen = append(a.seen, r.Header.Get("Authorization"))
	ok := r.Header.Get("Authorization") == "Bearer "+a.token
	a.mu.Unlock()
	if !ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	a.is.ServeHTTP(w, r)
}

// TestBearerTokenFile: discovery and JWKS fetches carry the token from bearer_token_file,
// over TLS with ca_file, and a rotated token file is read at the next fetch.
func TestBearerTokenFile(t *testing.T) {
	is := &testIssuer{}
	api := &apiServer{token: "token-1", is: is}
	srv := httptest.NewTLSServer(api)
	defer srv.Close()
	is.url = srv.URL
	is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
	dir := t.TempDir()
	ca, tokenFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pemCert(srv.Certificate().Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := remoteSpec("") // discovery, then the JWKS it names: both need the token
	spec.CAFile, spec.BearerTokenFile = ca, tokenFile
	spec.UnknownKIDCooldown = config.Duration(time.Millisecond)
	s, cancel := startSet(t, srv.URL, []config.Key{spec}, nil, nil)
	defer cancel()
	ctx := context.Background()
	if _, found, err := s.Lookup(ctx, "k1"); !found || err != nil {
		t.Fatalf("Lookup(k1) with the service-account token = %v, %v", found, err)
	}

	// The kubelet rotates the token; the API server accepts only the new one.
	if err := os.WriteFile(tokenFile, []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	api.token = "token-2"
	api.mu.Unlock()
	is.set(func(is *testIssuer) { is.keys = append(is.keys, ecJWK(t, "k2")) })
	if _, found, err := s.Lookup(ctx, "k2"); !found || err != nil {
		t.Fatalf("Lookup(k2) after the token rotated = %v, %v; want the refetch to use the new token", found, err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	for _, h := range api.seen {
		if h != "Bearer token-1" && h != "Bearer token-2" {
			t.Errorf("the API server got Authorization %q", h)
		}
	}
}

func TestBearerTokenFileRefused(t *testing.T) {
	spec := remoteSpec("http://api.example.com/openid/v1/jwks")
	spec.BearerTokenFile = "token"
	if _, err := NewSet("https://kubernetes.default.svc", []config.Key{spec}, nil, Options{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewSet(bearer token over plain http) = %v, want %v", err, ErrMalformed)
	}
	spec = remoteSpec("http://127.0.0.1:8001/openid/v1/jwks") // kubectl proxy
	spec.BearerTokenFile = "token"
	if _, err := NewSet("https://kubernetes.default.svc", []config.Key{spec}, nil, Options{}); err != nil {
		t.Errorf("NewSet(bearer token to loopback http) = %v", err)
	}
}

// A missing token file is a failed fetch that names the file, never a fetch without it.
func TestBearerTokenFileMissing(t *testing.T) {
	is := &testIssuer{}
	api := &apiServer{token: "t", is: is}
	srv := httptest.NewServer(api)
	defer srv.Close()
	is.url = srv.URL
	is.set(func(is *testIssuer) { is.keys = []jose.JSONWebKey{ecJWK(t, "k1")} })
	spec := remoteSpec(srv.URL + "/jwks")
	spec.BearerTokenFile = filepath.Join(t.TempDir(), "absent")
	rec := &recorder{}
	s, cancel := startSet(t, srv.URL, []config.Key{spec}, nil, rec)
	defer cancel()
	if ev := rec.last(); ev.Result != ResultError || !errors.Is(ev.Err, ErrFetch) {
		t.Errorf("event = %+v, want a failed fetch", ev)
	}
	if s.Ready() {
		t.Error("Ready() = true without the token")
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.seen) != 0 {
		t.Errorf("the server got %d requests, want none without the token", len(api.seen))
	}
}
