package envoy

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
				filters[i] = moduleFilter(filterConfig)
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
					per[moduleFilterName] = map[string]any{
						"@type":    "type.googleapis.com/envoy.config.route.v3.FilterConfig",
						"disabled": true,
					}
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
			m["inline_string"] = strings.ReplaceAll(m["inline_string"].(string), "DYNAMIC_METADATA("+extAuthzName+":", "DYNAMIC_METADATA("+moduleName+":")
		}
	}
}

// moduleFilter is the http_filters entry that loads the module.
func moduleFilter(filterConfig string) map[string]any {
	return map[string]any{
		"name": moduleFilterName,
		"typed_config": map[string]any{
			"@type":                 "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
			"dynamic_module_config": map[string]any{"name": moduleName},
			"filter_name":           "jwt_authz",
			"filter_config": map[string]any{
				"@type": "type.googleapis.com/google.protobuf.StringValue",
				"value": filterConfig,
			},
		},
	}
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
}
