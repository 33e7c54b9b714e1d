package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

// bindingConfig: plain configures nothing (bound tokens are still checked against the
// peer certificate); required refuses unbound tokens; xfcc and pem read the certificate
// from a trusted header.
const bindingConfig = `
providers:
- name: plain
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: required
  issuer: https://required.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  certificate_binding: {required: true}
- name: xfcc
  issuer: https://xfcc.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  certificate_binding: {header: X-Forwarded-Client-Cert}
- name: pem
  issuer: https://pem.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  certificate_binding: {header: x-client-cert, header_format: pem}
rules:
- name: api
  match: {path_prefix: /}
  require: {}
`

// testCertificate is a throwaway client certificate: its URL-encoded PEM as Envoy sends
// it, and its cnf.x5t#S256.
type testCertificate struct {
	escaped, x5t string
	sum          [sha256.Size]byte
}

func newTestCertificate(t testing.TB, cn string) testCertificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	// Envoy percent-encodes the PEM (spaces, newlines, '+', '/', '=').
	escaped := url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	escaped = strings.NewReplacer("+", "%2B", "=", "%3D").Replace(escaped)
	return testCertificate{escaped: escaped, x5t: base64.RawURLEncoding.EncodeToString(sum[:]), sum: sum}
}

// bindingPolicy is bindingConfig's policy, two client certificates, and a minter of ES256
// tokens from an issuer, bound to a certificate when x5t is not empty.
func bindingPolicy(t *testing.T) (*Policy, testCertificate, testCertificate, func(iss, x5t string) string) {
	t.Helper()
	p := newPolicy(t, bindingConfig, map[string]KeySource{
		"plain": newFakeKeys("ec256"), "required": newFakeKeys("ec256"), "xfcc": newFakeKeys("ec256"), "pem": newFakeKeys("ec256"),
	})
	token := func(iss, x5t string) string {
		return sig.mint(t, "ES256", "ec256", func(_, c map[string]any) {
			c["iss"] = iss
			if x5t != "" {
				c["cnf"] = map[string]any{"x5t#S256": x5t}
			}
		})
	}
	return p, newTestCertificate(t, "client"), newTestCertificate(t, "other"), token
}

// TestCertificateBinding: RFC 8705 §3 through Check, with the certificate from the peer
// and from the trusted headers.
func TestCertificateBinding(t *testing.T) {
	p, client, other, token := bindingPolicy(t)
	xfcc := func(s string) []string { return hdrs("x-forwarded-client-cert", s) }
	by := `By=spiffe://cluster.local/ns/default/sa/envoy;`
	for _, tc := range []struct {
		name    string
		token   string
		cert    string   // the peer certificate in the CheckRequest
		headers []string // besides the bearer token
		want    Reason
	}{
		{"unbound token, no certificate", token("https://issuer.example", ""), "", nil, ReasonAllowed},
		{"unbound token with a certificate", token("https://issuer.example", ""), client.escaped, nil, ReasonAllowed},
		{"bound token, its certificate", token("https://issuer.example", client.x5t), client.escaped, nil, ReasonAllowed},
		{"bound token, no certificate", token("https://issuer.example", client.x5t), "", nil, ReasonCertificateMissing},
		{"bound token, another certificate", token("https://issuer.example", client.x5t), other.escaped, nil, ReasonCertificateMismatch},
		{"bound token, a header is not the peer certificate", token("https://issuer.example", client.x5t), "", xfcc(by + "Hash=" + hex.EncodeToString(client.sum[:])), ReasonCertificateMissing},
		{"bound token, a certificate that is not PEM", token("https://issuer.example", client.x5t), "MIIB", nil, ReasonCertificateMissing},
		{"x5t#S256 not a SHA-256", token("https://issuer.example", "AAAA"), client.escaped, nil, ReasonClaims},
		{"x5t#S256 with padding", token("https://issuer.example", client.x5t+"="), client.escaped, nil, ReasonClaims},
		{"required: unbound token", token("https://required.example", ""), client.escaped, nil, ReasonNotBound},
		{"required: bound token, its certificate", token("https://required.example", client.x5t), client.escaped, nil, ReasonAllowed},
		{"xfcc: Hash", token("https://xfcc.example", client.x5t), "", xfcc(by + "Hash=" + hex.EncodeToString(client.sum[:]) + `;Subject="CN=client"`), ReasonAllowed},
		{"xfcc: quoted Cert", token("https://xfcc.example", client.x5t), "", xfcc(by + `Cert="` + client.escaped + `";URI=;DNS=x`), ReasonAllowed},
		{"xfcc: another Hash", token("https://xfcc.example", client.x5t), "", xfcc("Hash=" + hex.EncodeToString(other.sum[:])), ReasonCertificateMismatch},
		{"xfcc: two elements", token("https://xfcc.example", client.x5t), "", xfcc("Hash=" + hex.EncodeToString(client.sum[:]) + ",Hash=" + hex.EncodeToString(client.sum[:])), ReasonCertificateMissing},
		{"xfcc: two headers", token("https://xfcc.example", client.x5t), "", append(xfcc("Hash="+hex.EncodeToString(client.sum[:])), xfcc("Hash="+hex.EncodeToString(other.sum[:]))...), ReasonCertificateMissing},
		{"xfcc: no header, a peer certificate", token("https://xfcc.example", client.x5t), client.escaped, nil, ReasonCertificateMissing},
		{"xfcc: neither Hash nor Cert", token("https://xfcc.example", client.x5t), "", xfcc(by + `Subject="CN=client"`), ReasonCertificateMissing},
		{"pem header", token("https://pem.example", client.x5t), "", hdrs("x-client-cert", client.escaped), ReasonAllowed},
		{"pem header, another certificate", token("https://pem.example", client.x5t), "", hdrs("x-client-cert", other.escaped), ReasonCertificateMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Twice: the second answer comes from the token cache and must check the same.
			for range 2 {
				req := envoyRequest{headers: append(bearer(tc.token), tc.headers...)}.proto()
				req.Attributes.Source.Certificate = tc.cert
				resp, d := check(t, p, req)
				if d.Reason != tc.want {
					t.Fatalf("Check(%s) = %s (cached %v), want %s", tc.name, d.Reason, d.Cached, tc.want)
				}
				if tc.want != ReasonAllowed && tc.want != ReasonClaims {
					if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 401 {
						t.Errorf("Check(%s) HTTP status %d, want 401", tc.name, got)
					}
				}
			}
		})
	}
	// The cache keeps the binding: a token verified with its certificate is refused from
	// the cache with another one.
	tok := token("https://issuer.example", client.x5t)
	for _, tc := range []struct {
		cert string
		want Reason
	}{{client.escaped, ReasonAllowed}, {other.escaped, ReasonCertificateMismatch}, {"", ReasonCertificateMissing}} {
		req := envoyRequest{headers: bearer(tok)}.proto()
		req.Attributes.Source.Certificate = tc.cert
		if _, d := check(t, p, req); d.Reason != tc.want {
			t.Errorf("Check(bound token, cached %v) = %s, want %s", d.Cached, d.Reason, tc.want)
		}
	}
}

func TestXFCCPairs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // pairs as k=v|k=v, or "error"
	}{
		{`Hash=ab`, "Hash=ab"},
		{`By=spiffe://a;Hash=ab;Subject="CN=x,O=y;z";URI=`, "By=spiffe://a|Hash=ab|Subject=CN=x,O=y;z|URI="},
		{`Subject="a\"b"`, `Subject=a"b`},
		{`Hash=ab;`, "Hash=ab"},
		{`Hash=ab,Hash=cd`, "error"},
		{`Hash`, "error"},
		{`=ab`, "error"},
		{`Subject="open`, "error"},
		{``, "error"},
	} {
		pairs, err := xfccPairs(tc.in)
		var got string
		if err != nil {
			got = "error"
			if !errors.Is(err, errXFCC) {
				t.Errorf("xfccPairs(%q) error %v is not errXFCC", tc.in, err)
			}
		} else {
			var parts []string
			for _, kv := range pairs {
				parts = append(parts, kv[0]+"="+kv[1])
			}
			got = strings.Join(parts, "|")
		}
		if got != tc.want {
			t.Errorf("xfccPairs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzXFCC: any header value gives a hash or an error wrapping errCertificateMissing, and
// a hash only when the value names one (a Hash or a Cert).
func FuzzXFCC(f *testing.F) {
	for _, s := range []string{
		`By=spiffe://a;Hash=` + strings.Repeat("ab", 32) + `;Subject="CN=x"`,
		`Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A"`,
		`Hash=ab,Hash=cd`, `Subject="a\"b;c,d"`, `;;`, `"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, err := xfccCertificateHash(v)
		if err != nil {
			if !errors.Is(err, errCertificateMissing) {
				t.Fatalf("xfccCertificateHash(%q) = %v, not a certificate_missing error", v, err)
			}
			return
		}
		l := strings.ToLower(v)
		if !strings.Contains(l, "hash") && !strings.Contains(l, "cert") {
			t.Fatalf("xfccCertificateHash(%q) found a hash in a value without Hash or Cert", v)
		}
	})
}

// TestPeerCertificateDigest: a face that reads the TLS client certificate itself (the
// in-process module: Envoy's connection.sha256_peer_certificate_digest) hands its hex
// SHA-256 to Decide, which binds tokens to it as to the CheckRequest's peer certificate,
// and asks for it only for a bound token.
func TestPeerCertificateDigest(t *testing.T) {
	p, client, other, token := bindingPolicy(t)
	upper := strings.ToUpper(hex.EncodeToString(client.sum[:]))
	for _, tc := range []struct {
		name   string
		token  string
		digest string // what the connection shows
		extra  []Header
		want   Reason
		asked  bool // whether Decide must ask for the digest
	}{
		{"bound token, its certificate", token("https://issuer.example", client.x5t), hex.EncodeToString(client.sum[:]), nil, ReasonAllowed, true},
		{"bound token, its certificate in upper-case hex", token("https://issuer.example", client.x5t), upper, nil, ReasonAllowed, true},
		{"bound token, another certificate", token("https://issuer.example", client.x5t), hex.EncodeToString(other.sum[:]), nil, ReasonCertificateMismatch, true},
		{"bound token, no certificate", token("https://issuer.example", client.x5t), "", nil, ReasonCertificateMissing, true},
		{"bound token, a digest that is not hex SHA-256", token("https://issuer.example", client.x5t), "abc", nil, ReasonCertificateMissing, true},
		{"bound token, no certificate, a forged header", token("https://issuer.example", client.x5t), "",
			[]Header{{"X-Forwarded-Client-Cert", "Hash=" + hex.EncodeToString(client.sum[:])}}, ReasonCertificateMissing, true},
		{"unbound token", token("https://issuer.example", ""), hex.EncodeToString(client.sum[:]), nil, ReasonAllowed, false},
		{"required: unbound token", token("https://required.example", ""), hex.EncodeToString(client.sum[:]), nil, ReasonNotBound, false},
		{"xfcc binding: the connection's certificate is not the header", token("https://xfcc.example", client.x5t), hex.EncodeToString(client.sum[:]), nil, ReasonCertificateMissing, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second from the token cache
				asked := false
				req := &Request{Method: "GET", Host: "api.example", Path: "/things",
					Headers:               append([]Header{{"Authorization", "Bearer " + tc.token}}, tc.extra...),
					PeerCertificateDigest: func() string { asked = true; return tc.digest }}
				out := p.Decide(context.Background(), req, testNow)
				if out.Reason != tc.want {
					t.Fatalf("Decide = %s (cached %v), want %s", out.Reason, out.Cached, tc.want)
				}
				if asked != tc.asked {
					t.Errorf("digest asked for: %v, want %v", asked, tc.asked)
				}
				out.Release()
			}
		})
	}
}
