package extauthz

import (
	"testing"
)

// metadataConfig: api names the resource's metadata (RFC 9728); plain does not.
const metadataConfig = `
providers:
- name: api
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  resource_metadata: {resource: "https://api.example.com/mcp"}
- name: plain
  issuer: https://plain.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: admin
  match: {path_prefix: /admin}
  require: {providers: [api], scopes: [admin]}
- name: plain
  match: {path_prefix: /plain}
  require: {providers: [plain]}
- name: api
  match: {path_prefix: /}
  require: {providers: [api]}
`

// TestChallengeResourceMetadata: every challenge of a provider with resource metadata
// carries its URL (RFC 9728 §5.1), formed from the resource as §3.1 says; a provider
// without it challenges as before.
func TestChallengeResourceMetadata(t *testing.T) {
	p := newPolicy(t, metadataConfig, map[string]KeySource{"api": newFakeKeys("ec256"), "plain": newFakeKeys("ec256")})
	const meta = `, resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"`
	good := sig.mint(t, "ES256", "ec256", nil)
	expired := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["exp"] = testNow.Unix() - 3600 })
	for _, tc := range []struct {
		name string
		req  envoyRequest
		want string
	}{
		{"no token", envoyRequest{path: "/x"}, `Bearer realm="api"` + meta},
		{"expired token", envoyRequest{path: "/x", headers: bearer(expired)},
			`Bearer realm="api", error="invalid_token", error_description="the token has expired"` + meta},
		{"malformed token", envoyRequest{path: "/x", headers: bearer("not.a.jwt")},
			`Bearer realm="api", error="invalid_token", error_description="the token is malformed"` + meta},
		{"insufficient scope", envoyRequest{path: "/admin", headers: bearer(good)},
			`Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin"` + meta},
		{"provider without metadata", envoyRequest{path: "/plain"}, `Bearer realm="plain"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, d := check(t, p, tc.req.proto())
			var got string
			for _, h := range resp.GetDeniedResponse().GetHeaders() {
				if h.GetHeader().GetKey() == "www-authenticate" {
					got = h.GetHeader().GetValue()
				}
			}
			if got != tc.want {
				t.Errorf("Check(%s) %s: WWW-Authenticate = %q, want %q", tc.req.path, d.Reason, got, tc.want)
			}
		})
	}
}
