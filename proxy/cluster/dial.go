package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// ConnectError wraps every failure to set up an upstream connection: refused,
// unreachable, connect timeout, TLS handshake failure or a failed ALPN
// negotiation. The proxy tells a connect failure (Envoy's response flag UF,
// retry_on connect-failure) from a reset after connect (UR, UC) with
// errors.As(err, new(*cluster.ConnectError)).
type ConnectError struct {
	// Addr is the upstream "ip:port" that was dialed.
	Addr string
	// Timeout is true when connect_timeout (or the caller's deadline)
	// expired before the connection was ready.
	Timeout bool
	// Err is the underlying error.
	Err error
}

// Error implements error.
func (e *ConnectError) Error() string {
	if e.Timeout {
		return fmt.Sprintf("upstream connect to %s timed out: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("upstream connect to %s failed: %v", e.Addr, e.Err)
}

// Unwrap returns the underlying error.
func (e *ConnectError) Unwrap() error { return e.Err }

// DialObserver is the hook for upstream connection stats (Envoy's
// upstream_cx_total, upstream_cx_connect_fail, upstream_cx_connect_timeout,
// upstream_cx_connect_ms). Every connection attempt of a cluster is reported
// exactly once, after TCP connect and, for TLS clusters, the handshake.
//
// Implementations must be safe for concurrent use and fast: they run on the
// dialing goroutine.
type DialObserver interface {
	// DialDone reports one connection attempt to addr ("ip:port") of the
	// named cluster: how long it took and its error, nil on success or a
	// *ConnectError.
	DialDone(ctx context.Context, cluster, addr string, elapsed time.Duration, err error)
}

// ConnObserver is an optional extension of DialObserver: when the observer
// implements it, every established upstream connection is passed through
// WrapConn, so that its bytes and its close can be counted (Envoy's
// upstream_cx_active, upstream_cx_destroy*, upstream_cx_length_ms and
// upstream_cx_{rx,tx}_bytes_total). For TLS clusters the TCP connection
// beneath TLS is wrapped, so net/http still gets the *tls.Conn it needs to
// detect HTTP/2, and the bytes counted are the bytes on the wire.
type ConnObserver interface {
	WrapConn(cluster string, c net.Conn) net.Conn
}

// dialer makes a cluster's upstream connections. It is the one place where
// hopwatch connects to an upstream, so that every connection is bounded by
// connect_timeout, classified as a ConnectError on failure and observed.
type dialer struct {
	cluster   string
	timeout   time.Duration
	net       net.Dialer
	tls       *tls.Config // nil for plaintext clusters
	requireH2 bool        // protocol http2: ALPN must choose h2
	observer  DialObserver
	// serverName returns the TLS server name for an address: the configured
	// SNI, else the host name of the endpoint that resolved to the address.
	serverName func(addr string) string
	// breaker bounds the cluster's connections and pending requests
	// (circuit_breaker.go); nil for dials outside the breakers (health
	// checks).
	breaker *Breaker
}

// tcpKeepAlive keeps idle pooled connections probed, so that a vanished
// upstream (or a NAT that dropped its state) is noticed before a request is
// written into a dead connection.
const tcpKeepAlive = 30 * time.Second

func newDialer(cluster string, timeout time.Duration, tlsCfg *tls.Config, requireH2 bool, obs DialObserver, serverName func(string) string) *dialer {
	return &dialer{
		cluster: cluster,
		timeout: timeout,
		net: net.Dialer{
			KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: tcpKeepAlive, Interval: tcpKeepAlive},
		},
		tls:        tlsCfg,
		requireH2:  requireH2,
		observer:   obs,
		serverName: serverName,
	}
}

// DialContext is http.Transport.DialContext for plaintext clusters.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	slot, err := d.acquire(ctx, addr)
	if err != nil {
		return nil, err // refused or abandoned before any connection attempt
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := d.net.DialContext(ctx, network, addr)
	if err := d.settle(ctx, addr, start, slot, err); err != nil {
		return nil, err
	}
	return d.wrap(slot.conn(conn)), nil
}

// settle ends a connection attempt begun at start: it records the outcome
// and frees the circuit-breaker slot on failure or marks it connected. It
// returns err as a ConnectError, or nil.
func (d *dialer) settle(ctx context.Context, addr string, start time.Time, slot *connWait, err error) error {
	if err != nil {
		err = d.connectError(ctx, addr, err)
	}
	d.observe(ctx, addr, start, err)
	if err != nil {
		slot.failed()
		return err
	}
	slot.ready()
	return nil
}

// acquire claims a connection slot from the circuit breaker, waiting for
// one if the cluster is at max_connections. The connect timeout starts
// after it: a request waiting for a slot is pending, bounded by its own
// timeouts, as in Envoy.
func (d *dialer) acquire(ctx context.Context, addr string) (*connWait, error) {
	if d.breaker == nil {
		return nil, nil
	}
	return d.breaker.acquireConn(ctx, addr)
}

// handIdle offers a pooled connection to addr that turned idle to a dial
// waiting for a circuit-breaker slot, and reports whether one took it (see
// idlePool).
func (d *dialer) handIdle(addr string, conn any) bool { return d.breaker.handIdle(addr, conn) }

// connIdle tells the circuit breaker that a connection to addr went idle
// in the pool, for a dial that started waiting meanwhile (see idlePool).
func (d *dialer) connIdle(addr string) { d.breaker.connIdle(addr) }

// wrap hands an established connection to the ConnObserver, if any.
func (d *dialer) wrap(c net.Conn) net.Conn {
	if co, ok := d.observer.(ConnObserver); ok {
		return co.WrapConn(d.cluster, c)
	}
	return c
}

// DialTLSContext is http.Transport.DialTLSContext for TLS clusters. It does
// the handshake itself, inside connect_timeout, so that a handshake failure
// is a ConnectError too. It returns the *tls.Conn unwrapped: http.Transport
// only switches to HTTP/2 when it sees a *tls.Conn that negotiated h2.
func (d *dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	slot, err := d.acquire(ctx, addr)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := d.dialTLS(ctx, network, addr, slot)
	if err := d.settle(ctx, addr, start, slot, err); err != nil {
		return nil, err
	}
	return conn, nil
}

// dialTLS connects and shakes hands. The slot's wrapper goes beneath TLS,
// on the TCP connection, so that closing the *tls.Conn frees the slot.
func (d *dialer) dialTLS(ctx context.Context, network, addr string, slot *connWait) (net.Conn, error) {
	raw, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	raw = d.wrap(slot.conn(raw))
	cfg := d.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = d.serverName(addr)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake (server name %q): %w", cfg.ServerName, err)
	}
	if d.requireH2 && tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, fmt.Errorf("protocol http2: upstream did not negotiate h2 via ALPN (got %q)", tc.ConnectionState().NegotiatedProtocol)
	}
	return tc, nil
}

func (d *dialer) connectError(ctx context.Context, addr string, err error) *ConnectError {
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(ctx.Err(), context.DeadlineExceeded)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		timeout = true
	}
	return &ConnectError{Addr: addr, Timeout: timeout, Err: err}
}

func (d *dialer) observe(ctx context.Context, addr string, start time.Time, err error) {
	if d.observer != nil {
		d.observer.DialDone(ctx, d.cluster, addr, time.Since(start), err)
	}
}
