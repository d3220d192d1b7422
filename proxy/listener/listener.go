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

// Listen binds cfg.Address and starts serving h on it.
func Listen(ctx context.Context, cfg *config.Listener, h http.Handler, log *slog.Logger) (*Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
	}
	l := &Listener{sock: newSocket(ln, cfg.Limits.MaxConnections), log: log.With("listener", cfg.Name), h: h}
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
		if limit := s.maxConns.Load(); limit > 0 && s.active.Load() >= limit {
			s.Overflow.Add(1)
			_ = c.Close()
			continue
		}
		s.active.Add(1)
		select {
		case s.conns <- &trackedConn{Conn: c, s: s}:
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

// trackedConn decrements the socket's active count once on close.
type trackedConn struct {
	net.Conn
	s    *socket
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.s.active.Add(-1) })
	return c.Conn.Close()
}
