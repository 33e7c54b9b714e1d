package envoy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// The in-process face: Envoy 1.40 loading envoy/module (a Go c-shared library) as an HTTP
// filter, on the same jwt-authz config file as the server. See docs/in-process.md.

// moduleName is what Envoy's dynamic_module_config names: it loads lib<name>.so from
// $ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
const moduleName = "jwt_authz"

// moduleFilterName is the module filter's name in http_filters and typed_per_filter_config.
const moduleFilterName = "jwt_authz"

var (
	moduleOnce sync.Once
	moduleDir  string
	moduleErr  error
)

// moduleLibrary builds envoy/module once per test binary and returns the folder holding
// lib<moduleName>.so. The library is never built with the race detector: Envoy's process
// does not have the race runtime.
func moduleLibrary(t *testing.T) string {
	t.Helper()
	moduleOnce.Do(func() {
		moduleDir = filepath.Join(binDir, "module")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-buildmode=c-shared",
			"-o", filepath.Join(moduleDir, "lib"+moduleName+".so"), "./envoy/module")
		cmd.Dir = repoRoot
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			moduleErr = fmt.Errorf("go build -buildmode=c-shared ./envoy/module: %w\n%s", err, out.Bytes())
		}
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return moduleDir
}

// useModule returns an envoy.yaml edit that puts the module where the ext_authz filter
// was, loading filterConfig (a config file's path or its YAML). The routes that disable
// ext_authz disable the module instead (Envoy's generic per-route FilterConfig), and the
// access log reads the module's dynamic metadata namespace.
func useModule(filterConfig string) func(*testing.T, map[string]any, ports) {
	return func(t *testing.T, root map[string]any, _ ports) {
		t.Helper()
		h, err := hcm(root)
		if err != nil {
			t.Fatal(err)
		}
		filters, err := list(h, "http_filters")
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range filters {
			if f.(map[string]any)["name"] == extAuthzName {
				filters[i] = moduleFilter(t, filterConfig)
			}
		}
		vhosts, err := list(h, "route_config", "virtual_hosts")
		if err != nil {
			t.Fatal(err)
		}
		for _, vh := range vhosts {
			routes, _ := list(vh, "routes")
			for _, r := range routes {
				per, _ := r.(map[string]any)["typed_per_filter_config"].(map[string]any)
				ea, ok := per[extAuthzName].(map[string]any)
				if !ok {
					continue
				}
				delete(per, extAuthzName)
				if ea["disabled"] == true {
					per[moduleFilterName] = moduleDisabled(t)
				}
			}
		}
		logs, err := list(h, "access_log")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range logs {
			src, err := dig(l, "typed_config", "log_format", "text_format_source")
			if err != nil {
				t.Fatal(err)
			}
			m := src.(map[string]any)
			format := strings.ReplaceAll(m["inline_string"].(string), "DYNAMIC_METADATA("+extAuthzName+":", "DYNAMIC_METADATA("+moduleName+":")
			// The three keys the demo's format does not show, so that every key the module
			// writes is read back from Envoy.
			m["inline_string"] = strings.Replace(format, " id=", " decision=%DYNAMIC_METADATA("+moduleName+":decision)%"+
				" provider=%DYNAMIC_METADATA("+moduleName+":provider)% iss=%DYNAMIC_METADATA("+moduleName+":iss)% id=", 1)
		}
	}
}

// moduleFilter is the http_filters entry of docs/in-process.md that loads the module, with
// its filter config (a config file's path) replaced by filterConfig: the tests run the doc.
func moduleFilter(t *testing.T, filterConfig string) map[string]any {
	t.Helper()
	var entries []map[string]any
	if err := yaml.Unmarshal([]byte(inProcessDocBlock(t, "# envoy http_filters entry")), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("docs/in-process.md: the http_filters entry: %v (%d entries, want 1)", err, len(entries))
	}
	fc, err := dig(entries[0], "typed_config", "filter_config")
	if err != nil {
		t.Fatalf("docs/in-process.md: the http_filters entry: %v", err)
	}
	fc.(map[string]any)["value"] = filterConfig
	return entries[0]
}

// moduleDisabled is the per-route config of docs/in-process.md that turns the module off.
func moduleDisabled(t *testing.T) any {
	t.Helper()
	var per map[string]map[string]any
	if err := yaml.Unmarshal([]byte(inProcessDocBlock(t, "# envoy per-route")), &per); err != nil {
		t.Fatalf("docs/in-process.md: the per-route block: %v", err)
	}
	v, ok := per["typed_per_filter_config"][moduleFilterName]
	if !ok {
		t.Fatalf("docs/in-process.md: the per-route block has no typed_per_filter_config.%s", moduleFilterName)
	}
	return v
}

// inProcessDocBlock returns the ```yaml block of docs/in-process.md whose first line starts
// with first.
func inProcessDocBlock(t *testing.T, first string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "in-process.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		if text, _, _ := strings.Cut(part, "```"); strings.HasPrefix(text, first) {
			return text
		}
	}
	t.Fatalf("docs/in-process.md: no yaml block starting with %q", first)
	return ""
}

// startModuleStack is the demo with the module in Envoy instead of ext_authz, loading the
// stack's own jwt-authz config file. The jwt-authz server still runs (the stack waits for
// it) but Envoy no longer asks it anything.
func startModuleStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	envoyBinary(t)
	t.Setenv("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", moduleLibrary(t))
	opts.module = true
	return startStack(t, opts)
}

// TestModuleEndToEnd runs the demo's scenarios through Envoy with the module: the same
// answers as through ext_authz (login then 200 with identity headers, 401/403 shapes,
// spoofed headers dropped, path tricks), with the decision in the module's metadata.
func TestModuleEndToEnd(t *testing.T) {
	s := startModuleStack(t, stackOptions{})
	s.scenarios(t)

	// The module's counters in Envoy's stats (its dynamicmodulescustom namespace). The
	// decision counts reach Envoy every half second (envoy/module/counts.go).
	for name, atLeast := range map[string]int{
		"dynamicmodulescustom.decisions.decision.allow.reason.allowed":           2,
		"dynamicmodulescustom.decisions.decision.deny.reason.missing_token":      1,
		"dynamicmodulescustom.decisions.decision.deny.reason.insufficient_scope": 1,
		"dynamicmodulescustom.decisions.decision.allow.reason.public":            1,
	} {
		if n := awaitEnvoyCounter(t, s, name, atLeast); n < atLeast {
			t.Errorf("Envoy counter %s = %d, want at least %d\n%s", name, n, atLeast, envoyStats(t, s, "dynamicmodulescustom"))
		}
	}
	// The same counter, tagged, in Prometheus' format: one metric, decision and reason labels.
	prom := envoyAdmin(t, s, "/stats/prometheus")
	if !regexp.MustCompile(`(?m)^envoy_dynamicmodulescustom_decisions\{decision="allow",reason="allowed"\} [1-9]`).MatchString(prom) {
		t.Errorf("/stats/prometheus has no decisions counter tagged decision and reason:\n%s", grepLines(prom, "dynamicmodulescustom"))
	}
	if n := envoyCounter(t, s, "dynamicmodulescustom.panics_recovered"); n != 0 {
		t.Errorf("Envoy counter dynamicmodulescustom.panics_recovered = %d, want 0", n)
	}
	t.Log(envoyStats(t, s, "dynamicmodulescustom"))
}
