package tracing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

var quiet = slog.New(slog.DiscardHandler)

// noEnv keeps the test process's own OTEL_* variables out of Setup.
var noEnv = WithLookupEnv(envMap(nil))

func fastBatch() BatchConfig {
	return BatchConfig{MaxQueueSize: 64, MaxExportBatchSize: 16, ScheduleDelay: Duration(20 * time.Millisecond), ExportTimeout: Duration(500 * time.Millisecond)}
}

func TestSetupExportsWithResource(t *testing.T) {
	ctx := context.Background()
	mem := tracetest.NewInMemoryExporter()
	p, err := Setup(ctx, Config{ServiceName: "catalog", Zone: "eu-1a", ResourceAttributes: map[string]string{"team": "core"}, Batch: fastBatch()},
		WithExporter(mem), noEnv, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer("test").Start(ctx, "op")
	span.End()
	// ForceFlush, not Shutdown: the in-memory exporter forgets on Shutdown.
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	spans := mem.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("exported %d spans, want 1", len(spans))
	}
	got := map[attribute.Key]string{}
	for _, kv := range spans[0].Resource.Attributes() {
		got[kv.Key] = kv.Value.String()
	}
	if got["service.name"] != "catalog" || got["cloud.availability_zone"] != "eu-1a" || got["team"] != "core" ||
		len(got["service.instance.id"]) != 36 || got["telemetry.sdk.language"] != "go" {
		t.Fatalf("resource = %v", got)
	}
	if p.Exported() != 1 || p.Dropped() != 0 {
		t.Fatalf("exported %d dropped %d", p.Exported(), p.Dropped())
	}
	if p.Config().InstanceID != got["service.instance.id"] {
		t.Fatalf("Config().InstanceID %q differs from the resource's %q", p.Config().InstanceID, got["service.instance.id"])
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSetupSamplingRatioZeroStillHonoursParentAndForce(t *testing.T) {
	ctx := context.Background()
	mem := tracetest.NewInMemoryExporter()
	p, err := Setup(ctx, Config{SamplingRatio: ptr(0.0), Batch: fastBatch()}, WithExporter(mem), noEnv, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Tracer("t")
	_, s := tr.Start(ctx, "unsampled")
	s.End()
	_, s = tr.Start(WithForcedSampling(ctx), "forced")
	s.End()
	_, s = tr.Start(parentCtx(true), "child of sampled parent")
	s.End()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	var names []string
	for _, s := range mem.GetSpans() {
		names = append(names, s.Name)
	}
	if len(names) != 2 || names[0] != "forced" || names[1] != "child of sampled parent" {
		t.Fatalf("exported %v", names)
	}
}

// failingExporter fails every export.
type failingExporter struct{ calls atomic.Int64 }

func (e *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.calls.Add(1)
	return errors.New("collector unavailable")
}
func (e *failingExporter) Shutdown(context.Context) error { return nil }

func TestDroppedCountsExportFailures(t *testing.T) {
	ctx := context.Background()
	exp := &failingExporter{}
	p, err := Setup(ctx, Config{Batch: fastBatch()}, WithExporter(exp), noEnv, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		_, s := p.Tracer("t").Start(ctx, "x")
		s.End()
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Dropped() != 40 || p.Exported() != 0 || exp.calls.Load() == 0 {
		t.Fatalf("dropped %d exported %d calls %d", p.Dropped(), p.Exported(), exp.calls.Load())
	}
}

// blockingExporter blocks every export until release is closed.
type blockingExporter struct {
	release  chan struct{}
	entered  chan struct{}
	once     sync.Once
	exported atomic.Int64
}

func (e *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.once.Do(func() { close(e.entered) })
	select {
	case <-e.release:
		e.exported.Add(int64(len(spans)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (e *blockingExporter) Shutdown(context.Context) error { return nil }

// A stuck collector must never block the code that ends spans; what does not
// fit in the queue is dropped and every span is accounted for.
func TestFullQueueDropsAndCountsWithoutBlocking(t *testing.T) {
	ctx := context.Background()
	exp := &blockingExporter{release: make(chan struct{}), entered: make(chan struct{})}
	b := BatchConfig{MaxQueueSize: 8, MaxExportBatchSize: 4, ScheduleDelay: Duration(time.Millisecond), ExportTimeout: Duration(time.Minute)}
	p, err := Setup(ctx, Config{Batch: b}, WithExporter(exp), noEnv, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Tracer("t")
	end := func(n int) {
		for range n {
			_, s := tr.Start(ctx, "x")
			s.End()
		}
	}
	end(4)
	select {
	case <-exp.entered: // the exporter goroutine is now stuck
	case <-time.After(30 * time.Second):
		t.Fatal("exporter never called")
	}
	const n = 1000
	done := make(chan struct{})
	go func() { end(n); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ending spans blocked while the exporter was stuck")
	}
	if p.Dropped() == 0 {
		t.Fatal("no drops counted with a stuck exporter and a queue of 8")
	}
	close(exp.release)
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if total := p.Dropped() + p.Exported(); total != n+4 || uint64(exp.exported.Load()) != p.Exported() {
		t.Fatalf("dropped %d + exported %d = %d, want %d (exporter saw %d)", p.Dropped(), p.Exported(), total, n+4, exp.exported.Load())
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// With the real OTLP exporters and no collector, requests are not slowed and
// every span ends up counted as dropped.
func TestCollectorDownRealExporters(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			ctx := context.Background()
			b := fastBatch()
			b.ExportTimeout = Duration(300 * time.Millisecond)
			p, err := Setup(ctx, Config{Protocol: proto, Endpoint: closedPort(t), Batch: b}, noEnv, WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			const n = 200
			for range n {
				_, s := p.Tracer("t").Start(ctx, "x")
				s.End()
			}
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_ = p.Shutdown(sctx) // may report the export error; the count is what matters
			if p.Dropped() != n || p.Exported() != 0 {
				t.Fatalf("dropped %d exported %d, want %d and 0", p.Dropped(), p.Exported(), n)
			}
		})
	}
}

// The HTTP exporter posts to the configured URL path, /v1/traces by default.
func TestHTTPExporterPath(t *testing.T) {
	for _, tt := range []struct{ endpoint, wantPath string }{
		{"", "/v1/traces"},
		{"/custom/traces", "/custom/traces"},
	} {
		t.Run(tt.wantPath, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if r.Method == http.MethodPost && r.URL.Path == tt.wantPath && r.Header.Get("Content-Type") == "application/x-protobuf" {
					hits.Add(1)
				}
				w.Header().Set("Content-Type", "application/x-protobuf")
			}))
			defer srv.Close()
			ctx := context.Background()
			p, err := Setup(ctx, Config{Protocol: ProtocolHTTP, Endpoint: srv.URL + tt.endpoint, Batch: fastBatch()}, noEnv, WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			_, s := p.Tracer("t").Start(ctx, "x")
			s.End()
			if err := p.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if hits.Load() != 1 || p.Exported() != 1 {
				t.Fatalf("collector saw %d posts to %s; exported %d dropped %d", hits.Load(), tt.wantPath, p.Exported(), p.Dropped())
			}
		})
	}
}

func TestSetupErrors(t *testing.T) {
	_, err := Setup(context.Background(), Config{SamplingRatio: ptr(2.0)}, noEnv)
	if err == nil {
		t.Fatal("Setup accepted sampling_ratio 2")
	}
	_, err = Setup(context.Background(), Config{}, WithLookupEnv(envMap(map[string]string{EnvPropagators: "bogus"})))
	if err == nil {
		t.Fatal("Setup accepted OTEL_PROPAGATORS=bogus")
	}
}

func TestSDKDisabledAndNilProvider(t *testing.T) {
	p, err := Setup(context.Background(), Config{}, WithLookupEnv(envMap(map[string]string{EnvSDKDisabled: "true"})))
	if err != nil || p != nil {
		t.Fatalf("OTEL_SDK_DISABLED: got %v, %v; want nil, nil", p, err)
	}
	// Everything works on a nil Provider, and the no-op tracer carries the parent along.
	ctx, span := p.Tracer("t").Start(parentCtx(true), "x")
	span.End()
	if span.IsRecording() || !span.SpanContext().IsValid() || span.SpanContext().TraceID().String() != wantTrace {
		t.Fatalf("nil provider span: recording=%v sc=%v", span.IsRecording(), span.SpanContext())
	}
	_ = ctx
	if p.Propagator() == nil || p.TracerProvider() == nil || p.Dropped() != 0 || p.Exported() != 0 ||
		p.Shutdown(context.Background()) != nil || p.ForceFlush(context.Background()) != nil {
		t.Fatal("nil provider methods misbehave")
	}
}

func BenchmarkSpanStartEnd(b *testing.B) {
	for _, ratio := range []float64{0, 0.01, 1} {
		b.Run("ratio="+formatRatio(ratio), func(b *testing.B) {
			p, err := Setup(context.Background(), Config{SamplingRatio: ptr(ratio)}, WithExporter(tracetest.NewNoopExporter()), noEnv, WithLogger(quiet))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Shutdown(context.Background())
			tr := p.Tracer("bench")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, s := tr.Start(ctx, "GET")
				s.End()
			}
		})
	}
}

func formatRatio(r float64) string {
	switch r {
	case 0:
		return "0"
	case 1:
		return "1"
	}
	return "0.01"
}
