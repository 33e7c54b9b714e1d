package envoy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestTLS runs jwt-authz's gRPC listener with TLS and client certificates (tls: cert_file,
// key_file, client_ca_file) behind an Envoy whose authz cluster speaks TLS to it
// (UpstreamTlsContext: the CA to trust, the name to expect, ALPN h2, Envoy's client
// certificate). The certificates are made here, by a throwaway CA.
func TestTLS(t *testing.T) {
	ca := newCA(t, "ca")
	serverCert, serverKey := ca.issue(t, "jwt-authz", x509.ExtKeyUsageServerAuth)
	envoyCert, envoyKey := ca.issue(t, "envoy", x509.ExtKeyUsageClientAuth)
	s := startStack(t, stackOptions{
		editAuthz: func(t *testing.T, root map[string]any, _ ports) {
			root["tls"] = map[string]any{"cert_file": serverCert, "key_file": serverKey, "client_ca_file": ca.certFile}
		},
		editEnvoy: upstreamTLS(ca.certFile, envoyCert, envoyKey),
	})
	// startStack returned once Envoy's gRPC health checks of jwt-authz passed: over mTLS.
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	alice := s.login(t, "alice", "alice-password")

	t.Run("mTLS: login then GET /api/things is 200", func(t *testing.T) {
		e := s.do(t, "GET", "/api/things", bearer(alice), "").upstream(t, 200)
		if got := e.values("x-jwt-sub"); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("GET /api/things (alice): upstream saw x-jwt-sub %q, want [alice]", got)
		}
		s.do(t, "GET", "/api/things", nil, "").challenge(t, 401, "")
	})

	// jwt-authz refuses the handshake, so Envoy can neither check health nor ask: its
	// status_on_error (503) answers, never the upstream.
	other := newCA(t, "other-ca")
	otherCert, otherKey := other.issue(t, "envoy", x509.ExtKeyUsageClientAuth)
	for _, tc := range []struct {
		name, envoy string
		cert, key   string
	}{
		{"no client certificate", "envoy-no-client-cert", "", ""},
		{"a client certificate from another CA", "envoy-other-ca", otherCert, otherKey},
	} {
		t.Run(tc.name+": 503, never 200", func(t *testing.T) {
			p := freePorts(t)
			e := s.frontedBy(t, tc.envoy, p.Listener, p.Admin, s.envoyConfig(t, p.Listener, p.Admin, upstreamTLS(ca.certFile, tc.cert, tc.key)))
			e.envoy.WaitFor(t, "a failed health check of jwt-authz", func() error {
				if envoyCounter(t, e, "cluster.authz.health_check.failure") == 0 {
					return errors.New("none yet")
				}
				return nil
			})
			for _, tc := range []struct {
				path string
				h    http.Header
			}{{"/api/things", bearer(alice)}, {"/public/x", nil}, {"/api/things", bearer(alice)}} {
				if r := e.do(t, "GET", tc.path, tc.h, ""); r.status != 503 || r.isEcho() {
					t.Errorf("GET %s through an Envoy jwt-authz refuses = %d %s, want 503", tc.path, r.status, clip(r.body))
				}
			}
			if n := envoyCounter(t, e, "cluster.authz.health_check.success"); n != 0 {
				t.Errorf("cluster.authz.health_check.success = %d, want 0: jwt-authz must refuse the handshake", n)
			}
			t.Logf("Envoy:\n%s", envoyStats(t, e, "ext_authz.jwt.(ok|error)|cluster.authz.(health_check.(failure|success)|ssl.(handshake|connection_error|fail_verify_error))"))
		})
	}

	t.Run("a rotated server certificate is served on new connections", func(t *testing.T) {
		cert, key := ca.issue(t, "jwt-authz-rotated", x509.ExtKeyUsageServerAuth)
		want := readCert(t, cert).SerialNumber
		// The key first: until both files match, jwt-authz keeps the pair it has.
		for _, f := range [][2]string{{key, serverKey}, {cert, serverCert}} {
			b, err := os.ReadFile(f[0])
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, f[1], b)
		}
		client, err := tls.LoadX509KeyPair(envoyCert, envoyKey)
		if err != nil {
			t.Fatal(err)
		}
		s.authz.WaitFor(t, "the rotated certificate served", func() error {
			c, err := tls.Dial("tcp", local(s.Authz), &tls.Config{RootCAs: ca.pool(), ServerName: "localhost",
				Certificates: []tls.Certificate{client}, NextProtos: []string{"h2"}})
			if err != nil {
				return err
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(want) != 0 {
				return fmt.Errorf("serial %x, want %x", got, want)
			}
			return nil
		})
		// A new Envoy makes new connections, which get the new certificate and verify it.
		p := freePorts(t)
		e := s.frontedBy(t, "envoy-rotated", p.Listener, p.Admin, s.envoyConfig(t, p.Listener, p.Admin, upstreamTLS(ca.certFile, envoyCert, envoyKey)))
		e.waitHealthy(t, "authz", s.Authz)
		e.do(t, "GET", "/api/things", bearer(e.login(t, "admin", "admin-password")), "").upstream(t, 200)
		// The first Envoy still works, on its old connection or a new one.
		s.do(t, "GET", "/api/things", bearer(alice), "").upstream(t, 200)
	})
}

// upstreamTLS is an edit of envoy.yaml: the authz cluster speaks TLS to jwt-authz, trusts
// caFile, expects the name localhost and ALPN h2 (gRPC), and presents certFile and keyFile
// as its client certificate, or none when certFile is "".
func upstreamTLS(caFile, certFile, keyFile string) func(*testing.T, map[string]any, ports) {
	return func(t *testing.T, root map[string]any, _ ports) {
		common := map[string]any{
			"alpn_protocols": []any{"h2"},
			"validation_context": map[string]any{
				"trusted_ca": map[string]any{"filename": caFile},
				"match_typed_subject_alt_names": []any{
					map[string]any{"san_type": "DNS", "matcher": map[string]any{"exact": "localhost"}},
				},
			},
		}
		if certFile != "" {
			common["tls_certificates"] = []any{map[string]any{
				"certificate_chain": map[string]any{"filename": certFile},
				"private_key":       map[string]any{"filename": keyFile},
			}}
		}
		clusterNamed(t, root, "authz")["transport_socket"] = map[string]any{
			"name": "envoy.transport_sockets.tls",
			"typed_config": map[string]any{
				"@type":              "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
				"sni":                "localhost",
				"common_tls_context": common,
			},
		}
	}
}

// testCA is a throwaway certificate authority whose files live in the test's temp dir.
type testCA struct {
	dir      string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	certFile string
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := &testCA{dir: t.TempDir()}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "jwt-authz test " + name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	ca.certFile, _ = ca.write(t, name, tmpl, nil)
	ca.cert = readCert(t, ca.certFile)
	return ca
}

// issue makes a certificate for name, for a server (localhost and 127.0.0.1) or a client,
// signed by the CA, and returns its certificate and key files.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	return ca.write(t, name, tmpl, ca)
}

// write fills in tmpl's serial and validity, signs it with parent (nil: itself) and writes
// name.crt and name.key (PKCS#8).
func (ca *testCA) write(t *testing.T, name string, tmpl *x509.Certificate, parent *testCA) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64)); err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	} else {
		ca.key = key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	return certFile, keyFile
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
