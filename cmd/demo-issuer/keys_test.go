package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestKeyringLifecycle(t *testing.T) {
	const ttl, delay = 10 * time.Minute, time.Minute
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	start := clock.now()
	priv, err := generateKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := newKeyring(priv, jose.ES256, ttl, delay, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	_, k0 := kr.signer()

	rot, err := kr.rotate()
	if err != nil {
		t.Fatalf("rotate() = %v", err)
	}
	k1 := rot.KID
	wantRot := rotation{KID: k1, SigningFrom: start.Add(delay), PreviousKID: k0, PreviousWithdrawnAt: start.Add(delay + ttl)}
	if diff := cmp.Diff(wantRot, rot); diff != "" {
		t.Errorf("rotate() (-want +got):\n%s", diff)
	}
	if _, err := kr.rotate(); !errors.Is(err, errRotationPending) {
		t.Errorf("rotate() during the publish delay = %v, want %v", err, errRotationPending)
	}

	steps := []struct {
		name          string
		advance       time.Duration
		wantSigner    string
		wantPublished []string
	}{
		{"new key published, old one signs", 0, k0, []string{k0, k1}},
		{"just before the publish delay ends", delay - time.Nanosecond, k0, []string{k0, k1}},
		{"publish delay over: new key signs", time.Nanosecond, k1, []string{k0, k1}},
		{"old key's last token still valid", ttl - time.Nanosecond, k1, []string{k0, k1}},
		{"old key's last token expired: withdrawn", time.Nanosecond, k1, []string{k1}},
	}
	for _, s := range steps {
		clock.advance(s.advance)
		_, gotSigner := kr.signer()
		var gotPublished []string
		for _, k := range kr.public() {
			if !k.IsPublic() {
				t.Errorf("%s: public() has a private key %q", s.name, k.KeyID)
			}
			gotPublished = append(gotPublished, k.KeyID)
		}
		if gotSigner != s.wantSigner {
			t.Errorf("%s: signer kid = %q, want %q", s.name, gotSigner, s.wantSigner)
		}
		if diff := cmp.Diff(s.wantPublished, gotPublished); diff != "" {
			t.Errorf("%s: published kids (-want +got):\n%s", s.name, diff)
		}
	}

	if _, err := kr.rotate(); err != nil {
		t.Errorf("rotate() after the previous rotation finished = %v", err)
	}
}

// writePEM writes blocks to a file in dir and returns its path.
func writePEM(t *testing.T, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustMarshal(t *testing.T, f func() ([]byte, error)) []byte {
	t.Helper()
	b, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // testing that it is refused
	pkcs8 := func(k any) []byte {
		return mustMarshal(t, func() ([]byte, error) { return x509.MarshalPKCS8PrivateKey(k) })
	}
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		return mustMarshal(t, func() ([]byte, error) { return x509.MarshalECPrivateKey(k) })
	}

	tests := []struct {
		name    string
		blocks  []*pem.Block
		wantKey crypto.Signer
		wantAlg jose.SignatureAlgorithm
		wantErr string
	}{
		{name: "EC PKCS#8", blocks: []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8(ec)}}, wantKey: ec, wantAlg: jose.ES256},
		{name: "EC SEC1", blocks: []*pem.Block{{Type: "EC PRIVATE KEY", Bytes: sec1(ec)}}, wantKey: ec, wantAlg: jose.ES256},
		{name: "EC SEC1 after EC PARAMETERS", blocks: []*pem.Block{
			{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}},
			{Type: "EC PRIVATE KEY", Bytes: sec1(ec)},
		}, wantKey: ec, wantAlg: jose.ES256},
		{name: "RSA PKCS#8", blocks: []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8(rsa2048)}}, wantKey: rsa2048, wantAlg: jose.RS256},
		{name: "RSA PKCS#1", blocks: []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa2048)}}, wantKey: rsa2048, wantAlg: jose.RS256},
		{name: "P-384 refused", blocks: []*pem.Block{{Type: "EC PRIVATE KEY", Bytes: sec1(ec384)}}, wantErr: "only P-256"},
		{name: "RSA 1024 refused", blocks: []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa1024)}}, wantErr: "at least 2048"},
		{name: "public key refused", blocks: []*pem.Block{{Type: "PUBLIC KEY", Bytes: mustMarshal(t, func() ([]byte, error) { return x509.MarshalPKIXPublicKey(&ec.PublicKey) })}}, wantErr: "not a private key"},
		{name: "encrypted refused", blocks: []*pem.Block{{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: sec1(ec)}}, wantErr: "encrypted"},
		{name: "garbage in block", blocks: []*pem.Block{{Type: "PRIVATE KEY", Bytes: []byte("nope")}}, wantErr: `PEM block "PRIVATE KEY"`},
		{name: "no PEM", blocks: nil, wantErr: "no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writePEM(t, dir, strings.ReplaceAll(tt.name, " ", "_")+".pem", tt.blocks...)
			key, alg, err := loadKeyFile(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("loadKeyFile(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadKeyFile(%s) = %v", tt.name, err)
			}
			if alg != tt.wantAlg {
				t.Errorf("loadKeyFile(%s) alg = %s, want %s", tt.name, alg, tt.wantAlg)
			}
			if eq, ok := key.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(tt.wantKey) {
				t.Errorf("loadKeyFile(%s) returned another key", tt.name)
			}
		})
	}
}

func thumbprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func TestRunWithKeyFile(t *testing.T) {
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecFile := writePEM(t, dir, "ec.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: mustMarshal(t, func() ([]byte, error) { return x509.MarshalECPrivateKey(ec) })})
	rsaFile := writePEM(t, dir, "rsa.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})

	tests := []struct {
		name    string
		args    []string
		wantAlg jose.SignatureAlgorithm
		wantKID string
	}{
		{"EC key", []string{"-key-file", ecFile}, jose.ES256, thumbprint(t, &ec.PublicKey)},
		{"RSA key implies RS256", []string{"-key-file", rsaFile}, jose.RS256, thumbprint(t, &rsaKey.PublicKey)},
		{"RSA key with -alg RS256", []string{"-key-file", rsaFile, "-alg", "RS256"}, jose.RS256, thumbprint(t, &rsaKey.PublicKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := startIssuer(t, tt.args...)
			kid, c, err := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), tt.wantAlg)
			if err != nil {
				t.Fatalf("verify(login(alice)) with %s = %v", tt.wantAlg, err)
			}
			if kid != tt.wantKID || c.Subject != "alice" {
				t.Errorf("token kid %q sub %q, want kid %q (the file key's RFC 7638 thumbprint) sub alice", kid, c.Subject, tt.wantKID)
			}
		})
	}

	t.Run("RSA key with -alg ES256", func(t *testing.T) {
		args := []string{"-addr", "127.0.0.1:0", "-issuer", testIssuerURL, "-audience", "a",
			"-users", "testdata/users.yaml", "-key-file", rsaFile, "-alg", "ES256"}
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("run(%q) = %v, want a mismatch error", args, err)
		}
	})
}

func TestRS256(t *testing.T) {
	ti := startIssuer(t, "-alg", "RS256")
	kid, c, err := ti.verify(t, ti.mustLogin(t, "admin", "admin-password"), jose.RS256)
	if err != nil {
		t.Fatalf("verify(login(admin)) with RS256 = %v", err)
	}
	set := ti.jwks(t)
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	pub, ok := k.Key.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < 2048 || k.Algorithm != "RS256" || k.Use != "sig" || k.KeyID != kid {
		t.Errorf("JWKS key: %T alg %q use %q kid %q, want a 2048+ bit RSA public key, RS256, sig, kid %q", k.Key, k.Algorithm, k.Use, k.KeyID, kid)
	}
	if c.Subject != "admin" {
		t.Errorf("sub = %q, want admin", c.Subject)
	}
	if _, _, err := ti.verify(t, ti.mustLogin(t, "admin", "admin-password"), jose.ES256); err == nil {
		t.Error("an RS256 token verified with only ES256 allowed")
	}
}

func TestJWKS(t *testing.T) {
	ti := startIssuer(t)
	url := ti.public + "/.well-known/jwks.json"
	res := do(t, http.MethodGet, url, "", "")
	etag := res.header.Get("ETag")
	if res.status != http.StatusOK || etag == "" || res.header.Get("Cache-Control") != "max-age=60" ||
		res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET jwks.json = %d, headers %v; want 200 with ETag, Cache-Control max-age=60, application/json", res.status, res.header)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(res.body, &raw); err != nil || len(raw.Keys) != 1 {
		t.Fatalf("jwks.json %s: %v, want one key", res.body, err)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := raw.Keys[0][private]; ok {
			t.Errorf("JWKS key has private member %q", private)
		}
	}
	for member, want := range map[string]any{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig"} {
		if got := raw.Keys[0][member]; got != want {
			t.Errorf("JWKS key %s = %v, want %v", member, got, want)
		}
	}

	tests := []struct {
		name        string
		ifNoneMatch string
		wantStatus  int
	}{
		{"same ETag", etag, http.StatusNotModified},
		{"among others", `"x", ` + etag, http.StatusNotModified},
		{"weak form", "W/" + etag, http.StatusNotModified},
		{"star", "*", http.StatusNotModified},
		{"other ETag", `"not-it"`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, http.MethodGet, url, "", "", "If-None-Match", tt.ifNoneMatch)
			if res.status != tt.wantStatus {
				t.Errorf("GET jwks.json If-None-Match %s = %d, want %d", tt.ifNoneMatch, res.status, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusNotModified && (len(res.body) != 0 || res.header.Get("ETag") != etag) {
				t.Errorf("304: body %q, ETag %q; want empty and %q", res.body, res.header.Get("ETag"), etag)
			}
		})
	}
}

func TestRotateAdmin(t *testing.T) {
	ti := startIssuer(t, "-admin-addr", "127.0.0.1:0", "-ttl", "1s")
	old := ti.mustLogin(t, "alice", "alice-password")
	oldKID, _, err := ti.verify(t, old, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	etagBefore := do(t, http.MethodGet, ti.public+"/.well-known/jwks.json", "", "").header.Get("ETag")

	res := do(t, http.MethodPost, ti.admin+"/rotate", "", "")
	var rot rotation
	if err := json.Unmarshal(res.body, &rot); err != nil || res.status != http.StatusOK {
		t.Fatalf("POST /rotate = %d %s (%v), want 200", res.status, res.body, err)
	}
	if rot.PreviousKID != oldKID || rot.KID == "" || rot.KID == oldKID {
		t.Errorf("POST /rotate = %+v, want a new kid and previous_kid %q", rot, oldKID)
	}
	if got := kids(ti.jwks(t)); !cmp.Equal(got, []string{oldKID, rot.KID}) {
		t.Errorf("JWKS kids after rotate = %q, want %q", got, []string{oldKID, rot.KID})
	}
	if etag := do(t, http.MethodGet, ti.public+"/.well-known/jwks.json", "", "").header.Get("ETag"); etag == etagBefore {
		t.Errorf("JWKS ETag %s did not change with its keys", etag)
	}
	if _, _, err := ti.verify(t, old, jose.ES256); err != nil {
		t.Errorf("token from before the rotation: verify = %v, want it still valid", err)
	}
	if kid, _, err := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256); err != nil || kid != rot.KID {
		t.Errorf("token from after the rotation: kid %q, verify = %v; want kid %q", kid, err, rot.KID)
	}

	time.Sleep(time.Until(rot.PreviousWithdrawnAt) + 50*time.Millisecond)
	if got := kids(ti.jwks(t)); !cmp.Equal(got, []string{rot.KID}) {
		t.Errorf("JWKS kids after the old key's tokens expired = %q, want %q", got, []string{rot.KID})
	}
	if _, _, err := ti.verify(t, old, jose.ES256); !errors.Is(err, errUnknownKID) {
		t.Errorf("token of the withdrawn key: verify = %v, want %v", err, errUnknownKID)
	}
}

func TestRotatePublishDelay(t *testing.T) {
	ti := startIssuer(t, "-admin-addr", "127.0.0.1:0", "-publish-delay", "1h")
	oldKID, _, _ := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256)

	res := do(t, http.MethodPost, ti.admin+"/rotate", "", "")
	var rot rotation
	if err := json.Unmarshal(res.body, &rot); err != nil || res.status != http.StatusOK {
		t.Fatalf("POST /rotate = %d %s (%v), want 200", res.status, res.body, err)
	}
	if got := kids(ti.jwks(t)); !cmp.Equal(got, []string{oldKID, rot.KID}) {
		t.Errorf("JWKS kids after rotate = %q, want %q", got, []string{oldKID, rot.KID})
	}
	if kid, _, _ := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256); kid != oldKID {
		t.Errorf("token during the publish delay has kid %q, want the old %q", kid, oldKID)
	}
	if res := do(t, http.MethodPost, ti.admin+"/rotate", "", ""); res.status != http.StatusConflict {
		t.Errorf("second POST /rotate during the publish delay = %d %s, want 409", res.status, res.body)
	}
}

func TestRotateEvery(t *testing.T) {
	ti := startIssuer(t, "-rotate-every", "200ms", "-ttl", "1s", "-user-limit", "0")
	first, _, _ := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		kid, _, err := ti.verify(t, ti.mustLogin(t, "alice", "alice-password"), jose.ES256)
		if err != nil {
			t.Fatalf("verify after scheduled rotations = %v", err)
		}
		if kid != first {
			return
		}
	}
	t.Errorf("kid still %q after 5s with -rotate-every 200ms", first)
}
