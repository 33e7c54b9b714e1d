package introspect

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// TestPrivateKeyJWT: with client_auth private_key_jwt, each call to a real endpoint on
// 127.0.0.1 carries a client assertion (RFC 7523 §2.2) that verifies with the client's
// public key: iss and sub the client id, aud the issuer (or assertion_audience), a jti of
// its own, a short exp, and no Basic credentials.
func TestPrivateKeyJWT(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(key any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: ecKey, KeyID: "rs-1", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, alg, audience string
		file                []byte
		public              any
		kid                 string
	}{
		{"EC PEM, ES256", "ES256", "", pemOf(ecKey), &ecKey.PublicKey, ""},
		{"EC JWK with kid, ES256", "ES256", "", jwk, &ecKey.PublicKey, "rs-1"},
		{"RSA PEM, PS256, aud the endpoint", "PS256", "https://op.example/introspect", pemOf(rsaKey), &rsaKey.PublicKey, ""},
		{"Ed25519 PEM, EdDSA", "EdDSA", "", pemOf(edKey), edKey.Public(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				claims []map[string]any
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, _, ok := r.BasicAuth(); ok || r.PostFormValue("client_id") != "rs" || r.PostFormValue("client_assertion_type") != assertionType {
					http.Error(w, "bad client authentication", http.StatusUnauthorized)
					return
				}
				jws, err := jose.ParseSigned(r.PostFormValue("client_assertion"), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)})
				if err != nil {
					http.Error(w, err.Error(), http.StatusUnauthorized)
					return
				}
				body, err := jws.Verify(tc.public)
				if err != nil || jws.Signatures[0].Header.KeyID != tc.kid {
					http.Error(w, "bad assertion", http.StatusUnauthorized)
					return
				}
				var c map[string]any
				json.Unmarshal(body, &c)
				mu.Lock()
				claims = append(claims, c)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"active":false}`))
			}))
			defer srv.Close()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "key"), tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			cl, err := New(config.Introspection{Endpoint: srv.URL, ClientID: "rs", ClientAuth: config.PrivateKeyJWT,
				PrivateKeyFile: "key", SigningAlgorithm: tc.alg, AssertionAudience: tc.audience},
				"https://op.example", func(p string) string { return filepath.Join(dir, p) })
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range []string{"one", "two"} {
				if _, _, err := cl.Introspect(context.Background(), tok); err != nil {
					t.Fatalf("Introspect: %v", err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			wantAud := tc.audience
			if wantAud == "" {
				wantAud = "https://op.example"
			}
			for _, c := range claims {
				exp, iat := c["exp"].(float64), c["iat"].(float64)
				if c["iss"] != "rs" || c["sub"] != "rs" || c["aud"] != wantAud || exp <= iat || exp-iat > assertionLifetime.Seconds() {
					t.Errorf("assertion claims %v, want iss and sub rs, aud %s, exp after iat by at most %s", c, wantAud, assertionLifetime)
				}
			}
			if len(claims) != 2 || claims[0]["jti"] == claims[1]["jti"] || claims[0]["jti"] == "" {
				t.Errorf("jti of the two assertions: %v, want two distinct ones", claims)
			}
		})
	}
}

// TestPrivateKeyJWTKeys: a key file that cannot sign the configured algorithm is an error
// at startup, naming no key material.
func TestPrivateKeyJWTKeys(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	pemOf := func(key any) string {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	public, _ := json.Marshal(jose.JSONWebKey{Key: &ecKey.PublicKey})
	encJWK, _ := json.Marshal(jose.JSONWebKey{Key: ecKey, Use: "enc"})
	for _, tc := range []struct{ name, alg, file string }{
		{"EC key, PS256", "PS256", pemOf(ecKey)},
		{"P-384 key, ES256", "ES256", pemOf(p384)},
		{"1024-bit RSA key", "RS256", pemOf(small)},
		{"public JWK", "ES256", string(public)},
		{"JWK for encryption", "ES256", string(encJWK)},
		{"not a key", "ES256", "hello"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "key"), []byte(tc.file), 0o600)
		_, err := New(config.Introspection{Endpoint: "https://op.example/i", ClientID: "rs", ClientAuth: config.PrivateKeyJWT,
			PrivateKeyFile: "key", SigningAlgorithm: tc.alg}, "https://op.example", func(p string) string { return filepath.Join(dir, p) })
		if err == nil {
			t.Errorf("%s: New succeeded, want an error", tc.name)
		} else if strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("%s: error %q quotes the key", tc.name, err)
		}
	}
}
