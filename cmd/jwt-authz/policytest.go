package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"gopkg.in/yaml.v3"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
)

// A policy test file (docs/policy-tests.md) names a config and holds cases: a request, an
// optional token, and the answer expected. Tokens given as claims are signed by a key the
// file declares per provider, generated for the run, which stands in for that provider's
// configured keys; other providers keep their keys (files only: nothing is fetched).
type testFile struct {
	// Config is the jwt-authz config under test, relative to the test file.
	Config string `yaml:"config"`
	// Now is the clock of every case (RFC 3339); default: the time of the run.
	Now string `yaml:"now"`
	// Signers declare a test key for each provider whose tokens cases give as claims.
	Signers []testSigner `yaml:"signers"`
	Cases   []testCase   `yaml:"cases"`
}

type testSigner struct {
	Provider string `yaml:"provider"`
	// Alg is the algorithm of the generated key (default: the provider's first).
	Alg string `yaml:"alg"`
	// KID is the key's kid (default "policy-test").
	KID string `yaml:"kid"`
}

type testCase struct {
	Name    string      `yaml:"name"`
	Request testRequest `yaml:"request"`
	Token   *testToken  `yaml:"token"`
	Expect  testExpect  `yaml:"expect"`
}

type testRequest struct {
	Method  string            `yaml:"method"` // default GET
	Host    string            `yaml:"host"`   // default api.example.com
	Path    string            `yaml:"path"`   // with the query, as sent; default /
	Headers map[string]string `yaml:"headers"`
}

// testToken is a token signed by the provider's test signer from Claims, or read from File.
// It is placed where the provider looks first (its first token source).
type testToken struct {
	Provider string `yaml:"provider"` // default: the only signer's provider
	// Claims are added to iss, aud (the provider's first audience), iat and exp (now + 5m);
	// a claim set to null is left out.
	Claims map[string]any `yaml:"claims"`
	// File holds a compact JWS, relative to the test file.
	File string `yaml:"file"`
}

type testExpect struct {
	Decision string `yaml:"decision"` // allow or deny: required
	Status   int    `yaml:"status"`
	Reason   string `yaml:"reason"`
	Rule     string `yaml:"rule"`
	// Headers the upstream must receive from jwt-authz (claims_to_headers and the like).
	Headers map[string]string `yaml:"headers"`
	// ShadowDecision and ShadowReason are what a shadow rule would have answered.
	ShadowDecision string `yaml:"shadow_decision"`
	ShadowReason   string `yaml:"shadow_reason"`
}

// runPolicyTests runs every case of every file, prints a line per failure and a last line
// "N passed, N failed", and returns errQuietExit when a case failed or a file is broken.
func runPolicyTests(ctx context.Context, files []string, stdout, stderr io.Writer) error {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "jwt-authz: -test needs at least one test file")
		return errQuietExit
	}
	passed, failed := 0, 0
	for _, f := range files {
		p, n, err := runTestFile(ctx, f, stdout)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", f, err)
			failed++
			continue
		}
		passed, failed = passed+p, failed+n
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return errQuietExit
	}
	return nil
}

func runTestFile(ctx context.Context, path string, out io.Writer) (passed, failed int, err error) {
	tf, err := loadTestFile(path)
	if err != nil {
		return 0, 0, err
	}
	dir := filepath.Dir(path)
	cfg, err := config.Load(resolve(dir, tf.Config))
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	if tf.Now != "" {
		if now, err = time.Parse(time.RFC3339, tf.Now); err != nil {
			return 0, 0, fmt.Errorf("now: %w", err)
		}
	}
	signers, err := newSigners(cfg, tf.Signers)
	if err != nil {
		return 0, 0, err
	}
	sources := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		if s, ok := signers[p.Name]; ok {
			sources[p.Name] = s
			continue
		}
		ks, _, err := fileKeys(cfg, p) // files load now; nothing is fetched
		if err != nil {
			return 0, 0, err
		}
		sources[p.Name] = ks
	}
	decryption, err := decryptionKeys(cfg)
	if err != nil {
		return 0, 0, err
	}
	// Offline: an opaque token a provider would introspect is introspection_unavailable.
	policy, err := extauthz.NewPolicy(cfg, sources, extauthz.WithDecryptionKeys(decryption), extauthz.WithIntrospectors(offlineIntrospectors(cfg)))
	if err != nil {
		return 0, 0, err
	}
	for i, tc := range tf.Cases {
		name := tc.Name
		if name == "" {
			name = fmt.Sprintf("cases[%d]", i)
		}
		req, err := tc.request(dir, cfg, signers, now)
		if err != nil {
			fmt.Fprintf(out, "FAIL %s: %q: %v\n", path, name, err)
			failed++
			continue
		}
		o := policy.Decide(ctx, req, now)
		if diffs := tc.Expect.diff(o); len(diffs) > 0 {
			fmt.Fprintf(out, "FAIL %s: %q: %s %s\n", path, name, req.Method, req.Path)
			for _, d := range diffs {
				fmt.Fprintf(out, "    %s\n", d)
			}
			failed++
			continue
		}
		passed++
	}
	return passed, failed, nil
}

func loadTestFile(path string) (*testFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt expectation must not pass silently
	var tf testFile
	if err := dec.Decode(&tf); err != nil {
		return nil, err
	}
	var errs []error
	if tf.Config == "" {
		errs = append(errs, errors.New("config: required"))
	}
	if len(tf.Cases) == 0 {
		errs = append(errs, errors.New("cases: at least one case is required"))
	}
	for i, tc := range tf.Cases {
		at := fmt.Sprintf("cases[%d]", i)
		if tc.Expect.Decision != "allow" && tc.Expect.Decision != "deny" {
			errs = append(errs, fmt.Errorf("%s.expect.decision: must be allow or deny, got %q", at, tc.Expect.Decision))
		}
		if t := tc.Token; t != nil && (t.File == "") == (t.Claims == nil) {
			errs = append(errs, fmt.Errorf("%s.token: set exactly one of claims and file", at))
		}
	}
	return &tf, errors.Join(errs...)
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// request builds the case's request, with its token placed where the provider looks first.
func (tc testCase) request(dir string, cfg *config.Config, signers map[string]*testKey, now time.Time) (*extauthz.Request, error) {
	r := tc.Request
	req := &extauthz.Request{Method: r.Method, Host: r.Host, Path: r.Path}
	if req.Method == "" {
		req.Method = "GET"
	}
	if req.Host == "" {
		req.Host = "api.example.com"
	}
	if req.Path == "" {
		req.Path = "/"
	}
	for _, name := range slices.Sorted(maps.Keys(r.Headers)) {
		req.Headers = append(req.Headers, extauthz.Header{Name: name, Value: r.Headers[name]})
	}
	if tc.Token == nil {
		return req, nil
	}
	prov, err := tc.Token.provider(cfg, signers)
	if err != nil {
		return nil, err
	}
	var token string
	if tc.Token.File != "" {
		b, err := os.ReadFile(resolve(dir, tc.Token.File))
		if err != nil {
			return nil, fmt.Errorf("token.file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	} else {
		s := signers[prov.Name]
		if s == nil {
			return nil, fmt.Errorf("token: no signer declared for provider %q", prov.Name)
		}
		if token, err = s.sign(prov, tc.Token.Claims, now); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	placeToken(req, prov.TokenSources[0], token)
	return req, nil
}

func (t *testToken) provider(cfg *config.Config, signers map[string]*testKey) (*config.Provider, error) {
	name := t.Provider
	if name == "" {
		switch {
		case len(signers) == 1:
			for n := range signers {
				name = n
			}
		case len(cfg.Providers) == 1:
			name = cfg.Providers[0].Name
		default:
			return nil, errors.New("token.provider: required when the config has several providers")
		}
	}
	for i := range cfg.Providers {
		if cfg.Providers[i].Name == name {
			return &cfg.Providers[i], nil
		}
	}
	return nil, fmt.Errorf("token.provider: no provider %q in the config", name)
}

// placeToken puts the token where src reads it.
func placeToken(req *extauthz.Request, src config.TokenSource, token string) {
	switch {
	case src.Header != "":
		v := token
		if src.Prefix != "" {
			v = src.Prefix + " " + token
		}
		req.Headers = append(req.Headers, extauthz.Header{Name: src.Header, Value: v})
	case src.Cookie != "":
		req.Headers = append(req.Headers, extauthz.Header{Name: "cookie", Value: src.Cookie + "=" + token})
	case src.Query != "":
		sep := "?"
		if strings.Contains(req.Path, "?") {
			sep = "&"
		}
		req.Path += sep + url.QueryEscape(src.Query) + "=" + url.QueryEscape(token)
	}
}

// diff lists how the outcome differs from the expectation, each as "what: got X, want Y".
func (e testExpect) diff(o *extauthz.Outcome) []string {
	var diffs []string
	got := "deny"
	if o.Allowed {
		got = "allow"
	}
	check := func(what, got, want string) {
		if want != "" && got != want {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", what, got, want))
		}
	}
	check("decision", got, e.Decision)
	if e.Status != 0 && o.HTTPStatus != e.Status {
		diffs = append(diffs, fmt.Sprintf("status: got %d, want %d", o.HTTPStatus, e.Status))
	}
	check("reason", string(o.Reason), e.Reason)
	check("rule", o.Rule, e.Rule)
	check("shadow_decision", o.ShadowDecision, e.ShadowDecision)
	check("shadow_reason", string(o.ShadowReason), e.ShadowReason)
	if len(e.Headers) > 0 {
		upstream := map[string]string{}
		for _, h := range o.Upstream() {
			upstream[strings.ToLower(h.Name)] = h.Value
		}
		for _, name := range slices.Sorted(maps.Keys(e.Headers)) {
			if v, ok := upstream[strings.ToLower(name)]; !ok || v != e.Headers[name] {
				diffs = append(diffs, fmt.Sprintf("upstream header %s: got %q, want %q", name, v, e.Headers[name]))
			}
		}
	}
	if len(diffs) > 0 { // the whole answer, so the failing line explains itself
		diffs = append(diffs, fmt.Sprintf("(answer: %s %d %s, rule %q)", got, o.HTTPStatus, o.Reason, o.Rule))
	}
	return diffs
}

// testKey is a signing key generated for one run; it is the provider's only key.
type testKey struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv any
	pub  *jose.JSONWebKey
}

var _ extauthz.KeySource = (*testKey)(nil)

func (k *testKey) Lookup(_ context.Context, kid string) (*jose.JSONWebKey, bool, error) {
	if kid == k.kid || kid == "" {
		return k.pub, true, nil
	}
	return nil, false, nil
}

func (k *testKey) Ready() bool { return true }

func newSigners(cfg *config.Config, specs []testSigner) (map[string]*testKey, error) {
	out := map[string]*testKey{}
	for i, s := range specs {
		at := fmt.Sprintf("signers[%d]", i)
		var prov *config.Provider
		for j := range cfg.Providers {
			if cfg.Providers[j].Name == s.Provider {
				prov = &cfg.Providers[j]
			}
		}
		if prov == nil {
			return nil, fmt.Errorf("%s.provider: no provider %q in the config", at, s.Provider)
		}
		if out[s.Provider] != nil {
			return nil, fmt.Errorf("%s.provider: %q has a signer already", at, s.Provider)
		}
		alg := s.Alg
		if alg == "" {
			alg = prov.Algorithms[0]
		}
		kid := s.KID
		if kid == "" {
			kid = "policy-test"
		}
		k, err := generateKey(alg, kid)
		if err != nil {
			return nil, fmt.Errorf("%s.alg: %w", at, err)
		}
		out[s.Provider] = k
	}
	return out, nil
}

func generateKey(alg, kid string) (*testKey, error) {
	k := &testKey{alg: jose.SignatureAlgorithm(alg), kid: kid}
	var pub any
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		k.priv, pub = priv, &priv.PublicKey
	case alg == "ES256", alg == "ES384", alg == "ES512":
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, err
		}
		k.priv, pub = priv, &priv.PublicKey
	case alg == "EdDSA":
		p, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		k.priv, pub = priv, p
	case alg == "HS256", alg == "HS384", alg == "HS512":
		secret := make([]byte, 64)
		rand.Read(secret)
		k.priv, pub = secret, secret
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	k.pub = &jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
	return k, nil
}

// sign mints a token for prov: iss, aud, iat and exp by default, then claims on top.
func (k *testKey) sign(prov *config.Provider, claims map[string]any, now time.Time) (string, error) {
	payload := map[string]any{
		"iss": prov.Issuer, "aud": prov.Audiences[0],
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	for name, v := range claims {
		if v == nil {
			delete(payload, name)
			continue
		}
		payload[name] = v
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(body)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
