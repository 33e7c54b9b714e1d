package extauthz

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// faceConfig has every kind of rule and every way an allow changes the upstream request:
// claim headers, a payload header, a credential that is not forwarded.
const faceConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [RS256, ES256, HS256]
  keys: [{jwks_file: unused.json}]
  token_sources:
  - {header: authorization, prefix: Bearer}
  - {cookie: access_token}
  claims_to_headers: {sub: x-jwt-sub, email: x-jwt-email}
  forward_payload_header: x-jwt-payload
  forward_token: false
rules:
- name: public
  match: {path_prefix: /public}
  action: allow
- name: admin
  match: {path_prefix: /admin}
  require: {scopes: [admin]}
- name: api
  match: {path_prefix: /api}
  require: {}
`

// bothFaces describes one request to both faces: an envoyRequest in the
// header_map encoding (repeats kept, as the HTTP face keeps them) and the same Request.
func bothFaces(method, path string, headers ...string) (envoyRequest, *Request) {
	req := &Request{Method: method, Host: "api.example.com", Path: path}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Headers = append(req.Headers, Header{headers[i], headers[i+1]})
	}
	return envoyRequest{method: method, path: path, headers: headers, rawHeader: true}, req
}

// TestDecideAgreesWithCheck: the HTTP faces' Decide and the gRPC face's Check give the same
// decision, the same upstream headers and removals on an allow, and the same status,
// headers and body on a denial.
func TestDecideAgreesWithCheck(t *testing.T) {
	p := newPolicy(t, faceConfig, map[string]KeySource{"demo": newFakeKeys("rsa", "ec256", "hs256")})
	tok := sig.mint(t, "RS256", "rsa", func(_, c map[string]any) { c["email"] = "ada@example.com" })
	admin := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["scope"] = "admin read" })
	forged := tok[:len(tok)-4] + "AAAA"
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		headers []string
		want    Reason
	}{
		{"bearer allow", "GET", "/api/items?x=1", bearer(tok), ReasonAllowed},
		{"cookie allow keeps other cookies", "GET", "/api/items", hdrs("cookie", "theme=dark; access_token="+tok), ReasonAllowed},
		{"cookie allow only cookie", "POST", "/api/items", hdrs("Cookie", "access_token="+tok, "Sec-Fetch-Site", "same-origin"), ReasonAllowed},
		{"cookie cross-site POST", "POST", "/api/items", hdrs("Cookie", "access_token="+tok, "Origin", "https://evil.example"), ReasonCSRF},
		{"header name case", "GET", "/api/items", hdrs("AUTHORIZATION", "bearer "+tok), ReasonAllowed},
		{"spoofed identity header", "GET", "/api/items", append(bearer(tok), "x-jwt-sub", "admin", "X-JWT-Email", "x@y"), ReasonAllowed},
		{"public", "GET", "/public/logo.png", hdrs("x-jwt-sub", "admin"), ReasonPublic},
		{"no token", "GET", "/api/items", nil, ReasonMissingToken},
		{"forged", "GET", "/api/items", bearer(forged), ReasonSignature},
		{"two tokens", "GET", "/api/items", append(bearer(tok), bearer(tok)...), ReasonMultipleTokens},
		{"missing scope", "GET", "/admin/users", bearer(tok), ReasonScope},
		{"scope", "DELETE", "/admin/users", bearer(admin), ReasonAllowed},
		{"dot segments", "GET", "/public/../admin/users", bearer(tok), ReasonScope},
		{"encoded path", "GET", "/%61dmin/users", bearer(tok), ReasonScope},
		{"no rule", "GET", "/other", bearer(tok), ReasonNoRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			er, req := bothFaces(tc.method, tc.path, tc.headers...)
			resp, want := check(t, p, er.proto())
			got := p.Decide(context.Background(), req, testNow)
			// The envoyRequest adds x-request-id; Check ran first, so Decide hits the cache.
			want.RequestID, want.Cached = "", got.Cached
			if diff := cmp.Diff(want, got.Decision); diff != "" {
				t.Errorf("Decide(%s %s) decision differs from Check (-check +decide):\n%s", tc.method, tc.path, diff)
			}
			if got.Reason != tc.want {
				t.Errorf("Decide(%s %s) = %s, want %s", tc.method, tc.path, got.Reason, tc.want)
			}
			if got.Allowed {
				var set []Header
				for _, h := range resp.GetOkResponse().GetHeaders() {
					set = append(set, Header{h.GetHeader().GetKey(), h.GetHeader().GetValue()})
				}
				if diff := cmp.Diff(set, got.Upstream()); diff != "" {
					t.Errorf("Upstream() differs from ok_response.headers (-check +decide):\n%s", diff)
				}
				if diff := cmp.Diff(resp.GetOkResponse().GetHeadersToRemove(), got.Remove()); diff != "" {
					t.Errorf("Remove() differs from headers_to_remove (-check +decide):\n%s", diff)
				}
				if h, b := got.Denial(); h != nil || b != nil {
					t.Errorf("Denial() of an allow = %v, %q, want nothing", h, b)
				}
				return
			}
			if got.Upstream() != nil || got.Remove() != nil {
				t.Errorf("a denial has upstream headers %v or removals %v", got.Upstream(), got.Remove())
			}
			dr := resp.GetDeniedResponse()
			var wantHeaders []Header
			for _, h := range dr.GetHeaders() {
				wantHeaders = append(wantHeaders, Header{h.GetHeader().GetKey(), h.GetHeader().GetValue()})
			}
			headers, body := got.Denial()
			if diff := cmp.Diff(wantHeaders, headers); diff != "" {
				t.Errorf("Denial() headers differ from denied_response (-check +decide):\n%s", diff)
			}
			if !bytes.Equal(body, []byte(dr.GetBody())) {
				t.Errorf("Denial() body = %s, want %s", body, dr.GetBody())
			}
		})
	}
}

// TestServerDecide: the Server labels the decision with its front, observes it once,
// and a refusal is a logged and counted denial.
func TestServerDecide(t *testing.T) {
	p := newPolicy(t, faceConfig, map[string]KeySource{"demo": newFakeKeys("rsa")})
	var seen []Decision
	s := NewServer(p, Options{Now: func() time.Time { return testNow }, Observe: func(d Decision, _ time.Duration) { seen = append(seen, d) }})
	_, req := bothFaces("GET", "/api/items", bearer(sig.mint(t, "RS256", "rsa", nil))...)
	if o := s.Decide(context.Background(), FrontAuthRequest, req); !o.Allowed || o.Front != FrontAuthRequest {
		t.Errorf("Decide(auth_request) = allowed %v front %q, want allowed by auth_request", o.Allowed, o.Front)
	}
	o := s.Refuse(context.Background(), FrontForwardAuth, ReasonUntrustedProxy, "GET", "/api/items")
	if o.Allowed || o.HTTPStatus != 403 || o.Reason != ReasonUntrustedProxy {
		t.Errorf("Refuse(untrusted_proxy) = %+v, want a 403 untrusted_proxy denial", o.Decision)
	}
	if _, body := o.Denial(); !bytes.Contains(body, []byte(`"reason":"untrusted_proxy"`)) {
		t.Errorf("Refuse(untrusted_proxy) body = %s, want the reason", body)
	}
	if len(seen) != 2 || seen[0].Front != FrontAuthRequest || seen[1].Front != FrontForwardAuth {
		t.Errorf("observed %+v, want one decision per call, labelled with its front", seen)
	}
}

// FuzzDecide: whatever the headers and path, the HTTP faces' Decide and the gRPC face's
// Check agree on the decision and the upstream headers, so FuzzCheck's guarantee (no allow
// without a verifying signature) holds for every face.
func FuzzDecide(f *testing.F) {
	kids := []string{"rsa", "ec256", "hs256"}
	p := newPolicy(f, faceConfig, map[string]KeySource{"demo": newFakeKeys(kids...)})
	var keys []*jose.JSONWebKey
	for _, kid := range kids {
		keys = append(keys, verificationKey(kid, ""))
	}
	for i, tok := range fuzzSeeds(f) {
		path := []string{"/api/items", "/admin/users", "/public/x", "/%61dmin"}[i%4]
		f.Add("Bearer "+tok, "", path, "")
		f.Add("", "theme=1; access_token="+tok, path, "Bearer "+tok)
	}
	f.Fuzz(func(t *testing.T, authz, cookie, path, second string) {
		var headers []string
		for _, h := range [][2]string{{"authorization", authz}, {"Authorization", second}, {"cookie", cookie}} {
			if h[1] != "" {
				headers = append(headers, h[0], h[1])
			}
		}
		er, req := bothFaces("GET", path, headers...)
		resp, want := p.Check(t.Context(), er.proto(), testNow)
		got := p.Decide(t.Context(), req, testNow)
		if want.Reason == ReasonBadRequest { // not UTF-8: Envoy cannot send it; an HTTP proxy can
			if got.Reason == ReasonAllowed && !someCredentialVerifies(keys, authz, second, cookie) {
				t.Fatalf("Decide(%q, %q, %q, %q) = allowed, but no credential verifies", authz, cookie, path, second)
			}
			return
		}
		want.RequestID, want.Cached = "", got.Cached
		if diff := cmp.Diff(want, got.Decision); diff != "" {
			t.Fatalf("Decide(%q, %q, %q, %q) differs from Check (-check +decide):\n%s", authz, cookie, path, second, diff)
		}
		if got.Allowed && len(got.Upstream()) != len(resp.GetOkResponse().GetHeaders()) {
			t.Fatalf("Decide(%q) upstream %v, Check sets %v", path, got.Upstream(), resp.GetOkResponse().GetHeaders())
		}
	})
}
