// Package exemplars_test proves the proxy's exemplars with real processes
// on loopback: a hopwatch-proxy with tracing, a test upstream, and the
// real Prometheus (bin/prometheus, built by `make tools`) with
// --enable-feature=exemplar-storage scraping the proxy's
// /stats/prometheus twice, once as OpenMetrics (Prometheus's default) and
// once as text only. A sampled request's trace ID comes back from
// /api/v1/query_exemplars on its latency buckets, and both scrapes store
// exactly the same series.
package exemplars

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

var client = &http.Client{Timeout: 5 * time.Second}

func TestExemplarsInPrometheus(t *testing.T) {
	e2etest.PinnedBin(t, "prometheus") // before anything starts: the test needs it

	up := e2etest.StartUpstream(t, "catalog")
	listen, admin := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	// Nobody listens on the OTLP endpoint: spans are dropped, but the
	// sampling decisions, which are all exemplars need, are made.
	p := e2etest.StartProxy(t, fmt.Sprintf(`
node: {id: exemplars-proxy, cluster: exemplars}
admin: {address: "%s"}
lifecycle: {drain_time: 0s, watch_config: false}
tracing:
  endpoint: "%s"
  sampling_ratio: 0
  batch: {export_timeout: 100ms}
listeners:
  - name: ingress
    address: "%s"
    stat_prefix: ingress
    access_log: [{path: stdout, format: json}]
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {prefix: /}
            route: {cluster: catalog}
clusters:
  - name: catalog
    endpoints: [{address: "%s"}]
`, admin, e2etest.FreeAddr(t), listen, up.Addr))

	// Traffic before Prometheus starts, so that both scrape jobs see the
	// same stats: unsampled requests, and one that the client forces.
	for i := range 5 {
		send(t, listen, i == 3)
	}
	var traceID string
	for _, l := range p.AccessLog(t, 5) {
		if id, ok := l["trace_id"].(string); ok {
			if traceID != "" {
				t.Fatalf("two sampled requests in the access log: %s and %s", traceID, id)
			}
			traceID = id
		}
	}
	if len(traceID) != 32 {
		t.Fatalf("the forced request logged no trace_id: %v", p.AccessLog(t, 5))
	}

	_, prom := e2etest.StartPrometheusBin(t, e2etest.PinnedBin(t, "prometheus"), []string{"--enable-feature=exemplar-storage"}, fmt.Sprintf(`
global: {scrape_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
  - job_name: openmetrics
    metrics_path: /stats/prometheus
    static_configs: [{targets: ["%[1]s"]}]
  - job_name: text
    metrics_path: /stats/prometheus
    scrape_protocols: [PrometheusText0.0.4]
    static_configs: [{targets: ["%[1]s"]}]
`, admin))

	// Both jobs scraped at least twice.
	e2etest.WaitFor(t, "two scrapes by each job", 30*time.Second, func() bool {
		for _, job := range []string{"openmetrics", "text"} {
			v := query(t, prom, `count_over_time(up{job="`+job+`"}[1m])`)
			if len(v) != 1 || v[0].value() < 2 {
				return false
			}
		}
		return true
	})

	// Every scrape of both formats succeeded: a scrape Prometheus's parser
	// rejects sets up to 0.
	for _, job := range []string{"openmetrics", "text"} {
		if v := query(t, prom, `min_over_time(up{job="`+job+`"}[1m])`); len(v) != 1 || v[0].value() != 1 {
			t.Errorf("job %s: min up over the test %v, want 1", job, v)
		}
	}

	// 1. The scrape formats: each job got the one it asked for, as the
	// type of a counter shows (unknown in OpenMetrics, see
	// proxy/stats/admin_openmetrics.go).
	for job, want := range map[string]string{"openmetrics": "unknown", "text": "counter"} {
		if got := metadataType(t, prom, job, "envoy_cluster_upstream_rq_total"); got != want {
			t.Errorf("job %s: envoy_cluster_upstream_rq_total has type %q, want %q", job, got, want)
		}
		if got := metadataType(t, prom, job, "envoy_cluster_upstream_rq_time"); got != "histogram" {
			t.Errorf("job %s: envoy_cluster_upstream_rq_time has type %q, want histogram", job, got)
		}
	}

	// 2. The exemplars: the forced request's trace ID on the latency
	// buckets it landed in, from the OpenMetrics job only.
	for _, metric := range []string{"envoy_cluster_upstream_rq_time_bucket", "envoy_http_downstream_rq_time_bucket"} {
		got := exemplarTraceIDs(t, prom, metric+`{job="openmetrics"}`)
		if !slices.Equal(got, []string{traceID}) {
			t.Errorf("%s exemplars: trace IDs %v, want exactly the forced request's [%s]", metric, got, traceID)
		}
		if got := exemplarTraceIDs(t, prom, metric+`{job="text"}`); len(got) != 0 {
			t.Errorf("%s: the text job stored exemplars %v", metric, got)
		}
	}

	// 3. The series: identical from both jobs (the job label aside), so
	// dashboards read the same names whichever format was scraped.
	om, text := seriesOf(context.Background(), t, prom, "openmetrics"), seriesOf(context.Background(), t, prom, "text")
	if len(om) < 100 {
		t.Fatalf("only %d series from the OpenMetrics job", len(om))
	}
	if !slices.Equal(om, text) {
		onlyOM, onlyText := difference(om, text)
		t.Errorf("series differ between the formats:\nOpenMetrics only: %v\ntext only: %v", onlyOM, onlyText)
	}
	for _, name := range []string{"envoy_cluster_upstream_rq", "envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_time_bucket"} {
		if !slices.ContainsFunc(om, func(s string) bool { return strings.HasPrefix(s, `__name__="`+name+`",`) }) {
			t.Errorf("no %s series", name)
		}
	}
}

// send GETs / through the proxy; forced asks for a trace with
// x-client-trace-id.
func send(t *testing.T, listen string, forced bool) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+listen+"/item", nil)
	if err != nil {
		t.Fatal(err)
	}
	if forced {
		req.Header.Set("X-Client-Trace-Id", "exemplar-test")
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
	return v
}

func query(t *testing.T, prom, q string) []promSample {
	t.Helper()
	var r struct {
		Data struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := e2etest.GetJSON(context.Background(), prom+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return r.Data.Result
}

// metadataType is the type Prometheus recorded for metric from job's
// target (/api/v1/targets/metadata): the # TYPE line of the format it
// scraped.
func metadataType(t *testing.T, prom, job, metric string) string {
	t.Helper()
	var r struct {
		Data []struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	u := prom + "/api/v1/targets/metadata?match_target=" + url.QueryEscape(`{job="`+job+`"}`) + "&metric=" + metric
	if err := e2etest.GetJSON(context.Background(), u, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Data) != 1 {
		t.Fatalf("job %s: metadata of %s: %+v", job, metric, r.Data)
	}
	return r.Data[0].Type
}

// exemplarTraceIDs returns the distinct trace_id labels of the exemplars
// Prometheus holds for q, sorted.
func exemplarTraceIDs(t *testing.T, prom, q string) []string {
	t.Helper()
	var ids []string
	for _, e := range QueryExemplars(context.Background(), t, prom, q) {
		if !slices.Contains(ids, e.TraceID) {
			ids = append(ids, e.TraceID)
		}
	}
	slices.Sort(ids)
	return ids
}

// difference returns the strings only a holds and those only b holds.
func difference(a, b []string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	for x, n := range count {
		switch {
		case n > 0:
			onlyA = append(onlyA, x)
		case n < 0:
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}
