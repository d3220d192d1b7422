// Package http1 is hopwatch's own HTTP/1.1 server for downstream
// connections: the request codec, the connection loop and the
// ResponseWriter that the connection manager writes to.
//
// It replaces net/http's server on plaintext HTTP/1 connections, where a
// proxy spends most of its own CPU, and keeps what hopwatch relies on from
// http.Handler: the handler gets a *http.Request and an http.ResponseWriter
// that also implements http.Flusher, http.Hijacker (for upgrades) and what
// http.ResponseController calls. What it does differently:
//
//   - A request head is read into one buffer and parsed from a single
//     string: keys and values are substrings of it, and a key already in
//     canonical form is not copied.
//   - Framing is strict, as Envoy's codec is: Transfer-Encoding with
//     Content-Length, a Transfer-Encoding other than chunked, conflicting
//     Content-Lengths and obsolete line folding are refused with 400 or 501
//     and a reason.
//   - A client that goes away while its request is being served is noticed
//     without a read per request: a request still running after
//     peerCloseWatchDelay gets a watcher that peeks at the socket, waits in
//     the runtime's poller while there is nothing to read, and cancels the
//     request's context when the client closed.
//   - The response is buffered until the first body write, flush or the end
//     of the handler, so a small response leaves in one write(2).
//   - A keep-alive connection that waits longer than bufferReleaseDelay for
//     its next request gives its read and write buffers back to the
//     server's pools and waits on a one-byte read, so that an idle
//     connection costs its goroutine's stack and a few hundred bytes of
//     state rather than 8 KiB more.
//
// A *tls.Conn is served the same way: its requests carry the connection's
// TLS state in Request.TLS, and the peer-close watcher reads through the
// TLS layer instead of peeking at the socket.
package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for a zero Server.
const (
	defaultMaxHeaderBytes = 60 << 10
	// discardTimeout bounds reading the unread rest of a request body after
	// its response, so that the connection can be reused.
	discardTimeout = 5 * time.Second
	// closeLingerTimeout bounds how long a connection the server closes
	// keeps draining the client's bytes after its FIN (lingerClose).
	closeLingerTimeout = 500 * time.Millisecond
	// peerCloseWatchDelay is how long a request runs before the server
	// starts watching its connection for the client closing it.
	peerCloseWatchDelay = 20 * time.Millisecond
	bufferSize          = 4 << 10
)

// Server serves HTTP/1.x requests on connections handed to ServeConn.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the time from a request's first byte (or,
	// for a connection's first request, from ConnAccepted, else from
	// ServeConn) to the end of its headers. 0 means none.
	ReadHeaderTimeout time.Duration
	// ConnAccepted, when set, returns when c was accepted. The first
	// request's ReadHeaderTimeout runs from then, not from ServeConn, so
	// that what the caller did before (a TLS handshake, sniffing for the
	// HTTP/2 preface) counts against the same deadline instead of
	// restarting it.
	ConnAccepted func(c net.Conn) time.Time
	// IdleTimeout closes a connection that waits this long for its next
	// request. 0 means none.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers together; a
	// larger head is answered with 431. 0 means 60 KiB.
	MaxHeaderBytes int
	// BaseContext returns the context every request on c descends from.
	BaseContext func(c net.Conn) context.Context
	// Rejected, when set, is told about every request refused before it
	// reached the handler. status is the response sent, or 0 when the
	// connection was closed without one (a timeout or a torn request).
	Rejected func(c net.Conn, status int, err error)
	// IdleClosed, when set, is told about every connection closed by
	// IdleTimeout.
	IdleClosed func(c net.Conn)
	// Ended, when set, is told how a connection that was not hijacked
	// ended, just before the server closes it: remote is true when the
	// client closed or reset it, activeRequest when a request was being
	// received or served at the time (Envoy's downstream_cx_destroy_*
	// split).
	Ended func(c net.Conn, remote, activeRequest bool)
	// Hijacked, when set, is told about every connection a handler took
	// over (a protocol upgrade).
	Hijacked func(c net.Conn)
	// Log receives handler panics; nil means slog.Default().
	Log *slog.Logger

	mu          sync.Mutex
	conns       map[*conn]struct{}
	bufs        bufferPools
	inShutdown  atomic.Bool
	noKeepAlive atomic.Bool
}

// Connection states, for closing idle connections.
const (
	stateActive int32 = iota
	stateIdle
	stateClosing
)

// conn is one downstream connection.
type conn struct {
	srv *Server
	nc  net.Conn
	// br and bw are nil while the connection waits for a request without
	// them (waitForRequest); src is what br reads from when it came from
	// the pool.
	br  *bufio.Reader
	bw  *bufio.Writer
	src connReader
	// ctx is the context of every request on the connection: requests on
	// one connection are served one after another, and it is cancelled
	// only when the client is gone (or the connection is done), which ends
	// the connection too. reqTemplate carries it, so that a request is a
	// struct copy rather than Request.WithContext's second allocation.
	ctx         context.Context
	cancel      context.CancelFunc
	reqTemplate *http.Request
	remoteAddr  string
	head        []byte
	state       atomic.Int32
	hijacked    bool
	// bodyDone is set once the current request's body was read to its end.
	bodyDone atomic.Bool
	// endedRemote and endedActive say how the connection ended (Ended).
	endedRemote, endedActive bool
	// firstDeadline is when the first request's head must be complete
	// (zero: no ReadHeaderTimeout).
	firstDeadline time.Time

	// contMu orders a "100 Continue" written by the body reader against
	// the start of the final response.
	contMu      sync.Mutex
	contStarted bool
	contSent    bool

	watch peerCloseWatch
}

// ServeConn serves requests on nc until it closes, fails, times out, stops
// keep-alive or is hijacked. br, when not nil, is a reader over nc that may
// already hold the connection's first bytes. ServeConn closes nc unless a
// handler hijacked it.
func (s *Server) ServeConn(nc net.Conn, br *bufio.Reader) {
	c := &conn{srv: s, nc: nc, br: br}
	c.src.nc = nc
	if c.br == nil {
		c.br = s.bufs.reader(&c.src)
	}
	c.bw = s.bufs.writer(nc)
	c.state.Store(stateActive)
	if !s.track(c) {
		_ = nc.Close()
		return
	}
	defer c.end()
	ok := c.start()
	defer c.cancel()
	if !ok {
		return
	}
	// The wait for a request is called from here, not from serveOne, so
	// that an idle connection's goroutine holds as little stack as it can
	// (the runtime shrinks a stack to what is in use at a collection).
	for first := true; ; first = false {
		deadlineSet, ok := c.awaitRequest(first)
		if !ok || !c.serveOne(deadlineSet) {
			return
		}
	}
}

// start sets up what every request on the connection shares, and
// completes a TLS handshake; it reports false when the connection ends
// instead. c.cancel is set either way.
func (c *conn) start() bool {
	s, nc := c.srv, c.nc
	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(nc)
	}
	c.ctx, c.cancel = context.WithCancel(base)
	c.reqTemplate = new(http.Request).WithContext(c.ctx)
	if ra := nc.RemoteAddr(); ra != nil {
		c.remoteAddr = ra.String()
	}
	if s.ReadHeaderTimeout > 0 {
		start := time.Now()
		if s.ConnAccepted != nil {
			start = s.ConnAccepted(nc)
		}
		c.firstDeadline = start.Add(s.ReadHeaderTimeout)
	}
	if tc, ok := nc.(*tls.Conn); ok {
		state, err := c.handshake(tc)
		if err != nil {
			c.endedRemote = !isTimeout(err)
			return false
		}
		// One state per connection, shared by its requests, as net/http
		// does: the connection manager reads it for X-Forwarded-Proto.
		c.reqTemplate.TLS = state
	}
	c.watch.init(c)
	return true
}

// end forgets the connection and, unless a handler hijacked it, reports
// how it ended and closes it.
func (c *conn) end() {
	c.srv.untrack(c)
	if !c.hijacked {
		if c.srv.Ended != nil {
			c.srv.Ended(c.nc, c.endedRemote, c.endedActive)
		}
		c.lingerClose()
	}
}

// handshake completes a TLS handshake the caller has not done yet, within
// the first request's read-header deadline, and returns the connection's
// TLS state.
func (c *conn) handshake(tc *tls.Conn) (*tls.ConnectionState, error) {
	if !tc.ConnectionState().HandshakeComplete {
		if !c.firstDeadline.IsZero() {
			_ = tc.SetDeadline(c.firstDeadline)
		}
		if err := tc.HandshakeContext(c.ctx); err != nil {
			return nil, err
		}
		_ = tc.SetWriteDeadline(time.Time{})
	}
	state := tc.ConnectionState()
	return &state, nil
}

// awaitRequest waits for a request's first byte and sets the read
// deadline for its head. deadlineSet reports that a read deadline is set
// which the body and the handler must not run into; ok is false when the
// connection ends instead.
func (c *conn) awaitRequest(first bool) (deadlineSet, ok bool) {
	s := c.srv
	nc := c.nc
	// Wait for the request's first byte: the idle timeout applies, or the
	// read-header deadline for a connection's first request, which runs
	// from accept and is never restarted.
	var deadline time.Time
	headerDeadlineSet := false
	switch {
	case first && s.ReadHeaderTimeout > 0:
		deadline, headerDeadlineSet = c.firstDeadline, true
	case !first && s.IdleTimeout > 0:
		deadline = time.Now().Add(s.IdleTimeout)
	}
	deadlineMoved := false
	if c.br.Buffered() != 0 {
		_ = nc.SetReadDeadline(deadline)
	} else {
		c.state.Store(stateIdle)
		if s.inShutdown.Load() {
			return false, false
		}
		var err error
		if deadlineMoved, err = c.waitForRequest(deadline); err != nil {
			if !first && isTimeout(err) && s.IdleClosed != nil {
				s.IdleClosed(nc)
			}
			// The client closed or reset it, unless a timeout or closeIdle did.
			c.endedRemote = !isTimeout(err) && c.state.Load() != stateClosing
			return false, false
		}
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) && c.state.Load() == stateClosing {
		return false, false // closed as idle while the first byte arrived
	}
	switch {
	case headBuffered(c.br):
		// Reading the head reads nothing from the connection.
	case !headerDeadlineSet && s.ReadHeaderTimeout > 0:
		_ = nc.SetReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
		headerDeadlineSet = true
	case deadlineMoved:
		_ = nc.SetReadDeadline(deadline)
	}
	return !deadline.IsZero() || headerDeadlineSet || deadlineMoved, true
}

// serveOne reads and serves the request whose first bytes awaitRequest
// saw. It reports whether the connection can carry another.
func (c *conn) serveOne(deadlineSet bool) bool {
	s := c.srv
	nc := c.nc
	head, err := readHead(c.br, c.head, s.maxHeaderBytes())
	c.head = head[:0]
	if err != nil {
		var re *requestError
		c.endedActive = true
		switch {
		case errors.As(err, &re):
			// Too large, or too many empty lines before the request line.
			c.reject(re.status, err)
		case len(head) == 0 && errors.Is(err, io.EOF):
			// closed between requests: not an error
			c.endedRemote, c.endedActive = true, false
		default:
			c.endedRemote = !isTimeout(err)
			c.reject(0, err)
		}
		return false
	}
	req := new(http.Request)
	*req = *c.reqTemplate
	req.RemoteAddr = c.remoteAddr
	p, err := parseHead(string(head), req)
	if err != nil {
		status := http.StatusBadRequest
		var re *requestError
		if errors.As(err, &re) {
			status = re.status
		}
		c.endedActive = true
		c.reject(status, err)
		return false
	}

	var body *requestBody
	c.bodyDone.Store(true)
	if p.chunked || req.ContentLength > 0 {
		c.bodyDone.Store(false)
		body = &requestBody{c: c, br: c.br, remaining: req.ContentLength, req: req, sendContinue: p.expectContinue}
		if p.chunked {
			body.cr = newChunkedReader(c.br)
		}
		req.Body = body
	} else {
		req.Body = http.NoBody
	}
	if deadlineSet {
		// Neither a body, nor the handler, nor the peer-close watcher may
		// run into the header or idle deadline: a watcher woken by the
		// idle deadline stops watching for the rest of the request.
		_ = nc.SetReadDeadline(time.Time{})
	}
	c.contStarted, c.contSent = false, false
	w := &response{c: c, req: req, body: body, header: make(http.Header, 8), guardContinue: p.expectContinue}

	c.watch.arm(body == nil)
	completed := c.runHandler(w, req)
	c.watch.disarm()
	if w.hijacked {
		return false
	}
	if !completed {
		_ = c.bw.Flush() // what the handler wrote, then the reset
		c.endedActive = true
		c.endedRemote = c.watch.peerGone.Load()
		return false
	}
	if !w.finish() || c.watch.peerGone.Load() {
		// Writing the response failed, or the client closed while it was
		// being served: either way the client ended the connection.
		c.endedRemote, c.endedActive = true, true
		return false
	}
	if w.closeAfter {
		return false
	}
	if body != nil {
		if !c.bodyDone.Load() {
			// A reader still blocked in the body returns by this deadline
			// at the latest, and the rest of the body must come by then.
			_ = nc.SetReadDeadline(time.Now().Add(discardTimeout))
		}
		if !body.finish() {
			return false
		}
	}
	return s.keepAlivesEnabled()
}

// runHandler calls the handler; it reports false when the handler
// panicked (http.ErrAbortHandler is how a handler resets a stream).
func (c *conn) runHandler(w *response, req *http.Request) (completed bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler { //nolint:errorlint // the sentinel value is the panic value
				c.srv.log().Error("http1: panic serving request", "remote", c.remoteAddr, "method", req.Method, "uri", req.RequestURI, "panic", p, "stack", string(debug.Stack()))
			}
			completed = false
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return true
}

// reject answers a request refused before the handler, then the caller
// closes the connection.
func (c *conn) reject(status int, err error) {
	if status != 0 {
		msg := err.Error()
		var re *requestError
		if errors.As(err, &re) {
			msg = re.Error()
		}
		msg += "\n"
		_ = c.nc.SetWriteDeadline(time.Now().Add(discardTimeout))
		bw := c.bw
		writeStatusLine(bw, true, status)
		_, _ = bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
		_, _ = bw.WriteString(strconv.Itoa(len(msg)))
		_, _ = bw.WriteString("\r\n\r\n")
		_, _ = bw.WriteString(msg)
		_ = bw.Flush()
	}
	if c.srv.Rejected != nil {
		c.srv.Rejected(c.nc, status, err)
	}
}

// writeContinue sends "100 Continue" before the body is first read, unless
// the final response already started.
func (c *conn) writeContinue() error {
	c.contMu.Lock()
	defer c.contMu.Unlock()
	if c.contStarted {
		return nil
	}
	c.contSent = true
	_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return c.bw.Flush()
}

// responseStarted marks the final response as started, so that no
// "100 Continue" follows it, and reports whether one was sent before.
func (c *conn) responseStarted() (continueSent bool) {
	c.contMu.Lock()
	c.contStarted = true
	continueSent = c.contSent
	c.contMu.Unlock()
	return continueSent
}

// bodyEnded is called by the body reader when the body reached its end.
func (c *conn) bodyEnded() {
	c.bodyDone.Store(true)
	c.watch.bodyEnded()
}

// hijack hands the connection to the handler: no watcher, no deadlines,
// and the server forgets it.
func (c *conn) hijack() {
	c.watch.disarm()
	c.hijacked = true
	_ = c.nc.SetDeadline(time.Time{})
	c.srv.untrack(c)
	if c.srv.Hijacked != nil {
		c.srv.Hijacked(c.nc)
	}
}

// lingerClose closes the connection as RFC 9112 §9.6 asks of a server:
// its own side first, then it reads and drops what the client still sends
// until the client closes too, for at most closeLingerTimeout (net/http
// waits as long). Closing at once while request bytes sit unread in the
// socket makes the kernel send RST, and a client still uploading a body
// that the server refused then sees "connection reset" instead of the
// response it was sent.
func (c *conn) lingerClose() {
	if c.shutdownWrite() == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(closeLingerTimeout))
		_, _ = io.Copy(io.Discard, c.nc)
	}
	_ = c.nc.Close()
}

// shutdownWrite sends FIN. The listener's connections wrap *net.TCPConn
// without CloseWrite, but they do expose the socket.
func (c *conn) shutdownWrite() error {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	if c.watch.rc == nil {
		return errors.ErrUnsupported
	}
	var serr error
	if err := c.watch.rc.Control(func(fd uintptr) {
		serr = syscall.Shutdown(int(fd), syscall.SHUT_WR)
	}); err != nil {
		return err
	}
	return serr
}

// headBuffered reports whether a complete request head is already in br,
// so that no read-header deadline is needed for it.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	// Empty lines before the request line (readLines skips them) do not
	// end a head: "\r\n\r\nGET / HTTP/1.1\r\n" is not a complete one.
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' && len(b) > 1 && b[1] == '\n') {
		if b[0] == '\r' {
			b = b[1:]
		}
		b = b[1:]
	}
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\n' && (b[i+1] == '\n' || b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n') {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return defaultMaxHeaderBytes
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) keepAlivesEnabled() bool {
	return !s.noKeepAlive.Load() && !s.inShutdown.Load()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// SetKeepAlivesEnabled turns keep-alive off (every response then closes its
// connection, and idle connections are closed now) or back on.
func (s *Server) SetKeepAlivesEnabled(v bool) {
	s.noKeepAlive.Store(!v)
	if !v {
		s.closeIdle()
	}
}

// closeIdle closes every connection waiting for its next request, and
// reports how many connections remain.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosing) {
			_ = c.nc.Close()
		}
	}
	return len(s.conns)
}

// Shutdown stops taking connections, closes idle ones, and waits for the
// active ones to finish their current request (each closes after it) or for
// ctx to end. Hijacked connections are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes every connection at once.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	return nil
}

// peerCloseWatch notices a client that closes its connection while its
// request is being served, and cancels the request's context so that the
// router stops waiting for the upstream (Envoy's downstream reset, flag DC).
//
// A request still running after peerCloseWatchDelay, whose body has been
// read to its end, gets a watcher goroutine. It peeks at the socket
// without consuming anything and, while there is nothing to read, waits in
// the runtime's poller: EOF or an error means the client is gone; bytes
// mean the client pipelined its next request, and watching stops. A
// request that ends sooner costs a timer reset and stop, and no syscall. At the end of
// the request the watcher is woken through a read deadline in the past.
//
// On a TLS connection the socket's bytes are records, not requests: a
// client's close_notify alert arrives as bytes before its FIN. There the
// watcher reads through the TLS layer into the connection's reader (as
// net/http's background read does): EOF or an error means the client is
// gone, and a pipelined request stays buffered for the next serveOne. A
// read timeout does not break a tls.Conn, so the same wake-up works.
type peerCloseWatch struct {
	c     *conn
	rc    syscall.RawConn // nil when the connection has no file descriptor
	tls   bool            // read through c.br instead of peeking at rc
	timer *time.Timer

	mu       sync.Mutex
	state    int
	bodyDone bool
	done     chan struct{}
	peerGone atomic.Bool
}

const (
	watchOff = iota
	watchArmed
	watchWaitingForBody
	watchRunning
)

var aLongTimeAgo = time.Unix(1, 0)

func (w *peerCloseWatch) init(c *conn) {
	w.c = c
	if _, ok := c.nc.(*tls.Conn); ok {
		w.tls = true
		w.done = make(chan struct{}, 1)
		return
	}
	if sc, ok := c.nc.(interface {
		SyscallConn() (syscall.RawConn, error)
	}); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
			w.done = make(chan struct{}, 1)
		}
	}
}

func (w *peerCloseWatch) arm(bodyDone bool) {
	if w.done == nil {
		return
	}
	w.mu.Lock()
	w.state = watchArmed
	w.bodyDone = bodyDone
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(peerCloseWatchDelay, w.fire)
	} else {
		w.timer.Reset(peerCloseWatchDelay)
	}
}

func (w *peerCloseWatch) fire() {
	w.mu.Lock()
	if w.state != watchArmed {
		w.mu.Unlock()
		return
	}
	if !w.bodyDone {
		// The body is still being read: the watcher would steal its bytes.
		w.state = watchWaitingForBody
		w.mu.Unlock()
		return
	}
	w.state = watchRunning
	w.mu.Unlock()
	w.run()
}

func (w *peerCloseWatch) bodyEnded() {
	if w.done == nil {
		return
	}
	w.mu.Lock()
	w.bodyDone = true
	if w.state == watchWaitingForBody {
		w.state = watchRunning
		w.mu.Unlock()
		go w.run()
		return
	}
	w.mu.Unlock()
}

func (w *peerCloseWatch) run() {
	defer func() { w.done <- struct{}{} }()
	if w.tls {
		if _, err := w.c.br.Peek(1); err != nil && !isTimeout(err) {
			w.peerGone.Store(true)
			w.c.cancel()
		}
		return
	}
	gone := false
	var b [1]byte
	// The peek comes first: readiness that arrived before this call (the
	// client may have closed already) is not reported again by the poller.
	_ = w.rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR: //nolint:errorlint // raw errno
			return false // nothing yet: wait for the socket to become readable
		case err != nil || n == 0:
			gone = true
		}
		return true // gone, or the client's next bytes arrived
	})
	if gone {
		w.peerGone.Store(true)
		w.c.cancel()
	}
}

// disarm ends watching for the current request and waits for a running
// watcher to return. It leaves the read deadline in the past when it had
// to wake one; the caller sets the next deadline.
func (w *peerCloseWatch) disarm() {
	if w.done == nil {
		return
	}
	w.mu.Lock()
	st := w.state
	w.state = watchOff
	w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	if st == watchRunning {
		_ = w.c.nc.SetReadDeadline(aLongTimeAgo)
		<-w.done
	}
}
