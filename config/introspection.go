package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Introspection accepts opaque access tokens for a provider by asking its OAuth 2.0 token
// introspection endpoint (RFC 7662). Only a token that is not a JWT (neither three nor five
// dot-separated segments) is introspected; off when nil.
type Introspection struct {
	// Endpoint is the introspection endpoint: https, or http on a loopback address. Empty:
	// the introspection_endpoint of the issuer's discovery document
	// ({issuer}/.well-known/openid-configuration), fetched at first use.
	Endpoint string `yaml:"endpoint"`
	// ClientID is jwt-authz's client id at the authorization server.
	ClientID string `yaml:"client_id"`
	// ClientAuth is how jwt-authz authenticates to the endpoint: client_secret_basic (the
	// default: HTTP Basic with ClientSecretFile, RFC 6749 §2.3.1) or private_key_jwt (a
	// short-lived JWT signed with PrivateKeyFile, RFC 7523 §2.2, OpenID Connect Core §9).
	ClientAuth string `yaml:"client_auth"`
	// ClientSecretFile holds the secret of client_secret_basic, never written in the config.
	ClientSecretFile string `yaml:"client_secret_file"`
	// PrivateKeyFile holds the private key of private_key_jwt: a private JWK (JSON) or a
	// PEM file (PKCS#8, PKCS#1 or SEC 1).
	PrivateKeyFile string `yaml:"private_key_file"`
	// SigningAlgorithm is the JWS alg of the private_key_jwt assertion (ES256, PS256,
	// EdDSA, ...), from configuration, never guessed from the key.
	SigningAlgorithm string `yaml:"signing_algorithm"`
	// KeyID is the assertion's kid; default the JWK's kid, none for a PEM key.
	KeyID string `yaml:"key_id"`
	// AssertionAudience is the assertion's aud; default the provider's issuer, the
	// authorization server's identifier (RFC 7523 §3).
	AssertionAudience string `yaml:"assertion_audience"`
	// Timeout bounds one call to the endpoint (default 2s); past it the check fails closed
	// with 503.
	Timeout Duration `yaml:"timeout"`
	// CacheFor is how long an active answer is kept (default 60s), never past its exp.
	CacheFor Duration `yaml:"cache_for"`
	// InactiveCacheFor is how long an inactive answer is kept (default 5s).
	InactiveCacheFor Duration `yaml:"inactive_cache_for"`
	// MaxResponseBytes caps the answer's body (default 65536); a larger one fails closed.
	MaxResponseBytes int `yaml:"max_response_bytes"`
}

// The client authentication methods of introspection.
const (
	ClientSecretBasic = "client_secret_basic"
	PrivateKeyJWT     = "private_key_jwt"
)

// Introspection defaults.
const (
	DefaultIntrospectionTimeout          = 2 * time.Second
	DefaultIntrospectionCacheFor         = 60 * time.Second
	DefaultIntrospectionInactiveCacheFor = 5 * time.Second
	DefaultIntrospectionMaxResponseBytes = 64 << 10
)

// WithDefaults returns a copy with every unset setting at its default.
func (in Introspection) WithDefaults() Introspection {
	if in.ClientAuth == "" {
		in.ClientAuth = ClientSecretBasic
	}
	if in.Timeout == 0 {
		in.Timeout = Duration(DefaultIntrospectionTimeout)
	}
	if in.CacheFor == 0 {
		in.CacheFor = Duration(DefaultIntrospectionCacheFor)
	}
	if in.InactiveCacheFor == 0 {
		in.InactiveCacheFor = Duration(DefaultIntrospectionInactiveCacheFor)
	}
	if in.MaxResponseBytes == 0 {
		in.MaxResponseBytes = DefaultIntrospectionMaxResponseBytes
	}
	return in
}

func (in *Introspection) validate(at, issuer string) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if in.Endpoint == "" {
		// From discovery: the issuer must be a URL the discovery document can be fetched from.
		if u, err := url.Parse(issuer); err != nil || u.Host == "" || strings.Contains(issuer, "{") || !SecureURL(u) {
			bad(at+".endpoint", "is required when the issuer %q is not an https URL to discover it from", issuer)
		}
	} else if u, err := url.Parse(in.Endpoint); err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		bad(at+".endpoint", "%q is not an absolute URL without userinfo or fragment", in.Endpoint)
	} else if !SecureURL(u) {
		bad(at+".endpoint", "%q must be https (http only on a loopback address)", in.Endpoint)
	}
	if in.ClientID == "" {
		bad(at+".client_id", "is required")
	}
	switch in.ClientAuth {
	case "", ClientSecretBasic:
		if in.ClientSecretFile == "" {
			bad(at+".client_secret_file", "is required")
		}
		for name, v := range map[string]string{"private_key_file": in.PrivateKeyFile, "signing_algorithm": in.SigningAlgorithm,
			"key_id": in.KeyID, "assertion_audience": in.AssertionAudience} {
			if v != "" {
				bad(at+"."+name, "is only for client_auth: %s", PrivateKeyJWT)
			}
		}
	case PrivateKeyJWT:
		if in.PrivateKeyFile == "" {
			bad(at+".private_key_file", "is required with client_auth: %s", PrivateKeyJWT)
		}
		if in.ClientSecretFile != "" {
			bad(at+".client_secret_file", "is only for client_auth: %s", ClientSecretBasic)
		}
		// The asymmetric JWS algorithms, as for DPoP proofs: a shared secret is no private key.
		if !slices.Contains(DPoPAlgorithms, in.SigningAlgorithm) {
			bad(at+".signing_algorithm", "%q: want one of %s", in.SigningAlgorithm, strings.Join(DPoPAlgorithms, ", "))
		}
		if a := in.AssertionAudience; a != "" {
			if u, err := url.Parse(a); err != nil || !u.IsAbs() {
				bad(at+".assertion_audience", "%q is not an absolute URI", a)
			}
		}
	default:
		bad(at+".client_auth", "%q: want %s or %s", in.ClientAuth, ClientSecretBasic, PrivateKeyJWT)
	}
	for name, d := range map[string]Duration{"timeout": in.Timeout, "cache_for": in.CacheFor, "inactive_cache_for": in.InactiveCacheFor} {
		if d < 0 {
			bad(at+"."+name, "must not be negative")
		}
	}
	if in.MaxResponseBytes < 0 {
		bad(at+".max_response_bytes", "must not be negative")
	}
	return errs
}

// SecureURL reports whether u may carry credentials: https, or http to a loopback address.
func SecureURL(u *url.URL) bool {
	return u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
