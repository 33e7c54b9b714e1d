package envoy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The end-to-end tests run the very envoy.yaml and jwt-authz.yaml that docker-compose.yaml
// mounts. Only what differs between a compose network and one loopback interface is
// rewritten, on the parsed YAML (never by text substitution), and the rewrite fails loudly
// when the files stop having the shape it expects:
//
//   - Envoy's admin and listener addresses -> 127.0.0.1 and free ports;
//   - each cluster (authz, issuer, upstream) -> type STATIC, its one endpoint 127.0.0.1 and
//     that piece's free port (STRICT_DNS would also resolve 127.0.0.1, STATIC says so);
//   - optionally encode_raw_headers: true on the ext_authz filter (the second variant);
//   - jwt-authz's grpc_address, http_address and the jwks_uri host:port.
//
// The issuer string (iss) is not an address and stays as it is.

// ports is where each piece of the demo listens on 127.0.0.1.
type ports struct {
	Listener, Admin    int // Envoy
	Authz, AuthzHTTP   int // jwt-authz gRPC and HTTP (health)
	Issuer, Upstream   int
	IssuerAdmin        int // demo-issuer's admin listener (POST /rotate), when a test turns it on
	Web                int // demo-issuer's second origin for the demo page (-web-addr)
	Authz2, AuthzHTTP2 int // a second jwt-authz replica, when a test runs one
}

// freePorts picks distinct free ports by listening on 127.0.0.1:0 and closing. Another
// process could take one in between; on a test machine that is rare enough.
func freePorts(t *testing.T) ports {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	next := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen on 127.0.0.1:0: %v", err)
		}
		ls = append(ls, l)
		return l.Addr().(*net.TCPAddr).Port
	}
	return ports{Listener: next(), Admin: next(), Authz: next(), AuthzHTTP: next(), Issuer: next(), Upstream: next(),
		IssuerAdmin: next(), Web: next(), Authz2: next(), AuthzHTTP2: next()}
}

// clusterPorts maps envoy.yaml's cluster names to the piece of the demo behind each.
func (p ports) clusterPorts() map[string]int {
	return map[string]int{"authz": p.Authz, "issuer": p.Issuer, "upstream": p.Upstream}
}

// loopbackEnvoyConfig rewrites envoy.yaml for 127.0.0.1 and p; rawHeaders turns on the
// ext_authz filter's encode_raw_headers.
func loopbackEnvoyConfig(src []byte, p ports, rawHeaders bool) ([]byte, error) {
	var root map[string]any
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("envoy.yaml: %w", err)
	}
	if err := setSocket(root, "127.0.0.1", p.Admin, "admin", "address", "socket_address"); err != nil {
		return nil, err
	}
	listeners, err := list(root, "static_resources", "listeners")
	if err != nil {
		return nil, err
	}
	if len(listeners) != 1 {
		return nil, fmt.Errorf("envoy.yaml: want 1 listener, have %d", len(listeners))
	}
	if err := setSocket(listeners[0], "127.0.0.1", p.Listener, "address", "socket_address"); err != nil {
		return nil, err
	}

	clusters, err := list(root, "static_resources", "clusters")
	if err != nil {
		return nil, err
	}
	want := p.clusterPorts()
	for _, c := range clusters {
		name, _ := dig(c, "name")
		port, ok := want[fmt.Sprint(name)]
		if !ok {
			return nil, fmt.Errorf("envoy.yaml: cluster %v: the rewrite does not know where it lives", name)
		}
		delete(want, fmt.Sprint(name))
		if err := loopbackCluster(c, port); err != nil {
			return nil, fmt.Errorf("envoy.yaml: %w", err)
		}
	}
	if len(want) != 0 {
		return nil, fmt.Errorf("envoy.yaml: clusters %v are missing", want)
	}

	if err := loopbackCORSOrigins(root, p.Web); err != nil {
		return nil, err
	}
	if rawHeaders {
		f, err := extAuthzFilter(root)
		if err != nil {
			return nil, err
		}
		tc, err := dig(f, "typed_config")
		if err != nil {
			return nil, err
		}
		tc.(map[string]any)["encode_raw_headers"] = true
	}
	return yaml.Marshal(root)
}

// loopbackCORSOrigins points the CORS policy's allowed origins, the demo page's second
// origin on port 8001, at web.
func loopbackCORSOrigins(root map[string]any, web int) error {
	h, err := hcm(root)
	if err != nil {
		return err
	}
	vhosts, err := list(h, "route_config", "virtual_hosts")
	if err != nil || len(vhosts) != 1 {
		return fmt.Errorf("envoy.yaml: want 1 virtual host (%v)", err)
	}
	matches, err := list(vhosts[0], "typed_per_filter_config", corsName, "allow_origin_string_match")
	if err != nil {
		return fmt.Errorf("envoy.yaml: the CORS policy: %w", err)
	}
	for _, m := range matches {
		mm, _ := m.(map[string]any)
		u, err := url.Parse(fmt.Sprint(mm["exact"]))
		if err != nil || u.Port() != "8001" {
			return fmt.Errorf("envoy.yaml: CORS origin %v: want an exact origin on port 8001", mm["exact"])
		}
		u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(web))
		mm["exact"] = u.String()
	}
	return nil
}

// loopbackCluster makes cluster c, which has one endpoint, type STATIC at 127.0.0.1:port.
func loopbackCluster(c any, port int) error {
	name, _ := dig(c, "name")
	m, ok := c.(map[string]any)
	if !ok {
		return fmt.Errorf("cluster %v: not a mapping", name)
	}
	m["type"] = "STATIC"
	eps, err := list(c, "load_assignment", "endpoints")
	if err != nil {
		return fmt.Errorf("cluster %v: %w", name, err)
	}
	if len(eps) != 1 {
		return fmt.Errorf("cluster %v: want 1 locality, have %d", name, len(eps))
	}
	lbs, err := list(eps[0], "lb_endpoints")
	if err != nil || len(lbs) != 1 {
		return fmt.Errorf("cluster %v: want 1 lb_endpoint (%v)", name, err)
	}
	if err := setSocket(lbs[0], "127.0.0.1", port, "endpoint", "address", "socket_address"); err != nil {
		return fmt.Errorf("cluster %v: %w", name, err)
	}
	return nil
}

// loopbackAuthzConfig rewrites jwt-authz.yaml for 127.0.0.1 and p.
func loopbackAuthzConfig(src []byte, p ports) ([]byte, error) {
	var root map[string]any
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("jwt-authz.yaml: %w", err)
	}
	for key, port := range map[string]int{"grpc_address": p.Authz, "http_address": p.AuthzHTTP} {
		if _, ok := root[key]; !ok {
			return nil, fmt.Errorf("jwt-authz.yaml: %s is missing", key)
		}
		root[key] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	providers, err := list(root, "providers")
	if err != nil {
		return nil, err
	}
	n := 0
	for _, pr := range providers {
		keys, err := list(pr, "keys")
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			km := k.(map[string]any)
			raw, ok := km["jwks_uri"].(string)
			if !ok {
				continue
			}
			u, err := url.Parse(raw)
			if err != nil {
				return nil, fmt.Errorf("jwt-authz.yaml: jwks_uri %q: %w", raw, err)
			}
			u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Issuer))
			km["jwks_uri"] = u.String()
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("jwt-authz.yaml: no jwks_uri to point at the issuer")
	}
	return yaml.Marshal(root)
}

// extAuthzFilter returns the ext_authz entry of the listener's http_filters.
func extAuthzFilter(root map[string]any) (any, error) {
	filters, err := httpFilters(root)
	if err != nil {
		return nil, err
	}
	for _, f := range filters {
		if n, _ := dig(f, "name"); n == extAuthzName {
			return f, nil
		}
	}
	return nil, fmt.Errorf("envoy.yaml: no http filter named %s", extAuthzName)
}

// extAuthzName is the ext_authz filter's name in envoy.yaml, which is also the key of its
// per-route config (the docs' pitfall 14).
const extAuthzName = "envoy.filters.http.ext_authz"

// corsName is the CORS filter's name, also the key of its per-virtual-host policy.
const corsName = "envoy.filters.http.cors"

// hcm returns the listener's http_connection_manager typed_config.
func hcm(root map[string]any) (map[string]any, error) {
	listeners, err := list(root, "static_resources", "listeners")
	if err != nil {
		return nil, err
	}
	if len(listeners) != 1 {
		return nil, fmt.Errorf("envoy.yaml: want 1 listener, have %d", len(listeners))
	}
	chains, err := list(listeners[0], "filter_chains")
	if err != nil || len(chains) != 1 {
		return nil, fmt.Errorf("envoy.yaml: want 1 filter chain (%v)", err)
	}
	filters, err := list(chains[0], "filters")
	if err != nil || len(filters) != 1 {
		return nil, fmt.Errorf("envoy.yaml: want 1 network filter (%v)", err)
	}
	tc, err := dig(filters[0], "typed_config")
	if err != nil {
		return nil, err
	}
	m, ok := tc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("envoy.yaml: http_connection_manager typed_config is %T", tc)
	}
	return m, nil
}

func httpFilters(root map[string]any) ([]any, error) {
	h, err := hcm(root)
	if err != nil {
		return nil, err
	}
	return list(h, "http_filters")
}

// dig walks maps by key.
func dig(v any, keys ...string) (any, error) {
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not a mapping", strings.Join(keys[:i], "."))
		}
		if v, ok = m[k]; !ok {
			return nil, fmt.Errorf("%s: missing", strings.Join(keys[:i+1], "."))
		}
	}
	return v, nil
}

func list(v any, keys ...string) ([]any, error) {
	l, err := dig(v, keys...)
	if err != nil {
		return nil, err
	}
	s, ok := l.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a list", strings.Join(keys, "."))
	}
	return s, nil
}

func setSocket(v any, host string, port int, keys ...string) error {
	s, err := dig(v, keys...)
	if err != nil {
		return err
	}
	m, ok := s.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: not a mapping", strings.Join(keys, "."))
	}
	if _, ok := m["address"]; !ok {
		return fmt.Errorf("%s.address: missing", strings.Join(keys, "."))
	}
	m["address"] = host
	m["port_value"] = port
	return nil
}

// edited applies edit (nil: none) to the YAML document src, parsed, and returns the result.
func edited(t *testing.T, src []byte, p ports, edit func(*testing.T, map[string]any, ports)) []byte {
	t.Helper()
	if edit == nil {
		return src
	}
	var root map[string]any
	if err := yaml.Unmarshal(src, &root); err != nil {
		t.Fatal(err)
	}
	edit(t, root, p)
	out, err := yaml.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// clusterNamed returns the cluster called name of an Envoy config, for a test to change.
func clusterNamed(t *testing.T, root map[string]any, name string) map[string]any {
	t.Helper()
	clusters, err := list(root, "static_resources", "clusters")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clusters {
		if m, ok := c.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	t.Fatalf("envoy config: no cluster %q", name)
	return nil
}

// jwksSource returns the jwks_uri key entry of jwt-authz.yaml's one provider, for a test to
// change its refresh settings.
func jwksSource(t *testing.T, root map[string]any) map[string]any {
	t.Helper()
	providers, err := list(root, "providers")
	if err != nil || len(providers) != 1 {
		t.Fatalf("jwt-authz.yaml: want 1 provider (%v)", err)
	}
	srcs, err := list(providers[0], "keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range srcs {
		if m, ok := k.(map[string]any); ok && m["jwks_uri"] != nil {
			return m
		}
	}
	t.Fatal("jwt-authz.yaml: no jwks_uri key source")
	return nil
}

// readYAML parses a file of this folder into a generic tree.
func readYAML(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func TestLoopbackRewrite(t *testing.T) {
	src, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := ports{Listener: 1001, Admin: 1002, Authz: 1003, AuthzHTTP: 1004, Issuer: 1005, Upstream: 1006}
	for _, raw := range []bool{false, true} {
		out, err := loopbackEnvoyConfig(src, p, raw)
		if err != nil {
			t.Fatalf("loopbackEnvoyConfig(raw=%v): %v", raw, err)
		}
		s := string(out)
		for _, left := range []string{"0.0.0.0", "address: authz\n", "demo-issuer", "demo-upstream", "STRICT_DNS"} {
			if strings.Contains(s, left) {
				t.Errorf("loopbackEnvoyConfig(raw=%v) still has %q", raw, left)
			}
		}
		var got map[string]any
		if err := yaml.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		f, err := extAuthzFilter(got)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := dig(f, "typed_config", "encode_raw_headers")
		if raw && enc != true || !raw && enc != nil {
			t.Errorf("loopbackEnvoyConfig(raw=%v): encode_raw_headers = %v", raw, enc)
		}
		clusters, _ := list(got, "static_resources", "clusters")
		for _, c := range clusters {
			name, _ := dig(c, "name")
			eps, _ := list(c, "load_assignment", "endpoints")
			lbs, _ := list(eps[0], "lb_endpoints")
			addr, _ := dig(lbs[0], "endpoint", "address", "socket_address", "address")
			port, _ := dig(lbs[0], "endpoint", "address", "socket_address", "port_value")
			if addr != "127.0.0.1" || port != p.clusterPorts()[name.(string)] {
				t.Errorf("cluster %v: endpoint %v:%v, want 127.0.0.1:%d", name, addr, port, p.clusterPorts()[name.(string)])
			}
		}
	}

	asrc, err := os.ReadFile("jwt-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := loopbackAuthzConfig(asrc, p)
	if err != nil {
		t.Fatalf("loopbackAuthzConfig: %v", err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	uri, _ := dig(got, "providers")
	if g, w := got["grpc_address"], "127.0.0.1:1003"; g != w {
		t.Errorf("grpc_address = %v, want %v", g, w)
	}
	if g, w := got["http_address"], "127.0.0.1:1004"; g != w {
		t.Errorf("http_address = %v, want %v", g, w)
	}
	if s := fmt.Sprint(uri); !strings.Contains(s, "jwks_uri:http://127.0.0.1:1005/.well-known/jwks.json") || !strings.Contains(s, "issuer:http://demo-issuer:8080") {
		t.Errorf("providers = %s, want jwks_uri on 127.0.0.1:1005 and the issuer unchanged", s)
	}
}
