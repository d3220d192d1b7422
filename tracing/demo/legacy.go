package demo

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/uber/jaeger-client-go"
	"github.com/uber/jaeger-client-go/transport"
)

// LegacyPricing is the name of the demo service that is still
// instrumented with jaeger-client-go instead of tracing/hop: the catalog
// asks it for each item's price. It stands for the services of a fleet
// that has not migrated yet, and shows that their spans join the same
// traces as the OpenTelemetry services and the proxies (tracing/README.md,
// "Migrating from jaeger-client-go").
const LegacyPricing = "legacy-pricing"

// EnvJaegerEndpoint is jaeger-client-go's own variable for the collector's
// thrift-over-HTTP URL (its config.FromEnv reads it too).
const EnvJaegerEndpoint = "JAEGER_ENDPOINT"

// LegacyConfig describes the legacy-pricing service.
type LegacyConfig struct {
	// CollectorURL is Jaeger's thrift-over-HTTP endpoint, such as
	// http://127.0.0.1:14268/api/traces (the `jaeger` receiver's
	// thrift_http protocol). Empty: spans are made and trace context is
	// read, but nothing is reported.
	CollectorURL string
	// Logger receives one line per request, with trace and request IDs,
	// and the reporter's errors. Default: slog.Default().
	Logger *slog.Logger
	// Reporter replaces the reporter CollectorURL would build (tests use
	// jaeger.NewInMemoryReporter).
	Reporter jaeger.Reporter
}

// Legacy is the legacy-pricing service: one handler traced by
// jaeger-client-go, which reads the caller's trace context from the
// `uber-trace-id` header, its only propagation format.
type Legacy struct {
	tracer opentracing.Tracer
	closer io.Closer
	log    *slog.Logger
}

// NewLegacy builds the jaeger-client-go tracer the way such services
// usually do: a const sampler, which only matters for requests that arrive
// without a trace (a parent's decision in uber-trace-id always wins in
// jaeger-client-go), and a remote reporter that batches spans to the
// collector every second.
func NewLegacy(cfg LegacyConfig) (*Legacy, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("service", LegacyPricing)
	reporter := cfg.Reporter
	switch {
	case reporter != nil:
	case cfg.CollectorURL != "":
		u, err := url.Parse(cfg.CollectorURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("demo: jaeger collector %q: want an http:// URL such as http://127.0.0.1:14268/api/traces", cfg.CollectorURL)
		}
		reporter = jaeger.NewRemoteReporter(
			transport.NewHTTPTransport(cfg.CollectorURL, transport.HTTPTimeout(5*time.Second)),
			jaeger.ReporterOptions.BufferFlushInterval(time.Second),
			jaeger.ReporterOptions.Logger(jaegerLogger{log}))
	default:
		reporter = jaeger.NewNullReporter()
	}
	tracer, closer := jaeger.NewTracer(LegacyPricing, jaeger.NewConstSampler(true), reporter,
		jaeger.TracerOptions.Logger(jaegerLogger{log}),
		// New traces (requests without a parent) get 128-bit IDs like
		// the OpenTelemetry services'.
		jaeger.TracerOptions.Gen128Bit(true))
	return &Legacy{tracer: tracer, closer: closer, log: log}, nil
}

// Close flushes the spans the reporter still holds to the collector.
func (l *Legacy) Close() error { return l.closer.Close() }

// PriceReply is what legacy-pricing answers.
type PriceReply struct {
	Service    string `json:"service"`
	RequestID  string `json:"request_id,omitempty"`
	TraceID    string `json:"trace_id,omitempty"`
	Item       string `json:"item"`
	PriceCents int    `json:"price_cents"`
}

// Handler serves
//
//	GET /healthz          readiness (not traced)
//	GET /price?item=NAME  the item's price, a server span per request
func (l *Legacy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", l.servePrice)
	return mux
}

func (l *Legacy) servePrice(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// What a jaeger-client-go service does: extract the caller's context
	// from uber-trace-id, and start a server span under it. A missing or
	// unreadable header starts a new trace.
	opts := []opentracing.StartSpanOption{ext.SpanKindRPCServer}
	parent, err := l.tracer.Extract(opentracing.HTTPHeaders, opentracing.HTTPHeadersCarrier(r.Header))
	if err == nil {
		opts = append(opts, opentracing.ChildOf(parent))
	} else if !errors.Is(err, opentracing.ErrSpanContextNotFound) {
		l.log.Warn("unreadable trace context; starting a new trace", "uber-trace-id", r.Header.Get(jaeger.TraceContextHeaderName), "error", err)
	}
	span := l.tracer.StartSpan(r.Method+" /price", opts...)
	defer span.Finish()
	rid := r.Header.Get("X-Request-Id")
	ext.HTTPMethod.Set(span, r.Method)
	ext.HTTPUrl.Set(span, r.URL.Path)
	ext.Component.Set(span, "net/http")
	if rid != "" {
		// Envoy's tag, as the proxies and tracing/hop set it.
		span.SetTag("guid:x-request-id", rid)
	}

	reply := PriceReply{Service: LegacyPricing, RequestID: rid, Item: r.URL.Query().Get("item")}
	if sc, ok := span.Context().(jaeger.SpanContext); ok {
		reply.TraceID = sc.TraceID().String()
	}
	status := http.StatusOK
	switch {
	case r.URL.Path != "/price":
		status = http.StatusNotFound
	case r.Method != http.MethodGet:
		status = http.StatusMethodNotAllowed
	case reply.Item == "":
		status = http.StatusBadRequest
	default:
		reply.PriceCents = price(reply.Item)
	}
	ext.HTTPStatusCode.Set(span, uint16(status))
	if status >= 500 {
		ext.Error.Set(span, true)
	}
	writeJSON(w, status, reply)
	l.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", status, "item", reply.Item,
		"request_id", rid, "trace_id", reply.TraceID, "duration_ms", float64(time.Since(start).Microseconds())/1000)
}

// price is a made-up but stable price for item, from 1.00 to 99.99.
func price(item string) int {
	h := fnv.New32a()
	_, _ = io.WriteString(h, item)
	return 100 + int(h.Sum32()%9900)
}

// jaegerLogger adapts slog to jaeger-client-go's logger, which reports
// failed flushes to the collector.
type jaegerLogger struct{ log *slog.Logger }

func (j jaegerLogger) Error(msg string) { j.log.Error("jaeger-client-go: " + msg) }

func (j jaegerLogger) Infof(msg string, args ...any) {
	j.log.Info("jaeger-client-go: " + fmt.Sprintf(msg, args...))
}
