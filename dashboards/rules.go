package dashboards

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/hopwatch/hopwatch/proxy/stats"
)

// BurnWindow is one pair of the multi-window, multi-burn-rate pattern of
// the Google SRE workbook ("Alerting on SLOs"): the alert fires when the
// error budget burns at Factor times the sustainable rate over both the Long
// window (the burn is significant) and the Short one (it is still going on,
// so the alert resolves soon after the fault stops).
type BurnWindow struct {
	Long, Short time.Duration
	Factor      float64
	Severity    string        // the alert's severity label: page or ticket
	For         time.Duration // the alert's for:
}

// RuleOptions are the parameters of the generated rules. The zero value of
// each field means its default.
type RuleOptions struct {
	// Availability is the objective for the share of requests that do not
	// fail with a 5xx, per upstream cluster and per connection manager.
	// Default 0.999.
	Availability float64
	// LatencyThresholdMs and LatencyObjective: LatencyObjective of the
	// requests must take at most LatencyThresholdMs, which must be one of
	// Envoy's default histogram bucket bounds (stats.DefaultBuckets), since
	// the share is read from the bucket at that bound. Defaults 250 and 0.99.
	LatencyThresholdMs float64
	LatencyObjective   float64
	// BurnWindows: default the SRE workbook's 14.4× over 1h/5m and 6× over
	// 6h/30m (page), 3× over 1d/2h (ticket).
	BurnWindows []BurnWindow
	// CauseWindow is the rate window of the cause and pipeline alerts and
	// of the latency quantile recordings (default 5m); CauseFor their for:
	// (default 2m; a negative value means none).
	CauseWindow time.Duration
	CauseFor    time.Duration
	// EjectedShare is the share of a cluster's hosts that outlier detection
	// may eject before EnvoyClusterOutlierEjections fires (default 0.2).
	EjectedShare float64
	// RetriesExhaustedShare is the share of a cluster's requests whose
	// retries all failed before EnvoyClusterRetriesExhausted fires
	// (default 0.01).
	RetriesExhaustedShare float64
	// GrafanaURL is where dashboard_url annotations point (default
	// http://127.0.0.1:3000, the dev environment's Grafana).
	GrafanaURL string
	// RunbookURL is the page whose sections are the runbooks; each alert's
	// runbook_url is RunbookURL#<alert name in lower case>.
	RunbookURL string
}

// DefaultBurnWindows are the SRE workbook's recommended burn-rate pairs.
func DefaultBurnWindows() []BurnWindow {
	return []BurnWindow{
		{Long: time.Hour, Short: 5 * time.Minute, Factor: 14.4, Severity: "page", For: 2 * time.Minute},
		{Long: 6 * time.Hour, Short: 30 * time.Minute, Factor: 6, Severity: "page", For: 15 * time.Minute},
		{Long: 24 * time.Hour, Short: 2 * time.Hour, Factor: 3, Severity: "ticket", For: time.Hour},
	}
}

// DefaultRunbookURL is the runbook section of dashboards/README.md.
const DefaultRunbookURL = "https://github.com/hopwatch/hopwatch/blob/main/dashboards/README.md"

func (o RuleOptions) withDefaults() (RuleOptions, error) {
	if o.Availability == 0 {
		o.Availability = 0.999
	}
	if o.LatencyThresholdMs == 0 {
		o.LatencyThresholdMs = 250
	}
	if o.LatencyObjective == 0 {
		o.LatencyObjective = 0.99
	}
	if o.BurnWindows == nil {
		o.BurnWindows = DefaultBurnWindows()
	}
	if o.CauseWindow == 0 {
		o.CauseWindow = 5 * time.Minute
	}
	if o.CauseFor == 0 {
		o.CauseFor = 2 * time.Minute
	}
	if o.EjectedShare == 0 {
		o.EjectedShare = 0.2
	}
	if o.RetriesExhaustedShare == 0 {
		o.RetriesExhaustedShare = 0.01
	}
	if o.GrafanaURL == "" {
		o.GrafanaURL = "http://127.0.0.1:3000"
	}
	if o.RunbookURL == "" {
		o.RunbookURL = DefaultRunbookURL
	}
	var errs []error
	for name, v := range map[string]float64{"availability": o.Availability, "latency objective": o.LatencyObjective,
		"ejected share": o.EjectedShare, "retries-exhausted share": o.RetriesExhaustedShare} {
		if v <= 0 || v >= 1 {
			errs = append(errs, fmt.Errorf("rules: %s %g: want a fraction between 0 and 1 exclusive, such as 0.999", name, v))
		}
	}
	if !slices.Contains(stats.DefaultBuckets(), o.LatencyThresholdMs) {
		errs = append(errs, fmt.Errorf("rules: latency threshold %g ms is not a bucket bound of the ms histograms; allowed: %v", o.LatencyThresholdMs, stats.DefaultBuckets()))
	}
	for i, w := range o.BurnWindows {
		if w.Short <= 0 || w.Long <= w.Short || w.Factor <= 0 || w.Severity == "" {
			errs = append(errs, fmt.Errorf("rules: burn window %d (%+v): want 0 < short < long, a positive factor and a severity", i, w))
		}
	}
	if o.CauseWindow < 0 {
		errs = append(errs, fmt.Errorf("rules: cause window %v: want a positive duration", o.CauseWindow))
	}
	return o, errors.Join(errs...)
}

// RuleFile is a Prometheus rule file (rule_files) or, under spec, a
// Prometheus Operator PrometheusRule.
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is a group of rules evaluated together.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is a recording rule (Record) or an alerting rule (Alert).
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// hop is one level the SLOs are kept at: upstream clusters or connection
// managers.
type hop struct {
	level     string // recording rule level: envoy_cluster, envoy_http
	label     string // the label that names the hop
	what      string // for humans: "upstream cluster"
	alert     string // alert name prefix
	completed string // catalogue keys
	classes   string
	latency   string
	dashboard string // uid
	recPrefix string // recording name stem: upstream_rq, downstream_rq
}

var sloHops = []hop{
	{level: "envoy_cluster", label: VarCluster, what: "upstream cluster", alert: "EnvoyCluster",
		completed: "cluster.{envoy.cluster_name}.upstream_rq_completed",
		classes:   "cluster.{envoy.cluster_name}.upstream_rq_{envoy.response_code_class}xx",
		latency:   "cluster.{envoy.cluster_name}.upstream_rq_time",
		dashboard: UIDUpstream, recPrefix: "upstream_rq"},
	{level: "envoy_http", label: VarConnManager, what: "connection manager", alert: "EnvoyHTTPConnManager",
		completed: "http.{envoy.http_conn_manager_prefix}.downstream_rq_completed",
		classes:   "http.{envoy.http_conn_manager_prefix}.downstream_rq_{envoy.response_code_class}xx",
		latency:   "http.{envoy.http_conn_manager_prefix}.downstream_rq_time",
		dashboard: UIDOverview, recPrefix: "downstream_rq"},
}

// promDuration renders d as Prometheus does (1h, 5m, 1d, 90s).
func promDuration(d time.Duration) string { return model.Duration(d).String() }

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// ruleRate is sum by (groupBy) (rate(m{extra}[window])) for a rule: unlike
// a panel's query it has no dashboard variables and a fixed window.
func (c *catalog) ruleRate(m metric, suffix string, window time.Duration, groupBy []string, extra ...string) string {
	if m.kind != stats.KindCounter && suffix == "" {
		c.errs = append(c.errs, fmt.Errorf("rules: rate over %s, which is a %s, not a counter", m.name, m.kind))
	}
	if m.kind != stats.KindHistogram && suffix != "" {
		c.errs = append(c.errs, fmt.Errorf("rules: %s%s of %s, which is a %s, not a histogram", m.name, suffix, m.name, m.kind))
	}
	return "sum" + by(groupBy) + " (rate(" + ruleSelector(m, suffix, extra...) + "[" + promDuration(window) + "]))"
}

// ruleGauge is sum by (groupBy) (gauge{extra}); counters are refused.
func (c *catalog) ruleGauge(m metric, groupBy []string, extra ...string) string {
	if m.kind != stats.KindGauge {
		c.errs = append(c.errs, fmt.Errorf("rules: %s is a %s, not a gauge", m.name, m.kind))
	}
	return "sum" + by(groupBy) + " (" + ruleSelector(m, "", extra...) + ")"
}

func ruleSelector(m metric, suffix string, extra ...string) string {
	if len(extra) == 0 {
		return m.name + suffix
	}
	return m.name + suffix + "{" + strings.Join(extra, ", ") + "}"
}

// leMatcher selects the bucket whose bound is ms. Prometheus 3 writes the
// bound of a scraped classic histogram as a float ("250.0"); earlier
// versions and remote-written data keep the exposition's "250".
func leMatcher(ms float64) string {
	s := fmtFloat(ms)
	return `le=~"` + strings.ReplaceAll(s, ".", `\\.`) + `(\\.0)?"`
}

// Rules builds hopwatch's recording and alerting rules from the catalogue.
func Rules(opt RuleOptions) (RuleFile, error) {
	o, err := opt.withDefaults()
	if err != nil {
		return RuleFile{}, err
	}
	c := newCatalog()
	b := ruleBuilder{c: c, o: o}
	f := RuleFile{Groups: []RuleGroup{
		{Name: "hopwatch-slo-recording", Rules: b.recordings()},
		{Name: "hopwatch-slo-alerts", Rules: b.burnAlerts()},
		{Name: "hopwatch-cause-alerts", Rules: b.causeAlerts()},
		{Name: "hopwatch-pipeline-alerts", Rules: b.pipelineAlerts()},
	}}
	if len(c.errs) > 0 {
		return RuleFile{}, errors.Join(c.errs...)
	}
	return f, nil
}

// YAML renders the rule file.
func (f RuleFile) YAML() ([]byte, error) {
	return marshalYAML(rulesHeader, f)
}

const rulesHeader = "# Generated by cmd/dashgen from dashboards/rules.go (`make dashboards`); do not edit.\n" +
	"# hopwatch's recording and alerting rules: load with Prometheus's rule_files.\n"

// PrometheusRule renders f as a Prometheus Operator PrometheusRule named
// hopwatch, for deploy/k8s/components/prometheusrule.
func (f RuleFile) PrometheusRule() ([]byte, error) {
	obj := struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec RuleFile `yaml:"spec"`
	}{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule", Spec: f}
	obj.Metadata.Name = "hopwatch"
	obj.Metadata.Namespace = "hopwatch"
	obj.Metadata.Labels = map[string]string{"app.kubernetes.io/name": "hopwatch-rules"}
	return marshalYAML("# Generated by cmd/dashgen from dashboards/rules.go (`make dashboards`); do not edit.\n", obj)
}

func marshalYAML(header string, v any) ([]byte, error) {
	var sb strings.Builder
	sb.WriteString(header)
	enc := yaml.NewEncoder(&sb)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return []byte(sb.String()), nil
}

type ruleBuilder struct {
	c *catalog
	o RuleOptions
}

// windows is every window a burn-rate alert reads, shortest first.
func (b ruleBuilder) windows() []time.Duration {
	var ws []time.Duration
	for _, w := range b.o.BurnWindows {
		ws = append(ws, w.Long, w.Short)
	}
	slices.Sort(ws)
	return slices.Compact(ws)
}

// Recording rule names follow Prometheus's level:metric:operations.
func recName(h hop, metric, op string, w time.Duration) string {
	return h.level + ":" + h.recPrefix + metric + ":" + op + promDuration(w)
}

func (b ruleBuilder) recordings() []Rule {
	var rs []Rule
	for _, h := range sloHops {
		// The SLO ratios are per hop, across every proxy. The rates and
		// quantiles keep job and instance as well, so that the dashboards,
		// which filter on them, read these series and sum them up.
		g := []string{h.label}
		gi := []string{VarJob, VarInstance, h.label}
		completed, classes, latency := b.c.stat(h.completed), b.c.stat(h.classes), b.c.stat(h.latency)
		for _, w := range b.windows() {
			rs = append(rs,
				Rule{Record: recName(h, "_completed", "rate", w), Expr: b.c.ruleRate(completed, "", w, gi)},
				Rule{Record: recName(h, "_5xx", "rate", w), Expr: b.c.ruleRate(classes, "", w, gi, `envoy_response_code_class="5"`)},
				Rule{Record: recName(h, "_error", "ratio_rate", w),
					Expr: "sum" + by(g) + " (" + recName(h, "_5xx", "rate", w) + ")\n/\nsum" + by(g) + " (" + recName(h, "_completed", "rate", w) + ")"},
				Rule{Record: recName(h, "_slow", "ratio_rate", w),
					Expr: "1 - (\n  " + b.c.ruleRate(latency, "_bucket", w, g, leMatcher(b.o.LatencyThresholdMs)) +
						"\n/\n  " + b.c.ruleRate(latency, "_count", w, g) + "\n)"},
			)
		}
		for _, q := range []float64{0.5, 0.9, 0.99} {
			rs = append(rs, Rule{Record: recName(h, "_time", "quantile_rate", b.o.CauseWindow),
				Expr:   "histogram_quantile(" + fmtFloat(q) + ", " + b.c.ruleRate(latency, "_bucket", b.o.CauseWindow, append([]string{"le"}, gi...)) + ")",
				Labels: map[string]string{"quantile": fmtFloat(q)}})
		}
	}
	return rs
}

func (b ruleBuilder) annotations(alert, summary, description, dashboard string, vars ...string) map[string]string {
	u := strings.TrimSuffix(b.o.GrafanaURL, "/") + "/d/" + dashboard
	for i, v := range vars {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "var-" + v + "={{ $labels." + v + " }}"
	}
	return map[string]string{
		"summary":       summary,
		"description":   description,
		"runbook_url":   b.o.RunbookURL + "#" + strings.ToLower(alert),
		"dashboard_url": u,
	}
}

func (b ruleBuilder) forOf(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return promDuration(d)
}

func (b ruleBuilder) burnAlerts() []Rule {
	var rs []Rule
	for _, h := range sloHops {
		for _, kind := range []struct {
			name, metric, objective string
			budget                  float64
		}{
			{"ErrorBudgetBurn", "_error", fmt.Sprintf("%s%% of requests without a 5xx", fmtFloat(b.o.Availability*100)), 1 - b.o.Availability},
			{"LatencyBudgetBurn", "_slow", fmt.Sprintf("%s%% of requests within %s ms", fmtFloat(b.o.LatencyObjective*100), fmtFloat(b.o.LatencyThresholdMs)), 1 - b.o.LatencyObjective},
		} {
			alert := h.alert + kind.name
			for _, w := range b.o.BurnWindows {
				budget := strconv.FormatFloat(kind.budget, 'f', -1, 64)
				threshold := fmtFloat(w.Factor) + " * " + budget
				var what string
				if kind.metric == "_error" {
					what = "5xx responses"
				} else {
					what = "requests slower than " + fmtFloat(b.o.LatencyThresholdMs) + " ms"
				}
				rs = append(rs, Rule{
					Alert: alert,
					Expr: recName(h, kind.metric, "ratio_rate", w.Long) + " > (" + threshold + ")\nand\n" +
						recName(h, kind.metric, "ratio_rate", w.Short) + " > (" + threshold + ")",
					For:    b.forOf(w.For),
					Labels: map[string]string{"severity": w.Severity, "long_window": promDuration(w.Long), "short_window": promDuration(w.Short)},
					Annotations: b.annotations(alert,
						fmt.Sprintf("%s {{ $labels.%s }} burns its error budget %s× too fast", h.what, h.label, fmtFloat(w.Factor)),
						fmt.Sprintf("The share of %s at %s %s=\"{{ $labels.%s }}\" has been above %s× the budget of its objective (%s) over both %s and %s: at this rate the budget is gone in %s.",
							what, h.what, h.label, h.label, fmtFloat(w.Factor), kind.objective, promDuration(w.Long), promDuration(w.Short), budgetGone(w.Factor)),
						h.dashboard, h.label),
				})
			}
		}
	}
	return rs
}

// budgetGone is how long a 30-day error budget lasts at factor× the
// sustainable burn rate.
func budgetGone(factor float64) string {
	return model.Duration(time.Duration(float64(30*24*time.Hour) / factor).Round(time.Hour)).String()
}

func (b ruleBuilder) causeAlerts() []Rule {
	c, w := b.c, b.o.CauseWindow
	g := []string{VarCluster}
	cl := func(s string) metric { return c.stat("cluster.{envoy.cluster_name}." + s) }
	cause := func(alert, expr, summary, description string) Rule {
		return Rule{Alert: alert, Expr: expr, For: b.forOf(b.o.CauseFor), Labels: map[string]string{"severity": "warning"},
			Annotations: b.annotations(alert, summary, description, UIDUpstream, VarCluster)}
	}
	var breakers []string
	for _, br := range []string{"cx_open", "cx_pool_open", "rq_pending_open", "rq_open", "rq_retry_open"} {
		breakers = append(breakers, `label_replace(`+c.ruleGauge(cl("circuit_breakers.default."+br), g)+` > 0, "breaker", "`+br+`", "", "")`)
	}
	ww := promDuration(w)
	return []Rule{
		cause("EnvoyClusterCircuitBreakerOpen", strings.Join(breakers, "\nor\n"),
			"circuit breaker {{ $labels.breaker }} of upstream cluster {{ $labels.envoy_cluster_name }} is open",
			`The {{ $labels.breaker }} circuit breaker of upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}" is open on at least one proxy: requests to it are refused with 503 (UO) instead of queued.`),
		cause("EnvoyClusterOutlierEjections",
			c.ruleGauge(cl("outlier_detection.ejections_active"), g)+"\n/\n"+c.ruleGauge(cl("membership_total"), g)+" > "+fmtFloat(b.o.EjectedShare),
			"outlier detection ejected over "+fmtFloat(b.o.EjectedShare*100)+"% of upstream cluster {{ $labels.envoy_cluster_name }}",
			`Outlier detection has ejected more than `+fmtFloat(b.o.EjectedShare*100)+`% of the hosts of upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}": the remaining hosts take their load.`),
		cause("EnvoyClusterNoHealthyHosts",
			c.ruleGauge(cl("membership_healthy"), g)+" == 0\nand\n"+c.ruleGauge(cl("membership_total"), g)+" > 0",
			"upstream cluster {{ $labels.envoy_cluster_name }} has no healthy host",
			`Every host of upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}" is unhealthy (health checks or outlier detection): its requests fail with 503 (UH) or go to unhealthy hosts in panic mode.`),
		cause("EnvoyClusterPanicMode",
			c.ruleRate(cl("lb_healthy_panic"), "", w, g)+" > 0",
			"upstream cluster {{ $labels.envoy_cluster_name }} is load balancing in panic mode",
			`Upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}" has fewer healthy hosts than its panic threshold, so the load balancer spreads requests over all hosts, unhealthy ones included (lb_healthy_panic over `+ww+`).`),
		cause("EnvoyClusterRetryBudgetExhausted",
			c.ruleRate(cl("upstream_rq_retry_overflow"), "", w, g)+" > 0",
			"retries to upstream cluster {{ $labels.envoy_cluster_name }} overflow their budget",
			`Retries to upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}" are refused by its retry circuit breaker or budget (upstream_rq_retry_overflow over `+ww+`): failures it would have retried reach the client.`),
		cause("EnvoyClusterRetriesExhausted",
			c.ruleRate(cl("upstream_rq_retry_limit_exceeded"), "", w, g)+"\n/\n"+c.ruleRate(cl("upstream_rq_completed"), "", w, g)+" > "+fmtFloat(b.o.RetriesExhaustedShare),
			"requests to upstream cluster {{ $labels.envoy_cluster_name }} fail every retry",
			`More than `+fmtFloat(b.o.RetriesExhaustedShare*100)+`% of the requests to upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}" failed on every attempt their retry policy allows (upstream_rq_retry_limit_exceeded over `+ww+`): the upstream itself is failing.`),
		cause("EnvoyClusterRateLimitFailingOpen",
			c.ruleRate(cl("ratelimit.failure_mode_allowed"), "", w, g)+" > 0",
			"the rate-limit service fails open for upstream cluster {{ $labels.envoy_cluster_name }}",
			`The rate-limit service could not be asked about requests to upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}", and they were let through unlimited (ratelimit.failure_mode_allowed over `+ww+`).`),
		cause("EnvoyClusterShadowAbandoned",
			c.ruleRate(cl("retry_or_shadow_abandoned"), "", w, g)+" > 0",
			"shadow or retry traffic to upstream cluster {{ $labels.envoy_cluster_name }} is abandoned",
			`Requests to upstream cluster envoy_cluster_name="{{ $labels.envoy_cluster_name }}" were not shadowed or retried because their body overflowed the buffer (retry_or_shadow_abandoned over `+ww+`).`),
	}
}

func (b ruleBuilder) pipelineAlerts() []Rule {
	c, w := b.c, b.o.CauseWindow
	sinkBy := []string{VarJob, VarInstance}
	// node_id names the emitting proxy when the sink adds it; without it the
	// sum covers every proxy behind the sink.
	proxyBy := []string{VarJob, "node_id"}
	sinkAlert := func(alert, expr, summary, description string) Rule {
		return Rule{Alert: alert, Expr: expr, For: b.forOf(b.o.CauseFor), Labels: map[string]string{"severity": "warning"},
			Annotations: b.annotations(alert, summary, description, UIDSink, VarJob, VarInstance)}
	}
	proxyAlert := func(alert, expr, summary, description string) Rule {
		return Rule{Alert: alert, Expr: expr, For: b.forOf(b.o.CauseFor), Labels: map[string]string{"severity": "warning"},
			Annotations: b.annotations(alert, summary, description, UIDOverview, VarJob)}
	}
	ww := promDuration(w)
	return []Rule{
		sinkAlert("StatsdSinkDroppingSamples",
			c.ruleRate(c.self("statsd_sink_dropped_samples_total"), "", w, append(sinkBy, "stage"))+" > 0",
			"statsd-sink {{ $labels.instance }} drops samples at stage {{ $labels.stage }}",
			`statsd-sink instance="{{ $labels.instance }}" (job="{{ $labels.job }}") dropped samples at stage "{{ $labels.stage }}" over the last `+ww+`: every dashboard and alert fed by it undercounts.`),
		sinkAlert("StatsdSinkSampleErrors",
			c.ruleRate(c.self("statsd_exporter_sample_errors_total"), "", w, append(sinkBy, "reason"))+" > 0",
			"statsd-sink {{ $labels.instance }} fails to parse samples ({{ $labels.reason }})",
			`statsd-sink instance="{{ $labels.instance }}" (job="{{ $labels.job }}") rejected StatsD lines with reason "{{ $labels.reason }}" over the last `+ww+`: a sender emits lines it cannot parse.`),
		sinkAlert("StatsdSinkCardinalityBudget",
			c.ruleRate(c.self("statsd_sink_cardinality_overflow_total"), "", w, append(sinkBy, "limit", "metric_name"))+" > 0",
			"statsd-sink {{ $labels.instance }} reached its cardinality budget for {{ $labels.metric_name }}",
			`statsd-sink instance="{{ $labels.instance }}" (job="{{ $labels.job }}") refused new series of metric_name="{{ $labels.metric_name }}" because the {{ $labels.limit }} cardinality budget is reached.`),
		sinkAlert("StatsdSinkUDPKernelDrops",
			c.ruleRate(c.self("statsd_sink_udp_kernel_drops_total"), "", w, sinkBy)+" > 0",
			"the kernel drops UDP datagrams for statsd-sink {{ $labels.instance }}",
			`The kernel dropped StatsD datagrams for statsd-sink instance="{{ $labels.instance }}" (job="{{ $labels.job }}") because its socket receive buffer was full over the last `+ww+`: the sink's readers do not keep up.`),
		proxyAlert("HopwatchProxyNotFlushing",
			c.ruleRate(c.stat("statsd.lines_sent"), "", w, proxyBy)+" == 0",
			"proxy {{ $labels.node_id }} stopped flushing stats",
			`No StatsD line from proxy node_id="{{ $labels.node_id }}" (job="{{ $labels.job }}") reached the sink in the last `+ww+`: its stats are frozen, so its hops look idle. An empty node_id means the sink does not label series by proxy, and every proxy behind it stopped.`),
		proxyAlert("HopwatchProxySpansDropped",
			c.ruleRate(c.stat("tracing.opentelemetry.spans_dropped"), "", w, proxyBy)+" > 0",
			"proxy {{ $labels.node_id }} drops spans",
			`The OpenTelemetry exporter of proxy node_id="{{ $labels.node_id }}" (job="{{ $labels.job }}") dropped spans over the last `+ww+`: traces through it have gaps.`),
	}
}
