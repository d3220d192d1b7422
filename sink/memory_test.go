package sink

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// heapInuse is the heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// heapPerSeries ingests n distinct counters the way the benchmark harness
// does (envoy.cluster.svc<i>.upstream_rq_200 through one worker, as one TCP
// connection) and returns the heap growth per series, worker cache
// included.
func heapPerSeries(tb testing.TB, mo mapping.Options, cacheSize, n int) float64 {
	tb.Helper()
	m, err := mapping.Load(mo)
	if err != nil {
		tb.Fatal(err)
	}
	before := heapInuse()
	store := aggregate.New(aggregate.Options{})
	p := NewPipeline(statsd.NewParser(), m, store, NewMetrics(nil), nil, cacheSize)
	// The cost of one series, not of the entity families at 0 that a
	// new cluster brings (each of those is an ordinary series).
	p.SetZeroSeriesLimit(0)
	w := p.NewWorker()
	var buf []byte
	for i := range n {
		buf = fmt.Appendf(buf[:0], "envoy.cluster.svc%d.upstream_rq_200:1|c", i)
		w.HandleLine(buf)
	}
	after := heapInuse()
	if store.Len() != n {
		tb.Fatalf("%d series, want %d", store.Len(), n)
	}
	runtime.KeepAlive(w)
	runtime.KeepAlive(store)
	return float64(int64(after)-int64(before)) / float64(n)
}

// TestHeapPerSeries bounds the heap cost of a series at 100k series. The
// bound is generous (the measured figure is in the README and the
// benchmark); it is there to catch a regression to per-series label slices,
// maps or mapping results, which cost over 800 bytes per series.
func TestHeapPerSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests 100k series")
	}
	const bound = 600
	for _, tc := range []struct {
		name      string
		mo        mapping.Options
		cacheSize int
	}{
		{"regex-mapping", mapping.Options{File: "testdata/envoy-regex-mapping.yml"}, 1 << 18},
		{"envoy-preset", mapping.Options{Preset: "envoy"}, 1 << 18},
		{"regex-mapping-nocache", mapping.Options{File: "testdata/envoy-regex-mapping.yml"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := heapPerSeries(t, tc.mo, tc.cacheSize, 100000)
			t.Logf("%.0f heap bytes per series", got)
			if got > bound {
				t.Errorf("%.0f heap bytes per series at 100k series, want at most %d", got, bound)
			}
		})
	}
}

// BenchmarkHeapPerSeries reports heap bytes per series at 100k series.
func BenchmarkHeapPerSeries(b *testing.B) {
	for _, tc := range []struct {
		name string
		mo   mapping.Options
	}{
		{"regex-mapping", mapping.Options{File: "testdata/envoy-regex-mapping.yml"}},
		{"envoy-preset", mapping.Options{Preset: "envoy"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var per float64
			for b.Loop() {
				per = heapPerSeries(b, tc.mo, 1<<18, 100000)
			}
			b.ReportMetric(per, "bytes/series")
		})
	}
}
