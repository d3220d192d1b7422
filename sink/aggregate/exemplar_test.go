package aggregate

import (
	"encoding/binary"
	"testing"
	"time"
)

func traceID(n uint64) TraceID {
	var id TraceID
	binary.BigEndian.PutUint64(id[8:], n)
	id[0] = 0x4b
	return id
}

func TestExemplarLatestPerBucket(t *testing.T) {
	s := New(Options{Shards: 4})
	h, _ := s.GetOrCreate(key("h", "c", "x"), spec(KindHistogram)) // buckets 1, 5, +Inf
	h.Observe(10, 0.5, 1)
	if ss := find(s.Snapshot(), "h").Series[0]; ss.Exemplars != nil {
		t.Fatalf("exemplars without a traced observation: %v", ss.Exemplars)
	}
	h.ObserveExemplar(20, 0.7, 1, traceID(1))
	h.ObserveExemplar(30, 0.9, 2, traceID(2)) // replaces trace 1 in bucket le=1
	h.ObserveExemplar(40, 100, 1, traceID(3))
	ss := find(s.Snapshot(), "h").Series[0]
	want := []Exemplar{{traceID(2), 0.9, 30}, {}, {traceID(3), 100, 40}}
	if len(ss.Exemplars) != len(want) {
		t.Fatalf("exemplars %v, want %v", ss.Exemplars, want)
	}
	for i := range want {
		if ss.Exemplars[i] != want[i] {
			t.Errorf("bucket %d: exemplar %+v, want %+v", i, ss.Exemplars[i], want[i])
		}
	}
	if ss.Count != 5 || ss.Cumulative[0] != 4 {
		t.Errorf("a traced observation counts like any other: count %v, cumulative %v", ss.Count, ss.Cumulative)
	}
}

func TestSummaryKeepsNoExemplars(t *testing.T) {
	s := New(Options{Shards: 4})
	sm, _ := s.GetOrCreate(key("s"), spec(KindSummary))
	sm.ObserveExemplar(s.Now(), 1, 1, traceID(1))
	if ss := find(s.Snapshot(), "s").Series[0]; ss.Exemplars != nil || ss.Count != 1 {
		t.Errorf("summary: exemplars %v, count %v", ss.Exemplars, ss.Count)
	}
	if n := s.ExemplarSeries(); n != 0 {
		t.Errorf("ExemplarSeries = %d with no histogram", n)
	}
}

// TestExemplarFloodIsBounded: every sampled request brings a new trace
// ID. A flood of them must neither make series nor grow memory: one
// exemplar per bucket, replaced in place without allocating.
func TestExemplarFloodIsBounded(t *testing.T) {
	s := New(Options{Shards: 4})
	h, _ := s.GetOrCreate(key("h", "c", "x"), spec(KindHistogram))
	const n = 100000
	var last [3]uint64 // the latest trace of each bucket (le 1, 5, +Inf)
	for i := range uint64(n) {
		v := float64(i % 7)
		h.ObserveExemplar(int64(i+1), v, 1, traceID(i))
		switch {
		case v <= 1:
			last[0] = i
		case v <= 5:
			last[1] = i
		default:
			last[2] = i
		}
	}
	if s.Len() != 1 || s.ExemplarSeries() != 1 {
		t.Errorf("after %d trace IDs: %d series, %d with exemplars; want 1 and 1", n, s.Len(), s.ExemplarSeries())
	}
	ss := find(s.Snapshot(), "h").Series[0]
	if len(ss.Exemplars) != 3 {
		t.Fatalf("%d exemplars, want one per bucket (3)", len(ss.Exemplars))
	}
	for b, i := range last {
		if got := ss.Exemplars[b]; got.TraceID != traceID(i) || got.Time != int64(i+1) {
			t.Errorf("bucket %d: exemplar %+v, want trace %d", b, got, i)
		}
	}
	id := traceID(n)
	if a := testing.AllocsPerRun(1000, func() { h.ObserveExemplar(time.Now().UnixNano(), 3, 1, id) }); a != 0 {
		t.Errorf("ObserveExemplar allocates %v times once the series has exemplars", a)
	}
}

func TestExpiredSeriesReleasesExemplars(t *testing.T) {
	s := New(Options{Shards: 4})
	h, _ := s.GetOrCreate(key("h"), func() *Spec { return &Spec{Kind: KindHistogram, Buckets: []float64{1}, TTL: time.Second} })
	h.ObserveExemplar(s.Now(), 1, 1, traceID(1))
	s.Tick(time.Unix(0, s.Now()).Add(time.Minute))
	if s.Len() != 0 || s.ExemplarSeries() != 0 {
		t.Errorf("after expiry: %d series, %d with exemplars", s.Len(), s.ExemplarSeries())
	}
}
