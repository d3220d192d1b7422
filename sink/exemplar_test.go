package sink

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// TestExemplarFloodKeepsSeriesAndMemory sends the proxy's exemplar lines
// with a new trace ID each, as every sampled request brings: the trace ID
// must make no series (it is no label) and no memory beyond one exemplar
// per histogram bucket.
func TestExemplarFloodKeepsSeriesAndMemory(t *testing.T) {
	m, err := mapping.Load(mapping.Options{Preset: "envoy"})
	if err != nil {
		t.Fatal(err)
	}
	store := aggregate.New(aggregate.Options{})
	p := NewPipeline(statsd.NewParser(), m, store, NewMetrics(nil), nil, 1<<10)
	w := p.NewWorker()
	var buf []byte
	send := func(i int) {
		buf = fmt.Appendf(buf[:0], "envoy.cluster.catalog.upstream_rq_time:%d|ms|#node_id:front-proxy|trace_id:%032x", i%3000, i+1)
		w.HandleLine(buf)
	}
	send(0)
	series := store.Len()
	before := heapInuse()
	const n = 200000
	for i := range n {
		send(i)
	}
	after := heapInuse()
	runtime.KeepAlive(w)
	if store.Len() != series || store.ExemplarSeries() != 1 {
		t.Errorf("after %d trace IDs: %d series (%d before), %d with exemplars; want unchanged and 1",
			n, store.Len(), series, store.ExemplarSeries())
	}
	if grew := int64(after) - int64(before); grew > 64<<10 {
		t.Errorf("heap grew %d bytes over %d trace IDs", grew, n)
	}
	var ex []aggregate.Exemplar
	for _, f := range store.Snapshot() {
		if f.Name == "envoy_cluster_upstream_rq_time" {
			for _, s := range f.Series {
				ex = append(ex, s.Exemplars...)
			}
			if len(ex) != len(f.Buckets)+1 {
				t.Errorf("%d exemplars, want one per bucket (%d)", len(ex), len(f.Buckets)+1)
			}
		}
	}
	// The preset keeps milliseconds. The last line sent (n-1, value
	// (n-1)%3000) is its bucket's exemplar.
	lastID, _ := statsd.ParseTraceID(fmt.Sprintf("%032x", n))
	found := false
	for _, e := range ex {
		found = found || e.Value == float64((n-1)%3000) && e.TraceID == lastID
	}
	if !found {
		t.Errorf("the latest line's exemplar is missing: %+v", ex)
	}
}
