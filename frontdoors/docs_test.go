package frontdoors

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jwt-authz/jwt-authz/config"
)

// TestDocsExcerpts: every code block of docs/front-doors.md that names a file of this
// folder (```lang frontdoors/FILE) is a verbatim excerpt of it, so the docs show what the
// end-to-end tests run.
func TestDocsExcerpts(t *testing.T) {
	doc, err := os.ReadFile("../docs/front-doors.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```\\w+ frontdoors/(\\S+)\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	seen := map[string]bool{}
	for _, b := range blocks {
		file, excerpt := b[1], b[2]
		src, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("docs/front-doors.md quotes %s: %v", file, err)
			continue
		}
		if !strings.Contains(string(src), excerpt) {
			t.Errorf("docs/front-doors.md's excerpt of %s is not in the file:\n%s", file, excerpt)
		}
		seen[file] = true
	}
	for _, f := range []string{"jwt-authz.yaml", "envoy-http.yaml", "nginx.conf", "Caddyfile", "traefik-dynamic.yaml"} {
		if !seen[f] {
			t.Errorf("docs/front-doors.md quotes nothing of %s", f)
		}
	}
}

// TestConfigLoads: the jwt-authz config every front door test runs is valid as shipped.
func TestConfigLoads(t *testing.T) {
	c, err := config.Load("jwt-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAuthzAddress == "" || len(c.TrustedProxies()) == 0 {
		t.Errorf("jwt-authz.yaml: http_authz_address %q, trusted proxies %v; want both set", c.HTTPAuthzAddress, c.TrustedProxies())
	}
}
