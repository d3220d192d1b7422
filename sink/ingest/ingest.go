// Package ingest reads StatsD traffic: UDP through several SO_REUSEPORT
// sockets with batched reads (recvmmsg), newline-delimited TCP with a line
// length limit, and unixgram. It hands each datagram (or TCP line) to a
// Handler and does no parsing itself.
package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Handler processes one datagram or one TCP line. The slice is only valid
// during the call. Each reader goroutine gets its own Handler from the
// factory, so a Handler needs no locking.
type Handler interface {
	HandlePacket(p []byte)
	HandleLine(l []byte)
}

// Stats are the ingest counters; all fields are updated atomically.
type Stats struct {
	UDPPackets       atomic.Uint64
	UnixgramPackets  atomic.Uint64
	TCPConnections   atomic.Uint64
	TCPErrors        atomic.Uint64
	TCPLineTooLong   atomic.Uint64
	UDPReadErrors    atomic.Uint64
	UDPTruncated     atomic.Uint64
	UnixgramTooLarge atomic.Uint64
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// ListenUDP opens n UDP sockets on addr sharing the port through
// SO_REUSEPORT (so the kernel spreads datagrams over the readers), each with
// the given receive buffer (0 keeps the system default).
func ListenUDP(ctx context.Context, addr string, n, readBuffer int) ([]*net.UDPConn, error) {
	if n < 1 {
		n = 1
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listening on UDP %s: %w", addr, err)
		}
		c := pc.(*net.UDPConn)
		conns = append(conns, c)
		if readBuffer > 0 {
			if err := c.SetReadBuffer(readBuffer); err != nil {
				closeAll()
				return nil, fmt.Errorf("setting UDP read buffer to %d: %w", readBuffer, err)
			}
		}
		if i == 0 {
			// With port 0 the others must join the port the first one got.
			addr = c.LocalAddr().String()
		}
	}
	return conns, nil
}

// ReceiveBuffer returns the socket's effective receive buffer (SO_RCVBUF
// as the kernel reports it: Linux doubles the requested size for its
// bookkeeping and clamps the request to net.core.rmem_max first).
func ReceiveBuffer(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("receive buffer: %w", err)
	}
	var n int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		n, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil {
		return 0, fmt.Errorf("receive buffer: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("receive buffer: getsockopt SO_RCVBUF: %w", serr)
	}
	return n, nil
}

// RmemMax returns net.core.rmem_max, the largest receive buffer an
// unprivileged SO_RCVBUF request gets, or false where it is unknown.
func RmemMax() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}

// batchReader abstracts ipv4/ipv6 PacketConn.ReadBatch (recvmmsg on Linux).
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

type v6Reader struct{ c *ipv6.PacketConn }

func (r v6Reader) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	return r.c.ReadBatch(ms, flags)
}

// ServeUDP reads batches from c until it is closed, calling h for each
// datagram. batch is the number of datagrams per recvmmsg call.
//
// Several goroutines may serve one socket: the runtime serialises their
// reads, so while one of them parses its batch the next one is already
// receiving. That is what spreads a single sender's traffic over every
// core (SO_REUSEPORT hashes each sender to one socket).
func ServeUDP(c *net.UDPConn, batch int, h Handler, st *Stats) error {
	if batch < 1 {
		batch = 32
	}
	var r batchReader = ipv4.NewPacketConn(c)
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		r = v6Reader{ipv6.NewPacketConn(c)}
	}
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
	}
	for {
		n, err := r.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			st.UDPReadErrors.Add(1)
			return fmt.Errorf("reading UDP: %w", err)
		}
		st.UDPPackets.Add(uint64(n))
		for i := 0; i < n; i++ {
			m := &msgs[i]
			if m.Flags&unix.MSG_TRUNC != 0 {
				st.UDPTruncated.Add(1)
			}
			h.HandlePacket(m.Buffers[0][:m.N])
		}
	}
}

// ServeTCP accepts connections until l is closed. Each connection gets a
// Handler from newHandler and is read line by line; a line longer than
// maxLine ends the connection, as in statsd_exporter.
func ServeTCP(ctx context.Context, l net.Listener, maxLine int, newHandler func() Handler, st *Stats) error {
	if maxLine < 64 {
		maxLine = 64
	}
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil //nolint:nilerr // a closed listener or cancelled context is a normal stop
			}
			return fmt.Errorf("accepting TCP: %w", err)
		}
		st.TCPConnections.Add(1)
		go serveConn(ctx, c, maxLine, newHandler(), st)
	}
}

func serveConn(ctx context.Context, c net.Conn, maxLine int, h Handler, st *Stats) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	r := bufio.NewReaderSize(c, maxLine)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			st.TCPLineTooLong.Add(1)
			return
		}
		if len(line) > 0 {
			line = trimEOL(line)
			h.HandleLine(line)
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && err.Error() != "EOF" && ctx.Err() == nil {
				st.TCPErrors.Add(1)
			}
			return
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// ListenUnixgram opens a unixgram socket at path; it refuses to replace an
// existing file, like statsd_exporter.
func ListenUnixgram(path string, mode os.FileMode, readBuffer int) (*net.UnixConn, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("unixgram socket %s already exists", path)
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: path})
	if err != nil {
		return nil, fmt.Errorf("listening on unixgram %s: %w", path, err)
	}
	if readBuffer > 0 {
		if err := c.SetReadBuffer(readBuffer); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("setting unixgram read buffer: %w", err)
		}
	}
	if mode != 0 && !strings.HasPrefix(path, "@") {
		if err := os.Chmod(path, mode); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("chmod unixgram socket: %w", err)
		}
	}
	return c, nil
}

// ServeUnixgram reads datagrams from c until it is closed.
func ServeUnixgram(c *net.UnixConn, h Handler, st *Stats) error {
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := c.ReadFromUnix(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("reading unixgram: %w", err)
		}
		st.UnixgramPackets.Add(1)
		h.HandlePacket(buf[:n])
	}
}

// KernelDrops sums the kernel's drop counters (the "drops" column of
// /proc/net/udp and /proc/net/udp6) for sockets bound to port. It returns
// false where the kernel does not report them.
func KernelDrops(port int) (uint64, bool) {
	var total uint64
	found := false
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		d, ok := parseProcNetUDP(string(b), port)
		if ok {
			total += d
			found = true
		}
	}
	return total, found
}

func parseProcNetUDP(s string, port int) (uint64, bool) {
	var total uint64
	found := false
	for i, line := range strings.Split(s, "\n") {
		if i == 0 {
			continue // header
		}
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		_, p, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		lp, err := strconv.ParseUint(p, 16, 16)
		if err != nil || int(lp) != port {
			continue
		}
		d, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			continue
		}
		total += d
		found = true
	}
	return total, found
}
