package tracing

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy/requestid"
)

func decide(s sdktrace.Sampler, ctx context.Context, id string) bool {
	var attrs []attribute.KeyValue
	if id != "" {
		attrs = append(attrs, attribute.String("http.request.method", "GET"), AttrRequestID.String(id))
	}
	tid, _ := trace.TraceIDFromHex("ffffffffffffffffffffffffffffffff") // never sampled by ratio < 1
	r := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "x", Attributes: attrs})
	return r.Decision == sdktrace.RecordAndSample
}

func parentCtx(sampled bool) context.Context {
	tid, _ := trace.TraceIDFromHex(wantTrace)
	sid, _ := trace.SpanIDFromHex(wantSpan)
	var flags trace.TraceFlags
	if sampled {
		flags = trace.FlagsSampled
	}
	return trace.ContextWithRemoteSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}))
}

func TestRequestIDSamplerDecisions(t *testing.T) {
	// "00000000..." is bucket 0, "0000270f..." is bucket 9999, "000003e8" is 1000.
	const low, high, mid = "00000000-0000-4000-8000-000000000000", "0000270f-0000-4000-8000-000000000000", "000003e8-aaaa-4000-8000-000000000000"
	tests := []struct {
		name  string
		ratio float64
		ctx   context.Context
		id    string
		want  bool
	}{
		{"sampled parent wins over ratio 0", 0, parentCtx(true), low, true},
		{"unsampled parent wins over ratio 1", 1, parentCtx(false), low, false},
		{"unsampled parent wins over force", 1, WithForcedSampling(parentCtx(false)), low, false},
		{"force with ratio 0", 0, WithForcedSampling(context.Background()), high, true},
		{"force without request ID", 0, WithForcedSampling(context.Background()), "", true},
		{"bucket 0 at ratio 0.0001", 0.0001, context.Background(), low, true},
		{"bucket 0 at ratio 0", 0, context.Background(), low, false},
		{"bucket 9999 at ratio 0.9999", 0.9999, context.Background(), high, false},
		{"bucket 9999 at ratio 1", 1, context.Background(), high, true},
		{"bucket 1000 at ratio 0.1 (strictly less)", 0.1, context.Background(), mid, false},
		{"bucket 1000 at ratio 0.1001", 0.1001, context.Background(), mid, true},
		{"upper-case hex", 0.1001, context.Background(), "000003E8-AAAA-4000-8000-000000000000", true},
		{"no request ID falls back to trace ID ratio", 0.5, context.Background(), "", false},
		{"unparsable request ID falls back", 0.5, context.Background(), "not-a-uuid", false},
		{"fallback at ratio 1", 1, context.Background(), "zzz", true},
		{"ratio above 1 clamps", 7, context.Background(), high, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(RequestIDSampler(tt.ratio), tt.ctx, tt.id); got != tt.want {
				t.Fatalf("sampled = %v, want %v", got, tt.want)
			}
		})
	}
}

// Two proxies that share no parent but see the same x-request-id must agree,
// and the share sampled must be close to the ratio.
func TestRequestIDSamplerAgreesAcrossInstances(t *testing.T) {
	const n, ratio = 20000, 0.1
	a, b := RequestIDSampler(ratio), RequestIDSampler(ratio)
	sampled := 0
	for i := range n {
		id := requestid.New()
		da, db := decide(a, context.Background(), id), decide(b, context.Background(), id)
		if da != db {
			t.Fatalf("request %d (%s): samplers disagree: %v vs %v", i, id, da, db)
		}
		// The rule is Envoy's, spelled out.
		v, _ := requestid.Mod(id, 10000)
		if da != (v < 1000) {
			t.Fatalf("request %s (bucket %d): sampled=%v", id, v, da)
		}
		if da {
			sampled++
		}
	}
	// Binomial(20000, 0.1): mean 2000, sd ~42; the bounds are 10 sd wide.
	if sampled < 1580 || sampled > 2420 {
		t.Fatalf("sampled %d of %d at ratio %v", sampled, n, ratio)
	}
}

func TestRequestIDSamplerDescription(t *testing.T) {
	if got := RequestIDSampler(0.25).Description(); got != fmt.Sprintf("RequestIDSampler{ratio=%g}", 0.25) {
		t.Fatalf("Description = %q", got)
	}
}

func BenchmarkRequestIDSampler(b *testing.B) {
	s := RequestIDSampler(0.01)
	p := sdktrace.SamplingParameters{ParentContext: context.Background(), Name: "GET",
		Attributes: []attribute.KeyValue{AttrHTTPRequestMethod.String("GET"), AttrRequestID.String(requestid.New())}}
	b.ReportAllocs()
	for b.Loop() {
		s.ShouldSample(p)
	}
}
