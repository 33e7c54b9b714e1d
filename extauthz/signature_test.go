package extauthz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// goJoseVerifies is how the token's signature was checked before verifySignature: go-jose
// v4 parses the compact token again, allowing only alg, and verifies it with key.
func goJoseVerifies(raw string, alg jose.SignatureAlgorithm, key *jose.JSONWebKey) bool {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return false
	}
	_, err = jws.Verify(key.Key)
	return err == nil
}

// weVerify is the path a token takes through jwt-authz: parseToken, the header's alg must
// be the configured one, then verifySignature.
func weVerify(raw string, alg jose.SignatureAlgorithm, key *jose.JSONWebKey) (bool, error) {
	t, err := parseToken(raw)
	if err != nil {
		return false, err
	}
	if t.alg != string(alg) {
		return false, errAlgorithm
	}
	err = verifySignature(raw, alg, key)
	return err == nil, err
}

// signingKeys is, per algorithm, the test key that signs it.
var signingKeys = []struct {
	alg jose.SignatureAlgorithm
	kid string
}{
	{jose.RS256, "rsa"}, {jose.RS384, "rsa"}, {jose.RS512, "rsa"},
	{jose.PS256, "rsa"}, {jose.PS384, "rsa"}, {jose.PS512, "rsa"},
	{jose.ES256, "ec256"}, {jose.ES384, "ec384"}, {jose.ES512, "ec521"},
	{jose.EdDSA, "ed"},
	{jose.HS256, "hs256"}, {jose.HS384, "hs384"}, {jose.HS512, "hs512"},
}

// TestSignatureAgreesWithGoJose: every algorithm's valid token verifies, and every way of
// spoiling it is refused, as go-jose answers for the same token and key.
func TestSignatureAgreesWithGoJose(t *testing.T) {
	for _, sk := range signingKeys {
		t.Run(string(sk.alg), func(t *testing.T) {
			key := verificationKey(sk.kid, "")
			valid := sig.mint(t, string(sk.alg), sk.kid, nil)
			h, p, s := segments(valid)
			sigBytes, _ := strictB64.DecodeString(s)
			flipped := append([]byte(nil), sigBytes...)
			flipped[len(flipped)/2] ^= 1
			cases := map[string]struct {
				raw  string
				want bool
			}{
				"valid":                  {valid, true},
				"signature bit flipped":  {h + "." + p + "." + b64(flipped), false},
				"signature truncated":    {h + "." + p + "." + b64(sigBytes[:len(sigBytes)-1]), false},
				"signature extended":     {h + "." + p + "." + b64(append(sigBytes, 0)), false},
				"signature empty":        {h + "." + p + ".", false},
				"payload changed":        {h + "." + b64([]byte(`{"sub":"mallory"}`)) + "." + s, false},
				"other key's signature":  {otherKeysToken(t, sk.alg, sk.kid), false},
				"signature all zero":     {h + "." + p + "." + b64(make([]byte, len(sigBytes))), false},
				"signature of the input": {h + "." + p + "." + b64([]byte(h+"."+p)), false},
			}
			for name, c := range cases {
				ours, err := weVerify(c.raw, sk.alg, key)
				if ours != c.want {
					t.Errorf("%s: we verify = %v (%v), want %v", name, ours, err, c.want)
				}
				if theirs := goJoseVerifies(c.raw, sk.alg, key); theirs != c.want {
					t.Errorf("%s: go-jose verifies = %v, want %v (the test's expectation is wrong)", name, theirs, c.want)
				}
				if !c.want && err != nil && !errors.Is(err, errSignature) && !errors.Is(err, errMalformed) {
					t.Errorf("%s: error %v is neither errSignature nor errMalformed", name, err)
				}
			}
		})
	}
}

// otherKeysToken is a token for alg signed by another key of the same kind as kid's.
func otherKeysToken(t *testing.T, alg jose.SignatureAlgorithm, kid string) string {
	var other any
	switch kid {
	case "rsa":
		other = privateKey("attacker-rsa")
	case "ec256":
		other = privateKey("attacker-ec")
	case "ec384", "ec521":
		curve := map[string]elliptic.Curve{"ec384": elliptic.P384(), "ec521": elliptic.P521()}[kid]
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other = k
	case "ed":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other = k
	default: // an HMAC secret of the same size
		other = []byte(strings.Repeat("k", len(privateKey(kid).([]byte))))
	}
	return signBytes(t, string(alg), other, []byte(`{"alg":"`+string(alg)+`","kid":"`+kid+`"}`), []byte(`{"sub":"alice"}`))
}

// TestSignatureKeyMismatch: a key of the wrong kind or curve verifies nothing, whatever the
// signature (keyAllows refuses these first; verifySignature must not rely on it).
func TestSignatureKeyMismatch(t *testing.T) {
	for _, c := range []struct {
		alg jose.SignatureAlgorithm
		kid string // signs the token
		key string // verifies it
	}{
		{jose.RS256, "rsa", "ec256"}, {jose.RS256, "rsa", "hs256"}, {jose.RS256, "rsa", "ed"},
		{jose.ES256, "ec256", "ec384"}, {jose.ES384, "ec384", "ec256"}, {jose.ES512, "ec521", "ec384"},
		{jose.ES256, "ec256", "rsa"}, {jose.EdDSA, "ed", "ec256"}, {jose.HS256, "hs256", "rsa"},
		{jose.PS256, "rsa", "hs256"},
	} {
		raw := sig.mint(t, string(c.alg), c.kid, nil)
		if ok, err := weVerify(raw, c.alg, verificationKey(c.key, "")); ok || !errors.Is(err, errSignature) {
			t.Errorf("%s signed by %s, verified with %s: %v, %v; want errSignature", c.alg, c.kid, c.key, ok, err)
		}
	}
	// An Ed25519 key of the wrong size must be refused, not make ed25519.Verify panic.
	short := &jose.JSONWebKey{Key: ed25519.PublicKey(make([]byte, 16))}
	if ok, err := weVerify(sig.mint(t, "EdDSA", "ed", nil), jose.EdDSA, short); ok || !errors.Is(err, errSignature) {
		t.Errorf("16-byte Ed25519 key: %v, %v; want errSignature", ok, err)
	}
}

// TestSignaturePSSSaltLengths: PSS signatures verify whatever their salt length, as go-jose
// accepts them (RFC 7518 §3.5 asks signers for the hash's length; verifiers have always
// taken any).
func TestSignaturePSSSaltLengths(t *testing.T) {
	priv := privateKey("rsa").(*rsa.PrivateKey)
	key := verificationKey("rsa", "")
	input := b64([]byte(`{"alg":"PS256"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
	d := sha256.Sum256([]byte(input))
	for _, salt := range []int{0, 20, 32, rsa.PSSSaltLengthAuto} {
		s, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		raw := input + "." + b64(s)
		ours, err := weVerify(raw, jose.PS256, key)
		if theirs := goJoseVerifies(raw, jose.PS256, key); !ours || ours != theirs {
			t.Errorf("salt %d: we verify %v (%v), go-jose %v; want both true", salt, ours, err, theirs)
		}
	}
}

// TestSignatureECDSAEdgeValues: R or S zero, or equal to the group order, never verify.
func TestSignatureECDSAEdgeValues(t *testing.T) {
	key := verificationKey("ec256", "")
	input := b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
	order := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	zero, one := make([]byte, 32), new(big.Int).SetInt64(1).FillBytes(make([]byte, 32))
	for name, rs := range map[string][2][]byte{
		"r = s = 0": {zero, zero}, "r = 0": {zero, one}, "s = 0": {one, zero},
		"r = n": {order, one}, "s = n": {one, order}, "r = s = n": {order, order},
	} {
		raw := input + "." + b64(append(append([]byte(nil), rs[0]...), rs[1]...))
		if ok, err := weVerify(raw, jose.ES256, key); ok || !errors.Is(err, errSignature) {
			t.Errorf("%s: %v, %v; want errSignature", name, ok, err)
		}
		if goJoseVerifies(raw, jose.ES256, key) {
			t.Errorf("%s: go-jose verifies it", name)
		}
	}
}

// FuzzSignatureAgreesWithGoJose signs whatever header and payload the fuzzer makes, then
// flips a byte of the result (or not), and holds jwt-authz to go-jose's answer. jwt-authz
// may be stricter in parsing (parseToken refuses what go-jose lets through) but never
// looser, with one exception: header members that describe keys or nonces (jwk, x5c,
// nonce), which go-jose decodes and jwt-authz ignores, because keys come only from
// configuration. Once parseToken has accepted a token, the two must agree exactly.
func FuzzSignatureAgreesWithGoJose(f *testing.F) {
	for i, sk := range signingKeys {
		f.Add(uint8(i), []byte(`{"alg":"`+string(sk.alg)+`","kid":"`+sk.kid+`","typ":"JWT"}`), []byte(`{"sub":"alice","exp":1}`), uint16(0), byte(0))
		f.Add(uint8(i), []byte(`{"alg":"`+string(sk.alg)+`"}`), []byte(`{}`), uint16(30), byte(1))
	}
	f.Add(uint8(6), []byte(`{"alg":"ES256","jwk":{"kty":"EC"}}`), []byte(`{}`), uint16(0), byte(0))
	f.Add(uint8(10), []byte(`{"alg":"HS256","x5c":["AAAA"],"nonce":5}`), []byte(`{}`), uint16(0), byte(0))
	f.Add(uint8(10), []byte(`{"alg":"HS256","alg":"none"}`), []byte(`{}`), uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, which uint8, header, payload []byte, at uint16, xor byte) {
		sk := signingKeys[int(which)%len(signingKeys)]
		if strings.HasPrefix(string(sk.alg), "RS") || strings.HasPrefix(string(sk.alg), "PS") {
			if which%4 != 0 { // RSA signing is slow: fuzz it a quarter as often
				return
			}
		}
		raw := []byte(signBytes(t, string(sk.alg), privateKey(sk.kid), header, payload))
		if xor != 0 {
			raw[int(at)%len(raw)] ^= xor
		}
		key := verificationKey(sk.kid, "")
		ours, err := weVerify(string(raw), sk.alg, key)
		theirs := goJoseVerifies(string(raw), sk.alg, key)
		if ours && !theirs && !declaresKeyMembers(header) {
			t.Fatalf("we accept what go-jose refuses: %q", raw)
		}
		if _, perr := parseToken(string(raw)); perr == nil && theirs && !ours && errors.Is(err, errSignature) {
			t.Fatalf("go-jose accepts a parsed token whose signature we refuse (%v): %q", err, raw)
		}
	})
}

// declaresKeyMembers reports whether a JSON header has a member go-jose decodes and
// jwt-authz ignores.
func declaresKeyMembers(header []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(header, &m) != nil {
		return false
	}
	for _, name := range []string{"jwk", "x5c", "nonce"} {
		if _, ok := m[name]; ok {
			return true
		}
	}
	return false
}
