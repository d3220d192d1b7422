package e2etest

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/tracing/demo"
)

// Cert is a self-signed certificate for 127.0.0.1, ::1 and localhost,
// written to files for a proxy under test (hopwatch-proxy, nginx, HAProxy).
type Cert struct {
	// CertFile and KeyFile are the PEM certificate and its PKCS#8 key.
	CertFile, KeyFile string
	// BundleFile holds the certificate followed by the key, the single
	// file HAProxy's "crt" takes.
	BundleFile string
	// Pool trusts the certificate, for clients' RootCAs.
	Pool *x509.CertPool
}

// SelfSignedCert writes a fresh self-signed certificate into dir, valid
// from an hour ago for a day.
func SelfSignedCert(t testing.TB, dir string) *Cert {
	t.Helper()
	certPEM, keyPEM, err := demo.SelfSignedPEM("hopwatch e2e", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{
		CertFile:   filepath.Join(dir, "cert.pem"),
		KeyFile:    filepath.Join(dir, "key.pem"),
		BundleFile: filepath.Join(dir, "bundle.pem"),
		Pool:       x509.NewCertPool(),
	}
	for path, b := range map[string][]byte{c.CertFile: certPEM, c.KeyFile: keyPEM, c.BundleFile: append(append([]byte{}, certPEM...), keyPEM...)} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.Pool.AppendCertsFromPEM(certPEM)
	return c
}
