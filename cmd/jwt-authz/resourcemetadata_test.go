package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestServeResourceMetadata: a provider with resource_metadata.serve has jwt-authz answer
// its RFC 9728 document on http_address, at the path §3.1 forms from the resource, from
// the configuration in force: a reload that drops it turns the path into a 404.
func TestServeResourceMetadata(t *testing.T) {
	idp := newIdP(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	served := strings.Replace(validConfig(idp.srv.URL, "/api"), "rules:", `    resource_metadata:
      resource: https://api.example.com/mcp
      serve: true
      scopes_supported: [read, admin]
      resource_name: Demo API
rules:`, 1)
	writeFile(t, cfgPath, served)
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)

	url := srv.httpURL + "/.well-known/oauth-protected-resource/mcp"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %q, want 200 application/json", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	want := map[string]any{
		"resource":                 "https://api.example.com/mcp",
		"authorization_servers":    []any{"https://issuer.test"},
		"scopes_supported":         []any{"read", "admin"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "Demo API",
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("GET %s (-want +got):\n%s", url, diff)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/other", "/nothing"} {
		if got := httpStatus(srv.httpURL + path); got != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, got)
		}
	}
	if got := httpStatus(srv.httpURL + "/healthz"); got != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", got)
	}

	writeFile(t, cfgPath, validConfig(idp.srv.URL, "/api"))
	srv.waitLog(t, "config reloaded")
	if got := httpStatus(url); got != http.StatusNotFound {
		t.Errorf("after a reload without resource_metadata, GET %s = %d, want 404", url, got)
	}
}
