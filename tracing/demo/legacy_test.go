package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/uber/jaeger-client-go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/tracing"
)

// startLegacy runs legacy-pricing on loopback with an in-memory reporter.
func startLegacy(t *testing.T) (url string, rep *jaeger.InMemoryReporter) {
	t.Helper()
	rep = jaeger.NewInMemoryReporter()
	l, err := NewLegacy(LegacyConfig{Reporter: rep, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = l.Close()
	})
	return srv.URL, rep
}

func legacySpans(t *testing.T, rep *jaeger.InMemoryReporter) []*jaeger.Span {
	t.Helper()
	var out []*jaeger.Span
	for _, s := range rep.GetSpans() {
		js, ok := s.(*jaeger.Span)
		if !ok {
			t.Fatalf("reported span is a %T, not a *jaeger.Span", s)
		}
		out = append(out, js)
	}
	return out
}

// An OpenTelemetry service with the jaeger propagator calls legacy-pricing:
// the span jaeger-client-go makes is in the caller's trace, a child of the
// caller's client span, and takes its sampling decision.
func TestLegacyJoinsOTelTrace(t *testing.T) {
	legacyURL, rep := startLegacy(t)
	mem := tracetest.NewInMemoryExporter()
	p, err := tracing.Setup(context.Background(), tracing.Config{ServiceName: "catalog", Propagators: []string{"tracecontext", "jaeger"}},
		tracing.WithExporter(mem), tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	cat, err := NewService(Config{Name: "catalog", Pricing: legacyURL + "/", Provider: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cat.Handler())
	t.Cleanup(srv.Close)

	code, r := do(t, http.MethodGet, srv.URL+"/?item=teapot", http.Header{"X-Request-Id": {"legacy-1"}})
	if code != http.StatusOK {
		t.Fatalf("status %d: %+v", code, r)
	}
	var pr PriceReply
	if err := json.Unmarshal(r.Price, &pr); err != nil {
		t.Fatalf("price %q: %v", r.Price, err)
	}
	if pr.Service != LegacyPricing || pr.Item != "teapot" || pr.PriceCents != price("teapot") || pr.RequestID != "legacy-1" || pr.TraceID != r.TraceID {
		t.Errorf("price reply %+v; catalog's trace %s", pr, r.TraceID)
	}

	_ = p.ForceFlush(context.Background())
	var client trace.SpanContext
	for _, s := range mem.GetSpans() {
		if s.SpanKind == trace.SpanKindClient {
			client = s.SpanContext
		}
	}
	if !client.IsValid() {
		t.Fatalf("the catalog made no client span: %d spans", len(mem.GetSpans()))
	}
	spans := legacySpans(t, rep)
	if len(spans) != 1 {
		t.Fatalf("legacy-pricing reported %d spans, want 1", len(spans))
	}
	sc := spans[0].SpanContext()
	if sc.TraceID().String() != client.TraceID().String() || sc.ParentID().String() != client.SpanID().String() || !sc.IsSampled() {
		t.Errorf("legacy span trace %s parent %s sampled %v; want trace %s parent %s sampled",
			sc.TraceID(), sc.ParentID(), sc.IsSampled(), client.TraceID(), client.SpanID())
	}
	if got := fmt.Sprint(spans[0].Tags()["span.kind"]); got != "server" {
		t.Errorf("span.kind %v, want server", got)
	}
	if got := spans[0].Tags()["guid:x-request-id"]; got != "legacy-1" {
		t.Errorf("guid:x-request-id %v, want legacy-1", got)
	}
}

func TestLegacyTraceContext(t *testing.T) {
	tests := []struct {
		name        string
		header      string
		wantTrace   string // "" when a new trace must start
		wantParent  string
		wantSampled bool
	}{
		{"no header starts a trace", "", "", "0000000000000000", true},
		{"sampled parent", "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true},
		// The parent's decision wins over the const sampler.
		{"unsampled parent", "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:0", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false},
		{"malformed header starts a trace", "not-a-context", "", "0000000000000000", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, rep := startLegacy(t)
			h := http.Header{}
			if tc.header != "" {
				h.Set(jaeger.TraceContextHeaderName, tc.header)
			}
			req, _ := http.NewRequest(http.MethodGet, url+"/price?item=a", nil)
			req.Header = h
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if !tc.wantSampled {
				// jaeger-client-go reports only sampled spans.
				if n := rep.SpansSubmitted(); n != 0 {
					t.Errorf("%d spans reported for an unsampled trace", n)
				}
				return
			}
			spans := legacySpans(t, rep)
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			sc := spans[0].SpanContext()
			if tc.wantTrace != "" && sc.TraceID().String() != tc.wantTrace {
				t.Errorf("trace %s, want %s", sc.TraceID(), tc.wantTrace)
			}
			if tc.wantTrace == "" && len(sc.TraceID().String()) != 32 {
				t.Errorf("new trace ID %s, want 128 bits", sc.TraceID())
			}
			if sc.ParentID().String() != tc.wantParent {
				t.Errorf("parent %s, want %s", sc.ParentID(), tc.wantParent)
			}
		})
	}
}

func TestLegacyAnswers(t *testing.T) {
	url, _ := startLegacy(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", 200},
		{http.MethodGet, "/price?item=x", 200},
		{http.MethodGet, "/price", 400},
		{http.MethodPost, "/price?item=x", 405},
		{http.MethodGet, "/other", 404},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	first, again := price("x"), price("x")
	if first != again || first < 100 || first > 9999 || price("y") == first {
		t.Errorf("price(x) = %d, then %d; price(y) = %d: want stable prices from 100 to 9999 cents that differ by item", first, again, price("y"))
	}
}

func TestNewLegacyRejectsBadCollector(t *testing.T) {
	for _, u := range []string{"127.0.0.1:14268", "udp://127.0.0.1:6831", "http://"} {
		if _, err := NewLegacy(LegacyConfig{CollectorURL: u}); err == nil {
			t.Errorf("NewLegacy(%q) accepted it", u)
		}
	}
}
