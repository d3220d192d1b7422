// Package tracing sets up OpenTelemetry tracing for hopwatch: a tracer
// provider with an OTLP exporter (gRPC or HTTP) behind a bounded batch
// processor, a parent-based sampler that can decide from x-request-id as
// Envoy does, resource attributes, and configurable propagators (W3C
// tracecontext and baggage, B3 single and multi header, Jaeger
// uber-trace-id).
//
// The proxy and the demo services use it the same way:
//
//	p, err := tracing.Setup(ctx, cfg.Tracing) // honours OTEL_* variables
//	if err != nil { ... }
//	defer p.Shutdown(context.WithoutCancel(ctx))
//	tracer := p.Tracer("hopwatch/proxy")
//
// Export never blocks or slows the code that ends spans: when the collector
// is slow or down, spans are dropped and counted (Provider.Dropped).
//
// Applications use the small library in tracing/hop, which carries trace
// context and x-request-id through an HTTP service and into its logs.
//
// jaeger-client-go is archived and not used: Jaeger receives OTLP natively,
// and go.opentelemetry.io/contrib/propagators/jaeger reads and writes
// uber-trace-id headers for services still instrumented with Jaeger clients.
package tracing
