package extauthz

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

const rulesConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: partner
  issuer: https://partner.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: first
  match: {path_prefix: /dup}
  action: deny
- name: second
  match: {path_prefix: /dup}
  action: allow
- name: public
  match: {path_prefix: /public}
  action: allow
- name: blocked
  match: {path: /blocked}
  action: deny
- name: admin
  match: {path_prefix: /admin}
  require: {providers: [demo], scopes: [admin]}
- name: exact-host
  match: {hosts: [api.example.com], path_prefix: /hosted}
  action: allow
- name: wildcard-host
  match: {hosts: ["*.example.com"], path_prefix: /hosted}
  action: deny
- name: exact-path
  match: {path: /exact}
  action: allow
- name: prefix
  match: {path_prefix: /api/}
  action: allow
- name: writes
  match: {path_prefix: /items, methods: [POST, DELETE]}
  require: {}
- name: reads
  match: {path_prefix: /items}
  action: allow
- name: internal-route
  match: {context_extensions: {route: internal}}
  action: deny
- name: partner-only
  match: {path_prefix: /partner}
  require: {providers: [partner]}
- name: two-scopes
  match: {path_prefix: /scoped}
  require: {scopes: [read, write]}
- name: claim-dotted
  match: {path_prefix: /claims/dotted}
  require: {claims: {realm_access.roles: ops}}
- name: claim-array
  match: {path_prefix: /claims/array}
  require: {claims: {groups: [eng, ops]}}
- name: claim-number
  match: {path_prefix: /claims/number}
  require: {claims: {level: 3}}
- name: claim-bool
  match: {path_prefix: /claims/bool}
  require: {claims: {email_verified: true}}
- name: claim-namespaced
  match: {path_prefix: /claims/namespaced}
  require: {claims: {"https://example.com/tier": gold}}
- name: optional
  match: {path_prefix: /optional}
  require: {optional: true}
- name: mesh
  match: {source_principals: ["spiffe://cluster.local/ns/payments/*"]}
  action: allow
default_action: deny
`

func newRulesPolicy(t testing.TB, extra string) *Policy {
	t.Helper()
	return newPolicy(t, rulesConfig+extra, map[string]KeySource{
		"demo":    newFakeKeys("ec256"),
		"partner": newFakeKeys("ec256"),
	})
}

// claimsToken is a demo token with extra claims.
func claimsToken(t *testing.T, extra map[string]any) string {
	return sig.mint(t, "ES256", "ec256", func(_, c map[string]any) {
		for k, v := range extra {
			c[k] = v
		}
	})
}

func TestRules(t *testing.T) {
	p := newRulesPolicy(t, "")
	demo := claimsToken(t, nil)
	partner := claimsToken(t, map[string]any{"iss": "https://partner.example"})
	admin := claimsToken(t, map[string]any{"scope": "read admin"})
	tests := []struct {
		name   string
		req    envoyRequest
		rule   string
		reason Reason
		status int
	}{
		{name: "first match wins", req: envoyRequest{path: "/dup"}, rule: "first", reason: ReasonRuleDeny, status: 403},
		{name: "action allow", req: envoyRequest{path: "/public/logo.png"}, rule: "public", reason: ReasonPublic, status: 200},
		{name: "action deny", req: envoyRequest{path: "/blocked"}, rule: "blocked", reason: ReasonRuleDeny, status: 403},
		{name: "no rule, default deny", req: envoyRequest{path: "/blocked/x"}, reason: ReasonNoRule, status: 403},

		// hosts
		{name: "exact host", req: envoyRequest{host: "api.example.com", path: "/hosted"}, rule: "exact-host", reason: ReasonPublic, status: 200},
		{name: "exact host with port", req: envoyRequest{host: "api.example.com:8443", path: "/hosted"}, rule: "exact-host", reason: ReasonPublic, status: 200},
		{name: "exact host in another case", req: envoyRequest{host: "API.Example.COM", path: "/hosted"}, rule: "exact-host", reason: ReasonPublic, status: 200},
		{name: "exact host with a trailing dot", req: envoyRequest{host: "api.example.com.:443", path: "/hosted"}, rule: "exact-host", reason: ReasonPublic, status: 200},
		{name: "wildcard host", req: envoyRequest{host: "shop.example.com", path: "/hosted"}, rule: "wildcard-host", reason: ReasonRuleDeny, status: 403},
		{name: "wildcard host with port", req: envoyRequest{host: "shop.example.com:8080", path: "/hosted"}, rule: "wildcard-host", reason: ReasonRuleDeny, status: 403},
		{name: "wildcard host two labels deep", req: envoyRequest{host: "a.b.example.com", path: "/hosted"}, rule: "wildcard-host", reason: ReasonRuleDeny, status: 403},
		{name: "wildcard host with a trailing dot", req: envoyRequest{host: "shop.example.com.", path: "/hosted"}, rule: "wildcard-host", reason: ReasonRuleDeny, status: 403},
		{name: "wildcard does not match the apex", req: envoyRequest{host: "example.com", path: "/hosted"}, reason: ReasonNoRule, status: 403},
		{name: "wildcard does not match a look-alike", req: envoyRequest{host: "evilexample.com", path: "/hosted"}, reason: ReasonNoRule, status: 403},
		{name: "IPv6 host", req: envoyRequest{host: "[::1]:8080", path: "/hosted"}, reason: ReasonNoRule, status: 403},

		// paths
		{name: "exact path", req: envoyRequest{path: "/exact"}, rule: "exact-path", reason: ReasonPublic, status: 200},
		{name: "exact path with a query", req: envoyRequest{path: "/exact?x=1"}, rule: "exact-path", reason: ReasonPublic, status: 200},
		{name: "exact path is not a prefix", req: envoyRequest{path: "/exact/more"}, reason: ReasonNoRule, status: 403},
		{name: "prefix itself", req: envoyRequest{path: "/api"}, rule: "prefix", reason: ReasonPublic, status: 200},
		{name: "prefix and a segment", req: envoyRequest{path: "/api/x"}, rule: "prefix", reason: ReasonPublic, status: 200},
		{name: "prefix is segment-aware", req: envoyRequest{path: "/apix"}, reason: ReasonNoRule, status: 403},
		{name: "path parameter ends the prefix segment", req: envoyRequest{path: "/admin;jsessionid=x"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "prefix is case-sensitive", req: envoyRequest{path: "/API/x"}, reason: ReasonNoRule, status: 403},

		// normalisation: every spelling of /admin hits the admin rule
		{name: "percent-encoded letter", req: envoyRequest{path: "/%61dmin"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "dot-dot from another prefix", req: envoyRequest{path: "/api/../admin"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "dot-dot from a public prefix", req: envoyRequest{path: "/public/../admin/users"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "encoded dot-dot", req: envoyRequest{path: "/public/%2E%2e/admin"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "double slash", req: envoyRequest{path: "//admin"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "dot segment", req: envoyRequest{path: "/./admin"}, rule: "admin", reason: ReasonMissingToken, status: 401},
		{name: "query naming a public path", req: envoyRequest{path: "/admin?next=/public"}, rule: "admin", reason: ReasonMissingToken, status: 401},

		// methods
		{name: "method matched, no token", req: envoyRequest{method: "POST", path: "/items"}, rule: "writes", reason: ReasonMissingToken, status: 401},
		{name: "method matched, token", req: envoyRequest{method: "DELETE", path: "/items/7", headers: bearer(demo)}, rule: "writes", reason: ReasonAllowed, status: 200},
		{name: "method not matched", req: envoyRequest{method: "GET", path: "/items"}, rule: "reads", reason: ReasonPublic, status: 200},

		// context_extensions and principals
		{name: "context extension", req: envoyRequest{path: "/x", context: map[string]string{"route": "internal"}}, rule: "internal-route", reason: ReasonRuleDeny, status: 403},
		{name: "context extension with another value", req: envoyRequest{path: "/x", context: map[string]string{"route": "protected"}}, reason: ReasonNoRule, status: 403},
		{name: "source principal", req: envoyRequest{path: "/x", principal: "spiffe://cluster.local/ns/payments/sa/api"}, rule: "mesh", reason: ReasonPublic, status: 200},
		{name: "other source principal", req: envoyRequest{path: "/x", principal: "spiffe://cluster.local/ns/shop/sa/api"}, reason: ReasonNoRule, status: 403},

		// require.providers
		{name: "provider accepted", req: envoyRequest{path: "/partner", headers: bearer(partner)}, rule: "partner-only", reason: ReasonAllowed, status: 200},
		{name: "provider not accepted", req: envoyRequest{path: "/partner", headers: bearer(demo)}, rule: "partner-only", reason: ReasonIssuerNotHere, status: 401},
		{name: "partner token on a demo-only rule", req: envoyRequest{path: "/admin", headers: bearer(claimsToken(t, map[string]any{"iss": "https://partner.example", "scope": "admin"}))}, rule: "admin", reason: ReasonIssuerNotHere, status: 401},

		// require.scopes
		{name: "scope string", req: envoyRequest{path: "/admin", headers: bearer(admin)}, rule: "admin", reason: ReasonAllowed, status: 200},
		{name: "scp array", req: envoyRequest{path: "/admin", headers: bearer(claimsToken(t, map[string]any{"scp": []string{"read", "admin"}}))}, rule: "admin", reason: ReasonAllowed, status: 200},
		{name: "scope missing", req: envoyRequest{path: "/admin", headers: bearer(demo)}, rule: "admin", reason: ReasonScope, status: 403},
		{name: "scope similar but different", req: envoyRequest{path: "/admin", headers: bearer(claimsToken(t, map[string]any{"scope": "administrator admin:read"}))}, rule: "admin", reason: ReasonScope, status: 403},
		{name: "scope with the wrong type", req: envoyRequest{path: "/admin", headers: bearer(claimsToken(t, map[string]any{"scope": map[string]any{"admin": true}}))}, rule: "admin", reason: ReasonScope, status: 403},
		{name: "all scopes required", req: envoyRequest{path: "/scoped", headers: bearer(claimsToken(t, map[string]any{"scope": "read"}))}, rule: "two-scopes", reason: ReasonScope, status: 403},
		{name: "all scopes granted", req: envoyRequest{path: "/scoped", headers: bearer(claimsToken(t, map[string]any{"scope": "write  read"}))}, rule: "two-scopes", reason: ReasonAllowed, status: 200},

		// require.claims
		{name: "dotted claim in an array", req: envoyRequest{path: "/claims/dotted", headers: bearer(claimsToken(t, map[string]any{"realm_access": map[string]any{"roles": []string{"dev", "ops"}}}))}, rule: "claim-dotted", reason: ReasonAllowed, status: 200},
		{name: "dotted claim without the value", req: envoyRequest{path: "/claims/dotted", headers: bearer(claimsToken(t, map[string]any{"realm_access": map[string]any{"roles": []string{"dev"}}}))}, rule: "claim-dotted", reason: ReasonClaimMismatch, status: 403},
		{name: "dotted claim missing", req: envoyRequest{path: "/claims/dotted", headers: bearer(demo)}, rule: "claim-dotted", reason: ReasonClaimMismatch, status: 403},
		{name: "array any-of", req: envoyRequest{path: "/claims/array", headers: bearer(claimsToken(t, map[string]any{"groups": []string{"sales", "ops"}}))}, rule: "claim-array", reason: ReasonAllowed, status: 200},
		{name: "scalar one of the values", req: envoyRequest{path: "/claims/array", headers: bearer(claimsToken(t, map[string]any{"groups": "eng"}))}, rule: "claim-array", reason: ReasonAllowed, status: 200},
		{name: "array none of the values", req: envoyRequest{path: "/claims/array", headers: bearer(claimsToken(t, map[string]any{"groups": []string{"sales"}}))}, rule: "claim-array", reason: ReasonClaimMismatch, status: 403},
		{name: "object is never a match", req: envoyRequest{path: "/claims/array", headers: bearer(claimsToken(t, map[string]any{"groups": map[string]any{"eng": true}}))}, rule: "claim-array", reason: ReasonClaimMismatch, status: 403},
		{name: "numeric claim", req: envoyRequest{path: "/claims/number", headers: bearer(claimsToken(t, map[string]any{"level": 3}))}, rule: "claim-number", reason: ReasonAllowed, status: 200},
		{name: "numeric claim differs", req: envoyRequest{path: "/claims/number", headers: bearer(claimsToken(t, map[string]any{"level": 4}))}, rule: "claim-number", reason: ReasonClaimMismatch, status: 403},
		{name: "bool claim", req: envoyRequest{path: "/claims/bool", headers: bearer(claimsToken(t, map[string]any{"email_verified": true}))}, rule: "claim-bool", reason: ReasonAllowed, status: 200},
		{name: "bool claim false", req: envoyRequest{path: "/claims/bool", headers: bearer(claimsToken(t, map[string]any{"email_verified": false}))}, rule: "claim-bool", reason: ReasonClaimMismatch, status: 403},
		{name: "namespaced claim with dots", req: envoyRequest{path: "/claims/namespaced", headers: bearer(claimsToken(t, map[string]any{"https://example.com/tier": "gold"}))}, rule: "claim-namespaced", reason: ReasonAllowed, status: 200},

		// require.optional
		{name: "optional without a token", req: envoyRequest{path: "/optional"}, rule: "optional", reason: ReasonAnonymous, status: 200},
		{name: "optional with a valid token", req: envoyRequest{path: "/optional", headers: bearer(demo)}, rule: "optional", reason: ReasonAllowed, status: 200},
		{name: "optional with an invalid token", req: envoyRequest{path: "/optional", headers: bearer(sig.mint(t, "ES256", "attacker-ec", func(h, _ map[string]any) { h["kid"] = "ec256" }))}, rule: "optional", reason: ReasonSignature, status: 401},
		{name: "optional with an expired token", req: envoyRequest{path: "/optional", headers: bearer(claimsToken(t, map[string]any{"exp": testNow.Unix() - 3600}))}, rule: "optional", reason: ReasonExpired, status: 401},
		{name: "optional with two tokens", req: envoyRequest{path: "/optional", headers: hdrs("authorization", "Bearer "+demo, "authorization", "Bearer "+demo)}, rule: "optional", reason: ReasonMultipleTokens, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := check(t, p, tc.req.proto())
			if d.Rule != tc.rule || d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s %s) = rule %q %s %d, want rule %q %s %d",
					d.Method, tc.req.path, d.Rule, d.Reason, d.HTTPStatus, tc.rule, tc.reason, tc.status)
			}
		})
	}
}

func TestRulesDefaultAllow(t *testing.T) {
	p := newRulesPolicy(t, "")
	allow := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: admin
  match: {path_prefix: /admin}
  require: {}
default_action: allow
`, map[string]KeySource{"demo": newFakeKeys("ec256")})
	tests := []struct {
		name   string
		policy *Policy
		path   string
		reason Reason
		status int
	}{
		{name: "default deny", policy: p, path: "/nowhere", reason: ReasonNoRule, status: 403},
		{name: "default allow", policy: allow, path: "/nowhere", reason: ReasonDefaultAllow, status: 200},
		{name: "default allow leaves rules in force", policy: allow, path: "/admin", reason: ReasonMissingToken, status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := check(t, tc.policy, envoyRequest{path: tc.path}.proto())
			if d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s) = %s %d, want %s %d", tc.path, d.Reason, d.HTTPStatus, tc.reason, tc.status)
			}
		})
	}
}

// TestRulesNonHTTP: Istio's TCP ext_authz sends no request.http (envoy-extauthz.md §1).
func TestRulesNonHTTP(t *testing.T) {
	deny := newRulesPolicy(t, "")
	allow := newRulesPolicy(t, "non_http_action: allow\n")
	tcp := func(principal string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:      &authv3.AttributeContext_Peer{Address: socket("10.0.0.7", 40000), Principal: principal},
			Destination: &authv3.AttributeContext_Peer{Address: socket("10.0.0.2", 5432)},
		}}
	}
	tests := []struct {
		name   string
		policy *Policy
		req    *authv3.CheckRequest
		rule   string
		reason Reason
		status int
	}{
		{name: "denied by default", policy: deny, req: tcp(""), reason: ReasonNonHTTPDeny, status: 403},
		{name: "empty CheckRequest", policy: deny, req: &authv3.CheckRequest{}, reason: ReasonNonHTTPDeny, status: 403},
		{name: "nil CheckRequest", policy: deny, req: nil, reason: ReasonNonHTTPDeny, status: 403},
		{name: "request without http", policy: deny, req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, reason: ReasonNonHTTPDeny, status: 403},
		{name: "source principal rule applies", policy: deny, req: tcp("spiffe://cluster.local/ns/payments/sa/db-client"), rule: "mesh", reason: ReasonPublic, status: 200},
		{name: "context extension rule applies", policy: deny, req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{ContextExtensions: map[string]string{"route": "internal"}}}, rule: "internal-route", reason: ReasonRuleDeny, status: 403},
		{name: "allowed by non_http_action", policy: allow, req: tcp(""), reason: ReasonNonHTTPAllow, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d := check(t, tc.policy, tc.req)
			if d.Rule != tc.rule || d.Reason != tc.reason || d.HTTPStatus != tc.status {
				t.Errorf("Check(%s) = rule %q %s %d, want rule %q %s %d", tc.name, d.Rule, d.Reason, d.HTTPStatus, tc.rule, tc.reason, tc.status)
			}
		})
	}
}
