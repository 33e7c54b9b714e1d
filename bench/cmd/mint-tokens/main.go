// Command mint-tokens makes the keys and tokens the benchmarks send: a fresh RSA-2048 and
// P-256 key pair, their public halves as a JWKS (for jwt-authz's jwks_file and Envoy's
// jwt_authn local_jwks) and as PEM (for the floor server), and files of distinct signed
// tokens, one per line. Only the standard library signs, so what jwt-authz verifies owes
// nothing to its own code.
//
//	mint-tokens -dir DIR -rs256 2000 -es256 100000
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mint-tokens:", err)
		os.Exit(1)
	}
}

// Names the other parts of the benchmark (run.sh, the configs) rely on.
const (
	rsaKID = "bench-rsa"
	ecKID  = "bench-ec"
)

func run(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mint-tokens", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "output directory (created)")
	nRS := fs.Int("rs256", 2000, "distinct RS256 tokens to write to rs256.tokens")
	nES := fs.Int("es256", 0, "distinct ES256 tokens to write to es256.tokens")
	issuer := fs.String("issuer", "https://issuer.bench.example", "iss of every token")
	audience := fs.String("audience", "bench-api", "aud of every token")
	lifetime := fs.Duration("lifetime", 24*time.Hour, "exp - iat")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeJWKS(filepath.Join(*dir, "jwks.json"), &rsaKey.PublicKey, &ecKey.PublicKey); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(*dir, "rsa.pub.pem"), &rsaKey.PublicKey); err != nil {
		return err
	}
	now := time.Now()
	claims := func(i int) map[string]any {
		return map[string]any{
			"iss":   *issuer,
			"aud":   *audience,
			"sub":   fmt.Sprintf("user-%07d", i),
			"iat":   now.Unix(),
			"nbf":   now.Add(-time.Minute).Unix(),
			"exp":   now.Add(*lifetime).Unix(),
			"jti":   fmt.Sprintf("bench-%07d", i),
			"scope": "read write",
			"roles": []string{"reader", "writer"},
		}
	}
	rs := signer{alg: "RS256", kid: rsaKID, sign: func(digest []byte) ([]byte, error) {
		return rsa.SignPKCS1v15(nil, rsaKey, crypto.SHA256, digest)
	}}
	es := signer{alg: "ES256", kid: ecKID, sign: func(digest []byte) ([]byte, error) {
		return signES256(ecKey, digest)
	}}
	for _, f := range []struct {
		name string
		s    signer
		n    int
	}{{"rs256.tokens", rs, *nRS}, {"es256.tokens", es, *nES}} {
		if f.n <= 0 {
			continue
		}
		start := time.Now()
		if err := writeTokens(filepath.Join(*dir, f.name), f.s, f.n, claims); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mint-tokens: %d %s tokens in %v\n", f.n, f.s.alg, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// signer signs a SHA-256 digest with one key.
type signer struct {
	alg, kid string
	sign     func(digest []byte) ([]byte, error)
}

func (s signer) token(claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": s.alg, "typ": "JWT", "kid": s.kid})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64(header) + "." + b64(payload)
	digest := sha256.Sum256([]byte(input))
	sig, err := s.sign(digest[:])
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

// writeTokens signs n tokens on every core (an RSA signature costs milliseconds) and writes
// them in order.
func writeTokens(path string, s signer, n int, claims func(int) map[string]any) error {
	toks := make([]string, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += len(errs) {
				if toks[i], errs[w] = s.token(claims(i)); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, t := range toks {
		w.WriteString(t)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// signES256 produces the JWS form of an ECDSA signature: r and s as 32-byte big-endian
// integers, concatenated (RFC 7518 §3.4), not ASN.1.
func signES256(k *ecdsa.PrivateKey, digest []byte) ([]byte, error) {
	r, s, err := ecdsa.Sign(rand.Reader, k, digest)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func writeJWKS(path string, rk *rsa.PublicKey, ek *ecdsa.PublicKey) error {
	ecPoint, err := ek.Bytes() // 0x04 || X || Y
	if err != nil {
		return err
	}
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": rsaKID, "alg": "RS256", "use": "sig",
			"n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": ecKID, "alg": "ES256", "use": "sig", "crv": "P-256",
			"x": b64(ecPoint[1:33]), "y": b64(ecPoint[33:])},
	}}
	// One line: run.sh pastes it into Envoy's YAML as a quoted inline_string.
	data, err := json.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func writePEM(path string, k *rsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
