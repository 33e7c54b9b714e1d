package envoy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// mint signs claims as a compact JWS: ES256 with key, or no signature at all when key is nil
// (alg "none"). The tests hold the issuer's own key (demo-issuer -key-file), so they can
// make tokens the issuer would never issue, such as expired ones, that are genuine otherwise.
func mint(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	alg := "ES256"
	if key == nil {
		alg = "none"
	}
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]any{"alg": alg, "typ": "JWT", "kid": kid}) + "." + enc(claims)
	if key == nil {
		return input + "."
	}
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64) // RFC 7518 §3.4: R and S, 32 bytes each, big-endian
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// claims are those of a token the demo issuer would give alice now; change them to taste.
func (s *stack) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   s.issuer,
		"aud":   s.audience,
		"sub":   "alice",
		"scope": "read",
		"roles": []string{"user"},
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(5 * time.Minute).Unix(),
	}
}

// kid returns the key id under which the issuer publishes the key the test gave it: read
// from the JWKS as served through Envoy, found by comparing the public key itself.
func (s *stack) kid(t *testing.T) string {
	t.Helper()
	pub, err := s.key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	set := s.jwks(t)
	for _, k := range set {
		x, _ := base64.RawURLEncoding.DecodeString(k.X)
		y, _ := base64.RawURLEncoding.DecodeString(k.Y)
		if k.Kty == "EC" && k.Crv == "P-256" && bytes.Equal(x, pub[1:33]) && bytes.Equal(y, pub[33:]) {
			return k.Kid
		}
	}
	t.Fatalf("the issuer's JWKS does not hold the key given with -key-file (%d keys)", len(set))
	return ""
}

// publishedKey is one key of the issuer's JWKS: the members the tests look at.
type publishedKey struct{ Kid, Kty, Crv, X, Y string }

// jwks returns the keys the issuer publishes now, as served through Envoy.
func (s *stack) jwks(t *testing.T) []publishedKey {
	t.Helper()
	r := s.do(t, "GET", "/.well-known/jwks.json", nil, "")
	if r.status != 200 {
		t.Fatalf("GET /.well-known/jwks.json = %d, want 200\n%s", r.status, clip(r.body))
	}
	var set struct{ Keys []publishedKey }
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatalf("GET /.well-known/jwks.json: %v\n%s", err, clip(r.body))
	}
	return set.Keys
}

// kidOf returns the kid of a compact JWS's header; "" when it has none or is not a JWS.
func kidOf(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct{ Kid string }
	_ = json.Unmarshal(b, &h)
	return h.Kid
}
