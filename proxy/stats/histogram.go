package stats

import (
	"sync/atomic"
	"time"
)

// DefaultBuckets are Envoy's default histogram bucket upper bounds, in
// milliseconds (Envoy's HistogramSettingsImpl::defaultBuckets).
func DefaultBuckets() []float64 {
	return []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
}

// Histogram records integer samples (milliseconds for every Envoy timer)
// into fixed buckets. Each bucket keeps its own count and value sum as
// atomics: the per-bucket sum is what makes the compact StatsD mode exact.
type Histogram struct {
	bounds []float64       // upper bounds (le), shared by the store
	counts []atomic.Uint64 // len(bounds)+1; the last one is +Inf
	sums   []atomic.Uint64 // value sums, same indexing
	store  *Store
	meta
}

// Kind returns KindHistogram.
func (h *Histogram) Kind() Kind { return KindHistogram }

// Record adds one sample. It is lock-free and does not allocate; when a
// StatsD sink in timer mode is running the sample is also queued for it,
// and dropped (and counted) if the queue is full.
func (h *Histogram) Record(v uint64) {
	i := bucketIndex(h.bounds, v)
	// Sum before count: a reader that loads the count first then sees the
	// sums of at least every sample it counted (see bucketDelta).
	h.sums[i].Add(v)
	h.counts[i].Add(1)
	if h.store == nil {
		return
	}
	if q := h.store.timerQueue.Load(); q != nil {
		if !q.push(sample{hist: uint32(h.index), v: v}) {
			h.store.self.TimerSamplesDropped.Inc()
		}
	}
}

// RecordDuration records d in whole milliseconds, truncated as Envoy's
// std::chrono::duration_cast does. Negative durations record 0.
func (h *Histogram) RecordDuration(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.Record(uint64(d / time.Millisecond))
}

// Bounds returns the bucket upper bounds (without +Inf). Do not modify.
func (h *Histogram) Bounds() []float64 { return h.bounds }

// Snapshot is a histogram's state at one moment.
type Snapshot struct {
	// Bounds are the bucket upper bounds, without +Inf.
	Bounds []float64
	// Counts are per-bucket (not cumulative) counts; len(Bounds)+1 entries,
	// the last for values above the last bound.
	Counts []uint64
	// Sums are the per-bucket value sums.
	Sums []uint64
}

// Count is the total number of samples.
func (s Snapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Sum is the total of all samples.
func (s Snapshot) Sum() uint64 {
	var n uint64
	for _, c := range s.Sums {
		n += c
	}
	return n
}

// Cumulative returns the cumulative counts per bound (Prometheus le
// buckets), without the +Inf bucket, which is Count.
func (s Snapshot) Cumulative() []uint64 {
	out := make([]uint64, len(s.Bounds))
	var n uint64
	for i := range s.Bounds {
		n += s.Counts[i]
		out[i] = n
	}
	return out
}

// Quantile estimates the q-quantile (0..1) by linear interpolation inside
// the bucket that holds it; ok is false when there are no samples.
func (s Snapshot) Quantile(q float64) (v float64, ok bool) {
	total := s.Count()
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range s.Counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo := 0.0
			if i > 0 {
				lo = s.Bounds[i-1]
			}
			if i == len(s.Bounds) {
				// Above the last bound there is no upper edge: report the
				// mean of the samples there, which is known exactly.
				return float64(s.Sums[i]) / float64(c), true
			}
			hi := s.Bounds[i]
			return lo + (hi-lo)*(rank-seen)/float64(c), true
		}
		seen += float64(c)
	}
	return s.Bounds[len(s.Bounds)-1], true
}

// Snapshot reads the histogram. Counts are read before sums, so every
// counted sample's value is included in the sums (a concurrent Record may
// add a value whose count is not yet visible).
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts)), Sums: make([]uint64, len(h.sums))}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	for i := range h.sums {
		s.Sums[i] = h.sums[i].Load()
	}
	return s
}

// bucketIndex returns the first bucket whose bound is >= v (Prometheus le
// semantics), or len(bounds) for the +Inf bucket. Binary search: no
// allocation, ~5 comparisons for Envoy's 19 buckets.
func bucketIndex(bounds []float64, v uint64) int {
	f := float64(v)
	lo, hi := 0, len(bounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bounds[m] < f {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
