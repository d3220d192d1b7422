package cluster

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/config"
)

// upstream is a loopback test server that records what it saw.
type upstream struct {
	srv      *httptest.Server
	newConns atomic.Int64
	mu       sync.Mutex
	protos   []int    // r.ProtoMajor per request
	sni      []string // r.TLS.ServerName per request
	acceptEn []string // Accept-Encoding per request
}

func newUpstream(t *testing.T, tlsMode string) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.protos = append(u.protos, r.ProtoMajor)
		u.acceptEn = append(u.acceptEn, r.Header.Get("Accept-Encoding"))
		if r.TLS != nil {
			u.sni = append(u.sni, r.TLS.ServerName)
		}
		u.mu.Unlock()
		io.WriteString(w, "hello from "+r.Proto)
	}))
	// Handshake failures are the point of some tests; keep them out of the log.
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.newConns.Add(1)
		}
	}
	switch tlsMode {
	case "":
		u.srv.Start()
	case "h1":
		u.srv.StartTLS()
	case "h2":
		u.srv.EnableHTTP2 = true
		u.srv.StartTLS()
	}
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) addr() string { return u.srv.Listener.Addr().String() }

func (u *upstream) seen() (protos []int, sni, acceptEncoding []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int(nil), u.protos...), append([]string(nil), u.sni...), append([]string(nil), u.acceptEn...)
}

// writeCA writes the test server's certificate as a PEM CA file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// roundTrip sends one GET through the cluster to a picked host and reads
// the whole body, so that the connection returns to the pool.
func roundTrip(t *testing.T, c *Cluster) (*http.Response, string, error) {
	t.Helper()
	h := c.Pick(nil)
	if h == nil {
		t.Fatal("no host")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Scheme()+"://"+h.Address()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.BeginRequest()
	defer h.EndRequest()
	resp, err := c.Transport().RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func TestTransportHTTP1KeepAlive(t *testing.T) {
	// The proxy must never route upstream traffic through an environment proxy.
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	u := newUpstream(t, "")
	m := newTestManager(t, Options{}, config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: u.addr()}}})
	c := m.Get("c")
	if c.Scheme() != "http" {
		t.Fatalf("Scheme = %q, want http", c.Scheme())
	}
	for i := range 5 {
		resp, body, err := roundTrip(t, c)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.ProtoMajor != 1 || body != "hello from HTTP/1.1" {
			t.Errorf("request %d: proto %s body %q", i, resp.Proto, body)
		}
	}
	if n := u.newConns.Load(); n != 1 {
		t.Errorf("5 sequential requests opened %d connections, want 1 reused keep-alive connection", n)
	}
	_, _, acceptEncoding := u.seen()
	for _, ae := range acceptEncoding {
		if ae != "" {
			t.Errorf("transport added Accept-Encoding %q; a proxy must not", ae)
		}
	}
}

func TestTransportH2CPriorKnowledge(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	var seen atomic.Int64
	var newConns atomic.Int64
	srv := &http.Server{
		Protocols: &protos,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Store(int64(r.ProtoMajor))
			io.WriteString(w, r.Proto)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				newConns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	m := newTestManager(t, Options{}, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []config.Endpoint{{Address: ln.Addr().String()}}})
	c := m.Get("c")
	for i := range 3 {
		resp, body, err := roundTrip(t, c)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.ProtoMajor != 2 || body != "HTTP/2.0" {
			t.Errorf("request %d: client proto %s, server saw %q", i, resp.Proto, body)
		}
	}
	if got := seen.Load(); got != 2 {
		t.Errorf("server saw ProtoMajor %d, want 2", got)
	}
	if n := newConns.Load(); n != 1 {
		t.Errorf("3 h2c requests opened %d connections, want 1", n)
	}
}

func TestTransportHTTP2OverTLS(t *testing.T) {
	u := newUpstream(t, "h2")
	ca := writeCA(t, u.srv)
	tests := []struct {
		name    string
		tls     *config.UpstreamTLS
		wantSNI string
	}{
		// The test certificate covers 127.0.0.1; Go sends no SNI for an IP.
		{"ca file", &config.UpstreamTLS{CAFile: ca}, ""},
		{"ca file and sni", &config.UpstreamTLS{CAFile: ca, SNI: "example.com"}, "example.com"},
		{"insecure", &config.UpstreamTLS{InsecureSkipVerify: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestManager(t, Options{}, config.Cluster{Name: "c", Protocol: "http2", TLS: tt.tls, Endpoints: []config.Endpoint{{Address: u.addr()}}})
			c := m.Get("c")
			if c.Scheme() != "https" {
				t.Fatalf("Scheme = %q, want https", c.Scheme())
			}
			resp, body, err := roundTrip(t, c)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtoMajor != 2 || body != "hello from HTTP/2.0" {
				t.Errorf("proto %s, server answered %q; want HTTP/2 both ways", resp.Proto, body)
			}
			_, sni, _ := u.seen()
			if got := sni[len(sni)-1]; got != tt.wantSNI {
				t.Errorf("server saw SNI %q, want %q", got, tt.wantSNI)
			}
		})
	}
}

func TestTransportHTTP1OverTLSNeverUpgrades(t *testing.T) {
	u := newUpstream(t, "h2") // the upstream offers h2; http1 must not take it
	m := newTestManager(t, Options{}, config.Cluster{Name: "c", TLS: &config.UpstreamTLS{CAFile: writeCA(t, u.srv)}, Endpoints: []config.Endpoint{{Address: u.addr()}}})
	c := m.Get("c")
	for range 3 {
		resp, body, err := roundTrip(t, c)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 1 || body != "hello from HTTP/1.1" {
			t.Errorf("proto %s body %q, want HTTP/1.1", resp.Proto, body)
		}
	}
	if n := u.newConns.Load(); n != 1 {
		t.Errorf("3 requests opened %d TLS connections, want 1", n)
	}
}

func TestTransportSNIFromDNSName(t *testing.T) {
	u := newUpstream(t, "h2")
	_, port, _ := net.SplitHostPort(u.addr())
	cfg := config.Cluster{
		Name: "c", Type: "strict_dns", Protocol: "http2",
		TLS:       &config.UpstreamTLS{InsecureSkipVerify: true},
		Endpoints: []config.Endpoint{{Address: "upstream.test:" + port}},
	}
	r := newFakeResolver()
	r.set("upstream.test", "127.0.0.1")
	m := newTestManager(t, Options{Resolver: r}, cfg)
	if _, _, err := roundTrip(t, m.Get("c")); err != nil {
		t.Fatal(err)
	}
	if _, sni, _ := u.seen(); len(sni) != 1 || sni[0] != "upstream.test" {
		t.Errorf("server saw SNI %v, want the endpoint's DNS name upstream.test", sni)
	}
}

// recordingObserver is a DialObserver that keeps every report.
type recordingObserver struct {
	mu   sync.Mutex
	errs []error
	addr []string
}

func (o *recordingObserver) DialDone(_ context.Context, cluster, addr string, elapsed time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cluster != "c" || elapsed < 0 {
		err = errors.New("bad report for cluster " + cluster)
	}
	o.errs = append(o.errs, err)
	o.addr = append(o.addr, addr)
}

func (o *recordingObserver) reports() ([]error, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.errs...), append([]string(nil), o.addr...)
}

// closedPort returns a loopback address that refuses connections for the
// rest of the test (e2etest.RefusingAddr).
func closedPort(t *testing.T) string { return e2etest.RefusingAddr(t) }

// silentListener accepts connections and never writes, so a TLS handshake
// with it can only time out.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestConnectErrors(t *testing.T) {
	h1 := newUpstream(t, "h1")    // TLS upstream without h2
	plain := newUpstream(t, "")   // not TLS at all
	tlsUp := newUpstream(t, "h2") // TLS with a cert the system roots reject
	silent := silentListener(t)   // accepts, never answers
	refused := closedPort(t)      // nothing listens
	noALPN := alpnIgnoringListener(t, h1.srv.TLS.Certificates[0])
	tests := []struct {
		name        string
		cfg         config.Cluster
		addr        string
		wantTimeout bool
		wantMsg     string
	}{
		{"refused", config.Cluster{}, refused, false, "connection refused"},
		{"refused tls", config.Cluster{Protocol: "http2"}, refused, false, "connection refused"},
		{"unknown authority", config.Cluster{TLS: &config.UpstreamTLS{}}, tlsUp.addr(), false, "tls handshake"},
		{"tls to plaintext", config.Cluster{TLS: &config.UpstreamTLS{InsecureSkipVerify: true}}, plain.addr(), false, "tls handshake"},
		// Go's server refuses a client that offers only h2 during the handshake…
		{"h2 refused by alpn", config.Cluster{Protocol: "http2", TLS: &config.UpstreamTLS{InsecureSkipVerify: true}}, h1.addr(), false, "no application protocol"},
		// …while a server that ignores ALPN completes it, and the dialer checks.
		{"no h2 via alpn", config.Cluster{Protocol: "http2", TLS: &config.UpstreamTLS{InsecureSkipVerify: true}}, noALPN, false, "did not negotiate h2"},
		{"handshake timeout", config.Cluster{ConnectTimeout: config.Duration(200 * time.Millisecond), TLS: &config.UpstreamTLS{InsecureSkipVerify: true}}, silent, true, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &recordingObserver{}
			tt.cfg.Name = "c"
			tt.cfg.Endpoints = []config.Endpoint{{Address: tt.addr}}
			m := newTestManager(t, Options{DialObserver: obs}, tt.cfg)
			_, _, err := roundTrip(t, m.Get("c"))
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want a *ConnectError", err, err)
			}
			if ce.Addr != tt.addr || ce.Timeout != tt.wantTimeout || !strings.Contains(ce.Error(), tt.wantMsg) {
				t.Errorf("ConnectError = {Addr %q Timeout %v} %q; want addr %q timeout %v and %q",
					ce.Addr, ce.Timeout, ce.Error(), tt.addr, tt.wantTimeout, tt.wantMsg)
			}
			errs, addrs := obs.reports()
			if len(errs) != 1 || !errors.As(errs[0], new(*ConnectError)) || addrs[0] != tt.addr {
				t.Errorf("observer saw %v for %v, want one ConnectError for %s", errs, addrs, tt.addr)
			}
		})
	}
}

func TestDialObserverSuccess(t *testing.T) {
	u := newUpstream(t, "")
	obs := &recordingObserver{}
	m := newTestManager(t, Options{DialObserver: obs}, config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: u.addr()}}})
	for range 3 {
		if _, _, err := roundTrip(t, m.Get("c")); err != nil {
			t.Fatal(err)
		}
	}
	errs, addrs := obs.reports()
	if len(errs) != 1 || errs[0] != nil || addrs[0] != u.addr() {
		t.Errorf("observer saw %v for %v, want one successful dial of %s", errs, addrs, u.addr())
	}
}

// alpnIgnoringListener is a TLS server that completes handshakes without
// ALPN, like an old upstream that ignores the extension.
func alpnIgnoringListener(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				io.Copy(io.Discard, c) // until the client hangs up
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}
