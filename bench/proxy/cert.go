package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hopwatch/hopwatch/tracing/demo"
)

// benchCert is the self-signed certificate nginx and hopwatch-proxy both
// serve on their TLS listeners, so that both pay for the same key type.
type benchCert struct {
	certFile, keyFile string
	// pool trusts the certificate, for the harness's readiness check.
	pool *x509.CertPool
}

// newBenchCert writes a fresh ECDSA P-256 certificate for 127.0.0.1 into
// dir (tracing/demo.SelfSignedPEM, the dev environment's kind).
func newBenchCert(dir string) (*benchCert, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	certPEM, keyPEM, err := demo.SelfSignedPEM("hopwatch bench", 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	c := &benchCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	// nginx's workers run as nobody and read the key only at start-up,
	// through the master, which runs as the harness's user; 0600 is enough.
	if err := os.WriteFile(c.certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if err := os.WriteFile(c.keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	c.pool.AppendCertsFromPEM(certPEM)
	return c, nil
}
