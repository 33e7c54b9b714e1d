package envoy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCertificateBoundTokens runs RFC 8705 certificate-bound tokens through a real Envoy
// that terminates TLS and asks for client certificates: once with the certificate sent to
// jwt-authz in the CheckRequest (include_peer_certificate: true), once in Envoy's
// x-forwarded-client-cert header (forward_client_cert_details: SANITIZE_SET), which
// jwt-authz is configured to trust; and that again with the in-process module, which reads
// the header as the server does. A bound token works only with its certificate.
func TestCertificateBoundTokens(t *testing.T) {
	ca := newCA(t, "ca")
	serverCert, serverKey := ca.issue(t, "envoy", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	otherCert, otherKey := ca.issue(t, "other", x509.ExtKeyUsageClientAuth)
	thumb := sha256.Sum256(readCert(t, clientCert).Raw)
	x5t := base64.RawURLEncoding.EncodeToString(thumb[:])

	xfccBinding := func(t *testing.T, root map[string]any, _ ports) {
		providers, err := list(root, "providers")
		if err != nil || len(providers) != 1 {
			t.Fatalf("jwt-authz.yaml: want 1 provider (%v)", err)
		}
		providers[0].(map[string]any)["certificate_binding"] = map[string]any{
			"required": true, "header": "x-forwarded-client-cert",
		}
	}
	sanitizeSet := func(hcm, _ map[string]any) {
		// Envoy replaces whatever XFCC the client sent with its own, or drops it.
		hcm["forward_client_cert_details"] = "SANITIZE_SET"
		hcm["set_current_client_cert_details"] = map[string]any{"cert": true, "uri": true}
	}
	for _, variant := range []struct {
		name      string
		editAuthz func(*testing.T, map[string]any, ports)
		editHCM   func(hcm map[string]any, extAuthz map[string]any)
		module    bool // Envoy runs the in-process module instead of ext_authz
	}{
		{
			name: "peer certificate in the CheckRequest",
			editHCM: func(_, extAuthz map[string]any) {
				extAuthz["include_peer_certificate"] = true
			},
		},
		{name: "x-forwarded-client-cert", editAuthz: xfccBinding, editHCM: sanitizeSet},
		{name: "x-forwarded-client-cert, in process", editAuthz: xfccBinding, editHCM: sanitizeSet, module: true},
		// The module reads the peer certificate's digest from Envoy's connection itself
		// (connection.sha256_peer_certificate_digest); nothing to configure.
		{name: "peer certificate, in process", editHCM: func(_, _ map[string]any) {}, module: true},
	} {
		t.Run(variant.name, func(t *testing.T) {
			start := startStack
			if variant.module {
				start = startModuleStack
			}
			s := start(t, stackOptions{
				editAuthz: variant.editAuthz,
				editEnvoy: func(t *testing.T, root map[string]any, _ ports) {
					h, err := hcm(root)
					if err != nil {
						t.Fatal(err)
					}
					var extAuthz map[string]any
					if !variant.module {
						f, err := extAuthzFilter(root)
						if err != nil {
							t.Fatal(err)
						}
						tc, err := dig(f, "typed_config")
						if err != nil {
							t.Fatal(err)
						}
						extAuthz = tc.(map[string]any)
					}
					variant.editHCM(h, extAuthz)
					listeners, _ := list(root, "static_resources", "listeners")
					chains, _ := list(listeners[0], "filter_chains")
					chains[0].(map[string]any)["transport_socket"] = map[string]any{
						"name": "envoy.transport_sockets.tls",
						"typed_config": map[string]any{
							"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
							// Optional, so a request without one reaches jwt-authz and is refused there.
							"require_client_certificate": false,
							"common_tls_context": map[string]any{
								"tls_certificates": []any{map[string]any{
									"certificate_chain": map[string]any{"filename": serverCert},
									"private_key":       map[string]any{"filename": serverKey},
								}},
								"validation_context": map[string]any{"trusted_ca": map[string]any{"filename": ca.certFile}},
							},
						},
					}
				},
			})
			https := func(certFile, keyFile string) *http.Client {
				tc := &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"}
				if certFile != "" {
					c, err := tls.LoadX509KeyPair(certFile, keyFile)
					if err != nil {
						t.Fatal(err)
					}
					tc.Certificates = []tls.Certificate{c}
				}
				return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
			}
			bound := s.claims()
			bound["cnf"] = map[string]any{"x5t#S256": x5t}
			boundToken, plainToken := mint(t, s.key, "", bound), mint(t, s.key, "", s.claims())
			spoofed := "Hash=" + hex.EncodeToString(thumb[:])

			wantPlain := "allowed"
			if variant.editAuthz != nil { // certificate_binding.required
				wantPlain = "token_not_bound"
			}
			for _, tc := range []struct {
				name   string
				client *http.Client
				token  string
				xfcc   string // sent by the client, which Envoy must not pass on
				want   string // the reason, or "allowed" for the upstream's 200
			}{
				{"bound token, its certificate", https(clientCert, clientKey), boundToken, "", "allowed"},
				{"bound token, another certificate", https(otherCert, otherKey), boundToken, "", "certificate_mismatch"},
				{"bound token, no certificate", https("", ""), boundToken, "", "certificate_missing"},
				{"bound token, no certificate, a forged x-forwarded-client-cert", https("", ""), boundToken, spoofed, "certificate_missing"},
				{"bound token, another certificate, a forged x-forwarded-client-cert", https(otherCert, otherKey), boundToken, spoofed, "certificate_mismatch"},
				{"unbound token, a certificate", https(clientCert, clientKey), plainToken, "", wantPlain},
			} {
				req, err := http.NewRequest("GET", "https://"+local(s.Listener)+"/api/things", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+tc.token)
				if tc.xfcc != "" {
					req.Header.Set("X-Forwarded-Client-Cert", tc.xfcc)
				}
				resp, err := tc.client.Do(req)
				if err != nil {
					t.Fatalf("%s: GET /api/things: %v", tc.name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r := reply{resp.StatusCode, resp.Header, body}
				if tc.want == "allowed" {
					r.upstream(t, 200)
					continue
				}
				var got struct{ Reason string }
				_ = json.Unmarshal(body, &got)
				if r.isEcho() || resp.StatusCode != 401 || got.Reason != tc.want {
					t.Errorf("%s: GET /api/things = %d %s, want 401 %s", tc.name, resp.StatusCode, clip(body), tc.want)
				}
				if www := resp.Header.Get("WWW-Authenticate"); !strings.Contains(www, `error="invalid_token"`) {
					t.Errorf("%s: WWW-Authenticate %q, want error=\"invalid_token\"", tc.name, www)
				}
			}
		})
	}
}
