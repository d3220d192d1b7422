package stats

import (
	"encoding/binary"
	"encoding/hex"
	"runtime"
	"sync/atomic"
	"time"
)

// TraceID is the 16-byte W3C trace ID of a sampled request; OpenTelemetry's
// trace.TraceID converts to it directly (stats.TraceID(sc.TraceID())). The
// zero value means "no trace": the request was not sampled.
type TraceID [16]byte

// IsValid reports whether t names a trace (is not all zeros).
func (t TraceID) IsValid() bool { return t != TraceID{} }

// String is the trace ID as 32 lowercase hex digits, as W3C traceparent
// and Jaeger print it.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// Exemplar is one sampled observation that a histogram bucket remembers:
// a way from a latency bucket to a trace that landed in it.
type Exemplar struct {
	// TraceID is the sampled request's trace.
	TraceID TraceID
	// Value is the observed value (milliseconds for Envoy's timers).
	Value uint64
	// Time is when it was recorded.
	Time time.Time
}

// exemplarSlot holds the latest exemplar of one bucket. Writers and readers
// are lock-free; seq is a sequence lock: odd while a writer stores the
// fields, advanced by two per stored exemplar, 0 before the first. The
// fields are atomics so that a reader racing a writer is well defined; it
// detects the race from seq and reads again.
type exemplarSlot struct {
	seq            atomic.Uint64
	traceHi, trace atomic.Uint64
	value          atomic.Uint64
	unixNano       atomic.Int64
}

// exemplarSlots are a histogram's exemplar slots, one per bucket (the last
// is +Inf). They exist only for histograms that got a sampled observation.
type exemplarSlots struct {
	slots []exemplarSlot
}

// store replaces the slot's exemplar. If another writer holds the slot it
// gives up: that writer's exemplar is just as recent, and a bucket keeps
// one, so nothing is lost that the bucket would have kept.
func (e *exemplarSlot) store(id TraceID, v uint64, unixNano int64) {
	s := e.seq.Load()
	if s&1 != 0 || !e.seq.CompareAndSwap(s, s+1) {
		return
	}
	e.traceHi.Store(binary.BigEndian.Uint64(id[:8]))
	e.trace.Store(binary.BigEndian.Uint64(id[8:]))
	e.value.Store(v)
	e.unixNano.Store(unixNano)
	e.seq.Store(s + 2)
}

// load reads the slot's exemplar; ok is false when it never had one, or
// when writers kept it busy through every attempt.
func (e *exemplarSlot) load() (x Exemplar, ok bool) {
	for range loadAttempts {
		s := e.seq.Load()
		if s == 0 {
			return Exemplar{}, false
		}
		if s&1 == 0 {
			hi, lo := e.traceHi.Load(), e.trace.Load()
			v, ns := e.value.Load(), e.unixNano.Load()
			if e.seq.Load() == s {
				binary.BigEndian.PutUint64(x.TraceID[:8], hi)
				binary.BigEndian.PutUint64(x.TraceID[8:], lo)
				x.Value, x.Time = v, time.Unix(0, ns)
				return x, true
			}
		}
		runtime.Gosched()
	}
	return Exemplar{}, false
}

// exemplarSlotsFor returns h's slots, creating them on the first sampled
// observation: one allocation in the histogram's life, none per sample,
// and none at all for histograms that never see a sampled request.
func (h *Histogram) exemplarSlotsFor() []exemplarSlot {
	if p := h.exemplars.Load(); p != nil {
		return p.slots
	}
	p := &exemplarSlots{slots: make([]exemplarSlot, len(h.counts))}
	if !h.exemplars.CompareAndSwap(nil, p) {
		p = h.exemplars.Load()
	}
	return p.slots
}

// Exemplar returns the latest exemplar of bucket i (0..len(Bounds), the
// last being +Inf); ok is false when the bucket has none.
func (h *Histogram) Exemplar(i int) (x Exemplar, ok bool) {
	p := h.exemplars.Load()
	if p == nil || i < 0 || i >= len(p.slots) {
		return Exemplar{}, false
	}
	return p.slots[i].load()
}

// traceSection is the StatsD line section that carries a sampled timer
// sample's trace ID, after every other section:
//
//	<name>:<ms>|ms[|@rate][|#tags]|trace_id:<32 lowercase hex>
//
// This form is the contract with hopwatch's statsd-sink.
const traceSection = "|trace_id:"

// appendTraceSection appends "|trace_id:<32 lowercase hex>" to b.
func appendTraceSection(b []byte, id TraceID) []byte {
	b = append(b, traceSection...)
	return hex.AppendEncode(b, id[:])
}
