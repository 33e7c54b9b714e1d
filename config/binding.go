package config

import (
	"fmt"
)

// CertificateBinding configures RFC 8705 certificate-bound access tokens for a provider.
type CertificateBinding struct {
	// Required refuses the provider's tokens that carry no cnf.x5t#S256.
	Required bool `yaml:"required"`
	// Header names a request header that a trusted proxy sets to the client certificate,
	// for when TLS ends before the Envoy that asks jwt-authz. Empty: the peer certificate
	// Envoy sends in the CheckRequest (ext_authz include_peer_certificate: true).
	Header string `yaml:"header"`
	// HeaderFormat is how Header carries the certificate: xfcc (default; Envoy's
	// x-forwarded-client-cert with exactly one element, its Hash or Cert) or pem (a
	// URL-encoded PEM certificate, as nginx's $ssl_client_escaped_cert).
	HeaderFormat string `yaml:"header_format"`
}

// CertificateHeaderFormats are the values of certificate_binding.header_format.
var CertificateHeaderFormats = []string{"xfcc", "pem"}

func (b *CertificateBinding) validate(at string) []error {
	var errs []error
	if b.Header != "" && !headerName.MatchString(b.Header) {
		errs = append(errs, fmt.Errorf("%s.header: %q is not a valid header name", at, b.Header))
	}
	if b.Header == "" && b.HeaderFormat != "" {
		errs = append(errs, fmt.Errorf("%s.header_format: only applies with header", at))
	}
	if b.HeaderFormat != "" && b.HeaderFormat != "xfcc" && b.HeaderFormat != "pem" {
		errs = append(errs, fmt.Errorf("%s.header_format: must be xfcc or pem, got %q", at, b.HeaderFormat))
	}
	return errs
}
