package introspect

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/keys"
)

// assertionType is the client_assertion_type of a JWT client assertion (RFC 7523 §2.2).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long an assertion is good for: one call, with room for clock skew.
const assertionLifetime = 60 * time.Second

// assertionSigner makes private_key_jwt client assertions: iss and sub the client id, aud
// the authorization server, a fresh jti and a short exp each time.
type assertionSigner struct {
	signer   jose.Signer
	clientID string
	audience string
}

// newAssertionSigner loads c's private key file (path resolved) and checks that the key
// fits c.SigningAlgorithm.
func newAssertionSigner(c config.Introspection, issuer, path string) (*assertionSigner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("introspect: private_key_file: %w", err)
	}
	key, kid, err := parseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("introspect: private_key_file %s: %w", path, err)
	}
	if err := keyFits(key, c.SigningAlgorithm); err != nil {
		return nil, fmt.Errorf("introspect: private_key_file %s: %w", path, err)
	}
	if c.KeyID != "" {
		kid = c.KeyID
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(c.SigningAlgorithm), Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("introspect: private_key_file %s: %w", path, err)
	}
	aud := c.AssertionAudience
	if aud == "" {
		aud = issuer
	}
	return &assertionSigner{signer: signer, clientID: c.ClientID, audience: aud}, nil
}

// parseSigningKey reads a private JWK (JSON) or a PEM private key; the JWK's kid comes
// along. Errors never quote the content.
func parseSigningKey(data []byte) (key any, kid string, err error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(trimmed); err != nil {
			return nil, "", fmt.Errorf("not a JWK: %v", err)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, "", fmt.Errorf(`"use":%q on a signing key`, k.Use)
		}
		return k.Key, k.KeyID, nil
	}
	key, err = keys.PrivateKeyFromPEM(data)
	return key, "", err
}

// keyFits reports whether key is a private key of the type and size alg needs.
func keyFits(key any, alg string) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS") {
			if k.N.BitLen() < 2048 {
				return fmt.Errorf("RSA key of %d bits, want at least 2048", k.N.BitLen())
			}
			return nil
		}
	case *ecdsa.PrivateKey:
		if curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]; curve == k.Curve {
			return nil
		}
	case ed25519.PrivateKey:
		if alg == "EdDSA" {
			return nil
		}
	default:
		return fmt.Errorf("%T is not an RSA, EC or Ed25519 private key", key)
	}
	return fmt.Errorf("a %T does not fit signing_algorithm %s", key, alg)
}

// assertion returns a new signed client assertion.
func (s *assertionSigner) assertion(now time.Time) (string, error) {
	jti := make([]byte, 16)
	rand.Read(jti)
	claims, err := json.Marshal(map[string]any{
		"iss": s.clientID, "sub": s.clientID, "aud": s.audience,
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"iat": now.Unix(), "exp": now.Add(assertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	obj, err := s.signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
