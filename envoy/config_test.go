package envoy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jwt-authz/jwt-authz/config"
)

// TestEnvoyValidate loads envoy.yaml exactly as docker-compose.yaml mounts it, and both
// loopback variants the end-to-end tests run, with "envoy --mode validate". Validate mode
// builds every listener, filter and cluster but resolves no DNS, so the compose host names
// (authz, demo-issuer, demo-upstream) need not exist here.
func TestEnvoyValidate(t *testing.T) {
	src, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"as mounted": "envoy.yaml"}
	p := ports{Listener: 18000, Admin: 19901, Authz: 19001, AuthzHTTP: 19002, Issuer: 18080, Upstream: 18081, Web: 18001}
	for name, raw := range map[string]bool{"loopback": false, "loopback encode_raw_headers": true} {
		out, err := loopbackEnvoyConfig(src, p, raw)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "envoy.yaml")
		if err := os.WriteFile(f, out, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			out, err := runEnvoy(t, "--mode", "validate", "-c", f, "--disable-hot-restart", "--log-level", "warning")
			if err != nil || !strings.HasSuffix(out, "OK") {
				t.Errorf("envoy --mode validate -c %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestEnvoyConfigShape checks what validate mode cannot: it accepts a per-route config keyed
// by the wrong filter name (so /login would silently require a token), a missing
// transport_api_version, fail-open settings and a default timeout. The fields and the
// reasons are the docs' §3 and §6.
func TestEnvoyConfigShape(t *testing.T) {
	root := readYAML(t, "envoy.yaml")
	get := func(v any, keys ...string) any {
		t.Helper()
		got, err := dig(v, keys...)
		if err != nil {
			t.Errorf("envoy.yaml: %v", err)
		}
		return got
	}
	want := func(what string, got, want any) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("envoy.yaml %s: (-want +got)\n%s", what, diff)
		}
	}

	want("admin port", get(root, "admin", "address", "socket_address", "port_value"), 9901)
	listeners, _ := list(root, "static_resources", "listeners")
	if len(listeners) > 0 {
		want("listener port", get(listeners[0], "address", "socket_address", "port_value"), 8000)
	}

	h, err := hcm(root)
	if err != nil {
		t.Fatal(err)
	}
	want("normalize_path", h["normalize_path"], true)
	want("merge_slashes", h["merge_slashes"], true)
	if a := h["path_with_escaped_slashes_action"]; a != "REJECT_REQUEST" && a != "UNESCAPE_AND_REDIRECT" {
		t.Errorf("envoy.yaml path_with_escaped_slashes_action = %v, want REJECT_REQUEST or UNESCAPE_AND_REDIRECT", a)
	}
	logFormat := ""
	if logs, err := list(h, "access_log"); err == nil && len(logs) == 1 {
		logFormat, _ = get(logs[0], "typed_config", "log_format", "text_format_source", "inline_string").(string)
	}
	// A ?access_token= credential must never reach the log: the path is logged without query.
	if strings.Contains(logFormat, "%REQ(:PATH") || strings.Contains(logFormat, "%REQ(X-ENVOY-ORIGINAL-PATH") {
		t.Errorf("envoy.yaml access log format %q logs the path with its query", logFormat)
	}
	for _, field := range []string{"%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%", "%REQ(:METHOD)%", "%RESPONSE_CODE%", "%RESPONSE_FLAGS%", "%RESPONSE_CODE_DETAILS%",
		"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%", "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:sub)%",
		"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:rule)%"} {
		if !strings.Contains(logFormat, field) {
			t.Errorf("envoy.yaml access log format %q lacks %s", logFormat, field)
		}
	}

	filters, _ := list(h, "http_filters")
	var names []string
	for _, f := range filters {
		names = append(names, get(f, "name").(string))
	}
	// CORS first: it answers preflights, which carry no token, before ext_authz sees them.
	want("http_filters", names, []string{corsName, extAuthzName, "envoy.filters.http.router"})
	f, err := extAuthzFilter(root)
	if err != nil {
		t.Fatal(err)
	}
	tc := get(f, "typed_config")
	want("ext_authz transport_api_version", get(tc, "transport_api_version"), "V3")
	want("ext_authz failure_mode_allow", get(tc, "failure_mode_allow"), false)
	want("ext_authz status_on_error", get(tc, "status_on_error", "code"), "ServiceUnavailable")
	want("ext_authz validate_mutations", get(tc, "validate_mutations"), true)
	want("ext_authz cluster", get(tc, "grpc_service", "envoy_grpc", "cluster_name"), "authz")
	if d, err := time.ParseDuration(get(tc, "grpc_service", "timeout").(string)); err != nil || d < 500*time.Millisecond || d > time.Second {
		t.Errorf("envoy.yaml ext_authz grpc_service.timeout = %v (%v), want 0.5s..1s", d, err)
	}

	// Routes: the exact POST /login and /.well-known/ go to the issuer without a check; the
	// rest goes to the upstream with one. Every per-route key is the filter's name.
	vhosts, err := list(h, "route_config", "virtual_hosts")
	if err != nil || len(vhosts) != 1 {
		t.Fatalf("envoy.yaml: want 1 virtual host (%v)", err)
	}
	cors := get(vhosts[0], "typed_per_filter_config", corsName)
	var origins []string
	if ms, err := list(cors, "allow_origin_string_match"); err == nil {
		for _, m := range ms {
			exact, _ := dig(m, "exact")
			origins = append(origins, fmt.Sprint(exact)) // exact only: no prefix or regex
		}
	}
	want("CORS allowed origins", origins, []string{"http://localhost:8001", "http://127.0.0.1:8001"})
	if v, _ := dig(cors, "allow_credentials"); v == true {
		t.Error("envoy.yaml CORS allow_credentials: true lets other origins send the cookie session")
	}
	want("CORS forward_not_matching_preflights", get(cors, "forward_not_matching_preflights"), false)
	routes, _ := list(vhosts[0], "routes")
	type route struct {
		Name, Path, Prefix, Method, Cluster string
		Disabled                            bool
		Context                             map[string]any
	}
	var got []route
	for _, r := range routes {
		rm := r.(map[string]any)
		rt := route{Name: get(r, "name").(string), Cluster: get(r, "route", "cluster").(string)}
		rt.Path, _ = rm["match"].(map[string]any)["path"].(string)
		rt.Prefix, _ = rm["match"].(map[string]any)["prefix"].(string)
		if hs, err := list(r, "match", "headers"); err == nil {
			for _, hd := range hs {
				if get(hd, "name") == ":method" {
					rt.Method, _ = get(hd, "string_match", "exact").(string)
				}
			}
		}
		per, _ := rm["typed_per_filter_config"].(map[string]any)
		for key, v := range per {
			if key != extAuthzName {
				t.Errorf("envoy.yaml route %s: typed_per_filter_config key %q is not the filter's name %q", rt.Name, key, extAuthzName)
			}
			vm := v.(map[string]any)
			rt.Disabled, _ = vm["disabled"].(bool)
			if ctx, ok := vm["check_settings"].(map[string]any); ok {
				rt.Context, _ = ctx["context_extensions"].(map[string]any)
			}
		}
		got = append(got, rt)
	}
	want("routes", got, []route{
		{Name: "login", Path: "/login", Method: "POST", Cluster: "issuer", Disabled: true},
		{Name: "logout", Path: "/logout", Method: "POST", Cluster: "issuer", Disabled: true},
		{Name: "web_page", Path: "/", Method: "GET", Cluster: "issuer", Disabled: true},
		{Name: "web_assets", Prefix: "/web/", Method: "GET", Cluster: "issuer", Disabled: true},
		{Name: "well_known", Prefix: "/.well-known/", Cluster: "issuer", Disabled: true},
		{Name: "protected", Prefix: "/", Cluster: "upstream", Context: map[string]any{"route": "protected"}},
	})

	clusters, _ := list(root, "static_resources", "clusters")
	for _, c := range clusters {
		if get(c, "name") != "authz" {
			continue
		}
		if _, err := dig(c, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"explicit_http_config", "http2_protocol_options"); err != nil {
			t.Errorf("envoy.yaml authz cluster is not HTTP/2 (gRPC fails at run time without it): %v", err)
		}
		// Envoy must not put more checks on one connection than jwt-authz accepts.
		streams, err := dig(c, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"explicit_http_config", "http2_protocol_options", "max_concurrent_streams")
		if n, ok := streams.(int); err != nil || !ok || n < 1 || n > config.DefaultGRPCMaxConcurrentStreams {
			t.Errorf("envoy.yaml authz cluster max_concurrent_streams = %v (%v), want 1..%d (jwt-authz's grpc_max_concurrent_streams)",
				streams, err, config.DefaultGRPCMaxConcurrentStreams)
		}
		hcs, err := list(c, "health_checks")
		if err != nil || len(hcs) != 1 {
			t.Fatalf("envoy.yaml authz cluster: want 1 health check (%v)", err)
		}
		want("authz health check", get(hcs[0], "grpc_health_check", "service_name"), "")
		if d, err := time.ParseDuration(get(hcs[0], "no_traffic_interval").(string)); err != nil || d > 5*time.Second {
			t.Errorf("envoy.yaml authz no_traffic_interval = %v (%v), want at most 5s (default 60s)", d, err)
		}
	}
}

// TestAuthzConfig loads jwt-authz.yaml with the server's own config package and checks the
// demo's promises; then "jwt-authz -check" accepts it, as shipped and as rewritten.
func TestAuthzConfig(t *testing.T) {
	c, err := config.Load("jwt-authz.yaml")
	if err != nil {
		t.Fatalf("config.Load(jwt-authz.yaml): %v", err)
	}
	if len(c.Providers) != 1 {
		t.Fatalf("providers: have %d, want 1", len(c.Providers))
	}
	p := c.Providers[0]
	type provider struct {
		Name, Issuer, JWKS  string
		Audiences, Algs     []string
		Claims              map[string]string
		ForwardToken        bool
		RefreshUnderAMinute bool
	}
	got := provider{Name: p.Name, Issuer: p.Issuer, Audiences: p.Audiences, Algs: p.Algorithms,
		Claims: p.ClaimsToHeaders, ForwardToken: *p.ForwardToken}
	if len(p.Keys) == 1 {
		got.JWKS = p.Keys[0].JWKSURI
		got.RefreshUnderAMinute = p.Keys[0].RefreshInterval.D() < time.Minute
	}
	if diff := cmp.Diff(provider{
		Name: "demo", Issuer: "http://demo-issuer:8080", JWKS: "http://demo-issuer:8080/.well-known/jwks.json",
		Audiences: []string{"demo-api"}, Algs: []string{"ES256", "RS256"},
		Claims:              map[string]string{"sub": "x-jwt-sub", "roles": "x-jwt-roles", "scope": "x-jwt-scope"},
		RefreshUnderAMinute: true,
	}, got); diff != "" {
		t.Errorf("jwt-authz.yaml provider (-want +got)\n%s", diff)
	}
	var rules []string
	for _, r := range c.Rules {
		rules = append(rules, r.Name)
	}
	if diff := cmp.Diff([]string{"public", "admin", "api"}, rules); diff != "" {
		t.Errorf("jwt-authz.yaml rules (-want +got)\n%s", diff)
	}
	if c.DefaultAction != "deny" {
		t.Errorf("jwt-authz.yaml default_action = %q, want deny", c.DefaultAction)
	}
	if len(c.Rules) == 3 {
		if r := c.Rules[1].Require; r == nil || !slices.Equal(r.Scopes, []string{"admin"}) {
			t.Errorf("jwt-authz.yaml rule admin: require = %+v, want scopes [admin]", r)
		}
	}

	bin := binary(t, "jwt-authz")
	src, err := os.ReadFile("jwt-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rewritten, err := loopbackAuthzConfig(src, ports{Authz: 19001, AuthzHTTP: 19002, Issuer: 18080})
	if err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(t.TempDir(), "jwt-authz.yaml")
	if err := os.WriteFile(loop, rewritten, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"jwt-authz.yaml", loop} {
		out, err := exec.Command(bin, "-check", "-config", f).CombinedOutput()
		if err != nil {
			t.Errorf("jwt-authz -check -config %s: %v\n%s", f, err, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, append(src, []byte("no_such_key: 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-check", "-config", bad).CombinedOutput(); err == nil {
		t.Errorf("jwt-authz -check -config <file with an unknown key> exited 0, want 1\n%s", out)
	}
}
