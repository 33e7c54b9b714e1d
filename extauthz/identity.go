package extauthz

import (
	"bytes"
	"encoding/base64"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/condition"
)

// identity is a verified token reduced to what decisions and responses read: who it is, the
// claims rules look at, and the upstream header values already rendered. It is what the
// token cache holds, so it is kept small (100k of them should fit in tens of MiB).
type identity struct {
	provider *provider
	key      *jose.JSONWebKey // the key that verified the token; a hit must still find it
	kid      string           // shares the key's KeyID string when they are equal
	iss      string           // shares provider.issuer unless an alias or template matched
	sub      string
	exp, nbf int64 // Unix nanoseconds; 0 when absent
	// claims holds only the claims rules can read, by index into Policy.claimPaths (scope,
	// scp, then every require.claims path); nil when the token has none of them.
	claims []any
	// celClaims is the whole payload converted for CEL (condition.Claims); nil unless a
	// require.cel may read it.
	celClaims *condition.Claims
	// headerWire is the upstream headers, encoded as OkHttpResponse.headers entries: the
	// claim headers in setMask (bit i for provider.claimHeaders[i]; a claim that is absent
	// or not a valid header value is not sent) and the payload header when configured.
	headerWire []byte
	setMask    uint64
	// cnf is what the token is bound to (RFC 7800); nil for a bearer token.
	cnf *confirmation
}

func (p *Policy) newIdentity(vt *verifiedToken) *identity {
	pr := vt.provider
	id := &identity{provider: pr, kid: vt.kid, key: vt.key, iss: vt.iss, sub: vt.sub}
	if vt.kid == vt.key.KeyID {
		id.kid = vt.key.KeyID // one string for every token of this key
	}
	if !vt.exp.IsZero() {
		id.exp = vt.exp.UnixNano()
	}
	if !vt.nbf.IsZero() {
		id.nbf = vt.nbf.UnixNano()
	}
	for i, path := range p.claimLookups {
		if v, ok := path.Lookup(vt.claims); ok {
			if id.claims == nil {
				id.claims = make([]any, len(p.claimPaths))
			}
			id.claims[i] = v
		}
	}
	if p.celClaims {
		id.celClaims = condition.NewClaims(vt.claims)
	}
	var headers []byte
	for i, ch := range pr.claimHeaders {
		if v, ok := ch.path.Lookup(vt.claims); ok {
			// A claim that cannot be a header value is left out, never mangled.
			if text, ok := headerText(v); ok && validHeaderValue(text) {
				headers = appendUpstreamHeader(headers, ch.header, text)
				id.setMask |= 1 << i
			}
		}
	}
	if pr.payloadHeader != "" {
		headers = appendUpstreamHeader(headers, pr.payloadHeader, base64.RawURLEncoding.EncodeToString(vt.payload))
	}
	id.headerWire = bytes.Clone(headers) // exactly sized: 100k of these may be cached
	return id
}

// claim returns the value of Policy.claimPaths[i], nil when absent.
func (id *identity) claim(i int) any {
	if id.claims == nil {
		return nil
	}
	return id.claims[i]
}
