package extauthz

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// readmeCELConfig is the README's CEL example block, without grpc_address (newPolicy adds
// one), so the documented rules are the ones tested.
func readmeCELConfig(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(b[1], "# jwt-authz config: CEL conditions") {
			return regexp.MustCompile(`(?m)^grpc_address:.*\n`).ReplaceAllString(b[1], "")
		}
	}
	t.Fatal("README has no '# jwt-authz config: CEL conditions' block")
	return ""
}

// TestREADMECELExamples exercises each documented CEL rule both ways.
func TestREADMECELExamples(t *testing.T) {
	p := newPolicy(t, readmeCELConfig(t), map[string]KeySource{"demo": newFakeKeys("ec256")})
	token := func(edit func(c map[string]any)) []string {
		return bearer(sig.mint(t, "ES256", "ec256", func(_, c map[string]any) {
			if edit != nil {
				edit(c)
			}
		}))
	}
	acme := token(func(c map[string]any) { c["tenant"] = "acme" })
	admin := token(func(c map[string]any) { c["roles"] = []string{"reader", "admin"} })
	plain := token(nil)
	// testNow is Friday 2026-05-01 12:00 UTC, 14:00 in Berlin.
	night := time.Date(2026, 5, 1, 21, 0, 0, 0, time.UTC)
	saturday := time.Date(2026, 5, 2, 10, 0, 0, 0, time.UTC)

	tests := []struct {
		name    string
		req     envoyRequest
		now     time.Time
		allowed bool
		reason  Reason
		rule    string
	}{
		{name: "debug query refused", req: envoyRequest{path: "/tenants/acme?debug=1", headers: append(hdrs("x-tenant-id", "acme"), acme...)}, reason: ReasonRuleDeny, rule: "no-debug"},
		{name: "debug query on staging", req: envoyRequest{host: "staging.example.com", path: "/tenants/acme?debug=1", headers: append(hdrs("x-tenant-id", "acme"), acme...)}, allowed: true, reason: ReasonAllowed, rule: "tenant-isolation"},
		{name: "tenant matches header", req: envoyRequest{path: "/tenants/acme/orders", headers: append(hdrs("x-tenant-id", "acme"), acme...)}, allowed: true, reason: ReasonAllowed, rule: "tenant-isolation"},
		{name: "tenant differs from header", req: envoyRequest{path: "/tenants/globex/orders", headers: append(hdrs("x-tenant-id", "globex"), acme...)}, reason: ReasonCELDenied, rule: "tenant-isolation"},
		{name: "tenant header missing", req: envoyRequest{path: "/tenants/acme", headers: acme}, reason: ReasonCELDenied, rule: "tenant-isolation"},
		{name: "token without tenant claim", req: envoyRequest{path: "/tenants/acme", headers: append(hdrs("x-tenant-id", "acme"), plain...)}, reason: ReasonCELError, rule: "tenant-isolation"},
		{name: "tenant rule still needs a token", req: envoyRequest{path: "/tenants/acme", headers: hdrs("x-tenant-id", "acme")}, reason: ReasonMissingToken, rule: "tenant-isolation"},
		{name: "owner reads own", req: envoyRequest{path: "/users/alice/profile", headers: plain}, allowed: true, reason: ReasonAllowed, rule: "owner-or-admin"},
		{name: "owner via dot segments", req: envoyRequest{path: "/users/bob/../alice", headers: plain}, allowed: true, reason: ReasonAllowed, rule: "owner-or-admin"},
		{name: "someone else's", req: envoyRequest{path: "/users/bob/profile", headers: plain}, reason: ReasonCELDenied, rule: "owner-or-admin"},
		{name: "admin reads any", req: envoyRequest{path: "/users/bob/profile", headers: admin}, allowed: true, reason: ReasonAllowed, rule: "owner-or-admin"},
		{name: "users list is admin only", req: envoyRequest{path: "/users", headers: plain}, reason: ReasonCELDenied, rule: "owner-or-admin"},
		{name: "reports in office hours", req: envoyRequest{path: "/reports/q1", headers: plain}, allowed: true, reason: ReasonAllowed, rule: "office-hours"},
		{name: "reports at night", req: envoyRequest{path: "/reports/q1", headers: plain}, now: night, reason: ReasonCELDenied, rule: "office-hours"},
		{name: "reports on saturday", req: envoyRequest{path: "/reports/q1", headers: plain}, now: saturday, reason: ReasonCELDenied, rule: "office-hours"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = testNow
			}
			req := tc.req
			if now != testNow { // tokens minted at testNow are valid for 5 minutes: mint anew
				s := signer{now: func() time.Time { return now }}
				req.headers = bearer(s.mint(t, "ES256", "ec256", nil))
			}
			resp, d := p.Check(context.Background(), req.proto(), now)
			if err := envoyContract(resp, d); err != nil {
				t.Error(err)
			}
			if d.Allowed != tc.allowed || d.Reason != tc.reason || d.Rule != tc.rule {
				t.Errorf("Check(%s %s) = %v %s rule %q, want %v %s rule %q", req.method, req.path, d.Allowed, d.Reason, d.Rule, tc.allowed, tc.reason, tc.rule)
			}
			if tc.reason == ReasonCELDenied || tc.reason == ReasonCELError {
				if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 403 {
					t.Errorf("Check(%s) HTTP status = %d, want 403", tc.name, got)
				}
				if body := resp.GetDeniedResponse().GetBody(); !strings.Contains(body, `"rule":"`+tc.rule+`"`) {
					t.Errorf("Check(%s) body = %s, want the rule named", tc.name, body)
				}
			}
		})
	}
}

// TestCELErrorDenies: an evaluation error denies, never falls through to a looser rule, and is
// logged by kind without the values the expression saw.
func TestCELErrorDenies(t *testing.T) {
	p := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
cel: {cost_limit: 50}
rules:
- name: strict
  match: {path_prefix: /strict, cel: "int(request.headers['x-level']) > 2"}
  action: deny
- name: costly
  match: {path_prefix: /costly, cel: "request.headers.all(a, request.headers.all(b, a.size() + b.size() > 0))"}
  action: allow
- name: fallback
  match: {path_prefix: /}
  action: allow
`, map[string]KeySource{"demo": newFakeKeys("ec256")})
	var logs bytes.Buffer
	s := NewServer(p, Options{DecisionLog: &logs, Now: func() time.Time { return testNow }})
	for _, tc := range []struct {
		name, path, secret string
		headers            []string
		kind               string
	}{
		{name: "missing header", path: "/strict", kind: "no such key"},
		{name: "value that does not convert", path: "/strict", secret: "s3cr3t-value", headers: hdrs("x-level", "s3cr3t-value"), kind: "type conversion error"},
		{name: "over the cost limit", path: "/costly", headers: hdrs("a", "1", "b", "2", "c", "3"), kind: "cost limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			resp, err := s.Check(context.Background(), envoyRequest{path: tc.path, headers: tc.headers}.proto())
			if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 403 || !strings.Contains(resp.GetDeniedResponse().GetBody(), string(ReasonCELError)) {
				t.Fatalf("Check(%s) = %v, %v, want a 403 cel_error", tc.path, resp, err)
			}
			if !strings.Contains(logs.String(), `"cel_error":"`+tc.kind) {
				t.Errorf("log = %s, want cel_error %q", logs.String(), tc.kind)
			}
			if tc.secret != "" && strings.Contains(logs.String(), tc.secret) {
				t.Errorf("log = %s, leaks the header value", logs.String())
			}
		})
	}
}

// TestCELOnCachedToken: a cached identity carries its claims, so require.cel decides a hit
// exactly as it decided the miss, against each request's own headers.
func TestCELOnCachedToken(t *testing.T) {
	p := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: tenant
  match: {path_prefix: /}
  require: {cel: "claims.tenant == request.headers['x-tenant-id'] && claims.level >= 2"}
`, map[string]KeySource{"demo": newFakeKeys("ec256")})
	tok := bearer(sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["tenant"], c["level"] = "acme", 3 }))
	for i, tc := range []struct {
		tenant  string
		allowed bool
		cached  bool
	}{{"acme", true, false}, {"acme", true, true}, {"globex", false, true}, {"acme", true, true}} {
		_, d := check(t, p, envoyRequest{headers: append(hdrs("x-tenant-id", tc.tenant), tok...)}.proto())
		if d.Allowed != tc.allowed || d.Cached != tc.cached {
			t.Errorf("call %d (x-tenant-id %s) = allowed %v cached %v (%s), want %v %v", i, tc.tenant, d.Allowed, d.Cached, d.Reason, tc.allowed, tc.cached)
		}
	}
}

// TestCELRequestView: what each variable shows, for both header encodings and a TCP check.
func TestCELRequestView(t *testing.T) {
	p := newPolicy(t, `
rules:
- name: view
  match:
    cel: >-
      request.method == 'POST' && request.host == 'api.example.com' && request.path == '/a/c' &&
      request.headers['x-multi'] == '1,2' && request.query['q'] == 'a b' &&
      context_extensions['route'] == 'r1' && source.principal.startsWith('spiffe://') &&
      destination.principal == '' && !(':path' in request.headers) && now.getFullYear() == 2026
  action: allow
- name: mesh
  match: {cel: "source.principal.endsWith('/sa/batch')"}
  action: allow
`, nil)
	for _, raw := range []bool{false, true} {
		req := envoyRequest{method: "POST", host: "API.example.com:443", path: "/a/b/../c?q=a+b&q=z", rawHeader: raw,
			headers: hdrs("x-multi", "1", "x-multi", "2"), context: map[string]string{"route": "r1"}, principal: "spiffe://cluster.local/ns/a/sa/web"}
		if _, d := check(t, p, req.proto()); d.Rule != "view" || !d.Allowed {
			t.Errorf("Check(raw headers %v) = %s rule %q, want allowed by view", raw, d.Reason, d.Rule)
		}
	}
	tcp := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/b/sa/batch"}}}
	if _, d := check(t, p, tcp); d.Rule != "mesh" || !d.Allowed {
		t.Errorf("Check(TCP from batch) = %s rule %q, want allowed by mesh", d.Reason, d.Rule)
	}
}
