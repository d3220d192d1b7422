package stats

import (
	"net/http"
	"strconv"

	"github.com/prometheus/common/expfmt"
)

// Content types of /stats/prometheus: Envoy's text format, and OpenMetrics
// for scrapers that ask for it.
const (
	contentTypeText        = "text/plain; version=0.0.4; charset=utf-8"
	contentTypeOpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
)

// negotiateExposition reports whether the Accept header asks for
// OpenMetrics before Envoy's text format, and the Content-Type to answer
// with. The text format is listed first among the offers, so a wildcard
// (curl's */*) or no Accept header at all keeps Envoy's output; only a
// client that names application/openmetrics-text with a higher weight than
// text/plain (Prometheus's scrape default) gets OpenMetrics. OpenMetrics
// 0.0.1 and 1.0.0 differ in nothing this endpoint writes.
func negotiateExposition(h http.Header) (om bool, contentType string) {
	f := expfmt.NegotiateAccept(h, expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1)
	if f.FormatType() != expfmt.TypeOpenMetrics {
		return false, contentTypeText
	}
	if f.Version() == expfmt.OpenMetricsVersion_0_0_1 {
		return true, "application/openmetrics-text; version=0.0.1; charset=utf-8"
	}
	return true, contentTypeOpenMetrics
}

// promCounterType is the "# TYPE" of Envoy's counters. Envoy's Prometheus names
// have no _total suffix, and some sit beside a name that has it
// (envoy_cluster_upstream_rq{envoy_response_code} and
// envoy_cluster_upstream_rq_total). An OpenMetrics counter's samples must
// end in _total, so typing them "counter" would rename one series and
// collide with the other. As "unknown" every sample keeps its exact name:
// a Prometheus stores the same series whichever format it scraped
// (TestOpenMetricsSameSeries, e2e/exemplars); only the type in its
// metadata reads unknown instead of counter.
func promCounterType(om bool) string {
	if om {
		return "unknown"
	}
	return "counter"
}

// appendExemplar appends bucket i's exemplar to a _bucket sample value in
// OpenMetrics form: ` # {trace_id="<32 hex>"} <value> <unix seconds>`,
// the timestamp with milliseconds. Without an exemplar v is unchanged.
func appendExemplar(v string, h *Histogram, i int) string {
	x, ok := h.Exemplar(i)
	if !ok {
		return v
	}
	b := make([]byte, 0, len(v)+80)
	b = append(b, v...)
	b = append(b, ` # {trace_id="`...)
	b = append(b, x.TraceID.String()...)
	b = append(b, `"} `...)
	b = strconv.AppendUint(b, x.Value, 10)
	b = append(b, ' ')
	ms := x.Time.UnixMilli()
	b = strconv.AppendInt(b, ms/1000, 10)
	b = append(b, '.')
	frac := ms % 1000
	b = append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return string(b)
}
