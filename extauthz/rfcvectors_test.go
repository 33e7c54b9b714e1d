package extauthz

import (
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestSignatureRFCExamples verifies the signed examples of the RFCs, made by other
// implementations, with their published keys: RFC 7515 A.1 (HS256) and A.3 (ES256), and RFC
// 8037 A.4 (Ed25519, whose payload is not JSON: only the signature is checked here). Each
// must verify, with go-jose agreeing, and fail with its last signature byte changed.
func TestSignatureRFCExamples(t *testing.T) {
	for _, c := range []struct {
		name, jwk, token string
		alg              jose.SignatureAlgorithm
	}{
		{"RFC 7515 A.1", `{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}`,
			"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
			jose.HS256},
		{"RFC 7515 A.3", `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`,
			"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
			jose.ES256},
		{"RFC 8037 A.4", `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
			"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
			jose.EdDSA},
	} {
		var key jose.JSONWebKey
		if err := json.Unmarshal([]byte(c.jwk), &key); err != nil {
			t.Fatalf("%s: key: %v", c.name, err)
		}
		if err := verifySignature(c.token, c.alg, &key); err != nil {
			t.Errorf("%s: %v, want it verified", c.name, err)
		}
		if !goJoseVerifies(c.token, c.alg, &key) {
			t.Errorf("%s: go-jose does not verify it", c.name)
		}
		if c.alg != jose.EdDSA { // the JWT examples parse, CRLF whitespace in the header and all
			if pt, err := parseToken(c.token); err != nil || pt.alg != string(c.alg) || pt.claims["iss"] != "joe" {
				t.Errorf("%s: parseToken = %+v, %v", c.name, pt, err)
			}
		}
		spoiled := []byte(c.token)
		spoiled[len(spoiled)-2] ^= 'A' ^ 'B' // a base64url letter for another
		if verifySignature(string(spoiled), c.alg, &key) == nil {
			t.Errorf("%s: verified with a signature byte changed", c.name)
		}
	}
}
