// Package lint checks Grafana dashboard JSON with the rules of
// grafana/dashboard-linter, reimplemented because the linter cannot be
// installed here: template-datasource, template-job, template-instance,
// template-label-promql, template-on-time-change-reload, template-uneditable,
// panel-datasource, panel-units, panel-title-description, panel-no-targets,
// target-promql, target-rate-interval, target-counter-agg, target-job and
// target-instance, plus hopwatch's template-multi-all. PromQL is parsed with Prometheus's own parser after the
// Grafana variables are substituted.
package lint

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Problem is one rule violation.
type Problem struct {
	Rule      string // dashboard-linter rule name (target-rate-interval)
	Dashboard string // dashboard title
	Where     string // "panel 3 \"Retries\" target B", "variable job", or ""
	Message   string
}

func (p Problem) String() string {
	if p.Where == "" {
		return fmt.Sprintf("%s: %s: %s", p.Dashboard, p.Rule, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s: %s", p.Dashboard, p.Where, p.Rule, p.Message)
}

// Config tunes the rules that need knowledge beyond the JSON.
type Config struct {
	// IsCounter reports whether a metric name is a counter. Nil falls back
	// to the linter's heuristic: names ending in _total.
	IsCounter func(name string) bool
	// IsKnown reports whether a selector may name a metric (the catalogue,
	// plus recorded series); used by CheckRuleExpr. Nil allows every name.
	IsKnown func(name string) bool
}

// Dashboard is the part of Grafana's dashboard JSON the rules read.
type Dashboard struct {
	UID        string     `json:"uid"`
	Title      string     `json:"title"`
	Editable   *bool      `json:"editable"`
	Panels     []Panel    `json:"panels"`
	Templating Templating `json:"templating"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a dashboard variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Label      string          `json:"label"`
	Query      json.RawMessage `json:"query"`
	Datasource *Datasource     `json:"datasource"`
	Refresh    int             `json:"refresh"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

// QueryString is the variable's query, whether stored as a string or as
// {"query": "..."}.
func (v Variable) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var m struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &m) == nil {
		return m.Query
	}
	return ""
}

// Datasource is a datasource reference.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is a dashboard panel (rows' nested panels are flattened by Parse).
type Panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *Datasource `json:"datasource"`
	Targets     []Target    `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Links      []Link `json:"links"`
			Thresholds *struct {
				Steps []struct {
					Value *float64 `json:"value"`
					Color string   `json:"color"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Links   []Link                   `json:"links"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Panels  []Panel                  `json:"panels"`
}

// Link is a panel link or data link.
type Link struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Exemplar   bool        `json:"exemplar"`
	Datasource *Datasource `json:"datasource"`
}

// Parse decodes dashboard JSON, flattening row panels.
func Parse(raw []byte) (Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return Dashboard{}, fmt.Errorf("lint: dashboard JSON: %w", err)
	}
	var flat []Panel
	for _, p := range d.Panels {
		flat = append(flat, p)
		flat = append(flat, p.Panels...)
	}
	d.Panels = flat
	return d, nil
}

// rateInterval stands for $__rate_interval while parsing, so that the
// rate-interval rule can recognise it in the AST.
const rateInterval = 7*time.Hour + 7*time.Minute + 7*time.Second

// Substitute replaces Grafana variables in expr: ${name}, ${name:format}
// and $name, using values; names not in values are left alone.
func Substitute(expr string, values map[string]string) string {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	// Longest first, so $__rate_interval is not taken for $__rate.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	var b strings.Builder
	for i := 0; i < len(expr); {
		if expr[i] != '$' {
			b.WriteByte(expr[i])
			i++
			continue
		}
		rest := expr[i+1:]
		if strings.HasPrefix(rest, "{") {
			if end := strings.IndexByte(rest, '}'); end > 0 {
				name, _, _ := strings.Cut(rest[1:end], ":")
				if v, ok := values[name]; ok {
					b.WriteString(v)
					i += 1 + end + 1
					continue
				}
			}
		}
		matched := false
		for _, n := range names {
			if strings.HasPrefix(rest, n) && !identByte(rest, len(n)) {
				b.WriteString(values[n])
				i += 1 + len(n)
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte('$')
			i++
		}
	}
	return b.String()
}

func identByte(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// lintValues are what the rules substitute before parsing: the interval
// variables become durations (the rate interval a recognisable one), and
// label variables stay as they are, since "$job" is a valid label value.
var lintValues = map[string]string{
	"__rate_interval": rateInterval.String(),
	"__interval":      "1m",
	"__range":         "1h",
}

// ParseExpr parses a PromQL expression after substituting the interval
// variables as the rules do.
func ParseExpr(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(Substitute(expr, lintValues))
}

func dsIsVariable(ds *Datasource) bool {
	return ds != nil && (ds.UID == "$datasource" || ds.UID == "${datasource}")
}

// Lint checks one dashboard's JSON against every rule.
func Lint(raw []byte, cfg Config) ([]Problem, error) {
	d, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	isCounter := cfg.IsCounter
	if isCounter == nil {
		isCounter = func(name string) bool { return strings.HasSuffix(name, "_total") }
	}
	var out []Problem
	report := func(rule, where, format string, args ...any) {
		out = append(out, Problem{Rule: rule, Dashboard: d.Title, Where: where, Message: fmt.Sprintf(format, args...)})
	}
	lintTemplates(d, report)
	for _, p := range d.Panels {
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if !dsIsVariable(p.Datasource) {
			report("panel-datasource", where, "datasource must be ${datasource}, got %+v", p.Datasource)
		}
		if p.Title == "" || p.Description == "" {
			report("panel-title-description", where, "panel needs a title and a description")
		}
		if u := p.FieldConfig.Defaults.Unit; u == "" {
			report("panel-units", where, "no unit set")
		} else if !validUnits[u] {
			report("panel-units", where, "unit %q is not a Grafana unit", u)
		}
		if len(p.Targets) == 0 {
			report("panel-no-targets", where, "panel has no targets")
		}
		for _, t := range p.Targets {
			tw := where + " target " + t.RefID
			if t.Datasource != nil && !dsIsVariable(t.Datasource) {
				report("panel-datasource", tw, "target datasource must be ${datasource}, got %+v", t.Datasource)
			}
			lintTarget(t.Expr, tw, isCounter, report)
		}
	}
	return out, nil
}

func lintTemplates(d Dashboard, report func(rule, where, format string, args ...any)) {
	if d.Editable == nil || *d.Editable {
		report("template-uneditable", "", "dashboard must have editable: false")
	}
	byName := map[string]Variable{}
	for _, v := range d.Templating.List {
		byName[v.Name] = v
	}
	ds, ok := byName["datasource"]
	switch {
	case !ok:
		report("template-datasource", "", "no variable named datasource")
	case ds.Type != "datasource" || ds.QueryString() != "prometheus" || ds.Label != "Data source":
		report("template-datasource", "variable datasource", "must be type datasource, query prometheus, label \"Data source\"; got type %q query %q label %q", ds.Type, ds.QueryString(), ds.Label)
	}
	for _, name := range []string{"job", "instance"} {
		rule := "template-" + name
		v, ok := byName[name]
		if !ok {
			report(rule, "", "no variable named %s", name)
			continue
		}
		if v.Type != "query" || !dsIsVariable(v.Datasource) || v.Label != name || !v.Multi || !v.IncludeAll {
			report(rule, "variable "+name, "must be a multi-value query variable with All, label %q and datasource ${datasource}", name)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := "variable " + v.Name
		if v.Refresh != 2 {
			report("template-on-time-change-reload", where, "refresh must be 2 (on time range change), got %d", v.Refresh)
		}
		// job and instance have their own rules; hopwatch wants every
		// other label variable multi-valued with All too.
		if v.Name != "job" && v.Name != "instance" && (!v.Multi || !v.IncludeAll) {
			report("template-multi-all", where, "label variables must allow multi-select and All")
		}
		q := v.QueryString()
		if inner, ok := labelValuesExpr(q); ok {
			if inner != "" {
				if _, err := ParseExpr(inner); err != nil {
					report("template-label-promql", where, "label_values expression %q: %v", inner, err)
				}
			}
		} else if _, err := ParseExpr(q); err != nil {
			report("template-label-promql", where, "query %q: %v", q, err)
		}
	}
}

// labelValuesExpr returns the selector of label_values(selector, label),
// or "" for label_values(label).
func labelValuesExpr(q string) (string, bool) {
	q = strings.TrimSpace(q)
	if !strings.HasPrefix(q, "label_values(") || !strings.HasSuffix(q, ")") {
		return "", false
	}
	inner := q[len("label_values(") : len(q)-1]
	i := strings.LastIndexByte(inner, ',')
	if i < 0 {
		return "", true
	}
	return strings.TrimSpace(inner[:i]), true
}

var rateFuncs = map[string]bool{"rate": true, "irate": true, "increase": true}

func lintTarget(expr, where string, isCounter func(string) bool, report func(rule, where, format string, args ...any)) {
	e, err := ParseExpr(expr)
	if err != nil {
		report("target-promql", where, "%q does not parse: %v", expr, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.Call:
			if !rateFuncs[n.Func.Name] || len(n.Args) == 0 {
				return nil
			}
			var r time.Duration
			switch a := n.Args[0].(type) {
			case *parser.MatrixSelector:
				r = a.Range
			case *parser.SubqueryExpr:
				r = a.Range
			}
			if r != rateInterval {
				report("target-rate-interval", where, "%s must use [$__rate_interval]", n.Func.Name)
			}
		case *parser.VectorSelector:
			name := SelectorName(n)
			for _, lbl := range []string{"job", "instance"} {
				if !hasVarMatcher(n.LabelMatchers, lbl) {
					report("target-"+lbl, where, "selector %s lacks %s=~\"$%s\"", n.String(), lbl, lbl)
				}
			}
			if name != "" && isCounter(name) && !insideRate(path) {
				report("target-counter-agg", where, "counter %s is used outside rate, irate or increase", name)
			}
		}
		return nil
	})
}

// SelectorName is a selector's metric name, or "~<regex>" when the name
// is matched by a regex on __name__ (zone stats), or "".
func SelectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			if m.Type == labels.MatchEqual {
				return m.Value
			}
			return "~" + m.Value
		}
	}
	return ""
}

func hasVarMatcher(ms []*labels.Matcher, name string) bool {
	return slices.ContainsFunc(ms, func(m *labels.Matcher) bool {
		return m.Name == name && m.Type == labels.MatchRegexp && (m.Value == "$"+name || m.Value == "${"+name+"}")
	})
}

// insideRate reports whether the innermost function call above a selector
// is rate, irate or increase, with only a range or subquery between.
func insideRate(path []parser.Node) bool {
	for i := len(path) - 1; i >= 0; i-- {
		switch n := path[i].(type) {
		case *parser.MatrixSelector, *parser.SubqueryExpr, *parser.ParenExpr:
			continue
		case *parser.Call:
			if rateFuncs[n.Func.Name] {
				return true
			}
			// label_replace and friends may sit between the range and the
			// selector inside a subquery; keep looking outwards.
			if n.Func.Name == "label_replace" || n.Func.Name == "label_join" {
				continue
			}
			return false
		default:
			return false
		}
	}
	return false
}

// CheckRuleExpr checks a Prometheus rule expression (a recording or
// alerting rule's expr) with the dashboard rules that apply outside
// Grafana: it parses (rule-promql), every selector names a known metric
// (rule-known-name, cfg.IsKnown), and counters appear only inside rate,
// irate or increase (rule-counter-agg). Rules have no dashboard variables,
// so the job, instance and $__rate_interval rules do not apply.
func CheckRuleExpr(expr, where string, cfg Config) []Problem {
	isCounter := cfg.IsCounter
	if isCounter == nil {
		isCounter = func(name string) bool { return strings.HasSuffix(name, "_total") }
	}
	var ps []Problem
	report := func(rule, format string, args ...any) {
		ps = append(ps, Problem{Dashboard: "rules", Where: where, Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		report("rule-promql", "%q does not parse: %v", expr, err)
		return ps
	}
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := SelectorName(vs)
		if cfg.IsKnown != nil && !cfg.IsKnown(name) {
			report("rule-known-name", "selector %s names %q, which is neither catalogued nor recorded", vs.String(), name)
		}
		if name != "" && isCounter(name) && !insideRate(path) {
			report("rule-counter-agg", "counter %s is used outside rate, irate or increase", name)
		}
		return nil
	})
	return ps
}
