package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DPoP configures DPoP (RFC 9449) for one provider.
type DPoP struct {
	// Required refuses the provider's tokens unless they are DPoP-bound and come with a
	// valid proof (Authorization: DPoP); bearer tokens are refused.
	Required bool `yaml:"required"`
	// Algorithms are the accepted proof algorithms (asymmetric only). Default:
	// ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// MaxAge is how old a proof's iat may be (default 60s); iat in the future beyond the
	// provider's clock_skew is refused too.
	MaxAge Duration `yaml:"max_age"`
	// Origin is scheme://host[:port] as clients address the API, when it differs from what
	// Envoy sees (TLS ended before Envoy, another host name); default: the request's.
	Origin string `yaml:"origin"`
}

// DPoPServer is what DPoP checks share across providers and replicas.
type DPoPServer struct {
	// Nonce turns on server nonces (RFC 9449 §8): stateless, derived from a secret every
	// replica shares, rotating every Lifetime.
	Nonce *DPoPNonce `yaml:"nonce"`
	// ReplayStore is a Redis or Valkey server that every replica asks whether a proof's
	// jti was seen; without it each replica remembers only its own.
	ReplayStore *ReplayStore `yaml:"replay_store"`
}

// DPoPNonce configures stateless server nonces.
type DPoPNonce struct {
	// SecretFile holds the shared secret (at least 32 bytes), the same on every replica.
	SecretFile string `yaml:"secret_file"`
	// Lifetime is how long a nonce is good for (default 5m): a nonce is accepted in the
	// window it was made in and the one after.
	Lifetime Duration `yaml:"lifetime"`
}

// ReplayStore is a Redis or Valkey server for DPoP jti replay detection.
type ReplayStore struct {
	// Address is host:port.
	Address string `yaml:"address"`
	// PasswordFile, when set, holds the AUTH password (trailing newline ignored).
	PasswordFile string `yaml:"password_file"`
	// DB is the database number (default 0).
	DB int `yaml:"db"`
	// Timeout bounds one round trip (default 200ms); a store that does not answer in time
	// fails the check closed (503).
	Timeout Duration `yaml:"timeout"`
}

// DPoP defaults.
const (
	DefaultDPoPMaxAge        = 60 * time.Second
	DefaultDPoPNonceLifetime = 5 * time.Minute
	DefaultReplayTimeout     = 200 * time.Millisecond
)

// DPoPAlgorithms are the proof algorithms a provider may allow: asymmetric only, since a
// proof carries its public key (RFC 9449 §4.2).
var DPoPAlgorithms = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}

func (d *DPoP) setDefaults() {
	if len(d.Algorithms) == 0 {
		d.Algorithms = DPoPAlgorithms
	}
	if d.MaxAge == 0 {
		d.MaxAge = Duration(DefaultDPoPMaxAge)
	}
}

func (d *DPoP) validate(at string) []error {
	var errs []error
	for j, a := range d.Algorithms {
		if !slices.Contains(DPoPAlgorithms, a) {
			errs = append(errs, fmt.Errorf("%s.algorithms[%d]: unsupported proof algorithm %q (want one of %s)", at, j, a, strings.Join(DPoPAlgorithms, ", ")))
		}
	}
	if d.Origin != "" {
		u, err := url.Parse(d.Origin)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("%s.origin: want scheme://host[:port], such as https://api.example.com", at))
		}
	}
	return errs
}

func (s *DPoPServer) setDefaults() {
	if s.Nonce != nil && s.Nonce.Lifetime == 0 {
		s.Nonce.Lifetime = Duration(DefaultDPoPNonceLifetime)
	}
	if s.ReplayStore != nil && s.ReplayStore.Timeout == 0 {
		s.ReplayStore.Timeout = Duration(DefaultReplayTimeout)
	}
}

func (s *DPoPServer) validate(at string) []error {
	var errs []error
	if n := s.Nonce; n != nil {
		if n.SecretFile == "" {
			errs = append(errs, fmt.Errorf("%s.nonce.secret_file: required", at))
		}
		if n.Lifetime.D() < time.Second {
			errs = append(errs, fmt.Errorf("%s.nonce.lifetime: must be at least 1s", at))
		}
	}
	if r := s.ReplayStore; r != nil {
		if _, port, ok := strings.Cut(r.Address, ":"); r.Address == "" || !ok || port == "" {
			errs = append(errs, fmt.Errorf("%s.replay_store.address: want host:port", at))
		}
		if r.DB < 0 {
			errs = append(errs, fmt.Errorf("%s.replay_store.db: must not be negative", at))
		}
	}
	return errs
}
