package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/jwt-authz/jwt-authz/config"
)

func testdata(p string) string { return filepath.Join("testdata", p) }

func TestNewSetFiles(t *testing.T) {
	tests := []struct {
		name     string
		specs    []config.Key
		wantKIDs []string // nil: the key's thumbprint (checked by length)
		wantErr  error
	}{
		{name: "jwks file; enc key skipped", specs: []config.Key{{JWKSFile: "jwks.json"}}, wantKIDs: []string{"ec-1", "ed-1", "hs-1", "rsa-1"}},
		{name: "pem PKIX", specs: []config.Key{{PEMFile: "rsa2048.pem", KID: "r"}}, wantKIDs: []string{"r"}},
		{name: "pem PKCS#1", specs: []config.Key{{PEMFile: "rsa2048-pkcs1.pem", KID: "r"}}, wantKIDs: []string{"r"}},
		{name: "pem certificate chain", specs: []config.Key{{PEMFile: "ec-p256-cert.pem", KID: "c"}}, wantKIDs: []string{"c"}},
		{name: "pem Ed25519", specs: []config.Key{{PEMFile: "ed25519.pem", KID: "e"}}, wantKIDs: []string{"e"}},
		{name: "pem without kid gets its thumbprint", specs: []config.Key{{PEMFile: "rsa2048.pem"}}},
		{name: "hmac secret", specs: []config.Key{{HMACSecretFile: "hmac-32.bin", KID: "h"}}, wantKIDs: []string{"h"}},
		{name: "several sources", specs: []config.Key{{PEMFile: "rsa2048.pem", KID: "r"}, {HMACSecretFile: "hmac-32.bin", KID: "h"}}, wantKIDs: []string{"h", "r"}},

		{name: "RSA 1024 refused", specs: []config.Key{{PEMFile: "rsa1024.pem", KID: "r"}}, wantErr: ErrWeakKey},
		{name: "EC P-224 refused", specs: []config.Key{{PEMFile: "ec-p224.pem", KID: "e"}}, wantErr: ErrWeakKey},
		{name: "short HMAC secret refused", specs: []config.Key{{HMACSecretFile: "hmac-16.bin", KID: "h"}}, wantErr: ErrWeakKey},
		{name: "weak key in a jwks file refused", specs: []config.Key{{JWKSFile: "jwks-weak.json"}}, wantErr: ErrWeakKey},
		{name: "duplicate kid in a jwks file", specs: []config.Key{{JWKSFile: "jwks-dup.json"}}, wantErr: ErrDuplicateKID},
		{name: "different keys under one kid across sources: that kid refused", specs: []config.Key{{JWKSFile: "jwks.json"}, {PEMFile: "rsa2048.pem", KID: "rsa-1"}}, wantKIDs: []string{"ec-1", "ed-1", "hs-1"}},
		{name: "same key in two sources is one key", specs: []config.Key{{PEMFile: "rsa2048.pem"}, {PEMFile: "rsa2048-pkcs1.pem"}}},
		{name: "jwks file with an X25519 key: skipped", specs: []config.Key{{JWKSFile: "jwks-x25519.json"}}, wantKIDs: []string{"ec-1"}},
		{name: "bad PEM", specs: []config.Key{{PEMFile: "not-a-key.pem", KID: "x"}}, wantErr: ErrMalformed},
		{name: "PEM that is JSON", specs: []config.Key{{PEMFile: "jwks.json", KID: "x"}}, wantErr: ErrMalformed},
		{name: "two keys in one PEM", specs: []config.Key{{PEMFile: "two-keys.pem", KID: "x"}}, wantErr: ErrMalformed},
		{name: "private key PEM", specs: []config.Key{{PEMFile: "ec-private.pem", KID: "x"}}, wantErr: ErrPrivateKey},
		{name: "private key JWKS", specs: []config.Key{{JWKSFile: "jwks-private.json"}}, wantErr: ErrPrivateKey},
		{name: "JWKS that is PEM", specs: []config.Key{{JWKSFile: "rsa2048.pem"}}, wantErr: ErrMalformed},
		{name: "missing file", specs: []config.Key{{JWKSFile: "nope.json"}}, wantErr: fs.ErrNotExist},
		{name: "hmac without kid", specs: []config.Key{{HMACSecretFile: "hmac-32.bin"}}, wantErr: ErrMalformed},
		{name: "two fields in one spec", specs: []config.Key{{JWKSFile: "jwks.json", PEMFile: "rsa2048.pem"}}, wantErr: ErrMalformed},
		{name: "no sources", wantErr: ErrNoKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet("https://issuer.test", tt.specs, testdata, Options{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewSet(%+v) error = %v, want %v", tt.specs, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := kids(s)
			if tt.wantKIDs == nil {
				if len(got) != 1 || len(got[0]) != 43 {
					t.Fatalf("NewSet(%+v) kids = %q, want one RFC 7638 thumbprint", tt.specs, got)
				}
				return
			}
			if diff := cmp.Diff(tt.wantKIDs, got); diff != "" {
				t.Errorf("NewSet(%+v) kids (-want +got):\n%s", tt.specs, diff)
			}
			if !s.Ready() {
				t.Errorf("NewSet(%+v).Ready() = false, want true for files only", tt.specs)
			}
		})
	}
}

func TestKeyTypes(t *testing.T) {
	s, err := NewSet("https://issuer.test", []config.Key{{JWKSFile: "jwks.json"}}, testdata, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for kid, want := range map[string]string{"rsa-1": "*rsa.PublicKey", "ec-1": "*ecdsa.PublicKey", "ed-1": "ed25519.PublicKey", "hs-1": "[]uint8"} {
		k, found, err := s.Lookup(context.Background(), kid)
		if err != nil || !found {
			t.Fatalf("Lookup(%q) = %v, %v, %v", kid, k, found, err)
		}
		var got string
		switch k.Key.(type) {
		case *rsa.PublicKey:
			got = "*rsa.PublicKey"
		case *ecdsa.PublicKey:
			got = "*ecdsa.PublicKey"
		case ed25519.PublicKey:
			got = "ed25519.PublicKey"
		case []byte:
			got = "[]uint8"
		}
		if got != want {
			t.Errorf("Lookup(%q).Key is %T, want %s", kid, k.Key, want)
		}
	}
}

// A remote set is parsed leniently: bad keys are skipped and named, good ones kept.
func TestParseJWKSRemote(t *testing.T) {
	weak := mustKeys(t, "jwks-weak.json") // ec-1, rsa-weak
	good := mustKeys(t, "jwks.json")      // rsa-1, ec-1, ed-1, hs-1, enc-1
	private := mustKeys(t, "jwks-private.json")
	ec := ecJWK(t, "ec-2")
	tests := []struct {
		name        string
		keys        []any
		wantKIDs    []string
		wantSkipped []error
		wantErr     error
	}{
		{name: "good keys; oct refused, enc skipped", keys: good, wantKIDs: []string{"rsa-1", "ec-1", "ed-1"}, wantSkipped: []error{ErrPrivateKey, ErrUnsupportedKey}},
		{name: "weak key skipped", keys: weak, wantKIDs: []string{"ec-1"}, wantSkipped: []error{ErrWeakKey}},
		{name: "duplicate kid drops both", keys: []any{ec, ec, weak[0]}, wantKIDs: []string{"ec-1"}, wantSkipped: []error{ErrDuplicateKID}},
		{name: "private key skipped", keys: []any{private[0], ec}, wantKIDs: []string{"ec-2"}, wantSkipped: []error{ErrPrivateKey}},
		{name: "unsupported kty skipped", keys: []any{map[string]string{"kty": "OKP", "crv": "X25519", "x": "AAAA"}, ec}, wantKIDs: []string{"ec-2"}, wantSkipped: []error{ErrUnsupportedKey}},
		{name: "alg that does not fit the key", keys: []any{map[string]any{"kty": "EC", "crv": "P-256", "alg": "RS256", "x": raw(t, ec)["x"], "y": raw(t, ec)["y"]}, weak[0]}, wantKIDs: []string{"ec-1"}, wantSkipped: []error{ErrUnsupportedKey}},
		{name: "garbage key skipped", keys: []any{"nope", ec}, wantKIDs: []string{"ec-2"}, wantSkipped: []error{ErrMalformed}},
		{name: "nothing usable", keys: []any{weak[1]}, wantSkipped: []error{ErrWeakKey}, wantErr: ErrNoKeys},
		{name: "empty set", keys: []any{}, wantErr: ErrNoKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := json.Marshal(map[string]any{"keys": tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			keys, skipped, err := parseJWKS(doc, fromRemote)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseJWKS() error = %v, want %v", err, tt.wantErr)
			}
			var gotKIDs []string
			for _, k := range keys {
				gotKIDs = append(gotKIDs, k.KeyID)
			}
			if diff := cmp.Diff(tt.wantKIDs, gotKIDs); diff != "" {
				t.Errorf("parseJWKS() kids (-want +got):\n%s", diff)
			}
			if len(skipped) != len(tt.wantSkipped) {
				t.Fatalf("parseJWKS() skipped %v, want %v", skipped, tt.wantSkipped)
			}
			for i := range skipped {
				if !errors.Is(skipped[i], tt.wantSkipped[i]) {
					t.Errorf("parseJWKS() skipped[%d] = %v, want %v", i, skipped[i], tt.wantSkipped[i])
				}
			}
		})
	}
	for _, doc := range []string{`[]`, `{"keys":{}}`, `{}`, `null`, ``} {
		if _, _, err := parseJWKS([]byte(doc), fromRemote); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseJWKS(%q) error = %v, want %v", doc, err, ErrMalformed)
		}
	}
}

// mustKeys reads a JWKS fixture as raw JSON objects, to be re-served.
func mustKeys(t *testing.T, name string) []any {
	t.Helper()
	data, err := os.ReadFile(testdata(name))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Keys []any }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Keys
}

func raw(t *testing.T, k jose.JSONWebKey) map[string]any {
	t.Helper()
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
