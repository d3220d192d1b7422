// Package twosinks_test proves that the dashboards stay right when the
// statsd-sink is scaled out to one per node (deploy/k8s's
// statsd-sink-per-node component), with real processes on loopback.
//
// One setup holds both topologies at once, so that they see the very same
// traffic: four hopwatch-proxies, two on "node-a" and two on "node-b", each
// flushing DogStatsD (with its node_id fixed tag) to two stats_sinks, the
// shared sink and its node's sink. One proxy flusher computes each delta
// once and writes the same lines to every sink, so the shared sink (job
// one-sink) and the two node sinks together (job per-node) receive
// identical line streams. The sinks listen on TCP: the test is about
// aggregation, not about UDP loss, and TCP rules loss out. The real
// Prometheus (bin/prometheus) scrapes all three sinks.
//
// After a fixed, bounded amount of traffic (different per proxy; 2xx, 4xx
// and 5xx, retries, a canary host, two zones), every query of every
// generated dashboard that reads Envoy's series (they all aggregate: sum
// by cluster, by prefix, by code class, by node_id, histogram quantiles,
// ratios) is run for job="one-sink" and for job="per-node" at the same
// evaluation time, and the two results must be equal, label set by label
// set, exactly.
//
// What is compared is each query's counter form: rate(v[w]), increase(v[w])
// and irate(v[w]) replaced by v, the cumulative value. rate() itself
// extrapolates from the timestamps of the first and last sample in the
// window, and those are the scrape times of whichever sink holds the series:
// two sinks scraped at different phases give the same counters slightly
// different rates (by up to about two scrape intervals over the window),
// even for one series. That is a property of Prometheus's scraping, not of
// where the series live. The aggregation over the counters is what scaling
// out could break (a series split in two partial sums, a proxy missing from
// one sink, a label that differs), and for it exact equality is right:
// the counters are integers, histogram buckets are integer counts, so sums
// in any order, ratios and histogram_quantile come out bit for bit the
// same. Ground truth from the traffic itself (requests per code class and
// per proxy) is checked as well, so that both topologies cannot agree by
// both being wrong, and the node sinks must each hold exactly their own
// node's proxies.
package twosinks_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/hopwatch/hopwatch/dashboards/lint"
	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

var client = &http.Client{Timeout: 5 * time.Second}

// sink is one running statsd-sink.
type sink struct {
	name, statsd, web string
}

// traffic is what the test sends through proxy i: fixed, different per
// proxy, so that a proxy counted twice or not at all shows.
func traffic(i int) (ok, bad, none int) { return 10 + 3*i, 2 + i, 1 + i }

func TestTwoSinksMatchOneSink(t *testing.T) {
	e2etest.PinnedBin(t, "prometheus") // before anything starts: the test needs it
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	sinkBin := e2etest.GoBuild(t, "cmd/statsd-sink")
	startSink := func(name string) sink {
		s := sink{name: name, statsd: e2etest.FreeAddr(t), web: e2etest.FreeAddr(t)}
		p := e2etest.StartProcess(t, "statsd-sink "+name, nil, sinkBin, "--preset=envoy",
			"--statsd.listen-udp=", "--statsd.listen-tcp="+s.statsd, "--web.listen-address="+s.web)
		p.WaitFor(t, "statsd-sink ready", 30*time.Second, func() error { return e2etest.HTTPOK("http://" + s.web + "/-/ready") })
		return s
	}
	shared, nodeA, nodeB := startSink("shared"), startSink("node-a"), startSink("node-b")

	// Upstreams: two healthy hosts in two zones (one a canary) and one
	// that answers 503, which the proxies retry once.
	ups := e2etest.StartUpstreams(t, "ok-a", "ok-b")
	bad := e2etest.StartUpstream(t, "bad")
	bad.Control(t, url.Values{"status": {"503"}})
	okEndpoints := fmt.Sprintf("[{address: %s, zone: zone-a}, {address: %s, zone: zone-b, canary: true}]", ups[0].Addr, ups[1].Addr)

	// Four proxies, two per node, with the same listener prefix and cluster
	// names, so that sum by cluster and by prefix add series that, per
	// node, live in different sinks.
	proxies := make([]*e2etest.Ingress, 4)
	nodeOf := func(i int) sink { return []sink{nodeA, nodeB}[i/2] }
	for i := range proxies {
		in := &e2etest.Ingress{
			Head: fmt.Sprintf(`
node: {id: p%[1]d, cluster: twosinks, zone: zone-a}
lifecycle: {drain_time: 0s, watch_config: false}
stats_config:
  flush_interval: 1s
  stats_tags: [{tag_name: node_id, fixed_value: p%[1]d}]
stats_sinks:
  - {type: dogstatsd, protocol: tcp, address: "%[2]s"}
  - {type: dogstatsd, protocol: tcp, address: "%[3]s"}
`, i, shared.statsd, nodeOf(i).statsd),
			Routes: `
- match: {prefix: /ok}
  route: {cluster: ok}
- match: {prefix: /bad}
  route:
    cluster: bad
    retry_policy: {retry_on: [5xx], num_retries: 1}
`,
			Clusters: `
- name: ok
  endpoints: ` + okEndpoints + `
- name: bad
  endpoints: [{address: ` + bad.Addr + `}]
`,
		}
		e2etest.StartIngress(t, in)
		proxies[i] = in
	}

	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: one-sink
    static_configs: [{targets: ['%s']}]
  - job_name: per-node
    static_configs:
      - {targets: ['%s'], labels: {node: node-a}}
      - {targets: ['%s'], labels: {node: node-b}}
`, shared.web, nodeA.web, nodeB.web)
	prom, promURL := e2etest.StartPrometheus(t, cfg)
	prom.WaitFor(t, "all three sinks scraped", 30*time.Second, func() error {
		v, err := query(ctx, promURL, `sum(up)`, time.Now())
		if err != nil {
			return err
		}
		if v.single() != "3" {
			return fmt.Errorf("sum(up) = %v", v)
		}
		return nil
	})

	// The traffic: fixed and bounded.
	var wantOK, wantBad, wantNone int
	for i, in := range proxies {
		ok, bad, none := traffic(i)
		wantOK, wantBad, wantNone = wantOK+ok, wantBad+bad, wantNone+none
		for path, n := range map[string]int{"/ok": ok, "/bad": bad, "/nope": none} {
			for range n {
				get(t, in.URL(path))
			}
		}
	}

	// Ground truth, per topology: every request counted once, by class
	// and by proxy, in the counter form of the dashboards' queries.
	// Classes nothing answered with exist at 0 from the first flush.
	classes := map[string]string{"1": "0", "2": strconv.Itoa(wantOK), "3": "0", "4": strconv.Itoa(wantNone), "5": strconv.Itoa(wantBad)}
	for _, job := range []string{"one-sink", "per-node"} {
		q := fmt.Sprintf(`sum by (envoy_response_code_class) (envoy_http_downstream_rq_xx{job=%q})`, job)
		prom.WaitFor(t, job+": every request counted by class", 60*time.Second, func() error {
			v, err := query(ctx, promURL, q, time.Now())
			if err != nil {
				return err
			}
			if got := v.by("envoy_response_code_class"); !mapsEqual(got, classes) {
				return fmt.Errorf("%s = %v, want %v", q, got, classes)
			}
			return nil
		})
		// Histograms too: one downstream_rq_time sample per request (timer
		// samples are drained on their own tick, after the counters).
		total := strconv.Itoa(wantOK + wantBad + wantNone)
		q = fmt.Sprintf(`sum(envoy_http_downstream_rq_time_count{job=%q})`, job)
		prom.WaitFor(t, job+": every request's latency sample", 30*time.Second, func() error {
			v, err := query(ctx, promURL, q, time.Now())
			if err != nil {
				return err
			}
			if got := v.single(); got != total {
				return fmt.Errorf("%s = %s, want %s", q, got, total)
			}
			return nil
		})
		q = fmt.Sprintf(`sum by (node_id) (envoy_http_downstream_rq_total{job=%q})`, job)
		v, err := query(ctx, promURL, q, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for i := range proxies {
			ok, bad, none := traffic(i)
			want[fmt.Sprintf("p%d", i)] = strconv.Itoa(ok + bad + none)
		}
		if got := v.by("node_id"); !mapsEqual(got, want) {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
	// Each node sink holds its own node's proxies and no other.
	for _, s := range []sink{nodeA, nodeB} {
		q := fmt.Sprintf(`count by (node_id) (envoy_http_downstream_rq_total{job="per-node", instance=%q})`, s.web)
		v, err := query(ctx, promURL, q, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for id := range v.by("node_id") {
			got = append(got, id)
		}
		for i := range proxies {
			if nodeOf(i) == s {
				want = append(want, fmt.Sprintf("p%d", i))
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("sink %s holds the series of proxies %v, want %v", s.name, got, want)
		}
	}

	// Every Envoy query of every dashboard, in counter form, for both
	// topologies at one evaluation time. The ground truth above is already
	// in both, but a trailing flush (another histogram's timer samples) may
	// still be on its way; poll until a round agrees, and fail with the last
	// round's differences if none does.
	queries := dashboardQueries(t)
	var diffs, empty []string
	withData, rounds, firstRound := 0, 0, 0
	e2etest.Settle(30*time.Second, time.Second, func() bool {
		rounds++
		diffs, empty, withData = diffs[:0], empty[:0], 0
		at := time.Now()
		for _, q := range queries {
			one, err := query(ctx, promURL, q.forJob("one-sink"), at)
			if err != nil {
				t.Fatalf("%s: %v", q.key, err)
			}
			per, err := query(ctx, promURL, q.forJob("per-node"), at)
			if err != nil {
				t.Fatalf("%s: %v", q.key, err)
			}
			if d := one.diff(per); d != "" {
				diffs = append(diffs, fmt.Sprintf("%s: %s\n  query: %s", q.key, d, q.forJob("<job>")))
			}
			if len(one) > 0 {
				withData++
			} else {
				empty = append(empty, q.key)
			}
		}
		if rounds == 1 {
			firstRound = len(diffs)
		}
		return len(diffs) == 0
	})
	for _, d := range diffs {
		t.Errorf("one sink and two sinks disagree: %s", d)
	}
	t.Logf("%d Envoy queries from the dashboards compared in %d round(s) (%d differed in the first, before the last flush was scraped); %d returned data; empty in both (conditions this traffic does not make): %v",
		len(queries), rounds, firstRound, withData, empty)
	// Cluster, prefix, code class, node_id, quantiles, canary and zones
	// all return data under this traffic; a handful of empty results
	// would mean the comparison proved little.
	if withData < len(queries)/2 {
		t.Errorf("only %d of %d queries returned data: the traffic no longer exercises the dashboards", withData, len(queries))
	}
}

// dashQuery is one dashboard query, in counter form, with $job left to
// fill in.
type dashQuery struct {
	key  string // dashboard uid / panel title / refId
	expr string // counter form, job matcher holding jobPlaceholder
}

const jobPlaceholder = "JOB_PLACEHOLDER"

func (q dashQuery) forJob(job string) string { return strings.ReplaceAll(q.expr, jobPlaceholder, job) }

// dashboardQueries reads every generated dashboard and returns, in counter
// form, each query whose series are all Envoy's: the statsd-sink board's
// queries describe each sink process (its lines, its memory, its scrape
// time) and differ between one sink and three by design.
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	values := map[string]string{"job": jobPlaceholder, "instance": ".*", "envoy_cluster_name": ".*",
		"envoy_http_conn_manager_prefix": ".*", "__rate_interval": "1m", "__interval": "5s", "__range": "5m", "datasource": "prometheus"}
	var out []dashQuery
	skipped := 0
	for _, d := range e2etest.GeneratedDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				key := d.UID + "/" + p.Title + "/" + tg.RefID
				expr, err := parser.NewParser(parser.Options{}).ParseExpr(lint.Substitute(tg.Expr, values))
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				envoy, selectors := true, 0
				parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
					if vs, ok := n.(*parser.VectorSelector); ok {
						selectors++
						envoy = envoy && strings.HasPrefix(strings.TrimPrefix(lint.SelectorName(vs), "~"), "envoy_")
						if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == "job" && m.Value == jobPlaceholder }) {
							t.Fatalf("%s: selector %s has no job=~\"$job\" matcher, so the test cannot choose the topology", key, vs)
						}
					}
					return nil
				})
				if !envoy || selectors == 0 {
					skipped++
					continue
				}
				cf, err := counterForm(expr)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				out = append(out, dashQuery{key: key, expr: cf.String()})
			}
		}
	}
	if len(out) < 40 {
		t.Fatalf("only %d Envoy queries in the dashboards (%d others skipped); expected the proxy, cluster, canary and zone boards'", len(out), skipped)
	}
	return out
}

// counterForm replaces rate(v[w]), increase(v[w]) and irate(v[w]) (over a
// selector or a subquery) by v, the cumulative value, and fails on any
// other range it finds: a new function in the dashboards must be thought
// about here, not silently compared as something else.
func counterForm(e parser.Expr) (parser.Expr, error) {
	var err error
	var walk func(parser.Expr) parser.Expr
	walk = func(e parser.Expr) parser.Expr {
		switch n := e.(type) {
		case *parser.Call:
			if name := n.Func.Name; (name == "rate" || name == "increase" || name == "irate") && len(n.Args) == 1 {
				switch a := n.Args[0].(type) {
				case *parser.MatrixSelector:
					return a.VectorSelector
				case *parser.SubqueryExpr:
					return walk(a.Expr)
				}
			}
			for i, a := range n.Args {
				n.Args[i] = walk(a)
			}
		case *parser.AggregateExpr:
			n.Expr = walk(n.Expr)
			if n.Param != nil {
				n.Param = walk(n.Param)
			}
		case *parser.BinaryExpr:
			n.LHS, n.RHS = walk(n.LHS), walk(n.RHS)
		case *parser.ParenExpr:
			n.Expr = walk(n.Expr)
		case *parser.UnaryExpr:
			n.Expr = walk(n.Expr)
		case *parser.MatrixSelector, *parser.SubqueryExpr:
			err = fmt.Errorf("a range (%s) outside rate, increase or irate: decide what its counter form is", n)
		}
		return e
	}
	out := walk(e)
	return out, err
}

// vector is an instant query's result: label set → value as Prometheus
// formats it (the shortest representation that round-trips, so equal
// floats give equal strings).
type vector map[string]sample

type sample struct {
	labels map[string]string
	value  string
}

func (v vector) single() string {
	for _, s := range v {
		if len(v) == 1 {
			return s.value
		}
	}
	return fmt.Sprintf("%d samples", len(v))
}

// by maps one label's value to the sample's value.
func (v vector) by(label string) map[string]string {
	out := map[string]string{}
	for _, s := range v {
		out[s.labels[label]] = s.value
	}
	return out
}

// diff describes how w differs from v, or returns "". NaN equals NaN: a
// ratio of zero to zero is NaN in both.
func (v vector) diff(w vector) string {
	var d []string
	for k, s := range v {
		o, ok := w[k]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("%s = %s with one sink, absent with two", k, s.value))
		case s.value != o.value && !(isNaN(s.value) && isNaN(o.value)):
			d = append(d, fmt.Sprintf("%s = %s with one sink, %s with two", k, s.value, o.value))
		}
	}
	for k, o := range w {
		if _, ok := v[k]; !ok {
			d = append(d, fmt.Sprintf("%s absent with one sink, %s with two", k, o.value))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

func isNaN(s string) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && math.IsNaN(f)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// query runs a PromQL instant query at time at.
func query(ctx context.Context, promURL, q string, at time.Time) (vector, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	u := promURL + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}.Encode()
	if err := e2etest.GetJSON(ctx, u, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s, want vector", q, r.Data.ResultType)
	}
	out := vector{}
	for _, s := range r.Data.Result {
		keys := make([]string, 0, len(s.Metric))
		for k := range s.Metric {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%q,", k, s.Metric[k])
		}
		val, _ := s.Value[1].(string)
		out["{"+strings.TrimSuffix(b.String(), ",")+"}"] = sample{labels: s.Metric, value: val}
	}
	return out, nil
}

func get(t *testing.T, u string) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
