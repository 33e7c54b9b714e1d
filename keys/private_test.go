package keys

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TestDecryptionSet: the files of a JWE decryption key set, what they may hold, and their
// reload.
func TestDecryptionSet(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	pkix, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	jwks := func(keys ...jose.JSONWebKey) []byte { return mustJSON(t, jose.JSONWebKeySet{Keys: keys}) }

	for _, tc := range []struct {
		name string
		kind string // jwks_file, pem_file or hmac_secret_file
		data []byte
		kid  string
		want error // nil: loads
	}{
		{"private JWKS", "jwks_file", jwks(jose.JSONWebKey{Key: rsaKey, KeyID: "r", Use: "enc", Algorithm: "RSA-OAEP-256"}, jose.JSONWebKey{Key: ecKey, KeyID: "e"}), "", nil},
		{"oct JWK for dir", "jwks_file", jwks(jose.JSONWebKey{Key: bytes.Repeat([]byte{1}, 32), KeyID: "d", Algorithm: "dir"}), "", nil},
		{"PKCS#8 EC", "pem_file", pemOf(t, "PRIVATE KEY", pkcs8), "ec", nil},
		{"SEC 1 EC", "pem_file", pemOf(t, "EC PRIVATE KEY", sec1), "", nil},
		{"PKCS#1 RSA", "pem_file", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "", nil},
		{"secret of 32 bytes", "hmac_secret_file", bytes.Repeat([]byte{2}, 32), "s", nil},
		{"a public key in the JWKS", "jwks_file", jwks(jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r"}), "", ErrUnsupportedKey},
		{"a signature key", "jwks_file", jwks(jose.JSONWebKey{Key: rsaKey, KeyID: "r", Use: "sig"}), "", ErrUnsupportedKey},
		{"an RSA key with alg ECDH-ES", "jwks_file", jwks(jose.JSONWebKey{Key: rsaKey, KeyID: "r", Algorithm: "ECDH-ES"}), "", ErrUnsupportedKey},
		{"a kid twice", "jwks_file", jwks(jose.JSONWebKey{Key: rsaKey, KeyID: "r"}, jose.JSONWebKey{Key: ecKey, KeyID: "r"}), "", ErrDuplicateKID},
		{"RSA 1024", "pem_file", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(weak)), "", ErrWeakKey},
		{"a public PEM", "pem_file", pemOf(t, "PUBLIC KEY", pkix), "", ErrMalformed},
		{"two private keys", "pem_file", append(pemOf(t, "PRIVATE KEY", pkcs8), pemOf(t, "EC PRIVATE KEY", sec1)...), "", ErrMalformed},
		{"secret of 20 bytes", "hmac_secret_file", bytes.Repeat([]byte{2}, 20), "s", ErrWeakKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "key")
			writeAtomic(t, f, tc.data)
			spec := map[string]config.Key{
				"jwks_file": {JWKSFile: f}, "pem_file": {PEMFile: f, KID: tc.kid}, "hmac_secret_file": {HMACSecretFile: f, KID: tc.kid},
			}[tc.kind]
			s, err := NewDecryptionSet("p", []config.Key{spec}, nil, Options{})
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("NewDecryptionSet(%s) = %v, want %v", tc.name, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewDecryptionSet(%s) = %v", tc.name, err)
			}
			k, found, err := s.Lookup(context.Background(), tc.kid)
			if tc.kind == "jwks_file" {
				k, found, err = s.Lookup(context.Background(), map[bool]string{true: "d", false: "r"}[tc.name == "oct JWK for dir"])
			}
			if err != nil || !found || k.IsPublic() {
				t.Errorf("Lookup after NewDecryptionSet(%s) = %v, %v, %v; want a private key", tc.name, k, found, err)
			}
		})
	}

	t.Run("remote sources are refused", func(t *testing.T) {
		if _, err := NewDecryptionSet("p", []config.Key{{JWKSURI: "https://idp.example/jwks"}}, nil, Options{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("NewDecryptionSet(jwks_uri) = %v, want ErrMalformed", err)
		}
	})

	t.Run("a rewritten file is reloaded", func(t *testing.T) {
		f := filepath.Join(dir, "enc.pem")
		writeAtomic(t, f, pemOf(t, "PRIVATE KEY", pkcs8))
		s, err := NewDecryptionSet("p", []config.Key{{PEMFile: f, KID: "enc-1"}}, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		rsa8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
		writeAtomic(t, f, pemOf(t, "PRIVATE KEY", rsa8))
		deadline := time.Now().Add(15 * time.Second) // the watcher, or the 10s poll
		for {
			if k, found, _ := s.Lookup(ctx, "enc-1"); found {
				if _, isRSA := k.Key.(*rsa.PrivateKey); isRSA {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the rewritten decryption key file was not reloaded within 15s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
