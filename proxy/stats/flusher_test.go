package stats

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var lineRE = regexp.MustCompile(`^envoy\.[A-Za-z0-9_.\-\[\]]+:[0-9.]+\|(c|g|ms)(\|@[0-9.]+)?(\|#[^|\n]+)?$`)

// TestBatching: with a small max_bytes_per_datagram, no datagram exceeds
// it, no line is split, and every line arrives exactly once.
func TestBatching(t *testing.T) {
	for _, max := range []int{64, 200, 1432} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			u := newUDPServer(t)
			s := newTestStore(t, Config{})
			f := newTestFlusher(t, s, SinkConfig{Address: u.addr(), MaxBytesPerDatagram: max})
			var want []string
			for i := range 40 {
				c := s.ClusterStats(fmt.Sprintf("c%02d", i))
				c.UpstreamRqTotal.Add(uint64(i + 1))
				want = append(want, fmt.Sprintf("envoy.cluster.c%02d.upstream_rq_total:%d|c", i, i+1))
			}
			dgs := flushAndRead(t, f, u)
			if len(dgs) < 2 {
				t.Errorf("%d datagrams: expected batching into several", len(dgs))
			}
			for _, d := range dgs {
				if len(d) > max {
					t.Errorf("datagram of %d bytes > %d", len(d), max)
				}
			}
			got := lines(dgs)
			for _, l := range got {
				if !lineRE.MatchString(l) {
					t.Errorf("malformed or split line %q", l)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLineLongerThanDatagramIsDropped(t *testing.T) {
	u := newUDPServer(t)
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Address: u.addr(), MaxBytesPerDatagram: 64})
	s.ClusterStats(strings.Repeat("x", 80)).UpstreamRqTotal.Inc()
	s.ClusterStats("ok").UpstreamRqTotal.Inc()
	got := lines(flushAndRead(t, f, u))
	if !slices.Equal(got, []string{"envoy.cluster.ok.upstream_rq_total:1|c"}) {
		t.Errorf("got %q", got)
	}
	if s.self.LinesDropped.Value() != 1 {
		t.Errorf("lines_dropped = %d, want 1", s.self.LinesDropped.Value())
	}
}

// TestCounterDeltas: counters go out as deltas, zero deltas are skipped,
// used gauges go out every flush, never-set gauges never.
func TestCounterDeltas(t *testing.T) {
	u := newUDPServer(t)
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Address: u.addr()})
	c := s.ClusterStats("b")
	steps := []struct {
		do   func()
		want []string
	}{
		{func() { c.UpstreamRqTotal.Add(3); c.UpstreamRqActive.Set(4) },
			[]string{"envoy.cluster.b.upstream_rq_total:3|c", "envoy.cluster.b.upstream_rq_active:4|g"}},
		{func() {},
			[]string{"envoy.statsd.lines_sent:2|c", "envoy.cluster.b.upstream_rq_active:4|g"}},
		{func() { c.UpstreamRqTotal.Add(2); c.UpstreamRqActive.Dec() },
			[]string{"envoy.statsd.lines_sent:2|c", "envoy.cluster.b.upstream_rq_total:2|c", "envoy.cluster.b.upstream_rq_active:3|g"}},
		{func() { c.UpstreamRqActive.Set(0) },
			[]string{"envoy.statsd.lines_sent:3|c", "envoy.cluster.b.upstream_rq_active:0|g"}},
	}
	for i, st := range steps {
		st.do()
		if got := lines(flushAndRead(t, f, u)); !slices.Equal(got, st.want) {
			t.Errorf("flush %d: %q, want %q", i+1, got, st.want)
		}
	}
}

func TestTCPSink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					got <- sc.Text()
				}
			}()
		}
	}()
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Type: SinkDogStatsD, Protocol: ProtocolTCP, Address: ln.Addr().String(), MaxBytesPerDatagram: 100})
	cl := s.ClusterStats("b")
	for i := range 5 {
		cl.RecordResponse(200+i, false)
	}
	f.Flush(context.Background())
	want := []string{
		"envoy.cluster.upstream_rq:1|c|#envoy.response_code:200,envoy.cluster_name:b",
		"envoy.cluster.upstream_rq:1|c|#envoy.response_code:201,envoy.cluster_name:b",
		"envoy.cluster.upstream_rq:1|c|#envoy.response_code:202,envoy.cluster_name:b",
		"envoy.cluster.upstream_rq:1|c|#envoy.response_code:203,envoy.cluster_name:b",
		"envoy.cluster.upstream_rq:1|c|#envoy.response_code:204,envoy.cluster_name:b",
		"envoy.cluster.upstream_rq_xx:5|c|#envoy.response_code_class:2,envoy.cluster_name:b",
		"envoy.cluster.upstream_rq_completed:5|c|#envoy.cluster_name:b",
	}
	for i, w := range want {
		select {
		case l := <-got:
			if l != w {
				t.Errorf("line %d = %q, want %q", i, l, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("line %d never arrived", i)
		}
	}
}

// TestTCPReconnect: when the server goes away the flush does not block or
// fail, the lines are counted as dropped, and a later flush reconnects.
func TestTCPReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Protocol: ProtocolTCP, Address: addr})
	ln.Close() // nothing listens now
	c := s.ClusterStats("b")
	c.UpstreamRqTotal.Inc()
	start := time.Now()
	f.Flush(context.Background())
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("flush to a dead TCP sink took %v", d)
	}
	if s.self.SendErrors.Value() == 0 || s.self.LinesDropped.Value() == 0 {
		t.Fatalf("send_errors=%d lines_dropped=%d, want both > 0", s.self.SendErrors.Value(), s.self.LinesDropped.Value())
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot rebind %s: %v", addr, err) // port taken meanwhile: nothing to test
	}
	defer ln2.Close()
	accepted := make(chan string, 1)
	go func() {
		conn, err := ln2.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		l, _ := bufio.NewReader(conn).ReadString('\n')
		accepted <- l
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.UpstreamRqTotal.Inc()
		f.Flush(context.Background())
		select {
		case l := <-accepted:
			if !strings.HasPrefix(l, "envoy.") {
				t.Errorf("first line after reconnect = %q", l)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("the sink never reconnected")
}

// TestUnreachableUDP: a sink nobody listens on breaks nothing; the send
// errors are counted.
func TestUnreachableUDP(t *testing.T) {
	u := newUDPServer(t)
	addr := u.addr()
	u.conn.Close() // the port is now closed: the kernel answers ICMP unreachable
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Address: addr})
	c := s.ClusterStats("b")
	for range 50 {
		c.UpstreamRqTotal.Inc()
		f.Flush(context.Background())
		if s.self.SendErrors.Value() > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.self.SendErrors.Value() == 0 || s.self.LinesDropped.Value() == 0 {
		t.Errorf("send_errors=%d lines_dropped=%d after flushing to a closed port", s.self.SendErrors.Value(), s.self.LinesDropped.Value())
	}
}

// TestTimerQueueFull: when the queue is full samples are dropped and
// counted, and Record never blocks.
func TestTimerQueueFull(t *testing.T) {
	u := newUDPServer(t)
	s := newTestStore(t, Config{})
	f, err := NewFlusher(s, FlusherConfig{TimerQueueSize: 4, Sinks: []SinkConfig{{Address: u.addr()}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := s.ClusterStats("b").Responses.Time
	for i := range 10 {
		h.Record(uint64(i))
	}
	if got := s.self.TimerSamplesDropped.Value(); got != 6 {
		t.Errorf("timer_samples_dropped = %d, want 6", got)
	}
	f.DrainTimers(context.Background())
	got := lines(u.read(t))
	want := []string{"envoy.cluster.b.upstream_rq_time:0|ms", "envoy.cluster.b.upstream_rq_time:1|ms", "envoy.cluster.b.upstream_rq_time:2|ms", "envoy.cluster.b.upstream_rq_time:3|ms"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// The histogram itself still has every sample.
	if n := h.Snapshot().Count(); n != 10 {
		t.Errorf("histogram count %d, want 10", n)
	}
}

func TestRunFlushesPeriodicallyAndOnStop(t *testing.T) {
	u := newUDPServer(t)
	s := newTestStore(t, Config{})
	f, err := NewFlusher(s, FlusherConfig{FlushInterval: 20 * time.Millisecond, Sinks: []SinkConfig{{Address: u.addr()}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.ClusterStats("b").UpstreamRqTotal
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	c.Inc()
	got := lines(u.read(t))
	if !slices.Contains(got, "envoy.cluster.b.upstream_rq_total:1|c") {
		t.Errorf("periodic flush: %q", got)
	}
	c.Add(5)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if got := lines(u.read(t)); !slices.Contains(got, "envoy.cluster.b.upstream_rq_total:5|c") {
		t.Errorf("final flush: %q", got)
	}
	if s.timerQueue.Load() != nil {
		t.Error("the timer queue stays installed after Run returned")
	}
}

func TestSampleRateTruncation(t *testing.T) {
	for _, tc := range []struct {
		c    uint64
		want string
	}{
		{1, "1"}, {2, "0.5"}, {3, "0.333333333"}, {4, "0.25"}, {7, "0.142857142"}, {1000, "0.001"},
		{3000, "0.000333333333"}, {99_999_999, "0.0000000100000001"},
		{3125, "0.000319999999"}, {5, "0.2"}, {8, "0.125"},
	} {
		if got := string(appendSampleRate(nil, tc.c)); got != tc.want {
			t.Errorf("rate(%d) = %s, want %s", tc.c, got, tc.want)
		}
	}
	// The property the receivers rely on, checked through float64 parsing
	// as statsd_exporter does it: int(1/rate) == c.
	check := func(c uint64) {
		r, err := strconv.ParseFloat(string(appendSampleRate(nil, c)), 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := uint64(1 / r); got != c {
			t.Errorf("c=%d: rate %v gives int(1/rate) = %d", c, r, got)
		}
	}
	for c := uint64(1); c <= 200_000; c++ {
		check(c)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		check(1 + rng.Uint64N(maxCompactCount))
	}
}

// TestCompactRoundTrip decodes compact output the way a receiver does and
// compares it with the recorded histogram: exact bucket counts and total
// count, sum within float64 rounding.
func TestCompactRoundTrip(t *testing.T) {
	u := newUDPServer(t)
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Address: u.addr(), Histograms: HistogramsCompact, MaxBytesPerDatagram: 8000})
	h := s.ClusterStats("b").Responses.Time
	bounds := s.Buckets()
	decoded := make([]uint64, len(bounds)+1)
	var decodedSum float64
	rng := rand.New(rand.NewPCG(7, 9))
	for round := range 5 {
		n := 1 + rng.IntN(5000)
		for range n {
			// Log-uniform latencies from 0 to ~2e6 ms hit every bucket.
			h.Record(uint64(math.Exp(rng.Float64() * 14.5)))
		}
		h.Record(0)
		for _, l := range lines(flushAndRead(t, f, u)) {
			name, rest, _ := strings.Cut(l, ":")
			if name != "envoy.cluster.b.upstream_rq_time" {
				continue
			}
			parts := strings.Split(rest, "|")
			if parts[1] != "ms" {
				t.Fatalf("round %d: %q is not a timer", round, l)
			}
			v, err := strconv.ParseFloat(parts[0], 64)
			if err != nil {
				t.Fatal(err)
			}
			weight := uint64(1)
			if len(parts) > 2 {
				r, err := strconv.ParseFloat(strings.TrimPrefix(parts[2], "@"), 64)
				if err != nil {
					t.Fatal(err)
				}
				weight = uint64(1 / r) // statsd_exporter replays int(1/rate) times
			}
			decoded[bucketIndexFloat(bounds, v)] += weight
			decodedSum += v * float64(weight)
		}
		snap := h.Snapshot()
		if !slices.Equal(decoded, snap.Counts) {
			t.Fatalf("round %d: decoded bucket counts %v, recorded %v", round, decoded, snap.Counts)
		}
		if want := float64(snap.Sum()); math.Abs(decodedSum-want) > want*1e-12 {
			t.Fatalf("round %d: decoded sum %v, recorded %v", round, decodedSum, want)
		}
	}
}

func bucketIndexFloat(bounds []float64, v float64) int {
	for i, b := range bounds {
		if v <= b {
			return i
		}
	}
	return len(bounds)
}

func TestFlusherConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		sink SinkConfig
		want string
	}{
		{SinkConfig{Address: "127.0.0.1:8125", Type: "graphite"}, `stats_sinks[0].type: "graphite" is not one of statsd, dogstatsd`},
		{SinkConfig{Address: "127.0.0.1:8125", Protocol: "sctp"}, `stats_sinks[0].protocol: "sctp" is not one of udp, tcp`},
		{SinkConfig{}, "stats_sinks[0].address: required"},
		{SinkConfig{Address: "127.0.0.1"}, "stats_sinks[0].address: \"127.0.0.1\": address 127.0.0.1: missing port"},
		{SinkConfig{Address: "127.0.0.1:0"}, "port \"0\" is not a number in 1..65535"},
		{SinkConfig{Address: "127.0.0.1:1", MaxBytesPerDatagram: 10}, "max_bytes_per_datagram: 10 is not in 64..65507"},
		{SinkConfig{Address: "127.0.0.1:1", Histograms: "summary"}, `histograms: "summary" is not one of timer, compact`},
		{SinkConfig{Address: "127.0.0.1:1", Prefix: "a:b"}, "prefix: \"a:b\" contains ':'"},
		{SinkConfig{Address: "127.0.0.1:1", Histograms: HistogramsCompact, Exemplars: true}, `stats_sinks[0].exemplars: true needs histograms: timer, got "compact"`},
	} {
		_, err := NewFlusher(newTestStore(t, Config{}), FlusherConfig{Sinks: []SinkConfig{tc.sink}}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.sink, err, tc.want)
		}
	}
	if _, err := NewFlusher(newTestStore(t, Config{}), FlusherConfig{FlushInterval: time.Millisecond}, nil); err == nil {
		t.Error("1ms flush interval accepted")
	}
}

// TestAnnounceCounters: with AnnounceCounters, a counter's first flush
// sends it even at 0, once; unmoved counters are skipped afterwards, a
// counter created later is announced in its own first flush, and per-code
// counters that never counted stay hidden.
func TestAnnounceCounters(t *testing.T) {
	u := newUDPServer(t)
	s := newTestStore(t, Config{})
	f, err := NewFlusher(s, FlusherConfig{Sinks: []SinkConfig{{Address: u.addr()}}, AnnounceCounters: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c := s.ClusterStats("b")
	c.UpstreamRqTotal.Add(3)

	first := lines(flushAndRead(t, f, u))
	for _, want := range []string{"envoy.cluster.b.upstream_rq_total:3|c", "envoy.cluster.b.upstream_cx_connect_fail:0|c",
		"envoy.cluster.b.upstream_rq_timeout:0|c", "envoy.cluster.b.upstream_rq_retry:0|c", "envoy.cluster.b.upstream_rq_5xx:0|c"} {
		if !slices.Contains(first, want) {
			t.Errorf("first flush lacks %q", want)
		}
	}
	for _, l := range first {
		if strings.HasPrefix(l, "envoy.cluster.b.upstream_rq_503:") || strings.HasPrefix(l, "envoy.cluster.b.upstream_rq_200:") {
			t.Errorf("first flush announces the unused per-code counter %q", l)
		}
	}
	zeros := 0
	for _, l := range first {
		if strings.HasSuffix(l, ":0|c") {
			zeros++
		}
	}
	if zeros < 50 {
		t.Errorf("first flush announces %d counters at 0, want every counter of cluster b", zeros)
	}

	c.UpstreamCxConnectFail.Inc()
	if got, want := lines(flushAndRead(t, f, u)), []string{"envoy.statsd.lines_sent:" + strconv.Itoa(len(first)) + "|c", "envoy.cluster.b.upstream_cx_connect_fail:1|c"}; !slices.Equal(got, want) {
		t.Errorf("second flush: %q, want %q", got, want)
	}

	s.ClusterStats("later")
	third := lines(flushAndRead(t, f, u))
	if !slices.Contains(third, "envoy.cluster.later.upstream_rq_timeout:0|c") || slices.Contains(third, "envoy.cluster.b.upstream_rq_timeout:0|c") {
		t.Errorf("third flush should announce cluster later's counters and only those: %q", third)
	}
}
