package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// strictB64 rejects padding and non-zero trailing bits, so every token has exactly one
// encoding (RFC 7515 §2; RFC 8725 §3.1 asks for strict parsing).
var strictB64 = base64.RawURLEncoding.Strict()

// parsedToken is a token split and decoded but not yet verified: nothing in it may be trusted
// except for choosing which provider verifies it.
type parsedToken struct {
	raw     string
	alg     string
	kid     string
	typ     string
	hasTyp  bool
	payload string // the payload segment, base64url as it arrived
	claims  map[string]any
	iss     string
	// provider is the provider the token names, and tenant the tenant id its iss puts in
	// that provider's issuer template; set when the provider is chosen.
	provider *provider
	tenant   string
}

// parseToken checks the compact serialization and decodes the header and payload.
func parseToken(raw string) (*parsedToken, error) {
	if strings.Count(raw, ".") != 2 {
		return nil, fmt.Errorf("%w: want three dot-separated segments", errMalformed)
	}
	h64, rest, _ := strings.Cut(raw, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	if h64 == "" || p64 == "" || s64 == "" {
		return nil, fmt.Errorf("%w: empty segment", errMalformed)
	}
	// base64's decoder skips \r and \n even in strict mode, so check the alphabet first.
	if !isBase64URL(h64) || !isBase64URL(p64) || !isBase64URL(s64) {
		return nil, fmt.Errorf("%w: segment is not base64url", errMalformed)
	}
	hb, err := strictB64.DecodeString(h64)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	if err := checkBase64(s64); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", errMalformed, err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	// RFC 8725 §3.1: we understand no extensions, so any crit is fatal; b64 (RFC 7797) and
	// zip change what is signed. Refuse them rather than half-support them. jwk, jku, x5u
	// and x5c are ignored: keys come only from configuration.
	if h.refused != "" {
		return nil, fmt.Errorf("%w: %q", errHeader, h.refused)
	}
	t := &parsedToken{raw: raw, alg: h.alg.text, kid: h.kid.text, typ: h.typ.text, hasTyp: h.typ.present}
	if !h.alg.isString || t.alg == "" {
		return nil, fmt.Errorf("%w: alg missing", errMalformed)
	}
	if h.kid.present && !h.kid.isString {
		return nil, fmt.Errorf("%w: kid is not a string", errMalformed)
	}
	if h.typ.present && !h.typ.isString {
		return nil, fmt.Errorf("%w: typ is not a string", errType)
	}
	t.payload = p64
	if t.claims, err = decodeObjectBase64(p64); errors.Is(err, errNotBase64) {
		return nil, fmt.Errorf("%w: payload: %v", errMalformed, err)
	} else if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", errClaims, err)
	}
	if v, present := t.claims["iss"]; present {
		var ok bool
		if t.iss, ok = v.(string); !ok {
			return nil, fmt.Errorf("%w: iss is not a string", errClaims)
		}
	}
	return t, nil
}

// checkBase64 checks that s decodes under strictB64, without keeping the bytes: the
// signature is decoded again where it is verified, once a provider and a key are found.
func checkBase64(s string) error {
	var buf [768]byte // a 4096-bit RSA signature is 512 bytes; ES512 132
	_, err := decodeBase64(buf[:0], s)
	return err
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// verifiedToken is a token whose signature and claims a provider has checked.
type verifiedToken struct {
	provider *provider
	kid      string
	key      *jose.JSONWebKey
	iss      string
	sub      string
	exp      time.Time // zero when the token has no exp
	nbf      time.Time // zero when absent
	claims   map[string]any
	payload  string // the payload base64url-encoded, for forward_payload_header
}

// verify checks the signature with the provider's keys and the claims against its settings.
func (p *provider) verify(ctx context.Context, t *parsedToken, now time.Time) (*verifiedToken, error) {
	alg, ok := p.algorithms[t.alg]
	if !ok { // "none" is never in the map: config refuses it
		return nil, fmt.Errorf("%w: %q", errAlgorithm, t.alg)
	}
	if t.hasTyp && !slices.ContainsFunc(p.types, func(s string) bool { return strings.EqualFold(s, t.typ) }) {
		return nil, fmt.Errorf("%w: %q", errType, t.typ)
	}
	if !t.hasTyp && p.requireTyp {
		return nil, fmt.Errorf("%w: typ is absent and types lists only explicit types", errType)
	}
	key, found, err := p.keys.Lookup(ctx, t.kid)
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w: %v", p.name, errKeysUnavailable, err)
	}
	if !found {
		return nil, fmt.Errorf("kid %q: %w", t.kid, errUnknownKey)
	}
	if err := keyAllows(key, t.alg); err != nil {
		return nil, err
	}
	if err := verifySignature(t.raw, alg, key); err != nil {
		return nil, err
	}
	vt := &verifiedToken{provider: p, kid: t.kid, key: key, iss: p.issuer, claims: t.claims, payload: t.payload}
	if t.iss != p.issuer && t.iss != "" { // an alias or a template: report the spelling the token used
		vt.iss = t.iss
	}
	if err := p.checkClaims(vt, now); err != nil {
		return nil, err
	}
	if p.templatePrefix != "" {
		if err := p.checkTenant(t.claims, t.tenant); err != nil {
			return nil, err
		}
	}
	if p.trustDomain != "" {
		// SPIFFE JWT-SVID §3: sub is the workload's SPIFFE ID, of the bundle's trust domain.
		if td, _, err := config.ParseSPIFFEID(vt.sub); err != nil || td != p.trustDomain {
			return nil, fmt.Errorf("%w: %q", errTrustDomain, truncate(vt.sub, 128))
		}
	}
	return vt, nil
}

// keyAllows binds every key to the algorithms its type can serve (RFC 8725 §3.1), so a
// public key can never be used as an HMAC secret and a P-256 key never signs ES512.
func keyAllows(key *jose.JSONWebKey, alg string) error {
	if key.Algorithm != "" && key.Algorithm != alg {
		return fmt.Errorf("%w: key %q is for %s, token says %s", errAlgorithm, key.KeyID, key.Algorithm, alg)
	}
	ok := false
	switch k := key.Key.(type) {
	case *rsa.PublicKey:
		ok = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			ok = alg == "ES256"
		case elliptic.P384():
			ok = alg == "ES384"
		case elliptic.P521():
			ok = alg == "ES512"
		}
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	case []byte:
		need := hmacKeySize(alg)
		ok = need > 0 && len(k) >= need
	}
	if !ok {
		return fmt.Errorf("%w: key %q (%T) cannot verify %s", errAlgorithm, key.KeyID, key.Key, alg)
	}
	return nil
}

// checkClaims applies RFC 7519 §4.1 to a verified payload.
func (p *provider) checkClaims(vt *verifiedToken, now time.Time) error {
	c := vt.claims
	if v, ok := c["sub"]; ok {
		s, isString := v.(string)
		if !isString {
			return fmt.Errorf("%w: sub is not a string", errClaims)
		}
		vt.sub = s
	}
	if p.rejectIDTokens {
		if marker := idTokenMarker(c); marker != "" {
			return fmt.Errorf("%w: %s", errIDToken, marker)
		}
	}
	exp, hasExp, err := numericDate(c, "exp")
	if err != nil {
		return err
	}
	nbf, hasNbf, err := numericDate(c, "nbf")
	if err != nil {
		return err
	}
	iat, hasIat, err := numericDate(c, "iat")
	if err != nil {
		return err
	}
	t := float64(now.UnixNano()) / 1e9
	skew := p.skew.Seconds()
	switch {
	case !hasExp && p.requireExp:
		return errMissingExp
	case hasExp && t > exp+skew:
		return errExpired
	case hasNbf && t < nbf-skew:
		return errNotYetValid
	case hasIat && iat > t+skew:
		return errIssuedInFuture
	}
	if hasExp {
		vt.exp = unixTime(exp)
	}
	if hasNbf {
		vt.nbf = unixTime(nbf)
	}
	if p.maxLifetime > 0 && hasExp {
		from := t
		if hasIat {
			from = iat
		}
		if exp-from > p.maxLifetime.Seconds()+skew {
			return errLifetime
		}
	}
	return p.checkAccessToken(c)
}

// numericDate reads a NumericDate claim (RFC 7519 §2): a JSON number, possibly fractional.
func numericDate(c map[string]any, name string) (float64, bool, error) {
	v, ok := c[name]
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, fmt.Errorf("%w: %s is not a number", errClaims, name)
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 1e12 {
		return 0, false, fmt.Errorf("%w: %s is out of range", errClaims, name)
	}
	return f, true, nil
}

// hmacKeySize is the least secret length for an HS* algorithm (RFC 7518 §3.2: at least the
// hash size); 0 for anything else.
func hmacKeySize(alg string) int {
	switch alg {
	case "HS256":
		return 32
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 0
}

func unixTime(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}
