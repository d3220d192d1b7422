// Package exemplars proves, with real processes on loopback, that a slow
// latency bucket leads to the trace behind it: statsd-sink keeps the
// trace ID of a traced timer line as its bucket's exemplar, serves it in
// OpenMetrics, and a real Prometheus with exemplar storage returns it
// from /api/v1/query_exemplars, with the same series names as a text
// scrape (sink_test.go). The proxy serves the same on its admin
// endpoint (exemplars_test.go), and end to end (proxy_test.go) every
// exemplar of proxies with `exemplars: true` opens a trace in Jaeger that
// holds a span of the proxy that recorded it.
package exemplars

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// Sink is a running statsd-sink with the Envoy preset.
type Sink struct {
	// UDP is where it reads StatsD lines; Web serves /metrics.
	UDP, Web string
}

// StartSink runs statsd-sink --preset=envoy on free loopback ports.
func StartSink(t *testing.T) Sink {
	t.Helper()
	s := Sink{UDP: e2etest.FreeAddr(t), Web: e2etest.FreeAddr(t)}
	p := e2etest.StartProcess(t, "statsd-sink", nil, e2etest.GoBuild(t, "cmd/statsd-sink"), "--preset=envoy",
		"--statsd.listen-udp="+s.UDP, "--statsd.listen-tcp=", "--web.listen-address="+s.Web)
	p.WaitFor(t, "statsd-sink ready", 30*time.Second, func() error { return e2etest.HTTPOK("http://" + s.Web + "/-/ready") })
	return s
}

// textOnly serves target's /metrics to a scraper as if it had asked for
// the text format only: the other scrape job, against which the
// OpenMetrics job's series are compared. Prometheus 2.42 cannot be told
// to prefer text (scrape_protocols came in 2.49).
func textOnly(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Header.Set("Accept", "text/plain;version=0.0.4")
	}}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// PrometheusConfig scrapes the sink every second as job "openmetrics"
// (Prometheus's default Accept, which the sink answers in OpenMetrics)
// and, if textTarget is set, that address as job "text".
func PrometheusConfig(sinkWeb, textTarget string) string {
	c := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
  - job_name: openmetrics
    static_configs: [{targets: ['%s']}]
`, sinkWeb)
	if textTarget != "" {
		c += fmt.Sprintf(`  - job_name: text
    static_configs: [{targets: ['%s']}]
`, textTarget)
	}
	return c
}

// ExemplarStorage is the flag both Prometheus versions keep exemplars with.
var ExemplarStorage = []string{"--enable-feature=exemplar-storage"}

// Exemplar is one exemplar from /api/v1/query_exemplars, with the labels
// of its series.
type Exemplar struct {
	Series  map[string]string
	TraceID string
	Value   float64
	Time    float64
}

// QueryExemplars returns the exemplars of query over the last ten minutes.
func QueryExemplars(ctx context.Context, t *testing.T, promURL, query string) []Exemplar {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Data   []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels    map[string]string `json:"labels"`
				Value     string            `json:"value"`
				Timestamp float64           `json:"timestamp"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	now := time.Now()
	q := url.Values{"query": {query}, "start": {fmt.Sprint(now.Add(-10 * time.Minute).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}}
	if err := e2etest.GetJSON(ctx, promURL+"/api/v1/query_exemplars?"+q.Encode(), &r); err != nil || r.Status != "success" {
		t.Fatalf("query_exemplars %s: %v (status %q)", query, err, r.Status)
	}
	var out []Exemplar
	for _, d := range r.Data {
		for _, e := range d.Exemplars {
			var v float64
			if _, err := fmt.Sscan(e.Value, &v); err != nil {
				t.Fatalf("exemplar value %q: %v", e.Value, err)
			}
			if len(e.Labels) != 1 || e.Labels["trace_id"] == "" {
				t.Errorf("exemplar of %v has labels %v, want trace_id only", d.SeriesLabels, e.Labels)
			}
			out = append(out, Exemplar{Series: d.SeriesLabels, TraceID: e.Labels["trace_id"], Value: v, Time: e.Timestamp})
		}
	}
	return out
}

// seriesOf returns every series Prometheus holds for job, each as its
// label set without job and instance, sorted.
func seriesOf(ctx context.Context, t *testing.T, promURL, job string) []string {
	t.Helper()
	var r struct {
		Status string              `json:"status"`
		Data   []map[string]string `json:"data"`
	}
	q := url.Values{"match[]": {`{job="` + job + `"}`}, "start": {fmt.Sprint(time.Now().Add(-10 * time.Minute).Unix())}}
	if err := e2etest.GetJSON(ctx, promURL+"/api/v1/series?"+q.Encode(), &r); err != nil || r.Status != "success" {
		t.Fatalf("series of job %s: %v (status %q)", job, err, r.Status)
	}
	out := make([]string, 0, len(r.Data))
	for _, ls := range r.Data {
		delete(ls, "job")
		delete(ls, "instance")
		keys := make([]string, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%q,", k, ls[k])
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return out
}
