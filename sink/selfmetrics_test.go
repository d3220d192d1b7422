package sink

import (
	"slices"
	"testing"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/ingest"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// TestSelfMetricsMatchExported keeps SelfMetrics, which dashboards build
// their queries from, equal to what the sink really exports: same names in
// the same order, same kinds, and the same label names.
func TestSelfMetricsMatchExported(t *testing.T) {
	m := NewMetrics(nil)
	// Make every labelled family carry a series so its labels can be compared.
	m.sampleErrors[0].Add(1)
	m.conflict(statsd.TypeCounter, "x")
	m.overflow(true, "y", false)
	fams := m.families(&selfState{
		store: aggregate.New(aggregate.Options{}), ingest: &ingest.Stats{},
		kernelDrops: func() (uint64, bool) { return 0, false },
	})
	want := SelfMetrics()
	if len(fams) != len(want) {
		t.Fatalf("sink exports %d self-metric families, SelfMetrics lists %d", len(fams), len(want))
	}
	for i, f := range fams {
		w := want[i]
		if f.Name != w.Name {
			t.Errorf("self-metric %d: exported %q, listed %q", i, f.Name, w.Name)
			continue
		}
		if got := f.Kind == aggregate.KindCounter; got != w.Counter {
			t.Errorf("%s: exported as counter=%v, listed counter=%v", f.Name, got, w.Counter)
		}
		var labels []string
		if len(f.Series) > 0 {
			for _, l := range f.Series[0].Labels {
				labels = append(labels, l.Name)
			}
		}
		if len(f.Series) > 0 && !slices.Equal(labels, w.Labels) {
			t.Errorf("%s: exported labels %v, listed %v", f.Name, labels, w.Labels)
		}
	}
	if _, ok := LookupSelfMetric("statsd_sink_series"); !ok {
		t.Error("LookupSelfMetric(statsd_sink_series) found nothing")
	}
	if _, ok := LookupSelfMetric("no_such_metric"); ok {
		t.Error("LookupSelfMetric(no_such_metric) found something")
	}
}
