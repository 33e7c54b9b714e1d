package extauthz

import (
	"bytes"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/condition"
)

// identity is a verified token reduced to what decisions and responses read: who it is, the
// claims rules look at, and the upstream header values already rendered. It is what the
// token cache holds, so it is kept small: 112 bytes plus its strings (100k of them should
// fit in tens of MiB); what most tokens do not need is in rare.
type identity struct {
	provider *provider
	key      *jose.JSONWebKey // the key that verified the token; a hit must still find it
	sub      string
	exp, nbf int64 // Unix nanoseconds; 0 when absent
	// claims holds only the claims rules can read, by index into Policy.claimPaths (scope,
	// scp, then every require.claims path), up to the last one present; nil when the
	// token has none of them.
	claims []any
	// headerWire is the upstream headers, encoded as OkHttpResponse.headers entries: the
	// claim headers in setMask (bit i for provider.claimHeaders[i]; a claim that is absent
	// or not a valid header value is not sent) and the payload header when configured.
	headerWire []byte
	setMask    uint64
	rare       *identityRare // nil for a bearer token whose kid and iss are the usual ones
}

// identityRare is the part of an identity most tokens leave empty.
type identityRare struct {
	// kid is the token's kid when it is not the key's KeyID (a token without kid verified
	// by a set's only key); iss its iss when an alias or a template matched.
	kid, iss       string
	ownKid, ownIss bool
	// celClaims is the whole payload converted for CEL (condition.Claims); nil unless a
	// require.cel may read it.
	celClaims *condition.Claims
	// cnf is what the token is bound to (RFC 7800); nil for a bearer token.
	cnf *confirmation
}

// kid is the kid the token named.
func (id *identity) kid() string {
	if id.rare != nil && id.rare.ownKid {
		return id.rare.kid
	}
	return id.key.KeyID
}

// iss is the issuer as the token spelled it.
func (id *identity) iss() string {
	if id.rare != nil && id.rare.ownIss {
		return id.rare.iss
	}
	return id.provider.issuer
}

// cnf is the token's confirmation (RFC 7800); nil for a bearer token.
func (id *identity) cnf() *confirmation {
	if id.rare == nil {
		return nil
	}
	return id.rare.cnf
}

// celClaims is the payload for CEL; nil unless a require.cel may read it.
func (id *identity) celClaims() *condition.Claims {
	if id.rare == nil {
		return nil
	}
	return id.rare.celClaims
}

func (p *Policy) newIdentity(vt *verifiedToken, cnf *confirmation) *identity {
	pr := vt.provider
	id := &identity{provider: pr, key: vt.key, sub: vt.sub}
	var rare identityRare
	if vt.kid != vt.key.KeyID {
		rare.kid, rare.ownKid = vt.kid, true
	}
	if vt.iss != pr.issuer {
		rare.iss, rare.ownIss = vt.iss, true
	}
	rare.cnf = cnf
	if p.celClaims {
		rare.celClaims = condition.NewClaims(vt.claims)
	}
	if rare != (identityRare{}) {
		id.rare = &rare
	}
	if !vt.exp.IsZero() {
		id.exp = vt.exp.UnixNano()
	}
	if !vt.nbf.IsZero() {
		id.nbf = vt.nbf.UnixNano()
	}
	last := -1
	for i, path := range p.claimLookups {
		if _, ok := path.Lookup(vt.claims); ok {
			last = i
		}
	}
	if last >= 0 {
		id.claims = make([]any, last+1)
		for i, path := range p.claimLookups[:last+1] {
			v, _ := path.Lookup(vt.claims)
			id.claims[i] = p.claimValues.share(v)
		}
	}
	var scratch [512]byte // the headers are built here and copied out at their exact size
	headers := scratch[:0]
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
		headers = appendUpstreamHeader(headers, pr.payloadHeader, vt.payload)
	}
	if len(headers) > 0 {
		id.headerWire = bytes.Clone(headers) // exactly sized: 100k of these may be cached
	}
	return id
}

// internTable hands out one boxed copy of each short string claim value it has seen: many
// tokens carry the same scope or role string, and each copy held by a cached identity
// costs 32 bytes or more. It is bounded; when full, values are kept as they are.
type internTable struct {
	mu sync.Mutex
	m  map[string]any
}

const (
	maxInterned      = 4096
	maxInternedBytes = 256
)

// share returns v, or an equal value already held, when v is a short string.
func (t *internTable) share(v any) any {
	s, ok := v.(string)
	if !ok || len(s) > maxInternedBytes {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if held, ok := t.m[s]; ok {
		return held
	}
	if t.m == nil {
		t.m = make(map[string]any)
	}
	if len(t.m) < maxInterned {
		t.m[s] = v
	}
	return v
}

// claim returns the value of Policy.claimPaths[i], nil when absent.
func (id *identity) claim(i int) any {
	if i >= len(id.claims) {
		return nil
	}
	return id.claims[i]
}
