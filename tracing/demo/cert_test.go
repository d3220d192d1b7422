package demo

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteSelfSignedCert: the pair loads as a TLS certificate for
// 127.0.0.1 with the asked validity; bad arguments are refused by name.
func TestWriteSelfSignedCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	certFile, keyFile, err := WriteSelfSignedCert(dir, "front-proxy", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "front-proxy.crt") || keyFile != filepath.Join(dir, "front-proxy.key") {
		t.Fatalf("files %s, %s", certFile, keyFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if left := time.Until(pair.Leaf.NotAfter); left < 29*24*time.Hour || left > 30*24*time.Hour {
		t.Errorf("NotAfter %v is not 30 days from now", pair.Leaf.NotAfter)
	}
	for _, c := range []struct {
		name  string
		valid time.Duration
		want  string
	}{
		{"../x", time.Hour, `certificate name "../x"`},
		{"", time.Hour, `certificate name ""`},
		{"ok", 0, "certificate validity 0s"},
	} {
		if _, _, err := WriteSelfSignedCert(dir, c.name, c.valid); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WriteSelfSignedCert(%q, %v) = %v, want an error naming %s", c.name, c.valid, err, c.want)
		}
	}
}
