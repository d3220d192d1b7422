package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/hopwatch/hopwatch/dashboards/lint"
	"github.com/hopwatch/hopwatch/dashboards/render"
	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/sink"
)

func build(t *testing.T) []Dashboard {
	t.Helper()
	ds, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func committed(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("generated", file))
	if err != nil {
		t.Fatalf("%v (run `make dashboards`)", err)
	}
	return b
}

// TestGeneratedUpToDate fails when dashboards/generated differs from what
// the builders produce: the committed JSON is what users import.
func TestGeneratedUpToDate(t *testing.T) {
	var want []string
	for _, d := range build(t) {
		want = append(want, d.File)
		got, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed(t, d.File)) {
			t.Errorf("dashboards/generated/%s is stale: run `make dashboards` and commit the result", d.File)
		}
		rec, err := render.LoadRecording(filepath.Join("preview", "data", d.File))
		if err != nil {
			t.Fatal(err)
		}
		img, err := render.PNG(d.Model, rec)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(d.File, ".json") + ".png"
		prev, err := os.ReadFile(filepath.Join("preview", name))
		if err != nil {
			t.Errorf("dashboards/preview/%s is missing (%v): run `make dashboards`", name, err)
		} else if problem := samePicture(prev, img); problem != "" {
			t.Errorf("dashboards/preview/%s is stale (%s): run `make dashboards`", name, problem)
		}
	}
	files, err := filepath.Glob("generated/*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.Contains(want, filepath.Base(f)) {
			t.Errorf("%s is not produced by any builder: delete it", f)
		}
	}
}

// samePicture compares two previews by their decoded pixels, not their
// bytes: the previews are rasterised by gonum/plot in floating point, whose
// last bits differ where the compiler fuses multiply-adds (arm64, ppc64le,
// s390x do, amd64 does not), which moves anti-aliased edges by a shade;
// and image/png's encoder may compress the same pixels differently in
// another Go release. Neither is a stale preview. A real change (a title,
// a panel, a recorded value, the layout) changes many pixels by a lot, so
// the pictures count as the same when they have the same size and at most
// maxChanged pixels differ by more than a quarter of full contrast in any
// channel. It returns "" or what differs.
func samePicture(a, b []byte) string {
	const maxChanged, contrast = 25, 64
	if bytes.Equal(a, b) {
		return "" // the usual case, on the platform that drew them
	}
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		return "committed file: " + err.Error()
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return "rendered: " + err.Error()
	}
	if ia.Bounds() != ib.Bounds() {
		return fmt.Sprintf("size %v, want %v", ia.Bounds().Size(), ib.Bounds().Size())
	}
	pa, pb := rgba(ia).Pix, rgba(ib).Pix
	changed := 0
	for i := 0; i+4 <= len(pa); i += 4 {
		for c := range 4 {
			if diff := int(pa[i+c]) - int(pb[i+c]); diff > contrast || diff < -contrast {
				changed++
				break
			}
		}
	}
	if changed > maxChanged {
		return fmt.Sprintf("%d pixels differ, at most %d may", changed, maxChanged)
	}
	return ""
}

// rgba returns img's pixels as RGBA, converting only when it is not.
func rgba(img image.Image) *image.RGBA {
	if r, ok := img.(*image.RGBA); ok && r.Rect.Min == (image.Point{}) {
		return r
	}
	r := image.NewRGBA(image.Rectangle{Max: img.Bounds().Size()})
	draw.Draw(r, r.Bounds(), img, img.Bounds().Min, draw.Src)
	return r
}

// TestProvisioningUpToDate checks the committed provisioning files against
// what dashgen writes with its default flags, and that they are YAML with
// the fields Grafana needs.
func TestProvisioningUpToDate(t *testing.T) {
	files, err := Provisioning(ProvisioningOptions{DashboardsPath: "/var/lib/grafana/dashboards/hopwatch", PrometheusURL: "http://127.0.0.1:9090", JaegerURL: "http://127.0.0.1:16686"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "provisioning", name))
		if err != nil {
			t.Fatalf("%v (run `make dashboards`)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/grafana/provisioning/%s is stale: run `make dashboards`", name)
		}
		var doc struct {
			APIVersion  int              `yaml:"apiVersion"`
			Providers   []map[string]any `yaml:"providers"`
			Datasources []map[string]any `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(got, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc.APIVersion != 1 || len(doc.Providers) > 1 || (len(doc.Providers) == 1) == (len(doc.Datasources) > 0) {
			t.Errorf("%s: want apiVersion 1 and one provider or the datasources, got %+v", name, doc)
		}
		if len(doc.Datasources) > 0 {
			checkDatasources(t, name, doc.Datasources)
		}
	}
	if _, err := Provisioning(ProvisioningOptions{DashboardsPath: "a\"b", PrometheusURL: "x", JaegerURL: "y"}); err == nil {
		t.Error("a path with a quote was accepted")
	}
}

// checkDatasources: the Prometheus datasource the dashboards default to,
// whose exemplars' trace_id opens the provisioned Jaeger datasource.
func checkDatasources(t *testing.T, name string, ds []map[string]any) {
	t.Helper()
	if len(ds) != 2 || ds[0]["uid"] != DatasourceUID || ds[0]["type"] != "prometheus" ||
		ds[1]["uid"] != JaegerDatasourceUID || ds[1]["type"] != "jaeger" {
		t.Fatalf("%s: want the prometheus datasource (uid %q) and the jaeger one (uid %q), got %v", name, DatasourceUID, JaegerDatasourceUID, ds)
	}
	jd, _ := ds[0]["jsonData"].(map[string]any)
	dest, _ := jd["exemplarTraceIdDestinations"].([]any)
	if len(dest) != 1 || fmt.Sprint(dest[0]) != fmt.Sprint(map[string]any{"name": "trace_id", "datasourceUid": JaegerDatasourceUID}) {
		t.Errorf("%s: exemplarTraceIdDestinations %v, want trace_id to the Jaeger datasource", name, jd["exemplarTraceIdDestinations"])
	}
}

func isCounter() func(string) bool {
	counters := map[string]bool{}
	for _, f := range stats.Catalogue() {
		if f.Kind == stats.KindCounter {
			counters[f.PrometheusName] = true
		}
	}
	for _, m := range sink.SelfMetrics() {
		if m.Counter {
			counters[m.Name] = true
		}
	}
	return func(name string) bool {
		if strings.HasPrefix(name, "~") {
			for c := range counters {
				if strings.Contains(c, "{") && namePattern(c) == name[1:] {
					return true
				}
			}
			return false
		}
		return counters[name]
	}
}

// TestLintCommitted runs the dashboard-linter rules over the committed JSON.
func TestLintCommitted(t *testing.T) {
	for _, d := range build(t) {
		problems, err := lint.Lint(committed(t, d.File), lint.Config{IsCounter: isCounter()})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", d.File, p)
		}
	}
}

// TestRoundTrip decodes every committed dashboard with the SDK's
// unmarshaller (which dispatches panels and queries to their plugin types)
// and encodes it again: nothing may be lost. Each panel is also decoded with
// the SDK's strict unmarshaller, which rejects unknown or mistyped fields.
// (Dashboard.UnmarshalJSONStrict itself cannot be used in v0.0.22: a panel
// that decodes cleanly returns a nil cog.BuildErrors inside a non-nil
// error, and PanelOrRowPanel then drops the panel.)
func TestRoundTrip(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	var bogus dashboard.Panel
	if err := bogus.UnmarshalJSONStrict([]byte(`{"type":"timeseries","bogus":1}`)); err == nil || err.Error() == "" {
		t.Fatal("the strict unmarshaller accepted an unknown field; this test would prove nothing")
	}
	for _, d := range build(t) {
		raw := committed(t, d.File)
		var m dashboard.Dashboard //nolint:staticcheck // SA1019: v1 on purpose
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Errorf("%s: unmarshal: %v", d.File, err)
			continue
		}
		again, err := Dashboard{File: d.File, Model: m}.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if !e2etest.JSONEqual(t, raw, again) {
			t.Errorf("%s: round trip through the SDK changed the dashboard", d.File)
		}
		var panels struct {
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(raw, &panels); err != nil {
			t.Fatal(err)
		}
		for i, p := range panels.Panels {
			var sp dashboard.Panel
			if err := sp.UnmarshalJSONStrict(p); err != nil && err.Error() != "" {
				t.Errorf("%s: panel %d: strict unmarshal: %v", d.File, i, err)
			}
		}
	}
}

// catalogued is every name a query may use: proxy families (histograms
// with their _bucket, _sum and _count series), zone families as the regex
// the query builder makes of them, and the sink's self-metrics.
func catalogued() map[string]bool {
	names := map[string]bool{}
	for _, f := range stats.Catalogue() {
		n := f.PrometheusName
		if strings.Contains(n, "{") {
			names["~"+namePattern(n)] = true
			n = namePattern(n)
		}
		names[n] = true
		if f.Kind == stats.KindHistogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[n+s] = true
				if strings.Contains(f.PrometheusName, "{") {
					names["~"+namePattern(f.PrometheusName+s)] = true
				}
			}
		}
	}
	for _, m := range sink.SelfMetrics() {
		names[m.Name] = true
	}
	return names
}

// TestQueriesUseCataloguedNames: every selector in every panel and variable
// names a catalogued metric or a series hopwatch's rules record.
func TestQueriesUseCataloguedNames(t *testing.T) {
	names := catalogued()
	for _, g := range defaultRules(t).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				names[r.Record] = true
			}
		}
	}
	for _, d := range build(t) {
		ld, err := lint.Parse(committed(t, d.File))
		if err != nil {
			t.Fatal(err)
		}
		var exprs []string
		for _, p := range ld.Panels {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
		}
		for _, v := range ld.Templating.List {
			if v.Type == "query" {
				q := v.QueryString()
				exprs = append(exprs, strings.TrimSuffix(strings.TrimPrefix(q[:strings.LastIndexByte(q, ',')], "label_values("), ")"))
			}
		}
		for _, e := range exprs {
			pe, err := lint.ParseExpr(e)
			if err != nil {
				t.Errorf("%s: %q: %v", d.File, e, err)
				continue
			}
			parser.Inspect(pe, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					if name := lint.SelectorName(vs); !names[name] {
						t.Errorf("%s: %q uses %q, which is not in the stats catalogue, sink.SelfMetrics or the recording rules", d.File, e, name)
					}
				}
				return nil
			})
		}
	}
}

// TestDashboardRules checks the rules of the issue that the linter does
// not: uids, tags, variables per dashboard, thresholds on success-rate and
// latency panels, Jaeger links on latency panels, links between dashboards
// that carry the variables.
func TestDashboardRules(t *testing.T) {
	wantVars := map[string][]string{
		UIDOverview: {VarDatasource, VarJob, VarInstance, VarConnManager},
		UIDUpstream: {VarDatasource, VarJob, VarInstance, VarCluster},
		UIDCanary:   {VarDatasource, VarJob, VarInstance, VarCluster},
		UIDZones:    {VarDatasource, VarJob, VarInstance, VarCluster},
		UIDSink:     {VarDatasource, VarJob, VarInstance},
	}
	var uids []string
	for _, d := range build(t) {
		raw := committed(t, d.File)
		ld, err := lint.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, ld.UID)
		var vars []string
		for _, v := range ld.Templating.List {
			vars = append(vars, v.Name)
		}
		if want, ok := wantVars[ld.UID]; !ok || !slices.Equal(vars, want) {
			t.Errorf("%s: variables %v, want %v", ld.UID, vars, want)
		}
		if !slices.Contains(d.Model.Tags, Tag) {
			t.Errorf("%s: tags %v lack %q", ld.UID, d.Model.Tags, Tag)
		}
		if len(d.Model.Links) != 1 || !d.Model.Links[0].IncludeVars || !d.Model.Links[0].KeepTime || !slices.Equal(d.Model.Links[0].Tags, []string{Tag}) {
			t.Errorf("%s: want one link to the %q dashboards that keeps time and variables, got %+v", ld.UID, Tag, d.Model.Links)
		}
		for _, p := range ld.Panels {
			unit := p.FieldConfig.Defaults.Unit
			steps := 0
			if th := p.FieldConfig.Defaults.Thresholds; th != nil {
				steps = len(th.Steps)
			}
			lower := strings.ToLower(p.Title)
			if (strings.Contains(lower, "success rate") || strings.Contains(lower, "latency")) && steps < 3 {
				t.Errorf("%s panel %q: success-rate and latency panels need graded thresholds, got %d steps", ld.UID, p.Title, steps)
			}
			if unit == unitMillis && strings.Contains(lower, "latency") && p.Type == "timeseries" {
				if !slices.ContainsFunc(p.Targets, func(q lint.Target) bool {
					return q.Exemplar && strings.Contains(q.Expr, "_bucket{")
				}) {
					t.Errorf("%s panel %q: latency panel without exemplars (a bucket query with exemplar: true) to open traces", ld.UID, p.Title)
				}
			}
			// A cluster or connection manager is not a Jaeger service:
			// spans are under the proxy's service_name (node.id).
			for _, l := range p.FieldConfig.Defaults.Links {
				if strings.Contains(l.URL, "service=${__field.labels.envoy_") {
					t.Errorf("%s panel %q: link %q searches Jaeger for a Prometheus label as a service", ld.UID, p.Title, l.URL)
				}
			}
		}
	}
	if want := []string{UIDOverview, UIDUpstream, UIDCanary, UIDZones, UIDSink}; !slices.Equal(uids, want) {
		t.Errorf("uids %v, want %v (uids are stable: links and bookmarks use them)", uids, want)
	}
}

// TestSamePictureSeesSmallChanges: the tolerance of samePicture must not
// hide a stale preview; one changed letter in one panel title is enough.
func TestSamePictureSeesSmallChanges(t *testing.T) {
	// The smallest dashboard: drawing is slow under the race detector.
	ds := build(t)
	d := ds[len(ds)-1]
	rec, err := render.LoadRecording(filepath.Join("preview", "data", d.File))
	if err != nil {
		t.Fatal(err)
	}
	before, err := render.PNG(d.Model, rec)
	if err != nil {
		t.Fatal(err)
	}
	if p := samePicture(before, before); p != "" {
		t.Fatalf("a picture differs from itself: %s", p)
	}
	// The pixel comparison itself, past the fast path for equal bytes: the
	// same pixels encoded at another compression level are the same picture.
	img, err := png.Decode(bytes.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&again, img); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again.Bytes(), before) {
		t.Fatal("re-encoding gave the same bytes; this test would not reach the pixel comparison")
	}
	if p := samePicture(before, again.Bytes()); p != "" {
		t.Errorf("the same pixels, encoded differently, count as different: %s", p)
	}
	m := d.Model
	m.Panels = slices.Clone(m.Panels)
	changed := *m.Panels[0].Panel
	title := *changed.Title + "s"
	changed.Title = &title
	m.Panels[0].Panel = &changed
	after, err := render.PNG(m, rec)
	if err != nil {
		t.Fatal(err)
	}
	if samePicture(before, after) == "" {
		t.Errorf("renaming panel %q to %q went unnoticed", *d.Model.Panels[0].Panel.Title, title)
	}
}
