package expose

import (
	"bufio"
	"strconv"
	"strings"

	"github.com/hopwatch/hopwatch/sink/aggregate"
)

// WriteOpenMetrics writes families in OpenMetrics 1.0 text, the format
// that carries exemplars: histogram buckets have their latest traced
// observation as `# {trace_id="…"} value timestamp`.
//
// A Prometheus must store the same series names whatever format it
// scraped, since dashboards and rules name them. OpenMetrics names a
// counter family without `_total` and writes its samples with it, so a
// counter X would become X_total, and Envoy's X{code} beside X_total would
// both be family X. Counters therefore stay typed only when their name
// already ends in _total and no family owns the name without it; every
// other counter is written as `unknown`, which OpenMetrics exposes under
// its name as it is. Bucket bounds are written as in the text format
// ("1", not "1.0"): Prometheus 3 normalises both formats alike, and
// Prometheus 2 keeps the label value it reads, so this way the series are
// the same there too.
func WriteOpenMetrics(w *bufio.Writer, fams []aggregate.FamilySnapshot) error {
	om := &openMetrics{names: make(map[string]struct{}, len(fams))}
	for i := range fams {
		om.names[fams[i].Name] = struct{}{}
	}
	if err := writeFamilies(w, fams, om); err != nil {
		return err
	}
	_, err := w.WriteString("# EOF\n")
	return err
}

// openMetrics holds what OpenMetrics naming needs of the whole scrape.
type openMetrics struct {
	names map[string]struct{}
}

// family returns f's OpenMetrics family name and type.
func (om *openMetrics) family(f *aggregate.FamilySnapshot) (name, typ string) {
	switch f.Kind {
	case aggregate.KindCounter:
		if base, ok := strings.CutSuffix(f.Name, "_total"); ok {
			if _, taken := om.names[base]; !taken {
				return base, "counter"
			}
		}
		return f.Name, "unknown"
	case aggregate.KindGauge, aggregate.KindHistogram, aggregate.KindSummary:
		return f.Name, f.Kind.String()
	}
	return f.Name, "unknown"
}

// appendExemplar appends ` # {trace_id="…"} value timestamp` and the
// line's newline.
func appendExemplar(buf []byte, e *aggregate.Exemplar) []byte {
	buf = append(buf, ` # {trace_id="`...)
	buf = e.TraceID.AppendHex(buf)
	buf = append(buf, `"} `...)
	buf = appendFloat(buf, e.Value)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, e.Time/1e9, 10)
	ms := e.Time % 1e9 / 1e6
	buf = append(buf, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(buf, '\n')
}
