//go:build jaeger

// The end-to-end part: it needs the proxy's `exemplars: true` stats sink
// option, hence its own build tag (with jaeger, as the other real-Jaeger
// tests): a proxy that refuses the option fails the test, it does not skip.
//
//	go test -tags jaeger,proxyexemplars ./e2e/exemplars/

package exemplars

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// hopConfig is one proxy: traced (every request sampled) to Jaeger, and
// flushing DogStatsD with exemplars to the sink every second.
const hopConfig = `
node: {id: %[1]s, cluster: %[1]s}
admin: {address: "%[2]s"}
lifecycle: {drain_time: 0s, watch_config: false}
stats_config:
  flush_interval: 1s
  stats_tags: [{tag_name: node_id, fixed_value: %[1]s}]
stats_sinks:
  - type: dogstatsd
    address: "%[3]s"
    exemplars: true
tracing:
  service_name: %[1]s
  endpoint: "%[4]s"
  sampling_ratio: 1
  batch: {schedule_delay: 100ms, export_timeout: 1s}
listeners:
  - name: ingress
    address: "%[5]s"
    stat_prefix: ingress
    access_log: []
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {prefix: /}
            route: {cluster: %[6]s}
clusters:
  - name: %[6]s
    endpoints: [{address: "%[7]s"}]
`

// TestRequestExemplarOpensItsTrace: requests through a front proxy and a
// sidecar, both with `exemplars: true`, leave exemplars on both proxies'
// upstream latency buckets in Prometheus, and Jaeger holds each
// exemplar's trace with a span from the proxy whose series carries it.
func TestRequestExemplarOpensItsTrace(t *testing.T) {
	e2etest.PinnedBin(t, "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	j := e2etest.StartJaeger(t)
	sink := StartSink(t)
	_, promURL := e2etest.StartPrometheusBin(t, e2etest.PinnedBin(t, "prometheus"), ExemplarStorage, PrometheusConfig(sink.Web, ""))
	app := e2etest.StartUpstream(t, "catalog")
	sidecarListen, frontListen := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	e2etest.StartProxy(t, fmt.Sprintf(hopConfig, "catalog-sidecar", e2etest.FreeAddr(t), sink.UDP, j.OTLPGRPC, sidecarListen, "catalog_app", app.Addr))
	e2etest.StartProxy(t, fmt.Sprintf(hopConfig, "front-proxy", e2etest.FreeAddr(t), sink.UDP, j.OTLPGRPC, frontListen, "catalog", sidecarListen))

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		res, err := client.Get("http://" + frontListen + fmt.Sprintf("/item/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s", i, res.Status)
		}
	}

	clusterOf := map[string]string{"front-proxy": "catalog", "catalog-sidecar": "catalog_app"}
	var got []Exemplar
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		got = QueryExemplars(ctx, t, promURL, bucketQuery)
		nodes := map[string]bool{}
		for _, e := range got {
			nodes[e.Series["node_id"]] = true
		}
		if nodes["front-proxy"] && nodes["catalog-sidecar"] {
			break
		}
		if time.Now().After(deadline) {
			buckets := 0
			for _, s := range seriesOf(ctx, t, promURL, "openmetrics") {
				if strings.HasPrefix(s, `__name__="`+bucketQuery+`"`) {
					buckets++
				}
			}
			t.Fatalf("exemplars of %s: %+v, want some from both proxies (%d bucket series)", bucketQuery, got, buckets)
		}
	}
	for _, e := range got {
		node := e.Series["node_id"]
		if want := clusterOf[node]; e.Series["envoy_cluster_name"] != want {
			t.Errorf("exemplar %s of %s on cluster %q, want %q", e.TraceID, node, e.Series["envoy_cluster_name"], want)
		}
		tr := waitTraceWithSpanOf(t, j, e.TraceID, node)
		if !slices.ContainsFunc(tr.Spans, func(s e2etest.JaegerSpan) bool {
			return s.Service == node && spanTag(s, "upstream_cluster") == clusterOf[node]
		}) {
			t.Errorf("trace %s (exemplar of %s) has no %s span to cluster %s", e.TraceID, node, node, clusterOf[node])
		}
	}
	t.Logf("%d exemplars, each trace in Jaeger with a span of the proxy that recorded it", len(got))
}

// waitTraceWithSpanOf polls Jaeger until trace id has a span of service.
func waitTraceWithSpanOf(t *testing.T, j *e2etest.Jaeger, id, service string) e2etest.JaegerTrace {
	t.Helper()
	var tr e2etest.JaegerTrace
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		var r struct {
			Data []e2etest.JaegerTrace `json:"data"`
		}
		if err := e2etest.GetJSON(context.Background(), "http://"+j.Query+"/api/traces/"+id, &r); err != nil || len(r.Data) != 1 {
			continue // not there yet (404)
		}
		tr = r.Data[0]
		tr.ResolveServices()
		if slices.ContainsFunc(tr.Spans, func(s e2etest.JaegerSpan) bool { return s.Service == service }) {
			return tr
		}
	}
	var services []string
	for _, s := range tr.Spans {
		services = append(services, s.Service)
	}
	t.Fatalf("Jaeger: trace %s has spans of %s, none of %s", id, strings.Join(services, ", "), service)
	return tr
}

func spanTag(s e2etest.JaegerSpan, key string) string {
	for _, tg := range s.Tags {
		if tg.Key == key {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}
