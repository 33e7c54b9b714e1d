package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeHTTPAuthz runs the real server with the HTTP decision face: the same rules and
// tokens as gRPC, each front labelled in the metrics, and trusted proxies that follow a
// reload.
func TestServeHTTPAuthz(t *testing.T) {
	idp := newIdP(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	withFace := func(trusted string) string {
		return strings.Replace(validConfig(idp.srv.URL, "/api"), "http_address: 127.0.0.1:0\n",
			"http_address: 127.0.0.1:0\nhttp_authz_address: 127.0.0.1:0\nhttp_authz_trusted_proxies: ["+trusted+"]\n", 1)
	}
	writeFile(t, cfgPath, withFace("127.0.0.1"))
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)
	token := idp.sign(t, map[string]any{"sub": "alice"})

	ask := func(path string, headers ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.authzURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := ask("/envoy/api/things"); resp.StatusCode != 200 || resp.Header.Get("X-Jwt-Sub") != "alice" {
		t.Errorf("envoy face: %d, x-jwt-sub %q; want 200 alice", resp.StatusCode, resp.Header.Get("X-Jwt-Sub"))
	}
	nginx := []string{"X-Original-Method", "GET", "X-Original-Uri", "/api/things"}
	if resp := ask("/auth/original", nginx...); resp.StatusCode != 200 {
		t.Errorf("auth_request face: %d, want 200", resp.StatusCode)
	}
	if resp := ask("/auth/forwarded", "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/other", "X-Forwarded-Host", "a"); resp.StatusCode != 403 {
		t.Errorf("forward_auth face, no rule: %d, want 403", resp.StatusCode)
	}
	metrics := get(t, srv.httpURL+"/metrics")
	for _, want := range []string{
		`jwt_authz_decisions_total{decision="allow",front="envoy_http",provider="demo",reason="allowed"} 1`,
		`jwt_authz_decisions_total{decision="allow",front="auth_request",provider="demo",reason="allowed"} 1`,
		`jwt_authz_decisions_total{decision="deny",front="forward_auth",provider="",reason="no_matching_rule"} 1`,
		`jwt_authz_token_cache_lookups_total{result="hit"} 1`, // one cache behind every face
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	writeFile(t, cfgPath, withFace("10.0.0.0/8"))
	srv.waitLog(t, "config reloaded")
	if resp := ask("/auth/original", nginx...); resp.StatusCode != 403 {
		t.Errorf("after reload without 127.0.0.1 trusted: %d, want 403 untrusted_proxy", resp.StatusCode)
	}
}
