package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loopServer is a Server behind a real loopback listener: every accepted
// connection is handed to ServeConn in its own goroutine, as the proxy's
// listener does.
type loopServer struct {
	srv     *Server
	ln      net.Listener
	addr    string
	accepts atomic.Int64
	wg      sync.WaitGroup
	// rejected receives every Rejected callback; idleClosed every
	// IdleClosed callback.
	rejected   chan loopRejection
	idleClosed chan struct{}
	log        lockedBuffer
}

type loopRejection struct {
	status int
	err    error
}

// startLoopServer starts a Server with handler h on 127.0.0.1:0. configure
// runs on the Server before the first connection. At the end of the test
// the listener and the server are closed and every ServeConn must return.
func startLoopServer(t *testing.T, h http.Handler, configure ...func(*Server)) *loopServer {
	t.Helper()
	return startWrappedLoopServer(t, h, nil, configure...)
}

// listenerConn is a connection as the proxy's listener hands it over: a
// wrapper that exposes the socket through SyscallConn but has no
// CloseWrite of its own.
type listenerConn struct {
	net.Conn
}

func (c listenerConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// startWrappedLoopServer is startLoopServer with every accepted connection
// passed through wrap (when not nil) before ServeConn.
func startWrappedLoopServer(t *testing.T, h http.Handler, wrap func(net.Conn) net.Conn, configure ...func(*Server)) *loopServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := &loopServer{
		ln:         ln,
		addr:       ln.Addr().String(),
		rejected:   make(chan loopRejection, 16),
		idleClosed: make(chan struct{}, 16),
	}
	ls.srv = &Server{
		Handler: h,
		Log:     slog.New(slog.NewTextHandler(&ls.log, nil)),
		Rejected: func(_ net.Conn, status int, err error) {
			select {
			case ls.rejected <- loopRejection{status, err}:
			default:
			}
		},
		IdleClosed: func(net.Conn) {
			select {
			case ls.idleClosed <- struct{}{}:
			default:
			}
		},
	}
	for _, f := range configure {
		f(ls.srv)
	}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ls.accepts.Add(1)
			if wrap != nil {
				c = wrap(c)
			}
			ls.wg.Add(1)
			go func() {
				defer ls.wg.Done()
				ls.srv.ServeConn(c, nil)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = ls.srv.Close()
		done := make(chan struct{})
		go func() {
			ls.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("ServeConn did not return within 10 s of Server.Close")
		}
	})
	return ls
}

// url returns the server's base URL for net/http's client.
func (ls *loopServer) url() string { return "http://" + ls.addr }

// wantRejection waits for the Rejected callback and checks its status.
func (ls *loopServer) wantRejection(t *testing.T, status int) {
	t.Helper()
	select {
	case r := <-ls.rejected:
		if r.status != status {
			t.Errorf("Rejected called with status %d (%v), want %d", r.status, r.err, status)
		}
		if r.err == nil {
			t.Error("Rejected called with a nil error")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Rejected was not called within 5 s (want status %d)", status)
	}
}

// newLoopClient returns a net/http client of its own, so that connection
// reuse is observable per test.
func newLoopClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// lockedBuffer is a bytes.Buffer safe for the server's logger and the test
// to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wireConn is a raw client connection: requests are written byte for byte
// and responses read as they are on the wire.
type wireConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialWire connects to the server with a 10 s deadline on everything.
func (ls *loopServer) dialWire(t *testing.T) *wireConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ls.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = nc.Close() })
	return &wireConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *wireConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("writing to the server: %v", err)
	}
}

// read reads one response (a 1xx included) and fails the test on error.
func (c *wireConn) read(method string) *wireResp {
	c.t.Helper()
	r, err := readWireResp(c.br, method)
	if err != nil {
		c.t.Fatalf("reading a response: %v (so far: %+v)", err, r)
	}
	return r
}

// expectClosed checks that the server closes the connection within 5 s,
// with no more bytes first.
func (c *wireConn) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("connection not closed: got %q", string(b)+string(rest))
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		c.t.Fatalf("connection not closed within 5 s: %v", err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
}

// expectSilence checks that nothing arrives within d. It is used only for
// bytes that a faulty server would already have written by the time the
// test looks (a synchronised event precedes the call), so a slow machine
// cannot make it fail.
func (c *wireConn) expectSilence(d time.Duration) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	b, err := c.br.Peek(1)
	if err == nil {
		c.t.Fatalf("unexpected bytes from the server: %q", b)
	}
	if !isTimeout(err) {
		c.t.Fatalf("want silence, got %v", err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
}

// wireResp is a response as it was on the wire.
type wireResp struct {
	statusLine string
	status     int
	// head is the header lines exactly as received, each with its CRLF,
	// without the status line and the empty line.
	head    string
	header  http.Header
	body    string
	chunked bool
	// trailerRaw is the trailer lines of a chunked body, with CRLFs.
	trailerRaw string
	trailer    http.Header
}

// lines returns the number of header lines named name (case-insensitive).
func (r *wireResp) lines(name string) int {
	n := 0
	for line := range strings.SplitSeq(r.head, "\r\n") {
		k, _, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			n++
		}
	}
	return n
}

// readWireResp reads one response strictly: CRLF line endings, a chunked
// body's framing checked byte by byte, a close-delimited body read to EOF.
func readWireResp(br *bufio.Reader, method string) (*wireResp, error) {
	r := &wireResp{header: make(http.Header)}
	line, err := readCRLFLine(br)
	if err != nil {
		return r, fmt.Errorf("status line: %w", err)
	}
	r.statusLine = line
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return r, fmt.Errorf("bad status line %q", line)
	}
	if r.status, err = strconv.Atoi(code); err != nil || len(code) != 3 {
		return r, fmt.Errorf("bad status line %q", line)
	}
	r.head, err = readFields(br, r.header)
	if err != nil {
		return r, fmt.Errorf("headers: %w", err)
	}
	switch {
	case r.status < 200, r.status == 204, r.status == 304, method == http.MethodHead:
		return r, nil
	case r.header.Get("Transfer-Encoding") != "":
		if te := r.header.Get("Transfer-Encoding"); te != "chunked" {
			return r, fmt.Errorf("unexpected Transfer-Encoding %q", te)
		}
		r.chunked = true
		var body strings.Builder
		for {
			sizeLine, err := readCRLFLine(br)
			if err != nil {
				r.body = body.String()
				return r, fmt.Errorf("chunk size: %w", err)
			}
			size, err := strconv.ParseUint(sizeLine, 16, 63)
			if err != nil {
				return r, fmt.Errorf("bad chunk size line %q", sizeLine)
			}
			if size == 0 {
				break
			}
			chunk := make([]byte, size+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				r.body = body.String()
				return r, fmt.Errorf("chunk data: %w", err)
			}
			if string(chunk[size:]) != "\r\n" {
				return r, fmt.Errorf("chunk not followed by CRLF: %q", chunk[size:])
			}
			body.Write(chunk[:size])
		}
		r.body = body.String()
		r.trailer = make(http.Header)
		r.trailerRaw, err = readFields(br, r.trailer)
		if err != nil {
			return r, fmt.Errorf("trailers: %w", err)
		}
		return r, nil
	case r.header.Get("Content-Length") != "":
		n, err := strconv.Atoi(r.header.Get("Content-Length"))
		if err != nil {
			return r, fmt.Errorf("bad Content-Length: %w", err)
		}
		b := make([]byte, n)
		got, err := io.ReadFull(br, b)
		r.body = string(b[:got])
		if err != nil {
			return r, fmt.Errorf("body: %w", err)
		}
		return r, nil
	default:
		b, err := io.ReadAll(br)
		r.body = string(b)
		return r, err
	}
}

// readCRLFLine reads one line that must end in CRLF, and returns it
// without.
func readCRLFLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if line == "" {
			return "", err
		}
		return "", fmt.Errorf("%w after %q", io.ErrUnexpectedEOF, line)
	}
	if !strings.HasSuffix(line, "\r\n") || strings.ContainsRune(line[:len(line)-2], '\r') {
		return "", fmt.Errorf("line not ending in a lone CRLF: %q", line)
	}
	return line[:len(line)-2], nil
}

// readFields reads "Name: value" lines up to an empty line into h and
// returns them as received.
func readFields(br *bufio.Reader, h http.Header) (string, error) {
	var raw strings.Builder
	for {
		line, err := readCRLFLine(br)
		if err != nil {
			return raw.String(), err
		}
		if line == "" {
			return raw.String(), nil
		}
		raw.WriteString(line + "\r\n")
		k, v, ok := strings.Cut(line, ": ")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return raw.String(), fmt.Errorf("bad field line %q", line)
		}
		h.Add(k, v)
	}
}

// serveLoopback serves srv on 127.0.0.1:0, each connection on its own
// goroutine, until the test ends, and returns the address.
func serveLoopback(tb testing.TB, srv *Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c, nil)
		}
	}()
	tb.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// recvWithin returns the next value from ch, failing the test with msg if
// none arrives within d.
func recvWithin[T any](t *testing.T, ch <-chan T, d time.Duration, msg string) T {
	t.Helper()
	var v T
	select {
	case v = <-ch:
	case <-time.After(d):
		t.Fatal(msg)
	}
	return v
}
