package stats

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.String()
}

func parseProm(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("expfmt rejects /stats/prometheus: %v\n%s", err, body)
	}
	return fams
}

// promValue finds the sample of family name whose labels are exactly want.
func promValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s%v", name, want)
	return nil
}

// TestPrometheusScripted checks /stats/prometheus after the scripted
// traffic: it parses with expfmt, shows exactly the expected values, and
// matches the golden exposition byte for byte.
func TestPrometheusScripted(t *testing.T) {
	s := newTestStore(t, Config{})
	scriptedTraffic(s)
	code, body := get(t, s.PrometheusHandler(), "/stats/prometheus")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	fams := parseProm(t, body)
	cl := map[string]string{"envoy_cluster_name": "backend"}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	counters := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"envoy_cluster_upstream_rq", with(cl, "envoy_response_code", "200"), 7},
		{"envoy_cluster_upstream_rq", with(cl, "envoy_response_code", "404"), 1},
		{"envoy_cluster_upstream_rq", with(cl, "envoy_response_code", "504"), 1},
		{"envoy_cluster_upstream_rq_xx", with(cl, "envoy_response_code_class", "2"), 7},
		{"envoy_cluster_upstream_rq_xx", with(cl, "envoy_response_code_class", "5"), 1},
		{"envoy_cluster_upstream_rq_xx", with(cl, "envoy_response_code_class", "3"), 0},
		{"envoy_cluster_retry_upstream_rq", with(cl, "envoy_response_code", "503"), 2},
		{"envoy_cluster_upstream_rq_total", cl, 11},
		{"envoy_cluster_upstream_rq_completed", cl, 9},
		{"envoy_cluster_upstream_rq_timeout", cl, 1},
		{"envoy_cluster_upstream_rq_retry", cl, 2},
		{"envoy_cluster_upstream_rq_pending_overflow", cl, 1},
		{"envoy_http_downstream_rq_xx", map[string]string{"envoy_http_conn_manager_prefix": "ingress", "envoy_response_code_class": "5"}, 2},
		{"envoy_http_downstream_rq_total", map[string]string{"envoy_http_conn_manager_prefix": "ingress"}, 10},
	}
	for _, c := range counters {
		m := promValue(t, fams, c.name, c.labels)
		if m.Counter == nil || m.Counter.GetValue() != c.want {
			t.Errorf("%s%v = %v, want counter %v", c.name, c.labels, m, c.want)
		}
	}
	if _, ok := fams["envoy_cluster_upstream_rq_total_total"]; ok {
		t.Error("counters must keep Envoy's names, without a _total suffix")
	}
	g := promValue(t, fams, "envoy_cluster_upstream_cx_active", cl)
	if g.Gauge == nil || g.Gauge.GetValue() != 2 {
		t.Errorf("upstream_cx_active = %v", g)
	}
	h := promValue(t, fams, "envoy_http_downstream_rq_time", map[string]string{"envoy_http_conn_manager_prefix": "ingress"}).Histogram
	if h == nil || h.GetSampleCount() != 10 || h.GetSampleSum() != 3+3+7+12+40+20+260+8+1000+0 {
		t.Fatalf("downstream_rq_time = %v", h)
	}
	wantCum := map[float64]uint64{0.5: 1, 1: 1, 5: 3, 10: 5, 25: 7, 50: 8, 100: 8, 250: 8, 500: 9, 1000: 10, 3600000: 10}
	if len(h.Bucket) != len(DefaultBuckets())+1 { // expfmt keeps +Inf
		t.Errorf("%d buckets, want %d", len(h.Bucket), len(DefaultBuckets())+1)
	}
	for _, b := range h.Bucket {
		if w, ok := wantCum[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	// Preallocated code counters that never counted are not shown.
	if strings.Contains(body, `envoy_response_code="418"`) {
		t.Error("unused per-code counters must not be listed")
	}
	golden(t, "prometheus.txt", body)
}

func TestPrometheusFormatDetails(t *testing.T) {
	s := newTestStore(t, Config{HistogramBuckets: []float64{0.1, 2}})
	s.ListenerStats("[::1]:8080").DownstreamCxTotal.Inc()
	s.ListenerHTTPStats("127.0.0.1:80", "ingress").RecordResponse(201)
	s.RouteStats("vh", "r1").RecordResponseTime(3, TraceID{})
	_, body := get(t, s.PrometheusHandler(), "/stats/prometheus?usedonly")
	for _, want := range []string{
		"# TYPE envoy_listener_downstream_cx_total counter\nenvoy_listener_downstream_cx_total{envoy_listener_address=\"[__1]_8080\"} 1\n\n",
		`envoy_listener_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="ingress",envoy_listener_address="127.0.0.1_80"} 1`,
		// Bounds print as Envoy's %.32g does.
		`envoy_vhost_route_upstream_rq_time_bucket{envoy_virtual_host="vh",envoy_route="r1",le="0.10000000000000000555111512312578"} 0`,
		`envoy_vhost_route_upstream_rq_time_bucket{envoy_virtual_host="vh",envoy_route="r1",le="+Inf"} 1`,
		`envoy_vhost_route_upstream_rq_time_sum{envoy_virtual_host="vh",envoy_route="r1"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	parseProm(t, body)
	// Server stats have no tags: Envoy prints empty braces.
	s.ServerStats()
	_, body = get(t, s.PrometheusHandler(), "/stats/prometheus?filter=server%5C.live")
	if body != "# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n\n" {
		t.Errorf("server.live exposition = %q", body)
	}
	parseProm(t, body)
}

func TestStatsHandler(t *testing.T) {
	s := newTestStore(t, Config{})
	scriptedTraffic(s)
	h := s.StatsHandler()
	tests := []struct {
		target   string
		code     int
		contains []string
		absent   []string
	}{
		{"/stats", 200, []string{"cluster.backend.upstream_rq_200: 7\n", "cluster.backend.upstream_rq_3xx: 0\n", "cluster.backend.upstream_cx_active: 2\n"}, []string{"upstream_rq_418"}},
		{"/stats?usedonly", 200, []string{"cluster.backend.upstream_rq_200: 7\n"}, []string{"upstream_rq_3xx", "upstream_cx_connect_fail"}},
		{"/stats?filter=retry", 200, []string{"cluster.backend.retry.upstream_rq_503: 2\n", "cluster.backend.upstream_rq_retry: 2\n"}, []string{"upstream_rq_200"}},
		{"/stats?filter=upstream_rq_time", 200, []string{"cluster.backend.upstream_rq_time: P0(nan,1) P25(nan,5) P50(nan,10) P75(nan,25) P90(nan,300)"}, []string{"upstream_rq_200"}},
		{"/stats?filter=%28", 400, []string{"filter: invalid regex \"(\""}, nil},
		{"/stats?format=xml", 400, []string{"format: \"xml\" is not one of"}, nil},
		{"/stats?format=prometheus&filter=upstream_rq_total", 200, []string{"# TYPE envoy_cluster_upstream_rq_total counter"}, nil},
	}
	for _, tc := range tests {
		code, body := get(t, h, tc.target)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d (%s)", tc.target, code, tc.code, body)
		}
		for _, c := range tc.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s: missing %q in\n%s", tc.target, c, body)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(body, a) {
				t.Errorf("%s: unexpected %q", tc.target, a)
			}
		}
	}
	// Text output is sorted by name.
	_, body := get(t, h, "/stats?filter=%5Ecluster%5C.backend%5C.upstream_rq_%5B0-9%5D")
	want := "cluster.backend.upstream_rq_1xx: 0\ncluster.backend.upstream_rq_200: 7\ncluster.backend.upstream_rq_2xx: 7\ncluster.backend.upstream_rq_3xx: 0\ncluster.backend.upstream_rq_404: 1\ncluster.backend.upstream_rq_4xx: 1\ncluster.backend.upstream_rq_504: 1\ncluster.backend.upstream_rq_5xx: 1\n"
	if body != want {
		t.Errorf("sorted output:\n%s\nwant\n%s", body, want)
	}
	// JSON has Envoy's shape.
	_, body = get(t, h, "/stats?format=json&filter=backend%5C.upstream_rq_%28200%7Ctime%29%24")
	var doc struct {
		Stats []json.RawMessage `json:"stats"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, body)
	}
	if len(doc.Stats) != 2 {
		t.Fatalf("json stats: %s", body)
	}
	var nv struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	}
	if err := json.Unmarshal(doc.Stats[0], &nv); err != nil || nv.Name != "cluster.backend.upstream_rq_200" || nv.Value != 7 {
		t.Errorf("first json stat = %s", doc.Stats[0])
	}
	var hist struct {
		Histograms struct {
			Supported []float64 `json:"supported_quantiles"`
			Computed  []struct {
				Name   string `json:"name"`
				Values []struct {
					Cumulative *float64 `json:"cumulative"`
				} `json:"values"`
			} `json:"computed_quantiles"`
		} `json:"histograms"`
	}
	if err := json.Unmarshal(doc.Stats[1], &hist); err != nil || len(hist.Histograms.Computed) != 1 ||
		hist.Histograms.Computed[0].Name != "cluster.backend.upstream_rq_time" ||
		len(hist.Histograms.Computed[0].Values) != len(hist.Histograms.Supported) {
		t.Errorf("json histograms = %s", doc.Stats[1])
	}
}

func TestCompareStatNames(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"a.b", "a.b", 0},
		{"a.b", "a.c", -1},
		{"a.x", "a-b.x", -1}, // segment "a" < "a-b"; a byte comparison says otherwise
		{"a", "a.b", -1},
		{"a.b.c", "a.b", 1},
	} {
		if got := compareStatNames(tc.a, tc.b); got != tc.want {
			t.Errorf("compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
