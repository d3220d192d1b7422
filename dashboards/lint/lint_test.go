package lint

import (
	"encoding/json"
	"strings"
	"testing"
)

// good is a minimal dashboard that passes every rule; each case below
// breaks exactly one thing in it.
const good = `{
  "uid": "u", "title": "T", "editable": false,
  "templating": {"list": [
    {"name": "datasource", "type": "datasource", "label": "Data source", "query": "prometheus"},
    {"name": "job", "type": "query", "label": "job", "datasource": {"uid": "${datasource}"}, "refresh": 2, "multi": true, "includeAll": true, "query": "label_values(up, job)"},
    {"name": "instance", "type": "query", "label": "instance", "datasource": {"uid": "${datasource}"}, "refresh": 2, "multi": true, "includeAll": true, "query": {"query": "label_values(up{job=~\"$job\"}, instance)"}}
  ]},
  "panels": [{
    "id": 1, "type": "timeseries", "title": "P", "description": "D",
    "datasource": {"type": "prometheus", "uid": "${datasource}"},
    "fieldConfig": {"defaults": {"unit": "reqps"}},
    "targets": [{"refId": "A", "datasource": {"uid": "${datasource}"}, "expr": "sum(rate(x_total{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))"}]
  }]
}`

func mutate(t *testing.T, f func(d map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(good), &d); err != nil {
		t.Fatal(err)
	}
	f(d)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func panel0(d map[string]any) map[string]any { return d["panels"].([]any)[0].(map[string]any) }
func variable(d map[string]any, i int) map[string]any {
	return d["templating"].(map[string]any)["list"].([]any)[i].(map[string]any)
}
func setExpr(expr string) func(map[string]any) {
	return func(d map[string]any) {
		panel0(d)["targets"].([]any)[0].(map[string]any)["expr"] = expr
	}
}

func TestLint(t *testing.T) {
	sel := `{job=~"$job", instance=~"$instance"}`
	cases := []struct {
		name   string
		mutate func(map[string]any)
		rule   string // "" means no problem expected
	}{
		{"good", func(map[string]any) {}, ""},
		{"editable", func(d map[string]any) { d["editable"] = true }, "template-uneditable"},
		{"no datasource variable", func(d map[string]any) { variable(d, 0)["name"] = "ds" }, "template-datasource"},
		{"datasource label", func(d map[string]any) { variable(d, 0)["label"] = "DS" }, "template-datasource"},
		{"no job variable", func(d map[string]any) { variable(d, 1)["name"] = "service" }, "template-job"},
		{"instance not multi", func(d map[string]any) { variable(d, 2)["multi"] = false }, "template-instance"},
		{"cluster not multi", func(d map[string]any) {
			l := d["templating"].(map[string]any)
			l["list"] = append(l["list"].([]any), map[string]any{"name": "envoy_cluster_name", "type": "query", "datasource": map[string]any{"uid": "$datasource"}, "refresh": 2, "includeAll": true, "query": "label_values(up, envoy_cluster_name)"})
		}, "template-multi-all"},
		{"refresh on load", func(d map[string]any) { variable(d, 1)["refresh"] = 1 }, "template-on-time-change-reload"},
		{"bad label_values", func(d map[string]any) { variable(d, 1)["query"] = "label_values(up{, job)" }, "template-label-promql"},
		{"panel datasource", func(d map[string]any) { panel0(d)["datasource"] = map[string]any{"uid": "prom"} }, "panel-datasource"},
		{"target datasource", func(d map[string]any) {
			panel0(d)["targets"].([]any)[0].(map[string]any)["datasource"] = map[string]any{"uid": "prom"}
		}, "panel-datasource"},
		{"no unit", func(d map[string]any) { panel0(d)["fieldConfig"] = map[string]any{} }, "panel-units"},
		{"unknown unit", func(d map[string]any) {
			panel0(d)["fieldConfig"] = map[string]any{"defaults": map[string]any{"unit": "furlongs"}}
		}, "panel-units"},
		{"no description", func(d map[string]any) { delete(panel0(d), "description") }, "panel-title-description"},
		{"no targets", func(d map[string]any) { panel0(d)["targets"] = []any{} }, "panel-no-targets"},
		{"bad promql", setExpr(`sum(rate(x_total` + sel + `[$__rate_interval])`), "target-promql"},
		{"fixed rate range", setExpr(`sum(rate(x_total` + sel + `[5m]))`), "target-rate-interval"},
		{"fixed increase range", setExpr(`increase(x_total` + sel + `[1h])`), "target-rate-interval"},
		{"subquery rate ok", setExpr(`rate(label_replace(x_total` + sel + `, "a", "$1", "__name__", "(.+)")[$__rate_interval:])`), ""},
		{"counter without rate", setExpr(`sum(x_total` + sel + `)`), "target-counter-agg"},
		{"counter in delta", setExpr(`delta(x_total` + sel + `[$__rate_interval])`), "target-counter-agg"},
		{"gauge without rate", setExpr(`sum(x_active` + sel + `)`), ""},
		{"no job matcher", setExpr(`sum(rate(x_total{instance=~"$instance"}[$__rate_interval]))`), "target-job"},
		{"job equality", setExpr(`sum(rate(x_total{job="$job", instance=~"$instance"}[$__rate_interval]))`), "target-job"},
		{"no instance matcher", setExpr(`sum(rate(x_total{job=~"$job"}[$__rate_interval]))`), "target-instance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problems, err := Lint(mutate(t, tc.mutate), Config{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.rule == "" {
				for _, p := range problems {
					t.Errorf("unexpected problem: %s", p)
				}
				return
			}
			found := false
			for _, p := range problems {
				if p.Rule == tc.rule {
					found = true
				} else {
					t.Errorf("unexpected problem besides %s: %s", tc.rule, p)
				}
			}
			if !found {
				t.Errorf("rule %s did not fire; problems: %v", tc.rule, problems)
			}
		})
	}
}

func TestLintCustomCounters(t *testing.T) {
	raw := mutate(t, setExpr(`sum(envoy_cluster_upstream_rq{job=~"$job", instance=~"$instance"})`))
	problems, err := Lint(raw, Config{IsCounter: func(n string) bool { return n == "envoy_cluster_upstream_rq" }})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Rule != "target-counter-agg" {
		t.Errorf("a catalogued counter without _total used outside rate: got %v", problems)
	}
}

func TestLintBadJSON(t *testing.T) {
	if _, err := Lint([]byte(`{"panels": 3}`), Config{}); err == nil || !strings.Contains(err.Error(), "dashboard JSON") {
		t.Errorf("want a dashboard JSON error, got %v", err)
	}
}

func TestSubstitute(t *testing.T) {
	vals := map[string]string{"job": ".*", "__rate_interval": "1m", "__rate": "X"}
	cases := []struct{ in, want string }{
		{`rate(x{job=~"$job"}[$__rate_interval])`, `rate(x{job=~".*"}[1m])`},
		{`x{job=~"${job}"}`, `x{job=~".*"}`},
		{`x{job=~"${job:regex}"}`, `x{job=~".*"}`},
		{`x{job=~"$jobs"}`, `x{job=~"$jobs"}`},
		{`$__rate`, `X`},
		{`$`, `$`},
		{`${`, `${`},
		{`${unknown}`, `${unknown}`},
	}
	for _, tc := range cases {
		if got := Substitute(tc.in, vals); got != tc.want {
			t.Errorf("Substitute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzLint feeds arbitrary bytes as dashboard JSON and arbitrary strings as
// target expressions: the linter must report, never panic or hang.
func FuzzLint(f *testing.F) {
	f.Add([]byte(good), `sum(rate(x_total{job=~"$job"}[$__rate_interval]))`)
	f.Add([]byte(`{"panels":[{"type":"row","panels":[{"type":"stat"}]}]}`), `${`)
	f.Add([]byte(`{}`), `label_values(`)
	f.Fuzz(func(t *testing.T, raw []byte, expr string) {
		_, _ = Lint(raw, Config{})
		_ = Substitute(expr, lintValues)
		var d map[string]any
		if json.Unmarshal([]byte(good), &d) == nil {
			setExpr(expr)(d)
			b, _ := json.Marshal(d)
			if _, err := Lint(b, Config{}); err != nil {
				t.Fatalf("valid JSON with expr %q: %v", expr, err)
			}
		}
	})
}
