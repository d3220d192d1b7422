// Package listener owns the proxy's downstream sockets and the HTTP servers
// on them: HTTP/1.1, HTTP/2 over TLS (ALPN) and h2c with prior knowledge,
// TLS termination, header size and count limits, read-header and idle
// timeouts, and a connection limit.
//
// A socket outlives the http.Server that serves it. A hot reload that
// changes a listener's HTTP settings starts a new server on the same socket
// and gracefully shuts the old one down, so no connection is refused and no
// request fails during the handover.
package listener

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/http1"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Listener is one bound socket and the servers currently serving it.
type Listener struct {
	sock *socket
	log  *slog.Logger

	mu  sync.Mutex
	cfg config.Listener
	srv *servers
	h   http.Handler
	// cert is the TLS certificate handshakes present. A reload re-reads
	// the files, so that a certificate rotated under the same paths takes
	// effect without a new server.
	cert atomic.Pointer[tls.Certificate]
}

// servers serve one listener configuration. Plaintext HTTP/1 connections go
// to hopwatch's own server (h1); TLS connections, and plaintext connections
// that open with the HTTP/2 preface, go to net/http's (h2).
type servers struct {
	h1 *http1.Server // nil on a TLS or HTTP/2-only listener
	h2 *http.Server
	// h2c takes the plaintext connections that h1's dispatcher recognised
	// as HTTP/2 with prior knowledge; nil when the listener has no HTTP/2.
	h2c *connQueue
	// readHeaderTimeout bounds the wait for the bytes that tell HTTP/1
	// from the HTTP/2 preface.
	readHeaderTimeout time.Duration
	// view is what these servers accept from; closing it detaches them
	// from the socket.
	view net.Listener
}

func (s *servers) setKeepAlivesEnabled(v bool) {
	s.h2.SetKeepAlivesEnabled(v)
	if s.h1 != nil {
		s.h1.SetKeepAlivesEnabled(v)
	}
}

func (s *servers) shutdown(ctx context.Context) error {
	_ = s.view.Close()
	var wg sync.WaitGroup
	var err1 error
	if s.h1 != nil {
		wg.Go(func() { err1 = s.h1.Shutdown(ctx) })
	}
	err2 := s.h2.Shutdown(ctx)
	wg.Wait()
	if s.h2c != nil {
		_ = s.h2c.Close()
	}
	return errors.Join(err1, err2)
}

func (s *servers) close() {
	_ = s.h2.Close()
	if s.h1 != nil {
		_ = s.h1.Close()
	}
}

// Stats are the connection-level stats of a listener: Envoy's
// listener.<address>.* and the connection half of http.<stat_prefix>.*.
type Stats struct {
	Listener *stats.ListenerStats
	HTTP     *stats.HTTPConnManagerStats
}

// Listen binds cfg.Address and starts serving h on it. statsFor, when not
// nil, returns the stats for the bound address (which is only known once
// bound when the port is 0).
func Listen(ctx context.Context, cfg *config.Listener, h http.Handler, statsFor func(addr net.Addr) *Stats, log *slog.Logger) (*Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
	}
	l := &Listener{sock: newSocket(ln, cfg.Limits.MaxConnections), log: log.With("listener", cfg.Name), h: h}
	if statsFor != nil {
		l.sock.stats.Store(statsFor(ln.Addr()))
	}
	if cfg.TLS != nil {
		cert, err := loadCert(cfg)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		l.cert.Store(cert)
	}
	if err := l.serve(cfg); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return l, nil
}

// Addr is the bound address (useful with port 0).
func (l *Listener) Addr() net.Addr { return l.sock.ln.Addr() }

// Config returns the listener's current configuration.
func (l *Listener) Config() config.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

// Update applies a reloaded configuration for the same address. Route and
// cluster changes never reach here (they live in the handler's snapshot);
// when the server settings themselves changed, a new server takes over the
// socket and the old one finishes its requests. The TLS certificate and
// key are read again in any case; when they cannot be, the update fails
// and the listener keeps its previous certificate and settings.
func (l *Listener) Update(cfg *config.Listener) error {
	if cfg.TLS != nil {
		cert, err := loadCert(cfg)
		if err != nil {
			return err
		}
		if old := l.cert.Swap(cert); old != nil && !bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
			l.log.Info("TLS certificate reloaded", "cert_file", cfg.TLS.CertFile)
		}
	}
	l.mu.Lock()
	same := serverSettingsEqual(&l.cfg, cfg)
	l.mu.Unlock()
	l.sock.maxConns.Store(int64(cfg.Limits.MaxConnections))
	if same {
		l.mu.Lock()
		l.cfg = *cfg
		l.mu.Unlock()
		return nil
	}
	l.mu.Lock()
	old := l.srv
	l.mu.Unlock()
	if err := l.serve(cfg); err != nil {
		return err
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = old.shutdown(ctx)
	}()
	l.log.Info("listener server settings changed; new connections use the new settings")
	return nil
}

// SetStats replaces the stats new connections count in (a reload may
// change the stat_prefix); open connections keep theirs.
func (l *Listener) SetStats(st *Stats) { l.sock.stats.Store(st) }

// SetKeepAlivesEnabled turns HTTP/1 keep-alive off while draining.
func (l *Listener) SetKeepAlivesEnabled(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.srv.setKeepAlivesEnabled(v)
}

// Shutdown stops accepting, waits for active requests until ctx ends, then
// closes the socket.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	srv := l.srv
	l.mu.Unlock()
	err := srv.shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		srv.close()
	}
	l.sock.close()
	return err
}

// serve starts a server for cfg on the socket and makes it current.
func (l *Listener) serve(cfg *config.Listener) error {
	srv, err := newServer(cfg, l.h, l.log, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil })
	if err != nil {
		return err
	}
	view := l.sock.view()
	srv.view = view
	l.mu.Lock()
	l.cfg = *cfg
	l.srv = srv
	l.mu.Unlock()
	if srv.h1 != nil {
		go srv.dispatch(view)
	}
	go func() {
		var err error
		switch {
		case srv.h2.TLSConfig != nil:
			err = srv.h2.ServeTLS(view, "", "")
		case srv.h1 == nil:
			err = srv.h2.Serve(view)
		case srv.h2c != nil:
			err = srv.h2.Serve(srv.h2c)
		default:
			return // HTTP/1 only: h1 serves everything
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("listener stopped", "err", err)
		}
	}()
	return nil
}

// dispatch accepts the plaintext connections of a listener that speaks
// HTTP/1 and serves each with h1, unless it opens with the HTTP/2 preface.
func (s *servers) dispatch(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.serveConn(c)
	}
}

// h2Preface starts every HTTP/2 connection ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
// no HTTP/1 method is PRI.
const h2PrefaceStart = "PRI "

func (s *servers) serveConn(c net.Conn) {
	br := bufio.NewReaderSize(c, 4<<10)
	if s.h2c != nil {
		if s.readHeaderTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.readHeaderTimeout))
		}
		b, err := br.Peek(len(h2PrefaceStart))
		if err != nil && len(b) == 0 {
			// Closed (or timed out) before its first byte: no server saw
			// it, so its end is counted here.
			if tc := unwrapTracked(c); tc != nil && tc.st != nil {
				tc.st.HTTP.RecordDestroy(!isTimeout(err), false)
			}
			_ = c.Close()
			return
		}
		if string(b) == h2PrefaceStart {
			_ = c.SetReadDeadline(time.Time{})
			if !s.h2c.push(&peekedConn{Conn: c, br: br}) {
				_ = c.Close()
			}
			return
		}
	}
	s.h1.ServeConn(c, br)
}

// newServer builds the servers for a listener configuration.
func newServer(cfg *config.Listener, h http.Handler, log *slog.Logger, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*servers, error) {
	h2, err := newNetHTTPServer(cfg, h, log, getCert)
	if err != nil {
		return nil, err
	}
	set := &servers{h2: h2, readHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D()}
	if cfg.TLS != nil || !slices.Contains(cfg.Protocols, "http1") {
		return set, nil
	}
	if slices.Contains(cfg.Protocols, "http2") {
		set.h2c = newConnQueue()
	}
	set.h1 = &http1.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.Limits.IdleTimeout.D(),
		MaxHeaderBytes:    cfg.Limits.MaxRequestHeadersKB * 1024,
		BaseContext: func(c net.Conn) context.Context {
			ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, c.LocalAddr())
			if tc := unwrapTracked(c); tc != nil {
				ctx = context.WithValue(ctx, connKey{}, tc)
			}
			return ctx
		},
		Rejected: func(c net.Conn, status int, err error) {
			log.Debug("refused a request before routing", "remote", c.RemoteAddr().String(), "status", status, "err", err)
			if rr, ok := h.(RejectionRecorder); ok && status != 0 {
				rr.RecordRejected(c.RemoteAddr().String(), status)
			}
			tc := unwrapTracked(c)
			if tc == nil || tc.st == nil {
				return
			}
			switch {
			case status != 0:
				tc.st.HTTP.DownstreamCxProtocolError.Inc()
			case isTimeout(err):
				tc.st.HTTP.DownstreamRqHeaderTimeout.Inc()
			}
		},
		IdleClosed: func(c net.Conn) {
			if tc := unwrapTracked(c); tc != nil && tc.st != nil {
				tc.st.HTTP.DownstreamCxIdleTimeout.Inc()
			}
		},
		Ended: func(c net.Conn, remote, activeRequest bool) {
			if tc := unwrapTracked(c); tc != nil && tc.st != nil {
				tc.st.HTTP.RecordDestroy(remote, activeRequest)
			}
		},
		Hijacked: func(c net.Conn) {
			if tc := unwrapTracked(c); tc != nil && tc.st != nil {
				tc.upgraded.Store(true)
				tc.st.HTTP.DownstreamCxUpgradesTotal.Inc()
				tc.st.HTTP.DownstreamCxUpgradesActive.Inc()
			}
		},
		Log: log,
	}
	return set, nil
}

// RejectionRecorder is implemented by a handler that accounts for the
// requests hopwatch's HTTP/1 codec refuses before they reach it (the
// connection manager logs and counts them, as Envoy does for a codec
// error answered with a local reply). The reason is in the response body
// and in the proxy's debug log.
type RejectionRecorder interface {
	RecordRejected(remoteAddr string, status int)
}

// newNetHTTPServer builds net/http's server, which serves TLS connections
// (HTTP/1.1 and HTTP/2 by ALPN) and h2c.
func newNetHTTPServer(cfg *config.Listener, h http.Handler, log *slog.Logger, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*http.Server, error) {
	var protos http.Protocols
	for _, p := range cfg.Protocols {
		switch p {
		case "http1":
			protos.SetHTTP1(true)
		case "http2":
			if cfg.TLS != nil {
				protos.SetHTTP2(true)
			} else {
				protos.SetUnencryptedHTTP2(true)
			}
		}
	}
	maxHeader := cfg.Limits.MaxRequestHeadersKB * 1024
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.Limits.IdleTimeout.D(),
		MaxHeaderBytes:    maxHeader,
		Protocols:         &protos,
		HTTP2: &http.HTTP2Config{
			MaxDecoderHeaderTableSize: 4096,
			MaxReadFrameSize:          1 << 20,
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// Hand each connection's bookkeeping to its requests, so that the
		// first request can tell the connection's protocol.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc := unwrapTracked(c); tc != nil {
				return context.WithValue(ctx, connKey{}, tc)
			}
			return ctx
		},
	}
	if cfg.TLS != nil {
		minVersion := uint16(tls.VersionTLS12)
		if cfg.TLS.MinVersion == "1.3" {
			minVersion = tls.VersionTLS13
		}
		srv.TLSConfig = &tls.Config{GetCertificate: getCert, MinVersion: minVersion}
	}
	return srv, nil
}

// isTimeout reports whether err is a network timeout (a deadline passed).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// loadCert reads a TLS listener's certificate chain and key.
func loadCert(cfg *config.Listener) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("listener %q: loading TLS certificate %s and key %s: %w", cfg.Name, cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
	}
	return &cert, nil
}

// serverSettingsEqual reports whether two listener configurations build
// identical servers, so that a reload can keep the running one.
func serverSettingsEqual(a, b *config.Listener) bool {
	return reflect.DeepEqual(a.TLS, b.TLS) &&
		reflect.DeepEqual(a.Protocols, b.Protocols) &&
		a.Limits.MaxRequestHeadersKB == b.Limits.MaxRequestHeadersKB &&
		a.Limits.ReadHeaderTimeout == b.Limits.ReadHeaderTimeout &&
		a.Limits.IdleTimeout == b.Limits.IdleTimeout
}

// socket accepts connections on one bound address and hands them to
// whichever server currently serves it.
type socket struct {
	ln       net.Listener
	conns    chan net.Conn
	done     chan struct{}
	once     sync.Once
	active   atomic.Int64
	maxConns atomic.Int64
	stats    atomic.Pointer[Stats]
	// Overflow counts connections refused by max_connections.
	Overflow atomic.Uint64
}

func newSocket(ln net.Listener, maxConns int) *socket {
	s := &socket{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	s.maxConns.Store(int64(maxConns))
	go s.acceptLoop()
	return s
}

func (s *socket) acceptLoop() {
	var tempDelay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if isTimeout(err) {
				continue
			}
			select {
			case <-s.done:
				return
			default:
			}
			// Out of file descriptors and similar: back off as net/http does.
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else {
				tempDelay = min(2*tempDelay, time.Second)
			}
			time.Sleep(tempDelay)
			continue
		}
		tempDelay = 0
		st := s.stats.Load()
		if limit := s.maxConns.Load(); limit > 0 && s.active.Load() >= limit {
			s.Overflow.Add(1)
			if st != nil {
				st.Listener.DownstreamCxOverflow.Inc()
			}
			_ = c.Close()
			continue
		}
		s.active.Add(1)
		tc := &trackedConn{Conn: c, s: s, st: st, start: time.Now()}
		tc.opened()
		select {
		case s.conns <- tc:
		case <-s.done:
			_ = c.Close()
			return
		}
	}
}

func (s *socket) close() {
	s.once.Do(func() {
		close(s.done)
		_ = s.ln.Close()
	})
}

// view returns a net.Listener for one server. Closing it (as
// http.Server.Shutdown does) detaches that server without closing the socket.
func (s *socket) view() net.Listener {
	return &socketView{s: s, closed: make(chan struct{})}
}

type socketView struct {
	s      *socket
	closed chan struct{}
	once   sync.Once
}

func (v *socketView) Accept() (net.Conn, error) {
	// Check closed first so that a detached server never takes a
	// connection that its successor is waiting for.
	select {
	case <-v.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-v.s.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.s.done:
		return nil, net.ErrClosed
	}
}

func (v *socketView) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *socketView) Addr() net.Addr { return v.s.ln.Addr() }

// trackedConn counts one downstream connection in the socket's active
// count and in the listener's stats, from accept to close.
type trackedConn struct {
	net.Conn
	s     *socket
	st    *Stats // nil when stats are off
	start time.Time
	once  sync.Once
	// proto is 0 until the first request says 1 (HTTP/1.x) or 2 (HTTP/2).
	proto atomic.Int32
	tls   atomic.Bool
	// upgraded: a handler took the connection over (WebSocket and
	// friends); it counts in downstream_cx_upgrades_active until closed.
	upgraded atomic.Bool
}

func (c *trackedConn) opened() {
	if c.st == nil {
		return
	}
	c.st.Listener.DownstreamCxTotal.Inc()
	c.st.Listener.DownstreamCxActive.Inc()
	c.st.HTTP.DownstreamCxTotal.Inc()
	c.st.HTTP.DownstreamCxActive.Inc()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.st != nil {
		c.st.HTTP.DownstreamCxRxBytesTotal.Add(uint64(n))
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.st != nil {
		c.st.HTTP.DownstreamCxTxBytesTotal.Add(uint64(n))
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.active.Add(-1)
		if c.st == nil {
			return
		}
		ms := uint64(max(time.Since(c.start).Milliseconds(), 0))
		c.st.Listener.DownstreamCxDestroy.Inc()
		c.st.Listener.DownstreamCxActive.Dec()
		c.st.Listener.DownstreamCxLengthMs.Record(ms)
		h := c.st.HTTP
		h.DownstreamCxDestroy.Inc()
		h.DownstreamCxActive.Dec()
		h.DownstreamCxLengthMs.Record(ms)
		switch c.proto.Load() {
		case 1:
			h.DownstreamCxHTTP1Active.Dec()
		case 2:
			h.DownstreamCxHTTP2Active.Dec()
		}
		if c.tls.Load() {
			h.DownstreamCxSslActive.Dec()
		}
		if c.upgraded.Load() {
			h.DownstreamCxUpgradesActive.Dec()
		}
	})
	return c.Conn.Close()
}

// markProtocol records the connection's protocol at its first request.
func (c *trackedConn) markProtocol(major int, isTLS bool) {
	if c.st == nil || c.proto.Load() != 0 {
		return
	}
	p := int32(1)
	if major == 2 {
		p = 2
	}
	if !c.proto.CompareAndSwap(0, p) {
		return
	}
	h := c.st.HTTP
	if p == 2 {
		h.DownstreamCxHTTP2Total.Inc()
		h.DownstreamCxHTTP2Active.Inc()
	} else {
		h.DownstreamCxHTTP1Total.Inc()
		h.DownstreamCxHTTP1Active.Inc()
	}
	if isTLS {
		c.tls.Store(true)
		h.DownstreamCxSslTotal.Inc()
		h.DownstreamCxSslActive.Inc()
	}
}

type connKey struct{}

// SyscallConn exposes the socket to hopwatch's HTTP/1 server, which
// watches it for the client closing while a request runs.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// unwrapTracked finds the trackedConn under a TLS connection or a
// connection handed over to the h2c server.
func unwrapTracked(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if pc, ok := c.(*peekedConn); ok {
		c = pc.Conn
	}
	tc, _ := c.(*trackedConn)
	return tc
}

// MarkProtocol tells the listener which protocol the connection carrying
// req speaks; the connection manager calls it for every request and only
// the first call per connection counts.
func MarkProtocol(req *http.Request) {
	if tc, ok := req.Context().Value(connKey{}).(*trackedConn); ok && tc.proto.Load() == 0 {
		tc.markProtocol(req.ProtoMajor, req.TLS != nil)
	}
}

// peekedConn is a connection whose first bytes were read to tell HTTP/1
// from HTTP/2: reads come through the reader that holds them.
type peekedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// connQueue is the net.Listener through which the HTTP/1 dispatcher hands
// h2c connections to net/http's server.
type connQueue struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c over; false means the queue was closed and c was not taken.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return queueAddr{} }

type queueAddr struct{}

func (queueAddr) Network() string { return "h2c" }
func (queueAddr) String() string  { return "h2c-handoff" }
