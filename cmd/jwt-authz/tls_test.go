package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TestTLS: the gRPC listener with TLS and a required client certificate; a client without
// one is refused; a certificate rotated on disk is served without a restart.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "test-ca")
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", ca.der)
	ca.issue(t, dir, "server", "server-1", true)
	ca.issue(t, dir, "client", "envoy", false)

	idp := newIdP(t)
	cfg := validConfig(idp.srv.URL, "/api") + `tls:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
`
	cfgPath := filepath.Join(dir, "config.yaml")
	writeFile(t, cfgPath, cfg)
	srv := startServer(t, cfgPath)
	waitReady(t, srv.httpURL)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	clientCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	token := idp.sign(t, map[string]any{"sub": "alice"})

	mtls := dialTLS(t, srv.grpcAddr, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}})
	if code := checkCode(t, authv3.NewAuthorizationClient(mtls), "/api/x", token); code != 0 {
		t.Fatalf("Check over mTLS status = %d, want 0", code)
	}

	noCert := dialTLS(t, srv.grpcAddr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if _, err := authv3.NewAuthorizationClient(noCert).Check(context.Background(), &authv3.CheckRequest{}); err == nil {
		t.Fatal("Check without a client certificate succeeded, want the handshake refused")
	}

	// Rotate the server certificate on disk; new handshakes get the new one.
	ca.issue(t, dir, "server", "server-2", true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cn := serverCN(t, srv.grpcAddr, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}})
		if cn == "server-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server certificate CN = %q after rotation, want server-2", cn)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.cancel()
	if err := srv.wait(); err != nil {
		t.Fatal(err)
	}
}

func dialTLS(t *testing.T, addr string, tc *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func serverCN(t *testing.T, addr string, tc *tls.Config) string {
	t.Helper()
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{key: key, cert: cert, der: der}
}

// issue writes name.crt and name.key (atomically, as a Secret update would) for cn.
func (ca *testCA) issue(t *testing.T, dir, name, cn string, server bool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, name+".key"), "PRIVATE KEY", kder)
	writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	var b strings.Builder
	pem.Encode(&b, &pem.Block{Type: typ, Bytes: der})
	writeFile(t, path, b.String())
}
