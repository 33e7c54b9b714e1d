package envoy

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestResourceMetadata walks RFC 9728 discovery as an MCP or OAuth 2.1 client would,
// through a real Envoy: a request without a token gets a challenge naming the metadata
// URL; Envoy routes that URL (without ext_authz) to jwt-authz's HTTP listener, which
// serves the document; the document names the issuer, whose discovery document Envoy
// serves too; a token from that issuer is then accepted.
func TestResourceMetadata(t *testing.T) {
	// docs/tokens.md's example: its Envoy route is the one this Envoy runs.
	const resource = "https://api.example.com/mcp"
	const path = "/.well-known/oauth-protected-resource/mcp"
	route := docsRoute(t)
	s := startStack(t, stackOptions{
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			providers, err := list(root, "providers")
			if err != nil || len(providers) != 1 {
				t.Fatalf("jwt-authz.yaml: want 1 provider (%v)", err)
			}
			providers[0].(map[string]any)["resource_metadata"] = map[string]any{
				"resource": resource, "serve": true, "scopes_supported": []any{"read", "admin"},
			}
		},
		editEnvoy: func(t *testing.T, root map[string]any, p ports) {
			h, err := hcm(root)
			if err != nil {
				t.Fatal(err)
			}
			hosts, err := list(h, "route_config", "virtual_hosts")
			if err != nil || len(hosts) != 1 {
				t.Fatalf("envoy.yaml: want 1 virtual host (%v)", err)
			}
			vh := hosts[0].(map[string]any)
			vh["routes"] = append([]any{route}, vh["routes"].([]any)...)
			clusters, err := list(root, "static_resources", "clusters")
			if err != nil {
				t.Fatal(err)
			}
			root["static_resources"].(map[string]any)["clusters"] = append(clusters, map[string]any{
				"name": "authz_http", "type": "STATIC", "connect_timeout": "1s",
				"load_assignment": map[string]any{"cluster_name": "authz_http", "endpoints": []any{map[string]any{
					"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{"address": map[string]any{
						"socket_address": map[string]any{"address": "127.0.0.1", "port_value": p.AuthzHTTP},
					}}}},
				}}},
			})
		},
	})

	r := s.do(t, "GET", "/api/things", nil, "")
	r.challenge(t, 401, "")
	www := r.header.Get("WWW-Authenticate")
	want := `resource_metadata="https://api.example.com` + path + `"`
	if !strings.Contains(www, want) {
		t.Fatalf("GET /api/things without a token: WWW-Authenticate %q, want %s", www, want)
	}

	r = s.do(t, "GET", path, nil, "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s through Envoy = %d %q %s, want 200 application/json", path, r.status, r.header.Get("Content-Type"), clip(r.body))
	}
	var doc struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		Scopes               []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, clip(r.body))
	}
	// RFC 9728 §3.3: the document's resource is the one the URL was formed from.
	if doc.Resource != resource || !slices.Equal(doc.AuthorizationServers, []string{s.issuer}) || !slices.Equal(doc.Scopes, []string{"read", "admin"}) {
		t.Errorf("GET %s = %+v, want resource %s, authorization_servers [%s], scopes [read admin]", path, doc, resource, s.issuer)
	}

	// The authorization server's own metadata, as the client fetches it next.
	r = s.do(t, "GET", "/.well-known/openid-configuration", nil, "")
	var as struct{ Issuer string }
	if err := json.Unmarshal(r.body, &as); r.status != 200 || err != nil || as.Issuer != doc.AuthorizationServers[0] {
		t.Errorf("GET /.well-known/openid-configuration = %d issuer %q (%v), want 200 issuer %q", r.status, as.Issuer, err, doc.AuthorizationServers[0])
	}
	bearer := http.Header{"Authorization": {"Bearer " + s.login(t, "alice", "alice-password")}}
	s.do(t, "GET", "/api/things", bearer, "").upstream(t, 200)
	r = s.do(t, "GET", "/admin/users", bearer, "")
	r.challenge(t, 403, "insufficient_scope")
	if www := r.header.Get("WWW-Authenticate"); !strings.Contains(www, want) {
		t.Errorf("GET /admin/users (alice): WWW-Authenticate %q, want %s", www, want)
	}
}

// docsRoute is the Envoy route of docs/tokens.md (the ```yaml block whose first line starts
// with "# a route for the virtual host").
func docsRoute(t *testing.T) map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "tokens.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.HasPrefix(b[1], "# a route for the virtual host") {
			var routes []map[string]any
			if err := yaml.Unmarshal([]byte(b[1]), &routes); err != nil || len(routes) != 1 {
				t.Fatalf("docs/tokens.md route: want one route (%v)\n%s", err, b[1])
			}
			return routes[0]
		}
	}
	t.Fatal("docs/tokens.md has no Envoy route block")
	return nil
}
