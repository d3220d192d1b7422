package dashboards

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/sink"
)

// Variable names shared by every dashboard. Keeping them equal across
// dashboards is what lets a link carry the chosen cluster over.
const (
	VarDatasource  = "datasource"
	VarJob         = "job"
	VarInstance    = "instance"
	VarCluster     = "envoy_cluster_name"
	VarConnManager = "envoy_http_conn_manager_prefix"
)

// RateInterval is the range every rate, irate and increase uses.
const RateInterval = "$__rate_interval"

// metric is a catalogued metric: a proxy stat family or a sink
// self-metric, reduced to what a query needs.
type metric struct {
	name    string // Prometheus name (for histograms, without _bucket)
	kind    stats.Kind
	labels  []string // label names, le excluded
	pattern bool     // name has placeholders ({from_zone}); matched by regex on __name__
}

// catalog finds metrics by their catalogue key and remembers lookups that
// failed, so a dashboard that names a stat the catalogue lacks fails to build.
type catalog struct {
	proxy map[string]stats.Family
	errs  []error
}

func newCatalog() *catalog {
	c := &catalog{proxy: map[string]stats.Family{}}
	for _, f := range stats.Catalogue() {
		c.proxy[f.Name] = f
	}
	return c
}

// stat returns the proxy family whose Envoy flat-name template is name
// (cluster.{envoy.cluster_name}.upstream_rq_completed).
func (c *catalog) stat(name string) metric {
	f, ok := c.proxy[name]
	if !ok {
		c.errs = append(c.errs, fmt.Errorf("dashboards: stat %q is not in proxy/stats.Catalogue()", name))
		return metric{name: "missing_" + promIdent(name), kind: stats.KindGauge}
	}
	m := metric{name: f.PrometheusName, kind: f.Kind, labels: f.PrometheusLabels}
	if strings.Contains(f.PrometheusName, "{") {
		m.pattern = true
	}
	return m
}

// self returns the sink self-metric called name.
func (c *catalog) self(name string) metric {
	s, ok := sink.LookupSelfMetric(name)
	if !ok {
		c.errs = append(c.errs, fmt.Errorf("dashboards: self-metric %q is not in sink.SelfMetrics()", name))
		return metric{name: "missing_" + promIdent(name), kind: stats.KindGauge}
	}
	k := stats.KindGauge
	if s.Counter {
		k = stats.KindCounter
	}
	return metric{name: s.Name, kind: k, labels: s.Labels}
}

func promIdent(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// scope is the set of variables a dashboard defines; selectors filter on
// those that the metric carries as labels.
type scope struct {
	vars []string // label variables besides job and instance
}

// selector renders m's series selector: name plus the job and instance
// matchers every query carries, plus a matcher for each dashboard variable
// that m has as a label, plus extra matchers.
func (s scope) selector(m metric, suffix string, extra ...string) string {
	var ms []string
	name := m.name + suffix
	if m.pattern {
		ms = append(ms, `__name__=~"`+namePattern(name)+`"`)
	}
	ms = append(ms, VarJob+`=~"$`+VarJob+`"`, VarInstance+`=~"$`+VarInstance+`"`)
	for _, v := range s.vars {
		if slices.Contains(m.labels, v) {
			ms = append(ms, v+`=~"$`+v+`"`)
		}
	}
	ms = append(ms, extra...)
	if m.pattern {
		return "{" + strings.Join(ms, ", ") + "}"
	}
	return name + "{" + strings.Join(ms, ", ") + "}"
}

// namePattern turns envoy_cluster_zone_{from_zone}_{to_zone}_upstream_rq
// into a regex with one capture group per placeholder.
func namePattern(name string) string {
	return stats.FillPlaceholders(name, func(string) string { return "(.+)" })
}

func by(labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	return " by (" + strings.Join(labels, ", ") + ")"
}

// rate is sum by (labels) (rate(counter[$__rate_interval])). Only counters
// may be rated; anything else is recorded as an error.
func (c *catalog) rate(s scope, m metric, groupBy []string, extra ...string) string {
	if m.kind != stats.KindCounter {
		c.errs = append(c.errs, fmt.Errorf("dashboards: rate over %s, which is a %s, not a counter", m.name, m.kind))
	}
	return "sum" + by(groupBy) + " (rate(" + s.selector(m, "", extra...) + "[" + RateInterval + "]))"
}

// increase is sum by (labels) (increase(counter[$__rate_interval])).
func (c *catalog) increase(s scope, m metric, groupBy []string, extra ...string) string {
	if m.kind != stats.KindCounter {
		c.errs = append(c.errs, fmt.Errorf("dashboards: increase over %s, which is a %s, not a counter", m.name, m.kind))
	}
	return "sum" + by(groupBy) + " (increase(" + s.selector(m, "", extra...) + "[" + RateInterval + "]))"
}

// gauge is sum by (labels) (gauge). Counters are refused: they are only
// meaningful inside rate, irate or increase.
func (c *catalog) gauge(s scope, m metric, groupBy []string, extra ...string) string {
	if m.kind != stats.KindGauge {
		c.errs = append(c.errs, fmt.Errorf("dashboards: %s is a %s, not a gauge", m.name, m.kind))
	}
	return "sum" + by(groupBy) + " (" + s.selector(m, "", extra...) + ")"
}

// quantile is histogram_quantile over a catalogued histogram's buckets.
func (c *catalog) quantile(s scope, q float64, m metric, groupBy []string) string {
	if m.kind != stats.KindHistogram {
		c.errs = append(c.errs, fmt.Errorf("dashboards: quantile over %s, which is a %s, not a histogram", m.name, m.kind))
	}
	return "histogram_quantile(" + strconv.FormatFloat(q, 'f', -1, 64) + ", sum" + by(append([]string{"le"}, groupBy...)) +
		" (rate(" + s.selector(m, "_bucket") + "[" + RateInterval + "])))"
}

// exemplarsOf is a target that draws no line, only the exemplars of m's
// buckets: the traced requests the sink keeps per bucket (the latest of
// each), which lead from a slow bucket to its trace. Prometheus's
// query_exemplars reads the selectors of the expression, so the
// comparison, which no bucket count passes, hides the buckets themselves.
// Recorded quantiles carry no exemplars, so every latency panel gets
// this query (panel.exemplars).
func (c *catalog) exemplarsOf(s scope, m metric) string {
	if m.kind != stats.KindHistogram {
		c.errs = append(c.errs, fmt.Errorf("dashboards: exemplars of %s, which is a %s, not a histogram", m.name, m.kind))
	}
	return s.selector(m, "_bucket") + " < 0"
}

// recordedWindow is the window of the recorded series the panels read:
// the shortest burn-rate window and the latency recordings' window of the
// default RuleOptions, so a panel shows what the fastest alert sees.
const recordedWindow = 5 * time.Minute

// recordedNames is every series the default rules record, with the labels
// each carries besides its hop's.
var recordedNames = sync.OnceValue(func() map[string]bool {
	o, err := RuleOptions{}.withDefaults()
	if err != nil {
		panic(err) // the defaults are valid; rules_test proves it
	}
	names := map[string]bool{}
	for _, r := range (ruleBuilder{c: newCatalog(), o: o}).recordings() {
		names[r.Record] = true
	}
	return names
})

// recorded returns the series the rules record for hop level (envoy_cluster
// or envoy_http) as stem:op at recordedWindow
// (envoy_cluster:upstream_rq_5xx:rate5m). A name the rules do not record is
// an error, as an uncatalogued stat is: the panel would show nothing.
func (c *catalog) recorded(level, stem, op string) metric {
	i := slices.IndexFunc(sloHops, func(h hop) bool { return h.level == level })
	if i < 0 {
		c.errs = append(c.errs, fmt.Errorf("dashboards: no recording rules at level %q", level))
		return metric{name: "missing_" + promIdent(level+":"+stem+":"+op), kind: stats.KindGauge}
	}
	h := sloHops[i]
	name := recName(h, stem, op, recordedWindow)
	if !recordedNames()[name] {
		c.errs = append(c.errs, fmt.Errorf("dashboards: %s is not recorded by dashboards.Rules", name))
		return metric{name: "missing_" + promIdent(name), kind: stats.KindGauge}
	}
	// A recorded series is a gauge to its readers: already a rate.
	return metric{name: name, kind: stats.KindGauge, labels: []string{VarJob, VarInstance, h.label}}
}

// recordedQuantile selects a recorded latency quantile. Quantiles do not
// add up, so there is no aggregation: one series per instance and hop.
func (c *catalog) recordedQuantile(s scope, m metric, q float64) string {
	return s.selector(m, "", `quantile="`+strconv.FormatFloat(q, 'f', -1, 64)+`"`)
}

// recordedSuccess is 1 − failed/all over recorded rates, summed by
// groupBy across instances. A hop that never failed has no failed series
// at all (Envoy creates upstream_rq_5xx on the first 5xx), so a missing one
// counts as 0 instead of hiding the hop.
func (c *catalog) recordedSuccess(s scope, failed, all metric, groupBy []string) string {
	a := c.gauge(s, all, groupBy)
	return "1 - (" + c.gauge(s, failed, groupBy) + " or 0 * " + a + ") / " + a
}
