package exemplars

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// bucketQuery selects the buckets the proxy's upstream latency fills.
const bucketQuery = `envoy_cluster_upstream_rq_time_bucket`

// TestSinkExemplarsInPrometheus sends the proxy's exemplar wire form over
// UDP to the real statsd-sink, scraped by the real Prometheus (3.x and
// Debian's 2.42) with exemplar storage: query_exemplars must return the
// latest trace ID of every bucket that got one, with its value, and the
// series Prometheus stores from the OpenMetrics scrape must be exactly
// those of a text scrape of the same sink.
func TestSinkExemplarsInPrometheus(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  func(testing.TB) string
	}{
		{"prometheus-3", func(t testing.TB) string { return e2etest.PinnedBin(t, "prometheus") }},
		{"prometheus-2.42-debian", e2etest.ClassicPrometheus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := tc.bin(t) // before anything starts: the test needs it
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sink := StartSink(t)
			_, promURL := e2etest.StartPrometheusBin(t, bin, ExemplarStorage, PrometheusConfig(sink.Web, textOnly(t, sink.Web)))
			want := sendTracedTimers(t, sink.UDP)
			waitExemplars(ctx, t, promURL, want)
			sameSeries(ctx, t, promURL)
		})
	}
}

// traced is a trace ID sent with a timer value (ms).
type traced struct {
	traceID string
	ms      float64
}

// sendTracedTimers sends, in the proxy's DogStatsD form, a flood of
// traced 3 ms timers, then one traced timer into each of four buckets
// (5, 50, 500 and 5000 ms; the preset keeps milliseconds). It returns
// those last four, each the latest exemplar of its bucket.
func sendTracedTimers(t *testing.T, addr string) []traced {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(ms float64, id string) {
		line := fmt.Sprintf("envoy.cluster.upstream_rq_time:%g|ms|#envoy.cluster_name:catalog,node_id:front-proxy|trace_id:%s", ms, id)
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		send(3, fmt.Sprintf("%032x", 0xf100d0000+i))
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond) // a pace the socket buffer keeps
		}
	}
	last := []traced{{"4bf92f3577b34da6a3ce929d0e0e4736", 4}, {"00f067aa0ba902b7a3ce929d0e0e4736", 30},
		{"0af7651916cd43dd8448eb211c80319c", 300}, {"b7ad6b7169203331a3ce929d0e0e4736", 3000}}
	for _, l := range last {
		send(l.ms, l.traceID)
	}
	return last
}

// waitExemplars polls query_exemplars until each of want is there, on the
// bucket its value falls in, and checks that every exemplar is one the
// test sent, within its bucket.
func waitExemplars(ctx context.Context, t *testing.T, promURL string, want []traced) {
	t.Helper()
	var got []Exemplar
	found := func() bool {
		got = QueryExemplars(ctx, t, promURL, bucketQuery)
		for _, w := range want {
			if !slices.ContainsFunc(got, func(e Exemplar) bool { return e.TraceID == w.traceID && e.Value == w.ms }) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(60 * time.Second); !found(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("query_exemplars(%s) = %+v, want trace IDs %+v", bucketQuery, got, want)
		}
	}
	for _, e := range got {
		if e.Series["envoy_cluster_name"] != "catalog" || e.Series["node_id"] != "front-proxy" || e.Series["job"] != "openmetrics" {
			t.Errorf("exemplar %s on series %v", e.TraceID, e.Series)
		}
		if !strings.HasPrefix(e.TraceID, "0000000f100d") && !slices.ContainsFunc(want, func(w traced) bool { return w.traceID == e.TraceID }) {
			t.Errorf("exemplar with trace ID %s, which was never sent", e.TraceID)
		}
		// Prometheus 3 spells the bound 5.0, 2.42 as the sink does: 5.
		if le, err := strconv.ParseFloat(e.Series["le"], 64); err != nil || e.Value > le {
			t.Errorf("exemplar %s (%g ms) on bucket le=%q", e.TraceID, e.Value, e.Series["le"])
		}
	}
	t.Logf("%d exemplars, e.g. %+v", len(got), got[0])
}

// sameSeries waits until both jobs have scraped the final state, then
// requires the same series (names and labels) from both.
func sameSeries(ctx context.Context, t *testing.T, promURL string) {
	t.Helper()
	time.Sleep(3 * time.Second) // a few more scrapes of each job
	om, text := seriesOf(ctx, t, promURL, "openmetrics"), seriesOf(ctx, t, promURL, "text")
	if !slices.Contains(om, `__name__="envoy_cluster_upstream_rq_time_bucket",envoy_cluster_name="catalog",le="5",node_id="front-proxy",`) &&
		!slices.Contains(om, `__name__="envoy_cluster_upstream_rq_time_bucket",envoy_cluster_name="catalog",le="5.0",node_id="front-proxy",`) {
		t.Errorf("the OpenMetrics job lacks the le=5 bucket of the timers sent: %d series", len(om))
	}
	if !slices.Equal(om, text) {
		for _, s := range om {
			if !slices.Contains(text, s) {
				t.Errorf("only from OpenMetrics: %s", s)
			}
		}
		for _, s := range text {
			if !slices.Contains(om, s) {
				t.Errorf("only from text: %s", s)
			}
		}
	}
	t.Logf("%d series, identical from OpenMetrics and text scrapes", len(om))
}
