package tracer

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy/requestid"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
	"github.com/hopwatch/hopwatch/tracing"
)

func newTestTracer(t *testing.T, ratio float64, props ...string) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, err := tracing.Setup(context.Background(), tracing.Config{SamplingRatio: &ratio, Propagators: props},
		tracing.WithExporter(exp), tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return New(p, "node-1", "zone-a"), exp
}

// TestDecisions: the reason StartServer reports for each way a request
// can be traced or not.
func TestDecisions(t *testing.T) {
	const sampledParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const unsampledParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	for _, tc := range []struct {
		name     string
		ratio    float64
		hdr      http.Header
		internal bool
		want     Reason
	}{
		{"ratio 1", 1, http.Header{}, false, Sampling},
		{"ratio 0", 0, http.Header{}, false, NotTraceable},
		{"force trace, internal", 0, http.Header{"X-Envoy-Force-Trace": {"true"}}, true, ServiceForced},
		{"force trace, external: ignored", 0, http.Header{"X-Envoy-Force-Trace": {"true"}}, false, NotTraceable},
		{"force trace: false", 0, http.Header{"X-Envoy-Force-Trace": {"false"}}, true, NotTraceable},
		{"client trace id", 0, http.Header{"X-Client-Trace-Id": {"c1"}}, false, ClientForced},
		{"empty client trace id", 0, http.Header{"X-Client-Trace-Id": {""}}, false, NotTraceable},
		{"sampled parent", 0, http.Header{"Traceparent": {sampledParent}}, false, Sampling},
		{"unsampled parent beats forcing", 1, http.Header{"Traceparent": {unsampledParent}, "X-Client-Trace-Id": {"c1"}}, false, NotTraceable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := newTestTracer(t, tc.ratio)
			_, span, reason := tr.StartServer(context.Background(), Inbound{Header: tc.hdr, RequestID: "4d2c3b1a-0000-4000-8000-000000000000", Internal: tc.internal, Name: "h"})
			recording := false
			if span != nil {
				defer span.End()
				recording = span.IsRecording()
			}
			if reason != tc.want {
				t.Errorf("reason %d, want %d", reason, tc.want)
			}
			if recording != (tc.want != NotTraceable) {
				t.Errorf("recording %v for reason %d", recording, reason)
			}
		})
	}
}

// TestUnsampledRootFastPath: a root request that its x-request-id leaves
// untraced gets no span at all, yet every attempt passes a valid,
// unsampled context upstream in each configured format, so the next hop
// does not start a trace of its own. A request that carries any trace
// context (baggage included) takes the full path.
func TestUnsampledRootFastPath(t *testing.T) {
	const rid = "4d2c3b1a-0000-4000-8000-000000000000" // decides "not sampled" below ratio 1
	for _, props := range [][]string{{"tracecontext", "baggage"}, {"b3", "jaeger"}, {"tracecontext", "b3multi"}} {
		t.Run(strings.Join(props, ","), func(t *testing.T) {
			tr, exp := newTestTracer(t, 0.25, props...)
			p := tr.Provider()
			if sampled, ok := p.RootDecision(rid); !ok || sampled {
				t.Fatalf("RootDecision(%q) = %v, %v; the test needs an unsampled, decidable ID", rid, sampled, ok)
			}
			ctx, span, reason := tr.StartServer(context.Background(), Inbound{Header: http.Header{}, RequestID: rid, Name: "h"})
			if span != nil || reason != NotTraceable {
				t.Fatalf("span %v, reason %d: want no span, NotTraceable", span, reason)
			}
			var traceIDs []string
			for attempt := 1; attempt <= 2; attempt++ {
				h := http.Header{}
				if cs := tr.StartClient(ctx, Outbound{Header: h, Cluster: "c", Attempt: attempt}); cs != nil {
					t.Fatal("a client span was started for an unsampled request")
				}
				sc := trace.SpanContextFromContext(p.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h)))
				if !sc.IsValid() || sc.IsSampled() {
					t.Fatalf("attempt %d sent %v: want a valid, unsampled context", attempt, h)
				}
				traceIDs = append(traceIDs, sc.TraceID().String())
			}
			if traceIDs[0] == traceIDs[1] {
				t.Errorf("two attempts share trace ID %s", traceIDs[0])
			}
			// Baggage (or any propagated header) takes the full path, so
			// that what the client sent is passed on.
			in := http.Header{"Baggage": {"k=v"}}
			ctx, span, _ = tr.StartServer(context.Background(), Inbound{Header: in, RequestID: rid, Name: "h"})
			if span == nil && slices.Contains(props, "baggage") {
				t.Error("a request with baggage took the fast path")
			}
			h := http.Header{}
			tr.StartClient(ctx, Outbound{Header: h, Cluster: "c", Attempt: 1})
			if slices.Contains(props, "baggage") && h.Get("Baggage") != "k=v" {
				t.Errorf("baggage not passed on: %v", h)
			}
			if err := p.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := len(exp.GetSpans()); n != 0 {
				t.Errorf("%d spans exported for unsampled requests", n)
			}
		})
	}
}

// TestUnsampledFastPath: an unsampled request records nothing, starts no
// client span, and still passes its (unsampled) context upstream.
func TestUnsampledFastPath(t *testing.T) {
	tr, exp := newTestTracer(t, 0)
	ctx, span, _ := tr.StartServer(context.Background(), Inbound{Header: http.Header{}, RequestID: "x", Name: "h"})
	h := http.Header{}
	if cs := tr.StartClient(ctx, Outbound{Header: h, Cluster: "c", Attempt: 1}); cs != nil {
		t.Error("a client span was started for an unsampled request")
	}
	tp := h.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-"+span.SpanContext().TraceID().String()) || !strings.HasSuffix(tp, "-00") {
		t.Errorf("upstream traceparent %q, want the unsampled server context", tp)
	}
	info := &streaminfo.Info{ResponseCode: 200}
	tr.EndServer(span, info, false)
	if info.TraceID != "" || info.SpanID != "" {
		t.Errorf("unsampled request got IDs %q %q for its log line", info.TraceID, info.SpanID)
	}
	if err := tr.Provider().ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported", n)
	}
}

// TestNilTracer: tracing off is a nil Tracer, and every method copes.
func TestNilTracer(t *testing.T) {
	var tr *Tracer
	ctx := context.Background()
	gotCtx, span, reason := tr.StartServer(ctx, Inbound{Header: http.Header{}})
	if gotCtx != ctx || span != nil || reason != NotTraceable {
		t.Errorf("nil tracer started something: %v %v", span, reason)
	}
	if tr.StartClient(ctx, Outbound{Header: http.Header{}}) != nil || tr.Provider() != nil {
		t.Error("nil tracer made a client span or has a provider")
	}
	tr.EndServer(nil, &streaminfo.Info{}, false)
	EndClient(nil, 200, "")
}

// TestPropagationFormats: each configured format is read on the way in and
// all of them are written on the way out, with the client span's ID.
func TestPropagationFormats(t *testing.T) {
	tr, _ := newTestTracer(t, 1, "tracecontext", "b3multi", "jaeger")
	in := http.Header{"Uber-Trace-Id": {"5a3c0f4e1b2d3c4e5f60718293a4b5c6:1f2e3d4c5b6a7988:0:1"}}
	ctx, span, _ := tr.StartServer(context.Background(), Inbound{Header: in, Name: "h"})
	if got := span.SpanContext().TraceID().String(); got != "5a3c0f4e1b2d3c4e5f60718293a4b5c6" {
		t.Fatalf("trace ID %s, want the uber-trace-id one", got)
	}
	out := http.Header{}
	cs := tr.StartClient(ctx, Outbound{Header: out, Cluster: "c", Attempt: 1})
	defer EndClient(cs, 200, "")
	sid := cs.SpanContext().SpanID().String()
	if !strings.Contains(out.Get("Traceparent"), sid) || out.Get("X-B3-Spanid") != sid || !strings.Contains(out.Get("Uber-Trace-Id"), sid) {
		t.Errorf("outgoing headers %v do not all carry the client span %s", out, sid)
	}
}

func TestHeaderCarrier(t *testing.T) {
	h := http.Header{}
	c := headerCarrier(h)
	for _, k := range []string{"traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id", "uberctx-user"} {
		c.Set(k, "v-"+k)
		if got := h.Get(k); got != "v-"+k {
			t.Errorf("Set(%q) then http.Header.Get = %q", k, got)
		}
		if got := c.Get(k); got != "v-"+k {
			t.Errorf("Get(%q) = %q", k, got)
		}
		if canonicalKey(k) != http.CanonicalHeaderKey(k) {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, canonicalKey(k), http.CanonicalHeaderKey(k))
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.Get("traceparent") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
	if len(c.Keys()) != len(h) {
		t.Errorf("Keys() = %v", c.Keys())
	}
}

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkTracerRequest is the tracing work of one proxied request with
// one attempt: extract, decide, server span, client span and inject, end
// both, at sampling 0 (the unsampled fast path), 1% and 100%.
func BenchmarkTracerRequest(b *testing.B) {
	for _, ratio := range []float64{0, 0.01, 1} {
		b.Run("ratio="+strconv.FormatFloat(ratio, 'g', -1, 64), func(b *testing.B) {
			p, err := tracing.Setup(context.Background(), tracing.Config{SamplingRatio: &ratio},
				tracing.WithExporter(discardExporter{}), tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			tr := New(p, "node", "zone")
			ids := make([]string, 1024)
			for i := range ids {
				ids[i] = requestid.New()
			}
			h := http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}}
			info := &streaminfo.Info{Method: "GET", Path: "/", Authority: "example.com", ResponseCode: 200}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rid := ids[i%len(ids)]
				i++
				ctx, span, _ := tr.StartServer(context.Background(), Inbound{Header: h, RequestID: rid, Name: "example.com"})
				cs := tr.StartClient(ctx, Outbound{Header: h, Cluster: "c", HostAddress: "127.0.0.1:80", Method: "GET", Path: "/", RequestID: rid, Attempt: 1})
				EndClient(cs, 200, "")
				tr.EndServer(span, info, false)
				delete(h, "Traceparent")
			}
		})
	}
}
