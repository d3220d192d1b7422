package openmetrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const body = `# TYPE envoy_cluster_upstream_rq_time histogram
# HELP envoy_cluster_upstream_rq_time with # {trace_id="abc"} in its help
envoy_cluster_upstream_rq_time_bucket{le="5"} 3 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 4 1796538601.565
envoy_cluster_upstream_rq_time_bucket{le="10"} 3
envoy_cluster_upstream_rq_time_bucket{le="25"} 4 # {trace_id="00f067aa0ba902b700f067aa0ba902b7"} 12 1796538601.9
# EOF
`

func TestExemplarLines(t *testing.T) {
	if n := ExemplarLines([]byte(body)); n != 2 {
		t.Fatalf("ExemplarLines = %d, want 2", n)
	}
}

func TestCountExemplars(t *testing.T) {
	var accept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Write([]byte(body))
	}))
	defer srv.Close()
	n, err := CountExemplars(t.Context(), srv.URL)
	if err != nil || n != 2 {
		t.Fatalf("CountExemplars = %d, %v; want 2", n, err)
	}
	if !strings.Contains(accept, "application/openmetrics-text") {
		t.Errorf("Accept %q does not ask for OpenMetrics, so no exemplar would be served", accept)
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer failing.Close()
	if _, err := CountExemplars(t.Context(), failing.URL); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("status 500: err = %v, want one naming the status", err)
	}
}
