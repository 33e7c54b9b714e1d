package keys

import "errors"

// Sentinel errors, one per outcome a caller branches on. Errors returned by this package
// wrap one of them with context first ("jwks_uri https://...: status 500: keys: fetch
// failed"), so errors.Is works on every error it returns.
var (
	// ErrNoKeys: a key source has no usable keys yet (its first fetch has not succeeded), or
	// a document holds none. Lookup returns it wrapped when the provider cannot vouch for a
	// kid; the caller fails closed (503).
	ErrNoKeys = errors.New("keys: no usable keys")
	// ErrStale: a remote source's last good fetch is older than its max_stale, so its keys
	// no longer serve. Lookup returns it wrapped; the caller fails closed (503).
	ErrStale = errors.New("keys: keys are stale")
	// ErrWeakKey: RSA under 2048 bits or with a bad exponent, an HMAC secret under 32 bytes,
	// or EC on a curve other than P-256, P-384 and P-521.
	ErrWeakKey = errors.New("keys: key too weak")
	// ErrPrivateKey: private or secret key material where only public keys belong: a
	// private key in any document, or an oct (HMAC) key in a remote JWKS. Such keys are
	// refused, never reduced to their public part: a private key that was published is
	// compromised, and jwt-authz has no business holding signing keys.
	ErrPrivateKey = errors.New("keys: private key material refused")
	// ErrUnsupportedKey: a key type, or an alg on the key, that cannot verify any JWS
	// algorithm jwt-authz supports (X25519, ML-DSA, "alg":"RS256" on an EC key, ...).
	ErrUnsupportedKey = errors.New("keys: unsupported key")
	// ErrDuplicateKID: two keys in one document share a kid, or two sources of one
	// provider publish different keys under one kid (the same key published twice is one
	// key, not a duplicate).
	ErrDuplicateKID = errors.New("keys: duplicate kid")
	// ErrMalformed: a JWKS, PEM or discovery document that cannot be parsed.
	ErrMalformed = errors.New("keys: malformed key document")
	// ErrIssuerMismatch: the discovery document's issuer is not exactly the configured
	// issuer (OpenID Connect Discovery 1.0 §4.3).
	ErrIssuerMismatch = errors.New("keys: discovery issuer mismatch")
	// ErrFetch: a remote document could not be fetched: transport error, timeout, a status
	// other than 200 (or 304 to a conditional request), or a body over 1 MiB.
	ErrFetch = errors.New("keys: fetch failed")
)
