package sink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/periodic"
)

// Relay forwards raw lines to another StatsD server over UDP, packing them
// into packets of at most packetLength bytes, flushed at least every second.
type Relay struct {
	target       string
	conn         *net.UDPConn
	packetLength int
	logger       *slog.Logger

	mu  sync.Mutex
	buf []byte

	lines, packets, long, errors atomic.Uint64
}

// NewRelay dials target ("host:port").
func NewRelay(target string, packetLength int, logger *slog.Logger) (*Relay, error) {
	addr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("relay target %q: %w", target, err)
	}
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("relay target %q: %w", target, err)
	}
	if packetLength < 2 {
		packetLength = 1400
	}
	return &Relay{target: target, conn: c, packetLength: packetLength, logger: logger}, nil
}

// Line queues one line for relaying.
func (r *Relay) Line(l []byte) {
	if len(l) > r.packetLength-1 {
		r.long.Add(1)
		return
	}
	r.lines.Add(1)
	r.mu.Lock()
	if len(r.buf)+len(l)+1 > r.packetLength {
		r.sendLocked()
	}
	r.buf = append(r.buf, l...)
	r.buf = append(r.buf, '\n')
	r.mu.Unlock()
}

func (r *Relay) sendLocked() {
	if len(r.buf) == 0 {
		return
	}
	if _, err := r.conn.Write(r.buf); err != nil {
		r.errors.Add(1)
		r.logger.Debug("relay write failed", "target", r.target, "error", err)
	} else {
		r.packets.Add(1)
	}
	r.buf = r.buf[:0]
}

// Run flushes the buffer every second until ctx ends, then closes.
func (r *Relay) Run(ctx context.Context) {
	flush := func() {
		r.mu.Lock()
		r.sendLocked()
		r.mu.Unlock()
	}
	periodic.Every(ctx, time.Second, func(time.Time) { flush() })
	flush()
	_ = r.conn.Close()
}
