package config

import (
	"strings"
	"testing"
)

func TestCertificateBinding(t *testing.T) {
	parse := func(binding string) (*Config, error) {
		return Parse([]byte(strings.Replace(minimal, "  clock_skew: 30s", "  clock_skew: 30s\n  certificate_binding: "+binding, 1)), t.TempDir())
	}
	c, err := parse(`{required: true, header: X-Forwarded-Client-Cert}`)
	if err != nil {
		t.Fatalf("Parse(certificate_binding) = %v", err)
	}
	if got, want := *c.Providers[0].CertificateBinding, (CertificateBinding{Required: true, Header: "x-forwarded-client-cert", HeaderFormat: "xfcc"}); got != want {
		t.Errorf("certificate_binding = %+v, want %+v (lower-case header, xfcc by default)", got, want)
	}
	const at = "providers[0].certificate_binding"
	for _, tc := range []struct{ binding, want string }{
		{`{header: "x client cert"}`, at + ".header"},
		{`{header_format: pem}`, at + ".header_format"},
		{`{header: x-client-cert, header_format: der}`, at + ".header_format"},
		{`{require: true}`, at + ".require"},
	} {
		if _, err := parse(tc.binding); err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("Parse(certificate_binding: %s) = %v, want an error naming %s", tc.binding, err, tc.want)
		}
	}
}

// TestCertificateBindingMetadata: a provider that requires bound tokens says so in its
// RFC 9728 document.
func TestCertificateBindingMetadata(t *testing.T) {
	text := "http_address: 127.0.0.1:0\n" + strings.Replace(minimal, "  clock_skew: 30s", `  clock_skew: 30s
  certificate_binding: {required: true}
  resource_metadata: {resource: "https://api.example.com", serve: true}`, 1)
	c, err := Parse([]byte(text), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Providers[0].ResourceMetadata.TLSClientCertificateBoundAccessTokens {
		t.Error("resource_metadata.tls_client_certificate_bound_access_tokens = false with certificate_binding.required, want true")
	}
}
