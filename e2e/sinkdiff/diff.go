package sinkdiff

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// selfPrefixes are the receivers' own telemetry, which legitimately differs
// between two implementations and is excluded from the comparison
// (statsd_metric_mapper_* is statsd_exporter's mapping-cache telemetry).
var selfPrefixes = [...]string{"statsd_exporter_", "statsd_sink_", "statsd_metric_mapper_", "go_", "process_", "promhttp_"}

// IsSelfMetric reports whether a family name is the receiver's own telemetry.
func IsSelfMetric(name string) bool {
	for _, p := range selfPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Series is one exported time series: a family name, its type, a canonical
// rendering of its labels and the parsed sample(s).
type Series struct {
	Family string
	Type   dto.MetricType
	// Labels is `{k="v",…}` with keys sorted, or "" when there are none.
	Labels string
	Metric *dto.Metric
}

// Key identifies the series across the two receivers.
func (s *Series) Key() string { return s.Family + s.Labels }

// Flatten turns parsed families into series keyed by Series.Key, leaving out
// self-metrics.
func Flatten(fams map[string]*dto.MetricFamily) map[string]*Series {
	out := make(map[string]*Series)
	for name, mf := range fams {
		if IsSelfMetric(name) {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := &Series{Family: name, Type: mf.GetType(), Labels: renderLabels(m.GetLabel()), Metric: m}
			out[s.Key()] = s
		}
	}
	return out
}

func renderLabels(lps []*dto.LabelPair) string {
	if len(lps) == 0 {
		return ""
	}
	parts := make([]string, 0, len(lps))
	for _, lp := range lps {
		parts = append(parts, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// Kind classifies a difference.
type Kind string

// The kinds of difference Compare reports.
const (
	OnlyInReference Kind = "only in statsd_exporter"
	OnlyInCandidate Kind = "only in statsd-sink"
	TypeDiffers     Kind = "type differs"
	ValueDiffers    Kind = "value differs"
	CountDiffers    Kind = "sample count differs"
	SumDiffers      Kind = "sample sum differs"
	BucketsDiffer   Kind = "histogram buckets differ"
	QuantilesDiffer Kind = "summary quantiles differ"
)

// Difference is one way a series differs between the reference
// (statsd_exporter) and the candidate (statsd-sink).
type Difference struct {
	Key    string
	Family string
	Kind   Kind
	Ref    string
	Got    string
}

func (d Difference) String() string {
	return fmt.Sprintf("%s: %s (statsd_exporter: %s, statsd-sink: %s)", d.Key, d.Kind, d.Ref, d.Got)
}

// Compare returns every difference between the reference and candidate
// series, sorted by series key.
//
// Rules, chosen so that only implementation-independent facts are compared:
//   - counters, gauges and untyped values, histogram and summary sums and
//     counts, and bucket counts are equal when they agree to a relative 1e-9
//     (the two may add the same numbers in a different order) or are both NaN;
//   - histograms must have the same bucket bounds;
//   - summaries must export the same quantile objectives, but the quantile
//     values come from different estimators (client_golang's CKMS stream
//     versus the sink's own), so a candidate value is accepted when it equals
//     the reference value or lies inside the range [min, max] of the
//     reference's quantile values for that series (and is NaN exactly when
//     the reference's is). A series whose observations are all equal has a
//     zero-width range, so there the values must be exact.
func Compare(ref, got map[string]*Series) []Difference {
	var diffs []Difference
	for key, r := range ref {
		g, ok := got[key]
		if !ok {
			diffs = append(diffs, Difference{Key: key, Family: r.Family, Kind: OnlyInReference, Ref: describe(r), Got: "absent"})
			continue
		}
		diffs = append(diffs, compareSeries(r, g)...)
	}
	for key, g := range got {
		if _, ok := ref[key]; !ok {
			diffs = append(diffs, Difference{Key: key, Family: g.Family, Kind: OnlyInCandidate, Ref: "absent", Got: describe(g)})
		}
	}
	sort.Slice(diffs, func(i, j int) bool {
		if diffs[i].Key != diffs[j].Key {
			return diffs[i].Key < diffs[j].Key
		}
		return diffs[i].Kind < diffs[j].Kind
	})
	return diffs
}

func compareSeries(r, g *Series) []Difference {
	d := func(k Kind, rv, gv string) Difference {
		return Difference{Key: r.Key(), Family: r.Family, Kind: k, Ref: rv, Got: gv}
	}
	if r.Type != g.Type {
		return []Difference{d(TypeDiffers, r.Type.String(), g.Type.String())}
	}
	var diffs []Difference
	switch r.Type {
	case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		rv, gv := scalar(r.Metric), scalar(g.Metric)
		if !FloatEqual(rv, gv) {
			diffs = append(diffs, d(ValueDiffers, fmtF(rv), fmtF(gv)))
		}
	case dto.MetricType_HISTOGRAM:
		rh, gh := r.Metric.GetHistogram(), g.Metric.GetHistogram()
		if rc, gc := histCount(rh), histCount(gh); !FloatEqual(rc, gc) {
			diffs = append(diffs, d(CountDiffers, fmtF(rc), fmtF(gc)))
		}
		if !FloatEqual(rh.GetSampleSum(), gh.GetSampleSum()) {
			diffs = append(diffs, d(SumDiffers, fmtF(rh.GetSampleSum()), fmtF(gh.GetSampleSum())))
		}
		if rb, gb := renderBuckets(rh), renderBuckets(gh); !bucketsEqual(rh, gh) {
			diffs = append(diffs, d(BucketsDiffer, rb, gb))
		}
	case dto.MetricType_SUMMARY:
		rs, gs := r.Metric.GetSummary(), g.Metric.GetSummary()
		if rs.GetSampleCount() != gs.GetSampleCount() {
			diffs = append(diffs, d(CountDiffers, strconv.FormatUint(rs.GetSampleCount(), 10), strconv.FormatUint(gs.GetSampleCount(), 10)))
		}
		if !FloatEqual(rs.GetSampleSum(), gs.GetSampleSum()) {
			diffs = append(diffs, d(SumDiffers, fmtF(rs.GetSampleSum()), fmtF(gs.GetSampleSum())))
		}
		if !quantilesAgree(rs, gs) {
			diffs = append(diffs, d(QuantilesDiffer, renderQuantiles(rs), renderQuantiles(gs)))
		}
	default:
		diffs = append(diffs, d(TypeDiffers, "unsupported type "+r.Type.String(), g.Type.String()))
	}
	return diffs
}

// FloatEqual reports whether two sample values agree to a relative 1e-9, or
// are both NaN.
func FloatEqual(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func scalar(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

// histCount reads a histogram's count whether it was exposed as an integer
// or (for sample-weighted observations) as a float.
func histCount(h *dto.Histogram) float64 {
	if h.SampleCountFloat != nil {
		return h.GetSampleCountFloat()
	}
	return float64(h.GetSampleCount())
}

func bucketCount(b *dto.Bucket) float64 {
	if b.CumulativeCountFloat != nil {
		return b.GetCumulativeCountFloat()
	}
	return float64(b.GetCumulativeCount())
}

func bucketsEqual(r, g *dto.Histogram) bool {
	rb, gb := r.GetBucket(), g.GetBucket()
	if len(rb) != len(gb) {
		return false
	}
	for i := range rb {
		if !FloatEqual(rb[i].GetUpperBound(), gb[i].GetUpperBound()) || !FloatEqual(bucketCount(rb[i]), bucketCount(gb[i])) {
			return false
		}
	}
	return true
}

func renderBuckets(h *dto.Histogram) string {
	parts := make([]string, 0, len(h.GetBucket()))
	for _, b := range h.GetBucket() {
		parts = append(parts, fmtF(b.GetUpperBound())+":"+fmtF(bucketCount(b)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func quantilesAgree(r, g *dto.Summary) bool {
	rq, gq := r.GetQuantile(), g.GetQuantile()
	if len(rq) != len(gq) {
		return false
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, q := range rq {
		if v := q.GetValue(); !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for i := range rq {
		if !FloatEqual(rq[i].GetQuantile(), gq[i].GetQuantile()) {
			return false
		}
		rv, gv := rq[i].GetValue(), gq[i].GetValue()
		if FloatEqual(rv, gv) {
			continue
		}
		if math.IsNaN(rv) || math.IsNaN(gv) || gv < lo || gv > hi {
			return false
		}
	}
	return true
}

func renderQuantiles(s *dto.Summary) string {
	parts := make([]string, 0, len(s.GetQuantile()))
	for _, q := range s.GetQuantile() {
		parts = append(parts, fmtF(q.GetQuantile())+":"+fmtF(q.GetValue()))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func describe(s *Series) string {
	switch s.Type {
	case dto.MetricType_HISTOGRAM:
		h := s.Metric.GetHistogram()
		return fmt.Sprintf("histogram count=%s sum=%s buckets=%s", fmtF(histCount(h)), fmtF(h.GetSampleSum()), renderBuckets(h))
	case dto.MetricType_SUMMARY:
		q := s.Metric.GetSummary()
		return fmt.Sprintf("summary count=%d sum=%s quantiles=%s", q.GetSampleCount(), fmtF(q.GetSampleSum()), renderQuantiles(q))
	default:
		return strings.ToLower(s.Type.String()) + " " + fmtF(scalar(s.Metric))
	}
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
