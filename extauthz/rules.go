package extauthz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jwt-authz/jwt-authz/condition"
	"github.com/jwt-authz/jwt-authz/config"
)

type action uint8

const (
	actionRequire action = iota
	actionAllow
	actionDeny
)

// rule is a compiled config.Rule.
type rule struct {
	name     string
	metadata []byte // the dynamic metadata entry rule = name, encoded once
	// shadow: mode shadow, so a match is reported and the search goes on.
	// shadowMetadata is the entry shadow_rule = name.
	shadow         bool
	shadowMetadata []byte

	hosts      []string // exact, lower case
	hostSuffix []string // from "*.example.com": ".example.com"
	path       string
	prefix     string
	methods    []string
	ctxExt     map[string]string
	srcPrinc   []string
	dstPrinc   []string
	preflight  bool               // match only CORS preflights
	matchCEL   *condition.Program // nil when the rule has no match.cel

	action    action
	providers []*provider   // candidates for a token; every provider when the rule names none
	sources   []tokenSource // the candidates' sources, in order, without repeats
	scopes    []string
	audiences []string
	spiffeIDs []string
	claims    []claimRequirement
	optional  bool
	// requireCEL is require.cel, nil when absent.
	requireCEL *condition.Program
}

type claimRequirement struct {
	path   string
	index  int // into Policy.claimPaths
	values []string
}

func compileRule(r config.Rule, providers []*provider, byName map[string]*provider, claimPaths []string, costLimit uint64) (*rule, error) {
	c := &rule{
		name:           r.Name,
		metadata:       metadataEntry("rule", r.Name),
		shadow:         r.Mode == "shadow",
		shadowMetadata: metadataEntry("shadow_rule", r.Name),
		path:           r.Match.Path,
		prefix:         strings.TrimSuffix(r.Match.PathPrefix, "/"),
		methods:        r.Match.Methods,
		ctxExt:         r.Match.ContextExtensions,
		srcPrinc:       r.Match.SourcePrincipals,
		dstPrinc:       r.Match.DestinationPrincipals,
		preflight:      r.Match.CORSPreflight,
	}
	if r.Match.PathPrefix == "/" {
		c.prefix = "/"
	}
	for _, h := range r.Match.Hosts {
		h = strings.ToLower(h)
		if suffix, ok := strings.CutPrefix(h, "*"); ok {
			c.hostSuffix = append(c.hostSuffix, suffix)
		} else {
			c.hosts = append(c.hosts, h)
		}
	}
	if r.Match.CEL != "" {
		prg, err := condition.Compile(r.Match.CEL, costLimit)
		if err != nil {
			return nil, fmt.Errorf("extauthz: rule %q: match.cel: %w", r.Name, err)
		}
		c.matchCEL = prg
	}
	switch r.Action {
	case "allow":
		c.action = actionAllow
		return c, nil
	case "deny":
		c.action = actionDeny
		return c, nil
	}
	if r.Require.CEL != "" {
		prg, err := condition.Compile(r.Require.CEL, costLimit)
		if err != nil {
			return nil, fmt.Errorf("extauthz: rule %q: require.cel: %w", r.Name, err)
		}
		c.requireCEL = prg
	}
	c.action = actionRequire
	c.optional = r.Require.Optional
	c.scopes = r.Require.Scopes
	c.audiences = r.Require.Audiences
	c.spiffeIDs = r.Require.SPIFFEIDs
	if len(r.Require.Providers) == 0 {
		c.providers = providers
	}
	for _, n := range r.Require.Providers {
		c.providers = append(c.providers, byName[n])
	}
	for _, p := range c.providers {
		for _, s := range p.sources {
			if !slices.Contains(c.sources, s) {
				c.sources = append(c.sources, s)
			}
		}
	}
	for path, vals := range r.Require.Claims {
		c.claims = append(c.claims, claimRequirement{path: path, index: slices.Index(claimPaths, path), values: vals})
	}
	slices.SortFunc(c.claims, func(a, b claimRequirement) int { return strings.Compare(a.path, b.path) })
	return c, nil
}

// matchesHTTP reports whether the rule selects this HTTP request.
func (c *rule) matchesHTTP(r *request) bool {
	if len(c.hosts)+len(c.hostSuffix) > 0 && !c.hostMatches(r.host) {
		return false
	}
	if c.path != "" && r.matchPath != c.path {
		return false
	}
	if c.prefix != "" && !prefixMatches(c.prefix, r.matchPath) {
		return false
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, r.method) {
		return false
	}
	if c.preflight && !isCORSPreflight(r) {
		return false
	}
	return c.matchesPeers(r)
}

// matchesNonHTTP: a TCP check carries no host, path or method, so only rules that ask for
// none of those can select it.
func (c *rule) matchesNonHTTP(r *request) bool {
	if len(c.hosts)+len(c.hostSuffix) > 0 || c.path != "" || c.prefix != "" || len(c.methods) > 0 || c.preflight {
		return false
	}
	return c.matchesPeers(r)
}

func (c *rule) matchesPeers(r *request) bool {
	for k, v := range c.ctxExt {
		if got, ok := r.contextExtension(k); !ok || got != v {
			return false
		}
	}
	if len(c.srcPrinc) > 0 && !principalMatches(c.srcPrinc, r.sourcePrincipal) {
		return false
	}
	if len(c.dstPrinc) > 0 && !principalMatches(c.dstPrinc, r.destinationPrincipal) {
		return false
	}
	return true
}

func (c *rule) hostMatches(host string) bool {
	if slices.Contains(c.hosts, host) {
		return true
	}
	for _, s := range c.hostSuffix {
		// "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com".
		if len(host) > len(s) && strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// prefixMatches is segment-aware: /api matches /api and /api/x, not /apix. A ';' also ends
// the segment: servlet containers read /admin;jsessionid=x as /admin, so it must meet the
// /admin rule rather than fall through to a looser one.
func prefixMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	return strings.HasPrefix(path, prefix) &&
		(len(path) == len(prefix) || path[len(prefix)] == '/' || path[len(prefix)] == ';')
}

// principalMatches: exact, or a trailing * matching any suffix
// ("spiffe://cluster.local/ns/payments/*").
func principalMatches(patterns []string, principal string) bool {
	if principal == "" {
		return false
	}
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(principal, pre) {
				return true
			}
		} else if p == principal {
			return true
		}
	}
	return false
}

// Indexes of the scope claims in Policy.claimPaths.
const (
	scopeClaim = iota // "scope"
	scpClaim          // "scp"
)

// missingScopes returns the required scopes the token does not grant. Scopes come from a
// space-delimited "scope" string (RFC 8693 §4.2, RFC 9068 §2.2.3) or a "scp"/"scope" array.
func missingScopes(required []string, id *identity) []string {
	if len(required) == 0 {
		return nil
	}
	var granted []string
	for _, v := range []any{id.claim(scopeClaim), id.claim(scpClaim)} {
		switch v := v.(type) {
		case string:
			granted = append(granted, strings.Fields(v)...)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					granted = append(granted, s)
				}
			}
		}
	}
	var missing []string
	for _, s := range required {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// claimsSatisfied: every requirement holds; an array claim holds when any element is one of
// the allowed values.
func claimsSatisfied(reqs []claimRequirement, id *identity) bool {
	for _, req := range reqs {
		v := id.claim(req.index)
		if v == nil || !valueAllowed(v, req.values) {
			return false
		}
	}
	return true
}

func valueAllowed(v any, allowed []string) bool {
	if arr, ok := v.([]any); ok {
		return slices.ContainsFunc(arr, func(e any) bool {
			s, ok := scalarText(e)
			return ok && slices.Contains(allowed, s)
		})
	}
	s, ok := scalarText(v)
	return ok && slices.Contains(allowed, s)
}
