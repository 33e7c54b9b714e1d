package extauthz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// jweConfig: enc accepts nested tokens besides plain ones; required takes only nested
// ones; plain knows nothing of encryption.
const jweConfig = `
providers:
- name: enc
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  encryption:
    key_algorithms: [RSA-OAEP-256, ECDH-ES, ECDH-ES+A256KW, dir]
    content_encryptions: [A256GCM, A128GCM, A256CBC-HS512]
    keys: [{jwks_file: unused.json}]
- name: required
  issuer: https://required.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  encryption:
    required: true
    key_algorithms: [RSA-OAEP-256]
    content_encryptions: [A256GCM]
    keys: [{jwks_file: unused.json}]
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

// decryptionKeys are the private keys of the enc and required providers, made once.
type decryptionKeys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	secret   []byte // dir with A256GCM
	secret64 []byte // dir with A256CBC-HS512
	required *rsa.PrivateKey
}

var testDecryptionKeys = sync.OnceValue(func() decryptionKeys {
	var k decryptionKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.required, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	k.secret, k.secret64 = bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 64)
	return k
})

// privateKeys is a KeySource of decryption keys by kid.
type privateKeys map[string]*jose.JSONWebKey

func (m privateKeys) Lookup(_ context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	if kid == "" && len(m) == 1 {
		for _, k := range m {
			return k, true, nil
		}
	}
	k, ok := m[kid]
	return k, ok, nil
}

func (m privateKeys) Ready() bool { return true }

func newJWEPolicy(t testing.TB) *Policy {
	t.Helper()
	k := testDecryptionKeys()
	enc := privateKeys{
		"rsa": {Key: k.rsa, KeyID: "rsa"}, "ec": {Key: k.ec, KeyID: "ec"},
		"dir": {Key: k.secret, KeyID: "dir"}, "dir64": {Key: k.secret64, KeyID: "dir64"},
	}
	cfg := newPolicyConfig(t, jweConfig)
	p, err := NewPolicy(cfg, map[string]KeySource{
		"enc": newFakeKeys("ec256"), "required": newFakeKeys("ec256"), "plain": newFakeKeys("ec256"),
	}, WithDecryptionKeys(map[string]KeySource{
		"enc": enc, "required": privateKeys{"req": {Key: k.required, KeyID: "req"}},
	}))
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

// encrypt wraps plaintext in a compact JWE for the recipient key kid.
func encrypt(t testing.TB, alg jose.KeyAlgorithm, enc jose.ContentEncryption, key any, kid string, plaintext []byte, opts *jose.EncrypterOptions) string {
	t.Helper()
	if opts == nil {
		opts = (&jose.EncrypterOptions{}).WithContentType("JWT")
	}
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withHeader replaces a compact JWE's protected header (which makes it fail to decrypt,
// so only checks made before decryption can answer).
func withHeader(jwe, header string) string {
	_, rest, _ := strings.Cut(jwe, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + rest
}

// TestJWE: nested tokens through Check, including the hidden dangers of RFC 8725 and the
// issue: an unsigned inner token, a compressed payload, algorithms off the allowlist, a
// key of the wrong type, a JWE inside a JWE.
func TestJWE(t *testing.T) {
	p := newJWEPolicy(t)
	k := testDecryptionKeys()
	inner := sig.mint(t, "ES256", "ec256", nil)
	innerOf := func(iss string) []byte {
		return []byte(sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["iss"] = iss }))
	}
	good := encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(inner), nil)
	unsignedInner := unsigned(t, map[string]any{"alg": "none"}, sig.claims(), "")
	noneInner := unsigned(t, map[string]any{"alg": "none", "kid": "ec256"}, sig.claims(), "c2ln")
	big := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["pad"] = strings.Repeat("a", 1<<20) })
	// One base64url letter of the ciphertext changed: the tag no longer authenticates it.
	tampered := []byte(good)
	ct := strings.LastIndexByte(good, '.') - 2
	tampered[ct] ^= 'A' ^ 'B' // A<->B, a<->b, ... stays in the base64url alphabet for letters
	if !isBase64URL(string(tampered)) || string(tampered) == good {
		tampered[ct] = map[bool]byte{true: 'A', false: 'B'}[good[ct] != 'A']
	}
	tests := []struct {
		name  string
		token string
		want  Reason
	}{
		{"RSA-OAEP-256 A256GCM", good, ReasonAllowed},
		{"ECDH-ES A128GCM", encrypt(t, jose.ECDH_ES, jose.A128GCM, &k.ec.PublicKey, "ec", []byte(inner), nil), ReasonAllowed},
		{"ECDH-ES+A256KW A256CBC-HS512", encrypt(t, jose.ECDH_ES_A256KW, jose.A256CBC_HS512, &k.ec.PublicKey, "ec", []byte(inner), nil), ReasonAllowed},
		{"dir A256GCM", encrypt(t, jose.DIRECT, jose.A256GCM, k.secret, "dir", []byte(inner), nil), ReasonAllowed},
		{"dir A256CBC-HS512", encrypt(t, jose.DIRECT, jose.A256CBC_HS512, k.secret64, "dir64", []byte(inner), nil), ReasonAllowed},
		{"cty at+jwt (oidc-provider's access tokens)", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(inner), (&jose.EncrypterOptions{}).WithContentType("at+jwt")), ReasonAllowed},
		{"cty application/at+jwt", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(inner), (&jose.EncrypterOptions{}).WithContentType("application/at+jwt")), ReasonAllowed},
		{"no cty", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(inner), &jose.EncrypterOptions{}), ReasonAllowed},
		{"plain JWS to a provider that also takes nested ones", inner, ReasonAllowed},
		{"plain JWS to a provider that requires encryption", string(innerOf("https://required.example")), ReasonEncryptionRequired},
		{"nested to the provider that requires it", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.required.PublicKey, "req", innerOf("https://required.example"), nil), ReasonAllowed},
		{"inner token unsigned (empty signature)", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(unsignedInner), nil), ReasonMalformedToken},
		{"inner token alg none", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(noneInner), nil), ReasonAlgorithm},
		{"inner token not a JWT", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(`{"sub":"alice"}`), nil), ReasonMalformedToken},
		{"a JWE inside a JWE", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(good), nil), ReasonMalformedToken},
		{"oversized compressed payload (zip DEF)", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(big),
			(&jose.EncrypterOptions{Compression: jose.DEFLATE}).WithContentType("JWT")), ReasonHeader},
		{"alg RSA-OAEP is not allowed", encrypt(t, jose.RSA_OAEP, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(inner), nil), ReasonAlgorithm},
		{"alg RSA1_5 is never allowed", encrypt(t, jose.RSA1_5, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(inner), nil), ReasonAlgorithm},
		{"enc A128CBC-HS256 is not allowed", encrypt(t, jose.RSA_OAEP_256, jose.A128CBC_HS256, &k.rsa.PublicKey, "rsa", []byte(inner), nil), ReasonAlgorithm},
		{"dir naming the RSA key (key-type binding)", encrypt(t, jose.DIRECT, jose.A256GCM, k.secret, "rsa", []byte(inner), nil), ReasonAlgorithm},
		{"RSA-OAEP-256 naming the shared key", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "dir", []byte(inner), nil), ReasonAlgorithm},
		{"dir A128GCM with a 32-byte key", withHeader(encrypt(t, jose.DIRECT, jose.A256GCM, k.secret, "dir", []byte(inner), nil), `{"alg":"dir","enc":"A128GCM","kid":"dir"}`), ReasonAlgorithm},
		{"unknown kid", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "nobody", []byte(inner), nil), ReasonUnknownDecryptionKey},
		{"encrypted to another key", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.required.PublicKey, "rsa", []byte(inner), nil), ReasonDecryption},
		{"tampered ciphertext", string(tampered), ReasonDecryption},
		{"encrypted to enc's key, a token of required", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", innerOf("https://required.example"), nil), ReasonEncryptedForOther},
		{"encrypted to enc's key, a token of plain", encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", innerOf("https://plain.example"), nil), ReasonEncryptedForOther},
		{"cty JOSE", withHeader(good, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa","cty":"JOSE"}`), ReasonType},
		{"cty JSON", withHeader(good, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa","cty":"JSON"}`), ReasonType},
		{"crit", withHeader(good, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa","crit":["exp"],"exp":1}`), ReasonHeader},
		{"zip in a forged header", withHeader(good, `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa","zip":"DEF"}`), ReasonHeader},
		{"duplicate header member", withHeader(good, `{"alg":"dir","alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa"}`), ReasonMalformedToken},
		{"no enc", withHeader(good, `{"alg":"RSA-OAEP-256","kid":"rsa"}`), ReasonMalformedToken},
		{"padded segment", strings.Replace(good, ".", "=.", 1), ReasonMalformedToken},
		{"empty ciphertext", func() string {
			s := strings.Split(good, ".")
			s[3] = ""
			return strings.Join(s, ".")
		}(), ReasonMalformedToken},
		{"six segments", good + ".x", ReasonMalformedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 { // the second answer may come from the cache: the same
				_, d := check(t, p, envoyRequest{headers: bearer(tc.token)}.proto())
				if d.Reason != tc.want {
					t.Fatalf("Check(%s) #%d = %s, want %s", tc.name, i+1, d.Reason, tc.want)
				}
				if i == 1 && tc.want == ReasonAllowed && !d.Cached {
					t.Errorf("Check(%s) again: not answered from the cache (the outer token is the key)", tc.name)
				}
			}
		})
	}
}

// TestJWEOff: without any provider configuring encryption a JWE is a malformed token.
func TestJWEOff(t *testing.T) {
	p := newPolicy(t, strings.Replace(jweConfig[:strings.Index(jweConfig, "  encryption:")], "name: enc", "name: plain", 1)+"rules: [{name: api, match: {path_prefix: /}, require: {}}]\n",
		map[string]KeySource{"plain": newFakeKeys("ec256")})
	k := testDecryptionKeys()
	jwe := encrypt(t, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", []byte(sig.mint(t, "ES256", "ec256", nil)), nil)
	if _, d := check(t, p, envoyRequest{headers: bearer(jwe)}.proto()); d.Reason != ReasonMalformedToken {
		t.Errorf("Check(JWE, no encryption configured) = %s, want %s", d.Reason, ReasonMalformedToken)
	}
}

// FuzzJWE: whatever a JWE-shaped credential becomes, Check keeps the Envoy contract and
// allows it only when go-jose, on its own, decrypts it with a configured key to a JWS that
// verifies with the signing key (fuzz workers make their own RSA and EC keys, so a seed
// made by another process may well not decrypt; the dir key is fixed).
func FuzzJWE(f *testing.F) {
	p := newJWEPolicy(f)
	k := testDecryptionKeys()
	inner := []byte(sig.mint(f, "ES256", "ec256", nil))
	f.Add(encrypt(f, jose.RSA_OAEP_256, jose.A256GCM, &k.rsa.PublicKey, "rsa", inner, nil))
	f.Add(encrypt(f, jose.ECDH_ES, jose.A128GCM, &k.ec.PublicKey, "ec", inner, nil))
	f.Add(encrypt(f, jose.DIRECT, jose.A256GCM, k.secret, "dir", inner, nil))
	f.Add("e30.e30.e30.e30.e30")
	algs := []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.ECDH_ES, jose.ECDH_ES_A256KW, jose.DIRECT}
	encs := []jose.ContentEncryption{jose.A256GCM, jose.A128GCM, jose.A256CBC_HS512}
	signer := verificationKey("ec256", "ES256")
	opens := func(tok string) bool {
		obj, err := jose.ParseEncryptedCompact(tok, algs, encs)
		if err != nil {
			return false
		}
		for _, key := range []any{k.rsa, k.ec, k.secret, k.secret64} {
			if plain, err := obj.Decrypt(key); err == nil {
				jws, err := jose.ParseSigned(string(plain), []jose.SignatureAlgorithm{jose.ES256})
				if err == nil {
					if _, err := jws.Verify(signer); err == nil {
						return true
					}
				}
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, tok string) {
		resp, d := p.Check(t.Context(), envoyRequest{headers: bearer(tok)}.proto(), testNow)
		if err := envoyContract(resp, d); err != nil {
			t.Fatalf("Check(%q) breaks the Envoy contract: %v", tok, err)
		}
		if d.Allowed && strings.Count(tok, ".") == 4 && !opens(strings.TrimSpace(tok)) {
			t.Fatalf("Check(%q) = allowed, but it does not decrypt to a verified JWS", tok)
		}
	})
}

// newPolicyConfig parses a configuration written as YAML (grpc_address is added).
func newPolicyConfig(t testing.TB, yamlText string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("grpc_address: 127.0.0.1:0\n"+yamlText), t.TempDir())
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return cfg
}
