//go:build jwtauthz_stubs

package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/cgo"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/introspect"
)

// BenchmarkRequestHeaders is the module's own work for one cached-token allow, as
// bench/run.sh's Envoy runs ask it (the same config and request), with Envoy's callbacks
// replaced by stubs that do nothing (stubs.c): filter_new, request_headers, destroy.
//
//	go test -tags jwtauthz_stubs -run '^$' -bench RequestHeaders -benchmem ./envoy/module/
func BenchmarkRequestHeaders(b *testing.B) {
	config, headers := cachedAllow(b)
	setStubHeaders(headers)
	waitForAllow(b, config)
	b.ReportAllocs()
	for b.Loop() {
		if stream(config) != statusContinue {
			b.Fatal("not allowed")
		}
	}
}

// TestFilterReuse: a filter reused by a later request decides that request alone (a
// request without a token after an allowed one is denied), and a filter that went off the
// worker thread is never reused.
func TestFilterReuse(t *testing.T) {
	config, headers := cachedAllow(t)
	setStubHeaders(headers)
	waitForAllow(t, config)
	var anonymous [][2]string
	for _, h := range headers {
		if h[0] != "authorization" {
			anonymous = append(anonymous, h)
		}
	}
	setStubHeaders(anonymous)
	if got := stream(config); got != statusStopIteration {
		t.Fatalf("a request without a token after an allowed one: status %d, want %d (denied)", got, statusStopIteration)
	}
	setStubHeaders(headers)
	if got := stream(config); got != statusContinue {
		t.Fatalf("the token again: status %d, want %d", got, statusContinue)
	}

	m := cgo.Handle(config).Value().(*module)
	f := takeFilter(m, 1)
	f.release()
	if again := takeFilter(m, 1); again != f {
		t.Fatalf("a filter decided on the worker thread was not reused: %p, then %p", f, again)
	}
	f.offThread, f.handle = true, cgo.NewHandle(f) // as onRequestHeaders leaves it
	f.release()
	if again := takeFilter(m, 1); again == f {
		t.Fatal("a filter that went off the worker thread was reused")
	}
}

// TestRemovals: on an allow the module asks Envoy to remove only the injectable headers the
// request carries (whatever their case), the credential included.
func TestRemovals(t *testing.T) {
	const claims = "{sub: x-jwt-sub, email: x-jwt-email}" // the token has sub, no email
	config, headers := configAndRequest(t, claims, "deny")
	setStubHeaders(headers)
	waitForAllow(t, config)
	for _, c := range []struct {
		name        string
		extra       [][2]string
		want, avoid []string
	}{
		{"no spoofed header", nil, []string{"authorization"}, []string{"x-jwt-email"}},
		{"spoofed x-jwt-email", [][2]string{{"x-jwt-email", "mallory@example.com"}}, []string{"authorization", "x-jwt-email"}, nil},
		{"spoofed X-JWT-Email", [][2]string{{"X-JWT-Email", "mallory@example.com"}}, []string{"authorization", "x-jwt-email"}, nil},
	} {
		setStubHeaders(append(slices.Clone(headers), c.extra...))
		takeRemoved()
		if got := stream(config); got != statusContinue {
			t.Fatalf("%s: status %d, want %d (allowed)", c.name, got, statusContinue)
		}
		removed := takeRemoved()
		for _, name := range c.want {
			if !slices.Contains(removed, name) {
				t.Errorf("%s: removed %q, want %s among them", c.name, removed, name)
			}
		}
		for _, name := range c.avoid {
			if slices.Contains(removed, name) {
				t.Errorf("%s: removed %q, want no call for %s (the request does not carry it)", c.name, removed, name)
			}
		}
	}

	// Without the headers (Envoy handed over none) there is no path to match, and even a
	// config that allows by default denies: an allow never goes out with removals skipped
	// for want of the list (filter.answer would then remove every name anyway).
	open, _ := configAndRequest(t, claims, "allow")
	setStubHeaders(nil)
	if got := stream(open); got != statusStopIteration {
		t.Fatalf("no headers, default allow: status %d, want %d (denied)", got, statusStopIteration)
	}
}

// TestNoWaitIntrospector: on the worker thread the module's introspection reads only the
// client's cache, and a token it has not asked about sends the decision off the thread
// without calling the endpoint; off the thread the endpoint is called; then the worker
// thread has the answer.
func TestNoWaitIntrospector(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"sub":"bob","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := introspect.New(config.Introspection{Endpoint: srv.URL, ClientID: "rs", ClientSecretFile: "secret"},
		"https://issuer.example", func(p string) string { return filepath.Join(dir, p) })
	if err != nil {
		t.Fatal(err)
	}
	n := noWaitIntrospector{c}
	var attempt inlineAttempt
	inline := context.WithValue(context.Background(), inlineKey{}, &attempt)

	if _, _, err := n.Introspect(inline, "opaque"); !errors.Is(err, errMustWait) || !attempt.wait || calls.Load() != 0 {
		t.Fatalf("worker thread, not cached: err %v, wait %v, %d calls; want errMustWait, true, 0", err, attempt.wait, calls.Load())
	}
	if active, _, err := n.Introspect(context.Background(), "opaque"); !active || err != nil || calls.Load() != 1 {
		t.Fatalf("off the thread: active %v, err %v, %d calls; want true, nil, 1", active, err, calls.Load())
	}
	attempt = inlineAttempt{}
	if active, _, err := n.Introspect(inline, "opaque"); !active || err != nil || attempt.wait || calls.Load() != 1 {
		t.Errorf("worker thread, cached: active %v, err %v, wait %v, %d calls; want true, nil, false, 1", active, err, attempt.wait, calls.Load())
	}
}

// waitForAllow runs streams until one is allowed: the key set loads in the background.
func waitForAllow(tb testing.TB, config uintptr) {
	for deadline := time.Now().Add(10 * time.Second); stream(config) != statusContinue; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("no allow after 10s: the keys did not load")
		}
	}
}

// cachedAllow loads the bench's config (one provider, a JWKS file, the cache) and answers
// the filter config's handle and a request with a valid token, as bench/run.sh sends it.
func cachedAllow(tb testing.TB) (config uintptr, headers [][2]string) {
	return configAndRequest(tb, "{sub: x-jwt-sub}", "deny")
}

// configAndRequest is cachedAllow with the provider's claims_to_headers and the config's
// default_action given.
func configAndRequest(tb testing.TB, claimsToHeaders, defaultAction string) (config uintptr, headers [][2]string) {
	b := tb
	dir := b.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		b.Fatal(err)
	}
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, set, 0o644); err != nil {
		b.Fatal(err)
	}
	config = newConfig(`grpc_address: 127.0.0.1:0
log: {level: info, allow_sample_rate: 0}
cache: {enabled: true, max_entries: 1000}
providers:
- name: bench
  issuer: https://issuer.bench.example
  audiences: [bench-api]
  algorithms: [RS256, ES256]
  keys: [{jwks_file: ` + jwks + `}]
  claims_to_headers: ` + claimsToHeaders + `
  forward_token: false
rules:
- name: api
  match: {path_prefix: /}
  require: {providers: [bench]}
default_action: ` + defaultAction + `
`)
	if config == 0 {
		b.Fatal("the config did not load")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	token, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://issuer.bench.example", Audience: jwt.Audience{"bench-api"},
		Subject: "user-1", IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
	if err != nil {
		b.Fatal(err)
	}
	return config, [][2]string{
		{":authority", "api.bench.example"}, {":path", "/api/orders?limit=10"}, {":method", "GET"}, {":scheme", "http"},
		{"authorization", "Bearer " + token}, {"x-forwarded-proto", "http"}, {"x-request-id", "6f1c1f0e-5d7a-4b7e-9a35-2a7c0b1d9e42"},
		{"x-envoy-expected-rq-timeout-ms", "15000"}, {"x-forwarded-for", "127.0.0.1"},
	}
}
