package dashboards

import (
	"bytes"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hopwatch/hopwatch/dashboards/lint"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/sink"
)

const (
	committedRules    = "../deploy/rules/hopwatch.rules.yml"
	committedPromRule = "../deploy/k8s/components/prometheusrule/prometheusrule.yaml"
)

func defaultRules(t *testing.T) RuleFile {
	t.Helper()
	rf, err := Rules(RuleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rf
}

func alerts(rf RuleFile) []Rule {
	var rs []Rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				rs = append(rs, r)
			}
		}
	}
	return rs
}

// TestRulesUpToDate: the committed rule file and PrometheusRule are what
// the builders produce with dashgen's defaults.
func TestRulesUpToDate(t *testing.T) {
	rf := defaultRules(t)
	for path, render := range map[string]func() ([]byte, error){committedRules: rf.YAML, committedPromRule: rf.PrometheusRule} {
		want, err := render()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): run `make dashboards` and commit the result", path, err)
		}
	}
}

// TestRulesLint applies the dashboards' query rules to every rule
// expression: it parses, it names only catalogued or recorded series, and
// counters appear only inside rate or increase.
func TestRulesLint(t *testing.T) {
	rf := defaultRules(t)
	known := catalogued()
	counters := map[string]bool{}
	for _, f := range stats.Catalogue() {
		if f.Kind == stats.KindCounter {
			counters[f.PrometheusName] = true
		}
	}
	for _, m := range sink.SelfMetrics() {
		counters[m.Name] = m.Counter
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	cfg := lint.Config{IsCounter: func(n string) bool { return counters[n] }, IsKnown: func(n string) bool { return known[n] }}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, p := range lint.CheckRuleExpr(r.Expr, g.Name+"/"+r.Record+r.Alert, cfg) {
				t.Error(p)
			}
			n++
		}
	}
	if n < 40 {
		t.Errorf("only %d rules", n)
	}
}

// TestCheckRuleExprCatchesMistakes: the rule linter is not vacuous.
func TestCheckRuleExprCatchesMistakes(t *testing.T) {
	cfg := lint.Config{IsCounter: func(n string) bool { return n == "c" }, IsKnown: func(n string) bool { return n == "c" || n == "g" }}
	for expr, rule := range map[string]string{
		"sum(c) > 0":           "rule-counter-agg",
		"sum(rate(x[5m])) > 0": "rule-known-name",
		"sum(rate(c[5m]) > 0":  "rule-promql",
	} {
		ps := lint.CheckRuleExpr(expr, "t", cfg)
		if !slices.ContainsFunc(ps, func(p lint.Problem) bool { return p.Rule == rule }) {
			t.Errorf("%q: want a %s problem, got %v", expr, rule, ps)
		}
	}
	if ps := lint.CheckRuleExpr("sum(rate(c[5m])) / sum(g) > 0", "t", cfg); len(ps) != 0 {
		t.Errorf("a correct expression was reported: %v", ps)
	}
}

var headingRE = regexp.MustCompile(`(?m)^#{2,5} ([A-Za-z]+)\s*$`)

// TestAlertsDocumented: every alert has a severity, a summary, a
// description, a runbook section in dashboards/README.md that its
// runbook_url points at, and a dashboard_url that opens a generated
// dashboard with variables that dashboard has.
func TestAlertsDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(string(readme), -1) {
		sections[strings.ToLower(m[1])] = true
	}
	vars := map[string][]string{}
	for _, d := range build(t) {
		ld, err := lint.Parse(committed(t, d.File))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range ld.Templating.List {
			vars[ld.UID] = append(vars[ld.UID], v.Name)
		}
	}
	for _, r := range alerts(defaultRules(t)) {
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: want a severity label, a summary and a description; have %v %v", r.Alert, r.Labels, r.Annotations)
		}
		anchor := strings.ToLower(r.Alert)
		if r.Annotations["runbook_url"] != DefaultRunbookURL+"#"+anchor || !sections[anchor] {
			t.Errorf("%s: runbook_url %q; dashboards/README.md needs a heading `#### %s`", r.Alert, r.Annotations["runbook_url"], r.Alert)
		}
		u, err := url.Parse(strings.NewReplacer("{{ ", "", " }}", "").Replace(r.Annotations["dashboard_url"]))
		if err != nil {
			t.Errorf("%s: dashboard_url: %v", r.Alert, err)
			continue
		}
		uid := strings.TrimPrefix(u.Path, "/d/")
		if _, ok := vars[uid]; !ok {
			t.Errorf("%s: dashboard_url %s opens no generated dashboard", r.Alert, u)
		}
		for k := range u.Query() {
			if !slices.Contains(vars[uid], strings.TrimPrefix(k, "var-")) {
				t.Errorf("%s: dashboard_url sets %s, which dashboard %s does not have", r.Alert, k, uid)
			}
		}
	}
}

func TestRuleOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  RuleOptions
		want string
	}{
		{RuleOptions{LatencyThresholdMs: 300}, "latency threshold 300 ms is not a bucket bound"},
		{RuleOptions{Availability: 99.9}, "availability 99.9: want a fraction"},
		{RuleOptions{BurnWindows: []BurnWindow{{Long: time.Minute, Short: time.Hour, Factor: 2, Severity: "page"}}}, "burn window 0"},
	} {
		if _, err := Rules(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.opt, err, tc.want)
		}
	}
}

// The promtool unit tests: every alert gets a hop with a fault from minute
// 0 to faultEnd and a healthy hop beside it. At firingAt every rule of the
// alert fires for the faulty hop only; at resolvedAt, long after the fault,
// none does.
const (
	faultEnd   = 100 // minutes
	seriesEnd  = 240 // minutes
	firingAt   = 95 * time.Minute
	resolvedAt = 240 * time.Minute
)

func gf(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// ctr is a counter growing by faulty per minute during the fault (when
// fault is set) and by healthy per minute otherwise.
func ctr(fault bool, faulty, healthy float64) string {
	if !fault {
		faulty = healthy
	}
	return fmt.Sprintf("0+%sx%d %s+%sx%d", gf(faulty), faultEnd, gf(faulty*faultEnd+healthy), gf(healthy), seriesEnd-faultEnd-1)
}

// lvl is a gauge at faulty during the fault and healthy otherwise.
func lvl(fault bool, faulty, healthy float64) string {
	if !fault {
		faulty = healthy
	}
	return fmt.Sprintf("%sx%d %sx%d", gf(faulty), faultEnd, gf(healthy), seriesEnd-faultEnd-1)
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertCase struct {
	alert string
	hop   func(bad bool) map[string]string // the labels the alert is grouped by
	extra map[string]string                // labels the expression adds
	// series of one hop; sel(name, more...) renders a selector with the
	// hop's labels (and, for cluster and connection-manager hops, a job,
	// instance and node_id that the rules must aggregate away).
	series func(sel func(name string, more ...string) string, fault bool) []inputSeries
}

func clusterHop(bad bool) map[string]string {
	return map[string]string{VarCluster: map[bool]string{true: "bad", false: "good"}[bad]}
}

func cmHop(bad bool) map[string]string {
	return map[string]string{VarConnManager: map[bool]string{true: "bad_ingress", false: "good_ingress"}[bad]}
}

func sinkHop(bad bool) map[string]string {
	return map[string]string{VarJob: "statsd-sink", VarInstance: map[bool]string{true: "bad:9102", false: "good:9102"}[bad]}
}

func proxyHop(bad bool) map[string]string {
	return map[string]string{VarJob: "statsd-sink", "node_id": map[bool]string{true: "bad-proxy", false: "good-proxy"}[bad]}
}

func counterCase(alert string, hop func(bool) map[string]string, name string, faulty, healthy float64, labels ...string) alertCase {
	return alertCase{alert: alert, hop: hop, series: func(sel func(string, ...string) string, fault bool) []inputSeries {
		return []inputSeries{{sel(name, labels...), ctr(fault, faulty, healthy)}}
	}}
}

func burnCases() []alertCase {
	var cs []alertCase
	for _, h := range []struct {
		prefix, metric string
		hop            func(bool) map[string]string
	}{
		{"EnvoyCluster", "envoy_cluster_upstream_rq", clusterHop},
		{"EnvoyHTTPConnManager", "envoy_http_downstream_rq", cmHop},
	} {
		cs = append(cs,
			alertCase{alert: h.prefix + "ErrorBudgetBurn", hop: h.hop, series: func(sel func(string, ...string) string, fault bool) []inputSeries {
				// 30% 5xx during the fault, 0.05% otherwise: under the
				// smallest threshold (3 × 0.001).
				return []inputSeries{
					{sel(h.metric + "_completed"), ctr(fault, 600, 600)},
					{sel(h.metric+"_xx", `envoy_response_code_class="5"`), ctr(fault, 180, 0.3)},
					{sel(h.metric+"_xx", `envoy_response_code_class="2"`), ctr(fault, 420, 599.7)},
				}
			}},
			alertCase{alert: h.prefix + "LatencyBudgetBurn", hop: h.hop, series: func(sel func(string, ...string) string, fault bool) []inputSeries {
				// 30% slower than 250 ms during the fault, 0.05% otherwise.
				return []inputSeries{
					{sel(h.metric+"_time_bucket", `le="100.0"`), ctr(fault, 300, 500)},
					{sel(h.metric+"_time_bucket", `le="250.0"`), ctr(fault, 420, 599.7)},
					{sel(h.metric+"_time_bucket", `le="+Inf"`), ctr(fault, 600, 600)},
					{sel(h.metric + "_time_count"), ctr(fault, 600, 600)},
				}
			}},
		)
	}
	return cs
}

func ruleCases() []alertCase {
	cs := burnCases()
	cs = append(cs,
		alertCase{alert: "EnvoyClusterCircuitBreakerOpen", hop: clusterHop, extra: map[string]string{"breaker": "rq_open"},
			series: func(sel func(string, ...string) string, fault bool) []inputSeries {
				return []inputSeries{
					{sel("envoy_cluster_circuit_breakers_default_rq_open"), lvl(fault, 1, 0)},
					{sel("envoy_cluster_circuit_breakers_default_cx_open"), lvl(fault, 0, 0)},
				}
			}},
		alertCase{alert: "EnvoyClusterOutlierEjections", hop: clusterHop, series: func(sel func(string, ...string) string, fault bool) []inputSeries {
			return []inputSeries{
				{sel("envoy_cluster_outlier_detection_ejections_active"), lvl(fault, 2, 0)},
				{sel("envoy_cluster_membership_total"), lvl(fault, 4, 4)},
			}
		}},
		alertCase{alert: "EnvoyClusterNoHealthyHosts", hop: clusterHop, series: func(sel func(string, ...string) string, fault bool) []inputSeries {
			return []inputSeries{
				{sel("envoy_cluster_membership_healthy"), lvl(fault, 0, 3)},
				{sel("envoy_cluster_membership_total"), lvl(fault, 3, 3)},
			}
		}},
		counterCase("EnvoyClusterPanicMode", clusterHop, "envoy_cluster_lb_healthy_panic", 5, 0),
		counterCase("EnvoyClusterRetryBudgetExhausted", clusterHop, "envoy_cluster_upstream_rq_retry_overflow", 5, 0),
		alertCase{alert: "EnvoyClusterRetriesExhausted", hop: clusterHop, series: func(sel func(string, ...string) string, fault bool) []inputSeries {
			// 5% of requests fail every retry during the fault, 0.1% otherwise.
			return []inputSeries{
				{sel("envoy_cluster_upstream_rq_retry_limit_exceeded"), ctr(fault, 30, 0.6)},
				{sel("envoy_cluster_upstream_rq_completed"), ctr(fault, 600, 600)},
			}
		}},
		counterCase("EnvoyClusterRateLimitFailingOpen", clusterHop, "envoy_cluster_ratelimit_failure_mode_allowed", 5, 0),
		counterCase("EnvoyClusterShadowAbandoned", clusterHop, "envoy_cluster_retry_or_shadow_abandoned", 5, 0),
		counterCase("StatsdSinkDroppingSamples", sinkHop, "statsd_sink_dropped_samples_total", 50, 0, `stage="queue"`),
		counterCase("StatsdSinkSampleErrors", sinkHop, "statsd_exporter_sample_errors_total", 50, 0, `reason="malformed_line"`),
		counterCase("StatsdSinkCardinalityBudget", sinkHop, "statsd_sink_cardinality_overflow_total", 50, 0, `limit="per_metric"`, `metric_name="envoy_cluster_upstream_rq"`),
		counterCase("StatsdSinkUDPKernelDrops", sinkHop, "statsd_sink_udp_kernel_drops_total", 50, 0),
		// The faulty proxy sends nothing during the fault.
		counterCase("HopwatchProxyNotFlushing", proxyHop, "envoy_statsd_lines_sent", 0, 600),
		counterCase("HopwatchProxySpansDropped", proxyHop, "envoy_tracing_opentelemetry_spans_dropped", 20, 0),
	)
	for i, c := range cs {
		switch c.alert {
		case "StatsdSinkDroppingSamples":
			cs[i].extra = map[string]string{"stage": "queue"}
		case "StatsdSinkSampleErrors":
			cs[i].extra = map[string]string{"reason": "malformed_line"}
		case "StatsdSinkCardinalityBudget":
			cs[i].extra = map[string]string{"limit": "per_metric", "metric_name": "envoy_cluster_upstream_rq"}
		}
	}
	return cs
}

var labelRefRE = regexp.MustCompile(`\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}`)

// expand does what Prometheus's template expansion does with the only
// construct the generated annotations use, {{ $labels.name }}.
func expand(s string, lbls map[string]string) string {
	return labelRefRE.ReplaceAllStringFunc(s, func(m string) string { return lbls[labelRefRE.FindStringSubmatch(m)[1]] })
}

type promtoolAlert struct {
	Labels      map[string]string `yaml:"exp_labels"`
	Annotations map[string]string `yaml:"exp_annotations"`
}

type promtoolAlertTest struct {
	EvalTime  string          `yaml:"eval_time"`
	AlertName string          `yaml:"alertname"`
	ExpAlerts []promtoolAlert `yaml:"exp_alerts"`
}

type promtoolTest struct {
	Name        string              `yaml:"name"`
	Interval    string              `yaml:"interval"`
	InputSeries []inputSeries       `yaml:"input_series"`
	AlertTests  []promtoolAlertTest `yaml:"alert_rule_test"`
}

// promtoolTests renders the cases as a promtool test file for rules.
func promtoolTests(t *testing.T, rf RuleFile, rulesFile string) []byte {
	t.Helper()
	byName := map[string][]Rule{}
	for _, r := range alerts(rf) {
		byName[r.Alert] = append(byName[r.Alert], r)
	}
	var tests []promtoolTest
	covered := map[string]bool{}
	for _, c := range ruleCases() {
		rules := byName[c.alert]
		if len(rules) == 0 {
			t.Fatalf("case %s: no such alert in the rules", c.alert)
		}
		covered[c.alert] = true
		pt := promtoolTest{Name: c.alert, Interval: "1m"}
		for _, bad := range []bool{true, false} {
			hop := c.hop(bad)
			sel := func(name string, more ...string) string {
				ls := slices.Clone(more)
				for _, k := range slices.Sorted(maps.Keys(hop)) {
					ls = append(ls, k+`="`+hop[k]+`"`)
				}
				if _, ok := hop[VarJob]; !ok {
					ls = append(ls, `job="statsd-sink"`, `instance="sink:9102"`, `node_id="proxy-a"`)
				}
				return name + "{" + strings.Join(ls, ", ") + "}"
			}
			pt.InputSeries = append(pt.InputSeries, c.series(sel, bad)...)
		}
		var exp []promtoolAlert
		for _, r := range rules {
			lbls := map[string]string{"alertname": c.alert}
			maps.Copy(lbls, r.Labels)
			maps.Copy(lbls, c.hop(true))
			maps.Copy(lbls, c.extra)
			ann := map[string]string{}
			for k, v := range r.Annotations {
				ann[k] = expand(v, lbls)
			}
			delete(lbls, "alertname")
			exp = append(exp, promtoolAlert{Labels: lbls, Annotations: ann})
		}
		pt.AlertTests = []promtoolAlertTest{
			{EvalTime: promDuration(firingAt), AlertName: c.alert, ExpAlerts: exp},
			{EvalTime: promDuration(resolvedAt), AlertName: c.alert},
		}
		tests = append(tests, pt)
	}
	for name := range byName {
		if !covered[name] {
			t.Errorf("alert %s has no promtool test case: add one to ruleCases", name)
		}
	}
	sort.Slice(tests, func(i, j int) bool { return tests[i].Name < tests[j].Name })
	b, err := yaml.Marshal(map[string]any{"rule_files": []string{rulesFile}, "evaluation_interval": "1m", "tests": tests})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// promtool returns the pinned bin/promtool; a missing one fails the test,
// since `make test` builds it first (tools-test).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../bin/promtool")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing: run `make tools-test` (it builds the promtool pinned in tools/promtool/go.mod)", p)
	}
	return p
}

// TestRulesPromtool runs the pinned promtool: `check rules` on the
// committed file, and `test rules` with a synthetic faulty and healthy hop
// for every alert.
func TestRulesPromtool(t *testing.T) {
	bin := promtool(t)
	if out, err := exec.Command(bin, "check", "rules", committedRules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", committedRules, err, out)
	}
	dir := t.TempDir()
	rules, err := filepath.Abs(committedRules)
	if err != nil {
		t.Fatal(err)
	}
	testFile := filepath.Join(dir, "hopwatch.rules.test.yml")
	if err := os.WriteFile(testFile, promtoolTests(t, defaultRules(t), rules), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "test", "rules", testFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}
