package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/keys"
)

// placeholder stands for the token in testdata/*.json; the fixtures are CheckRequests as
// Envoy sends them and the token is minted at test time. In header_map fixtures raw_value
// is bytes, so protojson shows it base64-encoded, as Envoy's own JSON dumps do.
const placeholder = "{{token}}"

// integrationConfig mirrors the example: keys come from a JWKS URL (an httptest
// server here); the partner's JWKS server answers 500.
const integrationConfig = `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [RS256, ES256, EdDSA]
  keys: [{jwks_uri: %s}]
  token_sources:
  - {header: authorization, prefix: Bearer}
  - {cookie: access_token}
  claims_to_headers: {sub: x-jwt-sub, roles: x-jwt-roles}
  forward_payload_header: x-jwt-payload
- name: partner
  issuer: https://partner.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_uri: %s}]
rules:
- name: public
  match: {path_prefix: /public}
  action: allow
- name: admin
  match: {path_prefix: /admin, methods: [POST, DELETE]}
  require: {providers: [demo], scopes: [admin]}
- name: partner
  match: {path_prefix: /partner}
  require: {providers: [partner]}
- name: api
  match: {path_prefix: /, context_extensions: {route: protected}}
  require: {providers: [demo]}
default_action: deny
`

// jwksServer serves the public halves of the named test keys as a JWKS.
func jwksServer(t *testing.T, kids ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, kid := range kids {
		set.Keys = append(set.Keys, *verificationKey(kid, ""))
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// startServer runs the ext_authz gRPC service on 127.0.0.1:0 with keys fetched over HTTP
// by keys.Set, and returns a client connected to it. The service is served as
// cmd/jwt-authz serves it (Register, on the wire form), or with generated set through
// grpc-go's generated code, for embedders.
func startServer(t *testing.T, opts Options, generated bool) authv3.AuthorizationClient {
	t.Helper()
	jwks, _ := jwksServer(t, "rsa", "ec256", "ed")
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream unavailable", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)

	text := fmt.Sprintf("grpc_address: 127.0.0.1:0\n"+integrationConfig, jwks.URL+"/jwks.json", broken.URL+"/jwks.json")
	cfg, err := config.Parse([]byte(text), t.TempDir())
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	sources := map[string]KeySource{}
	for _, p := range cfg.Providers {
		set, err := keys.NewSet(p.Issuer, p.Keys, cfg.Path, keys.Options{})
		if err != nil {
			t.Fatalf("keys.NewSet(%s): %v", p.Name, err)
		}
		if err := set.Start(t.Context()); err != nil {
			t.Fatalf("Set.Start(%s): %v", p.Name, err)
		}
		sources[p.Name] = set
	}
	policy, err := NewPolicy(cfg, sources)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}

	var srv *grpc.Server
	if generated {
		srv = grpc.NewServer()
		authv3.RegisterAuthorizationServer(srv, NewServer(policy, opts))
	} else {
		srv = grpc.NewServer(CodecOption())
		NewServer(policy, opts).Register(srv)
	}
	return serve(t, srv)
}

// serve runs srv on 127.0.0.1:0 until the test ends and returns a client connected to it.
func serve(t *testing.T, srv *grpc.Server) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// loadFixture reads testdata/name and puts token where the placeholder is.
func loadFixture(t testing.TB, name, token string) *authv3.CheckRequest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	req := &authv3.CheckRequest{}
	if err := protojson.Unmarshal(data, req); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return req
	}
	// Envoy fills exactly one of the two encodings, with the pseudo-headers (§1).
	if (h.GetHeaders() == nil) == (h.GetHeaderMap() == nil) {
		t.Fatalf("%s: want exactly one of headers and header_map", name)
	}
	r := newRequest(req.GetAttributes())
	for _, k := range []string{":authority", ":method", ":path", ":scheme", "x-request-id"} {
		if _, n := r.header(k); n != 1 {
			t.Fatalf("%s: header %s appears %d times, want once", name, k, n)
		}
	}
	for k, v := range h.GetHeaders() {
		h.Headers[k] = strings.ReplaceAll(v, placeholder, token)
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		hv.RawValue = bytes.ReplaceAll(hv.GetRawValue(), []byte(placeholder), []byte(token))
	}
	return req
}

func TestServerIntegration(t *testing.T) {
	t.Run("wire", func(t *testing.T) { testServerIntegration(t, false) })
	t.Run("generated", func(t *testing.T) { testServerIntegration(t, true) })
}

func testServerIntegration(t *testing.T, generated bool) {
	client := startServer(t, Options{Now: func() time.Time { return testNow }}, generated)
	scoped := func(_, c map[string]any) { c["scope"] = "openid admin" }
	tests := []struct {
		name    string
		fixture string
		token   string
		status  int // HTTP status, 200 for allow
		code    int32
		reason  Reason
	}{
		{name: "RS256 in headers", fixture: "get_orders.headers.json", token: sig.mint(t, "RS256", "rsa", nil), status: 200, reason: ReasonAllowed},
		{name: "ES256 in header_map", fixture: "get_orders.header_map.json", token: sig.mint(t, "ES256", "ec256", nil), status: 200, reason: ReasonAllowed},
		{name: "EdDSA in header_map", fixture: "get_orders.header_map.json", token: sig.mint(t, "EdDSA", "ed", nil), status: 200, reason: ReasonAllowed},
		{name: "token in the second cookie header", fixture: "cookie.header_map.json", token: sig.mint(t, "ES256", "ec256", nil), status: 200, reason: ReasonAllowed},
		{name: "admin with the scope", fixture: "delete_user.header_map.json", token: sig.mint(t, "ES256", "ec256", scoped), status: 200, reason: ReasonAllowed},
		{name: "admin without the scope", fixture: "delete_user.header_map.json", token: sig.mint(t, "ES256", "ec256", nil), status: 403, code: 7, reason: ReasonScope},
		{name: "public without a token", fixture: "public_asset.headers.json", status: 200, reason: ReasonPublic},
		{name: "no token", fixture: "no_token.headers.json", status: 401, code: 16, reason: ReasonMissingToken},
		{name: "expired", fixture: "get_orders.headers.json", token: sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["exp"] = testNow.Unix() - 600 }), status: 401, code: 16, reason: ReasonExpired},
		{name: "kid the JWKS does not have", fixture: "get_orders.headers.json", token: sig.mint(t, "ES256", "ec384", nil), status: 401, code: 16, reason: ReasonUnknownKey},
		{name: "HS256 naming a JWKS key", fixture: "get_orders.headers.json", token: sig.mint(t, "HS256", "hs256", func(h, _ map[string]any) { h["kid"] = "rsa" }), status: 401, code: 16, reason: ReasonAlgorithm},
		{name: "two authorization entries in header_map", fixture: "two_authorization.header_map.json", token: sig.mint(t, "ES256", "ec256", nil), status: 400, code: 3, reason: ReasonMultipleTokens},
		{name: "authorization joined by Envoy", fixture: "joined_authorization.headers.json", token: sig.mint(t, "ES256", "ec256", nil), status: 400, code: 3, reason: ReasonMultipleTokens},
		{name: "partner keys unavailable", fixture: "partner_down.headers.json", token: sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["iss"] = "https://partner.example" }), status: 503, code: 14, reason: ReasonKeysUnavailable},
		{name: "route without a rule", fixture: "unrouted.headers.json", token: sig.mint(t, "ES256", "ec256", nil), status: 403, code: 7, reason: ReasonNoRule},
		{name: "TCP check", fixture: "tcp.json", status: 403, code: 7, reason: ReasonNonHTTPDeny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, loadFixture(t, tc.fixture, tc.token))
			if err != nil {
				t.Fatalf("Check(%s) error = %v, want a response (errors are outages to Envoy)", tc.fixture, err)
			}
			reason := Reason(resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue())
			status := int(resp.GetDeniedResponse().GetStatus().GetCode())
			if resp.GetOkResponse() != nil {
				status = 200
			}
			if status != tc.status || resp.GetStatus().GetCode() != tc.code || reason != tc.reason {
				t.Errorf("Check(%s) = %d code %d %s, want %d code %d %s",
					tc.fixture, status, resp.GetStatus().GetCode(), reason, tc.status, tc.code, tc.reason)
			}
			if reason == ReasonAllowed {
				var sub string
				for _, h := range resp.GetOkResponse().GetHeaders() {
					if h.GetHeader().GetKey() == "x-jwt-sub" && !h.GetAppend().GetValue() {
						sub = h.GetHeader().GetValue()
					}
				}
				if sub != "alice" {
					t.Errorf("Check(%s) x-jwt-sub = %q, want alice with append false", tc.fixture, sub)
				}
			}
		})
	}
}

// TestServerLog: one line per decision with the facts an operator needs, and never the
// credential in any form.
func TestServerLog(t *testing.T) {
	p := newVerifyFixture(t).policy
	var buf bytes.Buffer
	var observed []Decision
	s := NewServer(p, Options{
		DecisionLog: &buf,
		Now:         func() time.Time { return testNow },
		Observe:     func(d Decision, _ time.Duration) { observed = append(observed, d) },
	})
	valid := sig.mint(t, "ES256", "ec256", nil)
	forged := sig.mint(t, "ES256", "attacker-ec", func(h, _ map[string]any) { h["kid"] = "ec256" })
	tests := []struct {
		name     string
		token    string
		decision string
		reason   Reason
		sub      string
	}{
		{name: "allow", token: valid, decision: "allow", reason: ReasonAllowed, sub: "alice"},
		{name: "deny", token: forged, decision: "deny", reason: ReasonSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			req := envoyRequest{path: "/api/items?page=2", headers: bearer(tc.token)}.proto()
			if _, err := s.Check(t.Context(), req); err != nil {
				t.Fatalf("Check(%s) error = %v", tc.name, err)
			}
			line := buf.String()
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil || strings.Count(line, "\n") != 1 {
				t.Fatalf("Check(%s) logged %q, want one JSON line", tc.name, line)
			}
			want := map[string]any{
				"decision": tc.decision, "reason": string(tc.reason), "rule": "api", "provider": "demo",
				"kid": "ec256", "path": "/api/items", "x-request-id": "5d1f0c7e-3f6a-4d0b-9a51-7c1e2b3a4d5e",
				"level": "INFO", "msg": "decision", "cached": false,
			}
			if tc.sub != "" {
				want["iss"], want["sub"] = "https://issuer.example", tc.sub
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("Check(%s) log %s = %v, want %v", tc.name, k, got[k], v)
				}
			}
			for _, k := range []string{"iss", "sub", "duration"} {
				if _, ok := got[k]; !ok {
					t.Errorf("Check(%s) log has no %s: %s", tc.name, k, line)
				}
			}
			_, _, signature := segments(tc.token)
			for what, secret := range map[string]string{
				"token": tc.token, "signature": signature, "authorization header": "Bearer " + tc.token,
			} {
				if strings.Contains(line, secret) {
					t.Errorf("Check(%s) log contains the %s: %s", tc.name, what, line)
				}
			}
		})
	}
	if len(observed) != 2 || !observed[0].Allowed || observed[1].Reason != ReasonSignature {
		t.Errorf("Observe saw %+v, want the allow and the deny", observed)
	}
}

func TestServerLogSampling(t *testing.T) {
	p := newVerifyFixture(t).policy
	var buf bytes.Buffer
	none := 0.0
	s := NewServer(p, Options{DecisionLog: &buf, Now: func() time.Time { return testNow }, AllowSampleRate: &none})
	s.Check(t.Context(), envoyRequest{headers: bearer(sig.mint(t, "ES256", "ec256", nil))}.proto())
	if buf.Len() != 0 {
		t.Errorf("Check(allow) with allow_sample_rate 0 logged %q, want nothing", buf.String())
	}
	s.Check(t.Context(), envoyRequest{}.proto())
	if !strings.Contains(buf.String(), `"reason":"missing_token"`) {
		t.Errorf("Check(deny) with allow_sample_rate 0 logged %q, want the denial", buf.String())
	}
}

func jsonLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// panicKeys is a KeySource with a bug.
type panicKeys struct{ fakeKeys }

func (*panicKeys) Lookup(context.Context, string) (*jose.JSONWebKey, bool, error) {
	panic("key source bug")
}

// TestServerPanic: a bug becomes a 500 denial, never an RPC error that failure_mode_allow
// would let through, and never a crash.
func TestServerPanic(t *testing.T) {
	p := newPolicy(t, `
providers:
- name: demo
  issuer: https://issuer.example
  audiences: [demo-api]
  algorithms: [ES256]
  keys: [{jwks_file: unused.json}]
rules:
- name: api
  match: {path_prefix: /}
  require: {}
`, map[string]KeySource{"demo": &panicKeys{}})
	var buf, decisions bytes.Buffer
	s := NewServer(p, Options{Logger: jsonLogger(&buf), DecisionLog: &decisions, Now: func() time.Time { return testNow }})
	tok := sig.mint(t, "ES256", "ec256", nil)
	resp, err := s.Check(t.Context(), envoyRequest{headers: bearer(tok)}.proto())
	if err != nil {
		t.Fatalf("Check(panicking key source) error = %v, want a denial", err)
	}
	if code, http := resp.GetStatus().GetCode(), resp.GetDeniedResponse().GetStatus().GetCode(); code != 13 || http != 500 {
		t.Errorf("Check(panicking key source) = code %d HTTP %d, want 13 and 500", code, http)
	}
	if strings.Contains(buf.String(), tok) {
		t.Errorf("panic log contains the token: %s", buf.String())
	}
	if !strings.Contains(decisions.String(), `"decision":"deny","reason":"internal_error"`) {
		t.Errorf("decision log after a panic = %q, want the denial", decisions.String())
	}
}

func TestServerSetPolicy(t *testing.T) {
	allowAll := newPolicy(t, "default_action: allow\n", nil)
	denyAll := newPolicy(t, "default_action: deny\n", nil)
	s := NewServer(allowAll, Options{})
	req := envoyRequest{}.proto()
	if resp, _ := s.Check(t.Context(), req); resp.GetOkResponse() == nil {
		t.Errorf("Check() under allow-all = %v, want allow", resp)
	}
	s.SetPolicy(denyAll)
	if s.Policy() != denyAll {
		t.Errorf("Policy() after SetPolicy is not the new policy")
	}
	if resp, _ := s.Check(t.Context(), req); resp.GetDeniedResponse() == nil {
		t.Errorf("Check() after SetPolicy(deny-all) = %v, want deny", resp)
	}
}

// TestRegisterRunsInterceptors: a unary interceptor installed on the gRPC server sees the
// Check calls Register serves, as it would with the generated registration.
func TestRegisterRunsInterceptors(t *testing.T) {
	var calls atomic.Int32
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == authv3.Authorization_Check_FullMethodName {
			calls.Add(1)
		}
		return h(ctx, req)
	}
	srv := grpc.NewServer(CodecOption(), grpc.UnaryInterceptor(count))
	NewServer(newPolicy(t, "default_action: allow\n", nil), Options{}).Register(srv)
	resp, err := serve(t, srv).Check(t.Context(), envoyRequest{}.proto())
	if err != nil || resp.GetOkResponse() == nil || calls.Load() != 1 {
		t.Fatalf("Check = %v, %v after %d interceptor calls; want an allow after 1", resp, err, calls.Load())
	}
}
