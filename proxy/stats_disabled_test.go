package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStatsDisabled: with stats_config.disabled the proxy serves as usual,
// counting into a null store: nothing is listed on the admin endpoints and
// nothing reaches a configured StatsD sink, however many flush intervals
// pass.
func TestStatsDisabled(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	h := startProxy(t, testHead+`stats_config: {disabled: true, flush_interval: 50ms}
stats_sinks: [{type: statsd, address: "`+sink.LocalAddr().String()+`"}]
`+listenersHead("ingress", "ingress", "access_log: []")+` [{match: {prefix: /up}, route: {cluster: backend}}]
clusters:
  - name: backend
    endpoints: [{address: "{{UP}}"}]
`, "{{UP}}", up.Listener.Addr().String())

	if res, body := h.get(h.url("ingress", "/up")); res.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("GET /up: %d %q, want 200 ok", res.StatusCode, body)
	}
	if res, _ := h.get(h.url("ingress", "/nowhere")); res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /nowhere: %d, want 404", res.StatusCode)
	}
	if st := h.srv.Stats(); !st.IsNull() || st.Len() != 0 || st.Find("http.ingress.downstream_rq_total") != nil {
		t.Errorf("Stats(): null %v, %d stats listed; want a null store listing none", st.IsNull(), st.Len())
	}
	for _, path := range []string{"/stats", "/stats?format=json", "/stats/prometheus"} {
		res, body := h.get(h.adminURL(path))
		if res.StatusCode != http.StatusOK || strings.Contains(body, "ingress") || strings.Contains(body, "backend") ||
			strings.Contains(body, "envoy_") {
			t.Errorf("admin %s: %d %q, want 200 and no stat", path, res.StatusCode, body)
		}
	}
	buf := make([]byte, 65536)
	_ = sink.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := sink.ReadFrom(buf); err == nil {
		t.Errorf("the StatsD sink received %q with stats disabled", buf[:n])
	}
}
