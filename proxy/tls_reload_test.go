package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"
)

var tlsReloadConfig = testHead + listenersHead("tls", "tls_http", `tls: {cert_file: "{{CERT}}", key_file: "{{KEY}}"}`, `access_log: []`) + ` [{match: {prefix: /}, direct_response: {status: 200, body: "ok"}}]
clusters: []
`

// TestTLSCertificateRotatedOnReload: a reload re-reads the listener's
// certificate and key even when their paths did not change, so that a
// rotated certificate is presented to new connections; a reload that finds
// an unreadable certificate keeps the previous one.
func TestTLSCertificateRotatedOnReload(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _, first := selfSigned(t, t.TempDir())
	h := startProxy(t, tlsReloadConfig, "{{CERT}}", certFile, "{{KEY}}", keyFile)
	addr := h.srv.ListenerAddr("tls").String()

	// presented returns the leaf certificate a new TLS connection sees.
	presented := func() []byte {
		t.Helper()
		d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test compares the presented certificate itself
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw
	}
	if !bytes.Equal(presented(), first.Certificate[0]) {
		t.Fatal("the listener does not present the configured certificate")
	}
	// Envoy's per-certificate expiry gauge follows the certificate served.
	expiry := "listener." + strings.ReplaceAll(addr, ":", "_") + ".ssl.certificate." + certFile + ".expiration_unix_time_seconds"
	wantExpiry := func(c tls.Certificate, when string) {
		t.Helper()
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if got, want := h.stat(expiry), uint64(leaf.NotAfter.Unix()); got != want {
			t.Fatalf("%s: %s = %d, want the served certificate's NotAfter %d", when, expiry, got, want)
		}
		if got, want := h.stat("server.days_until_first_cert_expiring"), uint64(time.Until(leaf.NotAfter).Hours()/24); got != want {
			t.Fatalf("%s: server.days_until_first_cert_expiring = %d, want %d", when, got, want)
		}
	}
	wantExpiry(first, "at start")

	// Rotate: new files under the same paths, then reload. The new
	// certificate's NotAfter is a whole second later, so the gauge shows
	// which one it reports.
	time.Sleep(1100 * time.Millisecond)
	newCert, newKey, _, second := selfSigned(t, t.TempDir())
	for src, dst := range map[string]string{newCert: certFile, newKey: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.srv.Reload(context.Background()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := presented(); !bytes.Equal(got, second.Certificate[0]) {
		leaf, _ := x509.ParseCertificate(got)
		t.Fatalf("after rotation and reload the listener presents the old certificate (serial %v)", leaf.SerialNumber)
	}
	wantExpiry(second, "after rotation")

	// A broken certificate file: the reload keeps the working certificate.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = h.srv.Reload(context.Background())
	if !bytes.Equal(presented(), second.Certificate[0]) {
		t.Fatal("a reload with an unreadable certificate replaced the working one")
	}
	wantExpiry(second, "after a reload that could not read the certificate")
}
