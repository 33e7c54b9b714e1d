package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// rotatingIdP serves a JWKS the test changes, and can answer 500 instead.
type rotatingIdP struct {
	srv *httptest.Server

	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey // published
	failing bool
	gets    int
}

func newRotatingIdP(t *testing.T) *rotatingIdP {
	t.Helper()
	p := &rotatingIdP{keys: map[string]*ecdsa.PrivateKey{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.gets++
		if p.failing {
			http.Error(w, "identity provider failing", http.StatusInternalServerError)
			return
		}
		var set jose.JSONWebKeySet
		for kid, k := range p.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *rotatingIdP) set(f func(p *rotatingIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *rotatingIdP) fetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets
}

// sign mints a token with key kid, whether or not it is published.
func (p *rotatingIdP) sign(t *testing.T, kid string, key *ecdsa.PrivateKey) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: "https://issuer.test", Audience: jwt.Audience{"api"}, Subject: "alice",
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Issue 18, point 1, end to end over gRPC: the issuer starts signing with a new key while
// its JWKS endpoint answers 500. The refetch that token causes fails and the token is
// denied. Once the endpoint publishes the key, the first token after the cooldown is
// allowed: the failed refetch did not mark the kid unknown until the scheduled refresh,
// an hour away here.
func TestNewKeyAfterFailedRefetch(t *testing.T) {
	const cooldown = time.Second
	idp := newRotatingIdP(t)
	k1, k2 := newECKey(t), newECKey(t)
	idp.set(func(p *rotatingIdP) { p.keys["k1"] = k1 })
	cfg := strings.Replace(validConfig(idp.srv.URL, "/api"), "refresh_interval: 1s",
		"refresh_interval: 1h\n        unknown_kid_cooldown: "+cooldown.String(), 1)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfgPath, cfg)
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)
	authz := checkClient(t, srv.grpcAddr)
	if code := checkCode(t, authz, "/api/x", idp.sign(t, "k1", k1)); code != 0 {
		t.Fatalf("Check(k1 token) status = %d, want 0", code)
	}

	idp.set(func(p *rotatingIdP) { p.failing = true })
	newToken := idp.sign(t, "k2", k2)
	before := idp.fetches()
	if code := checkCode(t, authz, "/api/x", newToken); code != 16 {
		t.Fatalf("Check(k2 token) while the JWKS endpoint fails: status = %d, want 16 (denied)", code)
	}
	if n := idp.fetches() - before; n != 1 {
		t.Errorf("the unknown kid caused %d JWKS fetches, want 1", n)
	}

	idp.set(func(p *rotatingIdP) { p.failing, p.keys["k2"] = false, k2 })
	time.Sleep(cooldown + 200*time.Millisecond)
	if code := checkCode(t, authz, "/api/x", newToken); code != 0 {
		t.Errorf("Check(k2 token) after the endpoint recovered and the cooldown passed: status = %d, want 0", code)
	}
}
