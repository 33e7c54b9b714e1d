package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jwt-authz/jwt-authz/condition"
)

// Defaults that the file may override.
const (
	DefaultMaxTokenBytes = 16 << 10
	// DefaultGRPCMaxConcurrentStreams is Envoy's usual in-flight checks per connection with
	// room to spare; Envoy opens more connections past its cluster's max_concurrent_streams.
	DefaultGRPCMaxConcurrentStreams = 1024
	// MaxGRPCMaxConcurrentStreams: HTTP/2 carries the setting in 31 bits (RFC 9113 §6.5.2).
	MaxGRPCMaxConcurrentStreams = 1<<31 - 1
	DefaultClockSkew            = 30 * time.Second
	DefaultRefreshInterval      = 5 * time.Minute
	MinimumRefreshInterval      = time.Second
	DefaultMinRefresh           = time.Minute
	DefaultMaxRefresh           = 24 * time.Hour
	DefaultMaxStale             = 24 * time.Hour
	DefaultUnknownKIDCooldown   = 10 * time.Second
	DefaultFetchTimeout         = 5 * time.Second
	DefaultShutdownTimeout      = 10 * time.Second
	DefaultCacheEntries         = 100_000
	DefaultCacheBytes           = 64 << 20
	// MaxClaimHeaders bounds claims_to_headers per provider: a verified token records which
	// of its headers it sets in one 64-bit mask.
	MaxClaimHeaders = 64
)

// DefaultTypes are the typ header values accepted when a provider names none (RFC 7519 §5.1,
// RFC 9068 §2.1).
var DefaultTypes = []string{"JWT", "at+jwt", "application/jwt", "application/at+jwt"}

// SupportedAlgorithms are the JWS algorithms a provider may allow. "none" is never one.
var SupportedAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

func (c *Config) setDefaults() {
	if c.Reflection == nil {
		c.Reflection = ptr(true)
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.GRPCMaxConcurrentStreams == 0 {
		c.GRPCMaxConcurrentStreams = DefaultGRPCMaxConcurrentStreams
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if c.DefaultAction == "" {
		c.DefaultAction = "deny"
	}
	if c.NonHTTPAction == "" {
		c.NonHTTPAction = "deny"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.AllowSampleRate == nil {
		c.Log.AllowSampleRate = ptr(1.0)
	}
	if c.Cache.Enabled == nil {
		c.Cache.Enabled = ptr(true)
	}
	if c.DynamicMetadata.Enabled == nil {
		c.DynamicMetadata.Enabled = ptr(true)
	}
	c.Tracing.setDefaults()
	if c.CEL.CostLimit == 0 {
		c.CEL.CostLimit = condition.DefaultCostLimit
	}
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = DefaultCacheEntries
	}
	c.DPoP.setDefaults()
	if c.Cache.MaxBytes == 0 {
		c.Cache.MaxBytes = DefaultCacheBytes
	}
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.ClockSkew == 0 {
			p.ClockSkew = Duration(DefaultClockSkew)
		}
		if p.RequireExp == nil {
			p.RequireExp = ptr(true)
		}
		if p.ForwardToken == nil {
			p.ForwardToken = ptr(true)
		}
		if len(p.Types) == 0 {
			p.Types = DefaultTypes
		}
		if p.Realm == "" {
			p.Realm = p.Name
		}
		if len(p.AudienceClaims) == 0 {
			p.AudienceClaims = []string{"aud"}
		}
		if p.RejectIDTokens == nil {
			p.RejectIDTokens = ptr(true)
		}
		if _, _, template, _ := SplitIssuerTemplate(p.Issuer); template && p.TenantClaim == "" {
			p.TenantClaim = "tid"
		}
		if len(p.TokenSources) == 0 {
			p.TokenSources = []TokenSource{{Header: "authorization", Prefix: "Bearer"}}
		}
		for j := range p.TokenSources {
			p.TokenSources[j].Header = strings.ToLower(p.TokenSources[j].Header)
		}
		if b := p.CertificateBinding; b != nil && b.Header != "" {
			b.Header = strings.ToLower(b.Header)
			if b.HeaderFormat == "" {
				b.HeaderFormat = "xfcc"
			}
		}
		if p.DPoP != nil {
			p.DPoP.setDefaults()
			// RFC 9449 §7.1: DPoP-bound tokens come in "Authorization: DPoP".
			authz := func(prefix string) func(TokenSource) bool {
				return func(s TokenSource) bool { return s.Header == "authorization" && strings.EqualFold(s.Prefix, prefix) }
			}
			if slices.ContainsFunc(p.TokenSources, authz("Bearer")) && !slices.ContainsFunc(p.TokenSources, authz("DPoP")) {
				p.TokenSources = append(p.TokenSources, TokenSource{Header: "authorization", Prefix: "DPoP"})
			}
		}
		if p.ResourceMetadata != nil {
			p.ResourceMetadata.setDefaults(p)
		}
		for j := range p.Keys {
			k := &p.Keys[j]
			if !k.remote() {
				continue
			}
			if k.RefreshInterval == 0 {
				k.RefreshInterval = Duration(DefaultRefreshInterval)
			}
			if k.MinRefreshInterval == 0 {
				k.MinRefreshInterval = Duration(min(DefaultMinRefresh, k.RefreshInterval.D()))
			}
			if k.MaxRefreshInterval == 0 {
				k.MaxRefreshInterval = Duration(max(DefaultMaxRefresh, k.RefreshInterval.D()))
			}
			if k.MaxStale == 0 {
				k.MaxStale = Duration(DefaultMaxStale)
			}
			if k.UnknownKIDCooldown == 0 {
				k.UnknownKIDCooldown = Duration(DefaultUnknownKIDCooldown)
			}
			if k.Timeout == 0 {
				k.Timeout = Duration(DefaultFetchTimeout)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// headerName is an HTTP field name that Envoy will accept in a mutation (lower-case token).
var headerName = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_|~` + "`" + `-]+$`)

func (c *Config) validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.GRPCAddress == "" {
		bad("grpc_address", "required (host:port or unix:///path)")
	} else if strings.HasPrefix(c.GRPCAddress, "unix:") && !strings.HasPrefix(c.GRPCAddress, "unix:///") {
		bad("grpc_address", "a unix socket is written unix:///absolute/path")
	}
	c.validateHTTPAuthz(bad)
	if c.MaxTokenBytes < 0 {
		bad("max_token_bytes", "must be positive")
	}
	if c.GRPCMaxConcurrentStreams < 0 || c.GRPCMaxConcurrentStreams > MaxGRPCMaxConcurrentStreams {
		bad("grpc_max_concurrent_streams", "must be between 1 and %d", MaxGRPCMaxConcurrentStreams)
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file are both required")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if r := *c.Log.AllowSampleRate; r < 0 || r > 1 {
		bad("log.allow_sample_rate", "must be between 0 and 1")
	}
	if c.Cache.MaxEntries < 0 || c.Cache.MaxBytes < 0 {
		bad("cache", "sizes must be positive")
	}
	c.Tracing.validate(bad)
	if c.DefaultAction != "allow" && c.DefaultAction != "deny" {
		bad("default_action", "must be allow or deny, got %q", c.DefaultAction)
	}
	if c.NonHTTPAction != "allow" && c.NonHTTPAction != "deny" {
		bad("non_http_action", "must be allow or deny, got %q", c.NonHTTPAction)
	}

	names := map[string]bool{}
	issuers := map[string]bool{}
	trustDomains := map[string]bool{}
	for i, p := range c.Providers {
		at := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			bad(at+".name", "required")
		case names[p.Name]:
			bad(at+".name", "duplicate provider %q", p.Name)
		}
		names[p.Name] = true
		if td := p.SPIFFETrustDomain; td != "" {
			if !validTrustDomain(td) {
				bad(at+".spiffe_trust_domain", "%q is not a trust domain (lower-case letters, digits, '.', '-', '_'; no scheme)", td)
			} else if trustDomains[td] {
				bad(at+".spiffe_trust_domain", "trust domain %q is already used by another provider", td)
			}
			trustDomains[td] = true
		}
		if p.Issuer == "" && p.SPIFFETrustDomain == "" {
			bad(at+".issuer", "required (or spiffe_trust_domain for JWT-SVIDs without iss)")
		} else if p.Issuer != "" && issuers[p.Issuer] {
			bad(at+".issuer", "issuer %q is already used by another provider: the token's iss selects the provider", p.Issuer)
		}
		issuers[p.Issuer] = true
		template := false
		if _, _, ok, err := SplitIssuerTemplate(p.Issuer); err != nil {
			bad(at+".issuer", "%v", err)
		} else {
			template = ok
		}
		for j, a := range p.IssuerAliases {
			aat := fmt.Sprintf("%s.issuer_aliases[%d]", at, j)
			switch _, _, isTemplate, _ := SplitIssuerTemplate(a); {
			case a == "":
				bad(aat, "empty")
			case isTemplate:
				bad(aat, "an alias cannot be a template")
			case issuers[a]:
				bad(aat, "issuer %q is already used: the token's iss selects the provider", a)
			}
			issuers[a] = true
		}
		if !template && (p.TenantClaim != "" || len(p.Tenants) > 0) {
			bad(at+".tenant_claim", "tenant_claim and tenants only apply to an issuer template such as https://login.microsoftonline.com/{tenantid}/v2.0")
		}
		if _, err := ParseClaimPath(p.TenantClaim); p.TenantClaim != "" && err != nil {
			bad(at+".tenant_claim", "%v", err)
		}
		for j, tn := range p.Tenants {
			if !validTenant(tn) {
				bad(fmt.Sprintf("%s.tenants[%d]", at, j), "%q is not a tenant id (letters, digits, '.', '_', '-')", tn)
			}
		}
		for j, k := range p.Keys {
			if target := k.fetchURL(p.Issuer); k.BearerTokenFile != "" && !BearerAllowed(target) {
				bad(fmt.Sprintf("%s.keys[%d].bearer_token_file", at, j), "a bearer token is sent only over https (or to a loopback address), not to %s", target)
			}
			if k.Discovery && p.Issuer == "" {
				bad(fmt.Sprintf("%s.keys[%d].discovery", at, j), "discovery needs an issuer")
			}
			if template && k.Discovery && k.DiscoveryURI == "" {
				bad(fmt.Sprintf("%s.keys[%d].discovery_uri", at, j), "required with discovery when the issuer is a template")
			}
		}
		if len(p.Audiences) == 0 {
			bad(at+".audiences", "at least one audience is required")
		}
		if len(p.Algorithms) == 0 {
			bad(at+".algorithms", "at least one algorithm is required")
		}
		for j, c := range p.AudienceClaims {
			if _, err := ParseClaimPath(c); err != nil {
				bad(fmt.Sprintf("%s.audience_claims[%d]", at, j), "%v", err)
			}
		}
		for j, azp := range p.AuthorizedParties {
			if azp == "" {
				bad(fmt.Sprintf("%s.authorized_parties[%d]", at, j), "empty")
			}
		}
		errs = append(errs, validateClaims(at+".required_claims", p.RequiredClaims)...)
		for j, a := range p.Algorithms {
			if !slices.Contains(SupportedAlgorithms, a) {
				bad(fmt.Sprintf("%s.algorithms[%d]", at, j), "unsupported algorithm %q (want one of %s)", a, strings.Join(SupportedAlgorithms, ", "))
			}
		}
		if len(p.Keys) == 0 {
			bad(at+".keys", "at least one key source is required")
		}
		for j, k := range p.Keys {
			errs = append(errs, k.validate(fmt.Sprintf("%s.keys[%d]", at, j))...)
		}
		for j, s := range p.TokenSources {
			sat := fmt.Sprintf("%s.token_sources[%d]", at, j)
			n := count(s.Header != "", s.Cookie != "", s.Query != "")
			if n != 1 {
				bad(sat, "exactly one of header, cookie and query is required")
			}
			if s.Prefix != "" && s.Header == "" {
				bad(sat+".prefix", "only applies to a header source")
			}
			if s.Header != "" && !headerName.MatchString(s.Header) {
				bad(sat+".header", "%q is not a valid header name", s.Header)
			}
			if len(s.AllowedOrigins) > 0 && s.Cookie == "" {
				bad(sat+".allowed_origins", "only applies to a cookie source")
			}
			for k, o := range s.AllowedOrigins {
				if _, err := Origin(o); err != nil {
					bad(fmt.Sprintf("%s.allowed_origins[%d]", sat, k), "%v", err)
				}
			}
		}
		injected := map[string]string{}
		if len(p.ClaimsToHeaders) > MaxClaimHeaders {
			bad(at+".claims_to_headers", "at most %d headers", MaxClaimHeaders)
		}
		for claim, h := range p.ClaimsToHeaders {
			hat := fmt.Sprintf("%s.claims_to_headers.%s", at, claim)
			if _, err := ParseClaimPath(claim); err != nil {
				bad(hat, "%v", err)
			}
			if !headerName.MatchString(h) {
				bad(hat, "%q is not a valid lower-case header name", h)
			} else if h == "host" {
				// Envoy ignores host in headers_to_remove, so a client's copy could not be
				// stripped when the claim is absent, and rewriting it would re-route requests.
				bad(hat, "host cannot carry a claim")
			}
			if prev, ok := injected[h]; ok {
				bad(hat, "header %q is also set from claim %q", h, prev)
			}
			injected[h] = claim
		}
		if h := p.ForwardPayloadHeader; h != "" {
			if !headerName.MatchString(h) {
				bad(at+".forward_payload_header", "%q is not a valid lower-case header name", h)
			} else if _, ok := injected[h]; ok {
				bad(at+".forward_payload_header", "header %q is also set from a claim", h)
			}
		}
		if m := p.ResourceMetadata; m != nil {
			errs = append(errs, m.validate(at+".resource_metadata")...)
		}
		if b := p.CertificateBinding; b != nil {
			errs = append(errs, b.validate(at+".certificate_binding")...)
		}
		if e := p.Encryption; e != nil {
			errs = append(errs, e.validate(at+".encryption")...)
		}
		if d := p.DPoP; d != nil {
			errs = append(errs, d.validate(at+".dpop")...)
		}
		if in := p.Introspection; in != nil {
			errs = append(errs, in.validate(at+".introspection", p.Issuer)...)
		}
	}

	errs = append(errs, c.validateServedMetadata()...)
	errs = append(errs, c.DPoP.validate("dpop")...)

	for i, r := range c.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		if r.Name == "" {
			bad(at+".name", "required")
		}
		switch {
		case r.Require != nil && r.Action != "":
			bad(at, "set either action or require, not both")
		case r.Require == nil && r.Action != "allow" && r.Action != "deny":
			bad(at+".action", "must be allow or deny (or set require), got %q", r.Action)
		}
		if r.Mode != "" && r.Mode != "enforce" && r.Mode != "shadow" {
			bad(at+".mode", "must be enforce or shadow, got %q", r.Mode)
		}
		m := r.Match
		if m.Path != "" && m.PathPrefix != "" {
			bad(at+".match", "set path or path_prefix, not both")
		}
		if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
			bad(at+".match.path", "must start with /")
		}
		if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
			bad(at+".match.path_prefix", "must start with /")
		}
		for j, h := range m.Hosts {
			if h == "" || strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
				bad(fmt.Sprintf("%s.match.hosts[%d]", at, j), "want an exact host or *.suffix, got %q", h)
			}
		}
		for j, meth := range m.Methods {
			if meth == "" || strings.ToUpper(meth) != meth {
				bad(fmt.Sprintf("%s.match.methods[%d]", at, j), "want an upper-case method, got %q", meth)
			}
		}
		if m.CORSPreflight {
			if len(m.Methods) > 0 && !slices.Contains(m.Methods, "OPTIONS") {
				bad(at+".match.cors_preflight", "a preflight is an OPTIONS request, and methods leaves OPTIONS out")
			}
			if r.Require != nil {
				bad(at+".require", "a CORS preflight never carries a credential: use action allow or deny")
			}
		}
		if m.CEL != "" {
			if _, err := condition.Compile(m.CEL, c.CEL.CostLimit); err != nil {
				bad(at+".match.cel", "rule %q: %v in %q", r.Name, err, m.CEL)
			}
		}
		if r.Require != nil && r.Require.CEL != "" {
			if _, err := condition.Compile(r.Require.CEL, c.CEL.CostLimit); err != nil {
				bad(at+".require.cel", "rule %q: %v in %q", r.Name, err, r.Require.CEL)
			}
		}
		if r.Require != nil {
			for j, pn := range r.Require.Providers {
				if !names[pn] {
					bad(fmt.Sprintf("%s.require.providers[%d]", at, j), "no provider named %q", pn)
				}
			}
			if len(c.Providers) == 0 {
				bad(at+".require", "no providers are configured")
			}
			errs = append(errs, validateClaims(at+".require.claims", r.Require.Claims)...)
			for j, id := range r.Require.SPIFFEIDs {
				if prefix, wildcard := strings.CutSuffix(id, "*"); wildcard {
					if !strings.HasPrefix(prefix, "spiffe://") || strings.Contains(prefix, "*") {
						bad(fmt.Sprintf("%s.require.spiffe_ids[%d]", at, j), "want spiffe://trust-domain/path, optionally ending in one *")
					}
				} else if _, _, err := ParseSPIFFEID(id); err != nil {
					bad(fmt.Sprintf("%s.require.spiffe_ids[%d]", at, j), "%v", err)
				}
			}
			for j, a := range r.Require.Audiences {
				if a == "" {
					bad(fmt.Sprintf("%s.require.audiences[%d]", at, j), "empty")
				}
			}
		}
	}
	return errors.Join(errs...)
}

// validateClaims checks a map of claim paths to allowed values.
func validateClaims(at string, claims map[string]Values) []error {
	var errs []error
	for claim, vals := range claims {
		if _, err := ParseClaimPath(claim); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", at, claim, err))
		} else if len(vals) == 0 {
			errs = append(errs, fmt.Errorf("%s.%s: needs at least one value", at, claim))
		}
	}
	return errs
}

func (k Key) validate(at string) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	n := count(k.JWKSURI != "", k.JWKSFile != "", k.PEMFile != "", k.HMACSecretFile != "", k.Discovery,
		k.SPIFFEBundleURI != "", k.SPIFFEBundleFile != "")
	if n != 1 {
		bad(at, "exactly one of jwks_uri, jwks_file, pem_file, hmac_secret_file, discovery, spiffe_bundle_uri and spiffe_bundle_file is required")
	}
	if k.SPIFFEBundleURI != "" && !httpURL(k.SPIFFEBundleURI) {
		bad(at+".spiffe_bundle_uri", "must be an absolute http(s) URL")
	}
	if k.JWKSURI != "" && !httpURL(k.JWKSURI) {
		bad(at+".jwks_uri", "must be an absolute http(s) URL")
	}
	if k.DiscoveryURI != "" {
		if !k.Discovery {
			bad(at+".discovery_uri", "only applies with discovery: true")
		} else if !httpURL(k.DiscoveryURI) {
			bad(at+".discovery_uri", "must be an absolute http(s) URL")
		}
	}
	if k.HMACSecretFile != "" && k.KID == "" {
		bad(at+".kid", "required with hmac_secret_file")
	}
	if k.KID != "" && k.PEMFile == "" && k.HMACSecretFile == "" {
		bad(at+".kid", "only applies to pem_file and hmac_secret_file")
	}
	remote := k.remote()
	if !remote && (k.RefreshInterval != 0 || k.MaxStale != 0 || k.UnknownKIDCooldown != 0 || k.CAFile != "" || k.Timeout != 0 || k.BearerTokenFile != "") {
		bad(at, "refresh_interval, max_stale, unknown_kid_cooldown, timeout, ca_file and bearer_token_file only apply to jwks_uri, discovery and spiffe_bundle_uri")
	}
	if remote {
		if k.RefreshInterval.D() < MinimumRefreshInterval {
			bad(at+".refresh_interval", "must be at least 1s")
		}
		if k.MinRefreshInterval > k.MaxRefreshInterval {
			bad(at+".min_refresh_interval", "must not exceed max_refresh_interval")
		}
	}
	return errs
}

// Origin returns the canonical form of an origin from the file ("https://app.example.com",
// "http://localhost:8001"): lower case, without a default port, as browsers serialize the
// Origin header (RFC 6454 §6.1), so that it can be compared with that header byte for byte.
func Origin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "*") {
		return "", fmt.Errorf("want an origin scheme://host[:port] without path or wildcard, such as https://app.example.com, got %q", s)
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return strings.ToLower(u.Scheme) + "://" + host, nil
}

// remote reports whether the source is fetched over HTTP(S).
func (k Key) remote() bool { return k.JWKSURI != "" || k.Discovery || k.SPIFFEBundleURI != "" }

// fetchURL is the first URL a remote key source fetches.
func (k Key) fetchURL(issuer string) string {
	switch {
	case k.JWKSURI != "":
		return k.JWKSURI
	case k.SPIFFEBundleURI != "":
		return k.SPIFFEBundleURI
	case k.DiscoveryURI != "":
		return k.DiscoveryURI
	}
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// BearerAllowed reports whether a bearer token may be sent to rawURL: over https, or over
// http to a loopback address only (a sidecar, a test).
func BearerAllowed(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		return u.Scheme == "http" && ip.IsLoopback()
	}
	return u.Scheme == "http" && host == "localhost"
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// SplitIssuerTemplate splits an issuer template at its one placeholder in braces:
// "https://login.microsoftonline.com/{tenantid}/v2.0" gives the text before and after it and
// ok. An issuer without braces gives ok false; misplaced or repeated braces are an error.
func SplitIssuerTemplate(issuer string) (prefix, suffix string, ok bool, err error) {
	open := strings.IndexByte(issuer, '{')
	if open < 0 {
		if strings.ContainsRune(issuer, '}') {
			return "", "", false, errors.New("a '}' without '{'")
		}
		return "", "", false, nil
	}
	end := strings.IndexByte(issuer[open:], '}')
	if end < 0 {
		return "", "", false, errors.New("a '{' without '}'")
	}
	name, rest := issuer[open+1:open+end], issuer[open+end+1:]
	if name == "" || strings.ContainsAny(name, "{/") {
		return "", "", false, fmt.Errorf("placeholder %q: want a name such as {tenantid}", issuer[open:open+end+1])
	}
	if strings.ContainsAny(rest, "{}") {
		return "", "", false, errors.New("an issuer template has one placeholder")
	}
	if _, afterScheme, found := strings.Cut(issuer[:open], "://"); !found || !strings.Contains(afterScheme, "/") {
		return "", "", false, errors.New("the placeholder must come after the host, as in https://login.microsoftonline.com/{tenantid}/v2.0")
	}
	return issuer[:open], rest, true, nil
}

// validTenant: a tenant id that an issuer template's placeholder may stand for (a GUID, a
// domain name, a realm name); never a '/', so one template cannot reach another path.
func validTenant(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MatchIssuerTemplate returns the tenant id that iss puts in the template's placeholder.
func MatchIssuerTemplate(prefix, suffix, iss string) (tenant string, ok bool) {
	if len(iss) <= len(prefix)+len(suffix) || !strings.HasPrefix(iss, prefix) || !strings.HasSuffix(iss, suffix) {
		return "", false
	}
	tenant = iss[len(prefix) : len(iss)-len(suffix)]
	return tenant, validTenant(tenant)
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
