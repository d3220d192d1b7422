package listener

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// loopback binds a socket on a free loopback port.
func loopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// waitUntil polls cond every 5 ms for up to 5 s (a guard against hangs,
// not a timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
	}
}

// acceptAsync accepts one connection from ln on its own goroutine.
func acceptAsync(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func dial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSocketViewHandover: a detached view never takes a connection; the
// current one gets it; closing the socket ends every view.
func TestSocketViewHandover(t *testing.T) {
	s := newSocket(loopback(t), 0, nil)
	t.Cleanup(s.close)
	old := s.view()
	_ = old.Close()
	if _, err := old.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a closed view's Accept: %v, want net.ErrClosed", err)
	}
	cur := s.view()
	if cur.Addr().String() != s.ln.Addr().String() {
		t.Errorf("view address %s, socket %s", cur.Addr(), s.ln.Addr())
	}
	got := acceptAsync(cur)
	dial(t, s.ln.Addr())
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("the current view refused the connection")
		}
		_ = c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the current view got no connection")
	}
	waiting := acceptAsync(cur)
	s.close()
	select {
	case _, ok := <-waiting:
		if ok {
			t.Fatal("Accept returned a connection after the socket closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after the socket closed")
	}
}

// TestMaxConnectionsOverflow: past max_connections a connection is closed
// at once and counted; a closed one frees its place.
func TestMaxConnectionsOverflow(t *testing.T) {
	s := newSocket(loopback(t), 1, nil)
	t.Cleanup(s.close)
	v := s.view()
	first := acceptAsync(v)
	dial(t, s.ln.Addr())
	c1 := <-first
	if c1 == nil {
		t.Fatal("the first connection was refused")
	}
	if got := s.active.Load(); got != 1 {
		t.Fatalf("active %d after one accept, want 1", got)
	}
	over := dial(t, s.ln.Addr())
	waitUntil(t, "overflow counted", func() bool { return s.Overflow.Load() == 1 })
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if n, err := over.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Errorf("the overflowing connection read %d bytes, err %v; want it closed", n, err)
	} else if errors.As(err, &ne) && ne.Timeout() {
		t.Error("the overflowing connection was left open")
	}
	_ = c1.Close()
	_ = c1.Close() // twice counts once
	if got := s.active.Load(); got != 0 {
		t.Fatalf("active %d after close, want 0", got)
	}
	next := acceptAsync(v)
	dial(t, s.ln.Addr())
	select {
	case c := <-next:
		if c == nil {
			t.Fatal("refused after a place was freed")
		}
		_ = c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection after a place was freed")
	}
	if got := s.Overflow.Load(); got != 1 {
		t.Errorf("overflow %d, want 1", got)
	}
}

// protoHandler answers with the request's protocol.
var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, r.Proto)
})

func listen(t *testing.T, yaml string) *Listener {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "listener_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(context.Background(), &cfg.Listeners[0], protoHandler, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Shutdown(ctx)
	})
	return l
}

const listenerYAML = `
listeners:
  - name: l
    address: 127.0.0.1:0
    stat_prefix: l
    {{PROTOCOLS}}
    virtual_hosts:
      - name: vh
        domains: ["*"]
        routes:
          - match: {prefix: /}
            direct_response: {status: 200}
`

// getProto sends GET / to addr through tr and returns the body: the
// protocol the server saw.
func getProto(tr http.RoundTripper, addr net.Addr) (string, error) {
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	res, err := client.Get("http://" + addr.String() + "/")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func h1Get(_ *testing.T, addr net.Addr) (string, error) {
	return getProto(&http.Transport{}, addr)
}

func h2cGet(_ *testing.T, addr net.Addr) (string, error) {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // h2c with prior knowledge
	return getProto(&http.Transport{Protocols: &p}, addr)
}

// TestPrefaceSniff: on a plaintext listener the first bytes choose the
// codec: HTTP/2's preface goes to HTTP/2 (h2c with prior knowledge),
// anything else to HTTP/1; a listener with one protocol serves only it.
func TestPrefaceSniff(t *testing.T) {
	tests := []struct {
		name, protocols string
		h1, h2c         string // the protocol served; "" for refused
	}{
		{"both by default", "", "HTTP/1.1", "HTTP/2.0"},
		{"http1 only", "protocols: [http1]", "HTTP/1.1", ""},
		{"http2 only", "protocols: [http2]", "", "HTTP/2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, strings.Replace(listenerYAML, "{{PROTOCOLS}}", tc.protocols, 1))
			for _, c := range []struct {
				client string
				get    func(*testing.T, net.Addr) (string, error)
				want   string
			}{{"HTTP/1.1", h1Get, tc.h1}, {"h2c", h2cGet, tc.h2c}} {
				got, err := c.get(t, l.Addr())
				switch {
				case c.want == "" && err == nil:
					t.Errorf("%s client served as %q, want refused", c.client, got)
				case c.want != "" && (err != nil || got != c.want):
					t.Errorf("%s client: %q, %v; want %q", c.client, got, err, c.want)
				}
			}
		})
	}
}

// TestSniffEarlyClose: a client that connects and leaves before sending a
// byte costs nothing, and the listener goes on serving.
func TestSniffEarlyClose(t *testing.T) {
	l := listen(t, strings.Replace(listenerYAML, "{{PROTOCOLS}}", "", 1))
	for range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	if got, err := h2cGet(t, l.Addr()); err != nil || got != "HTTP/2.0" {
		t.Fatalf("after early closes: %q, %v", got, err)
	}
	waitUntil(t, "the early connections released", func() bool { return l.sock.active.Load() <= 1 })
}

// TestUpdateHandsOverTheSocket: a reload that changes server settings
// starts a new server on the same socket; the address stays and new
// connections follow the new settings.
func TestUpdateHandsOverTheSocket(t *testing.T) {
	l := listen(t, strings.Replace(listenerYAML, "{{PROTOCOLS}}", "protocols: [http1, http2]", 1))
	addr := l.Addr().String()
	if got, err := h2cGet(t, l.Addr()); err != nil || got != "HTTP/2.0" {
		t.Fatalf("before the update: %q, %v", got, err)
	}
	cfg, err := config.Parse([]byte(strings.Replace(listenerYAML, "{{PROTOCOLS}}", "protocols: [http1]", 1)), "listener_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nc := cfg.Listeners[0]
	nc.Address = addr
	if err := l.Update(&nc); err != nil {
		t.Fatal(err)
	}
	if l.Addr().String() != addr {
		t.Errorf("address %s after the update, want %s", l.Addr(), addr)
	}
	if got, err := h1Get(t, l.Addr()); err != nil || got != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 after the update: %q, %v", got, err)
	}
	if got, err := h2cGet(t, l.Addr()); err == nil {
		t.Errorf("h2c after HTTP/2 was turned off: served as %q", got)
	}
	if got := l.Config().Protocols; len(got) != 1 || got[0] != "http1" {
		t.Errorf("Config().Protocols = %v, want [http1]", got)
	}
}
