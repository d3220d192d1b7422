package smuggling

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// readHeaderTimeout is the listeners' read_header_timeout: short, so the
// slowloris test ends in seconds.
const readHeaderTimeout = 2 * time.Second

// newTarget makes the origin (which answers 101 to an Upgrade, so a
// tunnel would show) and the canary a target routes to and must avoid.
func newTarget(t testing.TB, name string) (*target, *e2etest.Cert) {
	t.Helper()
	tg := &target{name: name, origin: startOrigin(t, true), canary: startCanary(t)}
	cert := e2etest.SelfSignedCert(t, t.TempDir())
	tg.pool = cert.Pool
	tg.plain, tg.tls = e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	tg.h2c = tg.plain
	return tg, cert
}

// startHopwatch runs the real hopwatch-proxy with a plaintext and a TLS
// listener, each with a deny route (/admin → 403) before a route to the
// origin.
func startHopwatch(t testing.TB) (*target, *e2etest.Proxy) {
	t.Helper()
	tg, cert := newTarget(t, "hopwatch")
	vhosts := fmt.Sprintf(`    limits: {read_header_timeout: %s}
    access_log: []
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {prefix: /admin}
            direct_response: {status: 403, body: "denied\n"}
          - match: {prefix: /}
            route: {cluster: origin, timeout: 2s}
`, readHeaderTimeout)
	config := fmt.Sprintf(`admin: {address: %s}
listeners:
  - name: plain
    address: %s
    stat_prefix: plain
%s  - name: tls
    address: %s
    stat_prefix: tls
    tls: {cert_file: %s, key_file: %s}
%sclusters:
  - name: origin
    connect_timeout: 1s
    endpoints: [{address: %s}]
`, e2etest.FreeAddr(t), tg.plain, vhosts, tg.tls, cert.CertFile, cert.KeyFile, vhosts, tg.origin.addr())
	return tg, e2etest.StartProxy(t, config)
}

// peerBinary finds nginx or haproxy, which Debian installs in /usr/sbin
// (not on every PATH). A missing peer fails the test: `make test-deps`
// installs both.
func peerBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	t.Fatalf("%s is not installed: run `make test-deps` (bench/proxy/install-peers.sh %s)", name, name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startNginx runs nginx as a peer: the same listeners (h2c needs a
// listener of its own in nginx), the same deny location, the same origin.
func startNginx(t testing.TB) *target {
	t.Helper()
	tg, cert := newTarget(t, "nginx")
	tg.h2c = e2etest.FreeAddr(t)
	dir := t.TempDir()
	locations := fmt.Sprintf(`
        location /admin { return 403; }
        location / {
            proxy_pass http://%s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 2s;
        }`, tg.origin.addr())
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    client_header_timeout %[2]ds;
    server {
        listen %[3]s;
        listen %[4]s ssl http2;
        ssl_certificate %[5]s;
        ssl_certificate_key %[6]s;
%[7]s
    }
    server {
        listen %[8]s http2;
%[7]s
    }
}
`, dir, int(readHeaderTimeout.Seconds()), tg.plain, tg.tls, cert.CertFile, cert.KeyFile, locations, tg.h2c)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e2etest.StartProcess(t, "nginx", nil, peerBinary(t, "nginx"), "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", path)
	waitListening(t, p, tg.plain, tg.tls, tg.h2c)
	return tg
}

// startHAProxy runs HAProxy as a peer. A plaintext HTTP frontend takes
// HTTP/2 with prior knowledge by itself, so h2c shares the plain bind.
func startHAProxy(t testing.TB) *target {
	t.Helper()
	tg, cert := newTarget(t, "haproxy")
	dir := t.TempDir()
	conf := fmt.Sprintf(`global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 2s
    timeout http-request %ds
frontend fe
    bind %s
    bind %s ssl crt %s alpn h2,http/1.1
    http-request deny deny_status 403 if { path_beg /admin }
    default_backend be
backend be
    server origin %s
`, int(readHeaderTimeout.Seconds()), tg.plain, tg.tls, cert.BundleFile, tg.origin.addr())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e2etest.StartProcess(t, "haproxy", nil, peerBinary(t, "haproxy"), "-db", "-f", path)
	waitListening(t, p, tg.plain, tg.tls)
	return tg
}

func waitListening(t testing.TB, p *e2etest.Process, addrs ...string) {
	t.Helper()
	p.WaitFor(t, "listeners "+strings.Join(addrs, ", "), 10*time.Second, func() error {
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
}
