package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// batch is how many datagrams go into one sendmmsg call: large enough to
// amortise the syscall, small enough that pacing stays smooth.
const batch = 32

// SendOptions bounds one replay.
type SendOptions struct {
	// Rate is the target in lines per second; 0 means as fast as possible.
	Rate float64
	// Lines is how many lines to send (rounded up to whole datagrams); the
	// stream is cycled if it is shorter.
	Lines int
	// MaxDuration stops the replay early; 0 means no limit beyond Lines.
	MaxDuration time.Duration
	// Offset is the index of the first datagram, so that consecutive
	// replays continue through the stream instead of repeating its start.
	Offset int
}

// Result says what a replay did.
type Result struct {
	Datagrams int
	Lines     int
	Elapsed   time.Duration
	// Next is the Offset that continues the stream.
	Next int
	// SendErrors counts datagrams the kernel refused (for example
	// ECONNREFUSED when nothing listens); they are not counted as sent.
	SendErrors int
}

// Rate returns the achieved rate in lines per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Lines) / r.Elapsed.Seconds()
}

// Sender replays streams to one UDP address.
type Sender struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
}

// Dial connects a sender to a UDP address (loopback in the benchmark).
func Dial(addr string) (*Sender, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	conn, err := net.DialUDP("udp4", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	// A large send buffer lets a burst of sendmmsg calls complete without
	// blocking; loss must come from the receiver, not from the sender.
	_ = conn.SetWriteBuffer(8 << 20)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = make([][]byte, 1)
	}
	return &Sender{conn: conn, pc: ipv4.NewPacketConn(conn), msgs: msgs}, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return s.conn.Close() }

// Send replays s's datagrams at o.Rate until o.Lines lines are sent, o's
// time limit passes or ctx ends. Only ctx ending is an error; the other
// bounds end the replay normally.
func (s *Sender) Send(ctx context.Context, st *Stream, o SendOptions) (Result, error) {
	if len(st.Datagrams) == 0 {
		return Result{}, errors.New("empty stream")
	}
	start := time.Now()
	var deadline time.Time
	if o.MaxDuration > 0 {
		deadline = start.Add(o.MaxDuration)
	}
	res := Result{}
	idx := o.Offset % len(st.Datagrams)
	for res.Lines < o.Lines {
		if err := ctx.Err(); err != nil {
			res.Elapsed, res.Next = time.Since(start), idx
			return res, err
		}
		n, lines := 0, 0
		for n < batch && res.Lines+lines < o.Lines {
			s.msgs[n].Buffers[0] = st.Datagrams[idx]
			lines += st.Lines[idx]
			idx = (idx + 1) % len(st.Datagrams)
			n++
		}
		sent, err := s.writeAll(s.msgs[:n])
		if err != nil {
			res.Elapsed, res.Next = time.Since(start), idx
			return res, err
		}
		// Count only what the kernel accepted; a refused datagram (nothing
		// listening yet) is an error, not a sent line.
		res.SendErrors += n - sent
		res.Datagrams += sent
		res.Lines += lines * sent / n
		now := time.Now()
		if !deadline.IsZero() && now.After(deadline) {
			break
		}
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(res.Lines) / o.Rate * float64(time.Second)))
			if !deadline.IsZero() && due.After(deadline) {
				due = deadline
			}
			if d := due.Sub(now); d > 0 {
				if err := sleep(ctx, d); err != nil {
					res.Elapsed, res.Next = time.Since(start), idx
					return res, err
				}
			}
		}
	}
	res.Elapsed, res.Next = time.Since(start), idx
	return res, nil
}

// writeAll sends msgs with sendmmsg, retrying partial writes. It returns how
// many the kernel accepted.
func (s *Sender) writeAll(msgs []ipv4.Message) (int, error) {
	done, refused := 0, 0
	for done+refused < len(msgs) {
		n, err := s.pc.WriteBatch(msgs[done+refused:], 0)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				// ICMP port unreachable from an earlier datagram: the
				// receiver is not listening. Skip one and carry on, so a
				// restarting receiver cannot stall the replay.
				refused++
				continue
			}
			return done, fmt.Errorf("sendmmsg: %w", err)
		}
		done += n
	}
	return done, nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
