package sink

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

func newBenchPipeline(b *testing.B, preset string) (*Pipeline, *aggregate.Store) {
	m, err := mapping.Load(mapping.Options{Preset: preset})
	if err != nil {
		b.Fatal(err)
	}
	store := aggregate.New(aggregate.Options{})
	return NewPipeline(statsd.NewParser(), m, store, NewMetrics(nil), nil, 1<<18), store
}

// BenchmarkIngestExistingSeries is the per-line hot path once a series
// exists: parse, cache hit, update. It must not allocate.
func BenchmarkIngestExistingSeries(b *testing.B) {
	for _, tc := range []struct{ name, line string }{
		{"flat-counter", "envoy.cluster.backend.upstream_rq_200:1|c"},
		{"dogstatsd-counter", "envoy.cluster.upstream_rq:1|c|#envoy.cluster_name:backend,envoy.response_code:200"},
		{"timer-histogram", "envoy.cluster.backend.upstream_rq_time:12|ms|@0.5"},
		{"timer-histogram-exemplar", "envoy.cluster.backend.upstream_rq_time:12|ms|@0.5|trace_id:4bf92f3577b34da6a3ce929d0e0e4736"},
		{"gauge", "envoy.server.uptime:12|g"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, _ := newBenchPipeline(b, "envoy")
			w := p.NewWorker()
			line := []byte(tc.line)
			w.HandleLine(line)
			b.ReportAllocs()
			for b.Loop() {
				w.HandleLine(line)
			}
		})
	}
}

// BenchmarkIngestPacket is a 10-line datagram of distinct existing series.
func BenchmarkIngestPacket(b *testing.B) {
	p, _ := newBenchPipeline(b, "envoy")
	w := p.NewWorker()
	var pkt []byte
	for i := range 10 {
		pkt = fmt.Appendf(pkt, "envoy.cluster.c%d.upstream_rq_%d:1|c\n", i, 200+i)
	}
	pkt = pkt[:len(pkt)-1]
	w.HandlePacket(pkt)
	b.ReportAllocs()
	b.SetBytes(10) // "bytes" are lines here: MB/s reads as Mlines/s
	for b.Loop() {
		w.HandlePacket(pkt)
	}
}

func TestIngestExistingSeriesDoesNotAllocate(t *testing.T) {
	m, _ := mapping.Load(mapping.Options{Preset: "envoy"})
	p := NewPipeline(statsd.NewParser(), m, aggregate.New(aggregate.Options{}), NewMetrics(nil), nil, 100)
	w := p.NewWorker()
	for _, l := range []string{
		"envoy.cluster.backend.upstream_rq_200:1|c",
		"envoy.cluster.upstream_rq:1|c|#envoy.cluster_name:backend,envoy.response_code:200",
		"envoy.cluster.backend.upstream_rq_time:12|ms|@0.5",
		"plain.timer:3|ms",
	} {
		line := []byte(l)
		w.HandleLine(line)
		if n := testing.AllocsPerRun(200, func() { w.HandleLine(line) }); n != 0 {
			t.Errorf("%s: %v allocations per line", l, n)
		}
	}
}

// BenchmarkScrape100k serves /metrics with 100k series.
func BenchmarkScrape100k(b *testing.B) {
	s, err := New(Config{UDPAddr: "127.0.0.1:0", Parser: statsd.NewParser(), CacheSize: 1 << 18, Mapping: mapping.Options{Preset: "envoy"}})
	if err != nil {
		b.Fatal(err)
	}
	w := s.Pipeline().NewWorker()
	for i := range 100000 {
		w.HandleLine(fmt.Appendf(nil, "envoy.cluster.c%d.upstream_rq_%d:1|c", i/10, 200+i%10))
	}
	h := s.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		rec.Body = nil
		h.ServeHTTP(discardRecorder{rec}, httptest.NewRequest("GET", "/metrics", nil))
	}
}

type discardRecorder struct{ *httptest.ResponseRecorder }

func (discardRecorder) Write(p []byte) (int, error) { return io.Discard.Write(p) }
