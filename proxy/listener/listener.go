// Package listener owns the proxy's downstream sockets and the servers on
// them: TLS termination, HTTP/1.1 with hopwatch's own codec (proxy/http1)
// on plaintext and TLS alike, HTTP/2 over TLS (ALPN) and h2c with prior
// knowledge with golang.org/x/net/http2, header size and count limits, one
// read-header deadline from accept, idle timeouts, and a connection limit.
//
// A socket outlives the servers that serve it. A hot reload that changes a
// listener's HTTP settings starts new servers on the same socket and
// gracefully shuts the old ones down, so no connection is refused and no
// request fails during the handover.
package listener

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"golang.org/x/net/http2"

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

// servers serve one listener configuration. Every connection is accepted
// by dispatch, which owns the read-header deadline from accept: it does the
// TLS handshake, tells HTTP/2 from HTTP/1 (ALPN on TLS, the connection
// preface on plaintext) and hands the connection to h1, hopwatch's own
// HTTP/1 codec, or to h2. No HTTP/1 request is parsed by net/http.
type servers struct {
	h1  *http1.Server // nil when the listener has no HTTP/1
	h2  *h2Server     // nil when the listener has no HTTP/2
	tls *tls.Config   // nil on a plaintext listener
	// readHeaderTimeout bounds the time from accept to the end of the
	// first request's head (for HTTP/2, to the end of the preface).
	readHeaderTimeout time.Duration
	log               *slog.Logger
	// view is what these servers accept from; closing it detaches them
	// from the socket.
	view net.Listener
}

func (s *servers) setKeepAlivesEnabled(v bool) {
	if s.h1 != nil {
		s.h1.SetKeepAlivesEnabled(v)
	}
}

func (s *servers) shutdown(ctx context.Context) error {
	_ = s.view.Close()
	var wg sync.WaitGroup
	var err1, err2 error
	if s.h1 != nil {
		wg.Go(func() { err1 = s.h1.Shutdown(ctx) })
	}
	if s.h2 != nil {
		wg.Go(func() { err2 = s.h2.shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(err1, err2)
}

func (s *servers) close() {
	if s.h1 != nil {
		_ = s.h1.Close()
	}
	if s.h2 != nil {
		s.h2.close()
	}
}

// Stats are the connection-level stats of a listener: Envoy's
// listener.<address>.*, the connection half of http.<stat_prefix>.*, and
// the HTTP/2 codec's http2.*.
type Stats struct {
	Listener *stats.ListenerStats
	HTTP     *stats.HTTPConnManagerStats
	// HTTP2 returns http2.*; it is called at the first HTTP/2 connection
	// (the proxy has already created them, at 0, for a listener with
	// HTTP/2 enabled).
	HTTP2 func() *stats.HTTP2CodecStats
}

// nullStats are the stats of a listener that was given none: counted in
// a null store of its own (stats.NewNullStore), so that the connection
// code never asks whether stats are on.
func nullStats(addr net.Addr) *Stats {
	store := stats.MustNewNullStore()
	return &Stats{
		Listener: store.ListenerStats(addr.String()),
		HTTP:     store.HTTPConnManagerStats("null"),
		HTTP2:    store.HTTP2CodecStats,
	}
}

// Listen binds cfg.Address and starts serving h on it. statsFor returns
// the stats for the bound address (which is only known once bound when
// the port is 0); nil, or a nil answer, counts in a null store.
func Listen(ctx context.Context, cfg *config.Listener, h http.Handler, statsFor func(addr net.Addr) *Stats, log *slog.Logger) (*Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
	}
	var st *Stats
	if statsFor != nil {
		st = statsFor(ln.Addr())
	}
	l := &Listener{sock: newSocket(ln, cfg.Limits.MaxConnections, st), log: log.With("listener", cfg.Name), h: h}
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

// CertNotAfter is the expiry of the leaf certificate handshakes present
// now (after a reload that failed to read new files, still the previous
// one); ok is false on a plaintext listener.
func (l *Listener) CertNotAfter() (notAfter time.Time, ok bool) {
	c := l.cert.Load()
	if c == nil || c.Leaf == nil {
		return time.Time{}, false
	}
	return c.Leaf.NotAfter, true
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
// change the stat_prefix); open connections keep theirs. Nil counts in a
// null store.
func (l *Listener) SetStats(st *Stats) { l.sock.setStats(st) }

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
	srv, err := newServer(cfg, l.h, l.log, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil }, l.sock.stats.Load)
	if err != nil {
		return err
	}
	view := l.sock.view()
	srv.view = view
	l.mu.Lock()
	l.cfg = *cfg
	l.srv = srv
	l.mu.Unlock()
	go srv.dispatch(view)
	return nil
}

// dispatch accepts the listener's connections and serves each on its own
// goroutine.
func (s *servers) dispatch(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.serveConn(c)
	}
}

// h2PrefaceStart starts every HTTP/2 connection's preface
// (http2.ClientPreface); no HTTP/1 method is PRI.
const h2PrefaceStart = "PRI "

// serveConn starts the connection's read-header deadline from accept, so
// that the TLS handshake, the protocol sniffing and the first request head
// share one budget (no step restarts it), then hands the connection to
// the server for its protocol.
func (s *servers) serveConn(c net.Conn) {
	deadline := s.headerDeadline(c)
	if !deadline.IsZero() {
		_ = c.SetReadDeadline(deadline)
	}
	if s.tls != nil {
		s.serveTLS(c, deadline)
		return
	}
	br := bufio.NewReaderSize(c, 4<<10)
	if s.h2 != nil {
		b, err := br.Peek(len(h2PrefaceStart))
		if err != nil && len(b) == 0 {
			s.endedEarly(c, err)
			return
		}
		if string(b) == h2PrefaceStart || s.h1 == nil {
			s.serveH2(c, br)
			return
		}
	}
	s.h1.ServeConn(c, br)
}

// serveTLS does the handshake within the read-header deadline and serves
// the connection by its ALPN protocol: "h2" with the HTTP/2 server,
// "http/1.1" or none with the HTTP/1 codec, as on plaintext.
func (s *servers) serveTLS(c net.Conn, deadline time.Time) {
	if !deadline.IsZero() {
		_ = c.SetWriteDeadline(deadline)
	}
	tc := tls.Server(c, s.tls)
	if err := tc.Handshake(); err != nil {
		s.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		s.endedEarly(c, err)
		return
	}
	_ = c.SetWriteDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS || s.h1 == nil {
		s.serveH2(tc, bufio.NewReaderSize(tc, len(http2.ClientPreface)))
		return
	}
	s.h1.ServeConn(tc, nil)
}

// serveH2 reads the client's connection preface within the read-header
// deadline, then lifts the deadline (HTTP/2 connections are bounded by the
// idle timeout from here) and hands the connection, with the bytes br read
// ahead, to the HTTP/2 server.
func (s *servers) serveH2(c net.Conn, br *bufio.Reader) {
	if _, err := br.Peek(len(http2.ClientPreface)); err != nil {
		s.endedEarly(c, err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	ahead, _ := br.Peek(br.Buffered())
	tc, _ := c.(*tls.Conn)
	s.h2.serveConn(newH2Conn(c, tc, bytes.Clone(ahead), s.h2.stats().HTTP2()))
}

// headerDeadline is when the connection's first request head (or HTTP/2
// preface) must be complete: readHeaderTimeout after accept.
func (s *servers) headerDeadline(c net.Conn) time.Time {
	if s.readHeaderTimeout <= 0 {
		return time.Time{}
	}
	return acceptedAt(c).Add(s.readHeaderTimeout)
}

// acceptedAt is when the socket accepted c (now, for a connection the
// listener did not accept).
func acceptedAt(c net.Conn) time.Time {
	if tc := unwrapTracked(c); tc != nil {
		return tc.start
	}
	return time.Now()
}

// endedEarly closes a connection that ended before any server took it
// (closed, timed out or failed its handshake before its first request),
// and counts how it ended.
func (s *servers) endedEarly(c net.Conn, err error) {
	if tc := unwrapTracked(c); tc != nil {
		tc.st.HTTP.RecordDestroy(!isTimeout(err), false)
	}
	_ = c.Close()
}

// newServer builds the servers for a listener configuration. stats
// returns the listener's current stats (nil when stats are off).
func newServer(cfg *config.Listener, h http.Handler, log *slog.Logger, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), stats func() *Stats) (*servers, error) {
	set := &servers{readHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(), log: log}
	http1On, http2On := slices.Contains(cfg.Protocols, "http1"), slices.Contains(cfg.Protocols, "http2")
	if cfg.TLS != nil {
		minVersion := uint16(tls.VersionTLS12)
		if cfg.TLS.MinVersion == "1.3" {
			minVersion = tls.VersionTLS13
		}
		set.tls = &tls.Config{GetCertificate: getCert, MinVersion: minVersion}
		if http2On {
			set.tls.NextProtos = append(set.tls.NextProtos, http2.NextProtoTLS)
		}
		if http1On {
			set.tls.NextProtos = append(set.tls.NextProtos, "http/1.1")
		}
	}
	if http2On {
		h2, err := newH2Server(cfg, h, log, stats)
		if err != nil {
			return nil, err
		}
		set.h2 = h2
	}
	if !http1On {
		return set, nil
	}
	set.h1 = &http1.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(),
		ConnAccepted:      acceptedAt,
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
			if tc == nil {
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
			if tc := unwrapTracked(c); tc != nil {
				tc.st.HTTP.DownstreamCxIdleTimeout.Inc()
			}
		},
		Ended: func(c net.Conn, remote, activeRequest bool) {
			if tc := unwrapTracked(c); tc != nil {
				tc.st.HTTP.RecordDestroy(remote, activeRequest)
			}
		},
		Hijacked: func(c net.Conn) {
			if tc := unwrapTracked(c); tc != nil {
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
	if cert.Leaf == nil { // LoadX509KeyPair fills it unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("listener %q: parsing TLS certificate %s: %w", cfg.Name, cfg.TLS.CertFile, err)
		}
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

// newSocket starts accepting on ln; connections count in st (nil: a null
// store), which is in place before the first accept.
func newSocket(ln net.Listener, maxConns int, st *Stats) *socket {
	s := &socket{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	s.maxConns.Store(int64(maxConns))
	s.setStats(st)
	go s.acceptLoop()
	return s
}

// setStats replaces the stats new connections count in; nil counts in a
// null store.
func (s *socket) setStats(st *Stats) {
	if st == nil {
		st = nullStats(s.ln.Addr())
	}
	s.stats.Store(st)
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
			st.Listener.DownstreamCxOverflow.Inc()
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

// view returns a net.Listener for one set of servers. Closing it (as
// their shutdown does) detaches them without closing the socket.
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
	st    *Stats
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
	c.st.Listener.DownstreamCxTotal.Inc()
	c.st.Listener.DownstreamCxActive.Inc()
	c.st.HTTP.DownstreamCxTotal.Inc()
	c.st.HTTP.DownstreamCxActive.Inc()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.st.HTTP.DownstreamCxRxBytesTotal.Add(uint64(n))
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.st.HTTP.DownstreamCxTxBytesTotal.Add(uint64(n))
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.active.Add(-1)
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
	if c.proto.Load() != 0 {
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
// connection handed to the HTTP/2 server.
func unwrapTracked(c net.Conn) *trackedConn {
	for {
		switch cc := c.(type) {
		case *trackedConn:
			return cc
		case *tls.Conn:
			c = cc.NetConn()
		case *h2Conn:
			c = cc.Conn
		case *tlsH2Conn:
			c = cc.Conn
		default:
			return nil
		}
	}
}

// MarkProtocol tells the listener which protocol the connection carrying
// req speaks; the connection manager calls it for every request and only
// the first call per connection counts.
func MarkProtocol(req *http.Request) {
	if tc, ok := req.Context().Value(connKey{}).(*trackedConn); ok && tc.proto.Load() == 0 {
		tc.markProtocol(req.ProtoMajor, req.TLS != nil)
	}
}
