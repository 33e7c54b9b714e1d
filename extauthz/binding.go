package extauthz

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jwt-authz/jwt-authz/config"
)

// RFC 8705 sentinels; each maps to the reason below it in errors.go's tokenErrors.
var (
	// errNotBound: the provider requires certificate-bound tokens and this one has no
	// cnf.x5t#S256 (RFC 8705 §3).
	errNotBound = errors.New("extauthz: token is not certificate-bound")
	// errCertificateMissing: the token is certificate-bound and the request shows no usable
	// client certificate.
	errCertificateMissing = errors.New("extauthz: client certificate required")
	// errCertificateMismatch: the client certificate is not the one the token is bound to.
	errCertificateMismatch = errors.New("extauthz: client certificate does not match the token")
)

// RFC 8705 reasons, all 401 invalid_token.
const (
	ReasonNotBound            Reason = "token_not_bound"      // binding required, token has no cnf.x5t#S256
	ReasonCertificateMissing  Reason = "certificate_missing"  // a bound token without a client certificate
	ReasonCertificateMismatch Reason = "certificate_mismatch" // cnf.x5t#S256 is not the client certificate's
)

// confirmation is a token's cnf claim (RFC 7800): the proof-of-possession key it is bound
// to. Only tokens that carry one have it, so unbound tokens cost a nil pointer.
type confirmation struct {
	x5t    [sha256.Size]byte // cnf.x5t#S256: SHA-256 of the bound certificate's DER (RFC 8705 §3.1)
	hasX5t bool
	jkt    string // cnf.jkt: the RFC 7638 thumbprint of the DPoP key (RFC 9449 §6.1)
}

// certBinding is a compiled config.CertificateBinding.
type certBinding struct {
	required bool
	header   string // "" for the peer certificate of the CheckRequest
	xfcc     bool   // the header is Envoy's x-forwarded-client-cert; else URL-encoded PEM
}

func newCertBinding(c *config.CertificateBinding) *certBinding {
	if c == nil {
		return nil
	}
	return &certBinding{required: c.Required, header: c.Header, xfcc: c.HeaderFormat != "pem"}
}

// confirmationOf reads the cnf claim of verified claims; nil when the token has none.
func confirmationOf(claims map[string]any) (*confirmation, error) {
	v, ok := claims["cnf"]
	if !ok {
		return nil, nil
	}
	cnf, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: cnf is not an object", errClaims)
	}
	c := &confirmation{}
	if v, ok := cnf["x5t#S256"]; ok {
		s, _ := v.(string)
		b, err := strictB64.DecodeString(s)
		if err != nil || len(b) != sha256.Size || !isBase64URL(s) {
			return nil, fmt.Errorf("%w: cnf.x5t#S256 is not a base64url SHA-256 thumbprint", errClaims)
		}
		c.x5t, c.hasX5t = [sha256.Size]byte(b), true
	}
	if v, ok := cnf["jkt"]; ok {
		s, _ := v.(string)
		if b, err := strictB64.DecodeString(s); err != nil || len(b) != sha256.Size || !isBase64URL(s) {
			return nil, fmt.Errorf("%w: cnf.jkt is not a base64url SHA-256 thumbprint", errClaims)
		}
		c.jkt = s
	}
	if !c.hasX5t && c.jkt == "" {
		return nil, nil
	}
	return c, nil
}

// checkCertificate enforces RFC 8705 §3 for a verified token of pr: a token bound to a
// certificate is only good with that certificate, and a provider that requires binding
// refuses unbound tokens. A bound token is checked against the peer certificate even when
// the provider configures nothing: accepting it as a bearer token would defeat the binding.
func (pr *provider) checkCertificate(r *request, cnf *confirmation) error {
	if cnf == nil || !cnf.hasX5t {
		if pr.certBinding != nil && pr.certBinding.required {
			return errNotBound
		}
		return nil
	}
	got, err := pr.clientCertificateHash(r)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got[:], cnf.x5t[:]) != 1 {
		return errCertificateMismatch
	}
	return nil
}

// clientCertificateHash is the SHA-256 of the client certificate the request shows: from
// the configured trusted header, else from the peer certificate Envoy sent.
func (pr *provider) clientCertificateHash(r *request) ([sha256.Size]byte, error) {
	b := pr.certBinding
	if b == nil || b.header == "" {
		if r.sourceCertificate == "" && r.peerDigest != nil {
			return hexCertificateHash(r.peerDigest())
		}
		if r.sourceCertificate == "" {
			return [sha256.Size]byte{}, fmt.Errorf("%w: no peer certificate in the check request", errCertificateMissing)
		}
		return pemCertificateHash(r.sourceCertificate)
	}
	v, n := r.header(b.header)
	switch {
	case n == 0 || v == "":
		return [sha256.Size]byte{}, fmt.Errorf("%w: no %s header", errCertificateMissing, b.header)
	case n > 1:
		return [sha256.Size]byte{}, fmt.Errorf("%w: %s header repeated", errCertificateMissing, b.header)
	case b.xfcc:
		return xfccCertificateHash(v)
	}
	return pemCertificateHash(v)
}

// hexCertificateHash reads a certificate's SHA-256 given in hex (Envoy's
// connection.sha256_peer_certificate_digest; "" when the connection showed none).
func hexCertificateHash(digest string) ([sha256.Size]byte, error) {
	if digest == "" {
		return [sha256.Size]byte{}, fmt.Errorf("%w: no client certificate on the connection", errCertificateMissing)
	}
	b, err := hex.DecodeString(digest)
	if err != nil || len(b) != sha256.Size {
		return [sha256.Size]byte{}, fmt.Errorf("%w: the connection's certificate digest is not a hex SHA-256", errCertificateMissing)
	}
	return [sha256.Size]byte(b), nil
}

// pemCertificateHash hashes the DER of a URL-encoded PEM certificate (Envoy's
// Peer.certificate, XFCC's Cert, nginx's $ssl_client_escaped_cert).
func pemCertificateHash(escaped string) ([sha256.Size]byte, error) {
	// Path unescaping: a '+' of base64 must stay a '+'.
	text, err := url.PathUnescape(escaped)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: certificate is not URL-encoded: %v", errCertificateMissing, err)
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		return [sha256.Size]byte{}, fmt.Errorf("%w: certificate is not PEM", errCertificateMissing)
	}
	return sha256.Sum256(block.Bytes), nil
}

// errXFCC: the x-forwarded-client-cert value is not one well-formed element with a Hash
// or a Cert.
var errXFCC = errors.New("extauthz: unusable x-forwarded-client-cert")

// xfccCertificateHash reads the client certificate's SHA-256 from an Envoy
// x-forwarded-client-cert value: its Hash (hex SHA-256 of the DER), else its Cert. It
// accepts exactly one element: with several (APPEND_FORWARD through proxies) which one is
// the client's depends on the deployment, so the trusted proxy must SANITIZE_SET.
func xfccCertificateHash(v string) ([sha256.Size]byte, error) {
	var hash, cert string
	pairs, err := xfccPairs(v)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: %w", errCertificateMissing, err)
	}
	for _, kv := range pairs {
		switch strings.ToLower(kv[0]) {
		case "hash":
			hash = kv[1]
		case "cert":
			cert = kv[1]
		}
	}
	switch {
	case hash != "":
		b, err := hex.DecodeString(hash)
		if err != nil || len(b) != sha256.Size {
			return [sha256.Size]byte{}, fmt.Errorf("%w: %w: Hash is not a hex SHA-256", errCertificateMissing, errXFCC)
		}
		return [sha256.Size]byte(b), nil
	case cert != "":
		return pemCertificateHash(cert)
	}
	return [sha256.Size]byte{}, fmt.Errorf("%w: %w: neither Hash nor Cert", errCertificateMissing, errXFCC)
}

// xfccPairs splits one XFCC element into key=value pairs: pairs are separated by ';',
// elements by ',', and a value may be a quoted string in which both (and '\"') are
// literal.
func xfccPairs(v string) ([][2]string, error) {
	var pairs [][2]string
	var cur strings.Builder
	key, inKey, quoted := "", true, false
	end := func() error {
		if inKey {
			if strings.TrimSpace(cur.String()) == "" && key == "" {
				return nil // an empty pair (";;")
			}
			return fmt.Errorf("%w: a pair without '='", errXFCC)
		}
		pairs = append(pairs, [2]string{key, cur.String()})
		cur.Reset()
		key, inKey = "", true
		return nil
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted && c == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case quoted && c == '"':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '"' && !inKey && cur.Len() == 0:
			quoted = true
		case c == '=' && inKey:
			key, inKey = strings.TrimSpace(cur.String()), false
			cur.Reset()
			if key == "" {
				return nil, fmt.Errorf("%w: an empty key", errXFCC)
			}
		case c == ';':
			if err := end(); err != nil {
				return nil, err
			}
		case c == ',':
			return nil, fmt.Errorf("%w: more than one element", errXFCC)
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, fmt.Errorf("%w: an unterminated quoted value", errXFCC)
	}
	if err := end(); err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: empty", errXFCC)
	}
	return pairs, nil
}
