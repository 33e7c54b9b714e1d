package extauthz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

const dpopConfig = `
providers:
- name: dpop
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  dpop: {max_age: 60s}
- name: required
  issuer: https://required.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  dpop: {required: true, algorithms: [ES256]}
- name: plain
  issuer: https://plain.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: api
  match: {path_prefix: /}
  require: {}
`

// dpopClient is a DPoP client: its key pair and the thumbprint tokens are bound to.
type dpopClient struct {
	key *ecdsa.PrivateKey
	jwk map[string]any // the public JWK, as a proof header carries it
	jkt string
}

func newDPoPClient(t testing.TB) dpopClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &k.PublicKey}
	b, _ := pub.MarshalJSON()
	var m map[string]any
	json.Unmarshal(b, &m)
	sum, _ := pub.Thumbprint(crypto.SHA256)
	return dpopClient{key: k, jwk: m, jkt: base64.RawURLEncoding.EncodeToString(sum)}
}

// proof makes a DPoP proof for GET https://api.example.com/api/items (what envoyRequest
// describes) and token at testNow; edit may change the header and claims.
func (c dpopClient) proof(t testing.TB, token string, edit func(header, claims map[string]any)) string {
	t.Helper()
	ath := sha256.Sum256([]byte(token))
	header := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": c.jwk}
	claims := map[string]any{
		"jti": rand.Text(), "htm": "GET", "htu": "https://api.example.com/api/items",
		"iat": testNow.Unix(), "ath": base64.RawURLEncoding.EncodeToString(ath[:]),
	}
	if edit != nil {
		edit(header, claims)
	}
	return signJSON(t, header["alg"].(string), c.key, dropNils(header), dropNils(claims))
}

// boundToken is a token of iss bound to jkt.
func boundToken(t testing.TB, iss, jkt string) string {
	return sig.mint(t, "ES256", "ec256", func(_, c map[string]any) {
		c["iss"] = iss
		if jkt != "" {
			c["cnf"] = map[string]any{"jkt": jkt}
		}
	})
}

func dpopHeaders(token, proof string) []string {
	h := hdrs("authorization", "DPoP "+token)
	if proof != "" {
		h = append(h, "dpop", proof)
	}
	return h
}

func newDPoPPolicy(t testing.TB, extra string, opts ...PolicyOption) *Policy {
	t.Helper()
	cfg, err := config.Parse([]byte("grpc_address: 127.0.0.1:0\n"+extra+dpopConfig), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(cfg, map[string]KeySource{
		"dpop": newFakeKeys("ec256"), "required": newFakeKeys("ec256"), "plain": newFakeKeys("ec256"),
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDPoP: RFC 9449 §4.3 and §7 through Check, with the hidden dangers of the issue: a
// private key in the proof's jwk, an htu with another query or fragment.
func TestDPoP(t *testing.T) {
	p := newDPoPPolicy(t, "")
	c, other := newDPoPClient(t), newDPoPClient(t)
	tok := boundToken(t, "https://issuer.example", c.jkt)
	set := func(kv ...any) func(h, cl map[string]any) {
		return func(h, cl map[string]any) {
			for i := 0; i+1 < len(kv); i += 2 {
				name := kv[i].(string)
				if v, ok := strings.CutPrefix(name, "h."); ok {
					h[v] = kv[i+1]
				} else {
					cl[name] = kv[i+1]
				}
			}
		}
	}
	privateJWK := map[string]any{}
	for k, v := range c.jwk {
		privateJWK[k] = v
	}
	priv := jose.JSONWebKey{Key: c.key}
	pb, _ := priv.MarshalJSON()
	var pm map[string]any
	json.Unmarshal(pb, &pm)
	privateJWK["d"] = pm["d"]
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	replayed := c.proof(t, tok, nil)

	tests := []struct {
		name    string
		headers []string
		method  string
		want    Reason
	}{
		{"valid proof", dpopHeaders(tok, c.proof(t, tok, nil)), "", ReasonAllowed},
		{"another valid proof (cached token)", dpopHeaders(tok, c.proof(t, tok, nil)), "", ReasonAllowed},
		{"first use", dpopHeaders(tok, replayed), "", ReasonAllowed},
		{"replayed proof", dpopHeaders(tok, replayed), "", ReasonDPoPReplay},
		{"htu with another query (ignored, RFC 9449 §4.3)", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://api.example.com/api/items?x=1"))), "", ReasonAllowed},
		{"htu with a fragment (ignored)", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://api.example.com/api/items#frag"))), "", ReasonAllowed},
		{"htu with the default port and upper case host", dpopHeaders(tok, c.proof(t, tok, set("htu", "HTTPS://API.example.com:443/api/items"))), "", ReasonAllowed},
		{"htu with %-encoded unreserved", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://api.example.com/api/%69tems"))), "", ReasonAllowed},
		{"htu of another path", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://api.example.com/api/other"))), "", ReasonDPoPMismatch},
		{"htu of another path hidden in a fragment", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://api.example.com/admin#/api/items"))), "", ReasonDPoPMismatch},
		{"htu of another host", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://evil.example/api/items"))), "", ReasonDPoPMismatch},
		{"htu with userinfo", dpopHeaders(tok, c.proof(t, tok, set("htu", "https://api.example.com@evil.example/api/items"))), "", ReasonDPoPMismatch},
		{"htu over http", dpopHeaders(tok, c.proof(t, tok, set("htu", "http://api.example.com/api/items"))), "", ReasonDPoPMismatch},
		{"htu relative", dpopHeaders(tok, c.proof(t, tok, set("htu", "/api/items"))), "", ReasonDPoPMismatch},
		{"htm POST for a GET", dpopHeaders(tok, c.proof(t, tok, set("htm", "POST"))), "", ReasonDPoPMismatch},
		{"htm get in lower case", dpopHeaders(tok, c.proof(t, tok, set("htm", "get"))), "", ReasonDPoPMismatch},
		{"ath of another token", dpopHeaders(tok, c.proof(t, tok, set("ath", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"))), "", ReasonDPoPMismatch},
		{"no ath", dpopHeaders(tok, c.proof(t, tok, set("ath", nil))), "", ReasonDPoPProof},
		{"no jti", dpopHeaders(tok, c.proof(t, tok, set("jti", nil))), "", ReasonDPoPProof},
		{"iat 2 minutes ago", dpopHeaders(tok, c.proof(t, tok, set("iat", testNow.Unix()-120))), "", ReasonDPoPStale},
		{"iat a minute ahead", dpopHeaders(tok, c.proof(t, tok, set("iat", testNow.Unix()+60))), "", ReasonDPoPStale},
		{"iat a string", dpopHeaders(tok, c.proof(t, tok, set("iat", "now"))), "", ReasonDPoPProof},
		{"a private key in the jwk", dpopHeaders(tok, c.proof(t, tok, set("h.jwk", privateJWK))), "", ReasonDPoPProof},
		{"no jwk", dpopHeaders(tok, c.proof(t, tok, set("h.jwk", nil))), "", ReasonDPoPProof},
		{"a kid instead of the key", dpopHeaders(tok, c.proof(t, tok, set("h.kid", "k1"))), "", ReasonDPoPProof},
		{"typ JWT", dpopHeaders(tok, c.proof(t, tok, set("h.typ", "JWT"))), "", ReasonDPoPProof},
		{"alg ES384 with a P-256 key", dpopHeaders(tok, signJSON(t, "ES384", p384, map[string]any{"typ": "dpop+jwt", "alg": "ES384", "jwk": c.jwk}, map[string]any{"jti": "x", "htm": "GET", "htu": "https://api.example.com/api/items", "iat": testNow.Unix(), "ath": "x"})), "", ReasonDPoPProof},
		{"alg none", dpopHeaders(tok, unsigned(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": c.jwk}, map[string]any{"jti": "x"}, "")), "", ReasonDPoPProof},
		{"signed by another key", dpopHeaders(tok, func() string {
			pr := c.proof(t, tok, nil)
			o := other.proof(t, tok, nil)
			return pr[:strings.LastIndexByte(pr, '.')] + o[strings.LastIndexByte(o, '.'):]
		}()), "", ReasonDPoPProof},
		{"two DPoP headers", append(dpopHeaders(tok, c.proof(t, tok, nil)), "dpop", c.proof(t, tok, nil)), "", ReasonDPoPProof},
		{"no DPoP header", dpopHeaders(tok, ""), "", ReasonDPoPProofMissing},
		{"the proof of another key", dpopHeaders(tok, other.proof(t, tok, nil)), "", ReasonDPoPKey},
		{"an unbound token with a proof", dpopHeaders(boundToken(t, "https://issuer.example", ""), c.proof(t, boundToken(t, "https://issuer.example", ""), nil)), "", ReasonDPoPKey},
		{"a bound token as a bearer token", bearer(tok), "", ReasonDPoPAsBearer},
		{"an unbound bearer token where DPoP is optional", bearer(boundToken(t, "https://issuer.example", "")), "", ReasonAllowed},
		{"an unbound bearer token where DPoP is required", bearer(boundToken(t, "https://required.example", "")), "", ReasonDPoPRequired},
		{"a bound token where DPoP is required", dpopHeaders(boundToken(t, "https://required.example", c.jkt), c.proof(t, boundToken(t, "https://required.example", c.jkt), nil)), "", ReasonDPoPProof}, // ath is per token: see below
		{"a bound bearer token of a provider without dpop", bearer(boundToken(t, "https://plain.example", c.jkt)), "", ReasonDPoPAsBearer},
	}
	// The required provider's bound token with a proof made for that very token.
	req := boundToken(t, "https://required.example", c.jkt)
	tests[len(tests)-2].headers = dpopHeaders(req, c.proof(t, req, nil))
	tests[len(tests)-2].want = ReasonAllowed
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := check(t, p, envoyRequest{headers: tc.headers, method: tc.method}.proto())
			if d.Reason != tc.want {
				t.Errorf("Check(%s) = %s, want %s", tc.name, d.Reason, tc.want)
			}
		})
	}
}

// TestDPoPChallenges: WWW-Authenticate for DPoP providers (RFC 9449 §7.1).
func TestDPoPChallenges(t *testing.T) {
	p := newDPoPPolicy(t, "")
	c := newDPoPClient(t)
	tok := boundToken(t, "https://issuer.example", c.jkt)
	algs := `algs="` + strings.Join(config.DPoPAlgorithms, " ") + `"`
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"no token", nil, `Bearer realm="dpop", DPoP realm="dpop", ` + algs},
		{"a bad proof", dpopHeaders(tok, c.proof(t, tok, func(h, _ map[string]any) { h["typ"] = "JWT" })),
			`DPoP realm="dpop", error="invalid_dpop_proof", error_description="the DPoP proof is invalid", ` + algs},
		{"required, bearer", bearer(boundToken(t, "https://required.example", "")),
			`DPoP realm="required", error="invalid_token", error_description="a DPoP-bound token is required", algs="ES256"`},
	} {
		resp, d := check(t, p, envoyRequest{headers: tc.headers}.proto())
		got := ""
		for _, h := range resp.GetDeniedResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				got = h.GetHeader().GetValue()
			}
		}
		if got != tc.want {
			t.Errorf("Check(%s) %s: WWW-Authenticate\n got %s\nwant %s", tc.name, d.Reason, got, tc.want)
		}
	}
}

// TestDPoPNonces: stateless server nonces, checked by another replica with the same
// secret, good in their window and the next, refused after, or under another secret.
func TestDPoPNonces(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	nonceCfg := "dpop: {nonce: {secret_file: unused, lifetime: 5m}}\n"
	a := newDPoPPolicy(t, nonceCfg, WithDPoPNonceSecrets([][]byte{secret}))
	b := newDPoPPolicy(t, nonceCfg, WithDPoPNonceSecrets([][]byte{[]byte(strings.Repeat("n", 32)), secret})) // rotated: old secret still accepted
	other := newDPoPPolicy(t, nonceCfg, WithDPoPNonceSecrets([][]byte{[]byte(strings.Repeat("o", 32))}))
	c := newDPoPClient(t)
	tok := boundToken(t, "https://issuer.example", c.jkt)

	resp, d := check(t, a, envoyRequest{headers: dpopHeaders(tok, c.proof(t, tok, nil))}.proto())
	nonce := ""
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "dpop-nonce" {
			nonce = h.GetHeader().GetValue()
		}
		if h.GetHeader().GetKey() == "www-authenticate" && !strings.Contains(h.GetHeader().GetValue(), `error="use_dpop_nonce"`) {
			t.Errorf("WWW-Authenticate %q, want error=\"use_dpop_nonce\"", h.GetHeader().GetValue())
		}
	}
	if d.Reason != ReasonDPoPNonce || nonce == "" || d.HTTPStatus != 401 {
		t.Fatalf("Check(proof without nonce) = %s %d, DPoP-Nonce %q; want %s 401 and a nonce", d.Reason, d.HTTPStatus, nonce, ReasonDPoPNonce)
	}
	withNonce := func(n string) []string {
		return dpopHeaders(tok, c.proof(t, tok, func(_, cl map[string]any) { cl["nonce"] = n }))
	}
	n := &nonces{secrets: [][]byte{secret}, lifetime: 5 * time.Minute}
	for _, tc := range []struct {
		name string
		p    *Policy
		n    string
		want Reason
	}{
		{"the nonce, same replica", a, nonce, ReasonAllowed},
		{"the nonce, another replica with the secret", b, nonce, ReasonAllowed},
		{"the nonce, a replica with another secret", other, nonce, ReasonDPoPNonce},
		{"last window's nonce", a, n.make(secret, n.window(testNow)-1), ReasonAllowed},
		{"a nonce two windows old", a, n.make(secret, n.window(testNow)-2), ReasonDPoPNonce},
		{"a nonce from the future", a, n.make(secret, n.window(testNow)+1), ReasonDPoPNonce},
		{"garbage", a, "bm9wZQ", ReasonDPoPNonce},
	} {
		if _, d := check(t, tc.p, envoyRequest{headers: withNonce(tc.n)}.proto()); d.Reason != tc.want {
			t.Errorf("Check(%s) = %s, want %s", tc.name, d.Reason, tc.want)
		}
	}
}

// sharedStore is an in-memory ReplayStore two policies share, as two replicas share Redis
// (the Redis store itself is tested against a real server in package replay and envoy).
type sharedStore struct{ seen seenProofs }

func (s *sharedStore) FirstUse(_ context.Context, key string, ttl time.Duration) (bool, error) {
	return s.seen.firstUse(key, testNow, ttl)
}

// TestDPoPReplicas: without a shared store a proof replayed through another replica gets
// through (the documented trade-off); with one, it does not.
func TestDPoPReplicas(t *testing.T) {
	c := newDPoPClient(t)
	tok := boundToken(t, "https://issuer.example", c.jkt)
	store := &sharedStore{}
	for _, tc := range []struct {
		name string
		a, b *Policy
		want Reason
	}{
		{"per-replica memory", newDPoPPolicy(t, ""), newDPoPPolicy(t, ""), ReasonAllowed},
		{"shared store", newDPoPPolicy(t, "", WithReplayStore(store)), newDPoPPolicy(t, "", WithReplayStore(store)), ReasonDPoPReplay},
	} {
		proof := c.proof(t, tok, nil)
		if _, d := check(t, tc.a, envoyRequest{headers: dpopHeaders(tok, proof)}.proto()); d.Reason != ReasonAllowed {
			t.Fatalf("%s: first use = %s", tc.name, d.Reason)
		}
		if _, d := check(t, tc.b, envoyRequest{headers: dpopHeaders(tok, proof)}.proto()); d.Reason != tc.want {
			t.Errorf("%s: the proof replayed through another replica = %s, want %s", tc.name, d.Reason, tc.want)
		}
	}
}

// FuzzDPoPProof: verifyProof never panics, and what it accepts verifies, on its own, with
// the public key in its header, whose thumbprint it returns.
func FuzzDPoPProof(f *testing.F) {
	c := newDPoPClient(f)
	tok := boundToken(f, "https://issuer.example", c.jkt)
	f.Add(c.proof(f, tok, nil))
	f.Add(c.proof(f, tok, func(h, _ map[string]any) { h["typ"] = "JWT" }))
	f.Add("e30.e30.e30")
	algs := []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}
	f.Fuzz(func(t *testing.T, raw string) {
		pf, err := verifyProof(raw, algs)
		if err != nil {
			return
		}
		jws, err := jose.ParseSigned(raw, algs)
		if err != nil || len(jws.Signatures) != 1 {
			t.Fatalf("verifyProof(%q) accepted what go-jose cannot parse: %v", raw, err)
		}
		jwk := jws.Signatures[0].Header.JSONWebKey
		if jwk == nil || !jwk.IsPublic() {
			t.Fatalf("verifyProof(%q) accepted a proof without a public jwk", raw)
		}
		if _, err := jws.Verify(jwk.Key); err != nil {
			t.Fatalf("verifyProof(%q) accepted a signature that does not verify: %v", raw, err)
		}
		sum, _ := jwk.Thumbprint(crypto.SHA256)
		if pf.jkt != base64.RawURLEncoding.EncodeToString(sum) {
			t.Fatalf("verifyProof(%q) jkt %s is not the jwk's thumbprint", raw, pf.jkt)
		}
	})
}
