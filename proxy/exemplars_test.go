package proxy_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/tracing"
)

// openMetricsExemplars scrapes /stats/prometheus asking for OpenMetrics as
// Prometheus does, parses it with Prometheus's parser, and returns the
// trace_id of each series' exemplar, keyed by metric name and cluster or
// connection manager label.
func openMetricsExemplars(t *testing.T, tp *tracedProxy) map[string]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tp.adminURL("/stats/prometheus"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
	res, body := tp.do(req)
	p, err := textparse.New([]byte(body), res.Header.Get("Content-Type"), labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("OpenMetrics parser: %v", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		var l labels.Labels
		p.Labels(&l)
		var ex exemplar.Exemplar
		for p.Exemplar(&ex) {
			key := l.Get("__name__") + "/" + l.Get("envoy_cluster_name") + l.Get("envoy_http_conn_manager_prefix")
			if prev, ok := out[key]; ok && prev != ex.Labels.Get("trace_id") {
				key += "/" + l.Get("le")
			}
			out[key] = ex.Labels.Get("trace_id")
		}
	}
}

// TestExemplarsFromSampledRequests: a sampled request leaves its trace ID
// (the one its access-log line names) as the exemplar of
// downstream_rq_time and upstream_rq_time, on the admin endpoint in
// OpenMetrics and on a StatsD sink with exemplars: true; an unsampled one
// leaves none and sends plain timer lines.
func TestExemplarsFromSampledRequests(t *testing.T) {
	_, upAddr := newUpstreamRecorder(t, 0)
	rcv := newStatsdReceiver(t)
	cfg := withTracing("sampling_ratio: 0") +
		"stats_config: {flush_interval: 50ms}\n" +
		"stats_sinks: [{type: dogstatsd, address: \"" + rcv.addr() + "\", exemplars: true}]\n"
	rec := &spanRecorder{}
	noEnv := tracing.WithLookupEnv(func(string) (string, bool) { return "", false })
	h := startProxyWith(t, []proxy.Option{proxy.WithTracingOptions(tracing.WithExporter(rec), noEnv)}, cfg, "{{UP}}", upAddr)
	tp := &tracedProxy{harness: h, rec: rec}

	res := tp.send(t, "/unsampled")
	if line := tp.logLine(res.Header.Get("X-Request-Id")); line["trace_id"] != nil {
		t.Fatalf("unsampled request logged trace_id %v", line["trace_id"])
	}
	if ex := openMetricsExemplars(t, tp); len(ex) != 0 {
		t.Fatalf("exemplars after an unsampled request: %v", ex)
	}

	res = tp.send(t, "/sampled", "X-Client-Trace-Id", "please")
	traceID, _ := tp.logLine(res.Header.Get("X-Request-Id"))["trace_id"].(string)
	if len(traceID) != 32 {
		t.Fatalf("sampled request logged trace_id %q", traceID)
	}
	ex := openMetricsExemplars(t, tp)
	for _, key := range []string{"envoy_cluster_upstream_rq_time_bucket/up", "envoy_http_downstream_rq_time_bucket/main"} {
		if ex[key] != traceID {
			t.Errorf("%s: exemplar trace_id %q, want the access log's %q (all: %v)", key, ex[key], traceID, ex)
		}
	}

	// The sink: the sampled request's timer lines end with its trace ID;
	// the unsampled one's have no trace_id section.
	want := map[string]bool{
		"envoy.cluster.upstream_rq_time": false, "envoy.http.downstream_rq_time": false,
	}
	var plain int
	deadline := time.Now().Add(10 * time.Second)
	for next := 0; time.Now().Before(deadline) && (plain < 2 || !want["envoy.cluster.upstream_rq_time"] || !want["envoy.http.downstream_rq_time"]); {
		var ds []string
		ds, next = rcv.from(next)
		for _, d := range ds {
			for _, l := range strings.Split(d, "\n") {
				name, _, _ := strings.Cut(l, ":")
				if _, timer := want[name]; !timer {
					continue
				}
				if head, id, ok := strings.Cut(l, "|trace_id:"); ok {
					if id != traceID || !strings.Contains(head, "|ms|#") {
						t.Errorf("timer line %q: want ...|ms|#tags|trace_id:%s", l, traceID)
					}
					want[name] = true
				} else {
					plain++
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if plain != 2 || !want["envoy.cluster.upstream_rq_time"] || !want["envoy.http.downstream_rq_time"] {
		t.Errorf("sink got %d plain timer lines (want 2) and traced ones %v", plain, want)
	}
}
