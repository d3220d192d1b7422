// Package expose serves aggregated series on /metrics: the Prometheus text
// format and OpenMetrics (which carries exemplars) are written directly
// (fast, no intermediate objects); protobuf goes through
// prometheus/common/expfmt.
package expose

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hopwatch/hopwatch/sink/aggregate"
)

// Gatherer returns the families to expose, sorted by name.
type Gatherer func() []aggregate.FamilySnapshot

// Handler serves a Gatherer. OnScrape, if set, receives each scrape's
// duration (for the scrape-duration self-metric).
type Handler struct {
	Gather   Gatherer
	OnScrape func(time.Duration)
}

// ServeHTTP negotiates the format from the Accept header.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	fams := h.Gather()
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	switch format.FormatType() {
	case expfmt.TypeTextPlain, expfmt.TypeUnknown:
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		bw := bufio.NewWriterSize(w, 64<<10)
		_ = WriteText(bw, fams)
		_ = bw.Flush()
	case expfmt.TypeOpenMetrics:
		w.Header().Set("Content-Type", string(format))
		bw := bufio.NewWriterSize(w, 64<<10)
		_ = WriteOpenMetrics(bw, fams)
		_ = bw.Flush()
	default:
		w.Header().Set("Content-Type", string(format))
		enc := expfmt.NewEncoder(w, format)
		for i := range fams {
			if err := enc.Encode(ToProto(&fams[i])); err != nil {
				break // the client went away or the family is unencodable
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			_ = c.Close()
		}
	}
	if h.OnScrape != nil {
		h.OnScrape(time.Since(start))
	}
}

// WriteText writes families in the Prometheus text format 0.0.4, byte for
// byte as client_golang would.
func WriteText(w *bufio.Writer, fams []aggregate.FamilySnapshot) error {
	return writeFamilies(w, fams, nil)
}

// writeFamilies writes the text format, or OpenMetrics when om is set.
func writeFamilies(w *bufio.Writer, fams []aggregate.FamilySnapshot, om *openMetrics) error {
	var buf []byte
	for i := range fams {
		f := &fams[i]
		if len(f.Series) == 0 {
			continue
		}
		name, typ := f.Name, f.Kind.String()
		if om != nil {
			name, typ = om.family(f)
		}
		buf = buf[:0]
		buf = append(buf, "# HELP "...)
		buf = append(buf, name...)
		buf = append(buf, ' ')
		buf = appendHelp(buf, f.Help, om != nil)
		buf = append(buf, "\n# TYPE "...)
		buf = append(buf, name...)
		buf = append(buf, ' ')
		buf = append(buf, typ...)
		buf = append(buf, '\n')
		for j := range f.Series {
			s := &f.Series[j]
			switch f.Kind {
			case aggregate.KindHistogram:
				for k, c := range s.Cumulative {
					le := math.Inf(1)
					if k < len(f.Buckets) {
						le = f.Buckets[k]
					}
					buf = appendSample(buf, f.Name, "_bucket", s.Labels, "le", le, c, true)
					if om != nil && k < len(s.Exemplars) && s.Exemplars[k].Time != 0 {
						buf = appendExemplar(buf[:len(buf)-1], &s.Exemplars[k])
					}
				}
				buf = appendSample(buf, f.Name, "_sum", s.Labels, "", 0, s.Sum, false)
				buf = appendSample(buf, f.Name, "_count", s.Labels, "", 0, s.Count, true)
			case aggregate.KindSummary:
				for _, q := range s.Quantiles {
					buf = appendSample(buf, f.Name, "", s.Labels, "quantile", q.Quantile, q.Value, false)
				}
				buf = appendSample(buf, f.Name, "_sum", s.Labels, "", 0, s.Sum, false)
				buf = appendSample(buf, f.Name, "_count", s.Labels, "", 0, s.Count, true)
			default:
				buf = appendSample(buf, f.Name, "", s.Labels, "", 0, s.Value, false)
			}
			if len(buf) > 32<<10 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func appendSample(buf []byte, name, suffix string, labels []aggregate.Label, extra string, extraVal, v float64, count bool) []byte {
	buf = append(buf, name...)
	buf = append(buf, suffix...)
	if len(labels) > 0 || extra != "" {
		buf = append(buf, '{')
		for i, l := range labels {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, l.Name...)
			buf = append(buf, '=', '"')
			buf = appendLabelValue(buf, l.Value)
			buf = append(buf, '"')
		}
		if extra != "" {
			if len(labels) > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, extra...)
			buf = append(buf, '=', '"')
			buf = appendFloat(buf, extraVal)
			buf = append(buf, '"')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	if count && v >= 0 && v < 1<<53 && v == math.Trunc(v) {
		// client_golang writes bucket and sample counts as integers.
		buf = strconv.AppendUint(buf, uint64(v), 10)
	} else {
		buf = appendFloat(buf, v)
	}
	return append(buf, '\n')
}

func appendFloat(buf []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

func appendLabelValue(buf []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\"\n") {
		return append(buf, v...)
	}
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '"':
			buf = append(buf, '\\', '"')
		case '\n':
			buf = append(buf, '\\', 'n')
		default:
			buf = append(buf, v[i])
		}
	}
	return buf
}

// appendHelp escapes a HELP text; OpenMetrics escapes '"' too.
func appendHelp(buf []byte, v string, om bool) []byte {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '"':
			if om {
				buf = append(buf, '\\')
			}
			buf = append(buf, '"')
		case '\n':
			buf = append(buf, '\\', 'n')
		default:
			buf = append(buf, v[i])
		}
	}
	return buf
}

// ToProto converts a family for the expfmt encoders (OpenMetrics,
// protobuf). Histograms whose weighted counts are not integers use the
// float count fields.
func ToProto(f *aggregate.FamilySnapshot) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(f.Name), Help: proto.String(f.Help)}
	switch f.Kind {
	case aggregate.KindCounter:
		mf.Type = dto.MetricType_COUNTER.Enum()
	case aggregate.KindGauge:
		mf.Type = dto.MetricType_GAUGE.Enum()
	case aggregate.KindHistogram:
		mf.Type = dto.MetricType_HISTOGRAM.Enum()
	case aggregate.KindSummary:
		mf.Type = dto.MetricType_SUMMARY.Enum()
	}
	for i := range f.Series {
		s := &f.Series[i]
		m := &dto.Metric{}
		for _, l := range s.Labels {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
		}
		switch f.Kind {
		case aggregate.KindCounter:
			m.Counter = &dto.Counter{Value: proto.Float64(s.Value)}
		case aggregate.KindGauge:
			m.Gauge = &dto.Gauge{Value: proto.Float64(s.Value)}
		case aggregate.KindHistogram:
			h := &dto.Histogram{SampleSum: proto.Float64(s.Sum)}
			integral := s.Count == math.Trunc(s.Count)
			for _, c := range s.Cumulative {
				integral = integral && c == math.Trunc(c)
			}
			if integral {
				h.SampleCount = proto.Uint64(uint64(s.Count))
			} else {
				h.SampleCountFloat = proto.Float64(s.Count)
			}
			for k, b := range f.Buckets {
				bk := &dto.Bucket{UpperBound: proto.Float64(b)}
				if integral {
					bk.CumulativeCount = proto.Uint64(uint64(s.Cumulative[k]))
				} else {
					bk.CumulativeCountFloat = proto.Float64(s.Cumulative[k])
				}
				if k < len(s.Exemplars) && s.Exemplars[k].Time != 0 {
					bk.Exemplar = protoExemplar(&s.Exemplars[k])
				}
				h.Bucket = append(h.Bucket, bk)
			}
			m.Histogram = h
		case aggregate.KindSummary:
			sm := &dto.Summary{SampleCount: proto.Uint64(uint64(s.Count)), SampleSum: proto.Float64(s.Sum)}
			for _, q := range s.Quantiles {
				sm.Quantile = append(sm.Quantile, &dto.Quantile{Quantile: proto.Float64(q.Quantile), Value: proto.Float64(q.Value)})
			}
			m.Summary = sm
		}
		mf.Metric = append(mf.Metric, m)
	}
	return mf
}

// protoExemplar converts an exemplar for the protobuf format, which has
// no +Inf bucket to carry one: that bucket's exemplar reaches OpenMetrics
// scrapes only.
func protoExemplar(e *aggregate.Exemplar) *dto.Exemplar {
	return &dto.Exemplar{
		Label:     []*dto.LabelPair{{Name: proto.String("trace_id"), Value: proto.String(e.TraceID.String())}},
		Value:     proto.Float64(e.Value),
		Timestamp: timestamppb.New(time.Unix(0, e.Time)),
	}
}

var _ io.Writer = (*bufio.Writer)(nil)
