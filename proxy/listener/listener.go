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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Listener is one bound socket and the server currently serving it.
type Listener struct {
	sock *socket
	log  *slog.Logger

	mu  sync.Mutex
	cfg config.Listener
	srv *http.Server
	h   http.Handler
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
// socket and the old one finishes its requests.
func (l *Listener) Update(cfg *config.Listener) error {
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
		_ = old.Shutdown(ctx)
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
	l.srv.SetKeepAlivesEnabled(v)
}

// Shutdown stops accepting, waits for active requests until ctx ends, then
// closes the socket.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	srv := l.srv
	l.mu.Unlock()
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		_ = srv.Close()
	}
	l.sock.close()
	return err
}

// serve starts a server for cfg on the socket and makes it current.
func (l *Listener) serve(cfg *config.Listener) error {
	srv, err := newServer(cfg, l.h, l.log)
	if err != nil {
		return err
	}
	view := l.sock.view()
	l.mu.Lock()
	l.cfg = *cfg
	l.srv = srv
	l.mu.Unlock()
	go func() {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(view, "", "")
		} else {
			err = srv.Serve(view)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("listener stopped", "err", err)
		}
	}()
	return nil
}

// newServer builds the http.Server for a listener configuration.
func newServer(cfg *config.Listener, h http.Handler, log *slog.Logger) (*http.Server, error) {
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
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("listener %q: loading TLS certificate %s and key: %w", cfg.Name, cfg.TLS.CertFile, err)
		}
		minVersion := uint16(tls.VersionTLS12)
		if cfg.TLS.MinVersion == "1.3" {
			minVersion = tls.VersionTLS13
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion}
	}
	return srv, nil
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
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
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

// unwrapTracked finds the trackedConn under a TLS connection.
func unwrapTracked(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
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
