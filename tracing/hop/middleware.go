package hop

import (
	"fmt"
	"net"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy/requestid"
	"github.com/hopwatch/hopwatch/tracing"
)

// maxRequestIDLen bounds an incoming x-request-id that is kept. Longer or
// non-printable values are replaced, so a client cannot stuff logs.
const maxRequestIDLen = 128

// Middleware serves each request inside a server span. It extracts the
// incoming trace context with the configured propagator (so the span
// continues the caller's trace), keeps the incoming x-request-id or makes a
// new one with requestid.New, sets it on the request header, and puts both
// the span and the request ID into the request's context for handlers,
// Transport and NewLogHandler. The span gets the semantic-convention
// attributes and guid:x-request-id, so RequestIDSampler decides from the
// request ID when there is no parent; 5xx responses mark it as an error.
func Middleware(next http.Handler, opts ...Option) http.Handler {
	o := newOptions(opts)
	tracer := o.tp.Tracer(instrumentation)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = requestid.New()
			r.Header.Set(HeaderRequestID, id)
		}
		ctx := o.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx = WithRequestID(ctx, id)

		attrs := []attribute.KeyValue{
			tracing.AttrHTTPRequestMethod.String(r.Method),
			tracing.AttrURLPath.String(r.URL.Path),
			tracing.AttrServerAddress.String(r.Host),
			tracing.AttrRequestID.String(id),
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			attrs = append(attrs, tracing.AttrNetworkPeerAddress.String(host))
		}
		if ua := r.UserAgent(); ua != "" {
			attrs = append(attrs, tracing.AttrUserAgentOriginal.String(ua))
		}
		if o.component != "" {
			attrs = append(attrs, tracing.AttrComponent.String(o.component))
		}
		name := r.Method
		if o.spanName != nil {
			name = o.spanName(r)
		}
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()

		rw := &statusWriter{ResponseWriter: w}
		r2 := r.WithContext(ctx)
		next.ServeHTTP(rw, r2)

		status := rw.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing: net/http sends 200
		}
		span.SetAttributes(tracing.AttrHTTPResponseStatusCode.Int(status))
		if status >= 500 {
			span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", status))
		}
		// ServeMux records the pattern it matched on the request it was
		// given; it is known only now, after routing.
		if o.spanName == nil && r2.Pattern != "" {
			span.SetName(patternName(r.Method, r2.Pattern))
		}
	})
}

// patternName turns a ServeMux pattern ("GET /items/{id}" or "/items/")
// into a span name that starts with the method.
func patternName(method, pattern string) string {
	for i := range len(pattern) {
		if pattern[i] == '/' {
			if i == 0 {
				return method + " " + pattern
			}
			return pattern // already "METHOD [host]/path"
		}
	}
	return method + " " + pattern
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := range len(id) {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// statusWriter records the status code. Unwrap lets http.ResponseController
// reach the underlying writer's Flush, Hijack and deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are informational and may repeat
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes through, because handlers that stream often type-assert
// http.Flusher rather than use http.ResponseController.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
