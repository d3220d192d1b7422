package http1

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestServerConnAccepted: the first request's read-header deadline runs
// from ConnAccepted, not from ServeConn, so that what the caller did
// before handing the connection over counts against it. A connection
// accepted longer than ReadHeaderTimeout ago is closed before its first
// request is read, however complete that request is.
func TestServerConnAccepted(t *testing.T) {
	ls := startLoopServer(t, echoHandler(), func(s *Server) {
		s.ReadHeaderTimeout = time.Second
		s.ConnAccepted = func(net.Conn) time.Time { return time.Now().Add(-time.Hour) }
	})
	c := ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.expectClosed()
}

// TestServerTLS: a *tls.Conn is served like any connection: ServeConn
// completes the handshake, every request carries the connection's TLS
// state, and a client that hangs up while its request is being served
// cancels the request's context although its close_notify arrives as
// bytes before its FIN.
func TestServerTLS(t *testing.T) {
	cert := testCertificate(t)
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	ls := startWrappedLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
			return
		}
		if r.URL.Path == "/wait" {
			started <- struct{}{}
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(10 * time.Second):
			}
			return
		}
		_, _ = io.WriteString(w, "tls "+tls.VersionName(r.TLS.Version))
	}), func(c net.Conn) net.Conn {
		return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
	}, func(s *Server) { s.ReadHeaderTimeout = 5 * time.Second })

	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", ls.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // httptest's certificate
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	c := dial()
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || strings.Count(string(b), "HTTP/1.1 200 OK\r\n") != 2 || !strings.Contains(string(b), "tls TLS 1.3") {
		t.Fatalf("two requests over TLS: %q, %v; want two 200s that saw the TLS state", b, err)
	}

	c = dial()
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the handler")
	}
	_ = c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request's context was not cancelled within 10s of the TLS client hanging up")
	}
}

// testCertificate borrows httptest's self-signed certificate.
func testCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	defer ts.Close()
	return ts.TLS.Certificates[0]
}
