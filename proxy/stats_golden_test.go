package proxy_test

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// This file proves the proxy's per-hop stats end to end: a real proxy, real
// Go upstreams, a real UDP socket as the StatsD sink and the real admin
// /stats/prometheus. The traffic is scripted, and every expected value is
// derived from the script by Envoy's rules (written out below, separately
// from the store's own renderer), never from what the proxy emitted.

// envoyBuckets are Envoy's default histogram bounds in milliseconds.
var envoyBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// statsGoldenConfig has one edge listener with a route per scenario, a
// second listener with a connection limit of 2, a live cluster and a cluster
// whose only endpoint refuses connections.
var statsGoldenConfig = testHead + `stats_config: {flush_interval: 200ms}
stats_sinks:
  - type: {{SINK_TYPE}}
    address: "{{SINK}}"
    histograms: {{HISTOGRAMS}}
    max_bytes_per_datagram: 512
` + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}", format: json}]`) + `
          - match: {path: /direct}
            direct_response: {status: 200, body: "direct"}
          - match: {prefix: /slow}
            route: {cluster: backend, timeout: 300ms}
          - match: {prefix: /down}
            route:
              cluster: down
              retry_policy:
                retry_on: [connect-failure]
                num_retries: 1
                retry_back_off: {base_interval: 5ms, max_interval: 20ms}
          - match: {prefix: /b/}
            route:
              cluster: backend
              retry_policy:
                retry_on: [5xx]
                num_retries: 1
                retry_back_off: {base_interval: 5ms, max_interval: 20ms}
` + listenerHead("limited", "limited_http", `limits: {max_connections: 2}`, `access_log: [{path: "{{LOG}}", format: json}]`) + ` [{match: {prefix: /}, direct_response: {status: 200}}]
clusters:
  - name: backend
    endpoints: [{address: "{{UP}}"}]
  - name: down
    connect_timeout: 1s
    endpoints: [{address: "{{DEAD}}"}]
`

// trafficScript counts what the test sends. Every expectation is a linear
// function of it, so two bursts add up.
type trafficScript struct {
	ok       int // GET /b/ok: upstream 200
	notFound int // GET /b/notfound: upstream 404
	flaky    int // GET /b/flaky: upstream 503, retried, then 200
	fail     int // GET /b/fail: upstream 503 twice, retries exhausted (URX)
	timeout  int // GET /slow: route timeout, 504 UT
	down     int // GET /down: connection refused twice, 503 UF,URX
	direct   int // GET /direct: direct response 200
	noRoute  int // GET /nowhere: 404 NR
	held     int // connections held open on the limited listener
	overflow int // connections refused by its max_connections
}

func (s trafficScript) plus(o trafficScript) trafficScript {
	return trafficScript{s.ok + o.ok, s.notFound + o.notFound, s.flaky + o.flaky, s.fail + o.fail, s.timeout + o.timeout,
		s.down + o.down, s.direct + o.direct, s.noRoute + o.noRoute, s.held + o.held, s.overflow + o.overflow}
}

// requests is the number of requests on the ingress listener.
func (s trafficScript) requests() int {
	return s.ok + s.notFound + s.flaky + s.fail + s.timeout + s.down + s.direct + s.noRoute
}

// series is one stat in its three renderings, built by Envoy's tag
// extraction rules: the flat name, the tag-extracted name and its tags in
// extraction order.
type series struct {
	flat string
	ext  string
	tags [][2]string
}

// key is how the sink names the stat: the flat name for plain StatsD, the
// tag-extracted name with "|#tags" for DogStatsD.
func (s series) key(dog bool) string {
	if !dog {
		return s.flat
	}
	return s.ext + "|#" + s.dogTags()
}

func (s series) dogTags() string {
	var b strings.Builder
	for i, t := range s.tags {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t[0] + ":" + t[1])
	}
	return b.String()
}

// promKey is the Prometheus series: envoy_<ext with '.' as '_'> and the
// tags as labels sorted by name.
func (s series) promKey() string {
	labels := make([]string, 0, len(s.tags))
	for _, t := range s.tags {
		labels = append(labels, strings.ReplaceAll(t[0], ".", "_")+"="+strconv.Quote(t[1]))
	}
	slices.Sort(labels)
	return "envoy_" + strings.ReplaceAll(s.ext, ".", "_") + "{" + strings.Join(labels, ",") + "}"
}

const (
	tagCluster  = "envoy.cluster_name"
	tagCode     = "envoy.response_code"
	tagClass    = "envoy.response_code_class"
	tagHCM      = "envoy.http_conn_manager_prefix"
	tagListener = "envoy.listener_address"
)

func clusterStat(c, stat string) series {
	return series{"cluster." + c + "." + stat, "cluster." + stat, [][2]string{{tagCluster, c}}}
}

// clusterCode is cluster.<c>.<scope>upstream_rq_<code>; scope is "" or "retry.".
func clusterCode(c, scope string, code int) series {
	return series{fmt.Sprintf("cluster.%s.%supstream_rq_%d", c, scope, code), "cluster." + scope + "upstream_rq",
		[][2]string{{tagCode, strconv.Itoa(code)}, {tagCluster, c}}}
}

func clusterClass(c, scope string, class int) series {
	return series{fmt.Sprintf("cluster.%s.%supstream_rq_%dxx", c, scope, class), "cluster." + scope + "upstream_rq_xx",
		[][2]string{{tagClass, strconv.Itoa(class)}, {tagCluster, c}}}
}

func httpStat(prefix, stat string) series {
	return series{"http." + prefix + "." + stat, "http." + stat, [][2]string{{tagHCM, prefix}}}
}

func httpClass(prefix string, class int) series {
	return series{fmt.Sprintf("http.%s.downstream_rq_%dxx", prefix, class), "http.downstream_rq_xx",
		[][2]string{{tagClass, strconv.Itoa(class)}, {tagHCM, prefix}}}
}

// listenerStat takes the address as Envoy names it (':' made '_').
func listenerStat(addr, stat string) series {
	return series{"listener." + addr + "." + stat, "listener." + stat, [][2]string{{tagListener, addr}}}
}

func listenerHTTPStat(addr, prefix, stat string) series {
	return series{"listener." + addr + ".http." + prefix + "." + stat, "listener.http." + stat,
		[][2]string{{tagHCM, prefix}, {tagListener, addr}}}
}

func listenerHTTPClass(addr, prefix string, class int) series {
	return series{fmt.Sprintf("listener.%s.http.%s.downstream_rq_%dxx", addr, prefix, class), "listener.http.downstream_rq_xx",
		[][2]string{{tagClass, strconv.Itoa(class)}, {tagHCM, prefix}, {tagListener, addr}}}
}

// valued is a series with its expected value.
type valued struct {
	s series
	v uint64
}

// goldenAddrs are the listener addresses as they appear in stat names.
type goldenAddrs struct{ ingress, limited string }

// expectedCounters derives every counter the script moves in the driven
// scopes (clusters backend and down, both connection managers, both
// listeners), except the nondeterministic ones (see variableCounters).
// Zero values are left out: the flusher skips counters that did not move.
func expectedCounters(s trafficScript, a goldenAddrs) []valued {
	q := uint64(s.requests())
	u := func(n int) uint64 { return uint64(n) }
	class2 := u(s.ok + s.flaky + s.direct)
	class4 := u(s.notFound + s.noRoute)
	class5 := u(s.fail + s.timeout + s.down)
	all := []valued{
		// Connection manager: one connection per request (the client
		// does not keep connections alive).
		{httpStat("ingress_http", "downstream_cx_total"), q},
		{httpStat("ingress_http", "downstream_cx_http1_total"), q},
		{httpStat("ingress_http", "downstream_cx_destroy"), q},
		// The client asks to close (Connection: close): the proxy closes
		// each connection after its response.
		{httpStat("ingress_http", "downstream_cx_destroy_local"), q},
		{httpStat("ingress_http", "downstream_rq_total"), q},
		{httpStat("ingress_http", "downstream_rq_http1_total"), q},
		{httpStat("ingress_http", "downstream_rq_completed"), q},
		{httpClass("ingress_http", 2), class2},
		{httpClass("ingress_http", 4), class4},
		{httpClass("ingress_http", 5), class5},
		{httpStat("ingress_http", "no_route"), u(s.noRoute)},
		{httpStat("ingress_http", "rq_direct_response"), u(s.direct)},
		{listenerStat(a.ingress, "downstream_cx_total"), q},
		{listenerStat(a.ingress, "downstream_cx_destroy"), q},
		{listenerHTTPStat(a.ingress, "ingress_http", "downstream_rq_completed"), q},
		{listenerHTTPClass(a.ingress, "ingress_http", 2), class2},
		{listenerHTTPClass(a.ingress, "ingress_http", 4), class4},
		{listenerHTTPClass(a.ingress, "ingress_http", 5), class5},

		// The limited listener: held connections never send a request.
		{listenerStat(a.limited, "downstream_cx_total"), u(s.held)},
		{listenerStat(a.limited, "downstream_cx_destroy"), u(s.held)},
		{listenerStat(a.limited, "downstream_cx_overflow"), u(s.overflow)},
		{httpStat("limited_http", "downstream_cx_total"), u(s.held)},
		{httpStat("limited_http", "downstream_cx_destroy"), u(s.held)},
		{httpStat("limited_http", "downstream_cx_destroy_remote"), u(s.held)},

		// backend: flaky and fail make two attempts each. A retried
		// response counts only under retry.; the 504 the proxy answers
		// for a route timeout is charged to the cluster, as in Envoy.
		{clusterStat("backend", "upstream_rq_total"), u(s.ok + s.notFound + 2*s.flaky + 2*s.fail + s.timeout)},
		{clusterStat("backend", "upstream_rq_completed"), u(s.ok + s.notFound + s.flaky + s.fail + s.timeout)},
		{clusterCode("backend", "", 200), u(s.ok + s.flaky)},
		{clusterCode("backend", "", 404), u(s.notFound)},
		{clusterCode("backend", "", 503), u(s.fail)},
		{clusterCode("backend", "", 504), u(s.timeout)},
		{clusterClass("backend", "", 2), u(s.ok + s.flaky)},
		{clusterClass("backend", "", 4), u(s.notFound)},
		{clusterClass("backend", "", 5), u(s.fail + s.timeout)},
		{clusterCode("backend", "retry.", 503), u(s.flaky + s.fail)},
		{clusterClass("backend", "retry.", 5), u(s.flaky + s.fail)},
		{clusterStat("backend", "upstream_rq_retry"), u(s.flaky + s.fail)},
		{clusterStat("backend", "upstream_rq_retry_success"), u(s.flaky)},
		{clusterStat("backend", "upstream_rq_retry_limit_exceeded"), u(s.fail)},
		{clusterStat("backend", "upstream_rq_timeout"), u(s.timeout)},

		// down: both attempts fail to connect; the 503 UF is charged.
		{clusterStat("down", "upstream_rq_total"), u(2 * s.down)},
		{clusterStat("down", "upstream_cx_connect_fail"), u(2 * s.down)},
		// Each attempt waits for its (failing) connection: pending.
		{clusterStat("down", "upstream_rq_pending_total"), u(2 * s.down)},
		{clusterStat("down", "upstream_rq_retry"), u(s.down)},
		{clusterStat("down", "upstream_rq_retry_limit_exceeded"), u(s.down)},
		{clusterStat("down", "upstream_rq_completed"), u(s.down)},
		{clusterCode("down", "", 503), u(s.down)},
		{clusterClass("down", "", 5), u(s.down)},
	}
	out := all[:0]
	for _, v := range all {
		if v.v != 0 {
			out = append(out, v)
		}
	}
	return out
}

// variableCounters are counters in the driven scopes whose values the
// script does not fix: how many upstream connections Go's transport dials
// (a dial may race with a connection going back to the pool), and byte
// counts (they include Date headers and generated request IDs). They must
// be non-zero and agree between the sink and /stats/prometheus.
func variableCounters() []series {
	return []series{
		clusterStat("backend", "upstream_cx_total"),
		// A request is pending while its connection is dialed.
		clusterStat("backend", "upstream_rq_pending_total"),
		httpStat("ingress_http", "downstream_cx_rx_bytes_total"),
		httpStat("ingress_http", "downstream_cx_tx_bytes_total"),
		clusterStat("backend", "upstream_cx_http1_total"),
		clusterStat("backend", "upstream_cx_rx_bytes_total"),
		clusterStat("backend", "upstream_cx_tx_bytes_total"),
	}
}

// freeCounters may have any value, zero included: whether Go's transport
// has closed a pooled upstream connection by the time of a flush (after a
// timed-out request, say) depends on scheduling. They must still agree
// between the sink and /stats/prometheus.
func freeCounters() []series {
	return []series{
		clusterStat("backend", "upstream_cx_destroy"),
		clusterStat("backend", "upstream_cx_destroy_local"),
		clusterStat("backend", "upstream_cx_destroy_remote"),
	}
}

// expectedHistograms are the sample counts of the histograms the script
// records into (upstream_cx_connect_ms is checked against
// upstream_cx_total instead).
func expectedHistograms(s trafficScript, a goldenAddrs) []valued {
	q := uint64(s.requests())
	all := []valued{
		// Only responses that came from the upstream have a service time.
		{clusterStat("backend", "upstream_rq_time"), uint64(s.ok + s.notFound + s.flaky + s.fail)},
		{httpStat("ingress_http", "downstream_rq_time"), q},
		{httpStat("ingress_http", "downstream_cx_length_ms"), q},
		{listenerStat(a.ingress, "downstream_cx_length_ms"), q},
		{listenerStat(a.limited, "downstream_cx_length_ms"), uint64(s.held)},
		{httpStat("limited_http", "downstream_cx_length_ms"), uint64(s.held)},
	}
	out := all[:0]
	for _, v := range all {
		if v.v != 0 {
			out = append(out, v)
		}
	}
	return out
}

// expectedGauges are the gauges once the traffic has settled: nothing
// active, one member per cluster.
func expectedGauges(a goldenAddrs) []valued {
	return []valued{
		{clusterStat("backend", "membership_total"), 1},
		{clusterStat("backend", "membership_healthy"), 1},
		{clusterStat("down", "membership_total"), 1},
		{clusterStat("down", "membership_healthy"), 1},
		{clusterStat("backend", "upstream_rq_active"), 0},
		{clusterStat("down", "upstream_rq_active"), 0},
		{httpStat("ingress_http", "downstream_rq_active"), 0},
		{httpStat("ingress_http", "downstream_cx_active"), 0},
		{httpStat("ingress_http", "downstream_cx_http1_active"), 0},
		{httpStat("limited_http", "downstream_cx_active"), 0},
		{listenerStat(a.ingress, "downstream_cx_active"), 0},
		{listenerStat(a.limited, "downstream_cx_active"), 0},
	}
}

// statsdReceiver is a real UDP socket that keeps every datagram.
type statsdReceiver struct {
	pc        net.PacketConn
	mu        sync.Mutex
	datagrams []string
}

func newStatsdReceiver(t testing.TB) *statsdReceiver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A loaded machine may not schedule the reader for a while; a large
	// buffer keeps the kernel from dropping datagrams meanwhile.
	_ = pc.(*net.UDPConn).SetReadBuffer(8 << 20)
	r := &statsdReceiver{pc: pc}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.datagrams = append(r.datagrams, string(buf[:n]))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return r
}

func (r *statsdReceiver) addr() string { return r.pc.LocalAddr().String() }

// from returns the datagrams received since index i, and the next index.
func (r *statsdReceiver) from(i int) ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.datagrams[i:]), len(r.datagrams)
}

// statsdLine is one parsed line: <prefix>.<name>:<value>|<type>[|@<rate>][|#<tags>].
type statsdLine struct {
	name, value, typ, rate, tags string
}

func (l statsdLine) key() string {
	if l.tags == "" {
		return l.name
	}
	return l.name + "|#" + l.tags
}

func parseStatsdLine(line, prefix string) (statsdLine, error) {
	var l statsdLine
	rest, ok := strings.CutPrefix(line, prefix+".")
	if !ok {
		return l, fmt.Errorf("line %q does not start with %q", line, prefix+".")
	}
	name, rest, ok := strings.Cut(rest, ":")
	if !ok || name == "" {
		return l, fmt.Errorf("line %q has no name:value", line)
	}
	parts := strings.Split(rest, "|")
	if len(parts) < 2 || parts[0] == "" {
		return l, fmt.Errorf("line %q has no value|type", line)
	}
	l.name, l.value, l.typ = name, parts[0], parts[1]
	for _, p := range parts[2:] {
		switch {
		case strings.HasPrefix(p, "@") && l.rate == "" && l.tags == "":
			l.rate = p[1:]
		case strings.HasPrefix(p, "#") && l.tags == "":
			l.tags = p[1:]
		default:
			return l, fmt.Errorf("line %q: unexpected field %q", line, p)
		}
	}
	return l, nil
}

// decodedHist is a histogram rebuilt from sink lines, as a receiver with
// the same bucket bounds rebuilds it.
type decodedHist struct {
	counts []uint64 // per bucket, the last one +Inf
	count  uint64
	sum    float64
}

func (h *decodedHist) add(v float64, c uint64) {
	i := len(envoyBuckets)
	for j, b := range envoyBuckets {
		if v <= b {
			i = j
			break
		}
	}
	h.counts[i] += c
	h.count += c
	h.sum += v * float64(c)
}

// received is what the sink got, summed: counters as the sum of their
// deltas, gauges as their last value, histograms rebuilt, and every raw
// line.
type received struct {
	counters map[string]uint64
	gauges   map[string]string
	hists    map[string]*decodedHist
	lines    map[string]bool
}

// decodeDatagrams parses datagrams; every one must respect maxBytes and
// every line must parse, so a split or truncated line is an error.
func decodeDatagrams(datagrams []string, prefix string, maxBytes int) (*received, error) {
	r := &received{counters: map[string]uint64{}, gauges: map[string]string{}, hists: map[string]*decodedHist{}, lines: map[string]bool{}}
	for _, d := range datagrams {
		if len(d) > maxBytes {
			return nil, fmt.Errorf("datagram of %d bytes exceeds max_bytes_per_datagram %d", len(d), maxBytes)
		}
		for _, line := range strings.Split(d, "\n") {
			l, err := parseStatsdLine(line, prefix)
			if err != nil {
				return nil, err
			}
			r.lines[line] = true
			switch l.typ {
			case "c":
				n, err := strconv.ParseUint(l.value, 10, 64)
				if err != nil || l.rate != "" {
					return nil, fmt.Errorf("counter line %q: want an unsampled whole delta", line)
				}
				r.counters[l.key()] += n
			case "g":
				if _, err := strconv.ParseUint(l.value, 10, 64); err != nil || l.rate != "" {
					return nil, fmt.Errorf("gauge line %q: want an unsampled whole value", line)
				}
				r.gauges[l.key()] = l.value
			case "ms":
				v, err := strconv.ParseFloat(l.value, 64)
				if err != nil || v < 0 {
					return nil, fmt.Errorf("timer line %q: bad value", line)
				}
				c := uint64(1)
				if l.rate != "" {
					rate, err := strconv.ParseFloat(l.rate, 64)
					if err != nil || rate <= 0 || rate > 1 {
						return nil, fmt.Errorf("timer line %q: bad sample rate", line)
					}
					c = uint64(1 / rate) // what statsd_exporter replays
				}
				h := r.hists[l.key()]
				if h == nil {
					h = &decodedHist{counts: make([]uint64, len(envoyBuckets)+1)}
					r.hists[l.key()] = h
				}
				h.add(v, c)
			default:
				return nil, fmt.Errorf("line %q: unexpected type %q", line, l.typ)
			}
		}
	}
	return r, nil
}

// drivenScope reports whether a sink key or Prometheus series belongs to
// the stats the script drives (not server.*, statsd.* or stats.*).
func drivenScope(name string) bool {
	return strings.HasPrefix(name, "cluster.") || strings.HasPrefix(name, "http.") || strings.HasPrefix(name, "listener.") ||
		strings.HasPrefix(name, "envoy_cluster_") || strings.HasPrefix(name, "envoy_http_") || strings.HasPrefix(name, "envoy_listener_")
}

// promSnapshot is /stats/prometheus parsed by the Prometheus text parser,
// keyed by series (name{sorted labels}).
type promSnapshot struct {
	counters map[string]float64
	gauges   map[string]float64
	hists    map[string]*dto.Histogram
}

func scrapePrometheus(url string) (*promSnapshot, error) {
	res, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, res.Status, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		return nil, fmt.Errorf("GET %s: Content-Type %q, want Prometheus text format 0.0.4", url, ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("the Prometheus text parser rejects /stats/prometheus: %w", err)
	}
	snap := &promSnapshot{counters: map[string]float64{}, gauges: map[string]float64{}, hists: map[string]*dto.Histogram{}}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				snap.counters[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				snap.gauges[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				snap.hists[key] = m.GetHistogram()
			default:
				return nil, fmt.Errorf("%s: unexpected type %v", key, f.GetType())
			}
		}
	}
	return snap, nil
}

// compareHist checks that a histogram rebuilt from sink lines is exactly
// the one Prometheus shows: every cumulative bucket, the count, and the
// sum within float rounding.
func compareHist(name string, got *decodedHist, p *dto.Histogram) []string {
	var probs []string
	if p == nil {
		return []string{name + ": missing from /stats/prometheus"}
	}
	if p.GetSampleCount() != got.count {
		probs = append(probs, fmt.Sprintf("%s: sink rebuilt count %d, /stats/prometheus shows %d", name, got.count, p.GetSampleCount()))
	}
	if diff := math.Abs(p.GetSampleSum() - got.sum); diff > 1e-9*math.Max(1, math.Abs(p.GetSampleSum())) {
		probs = append(probs, fmt.Sprintf("%s: sink rebuilt sum %v, /stats/prometheus shows %v", name, got.sum, p.GetSampleSum()))
	}
	bs := p.GetBucket()
	if n := len(bs); n > 0 && math.IsInf(bs[n-1].GetUpperBound(), 1) {
		// The parser keeps the le="+Inf" bucket, which is the count.
		if bs[n-1].GetCumulativeCount() != got.count {
			probs = append(probs, fmt.Sprintf("%s: le=+Inf bucket %d, sink rebuilt count %d", name, bs[n-1].GetCumulativeCount(), got.count))
		}
		bs = bs[:n-1]
	}
	if len(bs) != len(envoyBuckets) {
		return append(probs, fmt.Sprintf("%s: %d buckets in /stats/prometheus, want Envoy's %d", name, len(bs), len(envoyBuckets)))
	}
	var cum uint64
	for i, b := range bs {
		cum += got.counts[i]
		if b.GetUpperBound() != envoyBuckets[i] {
			probs = append(probs, fmt.Sprintf("%s: bucket %d has le=%v, want %v", name, i, b.GetUpperBound(), envoyBuckets[i]))
		}
		if b.GetCumulativeCount() != cum {
			probs = append(probs, fmt.Sprintf("%s: bucket le=%v: sink rebuilt %d, /stats/prometheus shows %d", name, envoyBuckets[i], cum, b.GetCumulativeCount()))
		}
	}
	return probs
}

// goldenRun is one proxy with one sink under test.
type goldenRun struct {
	t      *testing.T
	h      *harness
	rx     *statsdReceiver
	dog    bool
	addrs  goldenAddrs
	client *http.Client
}

func TestStatsGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sinkType, histograms string
	}{
		{"statsd", "timer"},
		{"dogstatsd", "timer"},
		{"statsd", "compact"},
		{"dogstatsd", "compact"},
	} {
		t.Run(tc.sinkType+"/"+tc.histograms, func(t *testing.T) {
			t.Parallel()
			runStatsGolden(t, tc.sinkType, tc.histograms)
		})
	}
}

func runStatsGolden(t *testing.T, sinkType, histograms string) {
	rx := newStatsdReceiver(t)
	up := goldenUpstream(t)
	h := startProxy(t, statsGoldenConfig, "{{SINK_TYPE}}", sinkType, "{{SINK}}", rx.addr(), "{{HISTOGRAMS}}", histograms,
		"{{UP}}", up, "{{DEAD}}", closedPort(t))
	name := func(listener string) string {
		return strings.ReplaceAll(h.srv.ListenerAddr(listener).String(), ":", "_")
	}
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	g := &goldenRun{t: t, h: h, rx: rx, dog: sinkType == "dogstatsd",
		addrs:  goldenAddrs{ingress: name("ingress"), limited: name("limited")},
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}

	// Phase 1: the whole script. Sums over every datagram are totals.
	first := trafficScript{ok: 5, notFound: 3, flaky: 2, fail: 2, timeout: 2, down: 2, direct: 2, noRoute: 2, held: 2, overflow: 3}
	g.drive(first)
	g.settle("first burst", 0, first, first, histograms == "compact")

	// Phase 2: after the first burst was flushed, a second one must arrive
	// as deltas: the datagrams since then sum to the second burst alone.
	_, mark := rx.from(0)
	second := trafficScript{ok: 3, notFound: 1, noRoute: 1}
	g.drive(second)
	g.settle("second burst", mark, second, first.plus(second), histograms == "compact")
}

// goldenUpstream serves the script's upstream behaviours.
func goldenUpstream(t *testing.T) string {
	var mu sync.Mutex
	seen := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("/b/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/b/notfound", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/b/flaky", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		rid := r.Header.Get("X-Request-Id")
		seen[rid]++
		n := seen[rid]
		mu.Unlock()
		if n == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok on retry")
	})
	mux.HandleFunc("/b/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "always failing", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select { // until the proxy's route timeout cancels the request
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// drive sends the script's traffic, checking every response.
func (g *goldenRun) drive(s trafficScript) {
	t := g.t
	t.Helper()
	send := func(n int, path string, want int) {
		for range n {
			res, err := g.client.Get(g.h.url("ingress", path))
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != want {
				t.Fatalf("GET %s: status %d, want %d", path, res.StatusCode, want)
			}
		}
	}
	send(s.ok, "/b/ok", 200)
	send(s.notFound, "/b/notfound", 404)
	send(s.flaky, "/b/flaky", 200)
	send(s.fail, "/b/fail", 503)
	send(s.timeout, "/slow", 504)
	send(s.down, "/down", 503)
	send(s.direct, "/direct", 200)
	send(s.noRoute, "/nowhere", 404)

	if s.held == 0 && s.overflow == 0 {
		return
	}
	// Connections are accepted in the order they were made, so the held
	// ones fill the limit before the next ones arrive.
	addr := g.h.srv.ListenerAddr("limited").String()
	var held []net.Conn
	for range s.held {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for i := range s.overflow {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// The proxy closes a refused connection at once: the read ends.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
			t.Fatalf("overflow connection %d: read %d bytes, err %v; want the proxy to close it", i, n, err)
		}
		c.Close()
	}
	for _, c := range held {
		c.Close()
	}
}

// settle polls until the sink and /stats/prometheus show what the script
// predicts, then returns; on a generous deadline it fails with every
// difference. burst is the traffic since datagram index mark (the deltas
// expected there); total is all traffic so far (what Prometheus shows).
func (g *goldenRun) settle(what string, mark int, burst, total trafficScript, compact bool) {
	t := g.t
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var probs []string
	for {
		probs = g.check(mark, burst, total, compact)
		if len(probs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if testing.Verbose() {
		all, _ := g.rx.from(0)
		t.Logf("every datagram received:\n%s", strings.Join(all, "\n--\n"))
	}
	t.Fatalf("%s: the sink and /stats/prometheus never showed the expected stats (-v prints the datagrams):\n  %s",
		what, strings.Join(probs, "\n  "))
}

// check returns every difference between what was received (since mark,
// and in total), what /stats/prometheus shows, and the script.
func (g *goldenRun) check(mark int, burst, total trafficScript, compact bool) []string {
	var probs []string
	allDgrams, _ := g.rx.from(0)
	sinceDgrams, _ := g.rx.from(mark)
	all, err := decodeDatagrams(allDgrams, "envoy", 512)
	if err != nil {
		return []string{err.Error()}
	}
	since, err := decodeDatagrams(sinceDgrams, "envoy", 512)
	if err != nil {
		return []string{err.Error()}
	}
	prom, err := scrapePrometheus(g.h.adminURL("/stats/prometheus"))
	if err != nil {
		return []string{err.Error()}
	}
	// Lines are batched: a flush of dozens of lines must not go out one
	// line per datagram (decodeDatagrams already checked the size limit).
	if !slices.ContainsFunc(allDgrams, func(d string) bool { return strings.Count(d, "\n") >= 5 }) {
		probs = append(probs, "no datagram batches several lines")
	}

	// (a) The exact set of counters in the driven scopes, each summed over
	// the datagrams since mark: the burst's deltas.
	want := map[string]uint64{}
	for _, v := range expectedCounters(burst, g.addrs) {
		want[v.s.key(g.dog)] = v.v
	}
	variable := map[string]series{}
	for _, s := range variableCounters() {
		variable[s.key(g.dog)] = s
	}
	free := map[string]series{}
	for _, s := range freeCounters() {
		free[s.key(g.dog)] = s
	}
	for k, v := range since.counters {
		if _, ok := variable[k]; ok || !drivenScope(k) {
			continue
		}
		if _, ok := free[k]; ok {
			continue
		}
		if want[k] != v {
			probs = append(probs, fmt.Sprintf("sink counter %s: deltas sum to %d, want %d", k, v, want[k]))
		}
	}
	for k, v := range want {
		if _, ok := since.counters[k]; !ok {
			probs = append(probs, fmt.Sprintf("sink counter %s: never received, want %d", k, v))
		}
	}

	// Histograms: sample counts since mark, from the script.
	wantH := map[string]uint64{}
	for _, v := range expectedHistograms(burst, g.addrs) {
		wantH[v.s.key(g.dog)] = v.v
	}
	connectMs := clusterStat("backend", "upstream_cx_connect_ms").key(g.dog)
	// Upstream connection lifetimes are recorded when Go's transport closes
	// a pooled connection, which the script does not control.
	cxLength := clusterStat("backend", "upstream_cx_length_ms")
	for k, h := range since.hists {
		if !drivenScope(k) || k == connectMs || k == cxLength.key(g.dog) {
			continue
		}
		if wantH[k] != h.count {
			probs = append(probs, fmt.Sprintf("sink histogram %s: %d samples, want %d", k, h.count, wantH[k]))
		}
	}
	for k, v := range wantH {
		if _, ok := since.hists[k]; !ok {
			probs = append(probs, fmt.Sprintf("sink histogram %s: never received, want %d samples", k, v))
		}
	}
	if len(probs) > 0 {
		return probs // the traffic has not been flushed yet
	}

	// Gauges, absolute, exactly as the sink writes them.
	for _, v := range expectedGauges(g.addrs) {
		line := "envoy." + v.s.flat + ":" + strconv.FormatUint(v.v, 10) + "|g"
		if g.dog {
			line = "envoy." + v.s.ext + ":" + strconv.FormatUint(v.v, 10) + "|g|#" + v.s.dogTags()
		}
		if got := all.gauges[v.s.key(g.dog)]; got != strconv.FormatUint(v.v, 10) || !all.lines[line] {
			probs = append(probs, fmt.Sprintf("sink gauge: want the line %q, last value received %q", line, got))
		}
		if got, ok := prom.gauges[v.s.promKey()]; !ok || got != float64(v.v) {
			probs = append(probs, fmt.Sprintf("/stats/prometheus gauge %s = %v (present %v), want %d", v.s.promKey(), got, ok, v.v))
		}
	}

	// (b) /stats/prometheus: exactly the script's totals for every
	// non-zero counter in the driven scopes.
	wantP := map[string]uint64{}
	for _, v := range expectedCounters(total, g.addrs) {
		wantP[v.s.promKey()] = v.v
	}
	variableP := map[string]series{}
	for _, s := range variable {
		variableP[s.promKey()] = s
	}
	for _, s := range free {
		variableP[s.promKey()] = s
	}
	for k, v := range prom.counters {
		if _, ok := variableP[k]; ok || !drivenScope(k) || v == 0 {
			continue
		}
		if float64(wantP[k]) != v {
			probs = append(probs, fmt.Sprintf("/stats/prometheus counter %s = %v, want %d", k, v, wantP[k]))
		}
	}
	for k, v := range wantP {
		if _, ok := prom.counters[k]; !ok {
			probs = append(probs, fmt.Sprintf("/stats/prometheus counter %s missing, want %d", k, v))
		}
	}
	// The variable counters: moved, and the sink's sum is Prometheus's total.
	for k, s := range variable {
		if all.counters[k] == 0 || float64(all.counters[k]) != prom.counters[s.promKey()] {
			probs = append(probs, fmt.Sprintf("counter %s: sink sum %d, /stats/prometheus %v; want equal and non-zero", k, all.counters[k], prom.counters[s.promKey()]))
		}
	}
	if v := prom.counters["envoy_statsd_lines_dropped{}"]; v != 0 {
		probs = append(probs, fmt.Sprintf("statsd.lines_dropped = %v, want 0", v))
	}

	// Histograms: the sink's lines rebuild exactly what Prometheus shows,
	// whether one line per sample (timer) or one per bucket (compact).
	wantHT := map[string]uint64{}
	for _, v := range expectedHistograms(total, g.addrs) {
		wantHT[v.s.promKey()] = v.v
	}
	cx := clusterStat("backend", "upstream_cx_connect_ms")
	wantHT[cx.promKey()] = all.counters[clusterStat("backend", "upstream_cx_total").key(g.dog)]
	for k, p := range prom.hists {
		if _, ok := wantHT[k]; !ok && drivenScope(k) && p.GetSampleCount() != 0 && k != cxLength.promKey() {
			probs = append(probs, fmt.Sprintf("/stats/prometheus histogram %s has %d samples, want none", k, p.GetSampleCount()))
		}
	}
	for _, v := range append(expectedHistograms(total, g.addrs), valued{cx, wantHT[cx.promKey()]}) {
		got := all.hists[v.s.key(g.dog)]
		if got == nil {
			probs = append(probs, "sink histogram "+v.s.key(g.dog)+": never received")
			continue
		}
		if got.count != v.v {
			probs = append(probs, fmt.Sprintf("sink histogram %s: %d samples in total, want %d", v.s.key(g.dog), got.count, v.v))
		}
		probs = append(probs, compareHist(v.s.promKey(), got, prom.hists[v.s.promKey()])...)
	}
	if compact {
		// Twenty requests within a few flushes put more than one sample
		// in some bucket of downstream_rq_time: that must arrive as one
		// sampled line, not as one line per sample.
		sampled := false
		for line := range all.lines {
			if strings.Contains(line, "|ms|@") {
				sampled = true
				break
			}
		}
		if !sampled {
			probs = append(probs, "compact mode sent no sampled |ms|@rate line")
		}
	} else {
		for line := range all.lines {
			if strings.Contains(line, "|@") {
				probs = append(probs, fmt.Sprintf("timer mode sent a sampled line %q", line))
				break
			}
		}
	}
	return probs
}
