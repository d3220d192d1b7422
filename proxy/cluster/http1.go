package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/proxy/http1"
)

// http1Transport is the HTTP/1.1 upstream client of a cluster: a keep-alive
// connection pool per host whose request and response are written and read
// on the calling goroutine.
//
// net/http's Transport gives every connection a read goroutine and a write
// goroutine and hands each request and response between them and the
// caller over channels. On a proxy's hot path those hand-offs are a large
// share of the CPU (two goroutine wake-ups per request, on top of the
// server's own). Here a request without a body is written, and its response
// read, by the goroutine that forwards it; only a request whose body is
// still streaming in gets a writer goroutine, so that the response can flow
// back while the body is sent (full duplex, as Envoy does).
//
// A protocol upgrade (WebSocket) goes through the same codec: the request
// is written exactly as the connection manager left it (nothing added, no
// default User-Agent), and a 101 answer hands the connection itself to the
// caller as the response body. CONNECT is refused: the connection manager
// never forwards one.
//
// A pooled connection that the upstream closed while it sat idle is found
// before reuse by a non-blocking peek at the socket (one recvfrom with
// MSG_PEEK|MSG_DONTWAIT), instead of by a read goroutine parked on every
// idle connection. A connection that still fails on first use is retried
// once on a fresh one when the request can be replayed (net/http's rule:
// no body, and an idempotent method).
type http1Transport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration
	// handIdle, when set, is offered every connection before it goes back
	// in the pool, for a request whose dial waits for a circuit-breaker
	// slot (circuit_breaker.go, idlePool); true means it was taken.
	// connIdle, when set, is told of every connection that went idle.
	handIdle func(addr string, pc any) bool
	connIdle func(addr string)

	mu     sync.Mutex
	idle   map[string][]*http1Conn // by host:port, most recently used last
	closed bool
	sweep  *time.Timer
}

func newHTTP1Transport(dial func(context.Context, string, string) (net.Conn, error), maxIdle int, idleTimeout time.Duration) *http1Transport {
	return &http1Transport{
		dial:        dial,
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		idle:        map[string][]*http1Conn{},
	}
}

// peekAfterIdle is how long a connection must have been idle before reuse
// peeks at its socket. Upstreams close idle connections after keep-alive
// timeouts of a second or more; one that closes sooner says so with
// Connection: close. A connection handed straight from one request to the
// next — the busy case — skips the system call; the stale-connection retry
// still covers what slips through.
const peekAfterIdle = 10 * time.Millisecond

// errStaleConn marks a failure on a reused connection before any byte of
// the response arrived: the upstream had closed it while it was idle.
var errStaleConn = errors.New("pooled connection closed by the upstream")

// errConnect refuses a CONNECT request: hopwatch does not open tunnels to
// an authority a client names.
var errConnect = errors.New("http1: CONNECT is not supported upstream")

// RoundTrip implements http.RoundTripper.
func (t *http1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodConnect {
		return nil, errConnect
	}
	ctx := req.Context()
	for retried := false; ; retried = true {
		pc, err := t.getConn(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		res, err := pc.roundTrip(req)
		if err == nil {
			return res, nil
		}
		if errors.Is(err, errStaleConn) && !retried && replayable(req) && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

// replayable reports whether a request may be sent again after its first
// connection failed before answering: net/http's rule.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// CloseIdleConnections closes every pooled connection and stops pooling:
// connections in use are closed when their exchange ends. The cluster calls
// it when it is removed or replaced.
func (t *http1Transport) CloseIdleConnections() {
	t.mu.Lock()
	t.closed = true
	idle := t.idle
	t.idle = map[string][]*http1Conn{}
	if t.sweep != nil {
		t.sweep.Stop()
	}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.conn.Close()
		}
	}
}

// getConn returns a pooled connection to addr that is still open, or dials
// a new one.
func (t *http1Transport) getConn(ctx context.Context, addr string) (*http1Conn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		idle := now.Sub(pc.idleSince)
		if idle < t.idleTimeout && (idle < peekAfterIdle || pc.stillOpen()) {
			pc.reused = true
			return pc, nil
		}
		pc.conn.Close()
	}
	conn, err := t.dial(withIdlePool(ctx, t), "tcp", addr)
	var handoff *idleHandoff
	if errors.As(err, &handoff) {
		// The circuit breaker had this request wait for a connection slot,
		// and the pool was handed back a connection first: take that.
		pc := handoff.conn.(*http1Conn)
		pc.reused = true
		return pc, nil
	}
	if errors.Is(err, errIdleConn) {
		// A connection turned idle just before the wait began: look again.
		return t.getConn(ctx, addr)
	}
	if err != nil {
		return nil, err
	}
	pc := &http1Conn{t: t, addr: addr, conn: conn}
	pc.unblock = func() { _ = pc.conn.SetDeadline(aLongTimeAgo) }
	pc.lr = limitedReader{r: conn}
	pc.br = bufio.NewReaderSize(&pc.lr, 16<<10)
	pc.bw = bufio.NewWriterSize(conn, 16<<10)
	return pc, nil
}

// putIdle returns a connection whose exchange ended cleanly to the pool.
func (t *http1Transport) putIdle(pc *http1Conn) {
	pc.idleSince = time.Now()
	pc.reused = false
	if t.handIdle != nil && t.handIdle(pc.addr, pc) {
		return
	}
	t.mu.Lock()
	if t.closed || len(t.idle[pc.addr]) >= t.maxIdle {
		t.mu.Unlock()
		pc.conn.Close()
		return
	}
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.sweepInterval(), t.sweepIdle)
	}
	t.mu.Unlock()
	if t.connIdle != nil {
		t.connIdle(pc.addr)
	}
}

// hasIdle implements idlePool.
func (t *http1Transport) hasIdle(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idle[addr]) > 0
}

func (t *http1Transport) sweepInterval() time.Duration {
	return min(max(t.idleTimeout/2, time.Second), time.Minute)
}

// sweepIdle closes connections idle longer than idle_timeout. Reuse takes
// the most recently used connection, so without a sweep the least used
// ones would never be looked at again.
func (t *http1Transport) sweepIdle() {
	now := time.Now()
	var expired []*http1Conn
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for addr, list := range t.idle {
		keep := list[:0]
		for _, pc := range list {
			if now.Sub(pc.idleSince) >= t.idleTimeout {
				expired = append(expired, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = keep
		}
	}
	t.sweep.Reset(t.sweepInterval())
	t.mu.Unlock()
	for _, pc := range expired {
		pc.conn.Close()
	}
}

// http1Conn is one upstream HTTP/1.1 connection. Only one exchange uses it
// at a time: it is either in the pool or owned by one request.
type http1Conn struct {
	t    *http1Transport
	addr string
	conn net.Conn
	lr   limitedReader
	br   *bufio.Reader
	bw   *bufio.Writer

	// unblock makes the blocked reads and writes of an exchange return;
	// made once per connection rather than once per exchange.
	unblock func()

	idleSince time.Time
	reused    bool
	// bodyErr is set by the body writer when reading the request body
	// failed; such a connection is closed and never pooled again.
	bodyErr atomic.Pointer[RequestBodyError]
}

// limitedReader bounds the bytes read while response headers are parsed,
// so that an upstream cannot make the proxy buffer headers without limit.
// n < 0 means no limit.
type limitedReader struct {
	r io.Reader
	n int64
}

var errHeadersTooLarge = fmt.Errorf("malformed HTTP response: headers exceed %d bytes", maxResponseHeaderBytes)

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads
// and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends req and reads the response headers. On success the
// response body owns the connection until EOF or Close.
func (pc *http1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// Cancellation (route or per-try timeout, client gone) unblocks the
	// socket; the exchange then fails and the connection is not reused.
	stop := context.AfterFunc(ctx, pc.unblock)

	hasBody := req.Body != nil && req.Body != http.NoBody
	var writeDone chan error
	if hasBody {
		// The body may still be arriving from the client while the
		// upstream answers: write it concurrently.
		writeDone = make(chan error, 1)
		go func() { writeDone <- pc.writeStreamed(req) }()
	} else if err := pc.writeRequest(req); err != nil {
		return nil, pc.fail(ctx, stop, err, false)
	}

	pc.lr.n = maxResponseHeaderBytes
	var res *http.Response
	var err error
	for {
		res, err = http1.ReadResponse(pc.br, req, maxResponseHeaderBytes)
		if err != nil || res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 100 Continue and other informational responses precede the
		// real one; the router has nothing to do with them.
		pc.lr.n = maxResponseHeaderBytes
	}
	pc.lr.n = -1
	if err != nil {
		// fail closes the connection, which also stops a writer still
		// sending the body.
		return nil, pc.fail(ctx, stop, err, true)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return pc.switched(req, res, stop, writeDone)
	}
	body := &http1Body{pc: pc, rc: res.Body, stop: stop, writeDone: writeDone, reusable: !res.Close && !req.Close}
	if res.Body == http.NoBody {
		body.finish(true)
		return res, nil
	}
	res.Body = body
	return res, nil
}

// writeRequest writes req and flushes it.
func (pc *http1Conn) writeRequest(req *http.Request) error {
	return http1.WriteRequest(pc.bw, req)
}

// RequestBodyError is the transport's error for an exchange that failed
// because the request body could not be read from its source (for a
// proxied request, the client sent a malformed or truncated body, or went
// away). The upstream is not at fault, and the connection that carried the
// partial request has been closed.
type RequestBodyError struct{ Err error }

// Error says the request body failed and why.
func (e *RequestBodyError) Error() string { return "reading the request body: " + e.Err.Error() }

// Unwrap returns the body's read error.
func (e *RequestBodyError) Unwrap() error { return e.Err }

// sourceBody is a request body whose read errors are told apart from
// errors writing to the upstream connection.
type sourceBody struct {
	rc  io.ReadCloser
	err error // first read error other than io.EOF
}

func (b *sourceBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.err == nil { //nolint:errorlint // io.EOF is returned unwrapped by contract
		b.err = err
	}
	return n, err
}

func (b *sourceBody) Close() error { return b.rc.Close() }

// writeStreamed writes a request whose body is sent concurrently with
// reading the response. When reading the body fails, the upstream has a
// partial request and would wait for the rest, and the response read with
// it, until a timeout: the connection is closed at once, which ends both,
// and the exchange fails with a *RequestBodyError. A failure to write to
// the upstream closes nothing here: an upstream that answered early and
// closed its side still has its response read.
func (pc *http1Conn) writeStreamed(req *http.Request) error {
	src := &sourceBody{rc: req.Body}
	out := *req
	out.Body = src
	err := pc.writeRequest(&out)
	if err != nil && src.err != nil {
		berr := &RequestBodyError{Err: src.err}
		pc.bodyErr.Store(berr)
		pc.conn.Close()
		return berr
	}
	return err
}

// fail closes the connection after a failed exchange and returns the error
// the router classifies: a *RequestBodyError when the request body failed,
// the context's when it was cancelled, errStaleConn when a reused
// connection failed before any response byte.
func (pc *http1Conn) fail(ctx context.Context, stop func() bool, err error, reading bool) error {
	stop()
	pc.conn.Close()
	if berr := pc.bodyErr.Load(); berr != nil {
		return berr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("upstream exchange cancelled: %w", context.Cause(ctx))
	}
	if pc.reused && (!reading || pc.br.Buffered() == 0 && isConnGone(err)) {
		return fmt.Errorf("%w: %w", errStaleConn, err)
	}
	if reading && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return fmt.Errorf("upstream closed the connection before a complete response: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// isConnGone reports whether err means the peer closed or reset the
// connection, rather than sending something malformed.
func isConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// stillOpen peeks at an idle connection without blocking: a pooled
// connection must have nothing to read. Data or EOF means the upstream
// closed it (or broke the protocol) while it was idle.
func (pc *http1Conn) stillOpen() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	sc, ok := rawConn(pc.conn).(syscall.Conn)
	if !ok {
		return true // cannot peek; the stale-connection retry covers it
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	var buf [1]byte
	cerr := raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0: // unsolicited bytes: not a clean idle connection
			open = false
		case n == 0 && err == nil: // EOF
			open = false
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK: //nolint:errorlint // raw errno
		default:
			open = false
		}
		return true // never wait for readiness
	})
	return open && cerr == nil
}

// rawConn digs through wrappers (TLS, stats) to the socket.
func rawConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = u.NetConn()
	}
}

// http1Body is a response body that returns its connection to the pool at
// EOF, or closes it when the reader gives up early.
type http1Body struct {
	pc        *http1Conn
	rc        io.ReadCloser
	stop      func() bool
	writeDone chan error
	reusable  bool
	done      bool
}

func (b *http1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF { //nolint:errorlint // io.EOF is returned unwrapped by contract
		b.finish(true)
		return n, io.EOF
	}
	if err != nil {
		b.finish(false)
		if berr := b.pc.bodyErr.Load(); berr != nil {
			// The body writer closed the connection under the response.
			return n, berr
		}
	}
	return n, err
}

// Close ends the exchange; a body not read to the end costs the connection.
func (b *http1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish hands the connection back to the pool when the whole exchange
// ended cleanly, and closes it otherwise.
func (b *http1Body) finish(complete bool) {
	b.done = true
	pc := b.pc
	reuse := complete && b.reusable
	if b.writeDone != nil {
		select {
		case err := <-b.writeDone:
			reuse = reuse && err == nil
		default:
			// The upstream answered before taking the whole request
			// body; the connection is in an unknown state.
			reuse = false
		}
	}
	if !b.stop() {
		reuse = false // cancellation already poisoned the socket's deadline
	}
	if !reuse {
		// Closing also fails a writer still sending the request body; it
		// reports into a buffered channel and exits without a reader.
		pc.conn.Close()
		return
	}
	pc.t.putIdle(pc)
}

// switched completes an exchange the upstream answered with 101 Switching
// Protocols: the connection leaves the pool for good and becomes the
// response body, an io.ReadWriteCloser over the raw connection that starts
// with whatever the upstream sent past the response head.
func (pc *http1Conn) switched(req *http.Request, res *http.Response, stop func() bool, writeDone chan error) (*http.Response, error) {
	if req.Header.Get("Upgrade") == "" {
		pc.conn.Close()
		stop()
		return nil, errors.New("malformed HTTP response: 101 Switching Protocols to a request that asked for no upgrade")
	}
	if writeDone != nil {
		// An upgrade request with a body: the body precedes the switch
		// on the wire, so it must be all out before the tunnel writes.
		if err := <-writeDone; err != nil {
			return nil, pc.fail(req.Context(), stop, err, false)
		}
	}
	if !stop() {
		// Cancelled while the head arrived: the deadline is poisoned.
		pc.conn.Close()
		return nil, fmt.Errorf("upstream exchange cancelled: %w", context.Cause(req.Context()))
	}
	res.Body = &switchedConn{pc: pc}
	return res, nil
}

// switchedConn is the body of a 101 response: the upgraded connection.
type switchedConn struct {
	pc   *http1Conn
	once sync.Once
}

// Read returns the bytes buffered past the response head first.
func (s *switchedConn) Read(p []byte) (int, error) { return s.pc.br.Read(p) }

func (s *switchedConn) Write(p []byte) (int, error) { return s.pc.conn.Write(p) }

// Close closes the connection; it never goes back to the pool.
func (s *switchedConn) Close() error {
	var err error
	s.once.Do(func() { err = s.pc.conn.Close() })
	return err
}
