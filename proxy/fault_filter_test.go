package proxy_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// The fault filter inside the whole proxy, in process, on real sockets:
// what the client gets, what the upstream saw, the access log's response
// flags and the fault stats.

var faultConfig = testHead + listenersHead("main", "main", `access_log: [{path: "{{LOG}}"}]`) + `
          - match: {prefix: /abort}
            route: {cluster: up}
            fault: {abort: {http_status: 503, percentage: {numerator: 100}}}
          - match: {prefix: /delay-abort}
            route: {cluster: up}
            fault:
              delay: {fixed_delay: 1ms, percentage: {numerator: 100}}
              abort: {http_status: 429, percentage: {numerator: 100}}
          - match: {prefix: /headers}
            route: {cluster: up}
            fault:
              delay: {header_delay: {}, percentage: {numerator: 100}}
              abort: {header_abort: {}, percentage: {numerator: 100}}
          - match: {prefix: /limited}
            route: {cluster: up}
            fault:
              delay: {header_delay: {}, percentage: {numerator: 100}}
              max_active_faults: 1
          - match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`

// startFaultProxy starts a proxy on faultConfig in front of an upstream
// that answers "upstream" and counts the requests it served.
func startFaultProxy(t *testing.T) (*harness, *atomic.Int64) {
	t.Helper()
	served := &atomic.Int64{}
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.WriteString(w, "upstream")
	}))
	return startProxy(t, faultConfig, "{{UP}}", up), served
}

func TestFaultFilterInProxy(t *testing.T) {
	h, served := startFaultProxy(t)
	tests := []struct {
		name, path string
		hdr        []string
		status     int
		body       string
		flags      string
		details    string
		upstream   bool
	}{
		{"abort", "/abort", nil, 503, "fault filter abort", "FI", "fault_filter_abort", false},
		{"delay then abort", "/delay-abort", nil, 429, "fault filter abort", "DI,FI", "fault_filter_abort", false},
		{"header abort", "/headers/a", []string{"x-envoy-fault-abort-request", "418"}, 418, "fault filter abort", "FI", "fault_filter_abort", false},
		{"header delay", "/headers/d", []string{"x-envoy-fault-delay-request", "5"}, 200, "upstream", "DI", "via_upstream", true},
		{"header abort lowered to 0%", "/headers/p", []string{"x-envoy-fault-abort-request", "418", "x-envoy-fault-abort-request-percentage", "0"}, 200, "upstream", "-", "via_upstream", true},
		{"no headers, no fault", "/headers/n", nil, 200, "upstream", "-", "via_upstream", true},
		{"no fault configured", "/plain", []string{"x-envoy-fault-abort-request", "500"}, 200, "upstream", "-", "via_upstream", true},
	}
	// Each request's ID is its path, to find its access-log line.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := served.Load()
			res, body := h.with(t).get(h.url("main", tt.path), append(tt.hdr, "X-Request-Id", tt.path)...)
			if res.StatusCode != tt.status || body != tt.body {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, body, tt.status, tt.body)
			}
			if reached := served.Load() > before; reached != tt.upstream {
				t.Errorf("reached the upstream: %v, want %v", reached, tt.upstream)
			}
		})
	}
	// The access log is flushed every second: read it once at the end.
	for _, tt := range tests {
		line := h.logLine(tt.path)
		if line["response_flags"] != tt.flags || line["response_code_details"] != tt.details {
			t.Errorf("%s: access log flags %v details %v, want %s %s", tt.name, line["response_flags"], line["response_code_details"], tt.flags, tt.details)
		}
	}
	h.wantStats(map[string]uint64{
		"http.main.fault.aborts_injected": 3,
		"http.main.fault.delays_injected": 2,
		"http.main.fault.faults_overflow": 0,
		"http.main.fault.active_faults":   0,
	})
}

// TestFaultDelayClientGone: a client that gives up during a delay is
// logged with DI and DC and never reaches the upstream; meanwhile the
// listener's max_active_faults (1) refuses a second fault.
func TestFaultDelayClientGone(t *testing.T) {
	h, served := startFaultProxy(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url("main", "/limited/long"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-envoy-fault-delay-request", "600000")
	req.Header.Set("X-Request-Id", "long")
	errc := make(chan error, 1)
	go func() {
		res, err := h.client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	h.waitStat("http.main.fault.active_faults", 1)
	// A second delayed request overflows and goes straight upstream.
	res, body := h.get(h.url("main", "/limited/second"), "x-envoy-fault-delay-request", "600000", "X-Request-Id", "second")
	if res.StatusCode != 200 || body != "upstream" {
		t.Fatalf("second request: %d %q", res.StatusCode, body)
	}
	if got := h.stat("http.main.fault.faults_overflow"); got != 1 {
		t.Errorf("faults_overflow = %d, want 1", got)
	}
	if line := h.logLine("second"); line["response_flags"] != "-" {
		t.Errorf("overflowed request flags %v, want -", line["response_flags"])
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	if line := h.logLine("long"); line["response_flags"] != "DI,DC" {
		t.Errorf("abandoned request flags %v, want DI,DC", line["response_flags"])
	}
	if served.Load() != 1 {
		t.Errorf("the upstream served %d requests, want only the overflowed one", served.Load())
	}
	h.waitStat("http.main.fault.active_faults", 0)
}
