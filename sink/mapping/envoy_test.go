package mapping

import (
	"fmt"
	"testing"

	"github.com/hopwatch/hopwatch/sink/statsd"
)

// TestEnvoyGolden checks flat StatsD names against the names and labels of
// Envoy's /stats/prometheus.
func TestEnvoyGolden(t *testing.T) {
	e := NewEnvoy()
	for _, tc := range []struct {
		in   string
		typ  statsd.Type
		want string
	}{
		{"envoy.cluster.backend.upstream_rq_200", statsd.TypeCounter, `envoy_cluster_upstream_rq{envoy_cluster_name="backend",envoy_response_code="200"}`},
		{"envoy.cluster.backend.upstream_rq_2xx", statsd.TypeCounter, `envoy_cluster_upstream_rq_xx{envoy_cluster_name="backend",envoy_response_code_class="2"}`},
		{"envoy.cluster.backend.upstream_rq_total", statsd.TypeCounter, `envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"}`},
		{"envoy.http.ingress_http.downstream_rq_2xx", statsd.TypeCounter, `envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="ingress_http",envoy_response_code_class="2"}`},
		{"envoy.cluster.backend.upstream_rq_time", statsd.TypeTimer, `envoy_cluster_upstream_rq_time{envoy_cluster_name="backend"} ms`},
		{"envoy.listener.127.0.0.1_10000.downstream_cx_total", statsd.TypeCounter, `envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_10000"}`},
		{"envoy.listener.[__1]_10000.downstream_cx_total", statsd.TypeCounter, `envoy_listener_downstream_cx_total{envoy_listener_address="[__1]_10000"}`},
		{"envoy.listener.admin.downstream_cx_total", statsd.TypeCounter, `envoy_listener_admin_downstream_cx_total{}`},
		{"envoy.cluster.backend.zone.us-east-1a.us-east-1b.upstream_rq_200", statsd.TypeCounter, `envoy_cluster_zone_us_east_1a_us_east_1b_upstream_rq{envoy_cluster_name="backend",envoy_response_code="200"}`},
		{"envoy.cluster.backend.canary.upstream_rq_200", statsd.TypeCounter, `envoy_cluster_canary_upstream_rq{envoy_cluster_name="backend",envoy_response_code="200"}`},
		{"envoy.cluster.backend.circuit_breakers.default.rq_open", statsd.TypeGauge, `envoy_cluster_circuit_breakers_default_rq_open{envoy_cluster_name="backend"}`},
		{"envoy.cluster.backend.outlier_detection.ejections_active", statsd.TypeGauge, `envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name="backend"}`},
		{"envoy.cluster.backend.health_check.attempt", statsd.TypeCounter, `envoy_cluster_health_check_attempt{envoy_cluster_name="backend"}`},
		// Cluster names with dots come out whole when the stat is known.
		{"envoy.cluster.svc.ns.svc.cluster.local.upstream_rq_503", statsd.TypeCounter, `envoy_cluster_upstream_rq{envoy_cluster_name="svc.ns.svc.cluster.local",envoy_response_code="503"}`},
		{"envoy.cluster.my.svc.upstream_cx_connect_ms", statsd.TypeTimer, `envoy_cluster_upstream_cx_connect_ms{envoy_cluster_name="my.svc"} ms`},
		// Unknown stats fall back to Envoy's rule: the first segment.
		{"envoy.cluster.a.b.custom_stat", statsd.TypeCounter, `envoy_cluster_b_custom_stat{envoy_cluster_name="a"}`},
		{"envoy.vhost.vh.vcluster.other.upstream_rq_200", statsd.TypeCounter, `envoy_vhost_vcluster_upstream_rq{envoy_response_code="200",envoy_virtual_cluster="other",envoy_virtual_host="vh"}`},
		{"envoy.vhost.vh.route.api.upstream_rq_200", statsd.TypeCounter, `envoy_vhost_route_upstream_rq{envoy_response_code="200",envoy_route="api",envoy_virtual_host="vh"}`},
		{"envoy.tcp.ingress_tcp.downstream_cx_total", statsd.TypeCounter, `envoy_tcp_downstream_cx_total{envoy_tcp_prefix="ingress_tcp"}`},
		{"envoy.server.uptime", statsd.TypeGauge, `envoy_server_uptime{}`},
		{"envoy.server.worker_0.watchdog_miss", statsd.TypeCounter, `envoy_server_watchdog_miss{envoy_worker_id="0"}`},
		{"envoy.listener.127.0.0.1_10000.worker_1.downstream_cx_total", statsd.TypeCounter, `envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_10000",envoy_worker_id="1"}`},
		{"envoy.http.ingress_http.rds.my.routes.config_reload", statsd.TypeCounter, `envoy_http_rds_config_reload{envoy_http_conn_manager_prefix="ingress_http",envoy_rds_route_config="my.routes"}`},
		{"other.name", statsd.TypeCounter, `nil`},
		// Found by FuzzEnvoyMap: used to panic (a remote crash).
		{"envoy.cluster", statsd.TypeCounter, `envoy_cluster{}`},
		// Stats in the catalogue with a dotted cluster name and a retry scope.
		{"envoy.cluster.a.retry.upstream_rq_503", statsd.TypeCounter, `envoy_cluster_retry_upstream_rq{envoy_cluster_name="a",envoy_response_code="503"}`},
		// Real Envoy stats outside the catalogue still map: another circuit
		// breaker priority, with a dotted cluster name.
		{"envoy.cluster.my.svc.circuit_breakers.high.rq_open", statsd.TypeGauge, `envoy_cluster_circuit_breakers_high_rq_open{envoy_cluster_name="my.svc"}`},
	} {
		if got := render(e.Map(tc.in, tc.typ)); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// TestEnvoyDogStatsD checks that tagged input gives the same series as flat
// input (the labels come from the tags, the name from the preset).
func TestEnvoyDogStatsD(t *testing.T) {
	e := NewEnvoy()
	for _, tc := range []struct{ tagged, flat string }{
		{"envoy.cluster.upstream_rq", "envoy.cluster.backend.upstream_rq_200"},
		{"envoy.cluster.upstream_rq_xx", "envoy.cluster.backend.upstream_rq_2xx"},
		{"envoy.cluster.zone.us-east-1a.us-east-1b.upstream_rq", "envoy.cluster.backend.zone.us-east-1a.us-east-1b.upstream_rq_200"},
		{"envoy.cluster.circuit_breakers.default.rq_open", "envoy.cluster.backend.circuit_breakers.default.rq_open"},
		{"envoy.http.downstream_rq_xx", "envoy.http.ingress_http.downstream_rq_2xx"},
		{"envoy.cluster.upstream_rq_time", "envoy.cluster.backend.upstream_rq_time"},
	} {
		tagged := e.Map(tc.tagged, statsd.TypeTimer)
		flat := e.Map(tc.flat, statsd.TypeTimer)
		if tagged.Name != flat.Name || len(tagged.Labels) != 0 {
			t.Errorf("tagged %s -> %s %v; flat %s -> %s", tc.tagged, tagged.Name, tagged.Labels, tc.flat, flat.Name)
		}
	}
}

func render(r *Result) string {
	if r == nil {
		return "nil"
	}
	s := r.Name + "{"
	for i, l := range r.Labels {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s=%q", l.Name, l.Value)
	}
	s += "}"
	if r.KeepMilliseconds {
		s += " ms"
	}
	return s
}

// FuzzEnvoyMap feeds arbitrary stat names to the preset: it must never
// panic, and whatever it returns must be a valid Prometheus name with
// valid, sorted, unique label names.
func FuzzEnvoyMap(f *testing.F) {
	for _, s := range []string{
		"envoy.cluster.backend.upstream_rq_200",
		"envoy.cluster.svc.ns.zone.a.b.upstream_rq_5xx",
		"envoy.cluster.zone.a.b.upstream_rq",
		"envoy.listener.127.0.0.1_80.http.ingress.downstream_rq_2xx",
		"envoy.vhost.v.route.r.x.upstream_rq_503",
		"envoy.cluster..upstream_rq_",
		"envoy.http.ingress_http.rds.my.routes.config_reload",
	} {
		f.Add(s)
	}
	e := NewEnvoy()
	f.Fuzz(func(t *testing.T, name string) {
		r := e.Map(name, statsd.TypeCounter)
		if r == nil {
			return
		}
		if !validPromName(r.Name) {
			t.Fatalf("%q -> invalid name %q", name, r.Name)
		}
		for i, l := range r.Labels {
			if !validPromName(l.Name) || (i > 0 && r.Labels[i-1].Name >= l.Name) {
				t.Fatalf("%q -> bad labels %v", name, r.Labels)
			}
		}
	})
}

func validPromName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !validByte(s[i]) {
			return false
		}
	}
	return true
}
