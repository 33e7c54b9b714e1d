package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate, key and client CA from files, re-reading them when
// their content changes, so a rotated certificate (cert-manager, a Kubernetes
// Secret) is picked up on the next handshake without a restart. A file that fails to load
// keeps the previous material.
type certReloader struct {
	certFile, keyFile, caFile string

	mu      sync.Mutex
	stamp   string
	cert    *tls.Certificate
	clients *x509.CertPool
	checked time.Time
}

func newTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := r.current()
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*cert}
		if pool != nil {
			c.ClientCAs = pool
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base, nil
}

// current returns the material, reloading it at most once a second when files changed.
func (r *certReloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > time.Second {
		r.checked = time.Now()
		if s := r.stampNow(); s != r.stamp {
			if err := r.loadLocked(); err == nil {
				r.stamp = s
			}
		}
	}
	return r.cert, r.clients
}

func (r *certReloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamp = r.stampNow()
	return r.loadLocked()
}

func (r *certReloader) loadLocked() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	var pool *x509.CertPool
	if r.caFile != "" {
		pem, err := os.ReadFile(r.caFile)
		if err != nil {
			return fmt.Errorf("tls: client_ca_file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("tls: client_ca_file: no certificates found")
		}
	}
	r.cert, r.clients = &cert, pool
	return nil
}

// stampNow digests the files' content: robust to symlink swaps (Kubernetes Secrets) and to
// rewrites within one mtime tick; they are small and read at most once a second.
func (r *certReloader) stampNow() string {
	h := sha256.New()
	for _, f := range []string{r.certFile, r.keyFile, r.caFile} {
		if f == "" {
			continue
		}
		b, _ := os.ReadFile(f)
		h.Write(b)
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}
