// Package hop is hopwatch's application library: it carries trace context
// and x-request-id through an HTTP service, so that a request keeps one
// trace and one request ID across every service it visits, and every log
// line written while serving it says which request and trace it belongs to.
//
// Adopting it takes three lines:
//
//	handler = hop.Middleware(handler, hop.WithProvider(p))            // incoming requests
//	client := &http.Client{Transport: hop.Transport(nil, hop.WithProvider(p))} // outgoing calls
//	slog.SetDefault(slog.New(hop.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil))))
//
// and passing the request's context to outgoing requests and log calls
// (http.NewRequestWithContext, slog.InfoContext). p is a *tracing.Provider;
// without one (or with a nil one) nothing is traced but trace context and
// request IDs still propagate.
package hop

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hopwatch/hopwatch/tracing"
)

// HeaderRequestID is the request ID header, as Envoy names it.
const HeaderRequestID = "X-Request-Id"

// instrumentation is the tracer name on the spans this package makes.
const instrumentation = "github.com/hopwatch/hopwatch/tracing/hop"

type requestIDKey struct{}

// WithRequestID returns ctx carrying request ID id, which Transport sends
// and NewLogHandler logs. Middleware does this for incoming requests; use it
// directly for work that starts outside a request, such as a batch job.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID in ctx, or "" if there is none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Option configures Middleware and Transport.
type Option func(*options)

type options struct {
	tp        trace.TracerProvider
	prop      propagation.TextMapPropagator
	spanName  func(*http.Request) string
	component string
}

func newOptions(opts []Option) options {
	o := options{tp: noop.NewTracerProvider(), prop: tracing.DefaultPropagator()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithProvider uses p's tracer and propagators. A nil p traces nothing and
// propagates W3C tracecontext and baggage, which is also the default.
func WithProvider(p *tracing.Provider) Option {
	return func(o *options) {
		o.tp = p.TracerProvider()
		o.prop = p.Propagator()
	}
}

// WithTracerProvider uses tp for spans, for programs that set up
// OpenTelemetry themselves.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// WithPropagator uses p to extract and inject trace context.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.prop = p }
}

// WithSpanName names spans with f instead of the default: the method, and
// for server spans the ServeMux pattern that matched when there is one
// ("GET /items/{id}"), as the semantic conventions recommend.
func WithSpanName(f func(*http.Request) string) Option {
	return func(o *options) { o.spanName = f }
}

// WithComponent sets the "component" attribute on spans (Envoy sets
// "proxy"); empty by default.
func WithComponent(c string) Option {
	return func(o *options) { o.component = c }
}
