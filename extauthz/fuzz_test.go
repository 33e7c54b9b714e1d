package extauthz

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// fuzzSeeds are credentials worth mutating: valid tokens of every key type and the attacks
// of TestVerifyHardening.
func fuzzSeeds(t testing.TB) []string {
	valid := sig.mint(t, "RS256", "rsa", nil)
	h, p, s := segments(valid)
	rsaPub := &privateKey("rsa").(*rsa.PrivateKey).PublicKey
	der, _ := x509.MarshalPKIXPublicKey(rsaPub)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	scoped := func(_, c map[string]any) { c["scope"] = "admin" }
	return []string{
		valid,
		sig.mint(t, "PS256", "rsa", nil),
		sig.mint(t, "ES256", "ec256", scoped),
		sig.mint(t, "EdDSA", "ed", nil),
		sig.mint(t, "HS256", "hs256", scoped),
		sig.mint(t, "ES256", "ec256", func(h, _ map[string]any) { h["kid"] = nil }),
		unsigned(t, map[string]any{"alg": "none", "kid": "rsa"}, sig.claims(), ""),
		unsigned(t, map[string]any{"alg": "NONE", "kid": "rsa"}, sig.claims(), s),
		signJSON(t, "HS256", rsaPEM, map[string]any{"alg": "HS256", "kid": "rsa"}, sig.claims()),
		sig.mint(t, "RS256", "attacker-rsa", func(h, _ map[string]any) { h["kid"], h["jwk"] = "rsa", verificationKey("attacker-rsa", "") }),
		sig.mint(t, "ES384", "ec256", nil),
		h + "." + p + "." + s + "==",
		h + "." + b64([]byte(`{"iss":"https://issuer.example","sub":"admin","aud":"demo-api","exp":9999999999}`)) + "." + s,
		jsonSerialization(valid),
	}
}

// fuzzConfig reads tokens from a header, a cookie and the query, and has rules of every
// kind: public, token required, token with a scope, optional.
const fuzzConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [RS256, PS256, ES256, EdDSA, HS256]
  keys: [{jwks_file: unused.json}]
  token_sources:
  - {header: authorization, prefix: Bearer}
  - {cookie: access_token}
  - {query: access_token}
  claims_to_headers: {sub: x-jwt-sub}
- name: tenants
  issuer: https://login.example/{tenantid}/v2.0
  issuer_aliases: [login.example]
  tenants: [contoso]
  audiences: [demo-api]
  audience_claims: [aud, client_id]
  algorithms: [RS256, ES256]
  keys: [{jwks_file: unused.json}]
- name: spire
  spiffe_trust_domain: example.org
  audiences: [demo-api]
  algorithms: [ES256, EdDSA]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {/kubernetes.io/namespace: x-namespace}
rules:
- name: public
  match: {path_prefix: /public}
  action: allow
- name: admin
  match: {path_prefix: /admin}
  require: {scopes: [admin]}
- name: optional
  match: {path_prefix: /optional}
  require: {optional: true}
- name: api
  match: {path_prefix: /api}
  require: {}
`

// fuzzKids are the keys configured in fuzzConfig.
var fuzzKids = []string{"rsa", "ec256", "ed", "hs256"}

// FuzzToken: extraction and parsing never panic, and what they accept has the properties
// the verifier relies on.
func FuzzToken(f *testing.F) {
	for _, tok := range fuzzSeeds(f) {
		f.Add("Bearer "+tok, "access_token="+tok, "/api?access_token="+url.QueryEscape(tok))
	}
	f.Add("bearer   a.b.c", "theme=dark; access_token=\"a.b.c\"", "/%61dmin/../x//y/./z?a=1&access%5Ftoken=a%2eb.c")
	f.Add("Bearer a.b.c,Bearer d.e.f", "access_token=a; access_token=b", "/api?access_token=a&access_token=b")
	f.Add("Basic eA==", "", "//public/%2e%2e/admin")
	sources := []tokenSource{
		newTokenSource(config.TokenSource{Header: "authorization", Prefix: "Bearer"}),
		newTokenSource(config.TokenSource{Cookie: "access_token"}),
		newTokenSource(config.TokenSource{Query: "access_token"}),
	}
	const max = 4096
	f.Fuzz(func(t *testing.T, authz, cookie, path string) {
		for _, raw := range []bool{false, true} {
			r := newRequest(envoyRequest{path: path, rawHeader: raw, headers: hdrs("authorization", authz, "cookie", cookie)}.proto().GetAttributes())
			tok, src, found, err := extract(r, sources, max)
			switch {
			case err != nil && (found || tok != ""):
				t.Fatalf("extract = %q, %v, %v: a token with an error", tok, found, err)
			case found && (tok == "" || len(tok) > max):
				t.Fatalf("extract = %q: empty or too long", tok)
			case found && src.kind == fromHeader && strings.ContainsAny(tok, ", \t"):
				// Envoy joins repeated headers with "," (§6.7): that is two credentials.
				t.Fatalf("extract = %q from a header: two credentials or a split one", tok)
			case found:
				checkParsed(t, tok)
			}
			if m := r.matchPath; !strings.HasPrefix(m, "/") || strings.Contains(m, "//") ||
				strings.Contains(m, "/./") || strings.Contains(m, "/../") || normalizePath(m) != m {
				t.Fatalf("normalizePath(%q) = %q: not normal", r.path, m)
			}
		}
		checkParsed(t, authz)
	})
}

// checkParsed: a token parseToken accepts has exactly one encoding (RFC 7515 §2 strict
// base64url, so it cannot be altered without changing its bytes) and a usable header.
func checkParsed(t *testing.T, raw string) {
	pt, err := parseToken(raw)
	if err != nil {
		return
	}
	h, p, s := segments(raw)
	payload, err := strictB64.DecodeString(p)
	if strings.Count(raw, ".") != 2 || h == "" || s == "" || err != nil || b64(payload) != p || pt.payload != p || pt.alg == "" || pt.claims == nil {
		t.Fatalf("parseToken(%q) accepted a token that is not strict compact JWS: %+v", raw, pt)
	}
}

// FuzzCheck: whatever the headers, cookies and path, a rule that needs a token allows only
// when a credential in the request carries a signature that one of the configured keys
// verifies, checked here independently with go-jose; a deny always has a non-zero status.
func FuzzCheck(f *testing.F) {
	p := newPolicy(f, fuzzConfig, map[string]KeySource{
		"demo": newFakeKeys(fuzzKids...), "tenants": newFakeKeys(fuzzKids...), "spire": newFakeKeys(fuzzKids...),
	})
	var keys []*jose.JSONWebKey
	for _, kid := range fuzzKids {
		keys = append(keys, verificationKey(kid, ""))
	}
	for i, tok := range fuzzSeeds(f) {
		path := []string{"/api/items", "/admin/users", "/optional", "/%61dmin"}[i%4]
		f.Add("Bearer "+tok, "", path, "", i%2 == 0)
		f.Add("", "access_token="+tok, path, "", i%2 == 1)
		f.Add("", "", path+"?access_token="+tok, "", false)
		f.Add("Bearer "+tok, "", path, "Bearer "+tok, true)
	}
	for _, claims := range []map[string]any{
		{"iss": "https://login.example/contoso/v2.0", "tid": "contoso", "aud": nil, "client_id": "demo-api"},
		{"iss": "login.example", "tid": "x"},
		{"iss": nil, "sub": "spiffe://example.org/ns/a/sa/b", "kubernetes.io": map[string]any{"namespace": "a"}},
	} {
		tok := sig.mint(f, "ES256", "ec256", func(_, c map[string]any) {
			for k, v := range claims {
				c[k] = v
			}
		})
		f.Add("Bearer "+tok, "", "/api/items", "", false)
	}
	f.Add("", "", "/public/../admin", "", false)
	f.Add("bearer  x.y.z", "access_token=", "/optional?access_token=", "Basic eA==", true)
	f.Fuzz(func(t *testing.T, authz, cookie, path, second string, raw bool) {
		var headers []string
		if authz != "" {
			headers = append(headers, "authorization", authz)
		}
		if second != "" {
			headers = append(headers, "authorization", second)
		}
		if cookie != "" {
			headers = append(headers, "cookie", cookie)
		}
		req := envoyRequest{path: path, headers: headers, rawHeader: raw}.proto()
		resp, d := p.Check(t.Context(), req, testNow)
		if err := envoyContract(resp, d); err != nil {
			t.Fatalf("Check(%q, %q, %q, %q) breaks the Envoy contract: %v", authz, cookie, path, second, err)
		}
		if !d.Allowed {
			return
		}
		switch d.Reason {
		case ReasonPublic:
			if d.Rule != "public" {
				t.Fatalf("Check(%q) = public allow by rule %q", path, d.Rule)
			}
			return
		case ReasonAnonymous:
			if d.Rule != "optional" {
				t.Fatalf("Check(%q) = anonymous allow by rule %q", path, d.Rule)
			}
			return
		case ReasonAllowed:
		default:
			t.Fatalf("Check(%q) = allow for %s, which no rule here can give", path, d.Reason)
		}
		if !someCredentialVerifies(keys, authz, second, cookie, path) {
			t.Fatalf("Check(authz %q, cookie %q, path %q, second %q) = allowed by %s, but no credential verifies with a configured key",
				authz, cookie, path, second, d.Rule)
		}
	})
}

// someCredentialVerifies looks at every run of token characters in the inputs (after
// query unescaping) and reports whether go-jose verifies any of them with one of keys.
func someCredentialVerifies(keys []*jose.JSONWebKey, inputs ...string) bool {
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA, jose.HS256}
	notToken := func(r rune) bool {
		return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	}
	for _, in := range inputs {
		variants := []string{in}
		if u, err := url.QueryUnescape(in); err == nil {
			variants = append(variants, u)
		}
		for _, v := range variants {
			for _, cand := range strings.FieldsFunc(v, notToken) {
				jws, err := jose.ParseSignedCompact(cand, algs)
				if err != nil {
					continue
				}
				for _, k := range keys {
					if _, err := jws.Verify(k.Key); err == nil {
						return true
					}
				}
			}
		}
	}
	return false
}
