package http1

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// endedCall is one Ended callback.
type endedCall struct{ remote, active bool }

// TestServerEnded: the Ended callback says who ended each connection and
// whether a request was in progress, which the listener turns into
// Envoy's downstream_cx_destroy_{local,remote}[_active_rq] counters.
func TestServerEnded(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/wait":
			entered <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-release:
			case <-time.After(10 * time.Second):
			}
		case "/abort":
			w.Header()["Content-Length"] = []string{"10"}
			_, _ = w.Write([]byte("abc"))
			panic(http.ErrAbortHandler)
		}
	})
	ended := make(chan endedCall, 8)
	ls := startLoopServer(t, handler, func(s *Server) {
		// Long enough that a client closing right after its response
		// always beats it, even on a loaded machine.
		s.IdleTimeout = 2 * time.Second
		s.Ended = func(_ net.Conn, remote, active bool) { ended <- endedCall{remote, active} }
	})
	want := func(t *testing.T, w endedCall) {
		t.Helper()
		if got := recvWithin(t, ended, 10*time.Second, "Ended was not called within 10 s"); got != w {
			t.Errorf("Ended(remote=%v, activeRequest=%v), want (remote=%v, activeRequest=%v)", got.remote, got.active, w.remote, w.active)
		}
	}

	t.Run("client closes an idle connection", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.read("GET")
		_ = c.nc.Close()
		want(t, endedCall{remote: true})
	})
	t.Run("client asks for close", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		c.read("GET")
		want(t, endedCall{})
	})
	t.Run("idle timeout", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.read("GET")
		c.expectClosed()
		want(t, endedCall{})
	})
	t.Run("malformed request", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET / HTTP/1.1\r\n\r\n") // no Host
		c.read("GET")
		want(t, endedCall{active: true})
	})
	t.Run("client leaves during a request", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
		recvWithin(t, entered, 10*time.Second, "the request never reached the handler")
		_ = c.nc.Close()
		want(t, endedCall{remote: true, active: true})
	})
	t.Run("handler resets the stream", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
		want(t, endedCall{active: true})
	})
	close(release)
}
