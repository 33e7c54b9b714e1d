package envoy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestCertificateBoundTokens runs RFC 8705 certificate-bound tokens through a real Envoy
// that terminates TLS and asks for client certificates: once with the certificate sent to
// jwt-authz in the CheckRequest (include_peer_certificate: true), once in Envoy's
// x-forwarded-client-cert header (forward_client_cert_details: SANITIZE_SET), which
// jwt-authz is configured to trust; and that again with the in-process module, which reads
// the header as the server does, and with the module reading the connection's certificate,
// also for a token whose key it must fetch first. A bound token works only with its
// certificate.
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
	late := newLateJWKS(t)
	for _, variant := range []struct {
		name      string
		editAuthz func(*testing.T, map[string]any, ports)
		editHCM   func(hcm map[string]any, extAuthz map[string]any)
		module    bool // Envoy runs the in-process module instead of ext_authz
		required  bool // certificate_binding.required: an unbound token is refused
		// lateKeys: also bound tokens signed by keys published after Envoy started, whose
		// unknown kid sends the module's decision off the worker thread to refetch.
		lateKeys bool
	}{
		{
			name: "peer certificate in the CheckRequest",
			editHCM: func(_, extAuthz map[string]any) {
				extAuthz["include_peer_certificate"] = true
			},
		},
		{name: "x-forwarded-client-cert", editAuthz: xfccBinding, editHCM: sanitizeSet, required: true},
		{name: "x-forwarded-client-cert, in process", editAuthz: xfccBinding, editHCM: sanitizeSet, module: true, required: true},
		// The module reads the peer certificate's digest from Envoy's connection itself
		// (connection.sha256_peer_certificate_digest); nothing to configure.
		{name: "peer certificate, in process", editAuthz: late.addSource, editHCM: func(_, _ map[string]any) {}, module: true, lateKeys: true},
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
			// The issuer's kid, as demo-issuer names its key: the lateKeys variant has more
			// than one key, where a token without a kid matches none.
			tp, err := (&jose.JSONWebKey{Key: s.key.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			kid := base64.RawURLEncoding.EncodeToString(tp)
			boundToken, plainToken := mint(t, s.key, kid, bound), mint(t, s.key, kid, s.claims())
			spoofed := "Hash=" + hex.EncodeToString(thumb[:])

			wantPlain := "allowed"
			if variant.required {
				wantPlain = "token_not_bound"
			}
			// try sends token (and a client's x-forwarded-client-cert, which Envoy must not
			// pass on) and wants the reason, or "allowed" for the upstream's 200.
			try := func(name string, client *http.Client, token, xfcc, want string) {
				t.Helper()
				req, err := http.NewRequest("GET", "https://"+local(s.Listener)+"/api/things", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+token)
				if xfcc != "" {
					req.Header.Set("X-Forwarded-Client-Cert", xfcc)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s: GET /api/things: %v", name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r := reply{resp.StatusCode, resp.Header, body}
				if want == "allowed" {
					r.upstream(t, 200)
					return
				}
				var got struct{ Reason string }
				_ = json.Unmarshal(body, &got)
				if r.isEcho() || resp.StatusCode != 401 || got.Reason != want {
					t.Errorf("%s: GET /api/things = %d %s, want 401 %s", name, resp.StatusCode, clip(body), want)
				}
				if www := resp.Header.Get("WWW-Authenticate"); !strings.Contains(www, `error="invalid_token"`) {
					t.Errorf("%s: WWW-Authenticate %q, want error=\"invalid_token\"", name, www)
				}
			}
			try("bound token, its certificate", https(clientCert, clientKey), boundToken, "", "allowed")
			try("bound token, another certificate", https(otherCert, otherKey), boundToken, "", "certificate_mismatch")
			try("bound token, no certificate", https("", ""), boundToken, "", "certificate_missing")
			try("bound token, no certificate, a forged x-forwarded-client-cert", https("", ""), boundToken, spoofed, "certificate_missing")
			try("bound token, another certificate, a forged x-forwarded-client-cert", https(otherCert, otherKey), boundToken, spoofed, "certificate_mismatch")
			try("unbound token, a certificate", https(clientCert, clientKey), plainToken, "", wantPlain)
			if !variant.lateKeys {
				return
			}
			// Each token is signed by a key published only now: the module meets an unknown
			// kid, so its decision goes off Envoy's worker thread, waits for the refetch and
			// must still compare the connection's certificate (read before it left).
			for i, tc := range []struct{ name, certFile, keyFile, want string }{
				{"its certificate", clientCert, clientKey, "allowed"},
				{"another certificate", otherCert, otherKey, "certificate_mismatch"},
				{"no certificate", "", "", "certificate_missing"},
			} {
				time.Sleep(2 * lateCooldown) // past the last refetch's cooldown
				kid := fmt.Sprintf("late-%d", i)
				key := late.publish(t, kid)
				fetches := late.fetches()
				try("bound token, unknown kid, "+tc.name, https(tc.certFile, tc.keyFile), mint(t, key, kid, bound), "", tc.want)
				if late.fetches() == fetches {
					t.Errorf("bound token, unknown kid %s, %s: the module did not refetch its keys", kid, tc.name)
				}
			}
		})
	}
}

// lateJWKS is a JWKS endpoint a test publishes keys on while Envoy runs, counting its fetches.
type lateJWKS struct {
	srv *httptest.Server
	mu  sync.Mutex
	set jose.JSONWebKeySet
	n   int
}

func newLateJWKS(t *testing.T) *lateJWKS {
	l := &lateJWKS{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.n++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l.set)
	}))
	t.Cleanup(l.srv.Close)
	l.publish(t, "late-start") // a source serving no key at all would be an error
	return l
}

// lateCooldown is the provider's unknown-kid cooldown with a lateJWKS: a kid met sooner
// after the last refetch is refused (unknown_key) without one.
const lateCooldown = 50 * time.Millisecond

// addSource adds the endpoint to the first provider's keys, beside the issuer's, with a
// short unknown-kid cooldown so that each new kid is fetched at once.
func (l *lateJWKS) addSource(t *testing.T, root map[string]any, _ ports) {
	providers, err := list(root, "providers")
	if err != nil || len(providers) == 0 {
		t.Fatalf("jwt-authz.yaml: no providers (%v)", err)
	}
	p := providers[0].(map[string]any)
	p["keys"] = append(p["keys"].([]any), map[string]any{"jwks_uri": l.srv.URL, "unknown_kid_cooldown": lateCooldown.String()})
}

// publish makes a P-256 key, publishes its public half as kid and returns it.
func (l *lateJWKS) publish(t *testing.T, kid string) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set.Keys = append(l.set.Keys, jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"})
	return key
}

func (l *lateJWKS) fetches() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
