package proxy_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// breakerConfig routes everything to cluster "up" with the given circuit
// breakers and, for /retry paths, a retry policy on 5xx.
var breakerConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}", format: json}]`) + `
          - match: {prefix: /retry}
            stat_prefix: retry
            route:
              cluster: up
              timeout: 20s
              retry_policy:
                retry_on: [5xx]
                num_retries: 3
                retry_back_off: {base_interval: 1ms, max_interval: 2ms}
          - match: {prefix: /}
            route: {cluster: up, timeout: 20s}
clusters:
  - name: up
    connect_timeout: 1s
    circuit_breakers: {{CB}}
    endpoints: [{address: "{{UP}}"}]
`

// until polls cond for up to 10 s: it waits for a state, not a duration.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// getAsync sends a GET with a request ID and returns its status and the
// x-envoy-overloaded header when it ends.
func (h *harness) getAsync(path, rid string) <-chan [2]string {
	out := make(chan [2]string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, h.url("ingress", path), nil)
		req.Header.Set("X-Request-Id", rid)
		res, err := h.client.Do(req)
		if err != nil {
			out <- [2]string{"error: " + err.Error(), ""}
			return
		}
		res.Body.Close()
		out <- [2]string{fmt.Sprint(res.StatusCode), res.Header.Get("X-Envoy-Overloaded")}
	}()
	return out
}

// checkOverflowReply checks Envoy's local reply for an overflow: 503, the
// x-envoy-overloaded header, its body, and the UO flag in the access log.
func checkOverflowReply(t *testing.T, h *harness, path, rid string) {
	t.Helper()
	res, body := h.get(h.url("ingress", path), "X-Request-Id", rid)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("X-Envoy-Overloaded") != "true" ||
		body != "upstream connect error or disconnect/reset before headers. reset reason: overflow" {
		t.Fatalf("overflow reply: %d, x-envoy-overloaded %q, body %q", res.StatusCode, res.Header.Get("X-Envoy-Overloaded"), body)
	}
	m := h.logLine(rid)
	if flags(m) != "UO" || m["response_code_details"] != "upstream_reset_before_response_started{overflow}" {
		t.Errorf("access log flags %q, details %v; want UO, upstream_reset_before_response_started{overflow}", flags(m), m["response_code_details"])
	}
}

// startGatedBreaker starts a proxy on breakerConfig with the circuit
// breaker thresholds cb, in front of an upstream that holds every request
// until the gate releases its path.
func startGatedBreaker(t *testing.T, cb string) (*harness, *e2etest.Gate) {
	t.Helper()
	g := e2etest.NewGate()
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.Wait(r) }))
	t.Cleanup(g.ReleaseAll)
	return startProxy(t, breakerConfig, "{{UP}}", up, "{{CB}}", cb), g
}

func TestCircuitBreakerMaxRequests(t *testing.T) {
	t.Parallel()
	h, g := startGatedBreaker(t, "{max_requests: 2}")

	a, b := h.getAsync("/a", "mr-a"), h.getAsync("/b", "mr-b")
	until(t, "two requests reach the upstream", func() bool { return g.Arrived("/a") == 1 && g.Arrived("/b") == 1 })
	if got := h.stat("cluster.up.circuit_breakers.default.rq_open"); got != 1 {
		t.Errorf("rq_open = %d with 2 of 2 requests in flight", got)
	}
	checkOverflowReply(t, h, "/c", "mr-c")
	if got := h.stat("cluster.up.upstream_rq_pending_overflow"); got != 1 {
		t.Errorf("upstream_rq_pending_overflow = %d, want 1", got)
	}
	if got := h.stat("cluster.up.upstream_rq_503"); got != 1 {
		t.Errorf("upstream_rq_503 = %d, want 1 (Envoy charges the overflow to the cluster)", got)
	}
	g.Release("/a")
	g.Release("/b")
	for _, ch := range []<-chan [2]string{a, b} {
		if r := <-ch; r[0] != "200" || r[1] != "" {
			t.Errorf("held request: %v, want 200 without x-envoy-overloaded", r)
		}
	}
	until(t, "rq_open closes", func() bool { return h.stat("cluster.up.circuit_breakers.default.rq_open") == 0 })
	g.Release("/d")
	res, _ := h.get(h.url("ingress", "/d"))
	if res.StatusCode != http.StatusOK {
		t.Errorf("after the burst: status %d", res.StatusCode)
	}
}

// TestCircuitBreakerPendingRequests bounds the requests waiting for a
// connection: with one connection, one may wait and the next is refused.
func TestCircuitBreakerPendingRequests(t *testing.T) {
	t.Parallel()
	h, g := startGatedBreaker(t, "{max_connections: 1, max_pending_requests: 1}")
	br := h.srv.Clusters()[0].Breaker()

	a := h.getAsync("/a", "pr-a")
	until(t, "a reaches the upstream", func() bool { return g.Arrived("/a") == 1 })
	b := h.getAsync("/b", "pr-b")
	until(t, "b waits for a connection", func() bool { _, p, _, _ := br.Counts(); return p == 1 })
	if h.stat("cluster.up.circuit_breakers.default.rq_pending_open") != 1 || h.stat("cluster.up.circuit_breakers.default.cx_open") != 1 {
		t.Errorf("rq_pending_open %d, cx_open %d; want 1, 1", h.stat("cluster.up.circuit_breakers.default.rq_pending_open"),
			h.stat("cluster.up.circuit_breakers.default.cx_open"))
	}
	checkOverflowReply(t, h, "/c", "pr-c")
	g.Release("/a")
	until(t, "b is sent on a's connection", func() bool { return g.Arrived("/b") == 1 })
	g.Release("/b")
	for _, ch := range []<-chan [2]string{a, b} {
		if r := <-ch; r[0] != "200" {
			t.Errorf("held request: %v, want 200", r)
		}
	}
	h.wantStats(map[string]uint64{
		"cluster.up.upstream_rq_pending_overflow":             1,
		"cluster.up.upstream_rq_pending_total":                2, // a (while connecting) and b
		"cluster.up.upstream_rq_pending_active":               0,
		"cluster.up.upstream_cx_overflow":                     1, // b
		"cluster.up.upstream_cx_total":                        1,
		"cluster.up.circuit_breakers.default.rq_pending_open": 0,
		"cluster.up.circuit_breakers.default.rq_open":         0,
		"cluster.up.circuit_breakers.default.cx_open":         1, // the idle connection
		"cluster.up.upstream_rq_503":                          1,
		"cluster.up.upstream_rq_200":                          2,
	})
	if h.srv.Stats().Find("cluster.up.circuit_breakers.default.remaining_cx") != nil {
		t.Error("remaining_* gauges exist without track_remaining")
	}
}

// TestCircuitBreakerRetries holds one retry in flight and checks that a
// second one overflows, whether the limit is max_retries or a retry budget
// (which then overrides max_retries): the 503 that asked for the retry goes
// to the client, flagged UO, and upstream_rq_retry_overflow counts it for
// the cluster and the route.
func TestCircuitBreakerRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, cb string }{
		{"max_retries", "{max_retries: 1, track_remaining: true}"},
		{"retry budget", "{max_retries: 100, retry_budget: {budget_percent: 0, min_retry_concurrency: 1}, track_remaining: true}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := e2etest.NewGate()
			var mu sync.Mutex
			tries := map[string]int{}
			// /retry/x fails once, then its retry is held; /retry/y always fails.
			up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				tries[r.URL.Path]++
				n := tries[r.URL.Path]
				mu.Unlock()
				if r.URL.Path == "/retry/x" && n > 1 {
					g.Wait(r)
					return
				}
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
			}))
			t.Cleanup(g.ReleaseAll)
			h := startProxy(t, breakerConfig, "{{UP}}", up, "{{CB}}", tc.cb)

			x := h.getAsync("/retry/x", "rt-x")
			until(t, "x's retry is in flight", func() bool { return g.Arrived("/retry/x") == 1 })
			if got := h.stat("cluster.up.circuit_breakers.default.rq_retry_open"); got != 1 {
				t.Errorf("rq_retry_open = %d with the one retry in flight", got)
			}
			res, body := h.get(h.url("ingress", "/retry/y"), "X-Request-Id", "rt-y")
			if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unavailable") || res.Header.Get("X-Envoy-Overloaded") != "" {
				t.Errorf("y: %d %q (x-envoy-overloaded %q), want the upstream's own 503", res.StatusCode, body, res.Header.Get("X-Envoy-Overloaded"))
			}
			m := h.logLine("rt-y")
			if flags(m) != "UO" || m["attempts"] != 1.0 {
				t.Errorf("y: flags %q, attempts %v; want UO, 1", flags(m), m["attempts"])
			}
			for _, name := range []string{"cluster.up.upstream_rq_retry_overflow", "vhost.all.route.retry.upstream_rq_retry_overflow"} {
				if got := h.stat(name); got != 1 {
					t.Errorf("%s = %d, want 1", name, got)
				}
			}
			g.Release("/retry/x")
			if r := <-x; r[0] != "200" {
				t.Errorf("x: %v, want 200 after its retry", r)
			}
			until(t, "rq_retry_open closes", func() bool {
				return h.stat("cluster.up.circuit_breakers.default.rq_retry_open") == 0
			})
			if _, _, rq, retries := h.srv.Clusters()[0].Breaker().Counts(); rq != 0 || retries != 0 {
				t.Errorf("requests %d, retries %d at rest", rq, retries)
			}
			if m := h.logLine("rt-x"); flags(m) != "-" || m["attempts"] != 2.0 {
				t.Errorf("x: flags %q, attempts %v; want -, 2", flags(m), m["attempts"])
			}
		})
	}
}
