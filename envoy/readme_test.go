package envoy

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestREADMEEnvoySnippet checks the Envoy snippet of the README (the ```yaml block whose
// first line starts with "# envoy snippet": an http_filters list and a clusters list, to
// paste into one's own config). Put into a minimal bootstrap, a listener whose routes all
// answer with a direct_response, "envoy --mode validate" accepts it. Then it runs, with
// its cluster pointed at a live jwt-authz: the health check it names passes, and requests
// are decided by jwt-authz.
func TestREADMEEnvoySnippet(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var snippet map[string]any
	n := 0
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(b[1], "# envoy snippet") {
			n++
			if err := yaml.Unmarshal([]byte(b[1]), &snippet); err != nil {
				t.Fatalf("README envoy snippet: %v\n%s", err, b[1])
			}
		}
	}
	if n != 1 {
		t.Fatalf("README has %d envoy snippets, want 1", n)
	}
	filters, err := list(snippet, "http_filters")
	if err != nil {
		t.Fatalf("README envoy snippet: %v", err)
	}
	clusters, err := list(snippet, "clusters")
	if err != nil || len(clusters) != 1 {
		t.Fatalf("README envoy snippet: want 1 cluster (%v)", err)
	}

	t.Run("envoy --mode validate", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "envoy.yaml")
		writeFile(t, f, snippetBootstrap(t, filters, clusters, 18000, 19901))
		out, err := runEnvoy(t, "--mode", "validate", "-c", f, "--disable-hot-restart", "--log-level", "warning")
		if err != nil || !strings.HasSuffix(out, "OK") {
			t.Errorf("envoy --mode validate -c <README snippet in a bootstrap>: %v\n%s", err, out)
		}
	})

	t.Run("in front of jwt-authz", func(t *testing.T) {
		s := startStack(t, stackOptions{})
		name, _ := dig(clusters[0], "name")
		// The snippet's jwt-authz:9001 becomes this stack's jwt-authz (STRICT_DNS -> STATIC).
		if err := loopbackCluster(clusters[0], s.Authz); err != nil {
			t.Fatal(err)
		}
		p := freePorts(t)
		e := s.frontedBy(t, "envoy-readme", p.Listener, p.Admin, snippetBootstrap(t, filters, clusters, p.Listener, p.Admin))
		e.waitHealthy(t, name.(string), s.Authz)
		bearer := http.Header{"Authorization": {"Bearer " + s.login(t, "alice", "alice-password")}}
		if r := e.do(t, "GET", "/api/things", bearer, ""); r.status != 200 || string(r.body) != "allowed" {
			t.Errorf("GET /api/things (alice) = %d %s, want 200 allowed (the direct response)", r.status, clip(r.body))
		}
		e.do(t, "GET", "/api/things", nil, "").challenge(t, 401, "")
		e.do(t, "GET", "/admin/x", bearer, "").challenge(t, 403, "insufficient_scope")
	})
}

// snippetBootstrap is a minimal Envoy config around the snippet's http_filters and
// clusters: admin and one listener on 127.0.0.1, every route answered by a direct_response
// (once the filters let the request through).
func snippetBootstrap(t *testing.T, filters, clusters []any, listener, admin int) []byte {
	t.Helper()
	socket := func(port int) map[string]any {
		return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}
	}
	manager := map[string]any{
		"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"stat_prefix": "ingress_http",
		"route_config": map[string]any{"virtual_hosts": []any{map[string]any{
			"name": "all", "domains": []any{"*"},
			"routes": []any{map[string]any{
				"match":           map[string]any{"prefix": "/"},
				"direct_response": map[string]any{"status": 200, "body": map[string]any{"inline_string": "allowed"}},
			}},
		}}},
		"http_filters": filters,
	}
	out, err := yaml.Marshal(map[string]any{
		"admin": map[string]any{"address": socket(admin)},
		"static_resources": map[string]any{
			"listeners": []any{map[string]any{
				"name":    "ingress",
				"address": socket(listener),
				"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
					"name": "envoy.filters.network.http_connection_manager", "typed_config": manager,
				}}}},
			}},
			"clusters": clusters,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
