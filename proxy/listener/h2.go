package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// h2Server serves the listener's HTTP/2 connections, over TLS (ALPN h2)
// and h2c with prior knowledge alike, with golang.org/x/net/http2's
// server. h2c by "Upgrade: h2c" is not served: the connection manager
// strips that upgrade.
//
// x/net tracks its connections only to send them GOAWAY; h2Server tracks
// them too, so that shutdown can wait for them and close can close them.
//
// x/net marks http2.Server deprecated in favour of net/http's server,
// which serves HTTP/2 only from the connections it accepts itself and only
// recognises TLS on a bare *tls.Conn. The listener accepts, handshakes and
// sniffs each connection itself and wraps it (h2Conn) to count frames, so
// it needs ServeConn.
type h2Server struct {
	srv *http2.Server //nolint:staticcheck // see the type's comment
	// base carries what x/net reads from an http.Server (MaxHeaderBytes,
	// ErrorLog) and, through ConfigureServer, its graceful shutdown hook:
	// base.Shutdown sends GOAWAY to every connection srv serves. base
	// itself never listens.
	base  *http.Server
	h     http.Handler
	stats func() *Stats

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
}

func newH2Server(cfg *config.Listener, h http.Handler, log *slog.Logger, st func() *Stats) (*h2Server, error) {
	s := &h2Server{h: h, stats: st, conns: map[net.Conn]struct{}{}}
	s.srv = &http2.Server{ //nolint:staticcheck // see h2Server
		// x/net's default under Go 1.26 is its round-robin scheduler,
		// whose Pop walks every open stream until one has a frame: with
		// 100 streams waiting on their upstreams, most of a walk is empty
		// queues, 4 % of the proxy's CPU under h2load -m100. The random
		// scheduler keeps only the streams that have frames queued, and
		// like round-robin ignores client priorities (which x/net ignores
		// by default too) and writes control frames first.
		NewWriteScheduler: http2.NewRandomWriteScheduler, //nolint:staticcheck // deprecated with http2.Server, see h2Server
	}
	// base carries the settings (x/net reads them from base.HTTP2, and
	// ConfigureServer copies IdleTimeout).
	//
	// base never accepts a connection: the listener's deadline from accept
	// bounds the connection preface, and HTTP/2 has no request head of
	// its own to time.
	s.base = &http.Server{ //nolint:gosec // see above
		Handler:        h,
		MaxHeaderBytes: cfg.Limits.MaxRequestHeadersKB * 1024,
		IdleTimeout:    cfg.Limits.IdleTimeout.D(),
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		HTTP2: &http.HTTP2Config{
			MaxDecoderHeaderTableSize: 4096,
			// RFC 9113's initial SETTINGS_MAX_FRAME_SIZE, which Envoy and
			// HAProxy keep. A larger value (net/http's 1 MiB) lets a client
			// send one HEADERS frame of up to that size before the header
			// list limit applies, and fails h2spec http2/4.2/3, which
			// expects a frame over 16 KiB to be refused.
			MaxReadFrameSize: 16 << 10,
			CountError:       s.countError,
		},
	}
	if err := http2.ConfigureServer(s.base, s.srv); err != nil { //nolint:staticcheck // see h2Server
		return nil, fmt.Errorf("listener %q: HTTP/2 server: %w", cfg.Name, err)
	}
	return s, nil
}

// serveConn serves one HTTP/2 connection until it ends, then closes it.
func (s *h2Server) serveConn(c *h2Conn) {
	var nc net.Conn = c
	if c.tc != nil {
		nc = &tlsH2Conn{c}
	}
	if !s.track(nc) {
		_ = nc.Close()
		return
	}
	defer s.untrack(nc)
	ctx := context.Background()
	if tc := unwrapTracked(c.Conn); tc != nil {
		ctx = context.WithValue(ctx, connKey{}, tc)
	}
	s.srv.ServeConn(nc, &http2.ServeConnOpts{Context: ctx, Handler: h2Handler{s.h}, BaseConfig: s.base}) //nolint:staticcheck // see h2Server
}

func (s *h2Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *h2Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *h2Server) active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// shutdown sends GOAWAY to every connection and waits until they have
// finished their streams and closed, or ctx ends.
func (s *h2Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		// base.Shutdown returns at once (base has no listener or
		// connection of its own) after it started GOAWAY on the
		// connections x/net knows. It is repeated for a connection that
		// was handed over just before shutdown and registered with x/net
		// only after the previous round; a connection gets one GOAWAY.
		_ = s.base.Shutdown(ctx)
		if s.active() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// close closes every connection at once.
func (s *h2Server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for c := range s.conns {
		_ = c.Close()
	}
}

// countError receives x/net's protocol error reports. Its names are
// "conn_<ERROR_CODE>_<reason>" for a connection error (GOAWAY),
// "stream_<ERROR_CODE>_<reason>" for a stream error (RST_STREAM), and
// "frame_<reason>" for a frame that failed to parse. How they count:
//
//   - conn_* and frame_*: http.<stat_prefix>.downstream_cx_protocol_error,
//     as Envoy counts a codec protocol error. frame_windowupdate_zero_inc_stream
//     is the one frame error that resets a stream instead of the
//     connection; it counts in tx_reset only.
//   - stream_PROTOCOL_ERROR_*: http2.rx_messaging_error (a malformed
//     request: RFC 9113 §8).
//   - stream_REFUSED_STREAM_*: http2.stream_refused_errors.
//
// Every stream error also counts in http2.tx_reset, from the RST_STREAM
// frame on the wire (h2Conn).
func (s *h2Server) countError(errType string) {
	st := s.stats()
	codec := st.HTTP2()
	switch {
	case errType == "frame_windowupdate_zero_inc_stream":
	case strings.HasPrefix(errType, "conn_"), strings.HasPrefix(errType, "frame_"):
		st.HTTP.DownstreamCxProtocolError.Inc()
	case strings.HasPrefix(errType, "stream_PROTOCOL_ERROR_"):
		codec.RxMessagingError.Inc()
	case strings.HasPrefix(errType, "stream_REFUSED_STREAM_"):
		codec.StreamRefusedErrors.Inc()
	}
}

// HTTP/2 frame types counted on the wire (RFC 9113 §6).
const (
	frameHeaders   = 0x1
	frameRSTStream = 0x3
)

// h2Conn is the connection the HTTP/2 server reads and writes. It returns
// the bytes the listener read ahead (the preface) first, and follows the
// frame boundaries in both directions to count what x/net does not
// report: RST_STREAM received and sent, and trailers.
type h2Conn struct {
	net.Conn
	tc     *tls.Conn // set on a TLS connection
	prefix []byte
	// in reads a plaintext connection ahead. x/net's framer reads each
	// frame with two Reads, its 9-byte header and then its payload, and
	// on a bare TCP connection each Read is a syscall: two per request
	// for the HEADERS frames a client sends in one segment. A TLS
	// connection needs none: tls.Conn serves small Reads from the record
	// it decrypted.
	in     *bufio.Reader
	codec  *stats.HTTP2CodecStats
	rx, tx frameScanner
	// maxStream is the highest stream a client opened: a HEADERS frame on
	// a stream already open is a trailer.
	maxStream uint32
}

// h2ReadAhead is how much of a plaintext HTTP/2 connection h2Conn reads
// at once: a client's burst of HEADERS frames, the request bodies' DATA
// frames up to it. bufio reads a larger Read straight into its caller's
// buffer, so DATA frames of 16 KiB are not copied twice.
const h2ReadAhead = 4 << 10

func newH2Conn(c net.Conn, tc *tls.Conn, prefix []byte, codec *stats.HTTP2CodecStats) *h2Conn {
	h := &h2Conn{Conn: c, tc: tc, prefix: prefix, codec: codec}
	if tc == nil {
		h.in = bufio.NewReaderSize(c, h2ReadAhead)
	}
	h.rx.skip = len(http2.ClientPreface)
	return h
}

func (c *h2Conn) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(c.prefix) > 0 {
		n = copy(p, c.prefix)
		c.prefix = c.prefix[n:]
	} else if c.in != nil {
		n, err = c.in.Read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	if n > 0 {
		c.rx.scan(p[:n], c.received)
	}
	return n, err
}

func (c *h2Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.tx.scan(p[:n], c.sent)
	}
	return n, err
}

func (c *h2Conn) received(typ byte, stream uint32) {
	switch typ {
	case frameRSTStream:
		c.codec.RxReset.Inc()
	case frameHeaders:
		if stream != 0 && stream <= c.maxStream {
			c.codec.Trailers.Inc()
		} else {
			c.maxStream = stream
		}
	}
}

func (c *h2Conn) sent(typ byte, _ uint32) {
	if typ == frameRSTStream {
		c.codec.TxReset.Inc()
	}
}

// tlsH2Conn is an h2Conn over TLS. It has ConnectionState, which x/net
// looks for to check the TLS version and to fill Request.TLS.
type tlsH2Conn struct{ *h2Conn }

// ConnectionState is the TLS connection's state.
func (c *tlsH2Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// frameScanner follows the frame boundaries of one direction of an HTTP/2
// connection in the bytes as they pass, without copying them.
type frameScanner struct {
	skip int // bytes of the current frame payload (or the preface) left
	hdr  [9]byte
	n    int // bytes of hdr filled
}

// scan passes p and calls frame with the type and stream of every frame
// header that completes in it.
func (f *frameScanner) scan(p []byte, frame func(typ byte, stream uint32)) {
	for len(p) > 0 {
		if f.skip > 0 {
			k := min(f.skip, len(p))
			f.skip -= k
			p = p[k:]
			continue
		}
		k := copy(f.hdr[f.n:], p)
		f.n += k
		p = p[k:]
		if f.n < len(f.hdr) {
			return
		}
		f.n = 0
		f.skip = int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
		frame(f.hdr[3], binary.BigEndian.Uint32(f.hdr[5:])&0x7fffffff)
	}
}
