package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestExplainNestedToken: -explain reads a nested token (a JWE holding a JWS) offline with
// the provider's decryption key files, as the server does; before, it refused the config
// ("provider has no decryption keys").
func TestExplainNestedToken(t *testing.T) {
	dir := t.TempDir()
	sig, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &sig.PublicKey, KeyID: "sig-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "sig.jwks.json"), jwks)
	enc, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(enc)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "enc.key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	cfg := filepath.Join(dir, "jwt-authz.yaml")
	writeTestFile(t, cfg, []byte(`grpc_address: 127.0.0.1:0
providers:
  - name: p
    issuer: https://issuer.test
    audiences: [api]
    algorithms: [ES256]
    keys: [{jwks_file: sig.jwks.json}]
    encryption:
      required: true
      key_algorithms: [RSA-OAEP-256]
      content_encryptions: [A256GCM]
      keys: [{pem_file: enc.key.pem}]
rules:
  - name: api
    match: {path_prefix: /}
    require: {}
`))

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: sig},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "sig-1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	inner, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://issuer.test", Subject: "alice",
		Audience: jwt.Audience{"api"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	encrypter, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: &enc.PublicKey},
		(&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := encrypter.Encrypt([]byte(inner))
	if err != nil {
		t.Fatal(err)
	}
	nested, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}

	args := []string{"-config", cfg, "-explain", "-path", "/orders", "-now", now.Format(time.RFC3339), "-token", "-"}
	wantLines(t, explainRun(t, "Bearer "+nested+"\n", args...), `JWE: decrypted with a key of provider "p"`,
		`signature and claims: verified (sub "alice")`, "decision: allow")
	// The inner token alone is refused: this provider requires encryption.
	wantLines(t, explainRun(t, "Bearer "+inner+"\n", args...), "encryption_required")
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
