package keys

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Documents from the network and from files are attacker- or operator-supplied bytes: no
// input may panic, and whatever is accepted must pass the key checks.
func FuzzParseJWKS(f *testing.F) {
	addSeeds(f, "*.json")
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","x5c":["AAAA"]}]}`))
	f.Add([]byte(`{"keys":[null,1,"x",{"kty":"EC","crv":"P-256"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range []origin{fromFile, fromRemote} {
			keys, skipped, err := parseJWKS(data, o)
			if err == nil && len(keys) == 0 {
				t.Fatalf("parseJWKS(origin %d) = no keys and no error", o)
			}
			for _, e := range skipped {
				if o == fromFile && !errors.Is(e, ErrUnsupportedKey) {
					t.Fatalf("parseJWKS(fromFile) skipped %v instead of failing", e)
				}
			}
			seen := map[string]bool{}
			for _, k := range keys {
				if err := checkKey(k); err != nil {
					t.Fatalf("parseJWKS accepted key %q that checkKey refuses: %v", k.KeyID, err)
				}
				if seen[k.KeyID] {
					t.Fatalf("parseJWKS accepted kid %q twice", k.KeyID)
				}
				seen[k.KeyID] = true
				if _, secret := k.Key.([]byte); secret && o == fromRemote {
					t.Fatalf("parseJWKS(fromRemote) accepted an oct key")
				}
			}
		}
	})
}

func FuzzParsePEM(f *testing.F) {
	addSeeds(f, "*.pem")
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parsePEM(data, "kid")
		if err != nil {
			if k != nil {
				t.Fatal("parsePEM returned a key and an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrWeakKey) && !errors.Is(err, ErrPrivateKey) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("parsePEM error %v wraps no sentinel", err)
			}
			return
		}
		if err := checkKey(k); err != nil {
			t.Fatalf("parsePEM accepted a key checkKey refuses: %v", err)
		}
	})
}

func addSeeds(f *testing.F, glob string) {
	names, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseSPIFFEBundle: a trust bundle from a bundle endpoint or a file never panics, and
// what it yields passes the key checks like any JWKS.
func FuzzParseSPIFFEBundle(f *testing.F) {
	f.Add([]byte(`{"spiffe_refresh_hint":60,"keys":[{"kty":"EC","crv":"P-256","use":"jwt-svid","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"use":"x509-svid"},{"use":"jwt-svid","kty":"oct","k":"AAAA"},null]}`))
	f.Add([]byte(`{"spiffe_refresh_hint":-1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range []origin{fromFile, fromRemote} {
			keys, _, hint, err := parseSPIFFEBundle(data, o)
			if err == nil && len(keys) == 0 {
				t.Fatalf("parseSPIFFEBundle(origin %d) = no keys and no error", o)
			}
			if hint < 0 {
				t.Fatalf("parseSPIFFEBundle(origin %d) hint %v", o, hint)
			}
			for _, k := range keys {
				if err := checkKey(k); err != nil {
					t.Fatalf("parseSPIFFEBundle accepted key %q that checkKey refuses: %v", k.KeyID, err)
				}
			}
		}
	})
}
