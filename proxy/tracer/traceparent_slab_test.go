package tracer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// TestUnsampledTraceparent: every value is a valid, unsampled traceparent
// that the W3C propagator reads back, no two share an ID, and a value
// cannot be appended to in place (its neighbour would change under a
// header map that holds it).
func TestUnsampledTraceparent(t *testing.T) {
	seen := map[trace.TraceID]bool{}
	var prev []string
	for i := range 3 * slabValues {
		v := unsampledTraceparent()
		if len(v) != 1 || cap(v) != 1 || len(v[0]) != traceparentLen {
			t.Fatalf("value %d: %q (len %d, cap %d)", i, v, len(v), cap(v))
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.HeaderCarrier(http.Header{"Traceparent": v})))
		if !sc.IsValid() || sc.IsSampled() {
			t.Fatalf("value %d: %q is not a valid, unsampled traceparent", i, v[0])
		}
		if seen[sc.TraceID()] {
			t.Fatalf("value %d: trace ID %s handed out twice", i, sc.TraceID())
		}
		seen[sc.TraceID()] = true
		if prev != nil {
			before := prev[0]
			_ = append(v, "x")
			if prev[0] != before {
				t.Fatalf("appending to value %d changed value %d", i, i-1)
			}
		}
		prev = v
	}
}

// BenchmarkUnsampledTraceparent is the per-request cost of the value an
// unsampled root request sends upstream, refills included.
func BenchmarkUnsampledTraceparent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = unsampledTraceparent()
	}
}

// TestUnsampledRootAllocs: the tracing work of an unsampled root request,
// from the decision to the traceparent sent upstream, allocates nothing
// per request (the slab's refills, one in 64 requests, round to zero).
func TestUnsampledRootAllocs(t *testing.T) {
	tr, _ := newTestTracer(t, 0)
	in := http.Header{"User-Agent": {"test"}}
	out := http.Header{"User-Agent": {"test"}}
	info := &streaminfo.Info{ResponseCode: 200}
	n := testing.AllocsPerRun(1000, func() {
		ctx, span, _ := tr.StartServer(context.Background(), Inbound{Header: in, RequestID: "4d2c3b1a-0000-4000-8000-000000000000", Name: "h"})
		EndClient(tr.StartClient(ctx, Outbound{Header: out, Cluster: "c", Attempt: 1}), 200, "")
		tr.EndServer(span, info, false)
	})
	if n != 0 {
		t.Errorf("an unsampled root request allocates %v times", n)
	}
	if out.Get("Traceparent") == "" {
		t.Error("no traceparent sent upstream")
	}
}

// TestPutHex64: the word-at-a-time digits are fmt's, for the edges and for
// random values.
func TestPutHex64(t *testing.T) {
	vals := []uint64{0, 1, 9, 10, 15, 16, 0x0123456789abcdef, 0xfedcba9876543210, 0x9999999999999999, 0xaaaaaaaaaaaaaaaa, ^uint64(0)}
	for range 1000 {
		vals = append(vals, rand.Uint64())
	}
	var b [16]byte
	for _, v := range vals {
		putHex64(b[:], v)
		if want := fmt.Sprintf("%016x", v); string(b[:]) != want {
			t.Fatalf("putHex64(%#x) = %q, want %q", v, b[:], want)
		}
	}
}
