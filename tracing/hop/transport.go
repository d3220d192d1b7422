package hop

import (
	"fmt"
	"io"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/tracing"
)

// Transport returns a RoundTripper that sends each request through base
// (http.DefaultTransport when nil) inside a client span, and injects the
// trace context (with the configured propagator) and the request ID from
// the request's context into the outgoing headers. A request ID already set
// on the outgoing request is left alone; with none in the context and none
// set, none is sent and the next hop makes one.
//
// The span ends when the response body is read to the end or closed, so it
// covers the whole exchange. 4xx and 5xx responses and transport errors
// mark it as an error, as the semantic conventions say for client spans.
func Transport(base http.RoundTripper, opts ...Option) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	o := newOptions(opts)
	return &transport{base: base, o: o, tracer: o.tp.Tracer(instrumentation)}
}

type transport struct {
	base   http.RoundTripper
	o      options
	tracer trace.Tracer
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	id := RequestID(ctx)
	attrs := []attribute.KeyValue{
		tracing.AttrHTTPRequestMethod.String(req.Method),
		tracing.AttrURLPath.String(req.URL.Path),
		tracing.AttrServerAddress.String(req.URL.Hostname()),
	}
	if id != "" {
		attrs = append(attrs, tracing.AttrRequestID.String(id))
	}
	if t.o.component != "" {
		attrs = append(attrs, tracing.AttrComponent.String(t.o.component))
	}
	name := req.Method
	if t.o.spanName != nil {
		name = t.o.spanName(req)
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))

	// A RoundTripper must not modify the caller's request.
	out := req.Clone(ctx)
	t.o.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	if id != "" && out.Header.Get(HeaderRequestID) == "" {
		out.Header.Set(HeaderRequestID, id)
	}

	resp, err := t.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return nil, err
	}
	span.SetAttributes(tracing.AttrHTTPResponseStatusCode.Int(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", resp.StatusCode))
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		span.End()
		return resp, nil
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// spanBody ends the client span at EOF, at a read error or at Close,
// whichever comes first.
type spanBody struct {
	io.ReadCloser
	span trace.Span
	once sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if err != io.EOF {
			b.span.RecordError(err)
			b.span.SetStatus(codes.Error, err.Error())
		}
		b.end()
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}

func (b *spanBody) end() { b.once.Do(func() { b.span.End() }) }
