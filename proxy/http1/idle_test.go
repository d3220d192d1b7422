package http1

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// idleWaitConn signals every one-byte read the server makes after the
// connection's first bytes: a wait between requests that it does without
// its buffers (waitForRequest).
type idleWaitConn struct {
	listenerConn
	read      *atomic.Int64
	idleWaits chan struct{}
}

func (c idleWaitConn) Read(p []byte) (int, error) {
	if len(p) == 1 && c.read.Load() > 0 {
		select {
		case c.idleWaits <- struct{}{}:
		default:
		}
	}
	n, err := c.listenerConn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// startIdleWaitServer starts a loop server whose connections report their
// buffer-less waits on the returned channel.
func startIdleWaitServer(t *testing.T, h http.Handler, configure func(*Server)) (*loopServer, chan struct{}) {
	t.Helper()
	waits := make(chan struct{}, 16)
	ls := startWrappedLoopServer(t, h, func(c net.Conn) net.Conn {
		return idleWaitConn{listenerConn{c}, new(atomic.Int64), waits}
	}, configure)
	return ls, waits
}

func awaitIdleWait(t *testing.T, waits chan struct{}) {
	t.Helper()
	select {
	case <-waits:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not give its buffers back within 5 s of going idle")
	}
}

// TestServerIdleReleasesBuffers: a connection idle for longer than
// bufferReleaseDelay waits without its buffers, and what the client sends
// next (a request, pipelined requests, a request too slow to finish its
// head) is served as before: nothing is lost, and the read-header
// deadline runs from the request's first byte.
func TestServerIdleReleasesBuffers(t *testing.T) {
	const readHeaderTimeout = 300 * time.Millisecond
	ls, waits := startIdleWaitServer(t, echoHandler(), func(s *Server) {
		s.ReadHeaderTimeout = readHeaderTimeout
		s.IdleTimeout = time.Hour
	})
	c := ls.dialWire(t)
	c.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.body != "GET /first " {
		t.Fatalf("first response %q", r.body)
	}
	awaitIdleWait(t, waits)
	c.send("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
	if r := c.read("POST"); r.body != "POST /second body" {
		t.Fatalf("second response %q", r.body)
	}
	awaitIdleWait(t, waits)
	c.send("GET /third HTTP/1.1\r\nHost: x\r\n\r\nGET /fourth HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /third ", "GET /fourth "} {
		if r := c.read("GET"); r.body != want {
			t.Fatalf("pipelined response %q, want %q", r.body, want)
		}
	}
	awaitIdleWait(t, waits)
	sent := time.Now()
	c.send("G")
	c.expectClosed()
	if d := time.Since(sent); d < readHeaderTimeout-50*time.Millisecond {
		t.Errorf("closed %v after the request's first byte, before its read-header timeout (%v)", d, readHeaderTimeout)
	}
	ls.wantRejection(t, 0)
	select {
	case <-ls.idleClosed:
		t.Error("IdleClosed called for a connection closed by its read-header timeout")
	default:
	}
}

// TestServerIdleTimeoutWithoutBuffers: the idle timeout runs from the end
// of the last response, through the wait with and the wait without the
// buffers.
func TestServerIdleTimeoutWithoutBuffers(t *testing.T) {
	const idleTimeout = 3 * bufferReleaseDelay
	ls, waits := startIdleWaitServer(t, echoHandler(), func(s *Server) { s.IdleTimeout = idleTimeout })
	c := ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.status != http.StatusOK {
		t.Fatalf("got %q", r.statusLine)
	}
	answered := time.Now()
	awaitIdleWait(t, waits)
	c.expectClosed()
	if d := time.Since(answered); d < idleTimeout-50*time.Millisecond {
		t.Errorf("closed %v after the response, before the idle timeout (%v)", d, idleTimeout)
	}
	select {
	case <-ls.idleClosed:
	case <-time.After(5 * time.Second):
		t.Error("IdleClosed not called")
	}
}

// TestServerWriteAfterHandler: a response written to after its handler
// returned (its write buffer may be another connection's by then) fails
// and writes nothing.
func TestServerWriteAfterHandler(t *testing.T) {
	late := make(chan http.ResponseWriter, 1)
	ls, waits := startIdleWaitServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
		late <- w
	}), func(s *Server) { s.IdleTimeout = time.Hour })
	c := ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.body != "ok" {
		t.Fatalf("got %q", r.body)
	}
	awaitIdleWait(t, waits) // the server is done with the response
	w := <-late
	if _, err := w.Write([]byte("late")); !errors.Is(err, errWriteAfterHandler) {
		t.Errorf("Write after the handler returned: %v, want %v", err, errWriteAfterHandler)
	}
	if err := http.NewResponseController(w).Flush(); !errors.Is(err, errWriteAfterHandler) {
		t.Errorf("Flush after the handler returned: %v, want %v", err, errWriteAfterHandler)
	}
	c.expectSilence(50 * time.Millisecond)
}

// TestHeadBuffered: only a complete head counts; empty lines before the
// request line, which the server skips, do not end one.
func TestHeadBuffered(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET / HTTP/1.1\nHost: x\n\n", true},
		{"GET / HTTP/1.1\r\nHost: x\r\n", false},
		{"\r\n\r\nGET / HTTP/1.1\r\n", false},
		{"\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n", false},
		{"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"\r\n", false},
		{"", false},
	} {
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 64)
		_, _ = br.Peek(len(tc.in))
		if got := headBuffered(br); got != tc.want {
			t.Errorf("headBuffered(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestServerTLSIdleReleasesBuffers: over TLS, the one-byte wait reads
// through the TLS layer, which keeps the rest of the record; the requests
// after an idle period arrive whole and still carry the TLS state.
func TestServerTLSIdleReleasesBuffers(t *testing.T) {
	cert := testCertificate(t)
	ls := startWrappedLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	}), func(c net.Conn) net.Conn {
		return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
	}, func(s *Server) {
		s.ReadHeaderTimeout = 5 * time.Second
		s.IdleTimeout = time.Hour
	})
	c, err := tls.Dial("tcp", ls.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // httptest's certificate
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, step := range []struct {
		send string
		want []string
	}{
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", []string{"GET /a"}},
		{"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", []string{"GET /b"}},
		{"GET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n", []string{"GET /c", "GET /d"}},
	} {
		if _, err := io.WriteString(c, step.send); err != nil {
			t.Fatal(err)
		}
		for _, want := range step.want {
			r, err := readWireResp(br, "GET")
			if err != nil || r.status != http.StatusOK || r.body != want {
				t.Fatalf("response %+v, %v; want 200 with %q", r, err, want)
			}
		}
		time.Sleep(3 * bufferReleaseDelay) // the connection goes idle
	}
}
