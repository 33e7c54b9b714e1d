package extauthz

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwt-authz/jwt-authz/condition"
)

// Decision is what the server decided and why: the facts for the decision log and metrics.
// It never holds the token.
type Decision struct {
	Allowed    bool
	Reason     Reason
	HTTPStatus int // 200 on allow
	Rule       string
	Provider   string
	Issuer     string
	Subject    string
	KID        string
	Cached     bool // answered from the verified-token cache
	Method     string
	Path       string
	RequestID  string
	Front      Front // the face the request came through; set by the Server
	// CELError is the kind of CEL evaluation error behind a cel_error, without any value
	// the expression saw.
	CELError string
	// ShadowDecision is "allow" or "deny" when a shadow rule matched (or the whole policy
	// runs in shadow): what enforcing it would have answered, with ShadowReason and
	// ShadowRule. Empty otherwise.
	ShadowDecision string
	ShadowReason   Reason
	ShadowRule     string
}

// denial is a refusal before it becomes a CheckResponse.
type denial struct {
	reason     Reason
	httpStatus int
	code       string // RFC 6750 §3.1 error code; empty for a request without credentials
	desc       string
	scope      string // missing scopes, for insufficient_scope
	realm      string
	// resourceMetadata is the RFC 9728 §5.1 resource_metadata parameter of the challenge.
	resourceMetadata string
	// dpopAlgs, when set, adds a DPoP challenge with these algs (RFC 9449 §7.1); with
	// dpopOnly it is the only challenge and carries the error. nonce is a DPoP-Nonce to
	// send (such a denial is not cached: the nonce changes).
	dpopAlgs  string
	dpopOnly  bool
	nonce     string
	challenge bool   // send WWW-Authenticate
	rule      string // the rule whose CEL condition refused, named in the body
}

// outcome is an allow or a denial plus what the log needs.
type outcome struct {
	allow    bool
	reason   Reason
	rule     *rule
	denial   denial
	token    *identity // nil for public, anonymous and non-HTTP allows
	cacheHit bool
	source   tokenSource
	provider *provider
	parsed   *parsedToken
	celErr   string // what kind of CEL evaluation error denied, for the log
	shadow   *shadowReport
}

// Check decides one CheckRequest given as a message. It is the protobuf face of the path
// the gRPC server runs (AppendCheck): the request is serialized and read as the server
// reads it, and the encoded answer is decoded, so a test of Check tests the bytes Envoy
// sees.
func (p *Policy) Check(ctx context.Context, req *authv3.CheckRequest, now time.Time) (resp *authv3.CheckResponse, d Decision) {
	resp = checkMessage(req, func(dst, in []byte) []byte {
		var out []byte
		out, d = p.AppendCheck(dst, ctx, in, now)
		return out
	})
	return resp, d
}

// AppendCheck decides one serialized CheckRequest and appends the serialized CheckResponse
// to dst. It never fails: every problem with the request or the token is a denial
// (envoy-extauthz.md §2: an RPC error would be subject to failure_mode_allow), and a
// request that does not decode is a 400. The request's strings alias in, which must not
// change until AppendCheck returns.
func (p *Policy) AppendCheck(dst []byte, ctx context.Context, in []byte, now time.Time) ([]byte, Decision) {
	// Nothing keeps r past this call: the Decision's strings alias in, not r.
	r := requests.Get().(*request)
	defer func() {
		*r = request{}
		requests.Put(r)
	}()
	if err := r.parse(in); err != nil {
		d := Decision{Reason: ReasonBadRequest, HTTPStatus: http.StatusBadRequest}
		dn := denial{reason: ReasonBadRequest, httpStatus: http.StatusBadRequest, code: "invalid_request",
			desc: "the authorization request is malformed"}
		return p.appendDeny(dst, dn, outcome{}, d), d
	}
	o, d := p.decide(ctx, r, now)
	if o.allow {
		return p.appendAllow(dst, r, o, d), d
	}
	return p.appendDeny(dst, o.denial, o, d), d
}

// decide is the one decision every face runs: a request view in, an outcome and the
// facts for the log and metrics out.
func (p *Policy) decide(ctx context.Context, r *request, now time.Time) (outcome, Decision) {
	var o outcome
	if !r.http {
		o = p.decideNonHTTP(r, now)
	} else {
		o = p.decideHTTP(ctx, r, now)
	}
	d := Decision{
		Allowed:   o.allow,
		Reason:    o.reason,
		Method:    r.method,
		Path:      r.path,
		RequestID: r.requestID(),
		CELError:  o.celErr,
	}
	if o.rule != nil {
		d.Rule = o.rule.name
	}
	if o.provider != nil {
		d.Provider = o.provider.name
	}
	if o.parsed != nil {
		d.KID = truncate(o.parsed.kid, 128) // unverified input: bounded before it is logged
	}
	if o.token != nil { // only verified identities are reported
		d.Issuer, d.Subject, d.KID = o.token.iss(), o.token.sub, o.token.kid()
		d.Cached = o.cacheHit
	}
	d.HTTPStatus = o.denial.httpStatus
	if o.allow {
		d.HTTPStatus = http.StatusOK
	}
	if p.shadow { // the whole policy is a dry run: report what it decided, then allow
		o.shadow = &shadowReport{rule: o.rule, allow: o.allow, reason: o.reason}
		if !o.allow {
			// No identity headers: the token may be invalid, and the upstream must not
			// tell a shadow allow from a real one by them. Every injectable header is
			// still removed.
			o = outcome{allow: true, reason: ReasonShadowAllow, rule: o.rule, provider: o.provider, shadow: o.shadow}
			d.Allowed, d.Reason, d.HTTPStatus = true, ReasonShadowAllow, http.StatusOK
		}
	}
	if sh := o.shadow; sh != nil {
		d.ShadowDecision, d.ShadowReason = "deny", sh.reason
		if sh.allow {
			d.ShadowDecision = "allow"
		}
		if sh.rule != nil {
			d.ShadowRule = sh.rule.name
		}
	}
	return o, d
}

// shadowReport is the would-be decision of a shadow rule, or of the whole policy when it
// runs in shadow.
type shadowReport struct {
	rule   *rule // nil for the default action
	allow  bool
	reason Reason
}

// orFirst keeps the first shadow rule's report: it is what enforcing that rule would
// answer, since an enforced rule ends the search.
func (s *shadowReport) orFirst(o outcome) *shadowReport {
	if s != nil {
		return s
	}
	return &shadowReport{rule: o.rule, allow: o.allow, reason: o.reason}
}

// decideNonHTTP: a TCP check has no credential to look at, so only allow and deny rules
// can select it (matchesNonHTTP).
func (p *Policy) decideNonHTTP(r *request, now time.Time) outcome {
	o, decided := p.walkRules(context.Background(), r, now)
	switch {
	case decided:
		return o
	case p.nonHTTPAllow:
		return outcome{allow: true, reason: ReasonNonHTTPAllow, shadow: o.shadow}
	}
	return outcome{reason: ReasonNonHTTPDeny, denial: forbidden(ReasonNonHTTPDeny, "non-HTTP traffic is denied"), shadow: o.shadow}
}

// walkRules tries the rules in order. The first enforced rule that selects r decides
// (decided is true); the first shadow rule that selects it is evaluated fully and
// reported in o.shadow, and the walk goes on. A match.cel that fails to evaluate is a
// refusal by its rule, never a non-match.
func (p *Policy) walkRules(ctx context.Context, r *request, now time.Time) (o outcome, decided bool) {
	var shadow *shadowReport
	for _, ru := range p.rules {
		if r.http && !ru.matchesHTTP(r) || !r.http && (ru.action == actionRequire || !ru.matchesNonHTTP(r)) {
			continue
		}
		matched, failed := ru.celMatches(r, now)
		switch {
		case failed != nil:
			o = *failed
		case !matched:
			continue
		case ru.shadow && shadow != nil:
			continue // only the first shadow rule that matches is reported
		default:
			o = p.applyRule(ctx, r, ru, now)
		}
		if ru.shadow {
			shadow = shadow.orFirst(o)
			continue
		}
		o.shadow = shadow
		return o, true
	}
	return outcome{shadow: shadow}, false
}

// celMatches evaluates match.cel once the rule's other match fields have matched. An
// evaluation error is not a non-match, which would let the request fall through to a
// looser rule: it is a refusal, returned as o.
func (ru *rule) celMatches(r *request, now time.Time) (matched bool, o *outcome) {
	if ru.matchCEL == nil {
		return true, nil
	}
	ok, err := evalCEL(ru.matchCEL, r, nil, now)
	if err != nil {
		failed := celFailed(ru, err)
		return false, &failed
	}
	return ok, nil
}

func celFailed(ru *rule, err error) outcome {
	return outcome{reason: ReasonCELError, rule: ru, celErr: celErrorText(err), denial: celDenial(ReasonCELError, ru)}
}

func (p *Policy) decideHTTP(ctx context.Context, r *request, now time.Time) outcome {
	o, decided := p.walkRules(ctx, r, now)
	switch {
	case decided:
		return o
	case p.defaultAllow:
		return outcome{allow: true, reason: ReasonDefaultAllow, shadow: o.shadow}
	}
	return outcome{reason: ReasonNoRule, denial: forbidden(ReasonNoRule, "no rule allows this request"), shadow: o.shadow}
}

// applyRule decides a request by the rule that selected it.
func (p *Policy) applyRule(ctx context.Context, r *request, ru *rule, now time.Time) outcome {
	switch ru.action {
	case actionAllow:
		return outcome{allow: true, reason: ReasonPublic, rule: ru}
	case actionDeny:
		return outcome{reason: ReasonRuleDeny, rule: ru, denial: forbidden(ReasonRuleDeny, "access to this resource is denied")}
	}

	// The challenge names the rule's first provider until the token names its own.
	challenger := ru.providers[0]
	raw, src, found, err := extract(r, ru.sources, p.maxTokenBytes)
	if err != nil {
		return tokenDenied(ru, nil, nil, challenger, err)
	}
	if !found {
		if ru.optional {
			// require.cel still holds for anonymous requests, with claims = {}.
			return p.requireCEL(outcome{allow: true, reason: ReasonAnonymous, rule: ru}, r, nil, now)
		}
		// RFC 6750 §3.1: no error code when the request carried no credentials.
		d := denial{reason: ReasonMissingToken, httpStatus: http.StatusUnauthorized, challenge: true,
			desc: "a bearer token is required"}
		challenger.challengeBy(&d)
		return outcome{reason: ReasonMissingToken, rule: ru, denial: d}
	}
	if !csrfAllowed(r, src) {
		// Before verification: a forged request costs no signature check, and its answer
		// (which CORS hides from the forging page anyway) says nothing about the token.
		return outcome{reason: ReasonCSRF, rule: ru, denial: forbidden(ReasonCSRF,
			"a cookie credential on this method needs a same-origin request or an allowed Origin")}
	}
	id, pt, hit, err := p.authenticate(ctx, ru, src, raw, now)
	if err != nil {
		pr := (*provider)(nil)
		if pt != nil {
			pr = pt.provider
		}
		if pr != nil {
			challenger = pr
		}
		return tokenDenied(ru, pr, pt, challenger, err)
	}
	pr := id.provider
	if id.cnf() != nil || pr.certBinding != nil { // RFC 8705: nothing to do for bearer tokens
		if err := pr.checkCertificate(r, id.cnf()); err != nil {
			return tokenDenied(ru, pr, pt, pr, err)
		}
	}
	if pr.dpop != nil || (id.cnf() != nil && id.cnf().jkt != "") { // RFC 9449
		if nonce, err := p.checkDPoP(ctx, r, pr, id, src, raw, now); err != nil {
			return dpopDenied(ru, pr, pt, err, nonce)
		}
	}
	o := outcome{rule: ru, provider: pr, parsed: pt, token: id, source: src, cacheHit: hit}
	if len(ru.audiences) > 0 && !audienceAllowed(id, ru.audiences) {
		// Like the provider's own audience check: this token is not meant for this resource.
		d := tokenDenied(ru, pr, pt, pr, errAudience)
		o.reason, o.denial = d.reason, d.denial
		return o
	}
	if missing := missingScopes(ru.scopes, id); len(missing) > 0 {
		o.reason = ReasonScope
		o.denial = denial{
			reason: ReasonScope, httpStatus: http.StatusForbidden, code: "insufficient_scope",
			desc: "the token lacks a required scope", scope: strings.Join(ru.scopes, " "),
			challenge: true,
		}
		pr.challengeBy(&o.denial)
		return o
	}
	if len(ru.spiffeIDs) > 0 && !principalMatches(ru.spiffeIDs, id.sub) {
		o.reason = ReasonSPIFFEID
		o.denial = forbidden(ReasonSPIFFEID, "the token's SPIFFE ID is not allowed here")
		return o
	}
	if !claimsSatisfied(ru.claims, id) {
		o.reason = ReasonClaimMismatch
		o.denial = forbidden(ReasonClaimMismatch, "the token's claims do not grant access")
		return o
	}
	o.allow, o.reason = true, ReasonAllowed
	return p.requireCEL(o, r, id.celClaims(), now)
}

// requireCEL applies the rule's require.cel to an allow o: false denies with cel_denied,
// an error with cel_error.
func (p *Policy) requireCEL(o outcome, r *request, claims *condition.Claims, now time.Time) outcome {
	prg := o.rule.requireCEL
	if prg == nil {
		return o
	}
	ok, err := evalCEL(prg, r, claims, now)
	switch {
	case err != nil:
		o.allow, o.reason, o.celErr = false, ReasonCELError, celErrorText(err)
		o.denial = celDenial(ReasonCELError, o.rule)
	case !ok:
		o.allow, o.reason = false, ReasonCELDenied
		o.denial = celDenial(ReasonCELDenied, o.rule)
	}
	return o
}

// celDenial is the 403 for a CEL condition that was false or failed: it names the rule, so
// the team that owns the condition can be found from the client's answer.
func celDenial(reason Reason, ru *rule) denial {
	desc := "the rule's condition denies this request"
	if reason == ReasonCELError {
		desc = "the rule's condition could not be evaluated"
	}
	d := forbidden(reason, desc)
	d.rule = ru.name
	return d
}

// authenticate turns a credential into a verified identity: from the cache when the same
// token was verified under this Policy and its key is still in the provider's set, else by
// parsing and verifying it. Either way the token's provider must be one the rule accepts,
// reading the source the token came from. pt is nil on a cache hit that is allowed.
func (p *Policy) authenticate(ctx context.Context, ru *rule, src tokenSource, raw string, now time.Time) (id *identity, pt *parsedToken, hit bool, err error) {
	accepted := func(pr *provider) bool {
		return slices.Contains(ru.providers, pr) && slices.Contains(pr.sources, src)
	}
	var k cacheKey
	if p.cache != nil {
		k = keyOf(raw)
		if id = p.cache.get(k, now); id != nil {
			// A refusal reports what parsing would have found (provider, realm, kid), so a
			// cached token is answered and logged exactly like an uncached one.
			seen := func() *parsedToken { return &parsedToken{kid: id.kid(), iss: id.iss(), provider: id.provider} }
			if !accepted(id.provider) {
				return nil, seen(), false, errProviderNotAllowed
			}
			key, found, err := id.provider.keys.Lookup(ctx, id.kid())
			if err != nil {
				return nil, seen(), false, fmt.Errorf("provider %q: %w: %v", id.provider.name, errKeysUnavailable, err)
			}
			if found && key == id.key {
				return id, nil, true, nil
			}
			p.cache.drop(k) // the key was withdrawn or replaced: verify afresh
		}
	}
	if p.introspectors != nil && isOpaque(raw) {
		id, pt, err = p.introspect(ctx, raw, accepted, now)
		return id, pt, false, err
	}
	text, decrypter := raw, (*provider)(nil)
	if p.decrypters != nil && isJWE(raw) { // a nested JWT; the cache key stays the outer token
		if text, decrypter, err = p.decrypt(ctx, raw); err != nil {
			return nil, nil, false, err
		}
	}
	if pt, err = parseToken(text); err != nil {
		return nil, nil, false, err
	}
	pr, tenant := p.providerFor(pt)
	if pr == nil {
		return nil, pt, false, errUnknownIssuer
	}
	pt.provider, pt.tenant = pr, tenant
	if !accepted(pr) { // only the providers the rule names are tried
		return nil, pt, false, errProviderNotAllowed
	}
	if decrypter != nil && decrypter != pr {
		return nil, pt, false, errEncryptedForOther
	}
	if decrypter == nil && pr.encryption != nil && pr.encryption.required {
		return nil, pt, false, errEncryptionRequired
	}
	vt, err := pr.verify(ctx, pt, now)
	if err != nil {
		return nil, pt, false, err
	}
	cnf, err := confirmationOf(vt.claims)
	if err != nil {
		return nil, pt, false, err
	}
	id = p.newIdentity(vt, cnf)
	if p.cache != nil {
		p.cache.put(k, id)
	}
	return id, pt, false, nil
}

// tokenDenied is the denial of a credential; challenger is the provider whose realm and
// resource metadata the challenge names.
func tokenDenied(ru *rule, pr *provider, pt *parsedToken, challenger *provider, err error) outcome {
	d := denialFor(err)
	// A 503 (keys unavailable) is our outage, not a problem with the credential: no challenge.
	challenger.challengeBy(&d)
	d.challenge = d.httpStatus != http.StatusServiceUnavailable
	return outcome{reason: d.reason, rule: ru, provider: pr, parsed: pt, denial: d}
}

// challengeBy fills in what pr's challenges say: its realm, RFC 9728 resource metadata,
// and a DPoP challenge when it takes DPoP (the only one when it requires DPoP).
func (pr *provider) challengeBy(d *denial) {
	d.realm, d.resourceMetadata = pr.realm, pr.resourceMetadata
	if pr.dpop != nil {
		d.dpopAlgs, d.dpopOnly = pr.dpop.algsText, pr.dpop.required
	}
}

func forbidden(reason Reason, desc string) denial {
	return denial{reason: reason, httpStatus: http.StatusForbidden, code: "access_denied", desc: desc}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
