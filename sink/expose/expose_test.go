package expose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hopwatch/hopwatch/sink/aggregate"
)

var fams = []aggregate.FamilySnapshot{
	{Name: "c", Help: "with \\ and\nnewline", Kind: aggregate.KindCounter, Series: []aggregate.SeriesSnapshot{
		{Labels: []aggregate.Label{{Name: "a", Value: `quote " back \ nl` + "\n"}}, Value: 1e6}, {Value: 2}}},
	{Name: "g", Help: "g", Kind: aggregate.KindGauge, Series: []aggregate.SeriesSnapshot{{Value: math.Inf(-1)}}},
	{Name: "h", Help: "h", Kind: aggregate.KindHistogram, Buckets: []float64{0.5, 1}, Series: []aggregate.SeriesSnapshot{
		{Labels: []aggregate.Label{{Name: "x", Value: "y"}}, Cumulative: []float64{1, 2, 3}, Count: 3, Sum: 4.5}}},
	{Name: "w", Help: "weighted", Kind: aggregate.KindHistogram, Buckets: []float64{1}, Series: []aggregate.SeriesSnapshot{
		{Cumulative: []float64{2.5, 2.5}, Count: 2.5, Sum: 1}}},
	{Name: "s", Help: "s", Kind: aggregate.KindSummary, Series: []aggregate.SeriesSnapshot{
		{Quantiles: []aggregate.Quantile{{Quantile: 0.5, Value: 1}, {Quantile: 0.9, Value: math.NaN()}}, Count: 2, Sum: 3}}},
}

func TestWriteTextParsesBack(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := WriteText(bw, fams); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	got, err := tp.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if v := got["c"].Metric[0].GetLabel()[0].GetValue(); v != `quote " back \ nl`+"\n" {
		t.Errorf("label value round trip: %q", v)
	}
	if h := got["c"].GetHelp(); h != "with \\ and\nnewline" {
		t.Errorf("help round trip: %q", h)
	}
	if v := got["c"].Metric[0].Counter.GetValue(); v != 1e6 {
		t.Errorf("counter = %v", v)
	}
	if v := got["g"].Metric[0].Gauge.GetValue(); !math.IsInf(v, -1) {
		t.Errorf("gauge = %v", v)
	}
	h := got["h"].Metric[0].Histogram
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 4.5 || h.Bucket[1].GetCumulativeCount() != 2 {
		t.Errorf("histogram = %v", h)
	}
	s := got["s"].Metric[0].Summary
	if s.GetSampleCount() != 2 || s.Quantile[0].GetValue() != 1 || !math.IsNaN(s.Quantile[1].GetValue()) {
		t.Errorf("summary = %v", s)
	}
	if !bytes.Contains(buf.Bytes(), []byte("h_bucket{x=\"y\",le=\"+Inf\"} 3\n")) {
		t.Errorf("missing +Inf bucket:\n%s", buf.String())
	}
}

func TestNegotiation(t *testing.T) {
	h := &Handler{Gather: func() []aggregate.FamilySnapshot { return fams }}
	for _, tc := range []struct{ accept, want string }{
		{"", "text/plain"},
		{"text/plain;version=0.0.4", "text/plain"},
		{"application/openmetrics-text;version=1.0.0", "application/openmetrics-text"},
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "application/vnd.google.protobuf"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		h.ServeHTTP(rec, req)
		ct := rec.Header().Get("Content-Type")
		if len(ct) < len(tc.want) || ct[:len(tc.want)] != tc.want {
			t.Errorf("Accept %q: Content-Type %q", tc.accept, ct)
			continue
		}
		dec := expfmt.NewDecoder(rec.Body, expfmt.Format(ct))
		n := 0
		for {
			var mf dto.MetricFamily
			err := dec.Decode(&mf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if tc.want == "application/openmetrics-text" {
					break // expfmt has no OpenMetrics decoder; checked below
				}
				t.Fatalf("Accept %q: %v", tc.accept, err)
			}
			n++
		}
		if tc.want != "application/openmetrics-text" && n != len(fams) {
			t.Errorf("Accept %q: decoded %d families, want %d", tc.accept, n, len(fams))
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	h.ServeHTTP(rec, req)
	if b := rec.Body.String(); !bytes.HasSuffix([]byte(b), []byte("# EOF\n")) || !bytes.Contains([]byte(b), []byte("# TYPE w histogram")) {
		t.Errorf("OpenMetrics body:\n%s", b)
	}
}

func BenchmarkWriteText100k(b *testing.B) {
	f := aggregate.FamilySnapshot{Name: "envoy_cluster_upstream_rq", Help: "h", Kind: aggregate.KindCounter}
	for i := range 100000 {
		f.Series = append(f.Series, aggregate.SeriesSnapshot{Labels: []aggregate.Label{
			{Name: "envoy_cluster_name", Value: fmt.Sprintf("cluster%d", i/10)}, {Name: "envoy_response_code", Value: fmt.Sprint(200 + i%10)}}, Value: float64(i)})
	}
	fs := []aggregate.FamilySnapshot{f}
	bw := bufio.NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		_ = WriteText(bw, fs)
	}
}
