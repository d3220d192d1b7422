// Package envoymixin checks that Envoy's community dashboards
// (github.com/adinhodovic/envoy-mixin, copied in testdata/envoy-mixin) work
// on hopwatch unchanged: every metric name and label set their queries use
// must exist in statsd-sink's /metrics and in a proxy's /stats/prometheus
// once the dev environment (deploy/local/up.sh) has run with traffic.
package envoymixin

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/hopwatch/hopwatch/dashboards/lint"
)

// TargetLabels are the labels Prometheus adds from service discovery
// (the mixin's dashboards filter by Kubernetes cluster, namespace, job and
// pod). No exporter emits them, so they are not asked of the pipeline.
var TargetLabels = []string{"cluster", "namespace", "job", "pod", "instance"}

// varValue stands for a dashboard variable's value while parsing; a
// matcher whose value holds it asks only that the label exists.
const varValue = "VAR_VALUE"

// Need is what one vector selector of the dashboards asks of the metrics:
// a metric name, the labels it must carry (matched on a variable, grouped
// by, or read by label_values), and the matchers with fixed values that
// some series must satisfy.
type Need struct {
	Metric string
	Labels []string
	// Fixed are the matchers with a literal value, such as
	// envoy_response_code_class="5", as text.
	Fixed []string

	matchers []*labels.Matcher
}

// Key names the need in reports and in a gap list:
// metric{label1,label2,fixed="v"}.
func (n Need) Key() string {
	return n.Metric + "{" + strings.Join(append(slices.Clone(n.Labels), n.Fixed...), ",") + "}"
}

// Series is one exposed series: its metric name and labels.
type Series struct {
	Name   string
	Labels map[string]string
}

// SatisfiedBy reports whether one of the series has the need's metric
// name, carries every label it needs, and matches its fixed matchers.
func (n Need) SatisfiedBy(series []Series) bool {
	for _, s := range series {
		if s.Name != n.Metric {
			continue
		}
		ok := true
		for _, l := range n.Labels {
			if _, has := s.Labels[l]; !has {
				ok = false
				break
			}
		}
		for _, m := range n.matchers {
			if !ok {
				break
			}
			ok = m.Matches(s.Labels[m.Name])
		}
		if ok {
			return true
		}
	}
	return false
}

// Query is one query of a dashboard: a panel target or a variable's
// label_values.
type Query struct {
	Where string // file / panel title / refId, or file / $variable
	Expr  string
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// LoadQueries reads every panel target and every query variable of the
// dashboards in dir.
func LoadQueries(dir string) ([]Query, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no dashboards (*.json)", dir)
	}
	var qs []Query
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		d, err := lint.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		base := filepath.Base(f)
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) != "" {
					qs = append(qs, Query{Where: base + " / " + p.Title + " / " + tg.RefID, Expr: tg.Expr})
				}
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				qs = append(qs, Query{Where: base + " / $" + v.Name, Expr: v.QueryString()})
			}
		}
	}
	return qs, nil
}

// varRE matches Grafana's variable forms: $name, ${name} and ${name:fmt}.
var varRE = regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*(:[a-z]+)?\}?`)

// substitute makes a dashboard query valid PromQL: intervals become 5m,
// every other variable varValue.
func substitute(expr string) string {
	return varRE.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		name, _, _ = strings.Cut(name, ":")
		switch name {
		case "__rate_interval", "__interval", "__range", "interval", "__range_s":
			return "5m"
		}
		return varValue
	})
}

// Needs parses every query and returns what its selectors need, merged by
// key and sorted.
func Needs(qs []Query) ([]Need, error) {
	byKey := map[string]Need{}
	for _, q := range qs {
		expr, extra := q.Expr, ""
		if m := labelValuesRE.FindStringSubmatch(expr); m != nil {
			expr, extra = m[1], m[2]
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(substitute(expr))
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", q.Where, err, q.Expr)
		}
		var inspectErr error
		parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := lint.SelectorName(vs)
			if name == "" {
				inspectErr = fmt.Errorf("%s: a selector without a metric name: %s", q.Where, vs)
				return inspectErr
			}
			need := Need{Metric: name}
			labelSet := map[string]bool{}
			for _, m := range vs.LabelMatchers {
				switch {
				case m.Name == model.MetricNameLabel || slices.Contains(TargetLabels, m.Name):
				case strings.Contains(m.Value, varValue):
					labelSet[m.Name] = true
				default:
					labelSet[m.Name] = true
					need.Fixed = append(need.Fixed, m.String())
					need.matchers = append(need.matchers, m)
				}
			}
			for _, p := range path {
				if a, ok := p.(*parser.AggregateExpr); ok && !a.Without {
					for _, g := range a.Grouping {
						if !slices.Contains(TargetLabels, g) {
							labelSet[g] = true
						}
					}
				}
			}
			if extra != "" && !slices.Contains(TargetLabels, extra) {
				labelSet[extra] = true
			}
			for l := range labelSet {
				need.Labels = append(need.Labels, l)
			}
			sort.Strings(need.Labels)
			sort.Strings(need.Fixed)
			byKey[need.Key()] = need
			return nil
		})
		if inspectErr != nil {
			return nil, inspectErr
		}
	}
	out := make([]Need, 0, len(byKey))
	for _, n := range byKey {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}
