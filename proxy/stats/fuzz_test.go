package stats

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// captureWriter is a sink writer that keeps what it is given.
type captureWriter struct{ batches []string }

func (c *captureWriter) write(_ context.Context, b []byte) error {
	c.batches = append(c.batches, string(b))
	return nil
}
func (c *captureWriter) close() error { return nil }

// FuzzNames feeds arbitrary configured names through the stat naming and
// every rendering: StatsD and DogStatsD lines must stay one well-formed line
// each, and /stats/prometheus must parse.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"backend", "svc.ns", "[::1]:8080", "a b|c#d,e@f", "0start", "é\n\"\\", "", "..."} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, name, zone string) {
		s := newTestStore(t, Config{})
		c := s.ClusterStats(name)
		c.RecordResponse(200, true)
		c.RecordResponseTime(7, true, TraceID{})
		s.ZoneStats(name, zone, "z").RecordResponse(503)
		s.ListenerStats(name).DownstreamCxTotal.Inc()
		s.ListenerHTTPStats(name, zone).RecordResponse(404)
		s.RouteStats(zone, name).RecordResponse(201)
		s.HTTPConnManagerStats(name).DownstreamRqActive.Set(1)

		for _, dog := range []bool{false, true} {
			w := &captureWriter{}
			fl := &Flusher{store: s, sinks: []*sinkState{{
				cfg: SinkConfig{Type: SinkStatsD, Protocol: ProtocolUDP, Prefix: "envoy", MaxBytesPerDatagram: 65507, Histograms: HistogramsCompact},
				dog: dog, compact: true, w: w, self: &s.self, log: discardLogger(),
			}}, anyCompact: true}
			fl.Flush(context.Background())
			for _, b := range w.batches {
				for _, l := range strings.Split(b, "\n") {
					n, rest, ok := strings.Cut(l, ":")
					if !ok || strings.ContainsAny(n, " |#,@\"\\\r\t") || strings.Count(rest, "|#") > 1 || strings.Contains(rest, ":") && !dog {
						t.Fatalf("malformed line %q", l)
					}
				}
			}
		}
		_, body := get(t, s.PrometheusHandler(), "/stats/prometheus")
		parseProm(t, body)
	})
}

// FuzzStatsQuery: any query string gives 200 or 400, never a panic.
func FuzzStatsQuery(f *testing.F) {
	for _, q := range []string{"", "filter=(", "usedonly", "format=json&filter=a.*b", "format=prometheus", "format=x", "filter=%ff%00"} {
		f.Add(q)
	}
	s := newTestStore(f, Config{})
	scriptedTraffic(s)
	handlers := []http.Handler{s.StatsHandler(), s.PrometheusHandler()}
	f.Fuzz(func(t *testing.T, q string) {
		for _, h := range handlers {
			// Built by hand: the raw query reaches the handler as a client
			// could send it, even where httptest.NewRequest would refuse it.
			req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/stats", RawQuery: q}, Header: http.Header{}}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 && rec.Code != 400 {
				t.Fatalf("query %q: status %d", q, rec.Code)
			}
		}
	})
}

// TestCompactConcurrent records from several goroutines while compact
// flushes run, then checks that the decoded lines add up exactly to the
// histogram, counts and sum: a bucket read while a Record is under way in
// it must be left for a later flush, not sent with a count and a sum that
// do not match. With "flusher yields", the flusher gives up the CPU
// between its count and sum loads, as a descheduled flusher would; that
// once lost thousands of samples of one bucket.
func TestCompactConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook func(*Histogram, int)
	}{
		{"plain", nil},
		{"flusher yields", func(*Histogram, int) { runtime.Gosched() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, Config{})
			h := s.ClusterStats("b").Responses.Time
			f, w := compactCapture(s)
			if tc.hook != nil {
				setHookBetweenLoads(t, tc.hook)
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 20000 {
						h.Record(uint64((i*7919 + g*104729) % 700))
					}
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			for running := true; running; {
				select {
				case <-done:
					running = false
				default:
					f.Flush(context.Background())
				}
			}
			f.Flush(context.Background())
			checkDecoded(t, h, w, "after the last flush")
		})
	}
}
