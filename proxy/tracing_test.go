package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/tracing"
)

// spanRecorder is an exporter that keeps every span it is given. Unlike
// tracetest.InMemoryExporter its Shutdown keeps them, so that a provider
// replaced by a reload does not wipe what the test is about to read.
type spanRecorder struct {
	mu    sync.Mutex
	spans tracetest.SpanStubs
}

func (r *spanRecorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, tracetest.SpanStubsFromReadOnlySpans(spans)...)
	return nil
}

func (r *spanRecorder) Shutdown(context.Context) error { return nil }

// trace returns the spans of trace id, waiting until at least n arrived.
func (r *spanRecorder) trace(t *testing.T, id trace.TraceID, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		var out tracetest.SpanStubs
		for _, s := range r.spans {
			if s.SpanContext.TraceID() == id {
				out = append(out, s)
			}
		}
		r.mu.Unlock()
		if len(out) >= n || time.Now().After(deadline) {
			if len(out) != n {
				t.Fatalf("trace %s has %d spans, want %d: %+v", id, len(out), n, names(out))
			}
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *spanRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

func names(ss tracetest.SpanStubs) []string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name+"/"+s.SpanKind.String())
	}
	return n
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

var tracingConfig = testHead + `node: {id: edge-1, cluster: edge, zone: zone-a}
tracing:
  {{TRACING}}
  batch: {schedule_delay: 10ms}
` + listenersHead("main", "main", `access_log: [{path: "{{LOG}}", format: json}]`, `request_id: {always_set_request_id_in_response: true}`) + `
          - match: {prefix: /retry}
            route:
              cluster: up
              retry_policy: {retry_on: [5xx], num_retries: 2, retry_back_off: {base_interval: 1ms}}
            decorator: {operation: checkout}
          - match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`

// tracedProxy is a proxy on tracingConfig whose spans go to a recorder.
type tracedProxy struct {
	*harness
	rec *spanRecorder
}

func startTracedProxy(t *testing.T, upstream, tracingLine string) *tracedProxy {
	t.Helper()
	rec := &spanRecorder{}
	noEnv := tracing.WithLookupEnv(func(string) (string, bool) { return "", false })
	h := startProxyWith(t, []proxy.Option{proxy.WithTracingOptions(tracing.WithExporter(rec), noEnv)},
		withTracing(tracingLine), "{{UP}}", upstream)
	return &tracedProxy{harness: h, rec: rec}
}

// withTracing is tracingConfig with line in its tracing section.
func withTracing(line string) string {
	return strings.Replace(tracingConfig, "{{TRACING}}", line, 1)
}

// send GETs path on the listener, with optional header name/value pairs.
func (tp *tracedProxy) send(t *testing.T, path string, hdr ...string) *http.Response {
	t.Helper()
	res, _ := tp.with(t).get(tp.url("main", path), hdr...)
	return res
}

// reload rewrites the config with the tracing section line and reloads.
func (tp *tracedProxy) reload(line string) error {
	tp.writeConfig(withTracing(line))
	return tp.srv.Reload(context.Background())
}

// upstreamRecorder answers 503 to the first `fail` attempts of each
// request ID and 200 after, and keeps the traceparent every attempt carried.
type upstreamRecorder struct {
	mu       sync.Mutex
	parents  map[string][]string // x-request-id → traceparent per attempt
	attempts map[string]int
	fail     int
}

func newUpstreamRecorder(t *testing.T, fail int) (*upstreamRecorder, string) {
	u := &upstreamRecorder{parents: map[string][]string{}, attempts: map[string]int{}, fail: fail}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := r.Header.Get("X-Request-Id")
		u.mu.Lock()
		u.parents[rid] = append(u.parents[rid], r.Header.Get("Traceparent"))
		u.attempts[rid]++
		n := u.attempts[rid]
		u.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/retry") && n <= u.fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/boom") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return u, srv.Listener.Addr().String()
}

func (u *upstreamRecorder) traceparents(rid string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.parents[rid]...)
}

// TestTracingSpansPerHop: a request gets a server span, each upstream
// attempt a client span under it whose context the upstream received, the
// access log carries the server span's IDs, and Envoy's tags are set.
func TestTracingSpansPerHop(t *testing.T) {
	up, upAddr := newUpstreamRecorder(t, 1)
	tp := startTracedProxy(t, upAddr, "sampling_ratio: 1")

	res := tp.send(t, "/retry/item?q=1", "User-Agent", "trace-test/1")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	rid := res.Header.Get("X-Request-Id")
	parents := up.traceparents(rid)
	if len(parents) != 2 {
		t.Fatalf("upstream saw %d attempts (%q), want 2", len(parents), parents)
	}
	sc0, sc1 := parseTraceparent(t, parents[0]), parseTraceparent(t, parents[1])
	if sc0.TraceID() != sc1.TraceID() || sc0.SpanID() == sc1.SpanID() || !sc0.IsSampled() {
		t.Fatalf("attempts must share the trace and each carry its own sampled span: %q", parents)
	}
	spans := tp.rec.trace(t, sc0.TraceID(), 3)
	var server tracetest.SpanStub
	clients := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		switch s.SpanKind {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			clients[s.SpanContext.SpanID()] = s
		}
	}
	if server.Name != "checkout" {
		t.Errorf("server span name %q, want the route decorator's %q", server.Name, "checkout")
	}
	if server.Parent.IsValid() {
		t.Errorf("server span has a parent %s; the request carried none", server.Parent.SpanID())
	}
	for i, sc := range []trace.SpanContext{sc0, sc1} {
		c, ok := clients[sc.SpanID()]
		if !ok {
			t.Fatalf("attempt %d's traceparent span %s is not a recorded client span: %v", i+1, sc.SpanID(), names(spans))
		}
		if c.Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("attempt %d's span parent %s, want the server span %s", i+1, c.Parent.SpanID(), server.SpanContext.SpanID())
		}
		if c.Name != "router up egress" || attr(c, "upstream_cluster") != "up" || attr(c, "guid:x-request-id") != rid {
			t.Errorf("attempt %d span: %s %v", i+1, c.Name, c.Attributes)
		}
		wantCode, wantStatus := "503", codes.Error
		if i == 1 {
			wantCode, wantStatus = "200", codes.Unset
		}
		if attr(c, "http.response.status_code") != wantCode || c.Status.Code != wantStatus {
			t.Errorf("attempt %d span: status code %s, span status %v; want %s, %v", i+1, attr(c, "http.response.status_code"), c.Status.Code, wantCode, wantStatus)
		}
	}
	if got := attr(clients[sc1.SpanID()], "http.request.resend_count"); got != "1" {
		t.Errorf("retry's http.request.resend_count = %q, want 1", got)
	}
	want := map[string]string{
		"guid:x-request-id":         rid,
		"http.request.method":       "GET",
		"url.path":                  "/retry/item",
		"http.response.status_code": "200",
		"server.address":            "127.0.0.1",
		"network.peer.address":      "127.0.0.1",
		"user_agent.original":       "trace-test/1",
		"upstream_cluster":          "up",
		"response_flags":            "-",
		"node_id":                   "edge-1",
		"zone":                      "zone-a",
		"component":                 "proxy",
	}
	for k, v := range want {
		if got := attr(server, k); got != v {
			t.Errorf("server span %s = %q, want %q", k, got, v)
		}
	}
	if server.Status.Code != codes.Unset {
		t.Errorf("server span status %v for a 200", server.Status)
	}
	if got := server.Resource.Attributes(); !strings.Contains(resourceString(server), "service.name=edge") || !strings.Contains(resourceString(server), "cloud.availability_zone=zone-a") {
		t.Errorf("resource %v: want service.name from node.cluster and the node's zone", got)
	}
	line := tp.with(t).logLine(rid)
	if line["trace_id"] != server.SpanContext.TraceID().String() || line["span_id"] != server.SpanContext.SpanID().String() {
		t.Errorf("access log trace_id %v span_id %v, want %s %s", line["trace_id"], line["span_id"], server.SpanContext.TraceID(), server.SpanContext.SpanID())
	}

	// A 5xx is an error on the server span; its name is the authority.
	res = tp.send(t, "/boom")
	rid = res.Header.Get("X-Request-Id")
	sc := parseTraceparent(t, up.traceparents(rid)[0])
	for _, s := range tp.rec.trace(t, sc.TraceID(), 2) {
		if s.SpanKind == trace.SpanKindServer {
			if s.Status.Code != codes.Error || attr(s, "http.response.status_code") != "500" {
				t.Errorf("server span of a 500: status %v, code %s", s.Status, attr(s, "http.response.status_code"))
			}
			if host := strings.TrimPrefix(tp.url("main", ""), "http://"); s.Name != host {
				t.Errorf("server span name %q, want the authority %q", s.Name, host)
			}
		}
	}

	// An incoming W3C context is continued.
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res = tp.send(t, "/", "Traceparent", parent)
	rid = res.Header.Get("X-Request-Id")
	sc = parseTraceparent(t, up.traceparents(rid)[0])
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("trace ID %s, want the incoming one", sc.TraceID())
	}
	for _, s := range tp.rec.trace(t, sc.TraceID(), 2) {
		if s.SpanKind == trace.SpanKindServer && s.Parent.SpanID().String() != "b7ad6b7169203331" {
			t.Errorf("server span parent %s, want the incoming span b7ad6b7169203331", s.Parent.SpanID())
		}
	}
	if got := tp.stat("http.main.tracing.random_sampling"); got != 3 {
		t.Errorf("tracing.random_sampling = %d, want 3", got)
	}
}

func resourceString(s tracetest.SpanStub) string {
	var b strings.Builder
	for _, kv := range s.Resource.Attributes() {
		b.WriteString(string(kv.Key) + "=" + kv.Value.String() + " ")
	}
	return b.String()
}

func parseTraceparent(t *testing.T, h string) trace.SpanContext {
	t.Helper()
	parts := strings.Split(h, "-")
	if len(parts) != 4 {
		t.Fatalf("traceparent %q", h)
	}
	tid, err1 := trace.TraceIDFromHex(parts[1])
	sid, err2 := trace.SpanIDFromHex(parts[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("traceparent %q: %v %v", h, err1, err2)
	}
	var flags trace.TraceFlags
	if parts[3] == "01" {
		flags = trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
}

// TestTracingSamplingDecisions: with sampling_ratio 0 nothing is recorded,
// but the unsampled decision still travels to the upstream; the forcing
// headers trace anyway, and every decision is counted as Envoy counts it.
func TestTracingSamplingDecisions(t *testing.T) {
	up, upAddr := newUpstreamRecorder(t, 0)
	tp := startTracedProxy(t, upAddr, "sampling_ratio: 0")

	for _, tc := range []struct {
		name    string
		hdr     []string
		sampled bool
	}{
		{"unforced", nil, false},
		{"x-envoy-force-trace from loopback (internal)", []string{"X-Envoy-Force-Trace", "true"}, true},
		{"x-client-trace-id", []string{"X-Client-Trace-Id", "abc"}, true},
		{"sampled parent wins over the ratio", []string{"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, true},
		{"unsampled parent wins over forcing", []string{"Traceparent", "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "X-Client-Trace-Id", "abc"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tp.rec.count()
			res := tp.send(t, "/x", tc.hdr...)
			rid := res.Header.Get("X-Request-Id")
			ps := up.traceparents(rid)
			if len(ps) != 1 {
				t.Fatalf("upstream saw %q", ps)
			}
			sc := parseTraceparent(t, ps[0])
			if sc.IsSampled() != tc.sampled {
				t.Fatalf("upstream traceparent %q: sampled %v, want %v", ps[0], sc.IsSampled(), tc.sampled)
			}
			if tc.sampled {
				tp.rec.trace(t, sc.TraceID(), 2)
			} else {
				time.Sleep(50 * time.Millisecond) // several schedule delays
				if n := tp.rec.count(); n != before {
					t.Fatalf("%d spans recorded for an unsampled request", n-before)
				}
				if line := tp.with(t).logLine(rid); line["trace_id"] != nil {
					t.Errorf("access log of an unsampled request has trace_id %v", line["trace_id"])
				}
			}
		})
	}
	tp.wantStats(map[string]uint64{
		"http.main.tracing.not_traceable":   2,
		"http.main.tracing.service_forced":  1,
		"http.main.tracing.client_enabled":  1,
		"http.main.tracing.random_sampling": 1,
	})
}

// TestTracingReload: a reload that changes tracing: builds a new provider
// (new spans carry the new service name) and the old one keeps serving
// until retired; one that removes tracing: stops making spans.
func TestTracingReload(t *testing.T) {
	up, upAddr := newUpstreamRecorder(t, 0)
	tp := startTracedProxy(t, upAddr, "service_name: first")
	serviceOf := func(path string) string {
		res := tp.send(t, path)
		sc := parseTraceparent(t, up.traceparents(res.Header.Get("X-Request-Id"))[0])
		return attrOfResource(tp.rec.trace(t, sc.TraceID(), 2)[0], "service.name")
	}
	if got := serviceOf("/a"); got != "first" {
		t.Fatalf("service.name %q, want first", got)
	}
	if err := tp.reload("service_name: second"); err != nil {
		t.Fatal(err)
	}
	if got := serviceOf("/b"); got != "second" {
		t.Fatalf("after reload service.name %q, want second", got)
	}
	// A bad tracing section is refused with its line; tracing keeps going.
	err := tp.reload("sampling_ratio: 2")
	if err == nil || !strings.Contains(err.Error(), "tracing.sampling_ratio: 2 is outside [0, 1]") || !strings.Contains(err.Error(), "proxy.yaml:6:") {
		t.Fatalf("reload error %v, want the tracing.sampling_ratio problem at line 6", err)
	}
	if got := serviceOf("/c"); got != "second" {
		t.Fatalf("after a refused reload service.name %q, want second", got)
	}
	// Without tracing:, requests pass their context through untouched.
	tp.writeConfig(strings.Replace(withTracing(""), "tracing:\n  \n  batch: {schedule_delay: 10ms}\n", "", 1))
	if err := tp.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := tp.rec.count()
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res := tp.send(t, "/d", "Traceparent", parent)
	if got := up.traceparents(res.Header.Get("X-Request-Id")); len(got) != 1 || got[0] != parent {
		t.Errorf("with tracing off the upstream got traceparent %q, want the incoming one unchanged", got)
	}
	time.Sleep(50 * time.Millisecond)
	if tp.rec.count() != before {
		t.Error("spans recorded after tracing was removed")
	}
}

func attrOfResource(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Resource.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// TestTracingDroppedSpansCounted: spans the collector never gets are
// counted in tracing.opentelemetry.spans_dropped, and requests do not fail.
func TestTracingDroppedSpansCounted(t *testing.T) {
	_, upAddr := newUpstreamRecorder(t, 0)
	failing := &failingExporter{}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "proxy.yaml")
	cfg := strings.NewReplacer("{{LOG}}", filepath.Join(dir, "access.log"), "{{UP}}", upAddr).Replace(withTracing("sampling_ratio: 1"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfgPath, slog.New(slog.DiscardHandler), proxy.WithTracingOptions(tracing.WithExporter(failing)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.ListenerAddr("main").String() + "/"
	for range 20 {
		res, err := http.Get(url)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("request failed while the exporter fails: %v %v", res, err)
		}
		res.Body.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.Shutdown(ctx)
	// 20 server spans and 20 client spans, all failed.
	if got := srv.Stats().Find("tracing.opentelemetry.spans_dropped").(*stats.Counter).Value(); got != 40 {
		t.Errorf("spans_dropped = %d, want 40 (exporter calls: %d)", got, failing.calls.Load())
	}
	if got := srv.Stats().Find("tracing.opentelemetry.spans_sent").(*stats.Counter).Value(); got != 0 {
		t.Errorf("spans_sent = %d, want 0", got)
	}
}

type failingExporter struct{ calls atomic.Int64 }

func (f *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	f.calls.Add(1)
	return io.ErrUnexpectedEOF
}
func (f *failingExporter) Shutdown(context.Context) error { return nil }
