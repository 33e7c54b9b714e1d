package extauthz

import (
	"testing"
)

// TestClaimPathPointer: Keycloak puts client roles under resource_access.<client-id>.roles,
// and client ids often hold dots. A JSON Pointer reaches them in claims_to_headers and in
// require.claims; the dotted form keeps working for the names it can reach.
func TestClaimPathPointer(t *testing.T) {
	p := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers:
    /resource_access/billing.example.com/roles: x-billing-roles
    realm_access.roles: x-realm-roles
    /a~1b: x-slash
rules:
- name: billing-admin
  match: {path_prefix: /billing}
  require: {claims: {/resource_access/billing.example.com/roles: admin}}
- name: realm-ops
  match: {path_prefix: /ops}
  require: {claims: {realm_access.roles: ops}}
`, map[string]KeySource{"demo": newFakeKeys("ec256")})
	keycloak := func(clientRoles ...any) string {
		return claimsToken(t, map[string]any{
			"realm_access":    map[string]any{"roles": []any{"ops"}},
			"resource_access": map[string]any{"billing.example.com": map[string]any{"roles": clientRoles}},
			"a/b":             "slashed",
		})
	}
	tests := []struct {
		name, path, tok string
		want            Reason
		headers         map[string]string
	}{
		{name: "client role by pointer", path: "/billing", tok: keycloak("admin", "viewer"), want: ReasonAllowed,
			headers: map[string]string{"x-billing-roles": "admin,viewer", "x-realm-roles": "ops", "x-slash": "slashed"}},
		{name: "client role missing", path: "/billing", tok: keycloak("viewer"), want: ReasonClaimMismatch},
		{name: "dotted still works", path: "/ops", tok: keycloak(), want: ReasonAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, d := check(t, p, envoyRequest{path: tc.path, headers: bearer(tc.tok)}.proto())
			if d.Reason != tc.want {
				t.Fatalf("Check(%s) = %s, want %s", tc.name, d.Reason, tc.want)
			}
			got := map[string]string{}
			for _, h := range resp.GetOkResponse().GetHeaders() {
				got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			for k, v := range tc.headers {
				if got[k] != v {
					t.Errorf("Check(%s) header %s = %q, want %q", tc.name, k, got[k], v)
				}
			}
		})
	}
}
