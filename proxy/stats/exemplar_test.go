package stats

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestExemplarLatestPerBucket: each bucket keeps only its latest sampled
// observation; unsampled ones neither replace nor create exemplars.
func TestExemplarLatestPerBucket(t *testing.T) {
	h := newTestStore(t, Config{}).ClusterStats("c").Responses.Time
	h.Record(7)
	if h.exemplars.Load() != nil {
		t.Fatal("an unsampled observation created exemplar slots")
	}
	before := time.Now()
	h.RecordTraced(7, testTraceID(1))   // bucket le=10
	h.RecordTraced(8, testTraceID(2))   // le=10, replaces 1
	h.RecordTraced(9, TraceID{})        // le=10, unsampled: keeps 2
	h.RecordTraced(400, testTraceID(3)) // le=500
	h.RecordTraced(1<<40, testTraceID(4))
	after := time.Now()

	want := map[int]Exemplar{
		bucketIndex(h.bounds, 8):     {TraceID: testTraceID(2), Value: 8},
		bucketIndex(h.bounds, 400):   {TraceID: testTraceID(3), Value: 400},
		bucketIndex(h.bounds, 1<<40): {TraceID: testTraceID(4), Value: 1 << 40},
	}
	if bucketIndex(h.bounds, 1<<40) != len(h.bounds) {
		t.Fatal("the last sample is not in the +Inf bucket")
	}
	for i := range len(h.bounds) + 1 {
		x, ok := h.Exemplar(i)
		w, wantOK := want[i]
		if ok != wantOK {
			t.Errorf("bucket %d: exemplar present %v, want %v", i, ok, wantOK)
			continue
		}
		if !ok {
			continue
		}
		if x.TraceID != w.TraceID || x.Value != w.Value {
			t.Errorf("bucket %d: exemplar %s=%d, want %s=%d", i, x.TraceID, x.Value, w.TraceID, w.Value)
		}
		if x.Time.Before(before) || x.Time.After(after) {
			t.Errorf("bucket %d: time %v outside [%v, %v]", i, x.Time, before, after)
		}
	}
	if _, ok := h.Exemplar(-1); ok {
		t.Error("bucket -1 has an exemplar")
	}
}

// TestExemplarConcurrent: writers race on one bucket while a reader reads
// it; every exemplar read must be one that a writer stored whole (its
// value matches its trace ID), never a mix of two. Run with -race.
func TestExemplarConcurrent(t *testing.T) {
	h := newTestStore(t, Config{}).ClusterStats("c").Responses.Time
	const writers, perWriter = 4, 5000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				v := uint64(11 + (w*perWriter+i)%14) // all in bucket le=25
				n := uint64(w*perWriter+i) << 8
				h.RecordTraced(v, testTraceID(n|v))
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	i := bucketIndex(h.bounds, 11)
	reads := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		x, ok := h.Exemplar(i)
		if !ok {
			continue
		}
		reads++
		n := uint64(0)
		for b := range 8 {
			n |= uint64(x.TraceID[b]^byte(b*37+1)) << (8 * b)
		}
		if x.TraceID != testTraceID(n) || n&0xff != x.Value {
			t.Fatalf("torn exemplar: trace %s value %d", x.TraceID, x.Value)
		}
	}
	if reads == 0 {
		t.Error("no exemplar was read")
	}
	if h.Snapshot().Count() != writers*perWriter {
		t.Errorf("count %d, want %d", h.Snapshot().Count(), writers*perWriter)
	}
}

// TestRecordTracedAllocs: neither a sampled nor an unsampled observation
// allocates, with a timer-mode queue installed, once the histogram's
// exemplar slots exist.
func TestRecordTracedAllocs(t *testing.T) {
	s := newTestStore(t, Config{})
	s.timerQueue.Store(newSampleQueue(1 << 12))
	h := s.ClusterStats("c").Responses.Time
	h.RecordTraced(1, testTraceID(1))
	id := testTraceID(9)
	if n := testing.AllocsPerRun(1000, func() { h.RecordTraced(12, id) }); n != 0 {
		t.Errorf("sampled RecordTraced: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { h.RecordTraced(12, TraceID{}) }); n != 0 {
		t.Errorf("unsampled RecordTraced: %v allocs, want 0", n)
	}
}

// FuzzTimerLine: whatever the stat name, tag value, value and trace ID, a
// timer line to a sink with exemplars is one line whose trace_id section
// is the last one, holds the trace ID as 32 lowercase hex digits, and is
// present exactly when the sample was sampled.
func FuzzTimerLine(f *testing.F) {
	f.Add("catalog", "front-proxy", uint64(12), []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36})
	f.Add("a|b#c", "x,y:z", uint64(0), []byte{})
	f.Add("", "", uint64(1<<63), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, name, tag string, v uint64, trace []byte) {
		var id TraceID
		copy(id[:], trace)
		s := newTestStore(t, Config{FixedTags: []Tag{{Name: "node_id", Value: "n"}}})
		if CheckFixedTagValue(tag) == nil {
			s = newTestStore(t, Config{FixedTags: []Tag{{Name: "node_id", Value: tag}}})
		}
		h := s.ClusterStats(name).Responses.Time
		for _, dog := range []bool{false, true} {
			w := &captureWriter{}
			q := newSampleQueue(4)
			s.timerQueue.Store(q)
			fl := &Flusher{store: s, queue: q, anyExemplars: true, sinks: []*sinkState{{
				cfg: SinkConfig{Type: SinkStatsD, Protocol: ProtocolUDP, Prefix: "envoy", MaxBytesPerDatagram: 65507, Histograms: HistogramsTimer, Exemplars: true},
				dog: dog, w: w, self: &s.self, log: discardLogger(),
			}}}
			h.RecordTraced(v, id)
			fl.DrainTimers(context.Background())
			if len(w.batches) != 1 || strings.Contains(w.batches[0], "\n") {
				t.Fatalf("want one line, got %q", w.batches)
			}
			line := w.batches[0]
			head, last, _ := cutLast(line, "|")
			hasTrace := strings.HasPrefix(last, "trace_id:")
			if hasTrace != id.IsValid() {
				t.Fatalf("line %q: trace_id section present %v, sampled %v", line, hasTrace, id.IsValid())
			}
			if !hasTrace {
				continue
			}
			if got := strings.TrimPrefix(last, "trace_id:"); got != hex.EncodeToString(id[:]) {
				t.Fatalf("line %q: trace ID %q, want %x", line, got, id[:])
			}
			if strings.Contains(head, "trace_id:") || !strings.Contains(head, "|ms") {
				t.Fatalf("line %q: trace_id is not the one last section after |ms", line)
			}
		}
	})
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
