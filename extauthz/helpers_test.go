package extauthz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// testNow is the clock of every unit test: tokens are minted and checked against it.
var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testKeys are the private keys of testdata/keys/signers.jwks.json by kid, loaded once.
// They are committed so that fuzz corpus entries keep meaning the same thing.
var testKeys = sync.OnceValue(func() map[string]jose.JSONWebKey {
	data, err := os.ReadFile("testdata/keys/signers.jwks.json")
	if err != nil {
		panic(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		panic(err)
	}
	m := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		m[k.KeyID] = k
	}
	return m
})

// privateKey returns the signing key named kid (a crypto private key, or []byte for HMAC).
func privateKey(kid string) any {
	k, ok := testKeys()[kid]
	if !ok {
		panic("no test key " + kid)
	}
	return k.Key
}

// verificationKey is what a key source would publish for kid: the public half, or the
// secret for HMAC. alg, when set, becomes the JWK "alg" member.
func verificationKey(kid, alg string) *jose.JSONWebKey {
	k := testKeys()[kid]
	pub := k.Public()
	if !pub.Valid() { // symmetric: the secret is the verification key
		pub = k
	}
	pub.Algorithm = alg
	return &pub
}

// fakeKeys is a KeySource over a fixed map. The real key sources live in package keys and
// are tested there; here only the contract matters.
type fakeKeys struct {
	keys        map[string]*jose.JSONWebKey
	unavailable atomic.Bool
	lookups     atomic.Int64
}

var _ KeySource = (*fakeKeys)(nil)

// newFakeKeys holds the verification keys of the named test keys under the same kids.
func newFakeKeys(kids ...string) *fakeKeys {
	f := &fakeKeys{keys: make(map[string]*jose.JSONWebKey)}
	for _, kid := range kids {
		f.keys[kid] = verificationKey(kid, "")
	}
	return f
}

func (f *fakeKeys) Lookup(_ context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	f.lookups.Add(1)
	if f.unavailable.Load() {
		return nil, false, errors.New("fake: keys unavailable")
	}
	if kid == "" {
		if len(f.keys) != 1 {
			return nil, false, nil
		}
		for _, k := range f.keys {
			return k, true, nil
		}
	}
	k, ok := f.keys[kid]
	return k, ok, nil
}

func (f *fakeKeys) Ready() bool { return !f.unavailable.Load() }

// signer mints compact JWS tokens with the test keys. Its clock sets iat and exp.
type signer struct{ now func() time.Time }

var sig = signer{now: func() time.Time { return testNow }}

// claims returns a valid payload for the demo provider, issued now and valid for 5 minutes.
func (s signer) claims() map[string]any {
	now := s.now().Unix()
	return map[string]any{
		"iss": "https://issuer.example",
		"sub": "alice",
		"aud": "demo-api",
		"iat": now,
		"exp": now + 300,
	}
}

// mint signs a token with the test key kid using alg. The header is {alg, kid, typ: JWT};
// edit, when not nil, may change the header and the claims before signing (a nil value
// removes a member).
func (s signer) mint(t testing.TB, alg, kid string, edit func(header, claims map[string]any)) string {
	t.Helper()
	header := map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
	claims := s.claims()
	if edit != nil {
		edit(header, claims)
	}
	return signJSON(t, alg, privateKey(kid), dropNils(header), dropNils(claims))
}

func dropNils(m map[string]any) map[string]any {
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return m
}

// signJSON encodes header and claims and signs them with key.
func signJSON(t testing.TB, alg string, key any, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return signBytes(t, alg, key, h, c)
}

// signBytes signs the exact header and payload bytes, so tests can send what no JSON
// encoder would write (duplicate names, invalid UTF-8, arrays).
func signBytes(t testing.TB, alg string, key any, header, payload []byte) string {
	t.Helper()
	input := b64(header) + "." + b64(payload)
	sig, err := signature(alg, key, []byte(input))
	if err != nil {
		t.Fatalf("signing %s with %T: %v", alg, key, err)
	}
	return input + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signature computes a JWS signature (RFC 7518 §3) without go-jose, so the tests do not
// share the library's view of what a valid token is.
func signature(alg string, key any, input []byte) ([]byte, error) {
	var h crypto.Hash
	switch {
	case strings.HasSuffix(alg, "256"):
		h = crypto.SHA256
	case strings.HasSuffix(alg, "384"):
		h = crypto.SHA384
	case strings.HasSuffix(alg, "512"):
		h = crypto.SHA512
	}
	digest := func() []byte {
		d := h.New()
		d.Write(input)
		return d.Sum(nil)
	}
	switch {
	case strings.HasPrefix(alg, "HS"):
		secret, ok := key.([]byte)
		if !ok {
			return nil, fmt.Errorf("HMAC needs []byte, got %T", key)
		}
		m := hmac.New(h.New, secret)
		m.Write(input)
		return m.Sum(nil), nil
	case strings.HasPrefix(alg, "RS"):
		return rsa.SignPKCS1v15(nil, key.(*rsa.PrivateKey), h, digest())
	case strings.HasPrefix(alg, "PS"):
		return rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, digest(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case strings.HasPrefix(alg, "ES"):
		k := key.(*ecdsa.PrivateKey)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest())
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case alg == "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input), nil
	}
	return nil, fmt.Errorf("unknown alg %q", alg)
}

// unsigned builds header.payload.signature from JSON values and a literal signature
// segment, for tokens that need no valid signature (alg none and friends).
func unsigned(t testing.TB, header, claims map[string]any, sigSegment string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return b64(h) + "." + b64(c) + "." + sigSegment
}

// segments splits a compact token; tests use it to tamper with one part.
func segments(tok string) (header, payload, signature string) {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0], parts[1], parts[2]
}

// envoyRequest describes a CheckRequest the way Envoy builds one (envoy-extauthz.md §1):
// pseudo-headers in the map, host from :authority, the query inside path, x-request-id.
type envoyRequest struct {
	method    string // default GET
	host      string // default api.example.com
	path      string // default /api/items
	headers   []string
	rawHeader bool // encode_raw_headers: true, i.e. header_map with raw_value
	context   map[string]string
	principal string
}

// header pairs for envoyRequest.headers: name, value, name, value, ...
func hdrs(kv ...string) []string { return kv }

func bearer(tok string) []string { return hdrs("authorization", "Bearer "+tok) }

func (e envoyRequest) proto() *authv3.CheckRequest {
	method, host, path := e.method, e.host, e.path
	if method == "" {
		method = "GET"
	}
	if host == "" {
		host = "api.example.com"
	}
	if path == "" {
		path = "/api/items"
	}
	pairs := append([]string{
		":authority", host, ":method", method, ":path", path, ":scheme", "https",
		"user-agent", "curl/8.9.1", "x-forwarded-proto", "https",
		"x-request-id", "5d1f0c7e-3f6a-4d0b-9a51-7c1e2b3a4d5e",
	}, e.headers...)
	h := &authv3.AttributeContext_HttpRequest{
		Id: "14742916390426402391", Method: method, Path: path, Host: host,
		Scheme: "https", Protocol: "HTTP/1.1",
	}
	if e.rawHeader {
		hm := &corev3.HeaderMap{}
		for i := 0; i+1 < len(pairs); i += 2 {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: pairs[i], RawValue: []byte(pairs[i+1])})
		}
		h.HeaderMap = hm
	} else {
		// Envoy joins repeated headers with "," and no space (§1).
		h.Headers = make(map[string]string)
		for i := 0; i+1 < len(pairs); i += 2 {
			if prev, ok := h.Headers[pairs[i]]; ok {
				h.Headers[pairs[i]] = prev + "," + pairs[i+1]
			} else {
				h.Headers[pairs[i]] = pairs[i+1]
			}
		}
	}
	attrs := &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address:   socket("10.0.0.7", 53122),
			Principal: e.principal,
		},
		Destination:       &authv3.AttributeContext_Peer{Address: socket("10.0.0.2", 8000)},
		Request:           &authv3.AttributeContext_Request{Http: h},
		ContextExtensions: e.context,
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func socket(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// newPolicy compiles a configuration written as YAML (grpc_address is added) with the given
// key sources, the same way cmd/jwt-authz does.
func newPolicy(t testing.TB, yamlText string, keys map[string]KeySource) *Policy {
	t.Helper()
	cfg, err := config.Parse([]byte("grpc_address: 127.0.0.1:0\n"+yamlText), t.TempDir())
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	p, err := NewPolicy(cfg, keys)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

// check runs Policy.Check at testNow and fails the test if the response breaks what Envoy
// needs: a deny must carry a non-zero status and an HTTP status, an allow a zero status.
func check(t testing.TB, p *Policy, req *authv3.CheckRequest) (*authv3.CheckResponse, Decision) {
	t.Helper()
	resp, d := p.Check(context.Background(), req, testNow)
	if err := envoyContract(resp, d); err != nil {
		t.Errorf("Check(%s): %v", d.Path, err)
	}
	return resp, d
}

// envoyContract is the shape every response must have (envoy-extauthz.md §2, §6.1).
func envoyContract(resp *authv3.CheckResponse, d Decision) error {
	code := resp.GetStatus().GetCode()
	if resp.GetStatus() == nil {
		return errors.New("status is nil, which Envoy treats as allow")
	}
	if d.Allowed {
		if code != 0 || resp.GetOkResponse() == nil {
			return fmt.Errorf("allow with status %d, ok_response %v", code, resp.GetOkResponse())
		}
		return nil
	}
	if code == 0 {
		return fmt.Errorf("deny %s with status code 0", d.Reason)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); int(got) != d.HTTPStatus || got == 0 {
		return fmt.Errorf("deny %s with HTTP status %d, decision says %d", d.Reason, got, d.HTTPStatus)
	}
	return nil
}
