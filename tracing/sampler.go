package tracing

import (
	"context"
	"fmt"
	"math"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy/requestid"
)

// requestIDBuckets is Envoy's granularity for random_sampling: the decision
// compares requestid.Mod(id, 10000) with the ratio in ten-thousandths.
const requestIDBuckets = 10000

type forceKey struct{}

// WithForcedSampling returns a context that makes RequestIDSampler sample a
// span started with it that has no parent. The proxy uses it for
// x-envoy-force-trace and x-client-trace-id. It costs one allocation, so
// call it only for requests that are forced.
func WithForcedSampling(ctx context.Context) context.Context {
	return context.WithValue(ctx, forceKey{}, true)
}

// ForcedSampling reports whether ctx came from WithForcedSampling.
func ForcedSampling(ctx context.Context) bool {
	v, _ := ctx.Value(forceKey{}).(bool)
	return v
}

// RequestIDSampler returns the sampler Setup installs, and the one a proxy
// needs so that hops without a common parent still agree. For each span, in
// order:
//
//  1. A valid parent span context in the start context (remote, from
//     propagated headers, or local) decides: sampled if the parent is.
//     The parent always wins, including over forcing.
//  2. A start context from WithForcedSampling samples.
//  3. A string attribute AttrRequestID ("guid:x-request-id") given at span
//     start with trace.WithAttributes decides as Envoy does:
//     sampled when requestid.Mod(id, 10000) < round(ratio*10000). Every
//     hop that sees the same x-request-id therefore decides the same way.
//  4. Otherwise (no request ID, or one that is not hexadecimal in its first
//     8 characters) the trace ID decides, as OpenTelemetry's TraceIDRatioBased.
//
// The proxy starts its server span like this:
//
//	ctx = prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
//	if forced { ctx = tracing.WithForcedSampling(ctx) }
//	ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
//		trace.WithAttributes(tracing.AttrRequestID.String(id), ...))
//
// ratio is clamped to [0, 1] and quantised to 1/10000, Envoy's granularity.
func RequestIDSampler(ratio float64) sdktrace.Sampler {
	if math.IsNaN(ratio) || ratio < 0 {
		ratio = 0
	}
	ratio = min(ratio, 1)
	return requestIDSampler{
		threshold: uint64(math.Round(ratio * requestIDBuckets)),
		fallback:  sdktrace.TraceIDRatioBased(ratio),
		desc:      fmt.Sprintf("RequestIDSampler{ratio=%g}", ratio),
	}
}

type requestIDSampler struct {
	threshold uint64
	fallback  sdktrace.Sampler
	desc      string
}

// ShouldSample implements sdktrace.Sampler.
func (s requestIDSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	if psc.IsValid() {
		d := sdktrace.Drop
		if psc.IsSampled() {
			d = sdktrace.RecordAndSample
		}
		return sdktrace.SamplingResult{Decision: d, Tracestate: psc.TraceState()}
	}
	if ForcedSampling(p.ParentContext) {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
	}
	for _, a := range p.Attributes {
		if a.Key != AttrRequestID {
			continue
		}
		if sampled, ok := s.decideByRequestID(a.Value.AsString()); ok {
			if sampled {
				return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
			}
			return sdktrace.SamplingResult{Decision: sdktrace.Drop}
		}
		break
	}
	return s.fallback.ShouldSample(p)
}

// decideByRequestID is rule 3: Envoy's decision from x-request-id. ok is
// false when id cannot decide (empty, or not hexadecimal where it must be).
func (s requestIDSampler) decideByRequestID(id string) (sampled, ok bool) {
	v, ok := requestid.Mod(id, requestIDBuckets)
	return ok && v < s.threshold, ok
}

// Description implements sdktrace.Sampler.
func (s requestIDSampler) Description() string { return s.desc }
