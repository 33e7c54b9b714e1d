package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// WellKnownResourceMetadata is the well-known path segment of RFC 9728 §3.
const WellKnownResourceMetadata = "/.well-known/oauth-protected-resource"

// ResourceMetadata is a provider's RFC 9728 protected resource metadata: the URL sent as
// resource_metadata in its WWW-Authenticate challenges, and optionally the document
// jwt-authz serves there on http_address, so OAuth 2.1 and MCP clients can discover which
// authorization server issues tokens for the resource.
type ResourceMetadata struct {
	// Resource is the protected resource's identifier: an https URL without query or
	// fragment (RFC 9728 §2). Required when URL is not given or when Serve is set.
	Resource string `yaml:"resource" json:"resource"`
	// URL is where clients fetch the document. Default: the well-known URL formed from
	// Resource (RFC 9728 §3.1: the well-known segment between host and path).
	URL string `yaml:"url" json:"-"`
	// Serve has jwt-authz answer GET <URL's path> on http_address with the document; Envoy
	// routes that path to it without ext_authz.
	Serve bool `yaml:"serve" json:"-"`

	// The document's members (RFC 9728 §2), under the same names in the document (the
	// json tags) as in the file. AuthorizationServers defaults to the provider's issuer;
	// BearerMethodsSupported to the provider's header and query token sources.
	AuthorizationServers   []string `yaml:"authorization_servers" json:"authorization_servers,omitempty"`
	ScopesSupported        []string `yaml:"scopes_supported" json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `yaml:"bearer_methods_supported" json:"bearer_methods_supported,omitempty"`
	ResourceName           string   `yaml:"resource_name" json:"resource_name,omitempty"`
	ResourceDocumentation  string   `yaml:"resource_documentation" json:"resource_documentation,omitempty"`
	ResourcePolicyURI      string   `yaml:"resource_policy_uri" json:"resource_policy_uri,omitempty"`
	ResourceTOSURI         string   `yaml:"resource_tos_uri" json:"resource_tos_uri,omitempty"`

	// TLSClientCertificateBoundAccessTokens is derived, not written: true when the
	// provider's certificate_binding is required (RFC 9728 §2, RFC 8705).
	TLSClientCertificateBoundAccessTokens bool `yaml:"-" json:"tls_client_certificate_bound_access_tokens,omitempty"`
	// DPoPSigningAlgValuesSupported and DPoPBoundAccessTokensRequired are derived from the
	// provider's dpop (RFC 9728 §2).
	DPoPSigningAlgValuesSupported []string `yaml:"-" json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired bool     `yaml:"-" json:"dpop_bound_access_tokens_required,omitempty"`
}

// MetadataURL forms the well-known metadata URL of a resource identifier (RFC 9728 §3.1):
// https://api.example/mcp -> https://api.example/.well-known/oauth-protected-resource/mcp.
func MetadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + WellKnownResourceMetadata + path, nil
}

func (m *ResourceMetadata) setDefaults(p *Provider) {
	if m.URL == "" && m.Resource != "" {
		if u, err := MetadataURL(m.Resource); err == nil {
			m.URL = u
		}
	}
	if len(m.AuthorizationServers) == 0 && p.Issuer != "" {
		m.AuthorizationServers = []string{p.Issuer}
	}
	m.TLSClientCertificateBoundAccessTokens = p.CertificateBinding != nil && p.CertificateBinding.Required
	if p.DPoP != nil {
		m.DPoPSigningAlgValuesSupported = p.DPoP.Algorithms
		m.DPoPBoundAccessTokensRequired = p.DPoP.Required
	}
	if len(m.BearerMethodsSupported) == 0 {
		for _, s := range p.TokenSources {
			switch {
			case s.Header != "" && !slices.Contains(m.BearerMethodsSupported, "header"):
				m.BearerMethodsSupported = append(m.BearerMethodsSupported, "header")
			case s.Query != "" && !slices.Contains(m.BearerMethodsSupported, "query"):
				m.BearerMethodsSupported = append(m.BearerMethodsSupported, "query")
			}
		}
	}
}

func (m *ResourceMetadata) validate(at string) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if m.Resource == "" && (m.URL == "" || m.Serve) {
		bad(at+".resource", "required (unless url is set and serve is false)")
	}
	if m.Resource != "" {
		// RFC 9728 §2: an https URL with no fragment; a query is discouraged, and would not
		// survive the §3.1 well-known transformation, so it is refused.
		if u, err := url.Parse(m.Resource); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad(at+".resource", "must be an https URL without userinfo, query or fragment")
		}
	}
	if m.URL != "" {
		if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
			bad(at+".url", "must be an absolute http(s) URL without userinfo or fragment")
		} else if m.Serve && (u.RawQuery != "" || !strings.HasPrefix(u.Path, "/")) {
			bad(at+".url", "a served document needs a path and no query")
		}
	}
	// The URL goes into a quoted-string of WWW-Authenticate.
	if strings.ContainsAny(m.URL, "\"\\") {
		bad(at+".url", "must not contain a quote or backslash")
	}
	for j, s := range m.AuthorizationServers {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(fmt.Sprintf("%s.authorization_servers[%d]", at, j), "must be an issuer URL")
		}
	}
	for j, s := range m.BearerMethodsSupported {
		if !slices.Contains([]string{"header", "body", "query"}, s) {
			bad(fmt.Sprintf("%s.bearer_methods_supported[%d]", at, j), "must be header, body or query, got %q", s)
		}
	}
	for name, s := range map[string]string{"resource_documentation": m.ResourceDocumentation, "resource_policy_uri": m.ResourcePolicyURI, "resource_tos_uri": m.ResourceTOSURI} {
		if s == "" {
			continue
		}
		if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(at+"."+name, "must be an absolute http(s) URL")
		}
	}
	return errs
}

// ServedPath is the path jwt-authz answers on http_address for m; "" when it serves none.
func (m *ResourceMetadata) ServedPath() string {
	if m == nil || !m.Serve {
		return ""
	}
	u, err := url.Parse(m.URL)
	if err != nil {
		return ""
	}
	return u.EscapedPath()
}

// validateServedMetadata refuses two documents on one path and serving without a listener.
func (c *Config) validateServedMetadata() []error {
	var errs []error
	served := map[string]int{}
	for i, p := range c.Providers {
		path := p.ResourceMetadata.ServedPath()
		if path == "" {
			continue
		}
		at := fmt.Sprintf("providers[%d].resource_metadata.serve", i)
		if c.HTTPAddress == "" {
			errs = append(errs, fmt.Errorf("%s: needs http_address, where the document is served", at))
		}
		if slices.Contains([]string{"/healthz", "/readyz", "/metrics"}, path) {
			errs = append(errs, fmt.Errorf("%s: %s is the server's own endpoint", at, path))
		}
		if j, ok := served[path]; ok {
			errs = append(errs, fmt.Errorf("%s: providers[%d] already serves %s", at, j, path))
		}
		served[path] = i
	}
	return errs
}
