package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// idleSourceAddrs are the loopback source addresses the idle connections
// are spread over, so that ten thousand of them never run short of
// ephemeral ports (28 232 per source address with Linux's default range),
// even with earlier rounds' connections still in TIME_WAIT.
var idleSourceAddrs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}

// idleBusyLoad is the busy client's wrk load while the idle connections
// are held.
var idleBusyLoad = load{Threads: 1, Conns: 50}

func idleSpec() modeSpec {
	return modeSpec{
		Heading: "## hopwatch-proxy vs nginx: idle keep-alive connections",
		peers:   nginxAndHopwatch,
		tweak: func(h *harness, d *configData) error {
			// One nginx worker may be handed every idle connection.
			d.WorkerConnections = max(d.WorkerConnections, h.o.idleConns+4096)
			return nil
		},
		measure:  measureIdle,
		describe: describeIdle,
		columns: []column{
			errorsColumn, cpuColumn,
			{Title: "RSS before, MiB", Value: func(s modeSample) float64 { return float64(s.RSSBefore) / (1 << 20) }, Format: formatFixed(1)},
			{Title: "RSS with idle connections, MiB", Value: func(s modeSample) float64 { return float64(s.RSSAfter) / (1 << 20) }, Format: formatFixed(1)},
			{Title: "RSS per idle connection, KiB", Value: rssPerConn, Format: formatFixed(2), Ratio: true},
			{Title: "idle connections still open after the busy run", Value: func(s modeSample) float64 { return float64(s.Held) }, Format: formatCount},
		},
	}
}

func rssPerConn(s modeSample) float64 {
	if s.Conns == 0 {
		return math.NaN()
	}
	return float64(s.RSSAfter-s.RSSBefore) / float64(s.Conns) / 1024
}

func describeIdle(h *harness) string {
	return fmt.Sprintf("Each proxy is first warmed up with `wrk %s` for %v; its resident memory (RSS, summed over its process group: nginx's master and %d workers) is read; "+
		"then the harness opens %d connections to its plaintext listener from loopback source addresses %v, sends one `GET /` on each and reads the whole keep-alive answer, "+
		"so every connection is an idle HTTP/1.1 keep-alive connection that the proxy holds, and reads RSS again after 1 s. "+
		"\"RSS per idle connection\" is (RSS with − RSS before) / %d. While they are held, `wrk %s` measures the busy client's throughput for %v (the req/s column). "+
		"nginx runs with `worker_connections %d` here (it preallocates its connection array at start, so that memory is in \"RSS before\"); "+
		"`run.sh` raises `ulimit -n` for the harness and every proxy (it stops if it cannot reach %d). "+
		"hopwatch-proxy's `idle_timeout` (1 h) and nginx's `keepalive_timeout` (75 s) are both longer than the measurement, which the last column checks.",
		idleBusyLoad, h.o.warmup, h.o.workers, h.o.idleConns, idleSourceAddrs, h.o.idleConns, idleBusyLoad, h.o.duration,
		h.o.idleConns+4096, h.o.idleConns+1024)
}

func measureIdle(ctx context.Context, h *harness, r *runningPeer) ([]modeSample, error) {
	if h.o.warmup > 0 {
		if _, err := h.wrk(ctx, r.url, idleBusyLoad, h.o.warmup); err != nil && !errors.Is(err, errNoRequests) {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	pgid := r.c.cmd.Process.Pid
	before, err := readGroupUsage(pgid)
	if err != nil {
		return nil, err
	}
	conns, err := openIdle(ctx, r.d.Listen, h.o.idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("open %d idle connections: %w", h.o.idleConns, err)
	}
	time.Sleep(time.Second) // let the proxy finish its bookkeeping
	after, err := readGroupUsage(pgid)
	if err != nil {
		return nil, err
	}
	s, err := timed(r, func() (modeSample, error) {
		res, err := h.wrk(ctx, r.url, idleBusyLoad, h.o.duration)
		return modeSample{RPS: res.RPS, Requests: res.Requests, Errors: res.errors()}, err
	})
	if err != nil {
		return nil, err
	}
	s.Case = fmt.Sprintf("%d idle keep-alive connections held, wrk %s busy", h.o.idleConns, idleBusyLoad)
	s.RSSBefore, s.RSSAfter, s.Conns, s.Held = before.RSS, after.RSS, len(conns), stillOpen(conns)
	return []modeSample{s}, nil
}

// openIdle opens n connections to addr, 64 at a time, each with one
// keep-alive GET / whose answer is read whole. It returns every connection
// it opened, also on error, so that the caller closes them. The whole step
// is bounded to two minutes.
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conns := make([]net.Conn, n)
	errs := make(chan error, 1)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range next {
				c, err := idleConn(ctx, addr, idleSourceAddrs[i%len(idleSourceAddrs)])
				if err != nil {
					select {
					case errs <- fmt.Errorf("connection %d: %w", i, err):
					default:
					}
					cancel()
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	var opened []net.Conn
	for _, c := range conns {
		if c != nil {
			opened = append(opened, c)
		}
	}
	select {
	case err := <-errs:
		return opened, err
	default:
	}
	if len(opened) < n {
		return opened, fmt.Errorf("opened %d of %d: %w", len(opened), n, context.Cause(ctx))
	}
	return opened, nil
}

// idleConn dials addr from source, sends one GET / and reads the answer.
func idleConn(ctx context.Context, addr, source string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: hopwatch-bench-idle\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != http.StatusOK || resp.Close || br.Buffered() > 0) {
		err = fmt.Errorf("status %d, close %v, %d extra bytes: not an idle keep-alive connection", resp.StatusCode, resp.Close, br.Buffered())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// stillOpen counts the connections the proxy has not closed: a read that
// times out means the connection is still there; EOF or a reset means the
// proxy closed it.
func stillOpen(conns []net.Conn) int {
	n := 0
	buf := make([]byte, 1)
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			n++
		}
	}
	return n
}

// checkNofile fails early when this process cannot hold n connections.
func checkNofile(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < uint64(n)+1024 {
		return fmt.Errorf("idle mode: open-file limit %d (ulimit -n) is below -idle-conns %d + 1024; run.sh raises it when it can (as root), or lower IDLE_CONNS", lim.Cur, n)
	}
	return nil
}
