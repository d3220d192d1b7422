package stats

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkCounterInc(b *testing.B) {
	c := newTestStore(b, Config{}).ClusterStats("b").UpstreamRqTotal
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCounterIncParallel(b *testing.B) {
	c := newTestStore(b, Config{}).ClusterStats("b").UpstreamRqTotal
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkGaugeIncDec(b *testing.B) {
	g := newTestStore(b, Config{}).ClusterStats("b").UpstreamRqActive
	b.ReportAllocs()
	for b.Loop() {
		g.Inc()
		g.Dec()
	}
}

var benchCodes = []int{200, 200, 200, 201, 204, 304, 404, 503, 200, 299}

func BenchmarkRecordResponse(b *testing.B) {
	c := newTestStore(b, Config{}).ClusterStats("b")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.RecordResponse(benchCodes[i%len(benchCodes)], false)
		i++
	}
}

func BenchmarkRecordResponseParallel(b *testing.B) {
	c := newTestStore(b, Config{}).ClusterStats("b")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.RecordResponse(benchCodes[i%len(benchCodes)], false)
			i++
		}
	})
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := newTestStore(b, Config{}).ClusterStats("b").Responses.Time
	b.ReportAllocs()
	var v uint64
	for b.Loop() {
		h.Record(v % 4000)
		v += 37
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	h := newTestStore(b, Config{}).ClusterStats("b").Responses.Time
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var v uint64
		for pb.Next() {
			h.Record(v % 4000)
			v += 37
		}
	})
}

// BenchmarkHistogramRecordExemplar is Record for sampled requests
// (RecordTraced with a trace ID: the bucket's exemplar is replaced each
// time) and, for comparison, RecordTraced with a zero ID, which is what
// every unsampled request pays.
func BenchmarkHistogramRecordExemplar(b *testing.B) {
	for _, tc := range []struct {
		name string
		id   TraceID
	}{{"sampled", testTraceID(7)}, {"unsampled", TraceID{}}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newTestStore(b, Config{}).ClusterStats("b").Responses.Time
			b.ReportAllocs()
			var v uint64
			for b.Loop() {
				h.RecordTraced(v%4000, tc.id)
				v += 37
			}
		})
	}
}

// BenchmarkHistogramRecordExemplarParallel is the sampled case with every
// core writing exemplars into the same few buckets.
func BenchmarkHistogramRecordExemplarParallel(b *testing.B) {
	h := newTestStore(b, Config{}).ClusterStats("b").Responses.Time
	id := testTraceID(7)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var v uint64
		for pb.Next() {
			h.RecordTraced(v%4000, id)
			v += 37
		}
	})
}

// BenchmarkDrainTimerLines is the flusher's cost per queued timer sample:
// popping it and formatting its DogStatsD line, with and without the
// trace_id section (exemplars on a sink, every sample sampled).
func BenchmarkDrainTimerLines(b *testing.B) {
	for _, exemplars := range []bool{false, true} {
		b.Run(fmt.Sprintf("exemplars=%v", exemplars), func(b *testing.B) {
			s := newTestStore(b, Config{FixedTags: []Tag{{Name: "node_id", Value: "front-proxy"}}})
			const batch = 1024
			q := newSampleQueue(batch)
			s.timerQueue.Store(q)
			h := s.ClusterStats("catalog").Responses.Time
			f := &Flusher{store: s, queue: q, anyExemplars: exemplars, sinks: []*sinkState{{
				cfg: SinkConfig{Prefix: "envoy", Protocol: ProtocolUDP, MaxBytesPerDatagram: 1432, Exemplars: exemplars},
				dog: true, w: nullWriter{}, self: &s.self, log: discardLogger(),
			}}}
			id := testTraceID(7)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for i := range batch {
					h.RecordTraced(uint64(i%300), id)
				}
				b.StartTimer()
				f.DrainTimers(context.Background())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/line")
		})
	}
}

// BenchmarkHistogramRecordTimerQueue is Record with a timer-mode sink
// installed: the sample also goes through the lock-free queue, which a
// goroutine drains as the flusher would.
func BenchmarkHistogramRecordTimerQueue(b *testing.B) {
	for _, par := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", par), func(b *testing.B) {
			s := newTestStore(b, Config{})
			q := newSampleQueue(DefaultTimerQueueSize)
			s.timerQueue.Store(q)
			h := s.ClusterStats("b").Responses.Time
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					for {
						if _, ok := q.pop(); !ok {
							break
						}
					}
				}
			}()
			b.ReportAllocs()
			if par {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						h.Record(42)
					}
				})
			} else {
				for b.Loop() {
					h.Record(42)
				}
			}
			b.StopTimer()
			close(stop)
			<-done
			b.ReportMetric(float64(s.self.TimerSamplesDropped.Value())/float64(b.N), "dropped/op")
		})
	}
}

// BenchmarkRequestStats is the full per-request stats work of one proxied
// request (connection manager, listener, cluster, zone, route).
func BenchmarkRequestStats(b *testing.B) {
	s := newTestStore(b, Config{})
	hcm := s.HTTPConnManagerStats("ingress")
	lh := s.ListenerHTTPStats("0.0.0.0:80", "ingress")
	c := s.ClusterStats("backend")
	z := s.ZoneStats("backend", "a", "b")
	r := s.RouteStats("vh", "api")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			hcm.DownstreamRqTotal.Inc()
			hcm.DownstreamRqActive.Inc()
			c.UpstreamRqTotal.Inc()
			c.UpstreamRqActive.Inc()
			c.RecordResponse(200, false)
			c.RecordResponseTime(12, false, TraceID{})
			z.RecordResponse(200)
			z.RecordResponseTime(12, TraceID{})
			r.RecordResponse(200)
			r.RecordResponseTime(12, TraceID{})
			c.UpstreamRqActive.Dec()
			hcm.RecordResponse(200)
			lh.RecordResponse(200)
			hcm.Responses.RecordTime(13, TraceID{})
			hcm.DownstreamRqActive.Dec()
		}
	})
}

// BenchmarkFlush measures one flush of 50 clusters' worth of stats to a
// sink that discards (formatting and batching cost only).
func BenchmarkFlush(b *testing.B) {
	s := newTestStore(b, Config{})
	var cs []*ClusterStats
	for i := range 50 {
		cs = append(cs, s.ClusterStats(fmt.Sprintf("c%d", i)))
	}
	for _, compact := range []bool{false, true} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			w := &nullWriter{}
			f := &Flusher{store: s, anyCompact: compact, sinks: []*sinkState{{
				cfg: SinkConfig{Prefix: "envoy", Protocol: ProtocolUDP, MaxBytesPerDatagram: 1432}, compact: compact, w: w, self: &s.self, log: discardLogger(),
			}}}
			b.ReportAllocs()
			for b.Loop() {
				for _, c := range cs {
					c.UpstreamRqTotal.Inc()
					c.RecordResponse(200, false)
					c.RecordResponseTime(7, false, TraceID{})
				}
				f.Flush(context.Background())
			}
		})
	}
}

type nullWriter struct{}

func (nullWriter) write(context.Context, []byte) error { return nil }
func (nullWriter) close() error                        { return nil }
