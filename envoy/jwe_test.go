package envoy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestNestedTokens: demo-issuer -encrypt issues nested JWTs (a JWS inside a JWE, to
// jwt-authz's EC key, ECDH-ES+A256KW), and jwt-authz, configured with the private key in a
// pem_file and encryption required, decrypts and verifies them behind a real Envoy; a plain
// JWS of the same issuer and a tampered JWE are refused.
func TestNestedTokens(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubFile, privFile := filepath.Join(dir, "enc.pub.pem"), filepath.Join(dir, "enc.key.pem")
	writeFile(t, pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	writeFile(t, privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))

	s := startStack(t, stackOptions{
		issuerArgs: []string{"-encrypt", pubFile},
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			providers, err := list(root, "providers")
			if err != nil || len(providers) != 1 {
				t.Fatalf("jwt-authz.yaml: want 1 provider (%v)", err)
			}
			providers[0].(map[string]any)["encryption"] = map[string]any{
				"required":            true,
				"key_algorithms":      []any{"ECDH-ES+A256KW"},
				"content_encryptions": []any{"A256GCM"},
				"keys":                []any{map[string]any{"pem_file": privFile}},
			}
		},
	})
	token := s.login(t, "alice", "alice-password")
	if n := strings.Count(token, "."); n != 4 {
		t.Fatalf("demo-issuer -encrypt: token has %d dots, want a compact JWE (4)", n)
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	e := s.do(t, "GET", "/api/things", bearer(token), "").upstream(t, 200)
	if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("GET /api/things (nested token): upstream saw x-jwt-sub %q, want [alice]", got)
	}
	s.do(t, "GET", "/api/things", bearer(token), "").upstream(t, 200) // from the cache

	seg := strings.Split(token, ".")
	// The first letter of the ciphertext changed (a first letter has no trailing bits, so
	// the segment stays canonical base64url): the tag no longer authenticates it.
	if seg[3][0] == 'A' {
		seg[3] = "B" + seg[3][1:]
	} else {
		seg[3] = "A" + seg[3][1:]
	}
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"a plain JWS of the issuer", mint(t, s.key, "", s.claims()), "encryption_required"},
		{"a tampered JWE", strings.Join(seg, "."), "decryption_failed"},
	} {
		r := s.do(t, "GET", "/api/things", bearer(tc.token), "")
		r.challenge(t, 401, "invalid_token")
		var body struct{ Reason string }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Reason != tc.reason {
			t.Errorf("GET /api/things with %s: reason %q, want %q", tc.name, body.Reason, tc.reason)
		}
	}
}
