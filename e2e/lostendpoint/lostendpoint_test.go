// Package lostendpoint is the "Lost endpoint" end-to-end scenario, with
// its active health checking companions. Everything runs as
// real processes on loopback: three test upstreams behind the real
// hopwatch-proxy.
//
//   - TestLostEndpoint: one of three upstreams is killed (SIGKILL) under
//     bounded load. Retries (connect-failure, reset, 5xx; two of them) keep
//     the client-side success rate at 99.9% or better, and outlier
//     detection (consecutive gateway failures) ejects the dead endpoint
//     within the sweep interval; afterwards it gets no attempt at all.
//   - TestActiveHealthCheck: an upstream whose /healthz answers 503 is
//     marked unhealthy and gets no more traffic; back to 200 it is healthy
//     again after healthy_threshold checks; x-envoy-immediate-health-check-fail
//     on a 200 fails it at once.
//   - TestImmediateHealthCheckFailOnProxiedResponse: the same header on a
//     proxied response marks the host unhealthy (a passive failure).
//
// Each asserts the client's view (status counts, which upstream answered)
// and the proxy's (stats, /clusters health flags, membership_healthy).
package lostendpoint

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// ingress is a one-cluster proxy config over ups that retries connect
// failures, resets and 5xx twice; clusterExtra holds more keys of the
// cluster, indented by two spaces.
func ingress(ups e2etest.Upstreams, clusterExtra string) *e2etest.Ingress {
	return &e2etest.Ingress{
		Head: "node: {id: lostendpoint-e2e}",
		Routes: `
- match: {prefix: /}
  route:
    cluster: backend
    timeout: 5s
    retry_policy:
      retry_on: [connect-failure, reset, 5xx]
      num_retries: 2
      retry_back_off: {base_interval: 5ms, max_interval: 20ms}
`,
		Clusters: `
- name: backend
  connect_timeout: 1s
  endpoints: ` + ups.Endpoints(nil) + "\n" + clusterExtra,
	}
}

// healthFlags reads /clusters (Envoy's text format) and returns each host's
// health_flags in the backend cluster, by address.
func healthFlags(t *testing.T, p *e2etest.Proxy) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(p.AdminGet(t, "/clusters"), "\n") {
		// backend::127.0.0.1:1234::health_flags::/failed_outlier_check
		parts := strings.Split(line, "::")
		if len(parts) == 4 && parts[0] == "backend" && parts[2] == "health_flags" {
			out[parts[1]] = parts[3]
		}
	}
	return out
}

// jsonHealth reads /clusters?format=json and returns each backend host's
// health_status.
func jsonHealth(t *testing.T, p *e2etest.Proxy) map[string]map[string]any {
	t.Helper()
	var doc struct {
		Clusters []struct {
			Name  string `json:"name"`
			Hosts []struct {
				Address      string         `json:"address"`
				HealthStatus map[string]any `json:"health_status"`
			} `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := json.Unmarshal([]byte(p.AdminGet(t, "/clusters?format=json")), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, c := range doc.Clusters {
		if c.Name == "backend" {
			for _, h := range c.Hosts {
				out[h.Address] = h.HealthStatus
			}
		}
	}
	return out
}

func delta(after, before map[string]uint64, name string) uint64 { return after[name] - before[name] }

func TestLostEndpoint(t *testing.T) {
	ups := e2etest.StartUpstreams(t, "a", "b", "victim")
	victim := ups[2]
	// Outlier detection: three gateway failures in a row eject (enforced),
	// a sweep every second, 30s ejections (longer than the test), and at
	// most one of the three hosts out (34%).
	const interval = time.Second
	in := ingress(ups, `  outlier_detection:
    consecutive_gateway_failure: 3
    enforcing_consecutive_gateway_failure: 100
    interval: 1s
    base_ejection_time: 30s
    max_ejection_percent: 34
`)
	p := e2etest.StartIngress(t, in)
	base := in.URL("/")

	// Phase 1: load, and kill the victim once a tenth of it is done.
	const requests = 5000
	results := make(chan *e2etest.LoadResult, 1)
	go func() {
		results <- e2etest.RunLoad(t, e2etest.Load{URL: base, Requests: requests, Workers: 4, Deadline: 40 * time.Second, Timeout: 5 * time.Second})
	}()
	e2etest.WaitFor(t, "a tenth of the load served", 30*time.Second, func() bool {
		n := int64(0)
		for _, u := range ups {
			n += u.Served(t)
		}
		return n >= requests/10
	})
	victim.Kill()
	ejectedAfter := e2etest.WaitFor(t, "the killed endpoint is ejected", 10*time.Second, func() bool {
		return p.Stat(t, "cluster.backend.outlier_detection.ejections_active") == 1
	})
	res := <-results
	t.Logf("load: %d sent in %v, status %v, %d errors, by upstream %v, p50 %v p99 %v; ejected %v after the kill",
		res.Sent, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors, res.ByUpstream,
		res.Percentile(0.5), res.Percentile(0.99), ejectedAfter.Round(time.Millisecond))
	if res.Sent != requests {
		t.Fatalf("sent %d of %d requests before the deadline", res.Sent, requests)
	}
	if sr := res.SuccessRate(); sr < 0.999 {
		t.Errorf("client-side success rate %.4f, want ≥ 0.999 (status %v, %d errors)", sr, res.Status, res.Errors)
	}
	// Consecutive errors eject inline: well before the next sweep.
	if ejectedAfter > interval {
		t.Errorf("ejected %v after the kill, want within the outlier detection interval (%v)", ejectedAfter, interval)
	}

	st := p.Stats(t)
	for name, want := range map[string]uint64{
		"outlier_detection.ejections_active":                               1,
		"outlier_detection.ejections_enforced_total":                       1,
		"outlier_detection.ejections_enforced_consecutive_gateway_failure": 1,
		"outlier_detection.ejections_detected_consecutive_gateway_failure": 1,
		"outlier_detection.ejections_overflow":                             0,
	} {
		if got := st["cluster.backend."+name]; got != want {
			t.Errorf("cluster.backend.%s = %d, want %d", name, got, want)
		}
	}
	if st["cluster.backend.upstream_rq_retry"] == 0 {
		t.Error("upstream_rq_retry = 0: the requests to the dead endpoint were not retried")
	}
	e2etest.WaitFor(t, "membership_healthy drops to 2", 5*time.Second, func() bool {
		return p.Stat(t, "cluster.backend.membership_healthy") == 2
	})
	flags := healthFlags(t, p)
	for _, u := range ups {
		want := "healthy"
		if u == victim {
			want = "/failed_outlier_check"
		}
		if flags[u.Addr] != want {
			t.Errorf("/clusters: %s (%s) health_flags::%s, want %s", u.Name, u.Addr, flags[u.Addr], want)
		}
	}
	if hs := jsonHealth(t, p)[victim.Addr]; hs["failed_outlier_check"] != true {
		t.Errorf("/clusters?format=json: victim health_status %v, want failed_outlier_check true", hs)
	}

	// Phase 2: the ejected endpoint gets no attempt: no connect failure,
	// no retry, every answer from a live upstream.
	before := p.Stats(t)
	res2 := e2etest.RunLoad(t, e2etest.Load{URL: base, Requests: 1000, Workers: 4, Deadline: 30 * time.Second})
	after := p.Stats(t)
	if res2.Status[http.StatusOK] != 1000 || res2.ByUpstream[victim.Name] != 0 {
		t.Errorf("after the ejection: status %v, by upstream %v; want 1000 × 200, none from the victim", res2.Status, res2.ByUpstream)
	}
	for _, name := range []string{"upstream_cx_connect_fail", "upstream_rq_retry", "upstream_rq_503"} {
		if d := delta(after, before, "cluster.backend."+name); d != 0 {
			t.Errorf("after the ejection cluster.backend.%s grew by %d, want 0", name, d)
		}
	}
	if d := delta(after, before, "cluster.backend.upstream_rq_total"); d != 1000 {
		t.Errorf("after the ejection upstream_rq_total grew by %d, want exactly 1000 attempts", d)
	}
}

func TestActiveHealthCheck(t *testing.T) {
	ups := e2etest.StartUpstreams(t, "a", "b", "flaky")
	flaky := ups[2]
	in := ingress(ups, `  health_checks:
    - timeout: 1s
      interval: 100ms
      interval_jitter: 20ms
      unhealthy_threshold: 2
      healthy_threshold: 2
      http_health_check: {path: /healthz}
`)
	p := e2etest.StartIngress(t, in)
	base := in.URL("/")
	load := func(n int) *e2etest.LoadResult {
		t.Helper()
		r := e2etest.RunLoad(t, e2etest.Load{URL: base, Requests: n, Workers: 3, Deadline: 30 * time.Second})
		if r.Status[http.StatusOK] != n {
			t.Fatalf("load: status %v, %d errors; want %d × 200", r.Status, r.Errors, n)
		}
		return r
	}
	// The proxy was ready only after every host's first check passed.
	if f := healthFlags(t, p); f[flaky.Addr] != "healthy" || len(f) != 3 {
		t.Fatalf("health flags at start %v, want three healthy hosts", f)
	}

	// 503 from /healthz: unhealthy at once (not a network failure), and no
	// more traffic.
	flaky.Control(t, url.Values{"health": {"503"}})
	took := e2etest.WaitFor(t, "the host answering 503 is marked unhealthy", 5*time.Second, func() bool {
		return healthFlags(t, p)[flaky.Addr] == "/failed_active_hc"
	})
	t.Logf("marked unhealthy %v after /healthz turned 503 (interval 100ms)", took.Round(time.Millisecond))
	e2etest.WaitFor(t, "membership_healthy drops to 2", 5*time.Second, func() bool {
		return p.Stat(t, "cluster.backend.membership_healthy") == 2
	})
	served := flaky.Served(t)
	r := load(600)
	if r.ByUpstream[flaky.Name] != 0 || flaky.Served(t) != served {
		t.Errorf("the unhealthy host answered %d requests (served %d more), want 0", r.ByUpstream[flaky.Name], flaky.Served(t)-served)
	}
	st := p.Stats(t)
	if st["cluster.backend.health_check.healthy"] != 2 || st["cluster.backend.health_check.failure"] == 0 || st["cluster.backend.health_check.network_failure"] != 0 {
		t.Errorf("health_check healthy %d, failure %d, network_failure %d; want 2, > 0, 0",
			st["cluster.backend.health_check.healthy"], st["cluster.backend.health_check.failure"], st["cluster.backend.health_check.network_failure"])
	}
	if hs := jsonHealth(t, p)[flaky.Addr]; hs["failed_active_health_check"] != true {
		t.Errorf("/clusters?format=json: health_status %v, want failed_active_health_check true", hs)
	}

	// Back to 200: healthy again after healthy_threshold checks, and it
	// gets its third of round robin's traffic again.
	successes := p.Stat(t, "cluster.backend.health_check.success")
	flaky.Control(t, url.Values{"health": {""}})
	e2etest.WaitFor(t, "the host is healthy again", 5*time.Second, func() bool {
		return healthFlags(t, p)[flaky.Addr] == "healthy"
	})
	if d := p.Stat(t, "cluster.backend.health_check.success") - successes; d < 2 {
		t.Errorf("healthy again after %d passing checks, want healthy_threshold (2)", d)
	}
	e2etest.WaitFor(t, "membership_healthy back to 3", 5*time.Second, func() bool {
		return p.Stat(t, "cluster.backend.membership_healthy") == 3
	})
	r = load(600)
	if got := r.ByUpstream[flaky.Name]; got < 150 {
		t.Errorf("the recovered host answered %d of 600 round-robin requests, want about 200", got)
	}

	// x-envoy-immediate-health-check-fail on a 200 check response.
	flaky.Control(t, url.Values{"health_header": {"1"}})
	e2etest.WaitFor(t, "the immediate-fail header marks the host", 5*time.Second, func() bool {
		return healthFlags(t, p)[flaky.Addr] == "/failed_active_hc"
	})
	if got := p.Stat(t, "cluster.backend.health_check.network_failure"); got != 0 {
		t.Errorf("network_failure = %d, want 0", got)
	}
	if p.Stat(t, "cluster.backend.health_check.attempt") == 0 || p.Stat(t, "cluster.backend.health_check.success") == 0 {
		t.Error("health_check.attempt or .success is 0")
	}
}

func TestImmediateHealthCheckFailOnProxiedResponse(t *testing.T) {
	ups := e2etest.StartUpstreams(t, "a", "b", "draining")
	draining := ups[2]
	// Checks of a path that always answers 200, once at start and then
	// hourly: whatever marks the host later is the proxied response.
	in := ingress(ups, `  health_checks:
    - {timeout: 1s, interval: 1h, http_health_check: {path: /hc}}
`)
	p := e2etest.StartIngress(t, in)
	draining.Control(t, url.Values{"health_header": {"1"}})
	// The upstream's /healthz carries the header; round robin sends one
	// request in three there.
	for range 6 {
		res, err := http.Get(in.URL("/healthz"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	flags := healthFlags(t, p)
	if flags[draining.Addr] != "/failed_active_hc" || flags[ups[0].Addr] != "healthy" || flags[ups[1].Addr] != "healthy" {
		t.Fatalf("health flags %v, want only the draining host failed", flags)
	}
	st := p.Stats(t)
	if st["cluster.backend.health_check.passive_failure"] != 1 || st["cluster.backend.health_check.attempt"] != 3 {
		t.Errorf("passive_failure %d, attempt %d; want 1 and 3 (the first round only)",
			st["cluster.backend.health_check.passive_failure"], st["cluster.backend.health_check.attempt"])
	}
	r := e2etest.RunLoad(t, e2etest.Load{URL: in.URL("/"), Requests: 300, Workers: 3, Deadline: 30 * time.Second})
	if r.Status[http.StatusOK] != 300 || r.ByUpstream[draining.Name] != 0 {
		t.Errorf("status %v, by upstream %v; want 300 × 200, none from the draining host", r.Status, r.ByUpstream)
	}
}
