package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// errRotationPending is returned by rotate while the previous rotation's key is still
// waiting out its publish delay: rotating again would publish a key that never signs.
var errRotationPending = errors.New("a rotation is already waiting for its publish delay")

// keyring holds the signing keys and moves them through their lives:
//
//	published ──publishDelay──▶ signing ──next key signs──▶ retired ──ttl──▶ withdrawn
//
// A key is in the JWKS from the moment it is created until the last token it signed has
// expired. A new key is published publishDelay before it signs, so that verifiers that
// cache the JWKS (for its max-age, 60s here) have it before they see a token with its kid.
// jwt-authz refetches the JWKS on an unknown kid and copes with 0; other verifiers may not.
//
// Every state is derived from the clock when asked for, so no timers run and a test can
// move time by hand. keyring is safe for concurrent use.
type keyring struct {
	alg          jose.SignatureAlgorithm
	ttl          time.Duration // token lifetime: how long a retired key stays published
	publishDelay time.Duration
	now          func() time.Time

	mu   sync.Mutex
	keys []*signingKey // oldest first; the last one is the newest
}

type signingKey struct {
	jwk      jose.JSONWebKey // private; kid and alg set
	signer   jose.Signer
	created  time.Time // published from here
	signFrom time.Time // created + publishDelay
	// signUntil is the successor's signFrom; zero while this is the newest key.
	signUntil time.Time
}

func newKeyring(first crypto.Signer, alg jose.SignatureAlgorithm, ttl, publishDelay time.Duration, now func() time.Time) (*keyring, error) {
	kr := &keyring{alg: alg, ttl: ttl, publishDelay: publishDelay, now: now}
	k, err := kr.newKey(first, now())
	if err != nil {
		return nil, err
	}
	k.signFrom = k.created // the first key signs at once: there is nothing to sign with before it
	kr.keys = []*signingKey{k}
	return kr, nil
}

func (kr *keyring) newKey(priv crypto.Signer, now time.Time) (*signingKey, error) {
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(kr.alg), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("keys: thumbprint: %w", err)
	}
	// RFC 7638 §3: the thumbprint is stable for the key and unique across keys, which is
	// what a kid needs; RFC 7638 §1 suggests using it as one.
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: kr.alg, Key: jwk}, // a JSONWebKey puts its kid in the header
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("keys: signer: %w", err)
	}
	return &signingKey{jwk: jwk, signer: signer, created: now, signFrom: now.Add(kr.publishDelay)}, nil
}

// prune drops withdrawn keys. Called with kr.mu held.
func (kr *keyring) prune(now time.Time) {
	kr.keys = slices.DeleteFunc(kr.keys, func(k *signingKey) bool {
		// Tokens signed before signUntil expire before signUntil+ttl (exp is rounded
		// down to the second), so none of them can still be valid after that.
		return !k.signUntil.IsZero() && !now.Before(k.signUntil.Add(kr.ttl))
	})
}

// current is the key that signs now: the newest one whose publish delay is over.
// Called with kr.mu held.
func (kr *keyring) current(now time.Time) *signingKey {
	for _, k := range slices.Backward(kr.keys) {
		if !now.Before(k.signFrom) {
			return k
		}
	}
	return kr.keys[0] // unreachable: the oldest key always signs or signed
}

// signer returns the signer to use now and its kid.
func (kr *keyring) signer() (jose.Signer, string) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	now := kr.now()
	kr.prune(now)
	k := kr.current(now)
	return k.signer, k.jwk.KeyID
}

// public returns the keys to publish now, oldest first, without their private parts.
func (kr *keyring) public() []jose.JSONWebKey {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.prune(kr.now())
	out := make([]jose.JSONWebKey, 0, len(kr.keys))
	for _, k := range kr.keys {
		out = append(out, k.jwk.Public())
	}
	return out
}

// rotation describes what rotate did.
type rotation struct {
	KID         string    `json:"kid"`          // the new key, published now
	SigningFrom time.Time `json:"signing_from"` // when it starts signing
	PreviousKID string    `json:"previous_kid"` // the key that signs until then
	// PreviousWithdrawnAt is when the previous key leaves the JWKS: its last token has
	// expired by then.
	PreviousWithdrawnAt time.Time `json:"previous_withdrawn_at"`
}

// rotate publishes a freshly generated key that starts signing after the publish delay.
func (kr *keyring) rotate() (rotation, error) {
	priv, err := generateKey(kr.alg)
	if err != nil {
		return rotation{}, err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	now := kr.now()
	kr.prune(now)
	newest := kr.keys[len(kr.keys)-1]
	if now.Before(newest.signFrom) {
		return rotation{}, fmt.Errorf("keys: kid %q signs from %s: %w",
			newest.jwk.KeyID, newest.signFrom.Format(time.RFC3339), errRotationPending)
	}
	k, err := kr.newKey(priv, now)
	if err != nil {
		return rotation{}, err
	}
	newest.signUntil = k.signFrom
	kr.keys = append(kr.keys, k)
	return rotation{
		KID:                 k.jwk.KeyID,
		SigningFrom:         k.signFrom,
		PreviousKID:         newest.jwk.KeyID,
		PreviousWithdrawnAt: newest.signUntil.Add(kr.ttl),
	}, nil
}

// generateKey makes a new private key for alg.
func generateKey(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		// 2048 bits is the floor of RFC 7518 §3.3 and NIST SP 800-57 until 2030.
		return rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("keys: unsupported algorithm %q (want ES256 or RS256)", alg)
	}
}

// loadKeyFile reads a PEM private key: PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY"), and returns it with the algorithm it implies. An "EC
// PARAMETERS" block before the key (as `openssl ecparam -genkey` writes) is skipped.
func loadKeyFile(path string) (crypto.Signer, jose.SignatureAlgorithm, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("key file: %w", err)
	}
	key, alg, err := parseKeyPEM(b)
	if err != nil {
		return nil, "", fmt.Errorf("key file %s: %w", path, err)
	}
	return key, alg, nil
}

func parseKeyPEM(b []byte) (crypto.Signer, jose.SignatureAlgorithm, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, "", errors.New("no PEM private key found")
		}
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, "", errors.New("encrypted PEM keys are not supported")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			return nil, "", fmt.Errorf("PEM block %q is not a private key", block.Type)
		}
		if err != nil {
			return nil, "", fmt.Errorf("PEM block %q: %w", block.Type, err)
		}
		return checkKey(key)
	}
}

func checkKey(key any) (crypto.Signer, jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("EC key on %s: only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return k, jose.ES256, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("RSA key of %d bits: RS256 needs at least 2048", k.N.BitLen())
		}
		return k, jose.RS256, nil
	default:
		return nil, "", fmt.Errorf("%T keys are not supported (want EC P-256 or RSA)", key)
	}
}
