package extauthz

import (
	"encoding/json"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// responseConfig: demo forwards claims and the payload and keeps the token; the hidden,
// cookie and query providers strip the credential from wherever they read it; the keys of
// down are unavailable.
const responseConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-jwt-sub, roles: x-jwt-roles, level: x-jwt-level, admin: x-jwt-admin, org: x-jwt-org, note: x-jwt-note}
  forward_payload_header: x-jwt-payload
- name: hidden
  issuer: https://hidden.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  claims_to_headers: {sub: x-hidden-sub}
  forward_token: false
- name: cookie
  issuer: https://cookie.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  token_sources: [{cookie: access_token}]
  forward_token: false
- name: query
  issuer: https://query.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
  token_sources: [{query: access_token}]
  forward_token: false
- name: down
  issuer: https://down.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: public
  match: {path_prefix: /public}
  action: allow
- name: blocked
  match: {path_prefix: /blocked}
  action: deny
- name: admin
  match: {path_prefix: /admin}
  require: {providers: [demo], scopes: [admin, audit]}
- name: down
  match: {path_prefix: /down}
  require: {providers: [down]}
- name: api
  match: {path_prefix: /api}
  require: {}
`

func newResponsePolicy(t *testing.T) *Policy {
	t.Helper()
	down := newFakeKeys("ec256")
	down.unavailable.Store(true)
	return newPolicy(t, responseConfig, map[string]KeySource{
		"demo": newFakeKeys("ec256"), "hidden": newFakeKeys("ec256"), "cookie": newFakeKeys("ec256"),
		"query": newFakeKeys("ec256"), "down": down,
	})
}

// upstream is the header Envoy must overwrite on every version (envoy-extauthz.md §2.1).
func upstream(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		Append:       wrapperspb.Bool(false),
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// denied is a header of a denied response: append left unset (§2).
func denied(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}}
}

func meta(kv ...string) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return s
}

func denyWith(grpcCode int32, reason string, http typev3.StatusCode, body string, headers ...*corev3.HeaderValueOption) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: grpcCode, Message: reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: http},
			Headers: append([]*corev3.HeaderValueOption{denied("content-type", "application/json"), denied("cache-control", "no-store")}, headers...),
			Body:    body,
		}},
	}
}

func TestResponses(t *testing.T) {
	p := newResponsePolicy(t)
	exp := itoa(testNow.Unix() + 300)
	payload := `{"admin":true,"aud":"demo-api","exp":` + exp + `,"iss":"https://issuer.example","level":42.50,"note":"hi\r\nx-evil: 1","org":{"id":7,"name":"Acme"},"roles":["reader","writer"],"sub":"alice"}`
	rich := signBytes(t, "ES256", privateKey("ec256"), []byte(`{"alg":"ES256","kid":"ec256"}`), []byte(payload))
	plain := sig.mint(t, "ES256", "ec256", nil)
	onlyRead := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["scope"] = "read admin" })
	expired := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["exp"] = testNow.Unix() - 3600 })
	other := func(iss string) string {
		return sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["iss"], c["sub"] = iss, "bob" })
	}
	allInjectable := []string{"x-hidden-sub", "x-jwt-admin", "x-jwt-level", "x-jwt-note", "x-jwt-org", "x-jwt-payload", "x-jwt-roles", "x-jwt-sub"}

	tests := []struct {
		name string
		req  envoyRequest
		want *authv3.CheckResponse
	}{{
		name: "allow with claims, payload and the token kept",
		req:  envoyRequest{path: "/api/items", headers: bearer(rich)},
		want: &authv3.CheckResponse{
			Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					upstream("x-jwt-admin", "true"),
					upstream("x-jwt-level", "42.50"), // as the issuer wrote it
					upstream("x-jwt-org", `{"id":7,"name":"Acme"}`),
					upstream("x-jwt-roles", "reader,writer"),
					upstream("x-jwt-sub", "alice"),
					upstream("x-jwt-payload", b64([]byte(payload))),
				},
				// x-jwt-note carries CR/LF: not forwarded, and a client copy is removed.
				HeadersToRemove: []string{"x-hidden-sub", "x-jwt-note"},
			}},
			DynamicMetadata: meta("decision", "allow", "reason", "allowed", "rule", "api", "provider", "demo", "iss", "https://issuer.example", "sub", "alice"),
		},
	}, {
		name: "allow without a token removes every injectable header",
		req:  envoyRequest{path: "/public/a.css", headers: hdrs("x-jwt-sub", "admin", "x-jwt-payload", "e30")},
		want: &authv3.CheckResponse{
			Status:          &rpcstatus.Status{},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: allInjectable}},
			DynamicMetadata: meta("decision", "allow", "reason", "public", "rule", "public"),
		},
	}, {
		name: "allow with forward_token false strips authorization",
		req:  envoyRequest{path: "/api/items", headers: bearer(other("https://hidden.example"))},
		want: &authv3.CheckResponse{
			Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{upstream("x-hidden-sub", "bob")},
				HeadersToRemove: []string{"authorization", "x-jwt-admin", "x-jwt-level", "x-jwt-note", "x-jwt-org", "x-jwt-payload", "x-jwt-roles", "x-jwt-sub"},
			}},
			DynamicMetadata: meta("decision", "allow", "reason", "allowed", "rule", "api", "provider", "hidden", "iss", "https://hidden.example", "sub", "bob"),
		},
	}, {
		name: "allow from a cookie rewrites the cookie header",
		req:  envoyRequest{path: "/api/items", rawHeader: true, headers: hdrs("cookie", "theme=dark; access_token="+other("https://cookie.example"), "cookie", "lang=en")},
		want: &authv3.CheckResponse{
			Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{upstream("cookie", "theme=dark; lang=en")},
				HeadersToRemove: allInjectable,
			}},
			DynamicMetadata: meta("decision", "allow", "reason", "allowed", "rule", "api", "provider", "cookie", "iss", "https://cookie.example", "sub", "bob"),
		},
	}, {
		name: "allow from the only cookie removes the cookie header",
		req:  envoyRequest{path: "/api/items", headers: hdrs("cookie", "access_token="+other("https://cookie.example"))},
		want: &authv3.CheckResponse{
			Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				HeadersToRemove: append([]string{"cookie"}, allInjectable...),
			}},
			DynamicMetadata: meta("decision", "allow", "reason", "allowed", "rule", "api", "provider", "cookie", "iss", "https://cookie.example", "sub", "bob"),
		},
	}, {
		name: "allow from a query parameter removes the parameter",
		req:  envoyRequest{path: "/api/items?page=2&access_token=" + other("https://query.example")},
		want: &authv3.CheckResponse{
			Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				HeadersToRemove:         allInjectable,
				QueryParametersToRemove: []string{"access_token"},
			}},
			DynamicMetadata: meta("decision", "allow", "reason", "allowed", "rule", "api", "provider", "query", "iss", "https://query.example", "sub", "bob"),
		},
	}, {
		name: "401 without a token has no error code",
		req:  envoyRequest{path: "/api/items"},
		want: withMeta(denyWith(16, "missing_token", typev3.StatusCode_Unauthorized,
			`{"error":"unauthorized","error_description":"a bearer token is required","reason":"missing_token"}`,
			denied("www-authenticate", `Bearer realm="demo"`)),
			"decision", "deny", "reason", "missing_token", "rule", "api"),
	}, {
		name: "401 invalid_token",
		req:  envoyRequest{path: "/api/items", headers: bearer(expired)},
		want: withMeta(denyWith(16, "expired", typev3.StatusCode_Unauthorized,
			`{"error":"invalid_token","error_description":"the token has expired","reason":"expired"}`,
			denied("www-authenticate", `Bearer realm="demo", error="invalid_token", error_description="the token has expired"`)),
			"decision", "deny", "reason", "expired", "rule", "api", "provider", "demo"),
	}, {
		name: "400 invalid_request",
		req:  envoyRequest{path: "/api/items", rawHeader: true, headers: hdrs("authorization", "Bearer "+plain, "authorization", "Bearer "+plain)},
		want: withMeta(denyWith(3, "multiple_tokens", typev3.StatusCode_BadRequest,
			`{"error":"invalid_request","error_description":"more than one credential in the request","reason":"multiple_tokens"}`,
			denied("www-authenticate", `Bearer realm="demo", error="invalid_request", error_description="more than one credential in the request"`)),
			"decision", "deny", "reason", "multiple_tokens", "rule", "api"),
	}, {
		name: "403 insufficient_scope",
		req:  envoyRequest{path: "/admin/users", headers: bearer(onlyRead)},
		want: withMeta(denyWith(7, "insufficient_scope", typev3.StatusCode_Forbidden,
			`{"error":"insufficient_scope","error_description":"the token lacks a required scope","reason":"insufficient_scope"}`,
			denied("www-authenticate", `Bearer realm="demo", error="insufficient_scope", error_description="the token lacks a required scope", scope="admin audit"`)),
			"decision", "deny", "reason", "insufficient_scope", "rule", "admin", "provider", "demo", "iss", "https://issuer.example", "sub", "alice"),
	}, {
		name: "403 rule deny has no challenge",
		req:  envoyRequest{path: "/blocked", headers: bearer(plain)},
		want: withMeta(denyWith(7, "rule_deny", typev3.StatusCode_Forbidden,
			`{"error":"access_denied","error_description":"access to this resource is denied","reason":"rule_deny"}`),
			"decision", "deny", "reason", "rule_deny", "rule", "blocked"),
	}, {
		name: "403 no rule has no challenge",
		req:  envoyRequest{path: "/elsewhere"},
		want: withMeta(denyWith(7, "no_matching_rule", typev3.StatusCode_Forbidden,
			`{"error":"access_denied","error_description":"no rule allows this request","reason":"no_matching_rule"}`),
			"decision", "deny", "reason", "no_matching_rule"),
	}, {
		name: "503 keys unavailable",
		req:  envoyRequest{path: "/down", headers: bearer(other("https://down.example"))},
		want: withMeta(denyWith(14, "keys_unavailable", typev3.StatusCode_ServiceUnavailable,
			`{"error":"temporarily_unavailable","error_description":"signing keys are temporarily unavailable","reason":"keys_unavailable"}`,
			denied("retry-after", "5")),
			"decision", "deny", "reason", "keys_unavailable", "rule", "down", "provider", "down"),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, d := check(t, p, tc.req.proto())
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Check(%s) mismatch (-want +got):\n%s", tc.req.path, diff)
			}
			if body := got.GetDeniedResponse().GetBody(); !d.Allowed && !json.Valid([]byte(body)) {
				t.Errorf("Check(%s) body = %q, want JSON", tc.req.path, body)
			}
		})
	}
}

func withMeta(r *authv3.CheckResponse, kv ...string) *authv3.CheckResponse {
	r.DynamicMetadata = meta(kv...)
	return r
}

// TestResponseClaimHeaderValues: how each JSON type becomes a header value, and which values
// are never forwarded.
func TestResponseClaimHeaderValues(t *testing.T) {
	p := newResponsePolicy(t)
	tests := []struct {
		name  string
		roles string // raw JSON of the roles claim
		want  string // "" means the header is absent and removed
	}{
		{"string", `"reader"`, "reader"},
		{"empty string", `""`, ""},
		{"integer", `7`, "7"},
		{"exponent as written", `1e3`, "1e3"},
		{"negative decimal", `-0.10`, "-0.10"},
		{"true", `true`, "true"},
		{"false", `false`, "false"},
		{"array of strings", `["a","b","c"]`, "a,b,c"},
		{"array of mixed", `["a",1,true,{"k":"v"},[2]]`, `a,1,true,{"k":"v"},[2]`},
		{"empty array", `[]`, ""},
		{"object", `{"b":[1,2],"a":"x"}`, `{"a":"x","b":[1,2]}`},
		{"null", `null`, ""},
		{"line feed", `"a\nb"`, ""},
		{"carriage return", `"a\rb"`, ""},
		{"NUL", `"a\u0000b"`, ""},
		{"DEL", `"a\u007fb"`, ""},
		{"line feed in an array", `["a","b\nc"]`, ""},
		{"tab is fine", `"a\tb"`, "a\tb"},
		{"UTF-8 is fine", `"Zoë"`, "Zoë"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := `{"iss":"https://issuer.example","aud":"demo-api","exp":` + itoa(testNow.Unix()+300) + `,"roles":` + tc.roles + `}`
			tok := signBytes(t, "ES256", privateKey("ec256"), []byte(`{"alg":"ES256","kid":"ec256"}`), []byte(payload))
			resp, d := check(t, p, envoyRequest{headers: bearer(tok)}.proto())
			if !d.Allowed {
				t.Fatalf("Check(roles %s) = %s, want allowed", tc.roles, d.Reason)
			}
			ok := resp.GetOkResponse()
			got, set := "", false
			for _, h := range ok.GetHeaders() {
				if h.GetHeader().GetKey() == "x-jwt-roles" {
					got, set = h.GetHeader().GetValue(), true
				}
			}
			removed := false
			for _, h := range ok.GetHeadersToRemove() {
				removed = removed || h == "x-jwt-roles"
			}
			wantSet := tc.want != "" || tc.name == "empty string" || tc.name == "empty array"
			if got != tc.want || set != wantSet || removed == wantSet {
				t.Errorf("Check(roles %s) x-jwt-roles = %q (set %v, removed %v), want %q (set %v)", tc.roles, got, set, removed, tc.want, wantSet)
			}
		})
	}
}
