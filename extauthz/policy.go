package extauthz

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// Policy is one loaded configuration, compiled for the request path. It is immutable; a
// reload builds a new Policy and swaps it in, so a request finishes under the Policy it
// started with.
type Policy struct {
	// decrypters are the providers with encryption, in config order; none: a token of
	// five segments is malformed like any other non-JWS.
	decrypters []*provider
	// introspectors are the providers with introspection, in config order; none: an
	// opaque token is malformed.
	introspectors []*provider
	// nonces, replayStore and seenProofs serve DPoP: server nonces (nil: off), the shared
	// jti store (nil: seenProofs, this replica's memory).
	nonces      *nonces
	replayStore ReplayStore
	seenProofs  seenProofs
	providers   []*provider
	byIssuer    map[string]*provider // issuers and their aliases
	templates   []*provider          // providers whose issuer is a template
	// byTrustDomain holds the SPIFFE providers, for JWT-SVIDs without iss.
	byTrustDomain map[string]*provider
	rules         []*rule
	defaultAllow  bool
	nonHTTPAllow  bool
	shadow        bool // shadow: true, the whole policy is a dry run
	// noMetadata: dynamic_metadata.enabled is false, so no decision goes to Envoy's
	// dynamic metadata (the zero value writes it, as the default config does).
	noMetadata    bool
	maxTokenBytes int
	// injectable is every header any provider can set upstream. Each allow removes the ones
	// it does not set, so a client can never smuggle one in (landscape.md §5.4).
	// removeAllWire is all of them as an encoded headers_to_remove.
	injectable    []string
	removeAllWire []byte
	// claimPaths are the claims rules read; an identity keeps only these. claimLookups
	// holds them parsed, at the same indexes.
	claimPaths   []string
	claimLookups []config.ClaimPath
	// claimValues shares the string values of those claims between cached identities.
	claimValues internTable
	// celClaims: some require.cel reads claims, so an identity keeps the whole payload
	// (converted for CEL once, at verification, not on every cached check).
	celClaims bool
	cache     *tokenCache // nil when disabled
	// denials holds each kind of deny response once encoded (denial -> []byte);
	// the kinds are a closed set drawn from the config and fixed texts.
	denials sync.Map
}

// provider is a compiled config.Provider with its key source.
type provider struct {
	name, issuer, realm string
	// resourceMetadata is the RFC 9728 metadata URL its challenges carry; "" for none.
	resourceMetadata string
	// certBinding is where RFC 8705 client certificates come from; nil: the peer
	// certificate, and unbound tokens are fine.
	certBinding *certBinding
	// encryption accepts nested JWTs; nil when the provider takes only plain JWS.
	encryption *encryption
	// introspector asks the RFC 7662 endpoint about opaque tokens; nil: none.
	introspector Introspector
	// dpop is the provider's DPoP settings; nil: bearer tokens, and DPoP-bound ones held
	// to RFC 9449 with default settings.
	dpop              *dpopSettings
	audiences         []string
	algorithms        map[string]jose.SignatureAlgorithm
	types             []string
	skew, maxLifetime time.Duration
	requireExp        bool
	keys              KeySource
	// requireTyp: types names only explicit media types such as at+jwt (RFC 9068), so a
	// token without typ is refused rather than taken for one.
	requireTyp        bool
	audienceClaims    []config.ClaimPath
	authorizedParties []string
	requiredClaims    []claimCheck
	rejectIDTokens    bool
	// audienceIndexes are audienceClaims' indexes in Policy.claimPaths, set when a rule
	// requires audiences.
	audienceIndexes []int
	// An issuer template: the text around its placeholder, the claim the tenant id must
	// equal, and the allowed tenants (nil: any).
	templatePrefix, templateSuffix string
	tenantClaim                    config.ClaimPath
	tenants                        []string
	// trustDomain makes this a provider of SPIFFE JWT-SVIDs: sub must be a SPIFFE ID in it.
	trustDomain string

	sources       []tokenSource
	claimHeaders  []claimHeader // sorted by header
	payloadHeader string
	forwardToken  bool

	// removeWhenAllSet is the encoded headers_to_remove for an allow that sets every claim
	// header (allSet is that mask); removals holds the others, by mask, as they are met.
	removeWhenAllSet []byte
	allSet           uint64
	removals         sync.Map // uint64 -> []byte
	// metadata and issuerMetadata are the encoded dynamic metadata entries provider and iss.
	metadata, issuerMetadata []byte
}

// claimCheck is a claim path and its allowed values.
type claimCheck struct {
	path   config.ClaimPath
	values []string
}

type claimHeader struct {
	claim, header string
	path          config.ClaimPath
}

// NewPolicy compiles a validated configuration. keys must hold a KeySource for every
// provider, by provider name.
func NewPolicy(cfg *config.Config, keys map[string]KeySource, opts ...PolicyOption) (*Policy, error) {
	var o policyOptions
	for _, opt := range opts {
		opt(&o)
	}
	p := &Policy{
		byIssuer:      make(map[string]*provider),
		byTrustDomain: make(map[string]*provider),
		defaultAllow:  cfg.DefaultAction == "allow",
		nonHTTPAllow:  cfg.NonHTTPAction == "allow",
		shadow:        cfg.Shadow,
		noMetadata:    cfg.DynamicMetadata.Enabled != nil && !*cfg.DynamicMetadata.Enabled,
		maxTokenBytes: cfg.MaxTokenBytes,
	}
	if p.maxTokenBytes <= 0 {
		p.maxTokenBytes = config.DefaultMaxTokenBytes
	}
	p.replayStore = o.replayStore
	if n := cfg.DPoP.Nonce; n != nil {
		if len(o.nonceSecrets) == 0 {
			return nil, fmt.Errorf("extauthz: dpop.nonce is configured without its secret")
		}
		p.nonces = &nonces{secrets: o.nonceSecrets, lifetime: n.Lifetime.D()}
	}
	byName := make(map[string]*provider)
	for _, pc := range cfg.Providers {
		ks, ok := keys[pc.Name]
		if !ok || ks == nil {
			return nil, fmt.Errorf("extauthz: provider %q has no key source", pc.Name)
		}
		pr := &provider{
			name:          pc.Name,
			issuer:        pc.Issuer,
			realm:         pc.Realm,
			audiences:     pc.Audiences,
			algorithms:    make(map[string]jose.SignatureAlgorithm),
			types:         pc.Types,
			skew:          pc.ClockSkew.D(),
			maxLifetime:   pc.MaxLifetime.D(),
			requireExp:    pc.RequireExp == nil || *pc.RequireExp,
			keys:          ks,
			payloadHeader: pc.ForwardPayloadHeader,
			forwardToken:  pc.ForwardToken == nil || *pc.ForwardToken,
		}
		if pr.realm == "" {
			pr.realm = pr.name
		}
		if pc.ResourceMetadata != nil {
			pr.resourceMetadata = pc.ResourceMetadata.URL
		}
		pr.certBinding = newCertBinding(pc.CertificateBinding)
		if pc.DPoP != nil {
			pr.dpop = newDPoPSettings(pc.DPoP)
		}
		if pc.Encryption != nil {
			dk := o.decryptionKeys[pc.Name]
			if dk == nil {
				return nil, fmt.Errorf("extauthz: provider %q has no decryption keys", pc.Name)
			}
			pr.encryption = newEncryption(pc.Encryption, dk)
			p.decrypters = append(p.decrypters, pr)
		}
		if pc.Introspection != nil {
			if pr.introspector = o.introspectors[pc.Name]; pr.introspector == nil {
				// A face that cannot introspect (-explain, -test)
				// answers opaque tokens 503, never as if introspection were off.
				pr.introspector = noIntrospector{}
			}
			p.introspectors = append(p.introspectors, pr)
		}
		if len(pr.types) == 0 {
			pr.types = config.DefaultTypes
		}
		pr.requireTyp = !slices.ContainsFunc(pr.types, func(t string) bool {
			return strings.EqualFold(t, "JWT") || strings.EqualFold(t, "application/jwt")
		})
		pr.rejectIDTokens = pc.RejectIDTokens == nil || *pc.RejectIDTokens
		pr.authorizedParties = pc.AuthorizedParties
		audClaims := pc.AudienceClaims
		if len(audClaims) == 0 {
			audClaims = []string{"aud"}
		}
		for _, c := range audClaims {
			path, err := config.ParseClaimPath(c)
			if err != nil {
				return nil, fmt.Errorf("extauthz: provider %q: audience_claims: %w", pc.Name, err)
			}
			pr.audienceClaims = append(pr.audienceClaims, path)
		}
		for c, vals := range pc.RequiredClaims {
			path, err := config.ParseClaimPath(c)
			if err != nil {
				return nil, fmt.Errorf("extauthz: provider %q: required_claims: %w", pc.Name, err)
			}
			pr.requiredClaims = append(pr.requiredClaims, claimCheck{path: path, values: vals})
		}
		for _, a := range pc.Algorithms {
			if a == "none" || !slices.Contains(config.SupportedAlgorithms, a) {
				return nil, fmt.Errorf("extauthz: provider %q: algorithm %q not supported", pc.Name, a)
			}
			pr.algorithms[a] = jose.SignatureAlgorithm(a)
		}
		sources := pc.TokenSources
		if len(sources) == 0 {
			sources = []config.TokenSource{{Header: "authorization", Prefix: "Bearer"}}
		}
		for _, s := range sources {
			pr.sources = append(pr.sources, newTokenSource(s))
		}
		for claim, h := range pc.ClaimsToHeaders {
			path, err := config.ParseClaimPath(claim)
			if err != nil {
				return nil, fmt.Errorf("extauthz: provider %q: claims_to_headers: %w", pc.Name, err)
			}
			pr.claimHeaders = append(pr.claimHeaders, claimHeader{claim: claim, header: h, path: path})
			p.addInjectable(h)
		}
		sort.Slice(pr.claimHeaders, func(i, j int) bool { return pr.claimHeaders[i].header < pr.claimHeaders[j].header })
		if pr.payloadHeader != "" {
			p.addInjectable(pr.payloadHeader)
		}
		p.providers = append(p.providers, pr)
		if td := pc.SPIFFETrustDomain; td != "" {
			pr.trustDomain = td
			p.byTrustDomain[td] = pr
			if pr.issuer == "" { // what the decision log and metadata report
				pr.issuer = "spiffe://" + td
			}
		}
		prefix, suffix, template, err := config.SplitIssuerTemplate(pc.Issuer)
		switch {
		case pc.Issuer == "":
		case err != nil:
			return nil, fmt.Errorf("extauthz: provider %q: issuer: %w", pc.Name, err)
		case template:
			pr.templatePrefix, pr.templateSuffix, pr.tenants = prefix, suffix, pc.Tenants
			claim := pc.TenantClaim
			if claim == "" {
				claim = "tid"
			}
			if pr.tenantClaim, err = config.ParseClaimPath(claim); err != nil {
				return nil, fmt.Errorf("extauthz: provider %q: tenant_claim: %w", pc.Name, err)
			}
			p.templates = append(p.templates, pr)
		default:
			p.byIssuer[pr.issuer] = pr
		}
		for _, alias := range pc.IssuerAliases {
			p.byIssuer[alias] = pr
		}
		byName[pr.name] = pr
	}
	slices.Sort(p.injectable)
	p.removeAllWire = removalList(p.injectable)
	for _, pr := range p.providers {
		pr.allSet = 1<<len(pr.claimHeaders) - 1
		pr.removeWhenAllSet = removalList(p.removeExcept(pr.headersIn(pr.allSet)))
		pr.metadata = metadataEntry("provider", pr.name)
		pr.issuerMetadata = metadataEntry("iss", pr.issuer)
	}
	p.claimPaths = []string{scopeClaim: "scope", scpClaim: "scp"}
	p.claimLookups = []config.ClaimPath{
		scopeClaim: {Segments: []string{"scope"}}, scpClaim: {Segments: []string{"scp"}},
	}
	addPath := func(path string) (int, error) {
		if i := slices.Index(p.claimPaths, path); i >= 0 {
			return i, nil
		}
		parsed, err := config.ParseClaimPath(path)
		if err != nil {
			return 0, err
		}
		p.claimPaths = append(p.claimPaths, path)
		p.claimLookups = append(p.claimLookups, parsed)
		return len(p.claimPaths) - 1, nil
	}
	if slices.ContainsFunc(cfg.Rules, func(r config.Rule) bool { return r.Require != nil && len(r.Require.Audiences) > 0 }) {
		for i, pr := range p.providers {
			audClaims := cfg.Providers[i].AudienceClaims
			if len(audClaims) == 0 {
				audClaims = []string{"aud"}
			}
			for _, c := range audClaims {
				idx, err := addPath(c)
				if err != nil {
					return nil, fmt.Errorf("extauthz: provider %q: %w", pr.name, err)
				}
				pr.audienceIndexes = append(pr.audienceIndexes, idx)
			}
		}
	}
	for _, rc := range cfg.Rules {
		if rc.Require != nil {
			for path := range rc.Require.Claims {
				if _, err := addPath(path); err != nil {
					return nil, fmt.Errorf("extauthz: rule %q: %w", rc.Name, err)
				}
			}
		}
	}
	for _, rc := range cfg.Rules {
		if rc.Require != nil && len(p.providers) == 0 {
			return nil, fmt.Errorf("extauthz: rule %q requires a token but no providers are configured", rc.Name)
		}
		for _, n := range ruleProviders(rc) {
			if byName[n] == nil {
				return nil, fmt.Errorf("extauthz: rule %q: no provider %q", rc.Name, n)
			}
		}
		ru, err := compileRule(rc, p.providers, byName, p.claimPaths, cfg.CEL.CostLimit)
		if err != nil {
			return nil, err
		}
		p.celClaims = p.celClaims || ru.requireCEL != nil
		p.rules = append(p.rules, ru)
	}
	if cfg.Cache.Enabled == nil || *cfg.Cache.Enabled {
		entries, bytes := cfg.Cache.MaxEntries, cfg.Cache.MaxBytes
		if entries == 0 {
			entries = config.DefaultCacheEntries
		}
		if bytes == 0 {
			bytes = config.DefaultCacheBytes
		}
		p.cache = newTokenCache(entries, bytes)
	}
	return p, nil
}

// providerFor picks the provider of an unverified token by its iss: an exact issuer or
// alias, else an issuer template, whose tenant id it returns; a token without iss by the
// trust domain of its SPIFFE ID. Nil when none matches.
func (p *Policy) providerFor(t *parsedToken) (pr *provider, tenant string) {
	iss := t.iss
	if _, present := t.claims["iss"]; !present {
		// A JWT-SVID may have no iss (SPIFFE JWT-SVID §3): its sub names the trust domain.
		// Only the trust domain picks the provider; verification checks the whole ID.
		sub, _ := t.claims["sub"].(string)
		if rest, ok := strings.CutPrefix(sub, "spiffe://"); ok {
			td, _, _ := strings.Cut(rest, "/")
			return p.byTrustDomain[td], ""
		}
		return nil, ""
	}
	if pr = p.byIssuer[iss]; pr != nil {
		return pr, ""
	}
	for _, t := range p.templates {
		if tenant, ok := config.MatchIssuerTemplate(t.templatePrefix, t.templateSuffix, iss); ok {
			return t, tenant
		}
	}
	return nil, ""
}

// CachedTokens is the number of verified tokens the Policy's cache holds.
func (p *Policy) CachedTokens() int {
	if p.cache == nil {
		return 0
	}
	return p.cache.len()
}

func ruleProviders(r config.Rule) []string {
	if r.Require == nil {
		return nil
	}
	return r.Require.Providers
}

func (p *Policy) addInjectable(h string) {
	if !slices.Contains(p.injectable, h) {
		p.injectable = append(p.injectable, h)
	}
}

// Ready reports whether every provider's keys can currently verify tokens.
func (p *Policy) Ready() bool {
	for _, pr := range p.providers {
		if !pr.keys.Ready() {
			return false
		}
	}
	return true
}
