package hop

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys NewLogHandler adds.
const (
	LogKeyTraceID   = "trace_id"
	LogKeySpanID    = "span_id"
	LogKeyRequestID = "request_id"
)

// NewLogHandler wraps h so that every record logged with a context that
// carries a span or a request ID (a request's context, inside Middleware)
// gets trace_id, span_id and request_id attributes. They are always at the
// top level of the record, even under WithGroup, so that log queries find
// them in one place. Records logged without such a context pass through
// unchanged.
//
// Wrapping a handler that NewLogHandler already returned gives it back
// unchanged, so the IDs are never added twice.
func NewLogHandler(h slog.Handler) slog.Handler {
	if l, ok := h.(*logHandler); ok {
		return l
	}
	return &logHandler{base: h, cur: h}
}

// logHandler keeps the handler as it was before the first WithGroup (base)
// and the operations since, so it can add the IDs at the top level: slog
// puts attributes added in Handle inside the open groups.
type logHandler struct {
	base slog.Handler // h with the WithAttrs calls made before any group
	ops  []func(slog.Handler) slog.Handler
	cur  slog.Handler // base with ops applied
}

func (l *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.cur.Enabled(ctx, level)
}

func (l *logHandler) Handle(ctx context.Context, r slog.Record) error {
	ids := idAttrs(ctx)
	if len(ids) == 0 {
		return l.cur.Handle(ctx, r)
	}
	if len(l.ops) == 0 {
		r.AddAttrs(ids...)
		return l.cur.Handle(ctx, r)
	}
	// Groups are open: rebuild the chain with the IDs added first. This
	// costs allocations, but only for loggers that opened groups.
	h := l.base.WithAttrs(ids)
	for _, op := range l.ops {
		h = op(h)
	}
	return h.Handle(ctx, r)
}

func idAttrs(ctx context.Context) []slog.Attr {
	var out []slog.Attr
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		out = append(out, slog.String(LogKeyTraceID, sc.TraceID().String()), slog.String(LogKeySpanID, sc.SpanID().String()))
	}
	if id := RequestID(ctx); id != "" {
		out = append(out, slog.String(LogKeyRequestID, id))
	}
	return out
}

func (l *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(l.ops) == 0 {
		h := l.base.WithAttrs(attrs)
		return &logHandler{base: h, cur: h}
	}
	return l.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (l *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l // slog's rule: an empty group name is ignored
	}
	return l.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

func (l *logHandler) with(op func(slog.Handler) slog.Handler) *logHandler {
	ops := make([]func(slog.Handler) slog.Handler, len(l.ops), len(l.ops)+1)
	copy(ops, l.ops)
	return &logHandler{base: l.base, ops: append(ops, op), cur: op(l.cur)}
}
