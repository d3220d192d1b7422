package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func scrape(t *testing.T, s *Server, accept string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.WebAddr().String()+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	return parseText(t, strings.NewReader(string(body))), string(body)
}

// waitFor polls until cond holds on a scrape, or fails after a generous
// deadline (UDP delivery on loopback is asynchronous).
func waitFor(t *testing.T, s *Server, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams, _ := scrape(t, s, "")
		if cond(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels)/2 {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestServerUDPAndTCP(t *testing.T) {
	s := startServer(t, Config{
		UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", WebAddr: "127.0.0.1:0", UDPReaders: 2,
		Parser: statsd.NewParser(), CacheSize: 100, Mapping: mapping.Options{Preset: "envoy"},
	})
	u, err := net.Dial("udp", s.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pkts := []string{
		"foo:1|c\nfoo:2|c|@0.5\nbar:5|g\nbar:+2|g",
		"t:100|ms\nt:300|ms|@0.5",
		"envoy.cluster.backend.upstream_rq_200:1|c\nenvoy.cluster.upstream_rq:2|c|#envoy.cluster_name:backend,envoy.response_code:200",
		"envoy.cluster.backend.upstream_rq_time:12|ms",
		"u:a|s\nu:b|s\nu:a|s",
		"bad line",
	}
	for _, p := range pkts {
		if _, err := u.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "tcpline:7|c\r\ntcpline:1|c\n")
	c.Close()

	// Lines are counted when parsed and aggregated by the shards after,
	// so wait for the values themselves: 13 lines over UDP and 2 over
	// TCP, each in the series it maps to.
	want := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"foo", nil, 5},
		{"bar", nil, 7},
		{"t", nil, 3}, // count: 1 + 1/0.5
		{"envoy_cluster_upstream_rq", []string{"envoy_cluster_name", "backend", "envoy_response_code", "200"}, 3},
		{"envoy_cluster_upstream_rq_time", []string{"envoy_cluster_name", "backend"}, 1},
		{"u", nil, 2},
		{"tcpline", nil, 8},
		{"statsd_exporter_udp_packets_total", nil, 6},
		{"statsd_exporter_tcp_connections_total", nil, 1},
		{"statsd_exporter_sample_errors_total", []string{"reason", "malformed_line"}, 1},
	}
	mismatches := func(fams map[string]*dto.MetricFamily) []string {
		var bad []string
		for _, tc := range want {
			if got, ok := value(fams, tc.name, tc.labels...); !ok || got != tc.want {
				bad = append(bad, fmt.Sprintf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want))
			}
		}
		return bad
	}
	var last []string
	defer func() {
		if t.Failed() && len(last) > 0 {
			t.Logf("still wrong at the end:\n%s", strings.Join(last, "\n"))
		}
	}()
	fams := waitFor(t, s, "every line in its series", func(f map[string]*dto.MetricFamily) bool {
		last = mismatches(f)
		return len(last) == 0
	})
	// t is a summary of seconds: sum = 0.1 + 0.3*2.
	if got := fams["t"].Metric[0].Summary.GetSampleSum(); got != 0.1+0.3*2 {
		t.Errorf("t sum = %v", got)
	}
	// The Envoy histogram stays in milliseconds with Envoy's buckets.
	h := fams["envoy_cluster_upstream_rq_time"].Metric[0].Histogram
	if len(h.Bucket) < len(mapping.EnvoyBuckets) || h.Bucket[0].GetUpperBound() != 0.5 || h.GetSampleSum() != 12 {
		t.Errorf("envoy histogram = %v", h)
	}
	for _, accept := range []string{
		"application/openmetrics-text; version=1.0.0",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
	} {
		req, _ := http.NewRequest("GET", "http://"+s.WebAddr().String()+"/metrics", nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		format := expfmt.ResponseFormat(resp.Header)
		dec := expfmt.NewDecoder(resp.Body, format)
		n := 0
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s: decode: %v", accept, err)
				}
				break
			}
			n++
		}
		resp.Body.Close()
		if format.FormatType() == 0 || n == 0 && !strings.Contains(accept, "openmetrics") {
			t.Errorf("%s: got %d families in %q", accept, n, format)
		}
	}
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		resp, err := http.Get("http://" + s.WebAddr().String() + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
}

func TestServerTCPLineTooLong(t *testing.T) {
	s := startServer(t, Config{TCPAddr: "127.0.0.1:0", WebAddr: "127.0.0.1:0", TCPMaxLine: 64, Parser: statsd.NewParser()})
	c, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "ok:1|c\n%s:1|c\nafter:1|c\n", strings.Repeat("x", 200))
	c.Close()
	fams := waitFor(t, s, "too-long count", func(f map[string]*dto.MetricFamily) bool {
		v, _ := value(f, "statsd_exporter_tcp_too_long_lines_total")
		return v == 1
	})
	if v, _ := value(fams, "ok"); v != 1 {
		t.Errorf("ok = %v, want 1", v)
	}
	if _, ok := value(fams, "after"); ok {
		t.Error("line after the too-long line was processed; the connection should close")
	}
}

func TestReloadKeepsOldMappingOnError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "m.yml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mappings:\n- match: a.*\n  name: first\n")
	s := startServer(t, Config{UDPAddr: "127.0.0.1:0", WebAddr: "127.0.0.1:0", EnableLifecycle: true,
		Parser: statsd.NewParser(), CacheSize: 10, Mapping: mapping.Options{File: file}})
	w := s.Pipeline().NewWorker()
	w.HandleLine([]byte("a.x:1|c"))
	write("mappings:\n- match: a.*\n  name: bad-name\n")
	resp, err := http.Post("http://"+s.WebAddr().String()+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), file+":2: mappings[0]") {
		t.Errorf("bad reload: %s %s; want 500 naming %s:2", resp.Status, body, file)
	}
	w.HandleLine([]byte("a.x:1|c"))
	write("mappings:\n- match: a.*\n  name: second\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	w.HandleLine([]byte("a.x:1|c"))
	fams, _ := scrape(t, s, "")
	if v, _ := value(fams, "first"); v != 2 {
		t.Errorf("first = %v, want 2 (old mapping kept after failed reload)", v)
	}
	if v, _ := value(fams, "second"); v != 1 {
		t.Errorf("second = %v, want 1", v)
	}
	if v, _ := value(fams, "statsd_exporter_config_reloads_total", "outcome", "failure"); v != 1 {
		t.Errorf("reload failures = %v", v)
	}
}

func TestUnixgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "statsd.sock")
	s := startServer(t, Config{UnixgramPath: path, WebAddr: "127.0.0.1:0", Parser: statsd.NewParser()})
	c, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ux:3|c"))
	c.Close()
	waitFor(t, s, "unixgram counter", func(f map[string]*dto.MetricFamily) bool {
		v, _ := value(f, "ux")
		return v == 3
	})
}

func TestRelay(t *testing.T) {
	target, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	s := startServer(t, Config{UDPAddr: "127.0.0.1:0", WebAddr: "127.0.0.1:0", Parser: statsd.NewParser(),
		RelayAddr: target.LocalAddr().String(), RelayPacketLength: 1400})
	w := s.Pipeline().NewWorker()
	w.HandlePacket([]byte("r1:1|c\nr2:2|g"))
	target.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2000)
	n, _, err := target.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "r1:1|c\nr2:2|g\n" {
		t.Errorf("relayed %q", got)
	}
}

// TestFlood sends 2e5 random names with a small budget: the series count
// stays at the budget and the heap stays bounded.
func TestFlood(t *testing.T) {
	for _, ov := range []aggregate.Overflow{aggregate.OverflowDrop, aggregate.OverflowFold} {
		store := aggregate.New(aggregate.Options{MaxSeries: 1000, MaxSeriesPerFamily: 100, Overflow: ov})
		m, _ := mapping.Load(mapping.Options{})
		metrics := NewMetrics(nil)
		p := NewPipeline(statsd.NewParser(), m, store, metrics, nil, 1000)
		w := p.NewWorker()
		rng := rand.New(rand.NewPCG(1, 2))
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var line []byte
		for i := 0; i < 200000; i++ {
			line = fmt.Appendf(line[:0], "flood.%x.m%d:1|c|#tag:%x", rng.Uint64(), i%3, rng.Uint32()%500)
			w.HandleLine(line)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if n := store.Len(); n > 1000+store.Families() {
			t.Errorf("%v: %d series, budget 1000", ov, n)
		}
		if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 64<<20 {
			t.Errorf("%v: heap grew by %d MiB", ov, grown>>20)
		}
		if metrics.overflowTotal.Load() == 0 {
			t.Errorf("%v: no overflow counted", ov)
		}
	}
}
