package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/go-jose/go-jose/v4"
)

// newEncrypter reads the PEM public key of -encrypt (the recipient, jwt-authz's decryption
// key) and returns an encrypter for nested JWTs (RFC 7519 §5.2): RSA keys get RSA-OAEP-256,
// EC P-256 keys ECDH-ES+A256KW, both with A256GCM, cty JWT, and the key's RFC 7638
// thumbprint as kid (which is also jwt-authz's kid for a pem_file without one).
func newEncrypter(file string) (jose.Encrypter, string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, "", fmt.Errorf("-encrypt %s: want a PEM PUBLIC KEY block", file)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("-encrypt %s: %w", file, err)
	}
	var alg jose.KeyAlgorithm
	switch k := pub.(type) {
	case *rsa.PublicKey:
		alg = jose.RSA_OAEP_256
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("-encrypt %s: EC keys must be P-256", file)
		}
		alg = jose.ECDH_ES_A256KW
	default:
		return nil, "", fmt.Errorf("-encrypt %s: %T: want an RSA or EC P-256 public key", file, pub)
	}
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", err
	}
	kid := base64.RawURLEncoding.EncodeToString(sum)
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: pub, KeyID: kid},
		(&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		return nil, "", fmt.Errorf("-encrypt %s: %w", file, err)
	}
	return enc, string(alg), nil
}
