// Package dashboards_test is the live proof of the generated dashboards:
// it runs the local pipeline (deploy/local/up.sh) on a free block of
// loopback ports and starts the real Prometheus (bin/prometheus, built by
// `make tools`) scraping the sink.
//
// First, with nothing but the demo's ordinary load (what a user sees after
// `make up`), every query of every panel must return a series, and the
// panels that ordinary traffic moves (request rates, success rates,
// latency, the catalog's canary, zone-aware routing, retries of the
// canary's injected errors, the sink's own traffic) must be above 0; those
// that ordinary traffic legitimately leaves at 0 are listed in staysZero
// with the reason.
//
// Then it adds a probe proxy whose config makes the conditions the
// panels are about happen (canary hosts, a second zone, a refused endpoint,
// timeouts, a listener connection limit, outlier ejection, health checks,
// tiny circuit breakers, zone-aware routing), and runs
// every query of every panel and every variable, with the variables
// substituted, against Prometheus's HTTP API. Each must return data, except
// the few listed in cannotFeed with the reason.
package dashboards_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/dashboards/lint"
	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// cannotFeed lists the queries (dashboard uid / panel title / refId) that
// the pipeline cannot produce yet, with the reason. The test fails when one
// of them returns data after all, so the list cannot go stale. It is empty
// since every counter and histogram exists at 0 from the first flush
// (docs/config.md, "Zero from the first scrape"): a panel whose condition
// cannot be made to happen here (upstream_cx_connect_timeout needs an
// endpoint that drops SYNs; lb_local_cluster_not_ok a local cluster in
// panic) shows 0, which is what it should show.
var cannotFeed = map[string]string{}

// staysZero lists the queries (dashboard uid / panel title / refId) that
// the demo's ordinary traffic leaves at 0, with the reason. Every other
// query must show a value above 0 under that traffic alone; every query,
// listed or not, must return a series. The test fails when a listed query
// is above 0 after all, so the list cannot go stale.
var staysZero = map[string]string{
	// Failures the demo does not cause: its services answer, quickly.
	"hopwatch-proxy-overview/Listener connection overflow/A": "no listener of the demo has a connection limit",
	"hopwatch-upstream-clusters/Connection failures/A":       "every demo endpoint accepts connections",
	"hopwatch-upstream-clusters/Connection failures/B":       "every demo endpoint accepts connections",
	"hopwatch-upstream-clusters/Connection overflow/A":       "the demo's clusters keep Envoy's default circuit breakers (1024 connections)",
	"hopwatch-upstream-clusters/Connection overflow/B":       "the demo's clusters keep Envoy's default circuit breakers (1024 connections)",
	"hopwatch-upstream-clusters/Pending overflow/A":          "the demo's clusters keep Envoy's default circuit breakers (1024 pending)",
	"hopwatch-upstream-clusters/Retries/C":                   "retries stay far below the default retry circuit breaker (3 at once)",
	"hopwatch-upstream-clusters/Timeouts/A":                  "the canary's 20 ms delay is far below every route timeout",
	"hopwatch-upstream-clusters/Timeouts/B":                  "the canary's 20 ms delay is far below every per-try timeout",
	"hopwatch-upstream-clusters/Health check failures/A":     "the demo configures no active health checks",
	"hopwatch-upstream-clusters/Health check failures/B":     "the demo configures no active health checks",
	"hopwatch-upstream-clusters/Outlier ejections/A":         "the demo configures no outlier detection",
	"hopwatch-upstream-clusters/Outlier ejections/B":         "the demo configures no outlier detection",
	"hopwatch-upstream-clusters/Open circuit breakers/A":     "the default circuit breakers never open at 20 req/s",
	"hopwatch-upstream-clusters/Open circuit breakers/B":     "the default circuit breakers never open at 20 req/s",
	"hopwatch-upstream-clusters/Open circuit breakers/C":     "the default circuit breakers never open at 20 req/s",
	"hopwatch-upstream-clusters/Open circuit breakers/D":     "the default circuit breakers never open at 20 req/s",
	// The canary's injected errors (10 %) are retried by the catalog
	// sidecar and almost always succeed on the stable app. As in Envoy, a
	// retried attempt's 503 is not counted in upstream_rq_5xx (Envoy
	// charges it under retry.*), so the 5xx panels stay at 0 while the
	// Retries panel moves. The alerts test needs the catalog free of
	// client-visible 5xx until it injects them itself.
	"hopwatch-canary/Error rate: canary vs primary/A":            "the canary's errors are retried and succeed; a retried attempt is not a 5xx (Envoy's semantics)",
	"hopwatch-canary/Error rate: canary vs primary/B":            "the stable catalog injects no errors",
	"hopwatch-canary/Error rate difference (canary − primary)/A": "both error rates are 0 (above)",
	// Zone-aware routing in the demo is residual, never all-direct:
	// catalog_app has 1/2 of its hosts in zone-a against 2/3 of the local
	// cluster (deploy/local/sidecar-catalog.yaml).
	"hopwatch-zones/Zone routing counters/A": "residual routing: catalog_app's share in zone-a is below the local cluster's",
	"hopwatch-zones/Zone routing counters/D": "catalog_app has min_cluster_size healthy hosts",
	"hopwatch-zones/Zone routing counters/E": "the residual capacity of zone-b is positive",
	"hopwatch-zones/Zone routing counters/F": "the local cluster is healthy (no health checks) and spans two zones",
	// The sink's failure panels: the proxies send well-formed lines over
	// UDP, under every budget, and nobody reloads the mapping.
	"hopwatch-statsd-sink/Packets per second/B":      "no unixgram listener in the dev environment",
	"hopwatch-statsd-sink/Packets per second/C":      "the proxies send over UDP, not TCP",
	"hopwatch-statsd-sink/Drops by stage/A":          "the sink keeps up with four proxies",
	"hopwatch-statsd-sink/Drops by stage/B":          "the kernel drops nothing at this rate",
	"hopwatch-statsd-sink/Sample errors by reason/A": "the proxies send only well-formed lines",
	"hopwatch-statsd-sink/Cardinality overflows/A":   "the demo stays far below the sink's series budgets",
	"hopwatch-statsd-sink/Config reloads/A":          "nobody reloads the sink's mapping",
}

// numPorts and the offsets follow port_names in deploy/local/up.sh.
const (
	numPorts      = 23
	offCatalogApp = 9
	offInvApp     = 10
	offStatsd     = 11
	offSinkWeb    = 12
)

// sinkSeriesBudget is the per-metric budget the test's sink runs with, low
// enough that the test can exceed it without flooding Prometheus.
const sinkSeriesBudget = 2000

// wrapSink wraps the statsd-sink in dir so that up.sh starts it with a
// small cardinality budget.
func wrapSink(t *testing.T, dir string) {
	t.Helper()
	real := filepath.Join(dir, "statsd-sink.real")
	if err := os.Rename(filepath.Join(dir, "statsd-sink"), real); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nexec " + strconv.Quote(real) + " --sink.max-series-per-metric=" + strconv.Itoa(sinkSeriesBudget) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "statsd-sink"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

const probeConfig = `node:
  id: dashboards-probe
  cluster: probe
  zone: zone-a
admin:
  address: 127.0.0.1:{{admin}}
stats_config:
  flush_interval: 1s
stats_sinks:
  - type: statsd
    address: 127.0.0.1:{{statsd}}
# Zone-aware routing compares the probe's own instances (probe_local, one
# per zone) with each upstream cluster's spread over the zones.
cluster_manager:
  local_cluster_name: probe_local
listeners:
  - name: probe
    address: 127.0.0.1:{{listen}}
    stat_prefix: probe_ingress
    limits:
      max_connections: 4
    virtual_hosts:
      - name: probe
        domains: ["*"]
        routes:
          - match:
              prefix: /
            route:
              cluster: probe_app
              # A slow answer hits the per-try timeout first (upstream_rq_per_try_timeout),
              # and the retry then hits the route timeout (upstream_rq_timeout).
              timeout: 1s
              retry_policy:
                retry_on: [5xx, connect-failure]
                num_retries: 2
                per_try_timeout: 600ms
  # The features' traffic comes through a listener of its own, so that the
  # first one's connection limit does not refuse it.
  - name: probe_more
    address: 127.0.0.1:{{more}}
    stat_prefix: probe_more
    virtual_hosts:
      - name: probe_more
        domains: ["*"]
        routes:
            - match:
                prefix: /
                headers: [{name: x-probe, exact_match: zoned}]
              route: {cluster: probe_zoned}
            - match:
                prefix: /
                headers: [{name: x-probe, exact_match: direct}]
              route: {cluster: probe_direct}
            - match:
                prefix: /
                headers: [{name: x-probe, exact_match: outlier}]
              route: {cluster: probe_outlier}
            - match:
                prefix: /
                headers: [{name: x-probe, exact_match: limited}]
              route:
                cluster: probe_limited
                timeout: 5s
                # The catalog fails a third of its requests; every retry
                # overflows max_retries: 0 (upstream_rq_retry_overflow).
                retry_policy: {retry_on: [5xx], num_retries: 2}
clusters:
  - name: probe_app
    connect_timeout: 250ms
    # 3 hosts, under the default min_cluster_size of 6: lb_zone_cluster_too_small.
    endpoints:
      - address: 127.0.0.1:{{catalog}}
        zone: zone-a
      - address: 127.0.0.1:{{inventory}}
        zone: zone-b
        canary: true
      - address: 127.0.0.1:{{closed}}
        zone: zone-b
  # Outlier detection ejects the refused endpoint after two connect
  # failures in a row. A cluster of its own: on probe_app it would also
  # eject the canary after two timeouts and starve the canary panels.
  - name: probe_outlier
    connect_timeout: 250ms
    outlier_detection:
      consecutive_gateway_failure: 2
      enforcing_consecutive_gateway_failure: 100
      interval: 1s
      base_ejection_time: 3s
      max_ejection_percent: 100
    endpoints:
      - address: 127.0.0.1:{{catalog}}
      - address: 127.0.0.1:{{closed}}
  - name: probe_local
    endpoints:
      - {address: 127.0.0.1:{{listen}}, zone: zone-a}
      - {address: 127.0.0.1:{{closed}}, zone: zone-b}
  # A third of the upstream hosts in zone-a against half of the local ones:
  # a share of requests stays local (sampled), the rest crosses zones.
  - name: probe_zoned
    common_lb_config: {zone_aware_lb_config: {min_cluster_size: 1}}
    endpoints:
      - {address: 127.0.0.1:{{catalog}}, zone: zone-a}
      - {address: 127.0.0.1:{{inventory}}, zone: zone-b}
      - {address: 127.0.0.1:{{inventory}}, zone: zone-b}
  # Two thirds in zone-a: everything stays local (all_directly).
  - name: probe_direct
    common_lb_config: {zone_aware_lb_config: {min_cluster_size: 1}}
    endpoints:
      - {address: 127.0.0.1:{{catalog}}, zone: zone-a}
      - {address: 127.0.0.1:{{catalog}}, zone: zone-a}
      - {address: 127.0.0.1:{{inventory}}, zone: zone-b}
  # Tiny circuit breakers: a concurrent burst waits for the one connection
  # (pending), overflows it, and is refused (UO).
  - name: probe_limited
    circuit_breakers: {max_connections: 1, max_pending_requests: 1, max_requests: 2, max_retries: 0}
    endpoints:
      - address: 127.0.0.1:{{catalog}}
  # Health checks: the catalog answers /healthz with 200 where 204 is
  # expected (failure) and the closed port refuses (network_failure).
  - name: probe_hc
    connect_timeout: 250ms
    health_checks:
      - timeout: 250ms
        interval: 500ms
        unhealthy_threshold: 1
        healthy_threshold: 1
        http_health_check:
          path: /healthz
          expected_statuses: [{start: 204, end: 205}]
    endpoints:
      - address: 127.0.0.1:{{catalog}}
      - address: 127.0.0.1:{{closed}}
`

func TestDashboardsLive(t *testing.T) {
	root := e2etest.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	testStart := time.Now()

	e2etest.PinnedBin(t, "prometheus") // before anything starts: the test needs it
	bin := e2etest.PipelineBinaries(t)
	wrapSink(t, bin)

	// The pipeline, plus 3 ports of our own: the probe's two listeners and
	// admin; and a refusing port for connection failures.
	base := e2etest.FreePortBlock(t, numPorts+3, offStatsd)
	probeListen, probeAdmin, probeMore := base+numPorts, base+numPorts+1, base+numPorts+2
	_, closedPort, err := net.SplitHostPort(e2etest.RefusingAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	e2etest.StartLocalPipeline(t, bin, base, "UP_LOAD_RATE=30", "UP_LOAD_DURATION=6m", "UP_JAEGER=0")
	port := func(off int) string { return strconv.Itoa(base + off) }

	// hopwatch's rules, as `make up` and the k8s Prometheus load them: the
	// rate, success and latency panels read their recorded series.
	rules, err := os.ReadFile(filepath.Join(e2etest.RepoRoot(t), "deploy", "rules", "hopwatch.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, promURL := e2etest.StartPrometheus(t, fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [hopwatch.rules.yml]\nscrape_configs:\n  - job_name: statsd-sink\n    static_configs:\n      - targets: ['127.0.0.1:%s']\n", port(offSinkWeb)),
		e2etest.PrometheusFile{Name: "hopwatch.rules.yml", Text: string(rules)})
	waitRulesEvaluated(ctx, t, promURL, 60*time.Second)

	targets, vars := loadDashboards(t)
	values := map[string]string{"__rate_interval": "20s", "__interval": "5s", "__range": "5m",
		"job": ".*", "instance": ".*", "envoy_cluster_name": ".*", "envoy_http_conn_manager_prefix": ".*", "datasource": "prometheus"}

	// Ordinary traffic only: what `make up` shows.
	checkOrdinary(ctx, t, promURL, targets, values)

	cfg := strings.NewReplacer("{{admin}}", strconv.Itoa(probeAdmin), "{{statsd}}", port(offStatsd), "{{listen}}", strconv.Itoa(probeListen),
		"{{catalog}}", port(offCatalogApp), "{{inventory}}", port(offInvApp), "{{closed}}", closedPort, "{{more}}", strconv.Itoa(probeMore)).Replace(probeConfig)
	cfgPath := filepath.Join(t.TempDir(), "probe.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	probe := e2etest.StartProcess(t, "probe proxy", nil, filepath.Join(bin, "hopwatch-proxy"), "-c", cfgPath)
	// SIGTERM first, so that the probe drains and flushes its stats.
	t.Cleanup(func() { probe.Terminate(40 * time.Second) })
	probe.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/ready", probeAdmin), 30*time.Second)

	drive(ctx, t, base, probeListen, probeMore)

	// Poll until every query that should have data has it, or time is up.
	var missing, unexpected []string
	e2etest.Settle(100*time.Second, 3*time.Second, func() bool {
		missing, unexpected = missing[:0], unexpected[:0]
		for _, tg := range targets {
			has, err := rangeHasData(ctx, promURL, lint.Substitute(tg.expr, values), testStart)
			if err != nil {
				t.Fatalf("%s: %v", tg.key, err)
			}
			reason, excused := cannotFeed[tg.key]
			switch {
			case !has && !excused:
				missing = append(missing, tg.key+": "+tg.expr)
			case has && excused:
				unexpected = append(unexpected, tg.key+" (listed: "+reason+")")
			}
		}
		for _, v := range vars {
			if n, err := labelValues(ctx, promURL, lint.Substitute(v.selector, values), v.label, testStart); err != nil {
				t.Fatalf("%s: %v", v.key, err)
			} else if n == 0 {
				missing = append(missing, v.key+": "+v.selector)
			}
		}
		return len(missing) == 0
	})
	recordPreviewData(ctx, t, root, promURL, values, testStart, func() { drive(ctx, t, base, probeListen, probeMore) })
	for _, m := range missing {
		t.Errorf("no data: %s", m)
	}
	for _, u := range unexpected {
		t.Errorf("returns data but is listed in cannotFeed; remove it from the list: %s", u)
	}
	checkListed(t, "cannotFeed", cannotFeed, targets)
	t.Logf("%d queries and %d variables checked against Prometheus; %d listed as cannot be fed yet", len(targets), len(vars), len(cannotFeed))
}

// checkOrdinary polls Prometheus while only the demo's load runs, until
// every query returns a series and every query not in staysZero has a
// value above 0, or time is up.
func checkOrdinary(ctx context.Context, t *testing.T, promURL string, targets []target, values map[string]string) {
	t.Helper()
	var noSeries, zero, moved []string
	var moving int
	e2etest.Settle(90*time.Second, 3*time.Second, func() bool {
		noSeries, zero, moved, moving = noSeries[:0], zero[:0], moved[:0], 0
		for _, tg := range targets {
			n, maxv, err := instant(ctx, promURL, lint.Substitute(tg.expr, values))
			if err != nil {
				t.Fatalf("%s: %v", tg.key, err)
			}
			reason, listed := staysZero[tg.key]
			_, either := fluctuates[tg.key]
			switch {
			case n == 0:
				noSeries = append(noSeries, tg.key+": "+tg.expr)
			case either:
			case maxv > 0 && listed:
				moved = append(moved, fmt.Sprintf("%s = %g (listed: %s)", tg.key, maxv, reason))
			case maxv > 0:
				moving++
			case !listed:
				zero = append(zero, tg.key+": "+tg.expr)
			}
		}
		return len(noSeries)+len(zero)+len(moved) == 0
	})
	for _, m := range noSeries {
		t.Errorf("ordinary traffic: no series: %s", m)
	}
	for _, m := range zero {
		t.Errorf("ordinary traffic: 0 but the demo's traffic should move it: %s", m)
	}
	for _, m := range moved {
		t.Errorf("ordinary traffic: above 0 but listed in staysZero; remove it from the list: %s", m)
	}
	checkListed(t, "staysZero", staysZero, targets)
	checkListed(t, "fluctuates", fluctuates, targets)
	for k := range staysZero {
		if _, ok := fluctuates[k]; ok {
			t.Errorf("%s is listed both in staysZero and in fluctuates", k)
		}
	}
	t.Logf("ordinary traffic: %d queries return a series; %d above 0, %d listed as staying at 0, %d may be either",
		len(targets), moving, len(staysZero), len(fluctuates))
}

// checkListed fails the test for every key of list that names no query
// of the dashboards, so that a renamed panel does not leave a dead entry.
func checkListed(t *testing.T, name string, list map[string]string, targets []target) {
	t.Helper()
	for k := range list {
		if !slices.ContainsFunc(targets, func(tg target) bool { return tg.key == k }) {
			t.Errorf("%s lists %s, which no dashboard has", name, k)
		}
	}
}

// instant runs expr at the current time and returns how many series came
// back and the largest value among them (NaN is not above 0).
func instant(ctx context.Context, promURL, expr string) (int, float64, error) {
	data, err := promGet(ctx, promURL+"/api/v1/query?"+url.Values{"query": {expr}}.Encode())
	if err != nil {
		return 0, 0, err
	}
	var m struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, 0, err
	}
	maxv := 0.0
	for _, r := range m.Result {
		s, _ := r.Value[1].(string)
		if v, err := strconv.ParseFloat(s, 64); err == nil && v > maxv {
			maxv = v
		}
	}
	return len(m.Result), maxv, nil
}

// fluctuates lists the queries that ordinary traffic moves now and then:
// they must return a series, but may be 0 or above at any instant.
var fluctuates = map[string]string{
	"hopwatch-proxy-overview/Active downstream requests/A": "a gauge of requests in flight at the instant of a flush: at 20 req/s of millisecond requests, sometimes one",
	"hopwatch-upstream-clusters/Pending requests/A":        "a gauge of requests waiting for a connection at the instant of a flush",
	"hopwatch-upstream-clusters/Upstream connections/B":    "new upstream connections: pooled keep-alive connections are reused, and only the odd close opens a new one",
}

// drive makes the conditions the panels are about happen.
func drive(ctx context.Context, t *testing.T, base, probeListen, probeMore int) {
	t.Helper()
	app := func(off int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", base+off, path) }
	// 5xx and retries: the catalog fails a third of its requests; its
	// sidecar and the probe retry them.
	resp, err := client.Post(app(offCatalogApp, "/demo/inject?error_rate=0.35"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	probeURL := fmt.Sprintf("http://127.0.0.1:%d/", probeListen)
	moreURL := fmt.Sprintf("http://127.0.0.1:%d/", probeMore)
	send := func(hdr map[string]string) {
		u := probeURL
		if hdr["x-probe"] != "" {
			u = moreURL
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	// Plain traffic over the probe: primary and canary hosts, two zones,
	// and the refused endpoint (connection failures, retried).
	var wg sync.WaitGroup
	// Zone-aware routing (sampled and cross-zone, and all directly), and
	// outlier ejection of the refused endpoint.
	for _, cluster := range []string{"zoned", "direct", "outlier"} {
		wg.Go(func() {
			for range 60 {
				send(map[string]string{"x-probe": cluster})
			}
		})
	}
	// Circuit breakers: six at once against one slow connection.
	for range 6 {
		wg.Go(func() {
			for range 8 {
				send(map[string]string{"x-probe": "limited", "x-demo-delay": "300ms", "x-demo-delay-at": "catalog"})
			}
		})
	}
	for w := range 3 {
		wg.Go(func() {
			for i := range 60 {
				hdr := map[string]string{}
				if (i+w)%10 == 0 {
					// Per-try and route timeouts: the catalog and inventory
					// answer after 2 s, beyond per_try_timeout and timeout.
					hdr = map[string]string{"x-demo-delay": "2s", "x-demo-delay-at": "catalog,inventory"}
				}
				send(hdr)
			}
		})
	}
	// Listener overflow: hold more connections than max_connections, once
	// the traffic above is done. Held while it runs, they could refuse
	// every connection of the plain workers, whose failures are instant:
	// under load the workers then burned through their requests inside the
	// hold and the probe_app panels (canary, timeouts) got no data.
	wg.Wait()
	var conns []net.Conn
	for range 8 {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(probeListen)), 2*time.Second)
		if err == nil {
			conns = append(conns, c)
		}
	}
	time.Sleep(time.Second)
	for _, c := range conns {
		_ = c.Close()
	}
	// The sink: a line that does not parse (sample errors, parse drops),
	// one over TCP (tcp connections), and more series of one metric than
	// its budget (cardinality overflow).
	statsd := net.JoinHostPort("127.0.0.1", strconv.Itoa(base+offStatsd))
	if c, err := net.Dial("udp", statsd); err == nil {
		_, _ = c.Write([]byte("dashboards_probe_bad_line_without_type\n"))
		var b bytes.Buffer
		for i := range sinkSeriesBudget + 50 {
			fmt.Fprintf(&b, "dashboards_probe_cardinality:1|c|#probe:%d\n", i)
			if b.Len() > 1200 {
				_, _ = c.Write(b.Bytes())
				b.Reset()
				time.Sleep(200 * time.Microsecond)
			}
		}
		_, _ = c.Write(b.Bytes())
		_ = c.Close()
	}
	if c, err := net.Dial("tcp", statsd); err == nil {
		_, _ = c.Write([]byte("dashboards_probe_tcp:1|c\n"))
		_ = c.Close()
	}
	wg.Wait()
}

type target struct{ key, expr string }
type variable struct{ key, selector, label string }

var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// loadDashboards reads every committed dashboard's queries and variables.
func loadDashboards(t *testing.T) ([]target, []variable) {
	t.Helper()
	var ts []target
	var vs []variable
	for _, d := range e2etest.GeneratedDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				expr := tg.Expr
				if tg.Exemplar {
					// A latency panel's exemplar query draws nothing
					// (dashboards.exemplarsOf: "<buckets> < 0"); its
					// buckets, whose exemplars Grafana shows, must have
					// data. e2e/exemplars proves the exemplars.
					var ok bool
					if expr, ok = strings.CutSuffix(expr, " < 0"); !ok {
						t.Fatalf("%s/%s/%s: exemplar query %q is not \"<buckets> < 0\"", d.UID, p.Title, tg.RefID, tg.Expr)
					}
				}
				ts = append(ts, target{key: d.UID + "/" + p.Title + "/" + tg.RefID, expr: expr})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValuesRE.FindStringSubmatch(v.QueryString())
			if m == nil {
				t.Fatalf("%s: variable %s: query %q is not label_values(selector, label)", d.UID, v.Name, v.QueryString())
			}
			vs = append(vs, variable{key: d.UID + "/$" + v.Name, selector: m[1], label: m[2]})
		}
	}
	return ts, vs
}

type apiResponse struct {
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Data   json.RawMessage `json:"data"`
}

func promGet(ctx context.Context, u string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", u, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus rejected %s: %s", u, r.Error)
	}
	return r.Data, nil
}

// rangeHasData runs expr as a range query since the test started and
// reports whether any series came back.
func rangeHasData(ctx context.Context, promURL, expr string, since time.Time) (bool, error) {
	q := url.Values{"query": {expr}, "start": {strconv.FormatInt(since.Unix(), 10)},
		"end": {strconv.FormatInt(time.Now().Unix(), 10)}, "step": {"2"}}
	data, err := promGet(ctx, promURL+"/api/v1/query_range?"+q.Encode())
	if err != nil {
		return false, err
	}
	var m struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return false, err
	}
	return len(m.Result) > 0, nil
}

// labelValues is what Grafana runs for label_values(selector, label).
func labelValues(ctx context.Context, promURL, selector, label string, since time.Time) (int, error) {
	q := url.Values{"match[]": {selector}, "start": {strconv.FormatInt(since.Unix(), 10)}, "end": {strconv.FormatInt(time.Now().Unix(), 10)}}
	data, err := promGet(ctx, promURL+"/api/v1/label/"+label+"/values?"+q.Encode())
	if err != nil {
		return 0, err
	}
	var vals []string
	if err := json.Unmarshal(data, &vals); err != nil {
		return 0, err
	}
	return len(vals), nil
}

// waitRulesEvaluated waits until Prometheus has loaded hopwatch's rule
// groups and evaluated each at least once, so that the panels reading
// recorded series are not judged before there is anything to read.
func waitRulesEvaluated(ctx context.Context, t *testing.T, promURL string, d time.Duration) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		data, err := promGet(ctx, promURL+"/api/v1/rules")
		if err != nil {
			last = err.Error()
			continue
		}
		var r struct {
			Groups []struct {
				Name           string    `json:"name"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("prometheus /api/v1/rules: %v", err)
		}
		var pending []string
		for _, g := range r.Groups {
			if g.LastEvaluation.IsZero() || g.LastEvaluation.Year() < 2000 {
				pending = append(pending, g.Name)
			}
		}
		switch {
		case len(r.Groups) == 0:
			last = "no rule groups loaded"
		case len(pending) > 0:
			last = "not evaluated yet: " + strings.Join(pending, ", ")
		default:
			return
		}
	}
	t.Fatalf("prometheus did not evaluate deploy/rules/hopwatch.rules.yml within %v: %s", d, last)
}
