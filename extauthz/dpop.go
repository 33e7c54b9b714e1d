package extauthz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
)

// DPoP (RFC 9449): a token bound to a key (cnf.jkt) is good only with a proof signed by
// that key for this very request. The proof is checked on every request, cached token or
// not; the token cache keeps only the thumbprint the token is bound to.

// DPoP sentinels; each maps to the reason below it in errors.go's tokenErrors.
var (
	// errDPoPProofMissing: the DPoP scheme or a DPoP-bound token, and no DPoP header.
	errDPoPProofMissing = errors.New("extauthz: DPoP proof missing")
	// errDPoPProof: the proof is not a well-formed dpop+jwt signed by the public key in its
	// header with an allowed algorithm, or it was sent twice.
	errDPoPProof = errors.New("extauthz: invalid DPoP proof")
	// errDPoPMismatch: htm, htu or ath do not describe this request and token.
	errDPoPMismatch = errors.New("extauthz: DPoP proof is for another request")
	// errDPoPStale: iat is older than max_age or in the future.
	errDPoPStale = errors.New("extauthz: DPoP proof too old or from the future")
	// errDPoPReplay: the proof's jti was seen before.
	errDPoPReplay = errors.New("extauthz: DPoP proof replayed")
	// errDPoPNonce: server nonces are on and the proof has none, or a stale or forged one.
	errDPoPNonce = errors.New("extauthz: DPoP nonce required")
	// errDPoPKey: the proof's key is not the one the token is bound to (cnf.jkt), or the
	// token is not DPoP-bound at all.
	errDPoPKey = errors.New("extauthz: DPoP proof key does not match the token")
	// errDPoPAsBearer: a DPoP-bound token sent as a bearer token (RFC 9449 §7.2).
	errDPoPAsBearer = errors.New("extauthz: DPoP-bound token used as a bearer token")
	// errDPoPRequired: the provider requires DPoP and the token came as a bearer token.
	errDPoPRequired = errors.New("extauthz: DPoP required")
	// errReplayUnavailable: the replay store cannot answer (fail closed, 503).
	errReplayUnavailable = errors.New("extauthz: DPoP replay store unavailable")
)

// DPoP reasons: 401 with error invalid_dpop_proof (proof problems), use_dpop_nonce, or
// invalid_token (binding problems); replay_store_unavailable is a 503.
const (
	ReasonDPoPProofMissing          Reason = "dpop_proof_missing"
	ReasonDPoPProof                 Reason = "dpop_proof_invalid"
	ReasonDPoPMismatch              Reason = "dpop_proof_mismatch"
	ReasonDPoPStale                 Reason = "dpop_proof_stale"
	ReasonDPoPReplay                Reason = "dpop_replay"
	ReasonDPoPNonce                 Reason = "dpop_nonce_required"
	ReasonDPoPKey                   Reason = "dpop_key_mismatch"
	ReasonDPoPAsBearer              Reason = "dpop_bound_as_bearer"
	ReasonDPoPRequired              Reason = "dpop_required"
	ReasonReplayUnavailable         Reason = "replay_store_unavailable"
	maxDPoPJTI                             = 256
	dpopNonceContext                       = "jwt-authz dpop nonce v1"
	wellKnownDPoPProofHeaderMaxSize        = 8 << 10
)

// ReplayStore remembers DPoP proof ids across replicas. Implementations must be safe for
// concurrent use.
type ReplayStore interface {
	// FirstUse records key for ttl and reports whether it was new. An error means the
	// store cannot answer, and the caller fails closed.
	FirstUse(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// WithReplayStore has DPoP proofs' jti checked in a store shared by every replica instead
// of in this replica's memory.
func WithReplayStore(s ReplayStore) PolicyOption {
	return func(o *policyOptions) { o.replayStore = s }
}

// WithDPoPNonceSecrets turns on stateless DPoP server nonces (config dpop.nonce): the first
// secret makes nonces, every one is accepted (so a secret can be rotated without a
// flag day).
func WithDPoPNonceSecrets(secrets [][]byte) PolicyOption {
	return func(o *policyOptions) { o.nonceSecrets = secrets }
}

// dpopSettings is a provider's compiled config.DPoP.
type dpopSettings struct {
	required bool
	algs     []jose.SignatureAlgorithm
	algsText string // for WWW-Authenticate algs
	maxAge   time.Duration
	origin   string // scheme://host[:port] in normal form; "" for the request's
}

func newDPoPSettings(c *config.DPoP) *dpopSettings {
	s := &dpopSettings{required: c.Required, maxAge: c.MaxAge.D()}
	for _, a := range c.Algorithms {
		s.algs = append(s.algs, jose.SignatureAlgorithm(a))
	}
	s.algsText = strings.Join(c.Algorithms, " ")
	if c.Origin != "" {
		s.origin, _ = normalURI(c.Origin)
		s.origin = strings.TrimSuffix(s.origin, "/")
	}
	return s
}

// defaultDPoP checks tokens bound to a key for providers that configure nothing.
var defaultDPoP = func() *dpopSettings {
	c := &config.DPoP{Algorithms: config.DPoPAlgorithms, MaxAge: config.Duration(config.DefaultDPoPMaxAge)}
	return newDPoPSettings(c)
}()

func (pr *provider) dpopSettings() *dpopSettings {
	if pr.dpop != nil {
		return pr.dpop
	}
	return defaultDPoP
}

// checkDPoP enforces RFC 9449 for a verified token of pr that came from src: the DPoP
// scheme needs a DPoP-bound token and a valid proof by its key; a DPoP-bound token is
// never a bearer token; a provider that requires DPoP refuses bearer tokens. nonce is a
// fresh server nonce to send back when the error is errDPoPNonce.
func (p *Policy) checkDPoP(ctx context.Context, r *request, pr *provider, id *identity, src tokenSource, raw string, now time.Time) (nonce string, err error) {
	bound := id.cnf() != nil && id.cnf().jkt != ""
	if !strings.EqualFold(src.prefix, "DPoP") || src.kind != fromHeader {
		switch {
		case bound:
			return "", errDPoPAsBearer
		case pr.dpop != nil && pr.dpop.required:
			return "", errDPoPRequired
		}
		return "", nil
	}
	if !bound {
		return "", fmt.Errorf("%w: the token is not DPoP-bound", errDPoPKey)
	}
	proof, n := r.header("dpop")
	switch {
	case n == 0 || proof == "":
		return "", errDPoPProofMissing
	case n > 1 || strings.IndexByte(proof, ',') >= 0: // RFC 9449 §4.3 check 1: one header
		return "", fmt.Errorf("%w: more than one DPoP header", errDPoPProof)
	case len(proof) > min(p.maxTokenBytes, wellKnownDPoPProofHeaderMaxSize):
		return "", fmt.Errorf("%w: too large", errDPoPProof)
	}
	s := pr.dpopSettings()
	pf, err := verifyProof(proof, s.algs)
	if err != nil {
		return "", err
	}
	if pf.htm != r.method {
		return "", fmt.Errorf("%w: htm", errDPoPMismatch)
	}
	if want, ok := requestURI(r, s.origin); !ok || pf.htu != want {
		return "", fmt.Errorf("%w: htu", errDPoPMismatch)
	}
	ath := sha256.Sum256([]byte(raw))
	if pf.ath != base64.RawURLEncoding.EncodeToString(ath[:]) {
		return "", fmt.Errorf("%w: ath", errDPoPMismatch)
	}
	iat := time.Unix(pf.iat, 0)
	if iat.Before(now.Add(-s.maxAge-pr.skew)) || iat.After(now.Add(pr.skew)) {
		return "", errDPoPStale
	}
	if p.nonces != nil && !p.nonces.valid(pf.nonce, now) {
		return p.nonces.current(now), errDPoPNonce
	}
	if pf.jkt != id.cnf().jkt {
		return "", errDPoPKey
	}
	// The jti is unique per key (RFC 9449 §11.1): remember the pair until iat leaves the
	// window, after which the proof is refused as stale anyway.
	key := sha256.Sum256([]byte(pf.jkt + " " + pf.jti))
	ttl := iat.Add(s.maxAge + pr.skew).Sub(now)
	first, err := p.firstUse(ctx, base64.RawURLEncoding.EncodeToString(key[:]), ttl, now)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %v", errReplayUnavailable, err)
	case !first:
		return "", errDPoPReplay
	}
	return "", nil
}

func (p *Policy) firstUse(ctx context.Context, key string, ttl time.Duration, now time.Time) (bool, error) {
	if ttl <= 0 {
		ttl = time.Second
	}
	if p.replayStore != nil {
		return p.replayStore.FirstUse(ctx, "jwt-authz:dpop:"+key, ttl)
	}
	return p.seenProofs.firstUse(key, now, ttl)
}

// proof is what a verified DPoP proof says.
type proof struct {
	jkt, jti, htm, htu, ath, nonce string
	iat                            int64
}

// verifyProof checks a DPoP proof's form, header and signature (RFC 9449 §4.3 checks 2-6)
// and reads its claims; htm, htu, iat, ath, nonce and replay are the caller's.
func verifyProof(raw string, algs []jose.SignatureAlgorithm) (*proof, error) {
	bad := func(format string, a ...any) (*proof, error) {
		return nil, fmt.Errorf("%w: %s", errDPoPProof, fmt.Sprintf(format, a...))
	}
	seg := strings.Split(raw, ".")
	if len(seg) != 3 {
		return bad("not a compact JWS")
	}
	for _, s := range seg {
		if s == "" || !isBase64URL(s) {
			return bad("segment empty or not base64url")
		}
		if _, err := strictB64.DecodeString(s); err != nil {
			return bad("segment not canonical base64url")
		}
	}
	hb, _ := strictB64.DecodeString(seg[0])
	header, err := decodeObject(hb)
	if err != nil {
		return bad("header: %v", err)
	}
	for _, name := range []string{"crit", "b64", "zip", "x5c", "x5u", "jku", "kid"} {
		// The key is the embedded jwk and nothing else (RFC 9449 §4.2).
		if _, ok := header[name]; ok {
			return bad("header %q", name)
		}
	}
	if typ, _ := header["typ"].(string); typ != "dpop+jwt" {
		return bad("typ is not dpop+jwt")
	}
	alg, _ := header["alg"].(string)
	ok := false
	for _, a := range algs {
		ok = ok || string(a) == alg
	}
	if !ok {
		return bad("alg %q not allowed", truncate(alg, 32))
	}
	jwkMap, isObj := header["jwk"].(map[string]any)
	if !isObj {
		return bad("no jwk object")
	}
	// A private key in the header would be the client's secret published; refuse the
	// proof rather than use it (RFC 9449 §4.3 check 6: the jwk must not hold one).
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, ok := jwkMap[m]; ok {
			return bad("jwk holds private or symmetric key material")
		}
	}
	jwkJSON, _ := json.Marshal(jwkMap)
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(jwkJSON); err != nil || !jwk.IsPublic() || !jwk.Valid() {
		return bad("jwk is not a public key")
	}
	if !proofKeyFits(alg, jwk.Key) {
		return bad("jwk does not fit alg %s", alg)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return bad("%v", err)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return bad("signature")
	}
	claims, err := decodeObject(payload)
	if err != nil {
		return bad("claims: %v", err)
	}
	pf := &proof{}
	str := func(name string, required bool) (string, bool) {
		v, present := claims[name]
		s, isStr := v.(string)
		return s, (present && isStr) || (!present && !required)
	}
	var okJTI, okHTM, okHTU, okATH, okNonce bool
	pf.jti, okJTI = str("jti", true)
	pf.htm, okHTM = str("htm", true)
	pf.htu, okHTU = str("htu", true)
	pf.ath, okATH = str("ath", true) // a resource server always gets an access token with it
	pf.nonce, okNonce = str("nonce", false)
	if !okJTI || !okHTM || !okHTU || !okATH || !okNonce || pf.jti == "" || len(pf.jti) > maxDPoPJTI {
		return bad("jti, htm, htu and ath must be strings (jti of 1 to %d bytes)", maxDPoPJTI)
	}
	iat, present, err := numericDate(claims, "iat")
	if err != nil || !present || iat != math.Trunc(iat) || iat < 0 {
		return bad("iat must be a whole number of seconds")
	}
	pf.iat = int64(iat)
	htu, ok := normalURI(pf.htu)
	if !ok {
		return nil, fmt.Errorf("%w: htu is not an http(s) URI", errDPoPMismatch)
	}
	pf.htu = htu
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return bad("thumbprint: %v", err)
	}
	pf.jkt = base64.RawURLEncoding.EncodeToString(sum)
	return pf, nil
}

// proofKeyFits binds the proof's alg to its key type (and curve, and RSA size).
func proofKeyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg] == k.Curve
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= 2048
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// normalURI is an http(s) URI in the normal form RFC 9449 §4.3 compares (RFC 3986 §6.2.2,
// §6.2.3): lower-case scheme and host, no default port, a normalised path ("/" when
// empty), and no query or fragment, which the comparison ignores.
func normalURI(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + normalizePath(path), true
}

// requestURI is the target URI of the request Envoy describes, in normal form: the
// configured origin, or the request's scheme (https when Envoy sends none) and authority.
func requestURI(r *request, origin string) (string, bool) {
	if origin != "" {
		return normalURI(origin + r.path)
	}
	scheme := r.scheme
	if scheme == "" {
		scheme = "https"
	}
	return normalURI(scheme + "://" + r.authority + r.path)
}

// dpopDenied is the denial of a DPoP failure: error invalid_dpop_proof for the proof's
// problems, use_dpop_nonce with a fresh DPoP-Nonce, invalid_token for binding problems,
// and a DPoP challenge with the provider's algs (RFC 9449 §7.1).
func dpopDenied(ru *rule, pr *provider, pt *parsedToken, err error, nonce string) outcome {
	o := tokenDenied(ru, pr, pt, pr, err)
	d := &o.denial
	d.dpopAlgs, d.dpopOnly = pr.dpopSettings().algsText, true
	switch {
	case errors.Is(err, errReplayUnavailable):
		d.httpStatus, d.code, d.challenge = http.StatusServiceUnavailable, "temporarily_unavailable", false
	case errors.Is(err, errDPoPNonce):
		d.code, d.nonce = "use_dpop_nonce", nonce
	case errors.Is(err, errDPoPProofMissing), errors.Is(err, errDPoPProof), errors.Is(err, errDPoPMismatch),
		errors.Is(err, errDPoPStale), errors.Is(err, errDPoPReplay):
		d.code = "invalid_dpop_proof"
	}
	return o
}
