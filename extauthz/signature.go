package extauthz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
)

// verifySignature checks a compact JWS's signature (RFC 7515 §5.2, RFC 7518 §3) with key,
// under alg, which the caller has already taken from the provider's configured algorithms
// and checked against the key's type (keyAllows).
//
// The token has been split, its alphabet checked and its header decoded once, strictly, by
// parseToken, so the signature is checked straight over the signing input as it arrived:
// no second parse of the header and no re-encoding of the payload, which is what handing
// the token to go-jose again cost (about a fifth of an uncached check). The cryptography is
// the standard library's, called exactly as go-jose v4 calls it for each algorithm;
// TestSignatureAgreesWithGoJose and FuzzSignatureAgreesWithGoJose hold the two to the same
// answers.
func verifySignature(raw string, alg jose.SignatureAlgorithm, key *jose.JSONWebKey) error {
	dot := strings.LastIndexByte(raw, '.')
	if dot < 0 {
		return fmt.Errorf("%w: no signature", errMalformed)
	}
	// The signing input is read in place: the hash and MAC functions only read it.
	input := unsafe.Slice(unsafe.StringData(raw), dot)
	var buf [512]byte // the signature of a 4096-bit RSA key; ES512's is 132 bytes
	sig, err := decodeBase64(buf[:0], raw[dot+1:])
	if err != nil {
		return fmt.Errorf("%w: signature: %v", errMalformed, err)
	}
	if err := checkSignature(input, sig, alg, key.Key); err != nil {
		return fmt.Errorf("%w: %v", errSignature, err)
	}
	return nil
}

// decodeBase64 decodes s under strictB64 into dst's spare capacity, or a new slice when it
// does not fit.
func decodeBase64(dst []byte, s string) ([]byte, error) {
	n := strictB64.DecodedLen(len(s))
	if n > cap(dst) {
		dst = make([]byte, n)
	}
	n, err := strictB64.Decode(dst[:n], unsafe.Slice(unsafe.StringData(s), len(s))) // Decode only reads src
	return dst[:n], err
}

var errBadSignature = errors.New("signature does not verify")

// checkSignature verifies sig over input with key under alg, calling the standard library
// as go-jose v4 does: PKCS #1 v1.5 and PSS (any salt length) for RSA, R||S of the curve's
// size for ECDSA, Ed25519 over the input itself, and a constant-time HMAC comparison.
func checkSignature(input, sig []byte, alg jose.SignatureAlgorithm, key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		hash, pss := rsaScheme(alg)
		if hash == 0 {
			break
		}
		if pss {
			return rsa.VerifyPSS(k, hash, digest(hash, input), sig, nil)
		}
		return rsa.VerifyPKCS1v15(k, hash, digest(hash, input), sig)
	case *ecdsa.PublicKey:
		curve, hash, size := ecdsaScheme(alg)
		if curve == nil || k.Curve != curve {
			break
		}
		// RFC 7518 §3.4: R and S, each zero-padded to the curve's size, concatenated.
		if len(sig) != 2*size {
			return fmt.Errorf("signature is %d bytes, want %d", len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest(hash, input), r, s) {
			return errBadSignature
		}
		return nil
	case ed25519.PublicKey:
		if alg != jose.EdDSA || len(k) != ed25519.PublicKeySize { // Verify panics on another size
			break
		}
		if !ed25519.Verify(k, input, sig) {
			return errBadSignature
		}
		return nil
	case []byte:
		hash := hmacHash(alg)
		if hash == 0 {
			break
		}
		mac := hmac.New(hash.New, k)
		mac.Write(input)
		var sum [64]byte
		if !hmac.Equal(mac.Sum(sum[:0]), sig) {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("a %T key cannot verify %s", key, alg)
}

// rsaScheme is the hash of an RS or PS algorithm and whether it is PSS (RFC 7518 §3.3, §3.5).
func rsaScheme(alg jose.SignatureAlgorithm) (hash crypto.Hash, pss bool) {
	switch alg {
	case jose.RS256:
		return crypto.SHA256, false
	case jose.RS384:
		return crypto.SHA384, false
	case jose.RS512:
		return crypto.SHA512, false
	case jose.PS256:
		return crypto.SHA256, true
	case jose.PS384:
		return crypto.SHA384, true
	case jose.PS512:
		return crypto.SHA512, true
	}
	return 0, false
}

// ecdsaScheme is the curve, hash and size in bytes of R and of S of an ES algorithm (RFC
// 7518 §3.4).
func ecdsaScheme(alg jose.SignatureAlgorithm) (elliptic.Curve, crypto.Hash, int) {
	switch alg {
	case jose.ES256:
		return elliptic.P256(), crypto.SHA256, 32
	case jose.ES384:
		return elliptic.P384(), crypto.SHA384, 48
	case jose.ES512:
		return elliptic.P521(), crypto.SHA512, 66
	}
	return nil, 0, 0
}

// hmacHash is the hash of an HS algorithm (RFC 7518 §3.2).
func hmacHash(alg jose.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case jose.HS256:
		return crypto.SHA256
	case jose.HS384:
		return crypto.SHA384
	case jose.HS512:
		return crypto.SHA512
	}
	return 0
}

func digest(hash crypto.Hash, input []byte) []byte {
	switch hash {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		return d[:]
	}
	d := sha512.Sum512(input)
	return d[:]
}
