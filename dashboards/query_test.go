package dashboards

import (
	"strings"
	"testing"
)

func TestQueryHelpers(t *testing.T) {
	s := scope{vars: []string{VarCluster, VarConnManager}}
	cases := []struct {
		name    string
		build   func(c *catalog) string
		want    string
		wantErr string
	}{
		{"rate of a counter", func(c *catalog) string {
			return c.rate(s, c.stat("cluster.{envoy.cluster_name}.upstream_rq_retry"), []string{lblCluster})
		}, `sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_retry{job=~"$job", instance=~"$instance", envoy_cluster_name=~"$envoy_cluster_name"}[$__rate_interval]))`, ""},
		{"only the variables the metric has", func(c *catalog) string {
			return c.gauge(s, c.stat("http.{envoy.http_conn_manager_prefix}.downstream_rq_active"), nil)
		}, `sum (envoy_http_downstream_rq_active{job=~"$job", instance=~"$instance", envoy_http_conn_manager_prefix=~"$envoy_http_conn_manager_prefix"})`, ""},
		{"quantile groups by le", func(c *catalog) string {
			return c.quantile(s, 0.99, c.stat("cluster.{envoy.cluster_name}.upstream_rq_time"), []string{lblCluster})
		}, `histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket{job=~"$job", instance=~"$instance", envoy_cluster_name=~"$envoy_cluster_name"}[$__rate_interval])))`, ""},
		{"zone names become a regex on __name__", func(c *catalog) string {
			return c.rate(s, c.stat("cluster.{envoy.cluster_name}.zone.{from_zone}.{to_zone}.upstream_rq_completed"), nil)
		}, `sum (rate({__name__=~"envoy_cluster_zone_(.+)_(.+)_upstream_rq_completed", job=~"$job", instance=~"$instance", envoy_cluster_name=~"$envoy_cluster_name"}[$__rate_interval]))`, ""},
		{"sink self-metric", func(c *catalog) string {
			return c.increase(scope{}, c.self("statsd_exporter_config_reloads_total"), []string{"outcome"})
		}, `sum by (outcome) (increase(statsd_exporter_config_reloads_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))`, ""},
		{"rate of a gauge is refused", func(c *catalog) string {
			return c.rate(s, c.stat("cluster.{envoy.cluster_name}.upstream_cx_active"), nil)
		}, "", "not a counter"},
		{"a counter as a gauge is refused", func(c *catalog) string {
			return c.gauge(s, c.stat("cluster.{envoy.cluster_name}.upstream_rq_retry"), nil)
		}, "", "not a gauge"},
		{"quantile of a counter is refused", func(c *catalog) string {
			return c.quantile(s, 0.5, c.stat("cluster.{envoy.cluster_name}.upstream_rq_retry"), nil)
		}, "", "not a histogram"},
		{"recorded rate keeps the dashboard's variables", func(c *catalog) string {
			return c.gauge(s, c.recorded("envoy_cluster", "_completed", "rate"), []string{lblCluster})
		}, `sum by (envoy_cluster_name) (envoy_cluster:upstream_rq_completed:rate5m{job=~"$job", instance=~"$instance", envoy_cluster_name=~"$envoy_cluster_name"})`, ""},
		{"recorded success counts a missing 5xx series as 0", func(c *catalog) string {
			return c.recordedSuccess(s, c.recorded("envoy_http", "_5xx", "rate"), c.recorded("envoy_http", "_completed", "rate"), nil)
		}, `1 - (sum (envoy_http:downstream_rq_5xx:rate5m{job=~"$job", instance=~"$instance", envoy_http_conn_manager_prefix=~"$envoy_http_conn_manager_prefix"}) or 0 * sum (envoy_http:downstream_rq_completed:rate5m{job=~"$job", instance=~"$instance", envoy_http_conn_manager_prefix=~"$envoy_http_conn_manager_prefix"})) / sum (envoy_http:downstream_rq_completed:rate5m{job=~"$job", instance=~"$instance", envoy_http_conn_manager_prefix=~"$envoy_http_conn_manager_prefix"})`, ""},
		{"recorded quantile", func(c *catalog) string {
			return c.recordedQuantile(s, c.recorded("envoy_cluster", "_time", "quantile_rate"), 0.9)
		}, `envoy_cluster:upstream_rq_time:quantile_rate5m{job=~"$job", instance=~"$instance", envoy_cluster_name=~"$envoy_cluster_name", quantile="0.9"}`, ""},
		{"a series the rules do not record is refused", func(c *catalog) string {
			return c.recorded("envoy_cluster", "_4xx", "rate").name
		}, "", "envoy_cluster:upstream_rq_4xx:rate5m is not recorded by dashboards.Rules"},
		{"a level without rules is refused", func(c *catalog) string { return c.recorded("envoy_listener", "_completed", "rate").name }, "", `no recording rules at level "envoy_listener"`},
		{"unknown stat", func(c *catalog) string { return c.stat("cluster.{envoy.cluster_name}.no_such_stat").name }, "", "not in proxy/stats.Catalogue()"},
		{"unknown self-metric", func(c *catalog) string { return c.self("statsd_no_such_total").name }, "", "not in sink.SelfMetrics()"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCatalog()
			got := tc.build(c)
			if tc.wantErr != "" {
				if len(c.errs) == 0 || !strings.Contains(c.errs[0].Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, c.errs)
				}
				return
			}
			if len(c.errs) > 0 {
				t.Fatalf("unexpected errors: %v", c.errs)
			}
			if got != tc.want {
				t.Errorf("got\n  %s\nwant\n  %s", got, tc.want)
			}
		})
	}
}
