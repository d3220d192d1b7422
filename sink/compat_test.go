package sink

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/exporter"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/expose"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// compatLines exercise every type, sampling, all four tag styles, glob and
// regex mappings, drop, label templating, honor_labels, scale,
// match_metric_type, empty names, negative counters and type conflicts.
// Sampled timers and sets are left out: they differ on purpose.
var compatLines = []string{
	"plain.counter:1|c", "plain.counter:2|c", "plain.counter:3|c|@0.5",
	"plain.gauge:10|g", "plain.gauge:+5|g", "plain.gauge:-2|g", "plain.gauge:7|g|@0.1",
	"plain.timer:250|ms", "plain.timer:1500|ms", "plain.hist:0.3|h", "plain.dist:2|d",
	"multi:1|c:2|c:3|g",
	"ext:1:2:3|ms",
	"app.web.requests:1|c", "app.api.requests:4|c",
	"app.web.latency:50|ms", "app.web.latency:5|ms", "app.web.latency:2000|ms",
	"app.web.size:100|h", "app.web.size:300|h",
	"drop.me:1|c",
	"regex.foo.hits:2|c", "regex.bar.hits:3|c",
	"honor.x:1|c|#env:tagged", "honor.y:1|c",
	"scaled.x:10|g", "scaled.t:10|ms",
	"typed.x:3|g", "typed.x:3|c",
	"empty.x:1|c",
	"neg.counter:-1|c", "neg.counter:2|c",
	"conflict.name:1|c", "conflict.name:1|g",
	"hsum:1|h", "hsum_sum:1|c",
	"dog.c:1|c|#env:prod,region:eu", "dog.c:1|c|#region:eu,env:prod", "dog.c:2|c|#env:dev",
	"dog.dots:1|c|#key.with.dots:v",
	"influx.c,env=prod,region=eu:1|c",
	"librato.c#env=prod:1|c",
	"signalfx.c[env=prod,region=eu]:1|c",
	"container:1|c|#env:a|c:abc123",
	"ts:1|c|T1656581400",
	"bad", ":1|c", "x:|c", "x:1", "x:1|c|@", "x:1|c|#a:b|x", "x:1:2|c", "x,a=b:1|c|#c:d", "x:1|q", "x:1|c||",
	"5digits.start:1|c", "dash--name:1|c", "utf8.é:1|c",
	"x:1|c|@0.5|@0.5",
}

// referenceExposition runs the lines through statsd_exporter's own parser,
// mapper and exporter and returns the gathered families.
func referenceExposition(t *testing.T, mappingYAML string, lines []string) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := &mapper.MetricMapper{}
	if mappingYAML != "" {
		if err := m.InitFromYAMLString(mappingYAML); err != nil {
			t.Fatal(err)
		}
	}
	cv := func(name string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name}, labels)
	}
	c := func(name string) prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: name}) }
	logger := slog.New(slog.DiscardHandler)
	ex := exporter.NewExporter(reg, m, logger, cv("a", "action"), c("b"), cv("c", "reason"), cv("d", "type"),
		cv("e", "type", "metric_name"), prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "f"}, []string{"type"}))
	p := line.NewParser()
	p.EnableDogstatsdParsing()
	p.EnableInfluxdbParsing()
	p.EnableLibratoParsing()
	p.EnableSignalFXParsing()
	ch := make(chan event.Events, len(lines))
	for _, l := range lines {
		ch <- p.LineToEvents(l, *cv("g", "reason"), c("h"), c("i"), c("j"), logger)
	}
	close(ch)
	ex.Listen(ch)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// ourExposition runs the same lines through the sink and parses its text.
func ourExposition(t *testing.T, mappingFile string, lines []string) map[string]*dto.MetricFamily {
	t.Helper()
	m, err := mapping.Load(mapping.Options{File: mappingFile})
	if err != nil {
		t.Fatal(err)
	}
	store := aggregate.New(aggregate.Options{})
	p := NewPipeline(statsd.NewParser(), m, store, NewMetrics(nil), nil, 1000)
	w := p.NewWorker()
	for _, l := range lines {
		w.HandleLine([]byte(l))
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := expose.WriteText(bw, store.Snapshot()); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	return parseText(t, &buf)
}

func parseText(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return fams
}

// canon renders families as sorted "name{labels} value" lines, so that
// comparisons ignore ordering and HELP text only where noted.
func canon(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for name, f := range fams {
		out = append(out, "# TYPE "+name+" "+strings.ToLower(f.GetType().String())+" HELP "+f.GetHelp())
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(ls)
			key := name + "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.Counter != nil:
				out = append(out, key+" "+fmtF(m.Counter.GetValue()))
			case m.Gauge != nil:
				out = append(out, key+" "+fmtF(m.Gauge.GetValue()))
			case m.Untyped != nil:
				out = append(out, key+" "+fmtF(m.Untyped.GetValue()))
			case m.Histogram != nil:
				h := m.Histogram
				for _, b := range h.Bucket {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // implicit in client_golang's output; equals count
					}
					out = append(out, key+" le="+fmtF(b.GetUpperBound())+" "+fmtF(float64(b.GetCumulativeCount())))
				}
				out = append(out, key+" sum="+fmtF(h.GetSampleSum())+" count="+fmtF(float64(h.GetSampleCount())))
			case m.Summary != nil:
				s := m.Summary
				for _, q := range s.Quantile {
					out = append(out, key+" q="+fmtF(q.GetQuantile())+" "+fmtF(q.GetValue()))
				}
				out = append(out, key+" sum="+fmtF(s.GetSampleSum())+" count="+fmtF(float64(s.GetSampleCount())))
			}
		}
	}
	slices.Sort(out)
	return out
}

func fmtF(f float64) string {
	if math.IsNaN(f) {
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// TestCompatWithStatsdExporter feeds the same lines and mapping to
// statsd_exporter's own packages (in process) and to the sink, and requires
// identical series and values.
func TestCompatWithStatsdExporter(t *testing.T) {
	yml, err := os.ReadFile("testdata/compat-mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, yaml string }{
		{"no mapping", "", ""},
		{"mapping file", "testdata/compat-mapping.yml", string(yml)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := canon(referenceExposition(t, tc.yaml, compatLines))
			got := canon(ourExposition(t, tc.file, compatLines))
			if !slices.Equal(got, want) {
				t.Errorf("expositions differ\n--- statsd_exporter only:\n%s\n--- sink only:\n%s",
					strings.Join(diff(want, got), "\n"), strings.Join(diff(got, want), "\n"))
			}
		})
	}
}

func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}
