package stats

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// udpServer is a real UDP socket on 127.0.0.1 that collects datagrams.
type udpServer struct {
	conn *net.UDPConn
}

func newUDPServer(t *testing.T) *udpServer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Logf("SetReadBuffer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpServer{conn: c}
}

func (u *udpServer) addr() string { return u.conn.LocalAddr().String() }

// read returns the datagrams that arrive until none has for 200ms (bounded
// by 5s in total).
func (u *udpServer) read(t *testing.T) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 70000)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_ = u.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := u.conn.Read(buf)
		if err != nil {
			break
		}
		out = append(out, string(buf[:n]))
	}
	return out
}

func newTestStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestFlusher(t testing.TB, s *Store, sinks ...SinkConfig) *Flusher {
	t.Helper()
	f, err := NewFlusher(s, FlusherConfig{Sinks: sinks}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// scriptedTraffic drives a known pattern through the typed stats, the way
// the connection manager and router will:
//
//	10 requests on http.ingress to cluster backend:
//	  5 answered 200 first time                   (times 3,3,7,12,40 ms)
//	  2 answered 503, retried, then 200           (retry.upstream_rq_503 x2, retry_success x2; 20, 260 ms)
//	  1 answered 404                              (8 ms)
//	  1 upstream timeout, answered 504            (upstream_rq_timeout; 1000 ms)
//	  1 pending overflow, answered 503 locally    (upstream_rq_pending_overflow, no upstream response)
func scriptedTraffic(s *Store) {
	hcm := s.HTTPConnManagerStats("ingress")
	cl := s.ClusterStats("backend")
	hcm.DownstreamCxTotal.Inc()
	hcm.DownstreamCxActive.Inc()
	cl.UpstreamCxTotal.Add(2)
	cl.UpstreamCxActive.Set(2)
	respond := func(code int, ms uint64) {
		hcm.DownstreamRqTotal.Inc()
		hcm.RecordResponse(code)
		hcm.Responses.RecordTime(ms, TraceID{})
	}
	upstream := func(code int, ms uint64) {
		cl.UpstreamRqTotal.Inc()
		cl.RecordResponse(code, false)
		cl.RecordResponseTime(ms, false, TraceID{})
		respond(code, ms)
	}
	for _, ms := range []uint64{3, 3, 7, 12, 40} {
		upstream(200, ms)
	}
	for _, ms := range []uint64{20, 260} {
		cl.UpstreamRqTotal.Inc() // the first try
		cl.RecordRetriedResponse(503)
		cl.UpstreamRqRetry.Inc()
		cl.UpstreamRqRetrySuccess.Inc()
		upstream(200, ms)
	}
	upstream(404, 8)
	cl.UpstreamRqTotal.Inc()
	cl.UpstreamRqTimeout.Inc()
	cl.RecordResponse(504, false)
	respond(504, 1000)
	cl.UpstreamRqPendingOverflow.Inc()
	respond(503, 0)
}

// testTraceID returns a trace ID whose 16 bytes all derive from n, so that
// a reader can tell a torn exemplar from a whole one.
func testTraceID(n uint64) TraceID {
	var id TraceID
	for i := range id {
		id[i] = byte(n>>(8*(i%8))) ^ byte(i*37+1)
	}
	return id
}

// tracedTraffic is a few requests to cluster catalog, some of them sampled
// (trace IDs testTraceID(1..3)), one to a canary host and one across
// zones a→b:
//
//	sampled   upstream 12 ms, downstream 13 ms            trace 1
//	unsampled upstream 12 ms, downstream 14 ms
//	sampled   upstream 300 ms canary, zone a→b, route     trace 2
//	sampled   downstream only 2 ms (local reply)          trace 3
func tracedTraffic(s *Store) {
	hcm := s.HTTPConnManagerStats("ingress")
	cl := s.ClusterStats("catalog")
	zone := s.ZoneStats("catalog", "a", "b")
	rt := s.RouteStats("vh", "api")
	cl.RecordResponseTime(12, false, testTraceID(1))
	hcm.Responses.RecordTime(13, testTraceID(1))
	cl.RecordResponseTime(12, false, TraceID{})
	hcm.Responses.RecordTime(14, TraceID{})
	cl.RecordResponseTime(300, true, testTraceID(2))
	zone.RecordResponseTime(300, testTraceID(2))
	rt.RecordResponseTime(300, testTraceID(2))
	hcm.Responses.RecordTime(2, testTraceID(3))
}

func lines(datagrams []string) []string {
	var out []string
	for _, d := range datagrams {
		out = append(out, strings.Split(strings.TrimSuffix(d, "\n"), "\n")...)
	}
	return out
}

func flushAndRead(t *testing.T, f *Flusher, u *udpServer) []string {
	t.Helper()
	f.Flush(context.Background())
	return u.read(t)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
