package extauthz

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jwt-authz/jwt-authz/condition"
)

// Explain decides req exactly as Decide does and also returns, as lines for a person, why:
// each rule tried and why it was selected or not, each check of the token (provider chosen
// by iss, alg, kid and key, each time claim against now with the skew, audience, type,
// scopes, claims, CEL with the values it read) and the answer the proxy would get. The
// decision is decide's own; the lines re-run the same predicates to show their inputs.
// No line holds the token, its signature or a key.
func (p *Policy) Explain(ctx context.Context, req *Request, now time.Time) (*Outcome, []string) {
	out := p.Decide(ctx, req, now)
	r := out.r
	e := &explainer{}
	e.say("request: %s %s host %q", r.method, r.path, r.host)
	if r.matchPath != r.path {
		e.say("  rules see the path as %s", r.matchPath)
	}
	if p.shadow {
		e.say("shadow: true: the whole policy is a dry run; a denial is answered shadow_allow")
	}
	selected := false
	for _, ru := range p.rules {
		if why := ru.mismatch(r); why != "" {
			e.say("rule %q: not selected: %s", ru.name, why)
			continue
		}
		if ru.matchCEL != nil {
			ok, err := evalCEL(ru.matchCEL, r, nil, now)
			e.cel(r, ru.name, "match.cel", ru.matchCEL, ok, err)
			if err != nil {
				break // a failed condition refuses: the search ends here
			}
			if !ok {
				continue
			}
		}
		if ru.shadow {
			e.say("rule %q: shadow rule: evaluated, reported, then the search goes on", ru.name)
			if out.ShadowRule == ru.name {
				e.say("  would answer %s (%s)", out.ShadowDecision, out.ShadowReason)
			}
			continue
		}
		e.say("rule %q: selected", ru.name)
		p.explainRule(ctx, e, r, ru, now)
		selected = true
		break
	}
	if !selected && out.o.rule == nil {
		e.say("no rule selected the request: default_action decides")
	}
	e.say("decision: %s, reason %s, HTTP %d%s", map[bool]string{true: "allow", false: "deny"}[out.Allowed], out.Reason, out.HTTPStatus, ruleSuffix(out.Rule))
	if out.ShadowDecision != "" {
		e.say("shadow: would answer %s (%s)%s", out.ShadowDecision, out.ShadowReason, ruleSuffix(out.ShadowRule))
	}
	e.response(out)
	return out, e.lines
}

type explainer struct{ lines []string }

func (e *explainer) say(format string, args ...any) {
	e.lines = append(e.lines, fmt.Sprintf(format, args...))
}

func ruleSuffix(rule string) string {
	if rule == "" {
		return ""
	}
	return fmt.Sprintf(", rule %q", rule)
}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILS"
}

// explainRule walks the checks of a selected rule.
func (p *Policy) explainRule(ctx context.Context, e *explainer, r *request, ru *rule, now time.Time) {
	switch ru.action {
	case actionAllow:
		e.say("  action allow: no token needed")
		return
	case actionDeny:
		e.say("  action deny")
		return
	}
	names := make([]string, len(ru.providers))
	for i, pr := range ru.providers {
		names[i] = pr.name
	}
	sources := make([]string, len(ru.sources))
	for i, s := range ru.sources {
		sources[i] = s.String()
	}
	e.say("  require: providers %v; the token is looked for in %s", names, strings.Join(sources, ", "))
	raw, src, found, err := extract(r, ru.sources, p.maxTokenBytes)
	switch {
	case err != nil:
		e.say("  credential: %v", err)
		return
	case !found && ru.optional:
		e.say("  credential: none, and the rule is optional: anonymous")
		p.explainCEL(e, r, ru, nil, now)
		return
	case !found:
		e.say("  credential: none")
		return
	}
	e.say("  credential: found in %s (%d bytes; not shown)", src, len(raw))
	if p.introspectors != nil && isOpaque(raw) {
		var asked []string
		for _, pr := range p.introspectors {
			if slices.Contains(ru.providers, pr) {
				asked = append(asked, pr.name)
			}
		}
		e.say("  token: opaque (neither a JWS nor a JWE): introspected at the endpoint of %v, in that order; the decision below is the answer", asked)
		return
	}
	if p.decrypters != nil && isJWE(raw) {
		inner, decrypter, err := p.decrypt(ctx, raw)
		if err != nil {
			e.say("  JWE: %v", err)
			return
		}
		e.say("  JWE: decrypted with a key of provider %q; the inner token follows", decrypter.name)
		raw = inner
	}
	pt, err := parseToken(raw)
	if err != nil {
		e.say("  token: %v", err)
		return
	}
	typ := "(absent)"
	if pt.hasTyp {
		typ = pt.typ
	}
	e.say("  token header: alg %s, kid %q, typ %s", pt.alg, clipField(pt.kid), typ)
	pr, _ := p.providerFor(pt)
	if pr == nil {
		e.say("  iss %q: no provider has this issuer", clipField(pt.iss))
		return
	}
	e.say("  iss %q: provider %q (accepted by the rule: %s)", clipField(pt.iss), pr.name, mark(slices.Contains(ru.providers, pr)))
	_, algOK := pr.algorithms[pt.alg]
	e.say("  alg %s in the provider's algorithms: %s", pt.alg, mark(algOK))
	key, keyFound, kerr := pr.keys.Lookup(ctx, pt.kid)
	switch {
	case kerr != nil:
		e.say("  keys: unavailable (%v)", kerr)
	case !keyFound:
		e.say("  key %q: not among the provider's keys", clipField(pt.kid))
	default:
		e.say("  key %q: found (%T)", clipField(pt.kid), key.Key)
	}
	skew := pr.skew
	for _, c := range []struct {
		name string
		fail func(t, now time.Time) bool
		want string
	}{
		{"exp", func(t, now time.Time) bool { return !now.Before(t.Add(skew)) }, "now < exp + skew"},
		{"nbf", func(t, now time.Time) bool { return now.Add(skew).Before(t) }, "nbf <= now + skew"},
		{"iat", func(t, now time.Time) bool { return now.Add(skew).Before(t) }, "iat <= now + skew"},
	} {
		v, ok := pt.claims[c.name].(json.Number)
		if !ok {
			e.say("  %s: absent", c.name)
			continue
		}
		secs, err := v.Float64()
		if err != nil {
			e.say("  %s: %s is not a number", c.name, v)
			continue
		}
		t := time.Unix(int64(secs), 0).UTC()
		e.say("  %s: %s (now %s, skew %s; %s): %s", c.name, t.Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew, c.want, mark(!c.fail(t, now)))
	}
	e.say("  aud %s; accepted audiences %v", clipField(fmt.Sprint(pt.claims["aud"])), pr.audiences)
	out, d := p.decide(ctx, r, now) // the verified identity, if verification passed
	if out.token == nil || out.rule != ru {
		if d.Reason != "" && out.rule == ru {
			e.say("  verification ends: %s", d.Reason)
		}
		return
	}
	e.say("  signature and claims: verified (sub %q)", clipField(out.token.sub))
	if len(ru.scopes) > 0 {
		missing := missingScopes(ru.scopes, out.token)
		e.say("  scopes required %v, missing %v: %s", ru.scopes, missing, mark(len(missing) == 0))
	}
	for _, req := range ru.claims {
		v := out.token.claim(req.index)
		e.say("  claim %s = %s, allowed %v: %s", req.path, clipField(fmt.Sprint(v)), req.values, mark(v != nil && valueAllowed(v, req.values)))
	}
	p.explainCEL(e, r, ru, out.token.celClaims(), now)
}

func (p *Policy) explainCEL(e *explainer, r *request, ru *rule, claims *condition.Claims, now time.Time) {
	if ru.requireCEL == nil {
		return
	}
	ok, err := evalCEL(ru.requireCEL, r, claims, now)
	e.cel(r, ru.name, "require.cel", ru.requireCEL, ok, err)
}

// quoted are the string literals of an expression: the header and claim names it reads.
var quoted = regexp.MustCompile(`'([^']*)'|"([^"]*)"`)

// secretHeaders carry credentials: their values are never shown.
var secretHeaders = []string{"authorization", "proxy-authorization", "cookie", "x-api-key"}

// cel reports one condition: its source, the request headers it names, and its result.
func (e *explainer) cel(r *request, rule, which string, prg *condition.Program, ok bool, err error) {
	e.say("  %s %s", which, prg.Source())
	view := celRequest{r}
	for _, m := range quoted.FindAllStringSubmatch(prg.Source(), -1) {
		name := m[1] + m[2]
		if v, found := view.Header(name); found {
			if slices.Contains(secretHeaders, name) {
				v = "(credential, not shown)"
			}
			e.say("    request.headers[%q] = %q", name, clipField(v))
		}
	}
	switch {
	case err != nil:
		e.say("    = error (%s): cel_error, the rule %q refuses", celErrorText(err), rule)
	default:
		e.say("    = %v", ok)
	}
}

// response shows what the proxy gets back.
func (e *explainer) response(o *Outcome) {
	if o.Allowed {
		e.say("response: allow; the request goes upstream")
		for _, h := range o.Upstream() {
			e.say("  upstream header %s: %s", h.Name, clipField(h.Value))
		}
		if rm := o.Remove(); len(rm) > 0 {
			e.say("  removed from the request: %s", strings.Join(rm, ", "))
		}
		return
	}
	headers, body := o.Denial()
	e.say("response: HTTP %d", o.HTTPStatus)
	for _, h := range headers {
		e.say("  %s: %s", h.Name, h.Value)
	}
	e.say("  body: %s", body)
}

// mismatch says why the rule's match fields (all but match.cel) do not select r; "" when
// they do. It reads the same predicates as matchesHTTP, and a test holds the two together.
func (c *rule) mismatch(r *request) string {
	switch {
	case !r.http:
		return "not an HTTP request"
	case len(c.hosts)+len(c.hostSuffix) > 0 && !c.hostMatches(r.host):
		return fmt.Sprintf("host %q is not one of the rule's hosts", r.host)
	case c.path != "" && r.matchPath != c.path:
		return fmt.Sprintf("path %s is not %s", r.matchPath, c.path)
	case c.prefix != "" && !prefixMatches(c.prefix, r.matchPath):
		return fmt.Sprintf("path %s is not under %s", r.matchPath, c.prefix)
	case len(c.methods) > 0 && !slices.Contains(c.methods, r.method):
		return fmt.Sprintf("method %s is not one of %v", r.method, c.methods)
	}
	if !c.matchesHTTP(r) {
		return "context_extensions, peer principals or CORS preflight do not match"
	}
	return ""
}
