package sinkdiff

import (
	"fmt"
	"math"

	dto "github.com/prometheus/client_model/go"
)

// Deliberate is a documented, intended difference between statsd-sink and
// statsd_exporter v0.31.0. Every difference the differential test finds must
// be explained by one of these, and each entry verifies that the sink's side
// of the difference has the value the sink's documented semantics demand, so
// a tolerated difference can still fail.
type Deliberate struct {
	// ID names the entry in test output and in README.md.
	ID string
	// Reason says why the sink differs on purpose.
	Reason string
	// Families are the corpus's metric families this entry covers; the
	// corpus keeps these cases under their own names so that the tolerance
	// cannot hide a difference anywhere else.
	Families []string
	// Kinds are the kinds of difference it explains.
	Kinds []Kind
	// Check verifies the sink's series (ref is nil when the reference has
	// none).
	Check func(ref, got *Series) error
	// Required means the sink must show the difference (it is a feature of
	// the sink, such as exporting sets), not merely may.
	Required bool
}

// Applies reports whether d is explained by this entry.
func (e Deliberate) Applies(d Difference) bool {
	return contains(e.Families, d.Family) && contains(e.Kinds, d.Kind)
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Deliberates returns the table of deliberate differences, tied to the
// corpus in testdata/cases. README.md repeats it for readers.
func Deliberates() []Deliberate {
	return []Deliberate{
		{
			ID: "sets",
			Reason: "statsd_exporter rejects StatsD sets (|s) as illegal events; statsd-sink exports each set " +
				"as a gauge of the number of unique values seen in the current interval",
			// unmapped.lines sends set.users = {alice, bob, carol} (alice twice) and
			// set.tagged{env="prod"} = {1, 2}; mapped.lines sends sets.mapped = {x, y, z, w}.
			Families: []string{"set_users", "set_tagged", "mapped_set_members"},
			Kinds:    []Kind{OnlyInCandidate},
			Check: func(_, got *Series) error {
				want := map[string]float64{
					`set_users`:                    3,
					`set_tagged{env="prod"}`:       2,
					`mapped_set_members{pool="a"}`: 4,
				}[got.Key()]
				if got.Type != dto.MetricType_GAUGE {
					return fmt.Errorf("set exported as %s, want GAUGE", got.Type)
				}
				if v := got.Metric.GetGauge().GetValue(); v != want {
					return fmt.Errorf("set has %g unique values, want %g", v, want)
				}
				return nil
			},
			Required: true,
		},
		{
			ID: "sample-weighted-timers",
			Reason: "statsd_exporter observes a timer sampled at rate r int(1/r) times, so @0.3 counts as 3 observations; " +
				"statsd-sink observes it once with weight 1/r (count and buckets += 1/r, sum += value/r), which is exact " +
				"for every rate. Where 1/r is an integer (@0.5, @0.25, @0.1) the two agree and are compared strictly.",
			// mapped.lines sends frac.timer:100|ms|@0.3 and frac.summary:100|ms|@0.3,
			// three times each: 3 × (1/0.3) = 10 weighted observations of 0.1 s.
			Families: []string{"frac_timer_seconds", "frac_summary_seconds"},
			Kinds:    []Kind{CountDiffers, SumDiffers, BucketsDiffer},
			Check: func(_, got *Series) error {
				const value, lines, rate = 0.1, 3, 0.3
				wantCount := lines * (1 / rate)
				wantSum := lines * value / rate
				switch got.Type {
				case dto.MetricType_HISTOGRAM:
					h := got.Metric.GetHistogram()
					if c := histCount(h); !FloatEqual(c, wantCount) {
						return fmt.Errorf("weighted count %g, want %g", c, wantCount)
					}
					if s := h.GetSampleSum(); !FloatEqual(s, wantSum) {
						return fmt.Errorf("weighted sum %g, want %g", s, wantSum)
					}
					for _, b := range h.GetBucket() {
						want := 0.0
						if b.GetUpperBound() >= value {
							want = wantCount
						}
						if c := bucketCount(b); !FloatEqual(c, want) {
							return fmt.Errorf("bucket le=%g has %g, want %g", b.GetUpperBound(), c, want)
						}
					}
				case dto.MetricType_SUMMARY:
					s := got.Metric.GetSummary()
					// The text parser truncates a summary's _count to an
					// integer, so a weighted 10.000000000000002 reads as 10.
					if c := float64(s.GetSampleCount()); math.Abs(c-wantCount) >= 1 {
						return fmt.Errorf("weighted count %g, want %g", c, wantCount)
					}
					if v := s.GetSampleSum(); !FloatEqual(v, wantSum) {
						return fmt.Errorf("weighted sum %g, want %g", v, wantSum)
					}
					for _, q := range s.GetQuantile() {
						if !FloatEqual(q.GetValue(), value) {
							return fmt.Errorf("quantile %g is %g, want %g (all observations are equal)", q.GetQuantile(), q.GetValue(), value)
						}
					}
				default:
					return fmt.Errorf("timer exported as %s", got.Type)
				}
				return nil
			},
			Required: true,
		},
	}
}
