package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// Nested JWTs (RFC 7519 §5.2): a compact JWE whose plaintext is a signed JWT. jwt-authz
// decrypts with the provider's configured keys and algorithms, then verifies the inner
// JWS exactly as a plain one. The RFC 8725 hardening: the token size is capped before any
// work (max_token_bytes), the compact form is strict (five segments of canonical
// base64url, a header that is one JSON object without duplicate members), zip and crit
// are refused (no decompression at all, so no decompression bomb), alg and enc come from
// allowlists, and the key's type must fit alg (key-type binding) before it is used.

// JWE sentinels; each maps to the reason below it in errors.go's tokenErrors.
var (
	// errUnknownDecryptionKey: no provider that accepts the JWE's alg and enc holds its kid.
	errUnknownDecryptionKey = errors.New("extauthz: unknown decryption key")
	// errDecryption: the JWE does not decrypt (a wrong key, or tampered).
	errDecryption = errors.New("extauthz: decryption failed")
	// errEncryptionRequired: the provider requires encrypted tokens and this one is not.
	errEncryptionRequired = errors.New("extauthz: encrypted token required")
	// errEncryptedForOther: the JWE was decrypted with one provider's key and holds another
	// provider's token.
	errEncryptedForOther = errors.New("extauthz: token encrypted to another provider's key")
)

// JWE reasons, all 401 invalid_token.
const (
	ReasonUnknownDecryptionKey Reason = "unknown_decryption_key"
	ReasonDecryption           Reason = "decryption_failed"
	ReasonEncryptionRequired   Reason = "encryption_required"
	ReasonEncryptedForOther    Reason = "encryption_issuer_mismatch"
)

// PolicyOption is an optional part of a Policy.
type PolicyOption func(*policyOptions)

type policyOptions struct {
	decryptionKeys map[string]KeySource
	replayStore    ReplayStore
	nonceSecrets   [][]byte
	introspectors  map[string]Introspector
}

// WithDecryptionKeys gives the JWE decryption keys of each provider that configures
// encryption, by provider name. A KeySource of decryption keys returns private keys.
func WithDecryptionKeys(keys map[string]KeySource) PolicyOption {
	return func(o *policyOptions) { o.decryptionKeys = keys }
}

// encryption is a compiled config.Encryption.
type encryption struct {
	required      bool
	keyAlgorithms []string
	contentEncs   []string
	keys          KeySource
}

func newEncryption(c *config.Encryption, keys KeySource) *encryption {
	return &encryption{required: c.Required, keyAlgorithms: c.KeyAlgorithms, contentEncs: c.ContentEncryptions, keys: keys}
}

// isJWE reports whether raw has the five segments of a compact JWE.
func isJWE(raw string) bool { return strings.Count(raw, ".") == 4 }

// decrypt opens a compact JWE with the key of the first provider (in config order) that
// accepts its alg and enc and holds its kid, and returns the plaintext and that provider.
func (p *Policy) decrypt(ctx context.Context, raw string) (string, *provider, error) {
	seg := strings.Split(raw, ".")
	for i, s := range seg {
		// The encrypted key is empty for dir and ECDH-ES (RFC 7516 §5.1).
		if (s == "" && i != 1) || !isBase64URL(s) {
			return "", nil, fmt.Errorf("%w: JWE segment %d is empty or not base64url", errMalformed, i)
		}
		if _, err := strictB64.DecodeString(s); err != nil {
			return "", nil, fmt.Errorf("%w: JWE segment %d: %v", errMalformed, i, err)
		}
	}
	hb, _ := strictB64.DecodeString(seg[0])
	header, err := decodeObject(hb)
	if err != nil {
		return "", nil, fmt.Errorf("%w: JWE header: %v", errMalformed, err)
	}
	for _, name := range []string{"crit", "zip"} {
		if _, ok := header[name]; ok {
			return "", nil, fmt.Errorf("%w: JWE %q", errHeader, name)
		}
	}
	alg, _ := header["alg"].(string)
	enc, _ := header["enc"].(string)
	if alg == "" || enc == "" {
		return "", nil, fmt.Errorf("%w: JWE alg or enc missing", errMalformed)
	}
	// RFC 7519 §5.2: a nested JWT says cty JWT; oidc-provider says at+jwt (RFC 9068's type)
	// for its access tokens. The plaintext must be a JWS either way.
	if v, ok := header["cty"]; ok {
		cty, _ := v.(string)
		if t := strings.TrimPrefix(strings.ToLower(cty), "application/"); t != "jwt" && t != "at+jwt" {
			return "", nil, fmt.Errorf("%w: JWE cty is neither JWT nor at+jwt", errType)
		}
	}
	kid := ""
	if v, ok := header["kid"]; ok {
		if kid, ok = v.(string); !ok {
			return "", nil, fmt.Errorf("%w: JWE kid is not a string", errMalformed)
		}
	}
	var (
		pr      *provider
		key     *jose.JSONWebKey
		allowed bool
		lastErr error
	)
	for _, c := range p.decrypters {
		if !slices.Contains(c.encryption.keyAlgorithms, alg) || !slices.Contains(c.encryption.contentEncs, enc) {
			continue
		}
		allowed = true
		k, found, err := c.encryption.keys.Lookup(ctx, kid)
		if err != nil {
			lastErr = err
			continue
		}
		if found {
			pr, key = c, k
			break
		}
	}
	switch {
	case pr != nil:
	case !allowed:
		return "", nil, fmt.Errorf("%w: JWE alg %q enc %q", errAlgorithm, truncate(alg, 32), truncate(enc, 32))
	case lastErr != nil:
		return "", nil, fmt.Errorf("%w: decryption keys: %v", errKeysUnavailable, lastErr)
	default:
		return "", nil, errUnknownDecryptionKey
	}
	if !keyFits(alg, enc, key) {
		return "", pr, fmt.Errorf("%w: JWE alg %s with a %T key", errAlgorithm, alg, key.Key)
	}
	obj, err := jose.ParseEncryptedCompact(raw, []jose.KeyAlgorithm{jose.KeyAlgorithm(alg)}, []jose.ContentEncryption{jose.ContentEncryption(enc)})
	if err != nil {
		return "", pr, fmt.Errorf("%w: JWE: %v", errMalformed, err)
	}
	plain, err := obj.Decrypt(key.Key)
	if err != nil {
		return "", pr, errDecryption
	}
	return string(plain), pr, nil
}

// keyFits is the key-type binding of RFC 8725 §3.1: each alg works with one kind of key
// (and dir and A*KW with one size), and a key that names its alg serves only that one.
func keyFits(alg, enc string, k *jose.JSONWebKey) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	secret, _ := k.Key.([]byte)
	switch {
	case strings.HasPrefix(alg, "RSA-OAEP"):
		_, ok := k.Key.(*rsa.PrivateKey)
		return ok
	case strings.HasPrefix(alg, "ECDH-ES"):
		_, ok := k.Key.(*ecdsa.PrivateKey)
		return ok
	case alg == "A128KW":
		return len(secret) == 16
	case alg == "A192KW":
		return len(secret) == 24
	case alg == "A256KW":
		return len(secret) == 32
	case alg == "dir":
		want := map[string]int{"A128GCM": 16, "A192GCM": 24, "A256GCM": 32, "A128CBC-HS256": 32, "A192CBC-HS384": 48, "A256CBC-HS512": 64}[enc]
		return want > 0 && len(secret) == want
	}
	return false
}
