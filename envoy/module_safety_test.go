package envoy

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestModuleSafety: what must leave Envoy serving when the module is in it. Key rotation
// while traffic flows (each new kid is decided off Envoy's worker thread, through the
// scheduler), a flood of unknown kids, a key source that stops answering, a config the module
// cannot load, and a library built for another ABI.
func TestModuleSafety(t *testing.T) {
	s := startModuleStack(t, stackOptions{
		issuerAdmin: true,
		issuerArgs:  []string{"-publish-delay", "0", "-user-limit", "0", "-ip-limit", "0"},
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			src := jwksSource(t, root)
			// Only the unknown-kid refetch can bring a new key during the test.
			src["refresh_interval"], src["min_refresh_interval"] = "5m", "5m"
			src["unknown_kid_cooldown"] = "1s"
		},
	})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	t.Run("rotation while traffic flows", func(t *testing.T) {
		first := s.kid(t)
		l := s.startLoad(t, 3, time.Second)
		l.waitUntil(t, "requests allowed with the first key", func(c loadCounts) bool { return c.ByKID[first] >= 5 })
		kid := first
		for range 2 {
			time.Sleep(time.Second)
			rot := s.rotate(t)
			if rot.PreviousKID != kid {
				t.Fatalf("rotation replaced kid %q, want %q", rot.PreviousKID, kid)
			}
			kid = rot.KID
			l.waitUntil(t, "requests allowed with the new key "+kid, func(c loadCounts) bool { return c.ByKID[kid] >= 5 })
		}
		c := l.stop()
		l.check(t)
		t.Logf("%d requests, %d allowed, %d failed; allowed by kid: %v", c.Requests, c.Allowed, c.Failed, c.ByKID)
	})

	t.Run("a flood of unknown kids", func(t *testing.T) {
		const n = 200
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			wg.Go(func() {
				tok := mint(t, s.key, fmt.Sprintf("flood-%d", i), s.claims())
				r, err := s.send("GET", "/api/things", bearer(tok), "")
				if err != nil {
					t.Errorf("GET /api/things (unknown kid flood-%d): %v", i, err)
					return
				}
				statuses[i] = r.status
			})
		}
		wg.Wait()
		counts := map[int]int{}
		for _, st := range statuses {
			counts[st]++
		}
		t.Logf("%d requests with unknown kids: statuses %v", n, counts)
		if counts[401] != n {
			t.Errorf("unknown kids: statuses %v, want all %d 401", counts, n)
		}
		s.do(t, "GET", "/api/things", bearer(mint(t, s.key, s.kid(t), s.claims())), "").upstream(t, 200)
	})

	t.Run("a key source that stops answering", func(t *testing.T) {
		kid := s.kid(t)
		s.issuerProc.Kill()
		r := s.do(t, "GET", "/api/things", bearer(mint(t, s.key, "after-the-issuer-died", s.claims())), "")
		if r.status != 401 && r.status != 503 {
			t.Errorf("GET /api/things (unknown kid, issuer down) = %d %s, want 401 or 503", r.status, clip(r.body))
		}
		// The keys it holds still work, and Envoy still serves.
		s.do(t, "GET", "/api/things", bearer(mint(t, s.key, kid, s.claims())), "").upstream(t, 200)
		s.do(t, "GET", "/api/things", nil, "").challenge(t, 401, "")
	})
}

// TestModuleRefused: Envoy refuses a module filter it cannot use, with the module's own
// message: a config file that does not load (naming the field), and a library built for
// another ABI version than the Envoy it meets.
func TestModuleRefused(t *testing.T) {
	envoyBinary(t)
	lib := moduleLibrary(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, []byte("grpc_address: 127.0.0.1:1\nproviders:\n- name: p\n  issuer: https://issuer.test\n  audiences: [api]\n  algorithms: [ES256]\n  keys: [{pem_file: /nonexistent.pem}]\n  claims_to_header: {}\n"))
	other := filepath.Join(dir, "other-abi")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-buildmode=c-shared", "-ldflags", "-X main.abiVersion=v9.9.9",
		"-o", filepath.Join(other, "lib"+moduleName+".so"), "./envoy/module")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the module for ABI v9.9.9: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, libDir, config string
		want                 []string
	}{
		{"a config that does not load", lib, bad, []string{`jwt-authz module: filter "jwt_authz": config: ` + bad + `: `,
			`providers[0].claims_to_header: line 8: unknown key "claims_to_header"`}},
		{"another ABI", other, bad, []string{`jwt-authz module: built for Envoy's dynamic-module ABI v9.9.9`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := minimalEnvoy(t, moduleFilter(t, tc.config))
			file := filepath.Join(t.TempDir(), "envoy.yaml")
			writeFile(t, file, cfg)
			cmd := exec.Command(envoyBinary(t), "-c", file, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warning")
			cmd.Env = append(cmd.Environ(), "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+tc.libDir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("envoy exited 0, want a refused config")
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("envoy still running after 60s, want it to refuse the filter\n%s", out.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("envoy output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// minimalEnvoy is a bootstrap with minimalListener.
func minimalEnvoy(t *testing.T, filter map[string]any) []byte {
	t.Helper()
	return edited(t, []byte("{}"), ports{}, func(_ *testing.T, r map[string]any, _ ports) {
		r["static_resources"] = map[string]any{"listeners": []any{minimalListener(filter)}}
	})
}

// minimalListener is one listener on a port of the kernel's choosing: filter, then a direct
// 200.
func minimalListener(filter map[string]any) map[string]any {
	return map[string]any{
		"name":    "l",
		"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 0}},
		"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
			"name": "envoy.filters.network.http_connection_manager",
			"typed_config": map[string]any{
				"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"stat_prefix": "t",
				"route_config": map[string]any{"virtual_hosts": []any{map[string]any{
					"name": "v", "domains": []any{"*"},
					"routes": []any{map[string]any{"match": map[string]any{"prefix": "/"},
						"direct_response": map[string]any{"status": 200}}},
				}}},
				"http_filters": []any{filter, map[string]any{"name": "envoy.filters.http.router",
					"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}},
			},
		}}}},
	}
}

// TestModulePanic: a Go panic inside a hook never reaches Envoy (it would abort the whole
// proxy). A library built with the jwtauthz_paniccheck tag panics on a marked request; the
// hook's recovery answers 500, counts it, and Envoy goes on serving the next requests.
func TestModulePanic(t *testing.T) {
	envoyBinary(t)
	lib := filepath.Join(t.TempDir(), "paniccheck")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-buildmode=c-shared", "-tags", "jwtauthz_paniccheck",
		"-o", filepath.Join(lib, "lib"+moduleName+".so"), "./envoy/module")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the module with -tags jwtauthz_paniccheck: %v\n%s", err, out)
	}
	t.Setenv("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", lib)
	s := startStack(t, stackOptions{module: true})
	bearer := http.Header{"Authorization": {"Bearer " + mint(t, s.key, s.kid(t), s.claims())}}

	s.do(t, "GET", "/api/things", bearer, "").upstream(t, 200)
	for range 3 {
		h := bearer.Clone()
		h.Set("X-Jwt-Authz-Test-Panic", "1")
		if r := s.do(t, "GET", "/api/things", h, ""); r.status != 500 {
			t.Errorf("GET /api/things (a panic in the hook) = %d %s, want 500", r.status, clip(r.body))
		}
	}
	if n := envoyCounter(t, s, "dynamicmodulescustom.panics_recovered"); n != 3 {
		t.Errorf("Envoy counter dynamicmodulescustom.panics_recovered = %d, want 3\n%s", n, envoyStats(t, s, "dynamicmodulescustom"))
	}
	// Envoy is still up and the module still decides.
	s.do(t, "GET", "/api/things", bearer, "").upstream(t, 200)
	s.do(t, "GET", "/api/things", nil, "").challenge(t, 401, "")
}
