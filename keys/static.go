package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Key strength floors. The verifier additionally checks that an HMAC secret is at least as
// long as the hash of the algorithm in use (RFC 7518 §3.2); 32 bytes is the HS256 floor.
const (
	minRSABits   = 2048
	maxRSABits   = 4096 // go-jose's MaxRSAModulusBits: larger JWKs do not parse at all
	minHMACBytes = 32
	maxKIDLen    = 1024
	maxDocSize   = 1 << 20 // 1 MiB: a JWKS with hundreds of keys is far smaller
)

// errNotForSignatures marks a key that is skipped rather than refused: "use":"enc", or an
// alg for encryption. RFC 7517 §5 says implementations should ignore keys they cannot use.
// It is an ErrUnsupportedKey, so it is reported (logged and counted) like one.
var errNotForSignatures = fmt.Errorf("not a signature key (use or alg is for encryption): %w", ErrUnsupportedKey)

// origin says where a document came from, which decides what it may hold.
type origin int

const (
	fromFile   origin = iota // strict: any bad key fails the document; oct allowed
	fromRemote               // lenient: bad keys are skipped; oct refused (a published secret)
)

// parseJWKS parses a JWK Set (RFC 7517 §5). Keys jwt-authz cannot use (unknown kty or crv,
// "use":"enc", an encryption alg: ErrUnsupportedKey) are skipped and returned in skipped
// wherever the document comes from (RFC 7517 §5: SHOULD ignore). Other bad keys (weak,
// private, malformed, a kid twice) fail the whole document when it comes from a file, where
// the operator can fix it, and are skipped when it comes from the network, where one odd key
// in an issuer's set must not take the others down. A document with no usable key is an
// error.
func parseJWKS(data []byte, o origin) (keys []*jose.JSONWebKey, skipped []error, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not JSON (%v): %w", err, ErrMalformed)
	}
	if doc.Keys == nil {
		return nil, nil, fmt.Errorf(`JWKS has no "keys" array: %w`, ErrMalformed)
	}
	seen := map[string]int{} // kid -> index in keys, or -1 once its duplicates were dropped
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err == nil && o == fromRemote {
			if _, secret := k.Key.([]byte); secret {
				err = fmt.Errorf("kid %q: oct key in a remote JWKS: %w", k.KeyID, ErrPrivateKey)
			}
		}
		if err == nil {
			if j, dup := seen[k.KeyID]; dup {
				// Both go: we cannot know which one the issuer signs with, and keeping
				// either would make the answer depend on document order.
				err = fmt.Errorf("kid %q: %w", k.KeyID, ErrDuplicateKID)
				if j >= 0 {
					keys[j] = nil
					seen[k.KeyID] = -1
				}
			} else {
				seen[k.KeyID] = len(keys)
				keys = append(keys, k)
			}
		}
		if err != nil {
			err = fmt.Errorf("keys[%d]: %w", i, err)
			if o == fromFile && !errors.Is(err, ErrUnsupportedKey) {
				return nil, nil, err
			}
			skipped = append(skipped, err)
		}
	}
	keys = compact(keys)
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWKS holds no usable signature key: %w", ErrNoKeys)
	}
	return keys, skipped, nil
}

func compact(keys []*jose.JSONWebKey) []*jose.JSONWebKey {
	out := keys[:0]
	for _, k := range keys {
		if k != nil {
			out = append(out, k)
		}
	}
	return out
}

// parseJWK parses and checks one JWK. A key without kid is given its RFC 7638 thumbprint.
func parseJWK(raw []byte) (*jose.JSONWebKey, error) {
	var hdr struct {
		Use string `json:"use"`
	}
	if json.Unmarshal(raw, &hdr) == nil && hdr.Use != "" && hdr.Use != "sig" {
		return nil, errNotForSignatures
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		if errors.Is(err, jose.ErrUnsupportedKeyType) {
			return nil, fmt.Errorf("%v: %w", err, ErrUnsupportedKey)
		}
		return nil, fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if err := checkKey(&k); err != nil {
		if k.KeyID != "" && len(k.KeyID) <= maxKIDLen {
			return nil, fmt.Errorf("kid %q: %w", k.KeyID, err)
		}
		return nil, err
	}
	return &k, nil
}

// checkKey refuses keys jwt-authz must not verify with, and names keyless kids.
func checkKey(k *jose.JSONWebKey) error {
	if k.Use != "" && k.Use != "sig" {
		return errNotForSignatures
	}
	if len(k.KeyID) > maxKIDLen {
		return fmt.Errorf("kid of %d bytes: %w", len(k.KeyID), ErrMalformed)
	}
	var kind string // the alg family this key can verify
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		kind = "RSA"
		switch bits := key.N.BitLen(); {
		case bits < minRSABits:
			return fmt.Errorf("RSA modulus of %d bits, want at least %d: %w", bits, minRSABits, ErrWeakKey)
		case bits > maxRSABits:
			return fmt.Errorf("RSA modulus of %d bits, want at most %d: %w", bits, maxRSABits, ErrUnsupportedKey)
		}
		if key.E < 3 || key.E%2 == 0 {
			return fmt.Errorf("RSA exponent %d: %w", key.E, ErrWeakKey)
		}
	case *ecdsa.PublicKey:
		switch key.Curve {
		case elliptic.P256():
			kind = "ES256"
		case elliptic.P384():
			kind = "ES384"
		case elliptic.P521():
			kind = "ES512"
		default:
			return fmt.Errorf("EC curve %s: %w", key.Curve.Params().Name, ErrWeakKey)
		}
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key of %d bytes: %w", len(key), ErrMalformed)
		}
		kind = "EdDSA"
	case []byte:
		if len(key) < minHMACBytes {
			return fmt.Errorf("HMAC secret of %d bytes, want at least %d: %w", len(key), minHMACBytes, ErrWeakKey)
		}
		kind = "HS"
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return fmt.Errorf("%T: %w", key, ErrPrivateKey)
	default:
		return fmt.Errorf("%T: %w", key, ErrUnsupportedKey)
	}
	if err := algFits(k.Algorithm, kind); err != nil {
		return err
	}
	if k.KeyID == "" {
		kid, err := thumbprint(k)
		if err != nil {
			return fmt.Errorf("thumbprint: %v: %w", err, ErrMalformed)
		}
		k.KeyID = kid
	}
	return nil
}

// algFits checks a key's optional alg (RFC 7517 §4.4) against what the key can verify, so a
// verifier that trusts the key's alg is never led into an algorithm confusion.
func algFits(alg, kind string) error {
	if alg == "" {
		return nil
	}
	var want string
	switch {
	case strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS"):
		want = "RSA"
	case alg == "ES256" || alg == "ES384" || alg == "ES512":
		want = alg
	case alg == "EdDSA" || alg == "Ed25519":
		want = "EdDSA"
	case alg == "HS256" || alg == "HS384" || alg == "HS512":
		want = "HS"
	default:
		return errNotForSignatures // RSA-OAEP, ECDH-ES, A128KW, ...: not ours
	}
	if alg[:2] == "RS" || alg[:2] == "PS" {
		switch alg[2:] {
		case "256", "384", "512":
		default:
			return errNotForSignatures
		}
	}
	if want != kind {
		return fmt.Errorf("alg %s on a %s key: %w", alg, kind, ErrUnsupportedKey)
	}
	return nil
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url), used as the kid of a key
// that has none. For an oct key it is computed from the RFC 7638 §3.2 members too: a hash
// of a secret of 32+ bytes does not reveal it.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	if secret, ok := k.Key.([]byte); ok {
		sum := sha256.Sum256([]byte(`{"k":"` + base64.RawURLEncoding.EncodeToString(secret) + `","kty":"oct"}`))
		return base64.RawURLEncoding.EncodeToString(sum[:]), nil
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// parsePEM reads the one public key of a pem_file: a PKIX "PUBLIC KEY", a PKCS#1 "RSA
// PUBLIC KEY", or the first "CERTIFICATE" (the leaf of a chain; the chain is not verified,
// the operator vouches for the file). kid names it; empty means its thumbprint.
func parsePEM(data []byte, kid string) (*jose.JSONWebKey, error) {
	var (
		pub          any
		keys, certs  int
		parseErr     error
		firstBadType string
	)
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			keys++
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			keys++
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			if certs++; certs > 1 {
				continue // the rest of the chain
			}
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = c.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %q: %w", block.Type, ErrPrivateKey)
			}
			continue
		}
		if err != nil && parseErr == nil {
			parseErr, firstBadType = err, block.Type
		}
		if pub == nil {
			pub = key
		}
	}
	switch {
	case keys+min(certs, 1) > 1:
		return nil, fmt.Errorf("more than one public key in the file: %w", ErrMalformed)
	case parseErr != nil:
		return nil, fmt.Errorf("PEM block %q: %v: %w", firstBadType, parseErr, ErrMalformed)
	case pub == nil:
		return nil, fmt.Errorf("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block: %w", ErrMalformed)
	}
	k := &jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig"}
	if err := checkKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// hmacKey wraps the raw bytes of an hmac_secret_file. The bytes are used exactly as read: a
// trailing newline is part of the secret, as it is for the issuer that reads the same file.
func hmacKey(secret []byte, kid string) (*jose.JSONWebKey, error) {
	k := &jose.JSONWebKey{Key: bytes.Clone(secret), KeyID: kid, Use: "sig"}
	if err := checkKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// sameKey reports whether two keys are interchangeable for verification and for anything
// a caller may read from them (kid, alg, use, certificates), so the older pointer can be
// kept across a refresh and a token cache keyed on it stays valid.
func sameKey(a, b *jose.JSONWebKey) bool {
	ja, err1 := a.MarshalJSON()
	jb, err2 := b.MarshalJSON()
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// sameMaterial reports whether two keys verify the same signatures: the same RFC 7638
// thumbprint (or secret) and the same alg. Two sources that publish such keys under one kid
// agree; anything else under one kid is a conflict.
func sameMaterial(a, b *jose.JSONWebKey) bool {
	if a.Algorithm != b.Algorithm {
		return false
	}
	sa, aSecret := a.Key.([]byte)
	sb, bSecret := b.Key.([]byte)
	if aSecret || bSecret {
		return aSecret && bSecret && hmac.Equal(sa, sb)
	}
	ta, err1 := a.Thumbprint(crypto.SHA256)
	tb, err2 := b.Thumbprint(crypto.SHA256)
	return err1 == nil && err2 == nil && bytes.Equal(ta, tb)
}
