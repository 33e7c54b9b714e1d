package extauthz

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// verifyConfig has three providers so that provider selection by iss can be observed:
// demo accepts every algorithm, strict only ES256 with a one-hour max_lifetime, and single
// holds one key and does not require exp.
const verifyConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api, other-api]
  algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512]
  keys: [{jwks_file: unused.json}]
- name: strict
  issuer: https://strict.example
  audiences: [strict-api]
  algorithms: [ES256]
  max_lifetime: 1h
  keys: [{jwks_file: unused.json}]
- name: single
  issuer: https://single.example
  audiences: [single-api]
  algorithms: [ES256]
  require_exp: false
  keys: [{jwks_file: unused.json}]
rules:
- name: strict-only
  match: {path_prefix: /strict}
  require: {providers: [strict]}
- name: api
  match: {path_prefix: /}
  require: {}
`

type verifyFixture struct {
	policy               *Policy
	demo, strict, single *fakeKeys
}

func newVerifyFixture(t testing.TB) verifyFixture {
	t.Helper()
	demo := newFakeKeys("rsa", "ec256", "ec384", "ec521", "ed", "hs256", "hs384", "hs512")
	demo.keys["rsa-rs256"] = verificationKey("rsa", "RS256") // a JWK with "alg": "RS256"
	f := verifyFixture{demo: demo, strict: newFakeKeys("ec256", "rsa"), single: newFakeKeys("ec256")}
	f.policy = newPolicy(t, verifyConfig, map[string]KeySource{"demo": f.demo, "strict": f.strict, "single": f.single})
	return f
}

// forStrict and forSingle point a token at another provider.
func forStrict(_, c map[string]any) { c["iss"], c["aud"] = "https://strict.example", "strict-api" }
func forSingle(_, c map[string]any) { c["iss"], c["aud"] = "https://single.example", "single-api" }

func TestVerifyAlgorithms(t *testing.T) {
	f := newVerifyFixture(t)
	for _, tc := range []struct{ alg, kid string }{
		{"RS256", "rsa"}, {"RS384", "rsa"}, {"RS512", "rsa"},
		{"PS256", "rsa"}, {"PS384", "rsa"}, {"PS512", "rsa"},
		{"ES256", "ec256"}, {"ES384", "ec384"}, {"ES512", "ec521"},
		{"EdDSA", "ed"},
		{"HS256", "hs256"}, {"HS384", "hs384"}, {"HS512", "hs512"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			tok := sig.mint(t, tc.alg, tc.kid, nil)
			_, d := check(t, f.policy, envoyRequest{headers: bearer(tok)}.proto())
			if !d.Allowed || d.Reason != ReasonAllowed || d.Subject != "alice" || d.KID != tc.kid {
				t.Errorf("Check(%s token) = %+v, want allowed for alice with kid %s", tc.alg, d, tc.kid)
			}
		})
	}
}

// TestVerifyHardening has one row per attack or edge of RFC 7515, 7519 and 8725 §3.
func TestVerifyHardening(t *testing.T) {
	f := newVerifyFixture(t)
	now := testNow.Unix()
	rsaPub := &privateKey("rsa").(*rsa.PrivateKey).PublicKey
	pemDER, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pemDER})
	attackerJWK := verificationKey("attacker-rsa", "")

	// Any fetch of a jku or x5u URL is a failure: keys come only from configuration.
	var fetched atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"keys":[]}`))
	}))
	defer lure.Close()

	valid := sig.mint(t, "RS256", "rsa", nil)
	vh, vp, vs := segments(valid)
	raw := func(alg, kid, header, payload string) string {
		return signBytes(t, alg, privateKey(kid), []byte(header), []byte(payload))
	}
	payload := `{"iss":"https://issuer.example","sub":"alice","aud":"demo-api","iat":` +
		itoa(now) + `,"exp":` + itoa(now+300)

	tests := []struct {
		name   string
		token  string
		path   string // default /api/items
		reason Reason
		status int
	}{
		// alg
		{name: "alg none, empty signature", token: unsigned(t, map[string]any{"alg": "none"}, sig.claims(), ""), reason: ReasonMalformedToken, status: 401},
		{name: "alg none", token: unsigned(t, map[string]any{"alg": "none", "kid": "rsa"}, sig.claims(), vs), reason: ReasonAlgorithm, status: 401},
		{name: "alg None", token: unsigned(t, map[string]any{"alg": "None", "kid": "rsa"}, sig.claims(), vs), reason: ReasonAlgorithm, status: 401},
		{name: "alg NONE", token: unsigned(t, map[string]any{"alg": "NONE", "kid": "rsa"}, sig.claims(), vs), reason: ReasonAlgorithm, status: 401},
		{name: "alg lower case rs256", token: raw("RS256", "rsa", `{"alg":"rs256","kid":"rsa"}`, payload+`}`), reason: ReasonAlgorithm, status: 401},
		{name: "alg missing", token: raw("RS256", "rsa", `{"kid":"rsa"}`, payload+`}`), reason: ReasonMalformedToken, status: 401},
		{name: "alg not in provider allowlist", token: sig.mint(t, "RS256", "rsa", forStrict), path: "/strict", reason: ReasonAlgorithm, status: 401},
		{name: "RSA public key PEM as HMAC secret", token: signJSON(t, "HS256", rsaPEM, map[string]any{"alg": "HS256", "kid": "rsa"}, sig.claims()), reason: ReasonAlgorithm, status: 401},
		{name: "RSA modulus as HMAC secret", token: signJSON(t, "HS256", rsaPub.N.Bytes(), map[string]any{"alg": "HS256", "kid": "rsa"}, sig.claims()), reason: ReasonAlgorithm, status: 401},
		{name: "RSA public key PEM as HMAC secret without kid", token: signJSON(t, "HS256", rsaPEM, map[string]any{"alg": "HS256"}, sig.claims()), reason: ReasonUnknownKey, status: 401},
		{name: "HS512 with a 32-byte secret", token: sig.mint(t, "HS512", "hs256", nil), reason: ReasonAlgorithm, status: 401},
		{name: "ES384 with a P-256 key", token: sig.mint(t, "ES384", "ec256", nil), reason: ReasonAlgorithm, status: 401},
		{name: "ES256 with an RSA key", token: sig.mint(t, "ES256", "ec256", func(h, _ map[string]any) { h["kid"] = "rsa" }), reason: ReasonAlgorithm, status: 401},
		{name: "EdDSA with an EC key", token: sig.mint(t, "EdDSA", "ed", func(h, _ map[string]any) { h["kid"] = "ec256" }), reason: ReasonAlgorithm, status: 401},
		{name: "PS256 with a JWK whose alg is RS256", token: sig.mint(t, "PS256", "rsa", func(h, _ map[string]any) { h["kid"] = "rsa-rs256" }), reason: ReasonAlgorithm, status: 401},
		{name: "RS256 with a JWK whose alg is RS256", token: sig.mint(t, "RS256", "rsa", func(h, _ map[string]any) { h["kid"] = "rsa-rs256" }), reason: ReasonAllowed, status: 200},

		// keys named by the token
		{name: "embedded jwk with the attacker's key", token: sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["jwk"] = attackerJWK }), reason: ReasonUnknownKey, status: 401},
		{name: "embedded jwk with a configured kid", token: sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["jwk"], h["kid"] = attackerJWK, "rsa" }), reason: ReasonSignature, status: 401},
		{name: "jku", token: sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["jku"] = lure.URL + "/jwks.json" }), reason: ReasonUnknownKey, status: 401},
		{name: "x5u", token: sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["x5u"] = lure.URL + "/cert.pem" }), reason: ReasonUnknownKey, status: 401},
		{name: "x5c with the attacker's certificate", token: sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["x5c"], h["kid"] = []string{attackerCert(t)}, "rsa" }), reason: ReasonSignature, status: 401},
		{name: "unknown kid", token: sig.mint(t, "RS256", "rsa", func(h, _ map[string]any) { h["kid"] = "rsa-2019" }), reason: ReasonUnknownKey, status: 401},
		{name: "no kid, provider with one key", token: sig.mint(t, "ES256", "ec256", func(h, c map[string]any) { h["kid"] = nil; forSingle(h, c) }), reason: ReasonAllowed, status: 200},
		{name: "no kid, provider with several keys", token: sig.mint(t, "ES256", "ec256", func(h, _ map[string]any) { h["kid"] = nil }), reason: ReasonUnknownKey, status: 401},
		{name: "kid not a string", token: sig.mint(t, "RS256", "rsa", func(h, _ map[string]any) { h["kid"] = 7 }), reason: ReasonMalformedToken, status: 401},
		{name: "signed by another key", token: sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["kid"] = "rsa" }), reason: ReasonSignature, status: 401},
		{name: "HMAC signed with another secret", token: sig.mint(t, "HS256", "hs384", func(h, _ map[string]any) { h["kid"] = "hs256" }), reason: ReasonSignature, status: 401},
		{name: "payload swapped after signing", token: vh + "." + b64([]byte(`{"iss":"https://issuer.example","sub":"admin","aud":"demo-api","exp":`+itoa(now+300)+`}`)) + "." + vs, reason: ReasonSignature, status: 401},

		// JOSE header members we refuse
		{name: "crit", token: sig.mint(t, "RS256", "rsa", func(h, _ map[string]any) { h["crit"], h["exp"] = []string{"exp"}, now }), reason: ReasonHeader, status: 401},
		{name: "b64 false", token: sig.mint(t, "RS256", "rsa", func(h, _ map[string]any) { h["b64"] = false }), reason: ReasonHeader, status: 401},
		{name: "zip", token: sig.mint(t, "RS256", "rsa", func(h, _ map[string]any) { h["zip"] = "DEF" }), reason: ReasonHeader, status: 401},
		{name: "duplicate header name", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa","alg":"HS256"}`, payload+`}`), reason: ReasonMalformedToken, status: 401},
		{name: "header not an object", token: raw("RS256", "rsa", `["RS256"]`, payload+`}`), reason: ReasonMalformedToken, status: 401},

		// serialization
		{name: "padding on the signature", token: valid + strings.Repeat("=", (4-len(vs)%4)%4), reason: ReasonMalformedToken, status: 401},
		{name: "line break in the payload", token: vh + "." + vp[:10] + "\n" + vp[10:] + "." + vs, reason: ReasonMalformedToken, status: 401},
		{name: "carriage return in the header", token: vh[:5] + "\r" + vh[5:] + "." + vp + "." + vs, reason: ReasonMalformedToken, status: 401},
		{name: "space in the token", token: vh + "." + vp[:10] + " " + vp[10:] + "." + vs, reason: ReasonMalformedToken, status: 401},
		{name: "standard base64 alphabet", token: stdAlphabet(t, valid), reason: ReasonMalformedToken, status: 401},
		{name: "non-canonical trailing bits", token: vh + "." + vp + "." + withTrailingBit(t, vs), reason: ReasonMalformedToken, status: 401},
		{name: "two segments", token: vh + "." + vp, reason: ReasonMalformedToken, status: 401},
		{name: "four segments", token: valid + "." + vs, reason: ReasonMalformedToken, status: 401},
		{name: "five segments (JWE)", token: vh + ".." + vp + "." + vs + "." + vs, reason: ReasonMalformedToken, status: 401},
		{name: "empty payload segment", token: vh + ".." + vs, reason: ReasonMalformedToken, status: 401},

		// payload
		{name: "payload is an array", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, `[{"iss":"https://issuer.example"}]`), reason: ReasonClaims, status: 401},
		{name: "payload is a string", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, `"https://issuer.example"`), reason: ReasonClaims, status: 401},
		{name: "payload is not JSON", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, `iss=https://issuer.example`), reason: ReasonClaims, status: 401},
		{name: "payload with trailing data", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, payload+`}{}`), reason: ReasonClaims, status: 401},
		{name: "payload not UTF-8", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, payload+",\"name\":\"al\xffce\"}"), reason: ReasonClaims, status: 401},
		{name: "duplicate claim", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, payload+`,"sub":"admin"}`), reason: ReasonClaims, status: 401},
		{name: "duplicate claim through an escape", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, payload+`,"s\u0075b":"admin"}`), reason: ReasonClaims, status: 401},
		{name: "duplicate nested claim", token: raw("RS256", "rsa", `{"alg":"RS256","kid":"rsa"}`, payload+`,"realm_access":{"roles":["user"],"roles":["admin"]}}`), reason: ReasonClaims, status: 401},
		{name: "sub not a string", token: sig.mint(t, "RS256", "rsa", func(_, c map[string]any) { c["sub"] = 42 }), reason: ReasonClaims, status: 401},

		// typ
		{name: "typ JWT", token: withTyp(t, "JWT"), reason: ReasonAllowed, status: 200},
		{name: "typ at+jwt", token: withTyp(t, "at+jwt"), reason: ReasonAllowed, status: 200},
		{name: "typ application/jwt", token: withTyp(t, "application/jwt"), reason: ReasonAllowed, status: 200},
		{name: "typ application/at+jwt", token: withTyp(t, "application/at+jwt"), reason: ReasonAllowed, status: 200},
		{name: "typ jwt in lower case", token: withTyp(t, "jwt"), reason: ReasonAllowed, status: 200},
		{name: "typ AT+JWT in upper case", token: withTyp(t, "AT+JWT"), reason: ReasonAllowed, status: 200},
		{name: "typ absent", token: withTyp(t, nil), reason: ReasonAllowed, status: 200},
		{name: "typ JWE", token: withTyp(t, "JWE"), reason: ReasonType, status: 401},
		{name: "typ dpop+jwt", token: withTyp(t, "dpop+jwt"), reason: ReasonType, status: 401},
		{name: "typ logout+jwt", token: withTyp(t, "logout+jwt"), reason: ReasonType, status: 401},
		{name: "typ empty", token: withTyp(t, ""), reason: ReasonType, status: 401},
		{name: "typ not a string", token: withTyp(t, 1), reason: ReasonType, status: 401},

		// time claims (clock skew 30s)
		{name: "exp missing", token: withClaim(t, "exp", nil), reason: ReasonMissingExp, status: 401},
		{name: "exp missing, require_exp false", token: sig.mint(t, "ES256", "ec256", func(h, c map[string]any) { forSingle(h, c); c["exp"] = nil }), reason: ReasonAllowed, status: 200},
		{name: "expired within skew", token: withClaim(t, "exp", now-30), reason: ReasonAllowed, status: 200},
		{name: "expired beyond skew", token: withClaim(t, "exp", now-31), reason: ReasonExpired, status: 401},
		{name: "exp fractional", token: withClaim(t, "exp", float64(now)+0.5), reason: ReasonAllowed, status: 200},
		{name: "nbf in the future within skew", token: withClaim(t, "nbf", now+30), reason: ReasonAllowed, status: 200},
		{name: "nbf in the future beyond skew", token: withClaim(t, "nbf", now+31), reason: ReasonNotYetValid, status: 401},
		{name: "iat in the future within skew", token: withClaim(t, "iat", now+30), reason: ReasonAllowed, status: 200},
		{name: "iat in the future beyond skew", token: withClaim(t, "iat", now+31), reason: ReasonIssuedInFuture, status: 401},
		{name: "exp as a string", token: withClaim(t, "exp", itoa(now+300)), reason: ReasonClaims, status: 401},
		{name: "nbf as a string", token: withClaim(t, "nbf", itoa(now)), reason: ReasonClaims, status: 401},
		{name: "iat as a string", token: withClaim(t, "iat", itoa(now)), reason: ReasonClaims, status: 401},
		{name: "exp as a bool", token: withClaim(t, "exp", true), reason: ReasonClaims, status: 401},
		{name: "exp out of range", token: withClaim(t, "exp", 1e300), reason: ReasonClaims, status: 401},
		{name: "lifetime at max_lifetime", token: sig.mint(t, "ES256", "ec256", func(h, c map[string]any) { forStrict(h, c); c["exp"] = now + 3600 }), path: "/strict", reason: ReasonAllowed, status: 200},
		{name: "lifetime over max_lifetime", token: sig.mint(t, "ES256", "ec256", func(h, c map[string]any) { forStrict(h, c); c["exp"] = now + 7200 }), path: "/strict", reason: ReasonLifetime, status: 401},
		{name: "lifetime over max_lifetime without iat", token: sig.mint(t, "ES256", "ec256", func(h, c map[string]any) { forStrict(h, c); c["iat"], c["exp"] = nil, now+7200 }), path: "/strict", reason: ReasonLifetime, status: 401},

		// iss
		{name: "unknown issuer", token: withClaim(t, "iss", "https://evil.example"), reason: ReasonUnknownIssuer, status: 401},
		{name: "issuer with a trailing slash", token: withClaim(t, "iss", "https://issuer.example/"), reason: ReasonUnknownIssuer, status: 401},
		{name: "iss missing", token: withClaim(t, "iss", nil), reason: ReasonUnknownIssuer, status: 401},
		{name: "iss not a string", token: withClaim(t, "iss", []string{"https://issuer.example"}), reason: ReasonClaims, status: 401},
		{name: "issuer not accepted by the rule", token: sig.mint(t, "RS256", "rsa", nil), path: "/strict", reason: ReasonIssuerNotHere, status: 401},

		// aud
		{name: "aud string", token: withClaim(t, "aud", "other-api"), reason: ReasonAllowed, status: 200},
		{name: "aud array with a match", token: withClaim(t, "aud", []string{"billing", "demo-api"}), reason: ReasonAllowed, status: 200},
		{name: "aud string not ours", token: withClaim(t, "aud", "billing"), reason: ReasonAudience, status: 401},
		{name: "aud array without a match", token: withClaim(t, "aud", []string{"billing", "search"}), reason: ReasonAudience, status: 401},
		{name: "aud differs in case", token: withClaim(t, "aud", "Demo-API"), reason: ReasonAudience, status: 401},
		{name: "aud empty array", token: withClaim(t, "aud", []string{}), reason: ReasonAudience, status: 401},
		{name: "aud missing", token: withClaim(t, "aud", nil), reason: ReasonAudience, status: 401},
		{name: "aud a number", token: withClaim(t, "aud", 1), reason: ReasonClaims, status: 401},
		{name: "aud array with a number", token: withClaim(t, "aud", []any{"demo-api", 1}), reason: ReasonClaims, status: 401},
		{name: "aud array with an object", token: withClaim(t, "aud", []any{map[string]any{"x": "demo-api"}, "demo-api"}), reason: ReasonClaims, status: 401},
		{name: "aud of another provider", token: withClaim(t, "aud", "strict-api"), reason: ReasonAudience, status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := envoyRequest{path: tc.path, headers: bearer(tc.token), rawHeader: true}
			if tc.path == "" {
				req.path = "/api/items"
			}
			resp, d := check(t, f.policy, req.proto())
			if d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s) = %s %d, want %s %d", tc.name, d.Reason, d.HTTPStatus, tc.reason, tc.status)
			}
			if !d.Allowed && (d.Issuer != "" || d.Subject != "") {
				t.Errorf("Check(%s) reports iss %q sub %q of an unverified token", tc.name, d.Issuer, d.Subject)
			}
			if d.Allowed != (tc.status == 200) {
				t.Errorf("Check(%s).Allowed = %v, status %d", tc.name, d.Allowed, resp.GetStatus().GetCode())
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("jku/x5u URLs were fetched %d times, want never", n)
	}
}

func withTyp(t *testing.T, typ any) string {
	return sig.mint(t, "ES256", "ec256", func(h, _ map[string]any) { h["typ"] = typ })
}

func withClaim(t *testing.T, name string, v any) string {
	return sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c[name] = v })
}

func itoa(n int64) string { return big.NewInt(n).String() }

// stdAlphabet rewrites a token in the standard base64 alphabet (+ and /).
func stdAlphabet(t *testing.T, tok string) string {
	out := strings.NewReplacer("-", "+", "_", "/").Replace(tok)
	if out == tok {
		t.Fatal("token has no - or _ to rewrite; pick another")
	}
	return out
}

// withTrailingBit sets an unused low bit in the last character of a segment whose length
// is not a multiple of 4: a lax decoder ignores it, so the token would have two encodings.
func withTrailingBit(t *testing.T, seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatalf("segment of length %d has no trailing bits", len(seg))
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	out := seg[:len(seg)-1] + string(alphabet[last|1]) // bit 0 is always a trailing bit here
	// The lax decoder must still read the same bytes, or the row tests nothing.
	a, errA := base64.RawURLEncoding.DecodeString(seg)
	b, errB := base64.RawURLEncoding.DecodeString(out)
	if errA != nil || errB != nil || string(a) != string(b) {
		t.Fatalf("trailing-bit variant decodes differently: %v %v", errA, errB)
	}
	return out
}

// attackerCert is a self-signed certificate for the attacker's key, base64 DER as in x5c.
func attackerCert(t *testing.T) string {
	k := privateKey("attacker-rsa").(*rsa.PrivateKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer.example"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestVerifyProviderSelection: the unverified iss picks exactly one provider, and only that
// provider's key source is asked.
func TestVerifyProviderSelection(t *testing.T) {
	tests := []struct {
		name                 string
		path                 string
		edit                 func(h, c map[string]any)
		reason               Reason
		demo, strict, single int64
	}{
		{name: "demo token", path: "/api", reason: ReasonAllowed, demo: 1},
		{name: "strict token", path: "/strict", edit: forStrict, reason: ReasonAllowed, strict: 1},
		{name: "single token", path: "/api", edit: forSingle, reason: ReasonAllowed, single: 1},
		{name: "demo token where only strict is accepted", path: "/strict", reason: ReasonIssuerNotHere},
		{name: "unknown issuer", path: "/api", edit: func(_, c map[string]any) { c["iss"] = "https://evil.example" }, reason: ReasonUnknownIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t)
			tok := sig.mint(t, "ES256", "ec256", tc.edit)
			_, d := check(t, f.policy, envoyRequest{path: tc.path, headers: bearer(tok)}.proto())
			if d.Reason != tc.reason {
				t.Errorf("Check(%s) = %s, want %s", tc.name, d.Reason, tc.reason)
			}
			got := [3]int64{f.demo.lookups.Load(), f.strict.lookups.Load(), f.single.lookups.Load()}
			if want := [3]int64{tc.demo, tc.strict, tc.single}; got != want {
				t.Errorf("Check(%s) key lookups demo/strict/single = %v, want %v", tc.name, got, want)
			}
		})
	}
}

func TestVerifyKeysUnavailable(t *testing.T) {
	f := newVerifyFixture(t)
	f.demo.unavailable.Store(true)
	tok := sig.mint(t, "RS256", "rsa", nil)
	resp, d := check(t, f.policy, envoyRequest{headers: bearer(tok)}.proto())
	if d.Allowed || d.Reason != ReasonKeysUnavailable || d.HTTPStatus != 503 {
		t.Errorf("Check(keys unavailable) = %+v, want keys_unavailable 503", d)
	}
	if got := resp.GetStatus().GetCode(); got != 14 {
		t.Errorf("Check(keys unavailable) status code = %d, want 14 (UNAVAILABLE)", got)
	}
	if resp.GetOkResponse() != nil {
		t.Errorf("Check(keys unavailable) has ok_response %v, want none", resp.GetOkResponse())
	}
	if f.policy.Ready() {
		t.Errorf("Policy.Ready() = %v with demo keys unavailable, want false", f.policy.Ready())
	}
	// Another provider's tokens are unaffected.
	tok = sig.mint(t, "ES256", "ec256", forSingle)
	if _, d := check(t, f.policy, envoyRequest{headers: bearer(tok)}.proto()); !d.Allowed {
		t.Errorf("Check(single token while demo keys are down) = %s, want allowed", d.Reason)
	}
}
