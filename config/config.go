// Package config is the jwt-authz configuration file: its shape, strict decoding, defaults and
// validation. It is plain data; extauthz and keys consume it and cmd/jwt-authz wires them.
//
// The shape is a contract with users' files: keys are added, never renamed or dropped.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole file.
type Config struct {
	// GRPCAddress is host:port or unix:///path for the ext_authz gRPC listener.
	GRPCAddress string `yaml:"grpc_address"`
	// HTTPAddress serves /healthz, /readyz and /metrics; empty disables it.
	HTTPAddress string `yaml:"http_address"`
	// HTTPAuthzAddress is host:port or unix:///path for the HTTP decision listener (the
	// forward-auth face for Envoy http_service, nginx, Traefik and Caddy); empty disables it.
	HTTPAuthzAddress string `yaml:"http_authz_address"`
	// HTTPAuthzTrustedProxies are the peer addresses (IPs or CIDRs) whose X-Original-* and
	// X-Forwarded-* request details the HTTP decision listener believes; see httpauthz.go.
	HTTPAuthzTrustedProxies []string `yaml:"http_authz_trusted_proxies"`
	// Reflection turns gRPC server reflection on (default) or off.
	Reflection *bool `yaml:"reflection"`
	// GRPCMaxConcurrentStreams bounds the Check streams one client connection may have open
	// at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS, default 1024); streams past it are
	// refused. It bounds the memory one connection can hold, and without it grpc-go's
	// defence against HTTP/2 rapid reset (CVE-2023-44487) has no limit to enforce.
	GRPCMaxConcurrentStreams int `yaml:"grpc_max_concurrent_streams"`
	// MaxTokenBytes caps a credential before any parsing (default 16 KiB).
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// ShutdownDelay is how long the server keeps answering after SIGTERM while reporting
	// NOT_SERVING, so health checks move traffic away before in-flight calls are drained.
	ShutdownDelay Duration `yaml:"shutdown_delay"`
	// ShutdownTimeout bounds how long in-flight calls may take to finish after the delay.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// TLS enables TLS (and with client_ca_file, mTLS) on the gRPC listener.
	TLS *TLS `yaml:"tls"`
	// Log controls the decision log.
	Log Log `yaml:"log"`
	// Cache is the verified-token cache.
	Cache Cache `yaml:"cache"`
	// DynamicMetadata is the decision handed to Envoy as dynamic metadata.
	DynamicMetadata DynamicMetadata `yaml:"dynamic_metadata"`
	// CEL bounds the evaluation of rules' CEL conditions.
	CEL CEL `yaml:"cel"`
	// Tracing turns on OpenTelemetry traces (tracing.go).
	Tracing Tracing `yaml:"tracing"`

	// DPoP is what every provider's DPoP checks share: server nonces and the replay store.
	DPoP DPoPServer `yaml:"dpop"`

	Providers []Provider `yaml:"providers"`
	Rules     []Rule     `yaml:"rules"`
	// DefaultAction applies when no rule matches: deny (default, 403) or allow.
	DefaultAction string `yaml:"default_action"`
	// Shadow rolls the whole policy out in dry-run: every request is decided as written and
	// that decision is logged, counted and put in the dynamic metadata, but a denial is
	// answered as an allow (reason shadow_allow) that sets no identity headers.
	Shadow bool `yaml:"shadow"`
	// NonHTTPAction answers CheckRequests without request.http (Istio's TCP ext_authz):
	// deny (default) or allow. Rules with source/destination principal matches still apply.
	NonHTTPAction string `yaml:"non_http_action"`

	// Dir is the directory of the file; relative paths inside the file are resolved
	// against it. Not part of the file.
	Dir string `yaml:"-"`
}

// TLS configures the gRPC listener's certificate and optional client verification.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Log configures the decision log.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// AllowSampleRate logs this fraction of allow decisions (0..1, default 1); denials are
	// always logged.
	AllowSampleRate *float64 `yaml:"allow_sample_rate"`
}

// Cache configures the verified-token cache.
type Cache struct {
	// Enabled turns the cache on (default) or off.
	Enabled *bool `yaml:"enabled"`
	// MaxEntries bounds the number of cached tokens (default 100000).
	MaxEntries int `yaml:"max_entries"`
	// MaxBytes bounds the memory held by cached entries (default 64 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
}

// DynamicMetadata configures the decision Envoy receives as dynamic metadata, for its access
// log (%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%, or jwt_authz:reason in
// process) and for the filters after it.
type DynamicMetadata struct {
	// Enabled hands every decision to Envoy (default). Off, Envoy's access log and later
	// filters cannot see it, and Envoy saves the work of storing it: a few microseconds of
	// its CPU per request in process (docs/in-process.md).
	Enabled *bool `yaml:"enabled"`
}

// CEL configures the evaluation of match.cel and require.cel.
type CEL struct {
	// CostLimit bounds one evaluation in CEL cost units (default 1000000, Kubernetes'
	// per-expression limit); an expression that exceeds it is a cel_error, so it denies.
	CostLimit uint64 `yaml:"cost_limit"`
}

// Provider is one token issuer and how its tokens are found, verified and forwarded.
type Provider struct {
	Name string `yaml:"name"`
	// Issuer is the token's iss. It may be a template with one placeholder in braces
	// ("https://login.microsoftonline.com/{tenantid}/v2.0", Entra ID multi-tenant): the
	// placeholder matches one tenant id, which must equal the token's TenantClaim.
	Issuer string `yaml:"issuer"`
	// IssuerAliases are other spellings of the same issuer, accepted with the same keys
	// (Google: accounts.google.com and https://accounts.google.com).
	IssuerAliases []string `yaml:"issuer_aliases"`
	// TenantClaim is the claim the issuer template's placeholder must equal (default tid).
	TenantClaim string `yaml:"tenant_claim"`
	// Tenants, when set, are the only tenant ids an issuer template accepts.
	Tenants []string `yaml:"tenants"`
	// SPIFFETrustDomain makes the provider one of SPIFFE JWT-SVIDs: every token's sub must
	// be a SPIFFE ID in this trust domain, and a SVID without iss is given to this provider
	// by the trust domain of its sub. Issuer may then be empty.
	SPIFFETrustDomain string   `yaml:"spiffe_trust_domain"`
	Audiences         []string `yaml:"audiences"`
	Algorithms        []string `yaml:"algorithms"`
	ClockSkew         Duration `yaml:"clock_skew"`
	// RequireExp rejects tokens without exp (default true).
	RequireExp *bool `yaml:"require_exp"`
	// MaxLifetime, when set, rejects tokens whose exp-iat (or exp-now without iat) exceeds it.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// Types are the accepted typ header values when typ is present.
	Types []string `yaml:"types"`
	// Realm is the realm in WWW-Authenticate challenges (default: the provider name).
	Realm string `yaml:"realm"`
	// AudienceClaims are the claims that may carry the audience, each a claim path whose
	// value is a string or an array of strings (default [aud]; Cognito access tokens name
	// the client in client_id, many IdPs in azp).
	AudienceClaims []string `yaml:"audience_claims"`
	// AuthorizedParties, when set, must hold the token's azp (or its client_id when it has
	// no azp): the clients whose tokens are accepted.
	AuthorizedParties []string `yaml:"authorized_parties"`
	// RequiredClaims maps claim paths to allowed values that every token of the provider
	// must carry to be an access token here (Keycloak typ: Bearer, Cognito token_use:
	// access); a miss is 401 invalid_token.
	RequiredClaims map[string]Values `yaml:"required_claims"`
	// RejectIDTokens refuses evident OpenID Connect ID tokens presented as access tokens
	// (RFC 8725 §3.11, §3.12): at_hash, c_hash or nonce present, Keycloak typ: ID, Cognito
	// token_use: id (default true).
	RejectIDTokens *bool `yaml:"reject_id_tokens"`

	Keys         []Key         `yaml:"keys"`
	TokenSources []TokenSource `yaml:"token_sources"`

	ClaimsToHeaders      map[string]string `yaml:"claims_to_headers"`
	ForwardPayloadHeader string            `yaml:"forward_payload_header"`
	// ForwardToken keeps the credential on the upstream request (default true).
	ForwardToken *bool `yaml:"forward_token"`

	// ResourceMetadata points clients at RFC 9728 protected resource metadata; off when nil.
	ResourceMetadata *ResourceMetadata `yaml:"resource_metadata"`
	// CertificateBinding says where the client certificate of RFC 8705 certificate-bound
	// tokens comes from and whether tokens must be bound. A token that carries
	// cnf.x5t#S256 is checked against the peer certificate even when this is nil.
	CertificateBinding *CertificateBinding `yaml:"certificate_binding"`
	// Encryption accepts nested JWTs (a JWS inside a JWE) encrypted to these keys; off when
	// nil.
	Encryption *Encryption `yaml:"encryption"`
	// DPoP accepts (or, with required, demands) DPoP-bound tokens (RFC 9449). A token that
	// carries cnf.jkt is held to its proof even when this is nil.
	DPoP *DPoP `yaml:"dpop"`
	// Introspection accepts opaque access tokens through the provider's RFC 7662
	// introspection endpoint; off when nil.
	Introspection *Introspection `yaml:"introspection"`
}

// Key is one source of verification keys. Exactly one of JWKSURI, JWKSFile, PEMFile,
// HMACSecretFile, Discovery, SPIFFEBundleURI and SPIFFEBundleFile is set.
type Key struct {
	JWKSURI  string `yaml:"jwks_uri"`
	JWKSFile string `yaml:"jwks_file"`
	// SPIFFEBundleURI and SPIFFEBundleFile are a SPIFFE trust bundle (a JWKS whose
	// jwt-svid keys verify JWT-SVIDs; its spiffe_refresh_hint sets the refresh interval),
	// served by a SPIFFE bundle endpoint or written by the SPIRE agent.
	SPIFFEBundleURI  string `yaml:"spiffe_bundle_uri"`
	SPIFFEBundleFile string `yaml:"spiffe_bundle_file"`
	PEMFile          string `yaml:"pem_file"`
	HMACSecretFile   string `yaml:"hmac_secret_file"`
	// Discovery fetches the issuer's OpenID configuration and uses its jwks_uri.
	Discovery bool `yaml:"discovery"`
	// DiscoveryURI is where discovery fetches the configuration instead of
	// <issuer>/.well-known/openid-configuration; required when the issuer is a template
	// (Entra: https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration).
	// The document's issuer must still equal the provider's issuer (template included).
	DiscoveryURI string `yaml:"discovery_uri"`
	// KID names the key of a pem_file or hmac_secret_file.
	KID string `yaml:"kid"`

	// RefreshInterval is how often remote keys are refetched (default 5m, at least 1s).
	RefreshInterval Duration `yaml:"refresh_interval"`
	// MinRefreshInterval and MaxRefreshInterval bound the interval a Cache-Control max-age
	// may ask for (defaults 1m and 24h, or the refresh interval when it is outside them).
	MinRefreshInterval Duration `yaml:"min_refresh_interval"`
	MaxRefreshInterval Duration `yaml:"max_refresh_interval"`
	// MaxStale is how long the last good keys keep serving while fetches fail (default 24h).
	MaxStale Duration `yaml:"max_stale"`
	// UnknownKIDCooldown is the least time between refetches caused by unknown kids
	// (default 10s).
	UnknownKIDCooldown Duration `yaml:"unknown_kid_cooldown"`
	// Timeout bounds one fetch (default 5s).
	Timeout Duration `yaml:"timeout"`
	// CAFile is a PEM bundle of roots for the fetch, instead of the system's.
	CAFile string `yaml:"ca_file"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer" on the fetches to the
	// configured URL's host (the Kubernetes API server's JWKS needs the pod's
	// service-account token). It is read at every fetch, so a rotated token is used at once.
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// TokenSource is one place a credential is looked for. Exactly one of Header, Cookie and
// Query is set.
type TokenSource struct {
	Header string `yaml:"header"`
	// Prefix is the scheme before the credential in Header, matched case-insensitively and
	// followed by one or more spaces.
	Prefix string `yaml:"prefix"`
	Cookie string `yaml:"cookie"`
	Query  string `yaml:"query"`
	// AllowedOrigins, for a cookie source, are the origins (scheme://host[:port]) whose pages
	// may send the cookie's token on an unsafe method (POST, PUT, DELETE...), besides the
	// site's own pages (Sec-Fetch-Site: same-origin). A browser attaches cookies to requests
	// that any site starts, so without this check a cookie token would allow cross-site
	// request forgery.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Rule is one entry of the ordered rule list; the first that matches decides.
type Rule struct {
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	// Action is allow or deny; empty when Require is set.
	Action  string   `yaml:"action"`
	Require *Require `yaml:"require"`
	// Mode is enforce (default) or shadow: a shadow rule is evaluated fully when it matches,
	// its would-be decision is logged, counted and put in the dynamic metadata, and the
	// request goes on to the next rule as if it had not matched.
	Mode string `yaml:"mode"`
}

// Match selects requests. Every set field must match; an empty Match matches everything.
type Match struct {
	// Hosts are exact hosts or *.suffix wildcards, compared without the port.
	Hosts      []string `yaml:"hosts"`
	Path       string   `yaml:"path"`
	PathPrefix string   `yaml:"path_prefix"`
	Methods    []string `yaml:"methods"`
	// ContextExtensions must all be present with these values in the CheckRequest
	// (set per route in Envoy's ExtAuthzPerRoute).
	ContextExtensions map[string]string `yaml:"context_extensions"`
	// SourcePrincipals and DestinationPrincipals match the peers' mesh identities (SPIFFE
	// IDs from mTLS); a trailing * matches any suffix.
	SourcePrincipals      []string `yaml:"source_principals"`
	DestinationPrincipals []string `yaml:"destination_principals"`
	// CORSPreflight, when true, matches only CORS preflights: OPTIONS requests with Origin
	// and Access-Control-Request-Method headers (Fetch standard, "CORS-preflight request").
	// A preflight never carries a credential, so when ext_authz runs before Envoy's CORS
	// filter a rule "cors_preflight: true, action: allow" lets exactly those through.
	CORSPreflight bool `yaml:"cors_preflight"`
	// CEL is a condition on the request alone (no claims), evaluated after the other match
	// fields and before any token work. An evaluation error denies with cel_error.
	CEL string `yaml:"cel"`
}

// Require is what a request must carry to pass a rule.
type Require struct {
	// Providers lists the acceptable providers; empty means any.
	Providers []string `yaml:"providers"`
	// Scopes must all be granted.
	Scopes []string `yaml:"scopes"`
	// SPIFFEIDs, when set, must match the token's sub (a JWT-SVID's SPIFFE ID): exact, or a
	// trailing * matching any suffix; a miss is 403.
	SPIFFEIDs []string `yaml:"spiffe_ids"`
	// Audiences, when set, must hold one of the token's audiences (read from its
	// provider's audience_claims); a miss is 401 invalid_token.
	Audiences []string `yaml:"audiences"`
	// Claims maps a claim path (dotted or JSON Pointer) to its allowed values (scalar or
	// list).
	Claims map[string]Values `yaml:"claims"`
	// Optional lets requests without a credential through anonymously; a credential that is
	// present but invalid is still refused.
	Optional bool `yaml:"optional"`
	// CEL is a condition on the verified claims and the request, evaluated after the scope
	// and claim checks: false denies with cel_denied (403), an error with cel_error.
	CEL string `yaml:"cel"`
}

// Values is a list of strings that may be written as a single scalar.
type Values []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (v *Values) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*v = Values{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Values, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: claim values must be scalars", c.Line)
			}
			out = append(out, c.Value)
		}
		*v = out
		return nil
	}
	return fmt.Errorf("line %d: want a scalar or a list of scalars", n.Line)
}

// Duration is a time.Duration written as a Go duration string ("30s", "5m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts only duration strings: a bare integer is ambiguous.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("line %d: want a duration string such as \"30s\", got %q", n.Line, n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, dir)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes data strictly (unknown keys are errors), applies defaults and validates.
// Relative file paths are resolved against dir.
func Parse(data []byte, dir string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, withFieldPaths(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	c.Dir = dir
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Path resolves a file path from the config against its directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// SecretFiles are the files of secrets the config names that are read only when it loads,
// resolved: introspection client credentials, the DPoP nonce secret and the replay store's
// password. A server watching for changes to the config file watches these too, so that a
// rotated secret (a Kubernetes Secret's files are swapped in place) is picked up the same
// way. Key files, TLS files and bearer tokens are watched or re-read where they are used.
func (c *Config) SecretFiles() []string {
	var files []string
	add := func(f string) {
		if f != "" {
			files = append(files, c.Path(f))
		}
	}
	for _, p := range c.Providers {
		if in := p.Introspection; in != nil {
			add(in.ClientSecretFile)
			add(in.PrivateKeyFile)
		}
	}
	if n := c.DPoP.Nonce; n != nil {
		add(n.SecretFile)
	}
	if rs := c.DPoP.ReplayStore; rs != nil {
		add(rs.PasswordFile)
	}
	return files
}

// lineError is one "line N: message" of a decoding error from yaml.v3 or UnmarshalYAML.
var lineError = regexp.MustCompile(`line (\d+): ([^\n]*)`)

// unknownField is how yaml.v3 reports a key that KnownFields refuses.
var unknownField = regexp.MustCompile(`^field (\S+) not found`)

// withFieldPaths puts the field path in front of every "line N: ..." of a decoding error,
// which yaml.v3 and Duration report by line only, so that decoding errors name their field
// like validation errors do ("providers[0].clock_skew: line 7: want a duration string").
func withFieldPaths(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	var fields []field
	collectFields(&root, "", &fields)
	msg := lineError.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := lineError.FindStringSubmatch(m)
		line, _ := strconv.Atoi(sub[1])
		var on []field
		for _, f := range fields {
			if f.line == line {
				on = append(on, f)
			}
		}
		if u := unknownField.FindStringSubmatch(sub[2]); u != nil {
			for _, f := range on {
				if f.name == u[1] {
					return f.path + ": line " + sub[1] + ": " + unknownKey(f.path, f.name)
				}
			}
			return m
		}
		// Several keys on one line (a flow mapping): the one whose value the message quotes.
		var quoted []field
		for _, f := range on {
			if f.value.Kind == yaml.ScalarNode && strings.Contains(sub[2], strconv.Quote(f.value.Value)) {
				quoted = append(quoted, f)
			}
		}
		switch {
		case len(quoted) == 1:
			return quoted[0].path + ": " + m
		case len(on) == 1:
			return on[0].path + ": " + m
		}
		return m
	})
	return errors.New(msg)
}

// field is a mapping key of the file with its path ("providers[0].keys[1].jwks_uri").
type field struct {
	line  int
	name  string
	path  string
	value *yaml.Node
}

func collectFields(n *yaml.Node, path string, out *[]field) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			collectFields(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			*out = append(*out, field{line: k.Line, name: k.Value, path: p, value: v})
			collectFields(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			collectFields(c, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}
