package tracing

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hopwatch/hopwatch/proxy/requestid"
)

// Provider is a configured OpenTelemetry tracer provider with its exporter,
// sampler and propagator. Its methods are safe for concurrent use.
//
// A nil *Provider is valid and traces nothing: Tracer returns a no-op tracer
// (which still carries an incoming span context along), Propagator returns
// DefaultPropagator, and the rest do nothing. Code that wires tracing in
// can therefore hold a *Provider unconditionally.
type Provider struct {
	cfg  Config
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
	gate *gate
	exp  *countingExporter
	// sampler is the provider's sampler, which RootDecision consults
	// without starting a span.
	sampler requestIDSampler
}

// Option adjusts Setup beyond Config; tests use them.
type Option func(*setupOptions)

type setupOptions struct {
	exporter  sdktrace.SpanExporter
	lookupEnv func(string) (string, bool)
	logger    *slog.Logger
}

// WithExporter makes Setup send spans to e instead of an OTLP exporter built
// from the configuration. Batching, counting and sampling are unchanged.
func WithExporter(e sdktrace.SpanExporter) Option {
	return func(o *setupOptions) { o.exporter = e }
}

// WithLookupEnv makes Setup read OTEL_* variables through f instead of
// os.LookupEnv.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *setupOptions) { o.lookupEnv = f }
}

// WithLogger sets where export failures are reported. Default:
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *setupOptions) { o.logger = l }
}

// Setup builds a Provider from cfg and the OTEL_* environment (see Resolve
// for precedence): an OTLP exporter (gRPC or HTTP) behind a batch span
// processor, RequestIDSampler with the configured ratio, a resource with
// service.name, service.instance.id and cloud.availability_zone, and the
// configured propagators. It does not touch OpenTelemetry's globals; call
// otel.SetTracerProvider(p.TracerProvider()) in main if other libraries
// should use it.
//
// Setup does not connect to the collector: a collector that is down or
// absent never fails Setup and never blocks or slows the code that ends
// spans (spans wait in a bounded queue, and what cannot be exported is
// dropped and counted by Dropped).
//
// With OTEL_SDK_DISABLED=true Setup returns a nil *Provider and no error.
func Setup(ctx context.Context, cfg Config, opts ...Option) (*Provider, error) {
	o := setupOptions{lookupEnv: os.LookupEnv, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if v, ok := o.lookupEnv(EnvSDKDisabled); ok {
		if off, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil && off {
			return nil, nil
		}
	}
	rc, err := Resolve(cfg, o.lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if rc.InstanceID == "" {
		rc.InstanceID = requestid.New()
	}
	prop, err := NewPropagator(rc.Propagators)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := newResource(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	exp := o.exporter
	if exp == nil {
		exp, err = newOTLPExporter(ctx, rc)
		if err != nil {
			return nil, fmt.Errorf("tracing: exporter for %s %s: %w", rc.Protocol, rc.Endpoint, err)
		}
	}

	b := rc.Batch
	g := &gate{capacity: int64(b.MaxQueueSize)}
	cexp := &countingExporter{next: exp, gate: g, logger: o.logger, endpoint: rc.Endpoint}
	g.dropped = &cexp.dropped
	// The SDK's queue gets headroom beyond the gate's capacity: ForceFlush
	// puts a marker in the same queue, and the gate must be the only place
	// where a span can be dropped for want of room, so that every drop is
	// counted (the SDK counts its own drops but does not expose them).
	bsp := sdktrace.NewBatchSpanProcessor(cexp,
		sdktrace.WithMaxQueueSize(b.MaxQueueSize+queueHeadroom),
		sdktrace.WithMaxExportBatchSize(b.MaxExportBatchSize),
		sdktrace.WithBatchTimeout(b.ScheduleDelay.D()),
		sdktrace.WithExportTimeout(b.ExportTimeout.D()),
	)
	g.next = bsp
	sampler := RequestIDSampler(*rc.SamplingRatio).(requestIDSampler)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(g),
	)
	return &Provider{cfg: rc, tp: tp, prop: prop, gate: g, exp: cexp, sampler: sampler}, nil
}

// queueHeadroom is the room the SDK's queue has beyond the gate's capacity,
// for ForceFlush markers (one per concurrent flush).
const queueHeadroom = 64

func newResource(ctx context.Context, c Config) (*resource.Resource, error) {
	kvs := make([]attribute.KeyValue, 0, len(c.ResourceAttributes)+3)
	for k, v := range c.ResourceAttributes {
		kvs = append(kvs, attribute.String(k, v))
	}
	kvs = append(kvs,
		semconv.ServiceName(c.ServiceName),
		semconv.ServiceInstanceID(c.InstanceID),
	)
	if c.Zone != "" {
		kvs = append(kvs, semconv.CloudAvailabilityZone(c.Zone))
	}
	// resource.Default() would read OTEL_RESOURCE_ATTRIBUTES from the process
	// environment behind Resolve's back; build the same thing explicitly.
	return resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(kvs...),
	)
}

// newOTLPExporter builds the OTLP exporter. Retries are bounded by the
// export timeout: the batch processor exports one batch at a time, so a
// collector that is down costs one stuck exporter goroutine for at most
// ExportTimeout per batch, never a pile of retrying requests.
func newOTLPExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	ep, err := parseEndpoint(c.Endpoint)
	if err != nil {
		return nil, err
	}
	timeout := c.Batch.ExportTimeout.D()
	// One retry policy for both transports; the two packages' RetryConfig
	// types have the same fields.
	retry := otlptracehttp.RetryConfig{
		Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: timeout,
	}
	switch c.Protocol {
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(ep.hostPort),
			otlptracehttp.WithURLPath(cmp.Or(ep.path, "/v1/traces")),
			otlptracehttp.WithTimeout(timeout),
			otlptracehttp.WithRetry(retry),
		}
		if *c.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(ep.hostPort),
			otlptracegrpc.WithTimeout(timeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig(retry)),
		}
		if *c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
}

// Tracer returns a named tracer.
func (p *Provider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	if p == nil {
		return noop.NewTracerProvider().Tracer(name, opts...)
	}
	return p.tp.Tracer(name, opts...)
}

// TracerProvider returns the provider as the OpenTelemetry interface, for
// otel.SetTracerProvider or libraries that take one. A nil Provider returns
// a no-op provider.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// RootDecision reports the sampling decision for a span with no parent
// and no forcing that carries request ID id, as the provider's sampler
// would make it (RequestIDSampler, rule 3), without starting a span: a
// proxy learns that a request is not traced before it pays for a span.
// ok is false when id cannot decide (the sampler then falls back to the
// trace ID) or p is nil.
func (p *Provider) RootDecision(id string) (sampled, ok bool) {
	if p == nil {
		return false, false
	}
	return p.sampler.decideByRequestID(id)
}

// Propagator returns the configured composite propagator.
func (p *Provider) Propagator() propagation.TextMapPropagator {
	if p == nil {
		return DefaultPropagator()
	}
	return p.prop
}

// Config returns the resolved configuration: defaults and environment
// applied, and the instance ID filled in.
func (p *Provider) Config() Config {
	if p == nil {
		return Config{}
	}
	return p.cfg
}

// ForceFlush exports every span ended so far, waiting at most until ctx is
// done.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.ForceFlush(ctx)
}

// Shutdown flushes the spans still queued and stops the exporter, waiting at
// most until ctx is done. Spans it could not export by then are counted as
// dropped. Spans ended after Shutdown are discarded.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	err := p.tp.Shutdown(ctx)
	// Whatever is still in flight now will never reach the exporter.
	if left := p.gate.inflight.Swap(0); left > 0 {
		p.exp.dropped.Add(uint64(left))
	}
	if err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Dropped returns the number of sampled spans that will never reach the
// collector: spans that found the export queue full (the collector is slow
// or down and the queue filled up), spans in batches the exporter failed to
// send (counted by span, after its bounded retries), and spans still queued
// when Shutdown gave up.
func (p *Provider) Dropped() uint64 {
	if p == nil {
		return 0
	}
	return p.exp.dropped.Load()
}

// Exported returns the number of spans the collector accepted.
func (p *Provider) Exported() uint64 {
	if p == nil {
		return 0
	}
	return p.exp.exported.Load()
}

// gate is the span processor in front of the SDK's batch processor. It
// bounds the spans in flight (ended but not yet handed to the exporter) to
// the configured queue size and counts the spans it turns away. Since the
// SDK's queue only ever holds spans that passed the gate, and has headroom
// beyond it, the SDK never drops a span silently.
type gate struct {
	next     sdktrace.SpanProcessor
	capacity int64
	inflight atomic.Int64
	dropped  *atomic.Uint64
}

func (g *gate) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) { g.next.OnStart(ctx, s) }

func (g *gate) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return // the batch processor ignores these too
	}
	if g.inflight.Add(1) > g.capacity {
		g.inflight.Add(-1)
		g.dropped.Add(1)
		return
	}
	g.next.OnEnd(s)
}

func (g *gate) Shutdown(ctx context.Context) error   { return g.next.Shutdown(ctx) }
func (g *gate) ForceFlush(ctx context.Context) error { return g.next.ForceFlush(ctx) }

// countingExporter counts what the exporter does with each batch and keeps
// export errors away from OpenTelemetry's global error handler (which would
// log every failed batch): it logs when exporting starts failing and when
// it recovers instead.
type countingExporter struct {
	next     sdktrace.SpanExporter
	gate     *gate
	logger   *slog.Logger
	endpoint string

	dropped  atomic.Uint64
	exported atomic.Uint64
	failing  atomic.Bool
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.gate.inflight.Add(-int64(len(spans)))
	err := e.next.ExportSpans(ctx, spans)
	if err != nil {
		e.dropped.Add(uint64(len(spans)))
		if !e.failing.Swap(true) {
			e.logger.WarnContext(ctx, "tracing: exporting spans failed; dropping spans until the collector is back",
				"endpoint", e.endpoint, "spans", len(spans), "error", err)
		}
		return nil
	}
	e.exported.Add(uint64(len(spans)))
	if e.failing.Swap(false) {
		e.logger.InfoContext(ctx, "tracing: exporting spans works again", "endpoint", e.endpoint,
			"dropped_total", e.dropped.Load())
	}
	return nil
}

func (e *countingExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }
