package stats

import (
	"runtime"
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
// atomics: the per-bucket sum is what makes the compact StatsD mode exact,
// provided a reader gets a count and a sum that describe the same samples.
// Two independent atomics cannot be loaded together, so each bucket also
// counts the Records that have started; see loadBucket.
type Histogram struct {
	bounds []float64       // upper bounds (le), shared by the store
	counts []atomic.Uint64 // completed Records; len(bounds)+1, the last one is +Inf
	sums   []atomic.Uint64 // value sums, same indexing
	starts []atomic.Uint64 // started Records, same indexing; counts[i] <= starts[i]
	// exemplars are the buckets' latest sampled observations; nil until
	// the first one (RecordTraced).
	exemplars atomic.Pointer[exemplarSlots]
	store     *Store
	meta
}

// Kind returns KindHistogram.
func (h *Histogram) Kind() Kind { return KindHistogram }

// Record adds one sample. It is lock-free and does not allocate; when a
// StatsD sink in timer mode is running the sample is also queued for it,
// and dropped (and counted) if the queue is full.
func (h *Histogram) Record(v uint64) { h.RecordTraced(v, TraceID{}) }

// RecordTraced is Record for a request that may be sampled. When id is
// valid (the request's trace is sampled), the sample also becomes its
// bucket's exemplar, replacing the previous one, and a timer-mode sink
// with exemplars gets id with the sample. With a zero id it is Record: an
// unsampled request pays one comparison more. It never allocates per
// sample; the first exemplar of a histogram allocates its slots once.
func (h *Histogram) RecordTraced(v uint64, id TraceID) {
	i := bucketIndex(h.bounds, v)
	// In this order, which loadBucket relies on: starts, sums, counts.
	h.starts[i].Add(1)
	h.sums[i].Add(v)
	h.counts[i].Add(1)
	if id.IsValid() {
		h.exemplarSlotsFor()[i].store(id, v, time.Now().UnixNano())
	}
	if h.store == nil {
		return
	}
	if q := h.store.timerQueue.Load(); q != nil {
		if !q.push(sample{hist: uint32(h.index), v: v, trace: id}) {
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

// Snapshot reads the histogram. Each bucket's count and sum describe the
// same samples (loadBucket), unless Records kept landing in that bucket
// during every attempt to read it; then the sum may also hold the values
// of samples not yet counted. Buckets are read one after the other, not
// all at one instant.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts)), Sums: make([]uint64, len(h.sums))}
	for i := range h.counts {
		s.Counts[i], s.Sums[i], _ = h.loadBucketRetry(i)
	}
	return s
}

// loadBucket reads bucket i's count and sum. ok reports that they are
// consistent: sum is exactly the sum of the count samples. It is false
// when a Record into this bucket was in progress between the loads, or
// started during them; the caller retries or tries again later.
//
// Why ok is exact: Record adds to starts, then sums, then counts, and Go
// atomics are sequentially consistent. Let C(t) and A(t) be counts[i] and
// starts[i] at time t, and tc < ts < ta the times of the three loads
// below; C(t) <= A(t) and A only grows. ok means C(tc) == A(ta), hence
// C(tc) == A(tc) == A(ta): at tc every started Record had finished (its
// value was added before tc, so it is in the sum), and none started
// between tc and ta (so no value was added to the sum between tc and ts).
// Loading the count and then the sum, without starts, only ensures that
// the sum covers every counted sample: a Record between its adds, or any
// number of Records while the reader was descheduled between its loads,
// put values in the sum that the count does not cover.
func (h *Histogram) loadBucket(i int) (count, sum uint64, ok bool) {
	count = h.counts[i].Load()
	if testHookBetweenLoads != nil {
		testHookBetweenLoads(h, i)
	}
	sum = h.sums[i].Load()
	return count, sum, h.starts[i].Load() == count
}

// loadAttempts bounds how many times loadBucketRetry reads a bucket that
// Records keep changing. Each failed attempt means another Record hit the
// bucket within a few nanoseconds, or one is descheduled halfway; yielding
// in between lets the latter finish.
const loadAttempts = 8

// loadBucketRetry is loadBucket retried up to loadAttempts times. When
// every attempt failed it returns the last (inconsistent) values and false.
func (h *Histogram) loadBucketRetry(i int) (count, sum uint64, ok bool) {
	for range loadAttempts - 1 {
		if count, sum, ok = h.loadBucket(i); ok {
			return count, sum, true
		}
		runtime.Gosched()
	}
	return h.loadBucket(i)
}

// testHookBetweenLoads, when set by a test, runs in loadBucket between the
// count and sum loads, where the reader may be descheduled.
var testHookBetweenLoads func(h *Histogram, bucket int)

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
