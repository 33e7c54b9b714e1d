package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// NewDecryptionSet builds the JWE decryption keys of a provider: private keys from files
// only (jwks_file with private JWKs, pem_file with a private key, hmac_secret_file with the
// shared key of dir and A*KW), loaded now, then watched and reloaded by Start like
// verification key files. Lookup returns a private key by kid. A key for signatures
// ("use":"sig"), a public key, a weak key or a kid twice is an error.
func NewDecryptionSet(name string, specs []config.Key, resolvePath func(string) string, opts Options) (*Set, error) {
	for i, spec := range specs {
		if spec.JWKSURI != "" || spec.Discovery {
			return nil, fmt.Errorf("keys[%d]: decryption keys come from files only: %w", i, ErrMalformed)
		}
	}
	return newSet(name, specs, resolvePath, opts, true)
}

// Secret sizes of the JWE algorithms that use a shared key: A128KW/A128GCM (16),
// A192KW/A192GCM (24), A256KW/A256GCM/A128CBC-HS256 (32), A192CBC-HS384 (48),
// A256CBC-HS512 (64).
var secretSizes = []int{16, 24, 32, 48, 64}

// parsePrivateFile is parseFile for decryption keys. Errors never quote the content.
func parsePrivateFile(kind Kind, data []byte, kid string) (keys []*jose.JSONWebKey, skipped []error, err error) {
	switch kind {
	case KindJWKSFile:
		var doc struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(data, &doc); err != nil || doc.Keys == nil {
			return nil, nil, fmt.Errorf(`not a JWKS with a "keys" array: %w`, ErrMalformed)
		}
		seen := map[string]bool{}
		for i, raw := range doc.Keys {
			var k jose.JSONWebKey
			if err := k.UnmarshalJSON(raw); err != nil {
				return nil, nil, fmt.Errorf("keys[%d]: %v: %w", i, err, ErrMalformed)
			}
			if err := checkPrivateKey(&k); err != nil {
				return nil, nil, fmt.Errorf("keys[%d]: %w", i, err)
			}
			if seen[k.KeyID] {
				return nil, nil, fmt.Errorf("keys[%d]: kid %q: %w", i, clip(k.KeyID), ErrDuplicateKID)
			}
			seen[k.KeyID] = true
			keys = append(keys, &k)
		}
		if len(keys) == 0 {
			return nil, nil, fmt.Errorf("JWKS holds no decryption key: %w", ErrNoKeys)
		}
		return keys, nil, nil
	case KindPEMFile:
		k, err := parsePrivatePEM(data, kid)
		if err != nil {
			return nil, nil, err
		}
		return []*jose.JSONWebKey{k}, nil, nil
	case KindHMACSecretFile:
		k := &jose.JSONWebKey{Key: append([]byte(nil), data...), KeyID: kid, Use: "enc"}
		if err := checkPrivateKey(k); err != nil {
			return nil, nil, err
		}
		return []*jose.JSONWebKey{k}, nil, nil
	}
	return nil, nil, fmt.Errorf("%s is not a file source: %w", kind, ErrMalformed)
}

// parsePrivatePEM reads the one private key of a PEM file as a decryption key.
func parsePrivatePEM(data []byte, kid string) (*jose.JSONWebKey, error) {
	key, err := PrivateKeyFromPEM(data)
	if err != nil {
		return nil, err
	}
	k := &jose.JSONWebKey{Key: key, KeyID: kid, Use: "enc"}
	if err := checkPrivateKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// PrivateKeyFromPEM reads the one private key of a PEM file: PKCS#8 "PRIVATE KEY", PKCS#1
// "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY". Errors never quote the content.
func PrivateKeyFromPEM(data []byte) (any, error) {
	var key any
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if key != nil {
			return nil, fmt.Errorf("more than one private key in the file: %w", ErrMalformed)
		}
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			err = errors.New("unknown private key block")
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %v: %w", block.Type, err, ErrMalformed)
		}
	}
	if key == nil {
		return nil, fmt.Errorf("no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block: %w", ErrMalformed)
	}
	return key, nil
}

// checkPrivateKey refuses decryption keys that are public, for signatures, weak or of an
// unsupported type, checks a key's alg against its type, and names keyless kids by the
// RFC 7638 thumbprint of the public part.
func checkPrivateKey(k *jose.JSONWebKey) error {
	if k.Use != "" && k.Use != "enc" {
		return fmt.Errorf(`"use":%q on a decryption key: %w`, k.Use, ErrUnsupportedKey)
	}
	if len(k.KeyID) > maxKIDLen {
		return fmt.Errorf("kid of %d bytes: %w", len(k.KeyID), ErrMalformed)
	}
	var family string // the alg prefix this key can serve
	switch key := k.Key.(type) {
	case *rsa.PrivateKey:
		if bits := key.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("RSA modulus of %d bits, want at least %d: %w", bits, minRSABits, ErrWeakKey)
		}
		family = "RSA-OAEP"
	case *ecdsa.PrivateKey:
		switch key.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("EC curve %s: %w", key.Curve.Params().Name, ErrUnsupportedKey)
		}
		family = "ECDH-ES"
	case []byte:
		ok := false
		for _, n := range secretSizes {
			ok = ok || len(key) == n
		}
		if !ok {
			return fmt.Errorf("shared key of %d bytes, want 16, 24, 32, 48 or 64: %w", len(key), ErrWeakKey)
		}
		family = "A" // A*KW, dir
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return fmt.Errorf("%T: a public key cannot decrypt: %w", key, ErrUnsupportedKey)
	default:
		return fmt.Errorf("%T: %w", key, ErrUnsupportedKey)
	}
	if a := k.Algorithm; a != "" && !strings.HasPrefix(a, family) && !(family == "A" && a == "dir") {
		return fmt.Errorf("alg %s on a %T key: %w", a, k.Key, ErrUnsupportedKey)
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
