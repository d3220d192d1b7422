package sink

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// TestProxyCompactHistogramsAreExact sends the proxy's own compact
// histogram output (one "name:<mean>|ms|@<rate>" line per non-empty bucket,
// rate = 1/count truncated to 9 digits) through a real flusher over UDP
// into a real sink, for plain StatsD and DogStatsD, and requires every
// _bucket, _count and _sum to equal what the proxy recorded.
func TestProxyCompactHistogramsAreExact(t *testing.T) {
	for _, sinkType := range []string{stats.SinkStatsD, stats.SinkDogStatsD} {
		t.Run(sinkType, func(t *testing.T) {
			srv := startServer(t, Config{UDPAddr: "127.0.0.1:0", WebAddr: "127.0.0.1:0", Parser: statsd.NewParser(),
				CacheSize: 1024, Mapping: mapping.Options{Preset: "envoy"}})
			ps, err := stats.NewStore(stats.Config{})
			if err != nil {
				t.Fatal(err)
			}
			f, err := stats.NewFlusher(ps, stats.FlusherConfig{Sinks: []stats.SinkConfig{{
				Type: sinkType, Address: srv.UDPAddr().String(), Histograms: stats.HistogramsCompact,
			}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			h := ps.ClusterStats("backend").Responses.Time
			// small only has sums whose float mean times the count is not
			// the sum (29/7·7 = 29.000000000000004, 30/11·11 =
			// 30.000000000000004); in backend larger sums absorb such
			// errors, here they would show.
			small := ps.ClusterStats("small").Responses.Time

			// Bucket counts whose 1/count has no exact short decimal (3, 7,
			// 49, 3125, 12345, …), values spread over many buckets, and two
			// flushes so that the second sends deltas.
			rng := rand.New(rand.NewPCG(1, 2))
			record := func(v uint64, n int) {
				for range n {
					h.Record(v)
				}
			}
			recordSmall := func(v uint64, n int) {
				for range n {
					small.Record(v)
				}
			}
			ctx := context.Background()
			for round := range 2 {
				record(0, 3)
				record(1, 7)
				record(3, 49)
				record(4, 2) // same bucket as 3: a mean that is not an integer
				if round == 0 {
					recordSmall(4, 6)
					recordSmall(5, 1)
				} else {
					recordSmall(3, 8)
					recordSmall(2, 3)
				}
				record(17, 3125)
				record(99, 12345)
				record(240, 1)
				record(1000, 6)
				for range 2000 + 1000*round {
					record(6+rng.Uint64N(5000), 1)
				}
				f.Flush(ctx)
			}
			for _, c := range []struct {
				name string
				h    *stats.Histogram
			}{{"backend", h}, {"small", small}} {
				snap := c.h.Snapshot()
				wantCount := snap.Count()
				labels := []string{"envoy_cluster_name", c.name}
				fams := waitFor(t, srv, "every sample", func(fams map[string]*dto.MetricFamily) bool {
					hg, ok := histogram(fams, "envoy_cluster_upstream_rq_time", labels...)
					return ok && hg.GetSampleCountFloat()+float64(hg.GetSampleCount()) >= float64(wantCount)
				})
				got, _ := histogram(fams, "envoy_cluster_upstream_rq_time", labels...)
				if got.GetSampleCountFloat() != 0 || got.GetSampleCount() != wantCount {
					t.Errorf("%s: _count = %v (float %v), want exactly %d", c.name, got.GetSampleCount(), got.GetSampleCountFloat(), wantCount)
				}
				if got.GetSampleSum() != float64(snap.Sum()) {
					t.Errorf("%s: _sum = %s, want exactly %d", c.name, strconv.FormatFloat(got.GetSampleSum(), 'f', -1, 64), snap.Sum())
				}
				cum := append(snap.Cumulative(), wantCount) // the +Inf bucket is the count
				bounds := append(c.h.Bounds()[:len(c.h.Bounds()):len(c.h.Bounds())], math.Inf(1))
				if len(got.Bucket) != len(bounds) || len(cum) != len(bounds) {
					t.Fatalf("%d buckets, want %d (proxy has %d)", len(got.Bucket), len(bounds), len(cum))
				}
				for i, b := range got.Bucket {
					if b.GetUpperBound() != bounds[i] || b.GetCumulativeCountFloat() != 0 || b.GetCumulativeCount() != cum[i] {
						t.Errorf("%s: bucket le=%v: %d (float %v), want le=%v %d", c.name, b.GetUpperBound(), b.GetCumulativeCount(),
							b.GetCumulativeCountFloat(), bounds[i], cum[i])
					}
				}
			}
		})
	}
}

// histogram returns the histogram series of name with exactly labels.
func histogram(fams map[string]*dto.MetricFamily, name string, labels ...string) (*dto.Histogram, bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.Metric {
		if m.Histogram == nil || len(m.Label) != len(labels)/2 {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			if m.Label[i/2].GetName() != labels[i] || m.Label[i/2].GetValue() != labels[i+1] {
				continue next
			}
		}
		return m.Histogram, true
	}
	return nil, false
}
