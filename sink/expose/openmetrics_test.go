package expose

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

const traceA, traceB = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7a3ce929d0e0e4736"

func mustTraceID(t *testing.T, hex string) statsd.TraceID {
	t.Helper()
	id, ok := statsd.ParseTraceID(hex)
	if !ok {
		t.Fatalf("bad trace ID %q", hex)
	}
	return id
}

// envoyFamilies has what makes OpenMetrics naming differ from the text
// format: Envoy's counters X{code} beside X_total, a counter without
// _total, a _total counter alone, a _total counter beside a gauge of its
// base name, and a histogram with exemplars and weighted counts.
func envoyFamilies(t *testing.T) []aggregate.FamilySnapshot {
	code := func(c string) []aggregate.Label { return []aggregate.Label{{Name: "envoy_response_code", Value: c}} }
	return []aggregate.FamilySnapshot{
		{Name: "envoy_cluster_upstream_cx_active", Help: `active "conns"`, Kind: aggregate.KindGauge, Series: []aggregate.SeriesSnapshot{{Value: 2}}},
		{Name: "envoy_cluster_upstream_cx_active_total", Help: "h", Kind: aggregate.KindCounter, Series: []aggregate.SeriesSnapshot{{Value: 7}}},
		{Name: "envoy_cluster_upstream_rq", Help: "h", Kind: aggregate.KindCounter, Series: []aggregate.SeriesSnapshot{
			{Labels: code("200"), Value: 3}, {Labels: code("503"), Value: 1}}},
		{Name: "envoy_cluster_upstream_rq_retry", Help: "h", Kind: aggregate.KindCounter, Series: []aggregate.SeriesSnapshot{{Value: 5}}},
		{Name: "envoy_cluster_upstream_rq_time", Help: "h", Kind: aggregate.KindHistogram, Buckets: []float64{0.5, 1, 5},
			Series: []aggregate.SeriesSnapshot{
				{Labels: []aggregate.Label{{Name: "envoy_cluster_name", Value: "catalog"}}, Cumulative: []float64{1, 2, 2, 4}, Count: 4, Sum: 30.5,
					Exemplars: []aggregate.Exemplar{{TraceID: mustTraceID(t, traceA), Value: 0.25, Time: 1_700_000_000_123_000_000}, {}, {},
						{TraceID: mustTraceID(t, traceB), Value: 25, Time: 1_700_000_001_000_000_000}}},
				{Labels: []aggregate.Label{{Name: "envoy_cluster_name", Value: "inventory"}}, Cumulative: []float64{0, 2.5, 2.5, 2.5}, Count: 2.5, Sum: 2}}},
		{Name: "envoy_cluster_upstream_rq_total", Help: "h", Kind: aggregate.KindCounter, Series: []aggregate.SeriesSnapshot{{Value: 4}}},
		{Name: "envoy_http_downstream_rq_total", Help: "h", Kind: aggregate.KindCounter, Series: []aggregate.SeriesSnapshot{{Value: 9}}},
		{Name: "s", Help: "s", Kind: aggregate.KindSummary, Series: []aggregate.SeriesSnapshot{
			{Quantiles: []aggregate.Quantile{{Quantile: 0.5, Value: 1}}, Count: 2, Sum: 3}}},
	}
}

type scraped struct {
	series    map[string]float64 // labels.String() → value
	exemplars map[string]string  // labels.String() → exemplar labels, value and timestamp
}

// parseWithPrometheus parses a scrape body the way Prometheus's scrape
// loop does, by its Content-Type.
func parseWithPrometheus(t *testing.T, body []byte, contentType string) scraped {
	t.Helper()
	p, err := textparse.New(body, contentType, labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatalf("parser for %q: %v", contentType, err)
	}
	out := scraped{series: map[string]float64{}, exemplars: map[string]string{}}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", contentType, err, body)
		}
		if e != textparse.EntrySeries {
			continue
		}
		var ls labels.Labels
		p.Labels(&ls)
		_, _, v := p.Series()
		out.series[ls.String()] = v
		var ex exemplar.Exemplar
		for p.Exemplar(&ex) {
			out.exemplars[ls.String()] += ex.Labels.String() + " " +
				formatValue(ex.Value) + " " + strconv.FormatInt(ex.Ts, 10)
		}
	}
}

func formatValue(v float64) string { return string(appendFloat(nil, v)) }

func scrape(t *testing.T, fams []aggregate.FamilySnapshot, accept string) ([]byte, string) {
	t.Helper()
	h := &Handler{Gather: func() []aggregate.FamilySnapshot { return fams }}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", accept)
	h.ServeHTTP(rec, req)
	return rec.Body.Bytes(), rec.Header().Get("Content-Type")
}

// Prometheus 3's scrape Accept header (scrape_protocols' default order).
const prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5," +
	"application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3," +
	"text/plain;version=0.0.4;q=0.2,*/*;q=0.1"

// TestOpenMetricsSeriesMatchText: a Prometheus that scrapes OpenMetrics
// (to get exemplars) stores exactly the series, with the same names and
// values, that it stores from the text format, and gets the exemplars.
func TestOpenMetricsSeriesMatchText(t *testing.T) {
	fams := envoyFamilies(t)
	omBody, omType := scrape(t, fams, prometheusAccept)
	if !strings.HasPrefix(omType, "application/openmetrics-text") {
		t.Fatalf("Prometheus's Accept header got %q, want OpenMetrics", omType)
	}
	textBody, textType := scrape(t, fams, "text/plain;version=0.0.4")
	om := parseWithPrometheus(t, omBody, omType)
	text := parseWithPrometheus(t, textBody, textType)
	if len(om.series) != len(text.series) {
		t.Errorf("OpenMetrics has %d series, text %d", len(om.series), len(text.series))
	}
	for s, v := range text.series {
		if ov, ok := om.series[s]; !ok || ov != v && !(math.IsNaN(ov) && math.IsNaN(v)) {
			t.Errorf("series %s = %v in text, %v (present %v) in OpenMetrics", s, v, ov, ok)
		}
	}
	if len(text.exemplars) != 0 {
		t.Errorf("text format with exemplars: %v", text.exemplars)
	}
	want := map[string]string{
		`{__name__="envoy_cluster_upstream_rq_time_bucket", envoy_cluster_name="catalog", le="0.5"}`:  `{trace_id="` + traceA + `"} 0.25 1700000000123`,
		`{__name__="envoy_cluster_upstream_rq_time_bucket", envoy_cluster_name="catalog", le="+Inf"}`: `{trace_id="` + traceB + `"} 25 1700000001000`,
	}
	if len(om.exemplars) != len(want) {
		t.Errorf("exemplars %v, want %v", om.exemplars, want)
	}
	for s, e := range want {
		if om.exemplars[s] != e {
			t.Errorf("exemplar of %s = %q, want %q\n%s", s, om.exemplars[s], e, omBody)
		}
	}
	for _, typ := range []string{
		"# TYPE envoy_cluster_upstream_rq unknown\n", "# TYPE envoy_cluster_upstream_rq_total unknown\n",
		"# TYPE envoy_http_downstream_rq counter\n", "# TYPE envoy_cluster_upstream_cx_active_total unknown\n",
		"# HELP envoy_cluster_upstream_cx_active active \\\"conns\\\"\n",
	} {
		if !bytes.Contains(omBody, []byte(typ)) {
			t.Errorf("OpenMetrics body lacks %q:\n%s", typ, omBody)
		}
	}
}

// BenchmarkWriteHistograms is one scrape of 1000 histogram series with
// an exemplar each, in the text format (no exemplars) and in OpenMetrics.
func BenchmarkWriteHistograms(b *testing.B) {
	id, _ := statsd.ParseTraceID(traceA)
	f := aggregate.FamilySnapshot{Name: "envoy_cluster_upstream_rq_time", Help: "h", Kind: aggregate.KindHistogram, Buckets: []float64{0.5, 1, 5, 10}}
	for i := range 1000 {
		s := aggregate.SeriesSnapshot{Labels: []aggregate.Label{{Name: "envoy_cluster_name", Value: "c" + strconv.Itoa(i)}},
			Cumulative: []float64{1, 2, 3, 4, 5}, Count: 5, Sum: 9, Exemplars: make([]aggregate.Exemplar, 5)}
		s.Exemplars[1] = aggregate.Exemplar{TraceID: id, Value: 0.7, Time: 1_700_000_000_000_000_000}
		f.Series = append(f.Series, s)
	}
	fs := []aggregate.FamilySnapshot{f}
	for _, w := range []struct {
		name  string
		write func(*bufio.Writer, []aggregate.FamilySnapshot) error
	}{{"text", WriteText}, {"openmetrics", WriteOpenMetrics}} {
		b.Run(w.name, func(b *testing.B) {
			bw := bufio.NewWriter(io.Discard)
			b.ReportAllocs()
			for b.Loop() {
				_ = w.write(bw, fs)
			}
		})
	}
}
