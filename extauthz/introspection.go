package extauthz

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Opaque access tokens (RFC 7662). A token that is not a JWT (neither three nor five
// dot-separated segments) is sent to the introspection endpoint of the providers the rule
// accepts that configure one, in config order. An active answer is held to the same
// claim checks as a JWT's payload (iss, aud, exp, nbf, required claims, cnf) and its
// members feed the same rules and identity headers. The Introspector caches its answers;
// an introspected identity never enters the verified-token cache.

// Introspector asks a provider's introspection endpoint about an opaque token: active is
// true only for an answer whose active member is the JSON boolean true, and answer is
// then the answer's JSON object. An error means no usable answer (fail closed with 503).
type Introspector interface {
	Introspect(ctx context.Context, token string) (active bool, answer []byte, err error)
}

// Introspection sentinels; each maps to the reason below it in errors.go's tokenErrors.
var (
	// errInactive: the introspection endpoint says the token is not active.
	errInactive = errors.New("extauthz: token is not active")
	// errIntrospectionUnavailable: the introspection endpoint gave no usable answer (down,
	// slow, an HTTP error, an oversized or malformed answer).
	errIntrospectionUnavailable = errors.New("extauthz: introspection unavailable")
)

// Introspection reasons.
const (
	ReasonInactive                 Reason = "token_inactive"            // 401
	ReasonIntrospectionUnavailable Reason = "introspection_unavailable" // 503
)

// WithIntrospectors gives the Introspector of each provider that configures introspection,
// by provider name.
func WithIntrospectors(in map[string]Introspector) PolicyOption {
	return func(o *policyOptions) { o.introspectors = in }
}

// noIntrospector stands in for a provider's Introspector where the face was given none.
type noIntrospector struct{}

func (noIntrospector) Introspect(context.Context, string) (bool, []byte, error) {
	return false, nil, errors.New("no introspection client in this face")
}

// introspectedKey stands in for the signing key of an introspected identity: its token
// was vouched for by the endpoint, not signed by a key.
var introspectedKey = &jose.JSONWebKey{}

// isOpaque reports whether raw has the shape of neither a JWS nor a JWE.
func isOpaque(raw string) bool {
	n := strings.Count(raw, ".")
	return n != 2 && n != 4
}

// introspect asks the accepted providers' endpoints about an opaque token, in config order,
// and returns the identity of the first active answer whose claims the provider accepts.
func (p *Policy) introspect(ctx context.Context, raw string, accepted func(*provider) bool, now time.Time) (*identity, *parsedToken, error) {
	var lastErr error
	var last *parsedToken
	for _, pr := range p.introspectors {
		if !accepted(pr) {
			continue
		}
		pt := &parsedToken{provider: pr}
		active, answer, err := pr.introspector.Introspect(ctx, raw)
		if err != nil {
			return nil, pt, fmt.Errorf("provider %q: %w: %v", pr.name, errIntrospectionUnavailable, err)
		}
		last = pt
		if !active {
			lastErr = errInactive
			continue
		}
		id, err := p.introspected(pr, pt, answer, now)
		if err == nil {
			return id, pt, nil
		}
		lastErr = err
	}
	if lastErr == nil { // no provider here introspects: an opaque token is just malformed
		return nil, nil, fmt.Errorf("%w: not a JWT", errMalformed)
	}
	return nil, last, lastErr
}

// introspected checks an active answer like a verified JWT payload and makes its identity.
func (p *Policy) introspected(pr *provider, pt *parsedToken, answer []byte, now time.Time) (*identity, error) {
	claims, err := decodeObject(answer)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection answer: %v", errClaims, err)
	}
	vt := &verifiedToken{provider: pr, key: introspectedKey, iss: pr.issuer, claims: claims, payload: base64.RawURLEncoding.EncodeToString(answer)}
	if v, ok := claims["iss"]; ok {
		iss, isString := v.(string)
		if !isString {
			return nil, fmt.Errorf("%w: iss is not a string", errClaims)
		}
		// RFC 7662 §2.2's iss is the token's issuer: it must name this provider (or an alias).
		if p.byIssuer[iss] != pr {
			return nil, fmt.Errorf("%w: introspection answer names iss %q", errUnknownIssuer, truncate(iss, 128))
		}
		vt.iss, pt.iss = iss, iss
	}
	if err := pr.checkClaims(vt, now); err != nil {
		return nil, err
	}
	cnf, err := confirmationOf(claims)
	if err != nil {
		return nil, err
	}
	return p.newIdentity(vt, cnf), nil
}
