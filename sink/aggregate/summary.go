package aggregate

import (
	"time"

	"github.com/beorn7/perks/quantile"
)

// summary reproduces client_golang's summary (a ring of quantile streams
// that age out after MaxAge), so that unsampled input gives the same
// quantiles as statsd_exporter. Weighted (sampled) observations enter the
// streams with their weight instead of being copied.
type summary struct {
	objectives     []Objective
	streams        []*quantile.Stream
	head           int
	headExp        time.Time
	streamDuration time.Duration
	count, sum     float64
}

func newSummary(o SummaryOptions, now time.Time) *summary {
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = 10 * time.Minute
	}
	ageBuckets := o.AgeBuckets
	if ageBuckets == 0 {
		ageBuckets = 5
	}
	targets := make(map[float64]float64, len(o.Objectives))
	for _, q := range o.Objectives {
		targets[q.Quantile] = q.Error
	}
	s := &summary{objectives: o.Objectives, streamDuration: maxAge / time.Duration(ageBuckets)}
	s.headExp = now.Add(s.streamDuration)
	for range ageBuckets {
		s.streams = append(s.streams, quantile.NewTargeted(targets))
	}
	return s
}

// rotate resets streams whose age bucket has passed.
func (s *summary) rotate(now time.Time) {
	for n := 0; now.After(s.headExp) && n <= len(s.streams); n++ {
		s.streams[s.head].Reset()
		s.head = (s.head + 1) % len(s.streams)
		s.headExp = s.headExp.Add(s.streamDuration)
	}
	if now.After(s.headExp) {
		// Idle for longer than MaxAge: every stream is empty already.
		for now.After(s.headExp) {
			s.headExp = s.headExp.Add(s.streamDuration)
		}
	}
}

func (s *summary) observe(now time.Time, v, w float64) {
	s.rotate(now)
	for _, st := range s.streams {
		if w == 1 {
			st.Insert(v)
		} else {
			st.Merge(quantile.Samples{{Value: v, Width: w}})
		}
	}
	s.count += w
	s.sum += weighted(v, w)
}

func (s *summary) snapshot(now time.Time) (count, sum float64, qs []Quantile) {
	if len(s.objectives) == 0 {
		return s.count, s.sum, nil
	}
	s.rotate(now)
	head := s.streams[s.head]
	qs = make([]Quantile, len(s.objectives))
	for i, o := range s.objectives {
		v := nan
		if head.Count() > 0 {
			v = head.Query(o.Quantile)
		}
		qs[i] = Quantile{Quantile: o.Quantile, Value: v}
	}
	return s.count, s.sum, qs
}
