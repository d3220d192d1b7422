package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Units used by the panels (Grafana unit ids).
const (
	unitReqPerSec = "reqps"
	unitOpsPerSec = "ops"
	unitPercent   = "percentunit"
	unitMillis    = "ms"
	unitSeconds   = "s"
	unitCount     = "short"
	unitBytes     = "bytes"
)

type vizKind int

const (
	vizTimeseries vizKind = iota
	vizStat
)

// target is one query of a panel.
type target struct {
	expr   string
	legend string
}

// step is one threshold step; the first step's value is ignored (base).
type step struct {
	value float64
	color string
}

// panel is what a dashboard says about one panel; build turns it into the
// SDK's builder with the datasource, unit, thresholds and links every
// panel must have.
type panel struct {
	title, description, unit string
	viz                      vizKind
	targets                  []target
	w, h                     uint32
	thresholds               []step
	min, max                 *float64
	links                    []link
	// exemplars, if set, is one more query whose exemplars (traced
	// requests) Grafana asks Prometheus for and draws as points that
	// open their trace (the datasource's exemplarTraceIdDestinations).
	exemplars string
}

// link is a panel data link; external ones (Jaeger) open in a new tab.
type link struct {
	title, url string
	external   bool
}

func ptr[T any](v T) *T { return &v }

// Threshold presets. Success ratios are red below 95 %, amber below 99 %;
// latencies amber from 250 ms and red from 1 s, which is the demo's slowest
// healthy hop times four.
var (
	successSteps = []step{{0, "red"}, {0.95, "orange"}, {0.99, "green"}}
	latencySteps = []step{{0, "green"}, {250, "orange"}, {1000, "red"}}
	errorSteps   = []step{{0, "green"}, {0.01, "orange"}, {0.05, "red"}}
	plainSteps   = []step{{0, "green"}}
)

func datasourceRef() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${" + VarDatasource + "}")}
}

func (p panel) buildTargets() []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, t := range p.targets {
		q := prometheus.NewDataqueryBuilder().
			Datasource(datasourceRef()).
			Expr(t.expr).
			LegendFormat(t.legend).
			RefId(string(rune('A' + i)))
		if p.viz == vizStat {
			q = q.Instant()
		} else {
			q = q.Range()
		}
		out = append(out, q)
	}
	if p.exemplars != "" {
		out = append(out, prometheus.NewDataqueryBuilder().
			Datasource(datasourceRef()).
			Expr(p.exemplars).
			LegendFormat("traced request").
			RefId(string(rune('A'+len(p.targets)))).
			Range().
			Exemplar(true))
	}
	return out
}

func (p panel) thresholdsConfig() *dashboard.ThresholdsConfigBuilder {
	steps := p.thresholds
	if steps == nil {
		steps = plainSteps
	}
	var ts []dashboard.Threshold
	for i, s := range steps {
		t := dashboard.Threshold{Color: s.color}
		if i > 0 {
			t.Value = ptr(s.value)
		}
		ts = append(ts, t)
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(ts)
}

func (p panel) dataLinks() []cog.Builder[dashboard.DashboardLink] {
	var out []cog.Builder[dashboard.DashboardLink]
	for _, l := range p.links {
		out = append(out, dashboard.NewDashboardLinkBuilder(l.title).Type(dashboard.DashboardLinkTypeLink).Url(l.url).TargetBlank(l.external))
	}
	return out
}

// rangeAndLinks is what the stat and time series panel builders share for
// a panel's optional min, max and data links.
type rangeAndLinks[B any] interface {
	Min(float64) B
	Max(float64) B
	DataLinks([]cog.Builder[dashboard.DashboardLink]) B
}

// withRangeAndLinks sets p's min, max and data links on b, those p has.
func withRangeAndLinks[B rangeAndLinks[B]](b B, p panel) B {
	if p.min != nil {
		b = b.Min(*p.min)
	}
	if p.max != nil {
		b = b.Max(*p.max)
	}
	if len(p.links) > 0 {
		b = b.DataLinks(p.dataLinks())
	}
	return b
}

// build returns the SDK builder for p with panel id id.
func (p panel) build(id uint32) cog.Builder[dashboard.Panel] {
	w, h := p.w, p.h
	if w == 0 {
		w = 8
	}
	if h == 0 {
		h = 8
	}
	switch p.viz {
	case vizStat:
		b := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.description).
			Datasource(datasourceRef()).Targets(p.buildTargets()).Unit(p.unit).
			Span(w).Height(h).Thresholds(p.thresholdsConfig()).
			ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeArea)
		return withRangeAndLinks(b, p)
	default:
		b := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.description).
			Datasource(datasourceRef()).Targets(p.buildTargets()).Unit(p.unit).
			Span(w).Height(h).Thresholds(p.thresholdsConfig()).FillOpacity(10)
		if p.thresholds != nil {
			b = b.ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))
		}
		return withRangeAndLinks(b, p)
	}
}
