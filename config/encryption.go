package config

import (
	"fmt"
	"slices"
	"strings"
)

// Encryption configures nested JWTs for a provider (RFC 7519 §5.2, RFC 7516): a compact
// JWE whose plaintext is the provider's signed JWT. The algorithms are allowlists: a token
// naming any other is refused before any key is used.
type Encryption struct {
	// Required refuses the provider's tokens that arrive unencrypted.
	Required bool `yaml:"required"`
	// KeyAlgorithms are the accepted JWE alg values (key management).
	KeyAlgorithms []string `yaml:"key_algorithms"`
	// ContentEncryptions are the accepted JWE enc values.
	ContentEncryptions []string `yaml:"content_encryptions"`
	// Keys are the decryption keys, from files only: jwks_file (private JWKs), pem_file (a
	// PKCS#8, PKCS#1 or SEC 1 private key) or hmac_secret_file (the shared key of dir and
	// A*KW), each watched and reloaded like verification key files.
	Keys []Key `yaml:"keys"`
}

// SupportedKeyAlgorithms are the JWE alg values a provider may allow. RSA1_5 is not one
// (RFC 8725 §3.2: padding oracles).
var SupportedKeyAlgorithms = []string{
	"RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW",
	"A128KW", "A192KW", "A256KW", "dir",
}

// SupportedContentEncryptions are the JWE enc values a provider may allow.
var SupportedContentEncryptions = []string{
	"A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512",
}

func (e *Encryption) validate(at string) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if len(e.KeyAlgorithms) == 0 {
		bad(at+".key_algorithms", "at least one is required (one of %s)", strings.Join(SupportedKeyAlgorithms, ", "))
	}
	for j, a := range e.KeyAlgorithms {
		if !slices.Contains(SupportedKeyAlgorithms, a) {
			bad(fmt.Sprintf("%s.key_algorithms[%d]", at, j), "unsupported key management algorithm %q (want one of %s)", a, strings.Join(SupportedKeyAlgorithms, ", "))
		}
	}
	if len(e.ContentEncryptions) == 0 {
		bad(at+".content_encryptions", "at least one is required (one of %s)", strings.Join(SupportedContentEncryptions, ", "))
	}
	for j, a := range e.ContentEncryptions {
		if !slices.Contains(SupportedContentEncryptions, a) {
			bad(fmt.Sprintf("%s.content_encryptions[%d]", at, j), "unsupported content encryption %q (want one of %s)", a, strings.Join(SupportedContentEncryptions, ", "))
		}
	}
	if len(e.Keys) == 0 {
		bad(at+".keys", "at least one decryption key file is required")
	}
	for j, k := range e.Keys {
		kat := fmt.Sprintf("%s.keys[%d]", at, j)
		if k.JWKSURI != "" || k.Discovery {
			bad(kat, "decryption keys are private: only jwks_file, pem_file and hmac_secret_file")
			continue
		}
		errs = append(errs, k.validate(kat)...)
	}
	return errs
}
