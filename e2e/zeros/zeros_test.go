// Package zeros_test proves "zero from the first scrape" with real
// processes on loopback: a hopwatch-proxy flushing DogStatsD (with a
// node_id fixed tag) to statsd-sink --preset=envoy, and the real
// Prometheus (bin/prometheus, built by `make tools`) scraping the sink
// every second. After the proxy's first flush, every counter and
// histogram the catalogue defines for its cluster, listener and
// connection manager is in the sink's /metrics; Prometheus scrapes the
// error counter at 0 before the first error; and after exactly N errors
// increase() over the window reports at least N.
package zeros_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

const node = "zeros-proxy"

var client = &http.Client{Timeout: 5 * time.Second}

func TestZeroFromTheFirstScrape(t *testing.T) {
	e2etest.PinnedBin(t, "prometheus") // before anything starts: the test needs it

	statsd, sinkWeb := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	sink := e2etest.StartProcess(t, "statsd-sink", nil, e2etest.GoBuild(t, "cmd/statsd-sink"), "--preset=envoy",
		"--statsd.listen-udp="+statsd, "--statsd.listen-tcp=", "--web.listen-address="+sinkWeb)
	sink.WaitFor(t, "statsd-sink ready", 30*time.Second, func() error { return e2etest.HTTPOK("http://" + sinkWeb + "/-/ready") })

	// The cluster's only endpoint is a port nobody listens on: every
	// request is one connect failure (no retries), an error the test
	// injects an exact number of times.
	dead := e2etest.FreeAddr(t)
	listen := e2etest.FreeAddr(t)
	p := e2etest.StartProxy(t, fmt.Sprintf(`
node: {id: %[1]s, cluster: zeros}
admin: {address: "%[2]s"}
lifecycle: {drain_time: 0s, watch_config: false}
stats_config:
  flush_interval: 1s
  stats_tags: [{tag_name: node_id, fixed_value: %[1]s}]
stats_sinks:
  - {type: dogstatsd, address: "%[3]s"}
listeners:
  - name: ingress
    address: "%[4]s"
    stat_prefix: zeros_ingress
    access_log: [{path: /dev/null}]
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {prefix: /}
            route: {cluster: dead, timeout: 2s}
clusters:
  - name: dead
    connect_timeout: 250ms
    endpoints: [{address: "%[5]s"}]
`, node, e2etest.FreeAddr(t), statsd, listen, dead))

	// 1. After the first flush: every counter and histogram family of the
	// cluster, the listener and the connection manager, with node_id.
	entities := map[string]string{ // Envoy tag → the value this proxy has
		stats.TagClusterName:     "dead",
		stats.TagHTTPConnManager: "zeros_ingress",
		stats.TagListenerAddress: strings.ReplaceAll(listen, ":", "_"),
	}
	var want []string // Prometheus name + its entity label
	for _, f := range stats.Catalogue() {
		if f.Kind == stats.KindGauge || len(f.Tags) != 1 || strings.Contains(f.PrometheusName, "{") {
			continue
		}
		if v, ok := entities[f.Tags[0]]; ok {
			want = append(want, fmt.Sprintf("%s{%s=%q,node_id=%q}", f.PrometheusName, f.PrometheusLabels[0], v, node))
		}
	}
	if len(want) < 80 {
		t.Fatalf("only %d catalogue families for a cluster, a listener and a connection manager; expected the full set", len(want))
	}
	var missing []string
	sink.WaitFor(t, "every entity family in the sink", 20*time.Second, func() error {
		have, err := sinkSeries("http://" + sinkWeb + "/metrics")
		if err != nil {
			return err
		}
		missing = missing[:0]
		for _, w := range want {
			if v, ok := have[w]; !ok || v != 0 {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d families missing or not 0, such as %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
		return nil
	})

	// 2. Prometheus scrapes the error counter at 0 before any error.
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: statsd-sink\n    static_configs: [{targets: ['%s']}]\n", sinkWeb)
	prom, promURL := e2etest.StartPrometheus(t, cfg)

	sel := fmt.Sprintf(`envoy_cluster_upstream_cx_connect_fail{envoy_cluster_name="dead",node_id=%q}`, node)
	hist := fmt.Sprintf(`envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name="dead",node_id=%q}`, node)
	for _, q := range []string{sel, hist} {
		prom.WaitFor(t, q+" scraped at 0", 30*time.Second, func() error {
			v, err := instant(promURL, q)
			if err != nil {
				return err
			}
			if v != 0 {
				return fmt.Errorf("%s = %v before any error", q, v)
			}
			return nil
		})
	}
	if got := p.Stat(t, "cluster.dead.upstream_cx_connect_fail"); got != 0 {
		t.Fatalf("cluster.dead.upstream_cx_connect_fail = %d before any request", got)
	}

	// 3. Exactly N errors; increase() over the window sees at least N.
	const n = 5
	for range n {
		resp, err := client.Get("http://" + listen + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET through the proxy to a dead endpoint: status %d, want 503", resp.StatusCode)
		}
	}
	if got := p.Stat(t, "cluster.dead.upstream_cx_connect_fail"); got != n {
		t.Fatalf("the proxy counted %d connect failures for %d requests, want exactly %d", got, n, n)
	}
	prom.WaitFor(t, sel+" scraped at N", 30*time.Second, func() error {
		v, err := instant(promURL, sel)
		if err != nil {
			return err
		}
		if v != n {
			return fmt.Errorf("%s = %v, want %d", sel, v, n)
		}
		return nil
	})
	inc, err := instant(promURL, "increase("+sel+"[1m])")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("increase(%s[1m]) = %v after %d errors", sel, inc, n)
	if inc < n {
		t.Errorf("increase(%s[1m]) = %v after %d errors, want at least %d", sel, inc, n, n)
	}
}

// sinkSeries reads a /metrics page into "name{labels}" → value, counters
// by value and histograms by their count.
func sinkSeries(u string) (map[string]float64, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[name+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out, nil
}

// instant runs a PromQL instant query that must return one sample.
func instant(promURL, q string) (float64, error) {
	resp, err := client.Get(promURL + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: %s", q, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: %d series, want 1", q, len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
