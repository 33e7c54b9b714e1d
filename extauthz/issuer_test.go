package extauthz

import (
	"testing"
)

const issuerConfig = `
providers:
- name: google
  issuer: https://accounts.google.com
  issuer_aliases: [accounts.google.com]
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: entra
  issuer: https://login.microsoftonline.com/{tenantid}/v2.0
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: entra-some
  issuer: https://login.example.com/{tenantid}/v2.0
  tenant_claim: /org/tenant
  tenants: [contoso, fabrikam]
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: any
  match: {path_prefix: /}
  require: {}
`

// TestIssuerVariants: aliases of one issuer, and issuer templates whose tenant must equal
// the tenant claim and be allowed. The decision reports the iss the token used.
func TestIssuerVariants(t *testing.T) {
	p := newPolicy(t, issuerConfig, map[string]KeySource{
		"google": newFakeKeys("ec256"), "entra": newFakeKeys("ec256"), "entra-some": newFakeKeys("ec256"),
	})
	const tid = "9188040d-6c67-4c5b-b112-36a304b66dad"
	tests := []struct {
		name     string
		claims   map[string]any
		want     Reason
		provider string
	}{
		{name: "google with scheme", claims: map[string]any{"iss": "https://accounts.google.com"}, want: ReasonAllowed, provider: "google"},
		{name: "google alias", claims: map[string]any{"iss": "accounts.google.com"}, want: ReasonAllowed, provider: "google"},
		{name: "google other spelling", claims: map[string]any{"iss": "http://accounts.google.com"}, want: ReasonUnknownIssuer},
		{name: "entra tenant", claims: map[string]any{"iss": "https://login.microsoftonline.com/" + tid + "/v2.0", "tid": tid}, want: ReasonAllowed, provider: "entra"},
		{name: "entra tenant mismatch", claims: map[string]any{"iss": "https://login.microsoftonline.com/" + tid + "/v2.0", "tid": "other"}, want: ReasonTenantMismatch, provider: "entra"},
		{name: "entra no tid", claims: map[string]any{"iss": "https://login.microsoftonline.com/" + tid + "/v2.0"}, want: ReasonTenantMismatch, provider: "entra"},
		{name: "entra tid not a string", claims: map[string]any{"iss": "https://login.microsoftonline.com/" + tid + "/v2.0", "tid": 1}, want: ReasonTenantMismatch, provider: "entra"},
		{name: "entra template itself", claims: map[string]any{"iss": "https://login.microsoftonline.com/{tenantid}/v2.0", "tid": "{tenantid}"}, want: ReasonUnknownIssuer},
		{name: "entra path in the tenant", claims: map[string]any{"iss": "https://login.microsoftonline.com/a/b/v2.0", "tid": "a/b"}, want: ReasonUnknownIssuer},
		{name: "entra empty tenant", claims: map[string]any{"iss": "https://login.microsoftonline.com//v2.0", "tid": ""}, want: ReasonUnknownIssuer},
		{name: "entra v1 issuer", claims: map[string]any{"iss": "https://sts.windows.net/" + tid + "/", "tid": tid}, want: ReasonUnknownIssuer},
		{name: "allowed tenant by pointer", claims: map[string]any{"iss": "https://login.example.com/contoso/v2.0", "org": map[string]any{"tenant": "contoso"}}, want: ReasonAllowed, provider: "entra-some"},
		{name: "tenant not allowed", claims: map[string]any{"iss": "https://login.example.com/northwind/v2.0", "org": map[string]any{"tenant": "northwind"}}, want: ReasonTenantNotHere, provider: "entra-some"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := claimsToken(t, tc.claims)
			for round := range 2 { // the second is answered from the cache when allowed
				resp, d := check(t, p, envoyRequest{headers: bearer(tok)}.proto())
				if d.Reason != tc.want || d.Provider != tc.provider {
					t.Fatalf("Check(%s) round %d = %s by %q, want %s by %q", tc.name, round, d.Reason, d.Provider, tc.want, tc.provider)
				}
				if !d.Allowed {
					if d.HTTPStatus != 401 {
						t.Errorf("Check(%s) status = %d, want 401", tc.name, d.HTTPStatus)
					}
					continue
				}
				if d.Issuer != tc.claims["iss"] {
					t.Errorf("Check(%s) Issuer = %q, want the token's %q", tc.name, d.Issuer, tc.claims["iss"])
				}
				if got := resp.GetDynamicMetadata().GetFields()["iss"].GetStringValue(); got != tc.claims["iss"] {
					t.Errorf("Check(%s) metadata iss = %q, want %q", tc.name, got, tc.claims["iss"])
				}
			}
		})
	}
}
