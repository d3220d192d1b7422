// Package overload is the "Overload" end-to-end scenario: a
// burst of concurrent requests well beyond a cluster's circuit-breaker
// limits, against the real proxy binary and a real upstream process that
// takes a second per response, so that requests pile up.
//
// Two clusters share the upstream: rq_limited trips max_requests,
// cx_limited trips max_connections and max_pending_requests. The excess
// must be refused at once with 503, x-envoy-overloaded and response flag
// UO in the access log; the refusals must match the proxy's
// upstream_rq_pending_overflow exactly; the *_open gauges must open during
// the burst and close after it; and the proxy's memory must stay bounded
// when a second burst four times bigger follows.
package overload

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

const (
	upstreamDelay = time.Second
	maxRequests   = 16 // rq_limited
	maxConns      = 8  // cx_limited
	maxPending    = 4  // cx_limited
)

// outcome is what the clients of one burst saw.
type outcome struct {
	status     map[int]int
	overloaded int // 503s with x-envoy-overloaded: true
	errors     int
	served     []time.Duration // latencies of 200s, sorted
	refused    []time.Duration // latencies of 503s, sorted
}

// burst sends requests GETs of url from workers concurrent clients, each
// sending back to back, bounded by a 40 s deadline.
func burst(t *testing.T, url string, workers, requests int) outcome {
	t.Helper()
	var out outcome
	res := e2etest.RunLoad(t, e2etest.Load{
		URL: url, Requests: requests, Workers: workers, Deadline: 40 * time.Second, Timeout: 20 * time.Second,
		Observe: func(_ *http.Request, res *http.Response, took time.Duration) {
			switch res.StatusCode {
			case http.StatusOK:
				out.served = append(out.served, took)
			case http.StatusServiceUnavailable:
				out.refused = append(out.refused, took)
				if res.Header.Get("X-Envoy-Overloaded") == "true" {
					out.overloaded++
				}
			}
		},
	})
	out.status, out.errors = res.Status, res.Errors
	slices.Sort(out.served)
	slices.Sort(out.refused)
	return out
}

// watchGauges polls the proxy's stats until stop is closed and reports
// which of the named gauges were seen at 1.
func watchGauges(t *testing.T, p *e2etest.Proxy, names []string, stop <-chan struct{}) <-chan map[string]bool {
	done := make(chan map[string]bool, 1)
	go func() {
		seen := map[string]bool{}
		for {
			select {
			case <-stop:
				done <- seen
				return
			default:
			}
			st := statsNoFail(p)
			for _, n := range names {
				if st[n] == 1 {
					seen[n] = true
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return done
}

// statsNoFail is p.Stats for a background goroutine, which must not call
// t.Fatal: a failed fetch reads as no stats.
func statsNoFail(p *e2etest.Proxy) map[string]uint64 {
	out := map[string]uint64{}
	res, err := http.Get("http://" + p.Admin + "/stats")
	if err != nil {
		return out
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(val, 10, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// scenario is one cluster's burst and what it must show.
type scenario struct {
	cluster string
	path    string
	// gauges must each be seen at 1 during the burst.
	gauges []string
}

func TestOverload(t *testing.T) {
	up := e2etest.StartUpstream(t, "backend")
	up.Control(t, map[string][]string{"delay": {upstreamDelay.String()}})
	in := &e2etest.Ingress{
		AccessLog: true,
		Routes: `
- match: {prefix: /rq}
  route: {cluster: rq_limited, timeout: 30s}
- match: {prefix: /cx}
  route: {cluster: cx_limited, timeout: 30s}
`,
		Clusters: fmt.Sprintf(`
- name: rq_limited
  circuit_breakers: {max_requests: %d}
  endpoints: [{address: %s}]
- name: cx_limited
  circuit_breakers: {max_connections: %d, max_pending_requests: %d}
  endpoints: [{address: %s}]
`, maxRequests, up.Addr, maxConns, maxPending, up.Addr),
	}
	p := e2etest.StartIngress(t, in)

	scenarios := []scenario{
		{"rq_limited", "/rq", []string{"cluster.rq_limited.circuit_breakers.default.rq_open"}},
		{"cx_limited", "/cx", []string{"cluster.cx_limited.circuit_breakers.default.cx_open", "cluster.cx_limited.circuit_breakers.default.rq_pending_open"}},
	}
	totals := map[string]outcome{}
	run := func(round string, workers, requests int) {
		for _, sc := range scenarios {
			stop := make(chan struct{})
			seen := watchGauges(t, p, sc.gauges, stop)
			o := burst(t, in.URL(sc.path), workers, requests)
			close(stop)
			gauges := <-seen
			t.Logf("%s %s: %d workers, %d requests: %v, %d errors; served p50 %v p99 %v; refused p50 %v p99 %v",
				round, sc.cluster, workers, requests, o.status, o.errors, e2etest.Percentile(o.served, 0.5), e2etest.Percentile(o.served, 0.99), e2etest.Percentile(o.refused, 0.5), e2etest.Percentile(o.refused, 0.99))
			if o.errors != 0 || o.status[200]+o.status[503] != requests {
				t.Errorf("%s %s: statuses %v, %d errors; want only 200 and 503", round, sc.cluster, o.status, o.errors)
			}
			if o.status[503] < requests/2 || o.status[200] == 0 {
				t.Errorf("%s %s: %d refused, %d served of %d: the burst should be mostly refused", round, sc.cluster, o.status[503], o.status[200], requests)
			}
			if o.overloaded != o.status[503] {
				t.Errorf("%s %s: %d of %d 503s carry x-envoy-overloaded", round, sc.cluster, o.overloaded, o.status[503])
			}
			// Refused at once: slower than the slowest refusal is every
			// served request but the fastest half.
			if e2etest.Percentile(o.refused, 0.99) >= e2etest.Percentile(o.served, 0.5) {
				t.Errorf("%s %s: refused p99 %v is not below served p50 %v", round, sc.cluster, e2etest.Percentile(o.refused, 0.99), e2etest.Percentile(o.served, 0.5))
			}
			for _, g := range sc.gauges {
				if !gauges[g] {
					t.Errorf("%s %s: %s never read 1 during the burst", round, sc.cluster, g)
				}
			}
			tot := totals[sc.cluster]
			if tot.status == nil {
				tot.status = map[int]int{}
			}
			for code, n := range o.status {
				tot.status[code] += n
			}
			totals[sc.cluster] = tot
			// Latency stays bounded however many clients come: a served
			// request waits for at most one response ahead of it
			// (max_pending_requests <= max_connections), so it takes at
			// most two upstream delays; the third is slack.
			if p99 := e2etest.Percentile(o.served, 0.99); p99 >= 3*upstreamDelay {
				t.Errorf("%s %s: served p99 %v, want under 3 upstream delays (%v)", round, sc.cluster, p99, 3*upstreamDelay)
			}
			checkStats(t, p, sc.cluster, tot)
		}
	}

	run("first", 64, 600)
	rss1 := rssKiB(t, p.PID())
	run("second", 256, 2400)
	rss2 := rssKiB(t, p.PID())
	t.Logf("proxy RSS: %d KiB after the first burst, %d KiB after the second (4x)", rss1, rss2)
	if growth := rss2 - rss1; growth > 64<<10 {
		t.Errorf("proxy RSS grew by %d KiB with the second burst; want under 64 MiB", growth)
	}

	// Every refusal is in the access log with UO, every success without a flag.
	want := 0
	for _, tot := range totals {
		want += tot.status[200] + tot.status[503]
	}
	lines := p.AccessLog(t, want)
	flagged, clean := map[string]int{}, map[string]int{}
	for _, m := range lines {
		path, _ := m["path"].(string)
		cl := map[string]string{"/rq": "rq_limited", "/cx": "cx_limited"}[path]
		if cl == "" {
			continue
		}
		code, _ := m["response_code"].(float64)
		fl, _ := m["response_flags"].(string)
		switch {
		case code == 503 && fl == "UO" && m["response_code_details"] == "upstream_reset_before_response_started{overflow}":
			flagged[cl]++
		case code == 200 && fl == "-":
			clean[cl]++
		default:
			t.Errorf("access log line for %s: status %v flags %q details %v", path, code, fl, m["response_code_details"])
		}
	}
	for cl, tot := range totals {
		if flagged[cl] != tot.status[503] || clean[cl] != tot.status[200] {
			t.Errorf("%s access log: %d UO and %d clean lines; clients saw %d 503s and %d 200s", cl, flagged[cl], clean[cl], tot.status[503], tot.status[200])
		}
	}
	if got, want := up.Served(t), int64(totals["rq_limited"].status[200]+totals["cx_limited"].status[200]); got != want {
		t.Errorf("the upstream served %d requests, the clients saw %d 200s", got, want)
	}
}

// checkStats compares a cluster's stats with what its clients saw so far,
// once the burst is over.
func checkStats(t *testing.T, p *e2etest.Proxy, cluster string, tot outcome) {
	t.Helper()
	st := p.Stats(t)
	s := func(name string) uint64 { return st["cluster."+cluster+"."+name] }
	if got := s("upstream_rq_pending_overflow"); got != uint64(tot.status[503]) {
		t.Errorf("%s: upstream_rq_pending_overflow %d, clients saw %d 503s", cluster, got, tot.status[503])
	}
	if got := s("upstream_rq_503"); got != uint64(tot.status[503]) {
		t.Errorf("%s: upstream_rq_503 %d, clients saw %d 503s", cluster, got, tot.status[503])
	}
	if got := s("upstream_rq_200"); got != uint64(tot.status[200]) {
		t.Errorf("%s: upstream_rq_200 %d, clients saw %d 200s", cluster, got, tot.status[200])
	}
	for _, g := range []string{"circuit_breakers.default.rq_open", "circuit_breakers.default.rq_pending_open", "upstream_rq_pending_active", "upstream_rq_active"} {
		if got := s(g); got != 0 {
			t.Errorf("%s: %s = %d after the burst, want 0", cluster, g, got)
		}
	}
	if cluster == "cx_limited" {
		// Envoy counts idle pooled connections against max_connections.
		if cx := s("upstream_cx_active"); cx > maxConns || (cx == maxConns) != (s("circuit_breakers.default.cx_open") == 1) {
			t.Errorf("%s: upstream_cx_active %d with max_connections %d, cx_open %d", cluster, cx, maxConns, s("circuit_breakers.default.cx_open"))
		}
		if s("upstream_cx_overflow") == 0 || s("upstream_rq_pending_total") == 0 {
			t.Errorf("%s: upstream_cx_overflow %d, upstream_rq_pending_total %d; want both counted", cluster, s("upstream_cx_overflow"), s("upstream_rq_pending_total"))
		}
	}
}
