package extauthz

import (
	"testing"
)

const spiffeConfig = `
providers:
- name: spire
  spiffe_trust_domain: example.org
  audiences: [payments]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: spire-oidc
  issuer: https://oidc.prod.example
  spiffe_trust_domain: prod.example
  audiences: [payments]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: payments
  match: {path_prefix: /payments}
  require: {spiffe_ids: ["spiffe://example.org/ns/billing/*", "spiffe://prod.example/api"]}
- name: any
  match: {path_prefix: /}
  require: {}
`

// TestSPIFFE: JWT-SVIDs without iss go to the provider of their sub's trust domain, a SVID
// whose SPIFFE ID is outside its provider's trust domain is a 401, and require.spiffe_ids
// is a 403. A provider without issuer reports spiffe://<trust domain> as the issuer.
func TestSPIFFE(t *testing.T) {
	p := newPolicy(t, spiffeConfig, map[string]KeySource{"spire": newFakeKeys("ec256"), "spire-oidc": newFakeKeys("ec256")})
	svid := func(iss any, sub string) string {
		return claimsToken(t, map[string]any{"iss": iss, "sub": sub, "aud": []any{"payments"}})
	}
	tests := []struct {
		name, path, tok string
		want            Reason
		status          int
		provider, iss   string
	}{
		{name: "SVID without iss", tok: svid(nil, "spiffe://example.org/ns/billing/sa/worker"), want: ReasonAllowed, provider: "spire", iss: "spiffe://example.org"},
		{name: "SVID with iss", tok: svid("https://oidc.prod.example", "spiffe://prod.example/api"), want: ReasonAllowed, provider: "spire-oidc", iss: "https://oidc.prod.example"},
		{name: "SVID of an unknown trust domain", tok: svid(nil, "spiffe://evil.example/ns/billing/sa/worker"), want: ReasonUnknownIssuer, status: 401},
		{name: "no iss and no SPIFFE ID", tok: svid(nil, "alice"), want: ReasonUnknownIssuer, status: 401},
		{name: "SVID outside its issuer's trust domain", tok: svid("https://oidc.prod.example", "spiffe://example.org/api"), want: ReasonTrustDomain, status: 401, provider: "spire-oidc"},
		{name: "sub not a SPIFFE ID", tok: svid("https://oidc.prod.example", "api"), want: ReasonTrustDomain, status: 401, provider: "spire-oidc"},
		{name: "SPIFFE ID with a dot segment", tok: svid(nil, "spiffe://example.org/ns/../admin"), want: ReasonTrustDomain, status: 401, provider: "spire"},
		{name: "allowed SPIFFE ID", path: "/payments/x", tok: svid(nil, "spiffe://example.org/ns/billing/sa/worker"), want: ReasonAllowed, provider: "spire", iss: "spiffe://example.org"},
		{name: "allowed exact SPIFFE ID", path: "/payments/x", tok: svid("https://oidc.prod.example", "spiffe://prod.example/api"), want: ReasonAllowed, provider: "spire-oidc", iss: "https://oidc.prod.example"},
		{name: "SPIFFE ID not allowed", path: "/payments/x", tok: svid(nil, "spiffe://example.org/ns/web/sa/frontend"), want: ReasonSPIFFEID, status: 403, provider: "spire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/api"
			}
			for round := range 2 { // the second may come from the cache
				resp, d := check(t, p, envoyRequest{path: path, headers: bearer(tc.tok)}.proto())
				if d.Reason != tc.want || d.Provider != tc.provider {
					t.Fatalf("Check(%s) round %d = %s by %q, want %s by %q", tc.name, round, d.Reason, d.Provider, tc.want, tc.provider)
				}
				if !d.Allowed && d.HTTPStatus != tc.status {
					t.Errorf("Check(%s) status = %d, want %d", tc.name, d.HTTPStatus, tc.status)
				}
				if d.Allowed && (d.Issuer != tc.iss || resp.GetDynamicMetadata().GetFields()["iss"].GetStringValue() != tc.iss) {
					t.Errorf("Check(%s) Issuer = %q, metadata iss %v, want %q", tc.name, d.Issuer, resp.GetDynamicMetadata().GetFields()["iss"], tc.iss)
				}
			}
		})
	}
}
