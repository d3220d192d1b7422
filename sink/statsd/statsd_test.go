package statsd

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
)

type sampleOut struct {
	name  string
	typ   Type
	value float64
	rate  float64
	rel   bool
	tags  string
}

func parse(p Parser, s string) ([]sampleOut, []string, int) {
	var l Line
	p.Parse([]byte(s), &l)
	var out []sampleOut
	for _, sm := range l.Samples {
		var tags []string
		for _, t := range l.Tags {
			tags = append(tags, string(t.Key)+"="+string(t.Value))
		}
		out = append(out, sampleOut{string(l.Name), sm.Type, sm.Value, sm.Rate, sm.Relative, strings.Join(tags, ",")})
	}
	var errs []string
	for _, r := range l.Errors {
		errs = append(errs, r.String())
	}
	return out, errs, l.TagErrors
}

func TestParse(t *testing.T) {
	all := NewParser()
	for _, tc := range []struct {
		in        string
		want      []sampleOut
		errs      []string
		tagErrors int
	}{
		{in: ""},
		{in: "a:1|c", want: []sampleOut{{"a", TypeCounter, 1, 1, false, ""}}},
		{in: "a:1|c|@0.1", want: []sampleOut{{"a", TypeCounter, 10, 0.1, false, ""}}},
		{in: "a:-3|g", want: []sampleOut{{"a", TypeGauge, -3, 1, true, ""}}},
		{in: "a:+3|g|@0.5", want: []sampleOut{{"a", TypeGauge, 3, 1, true, ""}}},
		{in: "a:200|ms|@0.25", want: []sampleOut{{"a", TypeTimer, 200, 0.25, false, ""}}},
		{in: "a:2|h", want: []sampleOut{{"a", TypeHistogram, 2, 1, false, ""}}},
		{in: "a:2|d", want: []sampleOut{{"a", TypeDistribution, 2, 1, false, ""}}},
		{in: "a:user42|s", want: []sampleOut{{"a", TypeSet, 0, 1, false, ""}}},
		{in: "a:1|c:2|g", want: []sampleOut{{"a", TypeCounter, 1, 1, false, ""}, {"a", TypeGauge, 2, 1, false, ""}}},
		{in: "a:1:2|ms", want: []sampleOut{{"a", TypeTimer, 1, 1, false, ""}, {"a", TypeTimer, 2, 1, false, ""}}},
		{in: "a:1|c|#k:v,#k2:v2", want: []sampleOut{{"a", TypeCounter, 1, 1, false, "k=v,k2=v2"}}},
		{in: "a,k=v,k2=v2:1|c", want: []sampleOut{{"a", TypeCounter, 1, 1, false, "k=v,k2=v2"}}},
		{in: "a#k=v:1|c", want: []sampleOut{{"a", TypeCounter, 1, 1, false, "k=v"}}},
		{in: "a[k=v]b:1|c", want: []sampleOut{{"ab", TypeCounter, 1, 1, false, "k=v"}}},
		{in: "a:1|c|#k:v|c:abc|T123", want: []sampleOut{{"a", TypeCounter, 1, 1, false, "k=v,container_id=abc"}}},
		{in: "a:1|c|#k,k2:v,:x", want: []sampleOut{{"a", TypeCounter, 1, 1, false, "k2=v"}}, tagErrors: 2},
		{in: "a[k=v:1|c", want: []sampleOut{{"a[k=v", TypeCounter, 1, 1, false, ""}}, tagErrors: 1},
		{in: "nocolon", errs: []string{"malformed_line"}},
		{in: ":1|c", errs: []string{"malformed_line"}},
		{in: "a:\xff|c", errs: []string{"malformed_line"}},
		{in: "a,k=v:1|c|#x:y", errs: []string{"mixed_tagging_styles"}},
		{in: "a:1", errs: []string{"not_enough_parts_after_colon"}},
		{in: "a:1:2|c", errs: []string{"invalid_extended_aggregate_type"}},
		{in: "a:1|c:2", want: []sampleOut{{"a", TypeCounter, 1, 1, false, ""}}, errs: []string{"malformed_component"}},
		{in: "a:1|c|@1|@1|@1|@1|@1", errs: []string{"malformed_component"}},
		{in: "a:1|c||", errs: []string{"malformed_component"}},
		{in: "a:x|c", errs: []string{"malformed_value"}},
		{in: "a:1|c|@x", want: []sampleOut{{"a", TypeCounter, 1, 1, false, ""}}, errs: []string{"invalid_sample_factor"}},
		{in: "a:1|c|z", errs: []string{"invalid_sample_factor"}},
		{in: "a:1|c|c", errs: []string{"malformed_container_id"}},
		{in: "a:1|x", errs: []string{"illegal_event"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, errs, tagErrs := parse(all, tc.in)
			if !slices.Equal(got, tc.want) || !slices.Equal(errs, tc.errs) || tagErrs != tc.tagErrors {
				t.Errorf("Parse(%q)\n got %v errs %v tagErrors %d\nwant %v errs %v tagErrors %d", tc.in, got, errs, tagErrs, tc.want, tc.errs, tc.tagErrors)
			}
		})
	}
}

func TestParseTagStylesDisabled(t *testing.T) {
	got, _, _ := parse(Parser{}, "a,k=v:1|c|#x:y")
	if len(got) != 1 || got[0].name != "a,k=v" || got[0].tags != "" {
		t.Errorf("with no tag styles: %v", got)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	p := NewParser()
	var l Line
	in := []byte("envoy.cluster.upstream_rq:1|c|@0.5|#envoy.cluster_name:backend,envoy.response_code:200")
	p.Parse(in, &l)
	if n := testing.AllocsPerRun(100, func() { p.Parse(in, &l) }); n != 0 {
		t.Errorf("Parse allocates %v times per line", n)
	}
}

// reference runs statsd_exporter's parser, returning comparable samples,
// the error reasons and the tag error count.
func reference(s string) (out []sampleOut, reasons []string, tagErrs int) {
	p := line.NewParser()
	p.EnableDogstatsdParsing()
	p.EnableInfluxdbParsing()
	p.EnableLibratoParsing()
	p.EnableSignalFXParsing()
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"reason"})
	tagErrors := prometheus.NewCounter(prometheus.CounterOpts{Name: "t"})
	c := func() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}) }
	for _, ev := range p.LineToEvents(s, *errs, c(), tagErrors, c(), slog.New(slog.DiscardHandler)) {
		var tags []string
		for k, v := range ev.Labels() {
			tags = append(tags, mapper.EscapeMetricName(k)+"="+v)
		}
		slices.Sort(tags)
		o := sampleOut{name: ev.MetricName(), value: ev.Value(), tags: strings.Join(tags, ",")}
		switch e := ev.(type) {
		case *event.CounterEvent:
			o.typ = TypeCounter
		case *event.GaugeEvent:
			o.typ, o.rel = TypeGauge, e.GRelative
		case *event.ObserverEvent:
			o.typ = TypeTimer // types are compared as "observer"
		}
		out = append(out, o)
	}
	ch := make(chan prometheus.Metric, 100)
	errs.Collect(ch)
	close(ch)
	for m := range ch {
		var d dto.Metric
		_ = m.Write(&d)
		for range int(d.Counter.GetValue()) {
			reasons = append(reasons, d.Label[0].GetValue())
		}
	}
	slices.Sort(reasons)
	var d dto.Metric
	_ = tagErrors.Write(&d)
	return out, reasons, int(d.Counter.GetValue())
}

// ours converts our result into statsd_exporter's event shape: timers in
// seconds and observers copied int(1/rate) times, so both can be compared.
func ours(s string) (out []sampleOut, reasons []string, tagErrs int, comparable bool) {
	p := NewParser()
	var l Line
	p.Parse([]byte(s), &l)
	for _, sm := range l.Samples {
		if sm.Type == TypeSet {
			return nil, nil, 0, false // statsd_exporter rejects sets
		}
		if sm.Type.IsObserver() && sm.Rate > 0 && sm.Rate < 1e-3 {
			return nil, nil, 0, false // the reference would make >1000 copies
		}
		m := map[string]string{}
		for _, t := range l.Tags {
			m[mapper.EscapeMetricName(string(t.Key))] = string(t.Value)
		}
		var tags []string
		for k, v := range m {
			tags = append(tags, k+"="+v)
		}
		slices.Sort(tags)
		o := sampleOut{name: string(l.Name), value: sm.Value, rel: sm.Relative && sm.Type == TypeGauge, tags: strings.Join(tags, ",")}
		o.typ = sm.Type
		copies := 1
		if sm.Type.IsObserver() {
			o.typ = TypeTimer
			copies = int(1 / sm.Rate)
			if sm.Type == TypeTimer {
				o.value /= 1000
			}
		}
		for range copies {
			out = append(out, o)
		}
	}
	for _, r := range l.Errors {
		reasons = append(reasons, r.String())
	}
	slices.Sort(reasons)
	return out, reasons, l.TagErrors, true
}

// checkAgainstReference compares with statsd_exporter's parser.
func checkAgainstReference(t *testing.T, s string) {
	if strings.Contains(s, "|s") {
		return // sets are accepted on purpose, so their errors differ too
	}
	if strings.ContainsRune(s, '\n') || !strings.Contains(s, "[") && strings.Contains(s, "]") {
		return
	}
	if i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']'); i >= 0 && j >= 0 && j < i {
		return // statsd_exporter panics on "]…[" (slice bounds); we report a tag error
	}
	got, gotReasons, gotTagErrs, ok := ours(s)
	if !ok {
		return
	}
	want, wantReasons, wantTagErrs := reference(s)
	if fmt.Sprint(got) != fmt.Sprint(want) || !slices.Equal(gotReasons, wantReasons) || gotTagErrs != wantTagErrs {
		t.Errorf("line %q\n got %v %v tagErrors=%d\nwant %v %v tagErrors=%d", s, got, gotReasons, gotTagErrs, want, wantReasons, wantTagErrs)
	}
}

var corpus = []string{
	"a:1|c", "a:1|c|@0.1", "a:-3|g", "a:+3|g|@0.5", "a:200|ms|@0.25", "a:2|h", "a:2|d", "a:1|c:2|g",
	"a:1:2|ms", "a:1|c|#k:v,#k2:v2", "a,k=v,k2=v2:1|c", "a#k=v:1|c", "a[k=v]b:1|c", "a:1|c|#k:v|c:abc|T123",
	"a:1|c|#k,k2:v,:x", "a[k=v:1|c", "nocolon", ":1|c", "a,k=v:1|c|#x:y", "a:1", "a:1:2|c", "a:1|c:2",
	"a:1|c|@1|@1|@1|@1", "a:1|c||", "a:x|c", "a:1|c|@x", "a:1|c|z", "a:1|c|c", "a:1|x", "a:1|ms|@0.3",
	"a:1|ms|@2", "a:1|h|@-1", "a:1e3|g", "a:0x10|c", "a:NaN|g", "a:Inf|c", "a:1|c|@1e999", "a.b-c:1|c|#a.b:c",
	"a:1|c|#k:v:w", "a:1|c|#k:v,k:w", "a:1:2:|h|#k:v", "a,=v:1|c", "a#:1|c", "a[]:1|c", "é:1|c|#é:é",
	"a:12|ms|#k:v|trace_id:4bf92f3577b34da6a3ce929d0e0e4736", "a:12|ms|@0.5|trace_id:00000000000000000000000000000001",
	"a:1:2|ms|trace_id:4bf92f3577b34da6a3ce929d0e0e4736", "a:12|ms|trace_id:4BF92F3577B34DA6A3CE929D0E0E4736",
	"a:12|ms|trace_id:", "a:12|ms|trace_id:4bf92f3577b34da6a3ce929d0e0e4736|#k:v",
}

func TestParseMatchesStatsdExporter(t *testing.T) {
	for _, s := range corpus {
		checkLine(t, s)
	}
}

// checkLine compares with statsd_exporter's parser, which knows no trace
// ID section (it drops such a sample: see sink/README.md): a line with
// one must parse as the line without it, which is then compared.
func checkLine(t *testing.T, s string) {
	t.Helper()
	if i := traceSection(s); i >= 0 {
		checkTraceSection(t, s, i)
		s = s[:i]
	}
	checkAgainstReference(t, s)
}

// FuzzParseLine checks that no input panics or hangs, that every sample
// has a valid type, and that results match statsd_exporter's parser.
func FuzzParseLine(f *testing.F) {
	for _, s := range corpus {
		f.Add(s)
	}
	p := NewParser()
	var l Line
	f.Fuzz(func(t *testing.T, s string) {
		p.Parse([]byte(s), &l)
		for _, sm := range l.Samples {
			if sm.Type < TypeCounter || sm.Type > TypeSet {
				t.Fatalf("sample with invalid type %d from %q", sm.Type, s)
			}
		}
		checkLine(t, s)
	})
}

func BenchmarkParse(b *testing.B) {
	p := NewParser()
	var l Line
	for _, in := range []string{
		"envoy.cluster.backend.upstream_rq_200:1|c",
		"envoy.cluster.upstream_rq:1|c|@0.5|#envoy.cluster_name:backend,envoy.response_code:200",
		"envoy.cluster.backend.upstream_rq_time:12|ms",
		"envoy.cluster.upstream_rq_time:12|ms|#envoy.cluster_name:backend",
		"envoy.cluster.upstream_rq_time:12|ms|#envoy.cluster_name:backend|trace_id:4bf92f3577b34da6a3ce929d0e0e4736",
	} {
		name := in[:min(len(in), 40)]
		if strings.Contains(in, "|trace_id:") {
			name += "+trace_id"
		}
		b.Run(name, func(b *testing.B) {
			buf := []byte(in)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				p.Parse(buf, &l)
			}
		})
	}
}

func TestSampleWeight(t *testing.T) {
	for _, tc := range []struct {
		rate, want float64
	}{
		{1, 1},
		{0.5, 2},
		{0.1, 10},
		{0.25, 4},
		// The proxy's compact rates: 1/c truncated to 9 digits.
		{0.333333333, 3},
		{0.142857142, 7},
		{0.000319999999, 3125},
		{0.0000810044552, 12345},
		// Far from an integer: the plain 1/rate.
		{0.3, 1 / 0.3},
		{0.99999, 1 / 0.99999},
		// Just below an integer stays as it is (only truncated rates snap).
		{0.3333333334, 1 / 0.3333333334},
		{2, 0.5},
		{-1, 0},
	} {
		s := Sample{Rate: tc.rate}
		if got := s.Weight(); got != tc.want {
			t.Errorf("rate %v: weight %v, want %v", tc.rate, got, tc.want)
		}
	}
}
