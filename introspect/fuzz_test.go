package introspect

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzParseAnswer: any body either fails or yields an answer that agrees with the JSON:
// active only when the object's active member is the boolean true.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"exp":1800000000,"sub":"a"}`, `{"active":false}`, `{"active":"true"}`,
		`{"active":true,"exp":"soon"}`, `{"active":true,"exp":1e400}`, `null`, `[]`, `{"active":true}x`,
		`{"active":true,"active":false}`, `{"active":true,"exp":-1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAnswer(body)
		if err != nil {
			if a.Active {
				t.Fatal("error with an active answer")
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil {
			t.Fatalf("accepted %q, which encoding/json refuses", body)
		}
		if v, _ := m["active"].(bool); v != a.Active {
			t.Fatalf("%q: Active=%v, JSON says %v", body, a.Active, m["active"])
		}
	})
}

// FuzzSigningKey: any private_key_file content either is refused or gives a key that fits
// the algorithm keyFits accepted it for and signs an assertion; never a panic.
func FuzzSigningKey(f *testing.F) {
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE","kid":"1"}`), "ES256")
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`), "ES256")
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIE7Ww8h5w6d5lRkXy8XJ1u4cRSaVYYhkM1w3wrdr4hYk\n-----END PRIVATE KEY-----\n"), "EdDSA")
	f.Add([]byte("not a key"), "RS256")
	f.Fuzz(func(t *testing.T, data []byte, alg string) {
		key, _, err := parseSigningKey(data)
		if err != nil || keyFits(key, alg) != nil {
			return
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, nil)
		if err != nil {
			t.Fatalf("keyFits accepted a %T for %s, which go-jose cannot sign with: %v", key, alg, err)
		}
		if _, err := (&assertionSigner{signer: s, clientID: "rs", audience: "https://op.example"}).assertion(time.Now()); err != nil {
			t.Fatalf("assertion by a %T, %s: %v", key, alg, err)
		}
	})
}
