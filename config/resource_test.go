package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetadataURL(t *testing.T) {
	// RFC 9728 §3.1 and its examples.
	for _, tc := range []struct{ resource, want string }{
		{"https://resource.example.com", "https://resource.example.com/.well-known/oauth-protected-resource"},
		{"https://resource.example.com/", "https://resource.example.com/.well-known/oauth-protected-resource"},
		{"https://resource.example.com/resource1", "https://resource.example.com/.well-known/oauth-protected-resource/resource1"},
		{"https://api.example.com:8443/v1/mcp", "https://api.example.com:8443/.well-known/oauth-protected-resource/v1/mcp"},
	} {
		got, err := MetadataURL(tc.resource)
		if err != nil || got != tc.want {
			t.Errorf("MetadataURL(%q) = %q, %v, want %q", tc.resource, got, err, tc.want)
		}
	}
}

func TestResourceMetadataDefaults(t *testing.T) {
	text := strings.Replace(minimal, "  clock_skew: 30s", `  clock_skew: 30s
  token_sources: [{header: authorization, prefix: Bearer}, {cookie: at}, {query: access_token}, {header: x-token}]
  resource_metadata: {resource: "https://api.example.com/mcp", serve: true}`, 1)
	c, err := Parse([]byte("http_address: 127.0.0.1:0\n"+text), t.TempDir())
	if err != nil {
		t.Fatalf("Parse(resource_metadata) = %v", err)
	}
	got := *c.Providers[0].ResourceMetadata
	want := ResourceMetadata{
		Resource:               "https://api.example.com/mcp",
		URL:                    "https://api.example.com/.well-known/oauth-protected-resource/mcp",
		Serve:                  true,
		AuthorizationServers:   []string{"https://issuer.example"},
		BearerMethodsSupported: []string{"header", "query"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resource_metadata defaults (-want +got):\n%s", diff)
	}
	if p := got.ServedPath(); p != "/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("ServedPath() = %q", p)
	}
}

func TestResourceMetadataBroken(t *testing.T) {
	const at = "providers[0].resource_metadata"
	for _, tc := range []struct {
		name, meta, want string
	}{
		{"neither resource nor url", `{scopes_supported: [read]}`, at + ".resource"},
		{"served without resource", `{url: "https://api.example.com/.well-known/oauth-protected-resource", serve: true}`, at + ".resource"},
		{"http resource", `{resource: "http://api.example.com"}`, at + ".resource"},
		{"resource with a fragment", `{resource: "https://api.example.com/#x"}`, at + ".resource"},
		{"resource with a query", `{resource: "https://api.example.com/?a=b"}`, at + ".resource"},
		{"relative url", `{url: /.well-known/oauth-protected-resource}`, at + ".url"},
		{"url with a quote", `{url: 'https://api.example.com/"x'}`, at + ".url"},
		{"served url with a query", `{resource: "https://api.example.com", url: "https://api.example.com/m?x=1", serve: true}`, at + ".url"},
		{"bad bearer method", `{resource: "https://api.example.com", bearer_methods_supported: [cookie]}`, at + ".bearer_methods_supported[0]"},
		{"bad authorization server", `{resource: "https://api.example.com", authorization_servers: [issuer]}`, at + ".authorization_servers[0]"},
		{"bad documentation url", `{resource: "https://api.example.com", resource_documentation: docs}`, at + ".resource_documentation"},
		{"unknown key", `{resource: "https://api.example.com", resource_names: x}`, at + ".resource_names"},
		{"served on /metrics", `{resource: "https://api.example.com", url: "https://api.example.com/metrics", serve: true}`, at + ".serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "http_address: 127.0.0.1:0\n" + strings.Replace(minimal, "  clock_skew: 30s", "  clock_skew: 30s\n  resource_metadata: "+tc.meta, 1)
			_, err := Parse([]byte(text), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want+":") {
				t.Errorf("Parse(resource_metadata: %s) = %v, want an error naming %s", tc.meta, err, tc.want)
			}
		})
	}
	t.Run("served without http_address", func(t *testing.T) {
		text := strings.Replace(minimal, "  clock_skew: 30s", "  clock_skew: 30s\n  resource_metadata: {resource: \"https://api.example.com\", serve: true}", 1)
		if _, err := Parse([]byte(text), t.TempDir()); err == nil || !strings.Contains(err.Error(), at+".serve:") {
			t.Errorf("Parse(serve without http_address) = %v, want an error naming %s.serve", err, at)
		}
	})
}
