package extauthz

import (
	"strings"
	"testing"
)

const accessTokenConfig = `
providers:
- name: keycloak
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  required_claims: {typ: Bearer}
- name: cognito
  issuer: https://cognito.example
  audiences: [app-client]
  audience_claims: [aud, client_id]
  required_claims: {token_use: access}
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: azp
  issuer: https://azp.example
  audiences: [demo-api]
  authorized_parties: [web-app, /with-slash]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: rfc9068
  issuer: https://rfc9068.example
  audiences: [demo-api, oidc-client]
  types: [at+jwt]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
- name: lenient
  issuer: https://lenient.example
  audiences: [demo-api]
  reject_id_tokens: false
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: billing
  match: {path_prefix: /billing}
  require: {audiences: [billing-api]}
- name: any
  match: {path_prefix: /}
  require: {}
`

func newAccessTokenPolicy(t *testing.T) *Policy {
	t.Helper()
	keys := map[string]KeySource{}
	for _, n := range []string{"keycloak", "cognito", "azp", "rfc9068", "lenient"} {
		keys[n] = newFakeKeys("ec256")
	}
	return newPolicy(t, accessTokenConfig, keys)
}

// TestAccessTokenChecks: provider-level claim requirements, ID-token refusal, audience
// claims, authorized parties and a rule's audiences. Each refusal is a 401 invalid_token:
// the token is not a valid access token here.
func TestAccessTokenChecks(t *testing.T) {
	p := newAccessTokenPolicy(t)
	tok := func(header map[string]any, claims map[string]any) string {
		return sig.mint(t, "ES256", "ec256", func(h, c map[string]any) {
			for k, v := range header {
				h[k] = v
			}
			for k, v := range claims {
				c[k] = v
			}
		})
	}
	const kc, cog, azp, at, len_ = "https://issuer.example", "https://cognito.example", "https://azp.example", "https://rfc9068.example", "https://lenient.example"
	tests := []struct {
		name   string
		path   string
		header map[string]any
		claims map[string]any
		want   Reason
	}{
		{name: "keycloak access token", claims: map[string]any{"typ": "Bearer", "azp": "web"}, want: ReasonAllowed},
		{name: "keycloak ID token", claims: map[string]any{"typ": "ID", "aud": "demo-api", "at_hash": "x"}, want: ReasonIDToken},
		{name: "keycloak ID token without at_hash", claims: map[string]any{"typ": "ID"}, want: ReasonIDToken},
		{name: "keycloak refresh-like typ", claims: map[string]any{"typ": "Refresh"}, want: ReasonRequiredClaim},
		{name: "no typ claim", want: ReasonRequiredClaim},
		{name: "nonce marks an ID token", claims: map[string]any{"typ": "Bearer", "nonce": "n-0S6_WzA2Mj"}, want: ReasonIDToken},
		{name: "c_hash marks an ID token", claims: map[string]any{"typ": "Bearer", "c_hash": "x"}, want: ReasonIDToken},

		{name: "cognito access token: client_id, no aud", claims: map[string]any{"iss": cog, "aud": nil, "client_id": "app-client", "token_use": "access"}, want: ReasonAllowed},
		{name: "cognito ID token", claims: map[string]any{"iss": cog, "aud": "app-client", "token_use": "id"}, want: ReasonIDToken},
		{name: "cognito other client", claims: map[string]any{"iss": cog, "aud": nil, "client_id": "other", "token_use": "access"}, want: ReasonAudience},
		{name: "cognito client_id not a string", claims: map[string]any{"iss": cog, "aud": nil, "client_id": 7, "token_use": "access"}, want: ReasonClaims},

		{name: "azp allowed", claims: map[string]any{"iss": azp, "azp": "web-app"}, want: ReasonAllowed},
		{name: "azp not allowed", claims: map[string]any{"iss": azp, "azp": "mobile"}, want: ReasonAuthorizedParty},
		{name: "no azp, client_id allowed", claims: map[string]any{"iss": azp, "client_id": "web-app"}, want: ReasonAllowed},
		{name: "azp wins over client_id", claims: map[string]any{"iss": azp, "azp": "mobile", "client_id": "web-app"}, want: ReasonAuthorizedParty},
		{name: "no azp nor client_id", claims: map[string]any{"iss": azp}, want: ReasonAuthorizedParty},
		{name: "azp not a string", claims: map[string]any{"iss": azp, "azp": []any{"web-app"}}, want: ReasonAuthorizedParty},

		{name: "at+jwt access token", header: map[string]any{"typ": "at+jwt"}, claims: map[string]any{"iss": at}, want: ReasonAllowed},
		{name: "no typ under types [at+jwt]", header: map[string]any{"typ": nil}, claims: map[string]any{"iss": at}, want: ReasonType},
		// node oidc-provider's ID token: no typ, no at_hash, no nonce, aud = the client.
		{name: "oidc-provider ID token", header: map[string]any{"typ": nil}, claims: map[string]any{"iss": at, "aud": "oidc-client", "auth_time": 1}, want: ReasonType},
		{name: "JWT typ under types [at+jwt]", claims: map[string]any{"iss": at}, want: ReasonType},

		{name: "reject_id_tokens false", claims: map[string]any{"iss": len_, "nonce": "n", "at_hash": "x"}, want: ReasonAllowed},

		{name: "rule audience held", path: "/billing/x", claims: map[string]any{"typ": "Bearer", "aud": []any{"demo-api", "billing-api"}}, want: ReasonAllowed},
		{name: "rule audience missing", path: "/billing/x", claims: map[string]any{"typ": "Bearer"}, want: ReasonAudience},
		{name: "rule audience by client_id", path: "/billing/x", claims: map[string]any{"iss": cog, "aud": "app-client", "client_id": "billing-api", "token_use": "access"}, want: ReasonAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/api"
			}
			resp, d := check(t, p, envoyRequest{path: path, headers: bearer(tok(tc.header, tc.claims))}.proto())
			if d.Reason != tc.want {
				t.Fatalf("Check(%s) = %s, want %s", tc.name, d.Reason, tc.want)
			}
			if d.Allowed {
				return
			}
			if d.HTTPStatus != 401 {
				t.Errorf("Check(%s) HTTP status = %d, want 401", tc.name, d.HTTPStatus)
			}
			var challenge string
			for _, h := range resp.GetDeniedResponse().GetHeaders() {
				if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
					challenge = h.GetHeader().GetValue()
				}
			}
			if !strings.Contains(challenge, `error="invalid_token"`) {
				t.Errorf("Check(%s) WWW-Authenticate = %q, want error=\"invalid_token\"", tc.name, challenge)
			}
		})
	}
}
