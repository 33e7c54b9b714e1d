package extauthz

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

const shadowRules = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-jwt-sub}
rules:
- name: admin-soon
  mode: shadow
  match: {path_prefix: /api}
  require: {scopes: [admin], cel: "claims.sub != 'mallory'"}
- name: legacy-off
  mode: shadow
  match: {path_prefix: /legacy}
  action: deny
- name: second-shadow
  mode: shadow
  match: {path_prefix: /api}
  action: deny
- name: api
  match: {path_prefix: /api}
  require: {}
- name: public
  match: {path_prefix: /}
  action: allow
`

// shadowMeta is what the dynamic metadata says of the shadow decision.
func shadowMeta(resp *authv3.CheckResponse) [3]string {
	f := resp.GetDynamicMetadata().GetFields()
	return [3]string{f["shadow_rule"].GetStringValue(), f["shadow_decision"].GetStringValue(), f["shadow_reason"].GetStringValue()}
}

func TestShadowRule(t *testing.T) {
	p := newPolicy(t, shadowRules, map[string]KeySource{"demo": newFakeKeys("ec256")})
	reader := bearer(sig.mint(t, "ES256", "ec256", nil))
	admin := bearer(sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["scope"] = "admin" }))
	mallory := bearer(sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["scope"], c["sub"] = "admin", "mallory" }))
	tests := []struct {
		name    string
		req     envoyRequest
		allowed bool
		reason  Reason
		rule    string
		shadow  [3]string // rule, decision, reason
	}{
		{name: "would lack a scope", req: envoyRequest{path: "/api/x", headers: reader}, allowed: true, reason: ReasonAllowed, rule: "api", shadow: [3]string{"admin-soon", "deny", "insufficient_scope"}},
		{name: "would pass", req: envoyRequest{path: "/api/x", headers: admin}, allowed: true, reason: ReasonAllowed, rule: "api", shadow: [3]string{"admin-soon", "allow", "allowed"}},
		{name: "would fail its CEL", req: envoyRequest{path: "/api/x", headers: mallory}, allowed: true, reason: ReasonAllowed, rule: "api", shadow: [3]string{"admin-soon", "deny", "cel_denied"}},
		{name: "enforced rule still refuses", req: envoyRequest{path: "/api/x"}, reason: ReasonMissingToken, rule: "api", shadow: [3]string{"admin-soon", "deny", "missing_token"}},
		{name: "shadow action deny", req: envoyRequest{path: "/legacy/y"}, allowed: true, reason: ReasonPublic, rule: "public", shadow: [3]string{"legacy-off", "deny", "rule_deny"}},
		{name: "no shadow rule matches", req: envoyRequest{path: "/docs"}, allowed: true, reason: ReasonPublic, rule: "public"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, d := check(t, p, tc.req.proto())
			if d.Allowed != tc.allowed || d.Reason != tc.reason || d.Rule != tc.rule {
				t.Errorf("Check(%s) = %v %s rule %q, want %v %s rule %q", tc.req.path, d.Allowed, d.Reason, d.Rule, tc.allowed, tc.reason, tc.rule)
			}
			if got := shadowMeta(resp); got != tc.shadow {
				t.Errorf("Check(%s) shadow metadata = %q, want %q", tc.req.path, got, tc.shadow)
			}
			if got := [3]string{d.ShadowRule, d.ShadowDecision, string(d.ShadowReason)}; got != tc.shadow {
				t.Errorf("Check(%s) shadow decision = %q, want %q", tc.req.path, got, tc.shadow)
			}
		})
	}
	// The HTTP faces decide with the same core.
	out := p.Decide(context.Background(), &Request{Method: "GET", Host: "api.example.com", Path: "/api/x", Headers: []Header{{"Authorization", reader[1]}}}, testNow)
	if !out.Allowed || out.ShadowDecision != "deny" || out.ShadowReason != ReasonScope {
		t.Errorf("Decide(/api/x, reader) = %v, shadow %s %s, want allowed with a shadow insufficient_scope", out.Allowed, out.ShadowDecision, out.ShadowReason)
	}
}

func TestShadowPolicy(t *testing.T) {
	p := newPolicy(t, "shadow: true\n"+strings.Replace(shadowRules, "mode: shadow", "mode: enforce", 1), map[string]KeySource{"demo": newFakeKeys("ec256")})
	tampered := bearer(sig.mint(t, "ES256", "ec256", nil) + "A")
	admin := bearer(sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["scope"] = "admin" }))

	resp, d := check(t, p, envoyRequest{path: "/api/x", headers: append(hdrs("x-jwt-sub", "smuggled"), tampered...)}.proto())
	if !d.Allowed || d.Reason != ReasonShadowAllow || d.ShadowDecision != "deny" || d.ShadowReason != ReasonSignature || d.ShadowRule != "admin-soon" {
		t.Errorf("Check(tampered, shadow policy) = %v %s, shadow %s %s %s, want shadow_allow with a shadow invalid_signature by admin-soon", d.Allowed, d.Reason, d.ShadowDecision, d.ShadowReason, d.ShadowRule)
	}
	ok := resp.GetOkResponse()
	if len(ok.GetHeaders()) != 0 || !strings.Contains(strings.Join(ok.GetHeadersToRemove(), ","), "x-jwt-sub") {
		t.Errorf("Check(tampered, shadow policy) ok_response = %v, want no headers set and x-jwt-sub removed", ok)
	}
	if got := shadowMeta(resp); got != [3]string{"admin-soon", "deny", "invalid_signature"} {
		t.Errorf("Check(tampered) shadow metadata = %q", got)
	}

	resp, d = check(t, p, envoyRequest{path: "/api/x", headers: admin}.proto())
	if !d.Allowed || d.Reason != ReasonAllowed || d.ShadowDecision != "allow" || len(resp.GetOkResponse().GetHeaders()) != 1 {
		t.Errorf("Check(admin, shadow policy) = %v %s shadow %s, headers %v, want a real allow with x-jwt-sub", d.Allowed, d.Reason, d.ShadowDecision, resp.GetOkResponse().GetHeaders())
	}
}

// TestShadowDenialAlwaysLogged: allow sampling never hides a would-be denial.
func TestShadowDenialAlwaysLogged(t *testing.T) {
	p := newPolicy(t, shadowRules, map[string]KeySource{"demo": newFakeKeys("ec256")})
	var logs bytes.Buffer
	zero := 0.0
	s := NewServer(p, Options{DecisionLog: &logs, Now: func() time.Time { return testNow }, AllowSampleRate: &zero})
	if _, err := s.Check(context.Background(), envoyRequest{path: "/docs"}.proto()); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("allow with sample rate 0 logged: %s", logs.String())
	}
	if _, err := s.Check(context.Background(), envoyRequest{path: "/api/x", headers: bearer(sig.mint(t, "ES256", "ec256", nil))}.proto()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"decision":"allow"`, `"shadow_decision":"deny"`, `"shadow_reason":"insufficient_scope"`, `"shadow_rule":"admin-soon"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log = %s, want %s", logs.String(), want)
		}
	}
}
