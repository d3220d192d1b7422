package statsd

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTraceID(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	p := NewParser()
	for _, tc := range []struct {
		in, want, tags string
		samples        int
		errs           []string
	}{
		{in: "a:12|ms|trace_id:" + id, want: id, samples: 1},
		{in: "cluster.catalog.upstream_rq_time:12|ms|#node_id:front-proxy|trace_id:" + id, want: id, samples: 1, tags: "node_id=front-proxy"},
		{in: "a:12|ms|@0.1|#k:v|trace_id:" + id, want: id, samples: 1, tags: "k=v"},
		{in: "a,k=v:12|ms|trace_id:" + id, want: id, samples: 1, tags: "k=v"},
		// The section's ':' does not split a multi-value line.
		{in: "a:1:2|ms|trace_id:" + id, want: id, samples: 2},
		{in: "a:12|ms|trace_id:00000000000000000000000000000001", want: "00000000000000000000000000000001", samples: 1},
		{in: "a:12|ms", samples: 1},
		{in: "a:12|ms|trace_id:00000000000000000000000000000000", errs: []string{"malformed_trace_id"}},
		{in: "a:12|ms|trace_id:" + strings.ToUpper(id), errs: []string{"malformed_trace_id"}},
		{in: "a:12|ms|trace_id:" + id[:31], errs: []string{"malformed_trace_id"}},
		{in: "a:12|ms|trace_id:" + id + "0", errs: []string{"malformed_trace_id"}},
		{in: "a:12|ms|trace_id:", errs: []string{"malformed_trace_id"}},
		{in: "a:12|ms|trace_id:" + id[:31] + "g", errs: []string{"malformed_trace_id"}},
		// Not last: the section runs to the end of the line.
		{in: "a:12|ms|trace_id:" + id + "|#k:v", errs: []string{"malformed_trace_id"}},
		// A bad line stays bad with a good trace ID.
		{in: "a:x|ms|trace_id:" + id, want: id, errs: []string{"malformed_value"}},
	} {
		var l Line
		p.Parse([]byte(tc.in), &l)
		got := ""
		if l.HasTraceID {
			got = l.TraceID.String()
		}
		var errs []string
		for _, r := range l.Errors {
			errs = append(errs, r.String())
		}
		var tags []string
		for _, tg := range l.Tags {
			tags = append(tags, string(tg.Key)+"="+string(tg.Value))
		}
		if got != tc.want || len(l.Samples) != tc.samples || !slices.Equal(errs, tc.errs) || strings.Join(tags, ",") != tc.tags {
			t.Errorf("Parse(%q): trace %q, %d samples, tags %v, errors %v; want %q, %d, %q, %v",
				tc.in, got, len(l.Samples), tags, errs, tc.want, tc.samples, tc.tags, tc.errs)
		}
	}
}

func TestParseTraceIDDoesNotAllocate(t *testing.T) {
	p := NewParser()
	var l Line
	in := []byte("envoy.cluster.upstream_rq_time:12|ms|@0.5|#envoy.cluster_name:backend|trace_id:4bf92f3577b34da6a3ce929d0e0e4736")
	p.Parse(in, &l)
	if !l.HasTraceID {
		t.Fatalf("no trace ID in %q", in)
	}
	if n := testing.AllocsPerRun(100, func() { p.Parse(in, &l) }); n != 0 {
		t.Errorf("Parse allocates %v times per line", n)
	}
}

// traceSection is where s's trace ID section starts, or -1.
func traceSection(s string) int {
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return -1
	}
	i := strings.Index(s[colon+1:], string(traceIDSection))
	if i < 0 {
		return -1
	}
	return colon + 1 + i
}

// checkTraceSection checks that a line with a trace ID section at i
// parses as the line without it, plus the trace ID, or is refused as a
// whole for a malformed trace ID.
func checkTraceSection(t *testing.T, s string, i int) {
	t.Helper()
	p := NewParser()
	var with, without Line
	p.Parse([]byte(s), &with)
	if !with.HasTraceID {
		// The whole line is refused, for its trace ID or (":|trace_id:…")
		// for what comes before it.
		if len(with.Samples) != 0 || len(with.Errors) != 1 {
			t.Fatalf("%q: no trace ID, but samples %v errors %v", s, with.Samples, with.Errors)
		}
		return
	}
	if got, want := with.TraceID.String(), s[i+len(traceIDSection):]; got != want || with.TraceID == (TraceID{}) {
		t.Fatalf("%q: trace ID %s, want %s", s, got, want)
	}
	p.Parse([]byte(s[:i]), &without)
	same := string(with.Name) == string(without.Name) && slices.EqualFunc(with.Tags, without.Tags, func(a, b Tag) bool {
		return string(a.Key) == string(b.Key) && string(a.Value) == string(b.Value)
	}) && slices.EqualFunc(with.Samples, without.Samples, func(a, b Sample) bool {
		return a.Type == b.Type && a.Rate == b.Rate && string(a.Raw) == string(b.Raw) && a.Relative == b.Relative &&
			(a.Value == b.Value || a.Value != a.Value && b.Value != b.Value)
	}) && slices.Equal(with.Errors, without.Errors) && with.SamplesSeen == without.SamplesSeen &&
		with.TaggedSamples == without.TaggedSamples && with.TagErrors == without.TagErrors
	if !same {
		t.Fatalf("%q parses unlike %q without its trace ID:\n%+v\n%+v", s, s[:i], with, without)
	}
}

func TestTraceSectionMatchesLineWithout(t *testing.T) {
	for _, s := range corpus {
		if i := traceSection(s); i >= 0 {
			checkTraceSection(t, s, i)
		}
	}
}
