package hop

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/tracing"
)

const (
	inTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	inSpan  = "00f067aa0ba902b7"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// seen is what service B observed.
type seen struct {
	TraceID, RequestID, HeaderRequestID, Traceparent string
}

// chain starts A → B on loopback, both with opts, and returns A's URL and a
// channel receiving what B saw per request.
func chain(t *testing.T, opts ...Option) (string, <-chan seen) {
	t.Helper()
	ch := make(chan seen, 10)
	b := httptest.NewServer(Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(r.Context())
		s := seen{RequestID: RequestID(r.Context()), HeaderRequestID: r.Header.Get(HeaderRequestID), Traceparent: r.Header.Get("Traceparent")}
		if sc.IsValid() {
			s.TraceID = sc.TraceID().String()
		}
		ch <- s
	}), opts...))
	t.Cleanup(b.Close)
	client := &http.Client{Transport: Transport(nil, opts...)}
	a := httptest.NewServer(Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL+"/b", nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}), opts...))
	t.Cleanup(a.Close)
	return a.URL, ch
}

func get(t *testing.T, url string, h http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func newProvider(t *testing.T) (*tracing.Provider, *tracetest.InMemoryExporter) {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	p, err := tracing.Setup(context.Background(), tracing.Config{ServiceName: "test"},
		tracing.WithExporter(mem), tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, mem
}

func TestPropagationWithProvider(t *testing.T) {
	p, mem := newProvider(t)
	url, ch := chain(t, WithProvider(p))
	get(t, url, http.Header{"Traceparent": {"00-" + inTrace + "-" + inSpan + "-01"}, "X-Request-Id": {"req-1"}})
	s := <-ch
	if s.TraceID != inTrace || s.RequestID != "req-1" || s.HeaderRequestID != "req-1" {
		t.Fatalf("B saw %+v", s)
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := mem.GetSpans()
	byKind := map[trace.SpanKind][]tracetest.SpanStub{}
	for _, sp := range spans {
		byKind[sp.SpanKind] = append(byKind[sp.SpanKind], sp)
		if sp.SpanContext.TraceID().String() != inTrace {
			t.Errorf("span %s in trace %s", sp.Name, sp.SpanContext.TraceID())
		}
		if attr(sp, tracing.AttrRequestID) != "req-1" {
			t.Errorf("span %s %v has request ID %q", sp.Name, sp.SpanKind, attr(sp, tracing.AttrRequestID))
		}
	}
	if len(spans) != 3 || len(byKind[trace.SpanKindServer]) != 2 || len(byKind[trace.SpanKindClient]) != 1 {
		t.Fatalf("want 2 server spans and 1 client span, got %d spans", len(spans))
	}
	client := byKind[trace.SpanKindClient][0]
	var aServer, bServer tracetest.SpanStub
	for _, sp := range byKind[trace.SpanKindServer] {
		if attr(sp, tracing.AttrURLPath) == "/b" {
			bServer = sp
		} else {
			aServer = sp
		}
	}
	if aServer.Parent.SpanID().String() != inSpan || !aServer.Parent.IsRemote() {
		t.Errorf("A's server span parent = %v, want the incoming span %s", aServer.Parent, inSpan)
	}
	if client.Parent.SpanID() != aServer.SpanContext.SpanID() {
		t.Errorf("client span's parent is not A's server span")
	}
	if bServer.Parent.SpanID() != client.SpanContext.SpanID() {
		t.Errorf("B's server span's parent is not A's client span")
	}
	if attr(aServer, tracing.AttrHTTPResponseStatusCode) != "200" || attr(client, tracing.AttrHTTPResponseStatusCode) != "200" ||
		attr(aServer, tracing.AttrHTTPRequestMethod) != "GET" || attr(aServer, tracing.AttrNetworkPeerAddress) != "127.0.0.1" {
		t.Errorf("attributes: server %v client %v", aServer.Attributes, client.Attributes)
	}
}

func TestPropagationWithoutProvider(t *testing.T) {
	tests := []struct {
		name     string
		in       http.Header
		wantTID  string
		wantRID  string // "" means a generated UUID
		wantTPIn bool
	}{
		{"trace context passes through untouched", http.Header{"Traceparent": {"00-" + inTrace + "-" + inSpan + "-01"}, "X-Request-Id": {"r-9"}}, inTrace, "r-9", true},
		{"no incoming context: request ID still made and propagated", nil, "", "", false},
		{"bad request ID replaced", http.Header{"X-Request-Id": {"has space"}}, "", "", false},
		{"over-long request ID replaced", http.Header{"X-Request-Id": {strings.Repeat("a", 200)}}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, opts := range [][]Option{nil, {WithProvider(nil)}} {
				url, ch := chain(t, opts...)
				get(t, url, tt.in)
				s := <-ch
				if s.TraceID != tt.wantTID {
					t.Errorf("trace ID at B = %q, want %q", s.TraceID, tt.wantTID)
				}
				if tt.wantRID != "" && s.RequestID != tt.wantRID || tt.wantRID == "" && !uuidRE.MatchString(s.RequestID) {
					t.Errorf("request ID at B = %q, want %q (or a UUID)", s.RequestID, tt.wantRID)
				}
				if s.HeaderRequestID != s.RequestID {
					t.Errorf("header %q and context %q request IDs differ", s.HeaderRequestID, s.RequestID)
				}
				if tt.wantTPIn && !strings.Contains(s.Traceparent, inTrace+"-"+inSpan) {
					t.Errorf("traceparent at B = %q, want the incoming one unchanged", s.Traceparent)
				}
			}
		})
	}
}

// attr returns a span attribute's value as text, or "".
func attr(s tracetest.SpanStub, k attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

func TestStatusAndSpanNames(t *testing.T) {
	p, mem := newProvider(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/missing/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	srv := httptest.NewServer(Middleware(mux, WithProvider(p), WithComponent("shop")))
	defer srv.Close()
	client := &http.Client{Transport: Transport(nil, WithProvider(p))}
	for _, path := range []string{"/items/7", "/missing/x"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	_ = p.ForceFlush(context.Background())
	type key struct {
		kind trace.SpanKind
		path string
	}
	got := map[key]sdktrace.ReadOnlySpan{}
	for _, s := range mem.GetSpans().Snapshots() {
		var path string
		for _, kv := range s.Attributes() {
			if kv.Key == tracing.AttrURLPath {
				path = kv.Value.AsString()
			}
		}
		got[key{s.SpanKind(), path}] = s
	}
	checks := []struct {
		k        key
		name     string
		code     codes.Code
		wantComp bool
	}{
		{key{trace.SpanKindServer, "/items/7"}, "GET /items/{id}", codes.Error, true},
		{key{trace.SpanKindClient, "/items/7"}, "GET", codes.Error, false},
		{key{trace.SpanKindServer, "/missing/x"}, "GET /missing/", codes.Unset, true}, // 4xx is the client's fault
		{key{trace.SpanKindClient, "/missing/x"}, "GET", codes.Error, false},
	}
	for _, c := range checks {
		s, ok := got[c.k]
		if !ok {
			t.Errorf("no %v span for %s", c.k.kind, c.k.path)
			continue
		}
		if s.Name() != c.name || s.Status().Code != c.code {
			t.Errorf("%v %s: name %q status %v, want %q %v", c.k.kind, c.k.path, s.Name(), s.Status().Code, c.name, c.code)
		}
		hasComp := false
		for _, kv := range s.Attributes() {
			hasComp = hasComp || kv.Key == tracing.AttrComponent && kv.Value.AsString() == "shop"
		}
		if hasComp != c.wantComp {
			t.Errorf("%v %s: component attribute present=%v", c.k.kind, c.k.path, hasComp)
		}
	}
}

func TestTransportErrorAndNoMutation(t *testing.T) {
	p, mem := newProvider(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	req, _ := http.NewRequestWithContext(WithRequestID(context.Background(), "rid"), http.MethodGet, "http://"+addr+"/", nil)
	if _, err := Transport(nil, WithProvider(p)).RoundTrip(req); err == nil {
		t.Fatal("RoundTrip to a closed port succeeded")
	}
	if len(req.Header) != 0 {
		t.Fatalf("Transport modified the caller's request headers: %v", req.Header)
	}
	_ = p.ForceFlush(context.Background())
	spans := mem.GetSpans()
	if len(spans) != 1 || spans[0].Status.Code != codes.Error || len(spans[0].Events) == 0 {
		t.Fatalf("want one errored client span with the error recorded, got %+v", spans)
	}
}

func TestTransportKeepsExplicitRequestID(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get(HeaderRequestID) }))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(WithRequestID(context.Background(), "from-ctx"), http.MethodGet, srv.URL, nil)
	req.Header.Set(HeaderRequestID, "explicit")
	resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != "explicit" {
		t.Fatalf("upstream saw %q", got)
	}
}

func TestLogHandler(t *testing.T) {
	p, _ := newProvider(t)
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("svc", "a")
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "plain")
		log.WithGroup("g").With("inner", 1).InfoContext(r.Context(), "grouped", "x", 2)
		log.Info("no context")
	}), WithProvider(p))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(HeaderRequestID, "rid-7")
	h.ServeHTTP(rec, req)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	var recs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, m)
	}
	traceID := recs[0][LogKeyTraceID]
	for i, m := range recs[:2] {
		if m[LogKeyRequestID] != "rid-7" || m["svc"] != "a" || len(m[LogKeySpanID].(string)) != 16 || m[LogKeyTraceID] != traceID || len(traceID.(string)) != 32 {
			t.Errorf("record %d lacks top-level IDs: %v", i, m)
		}
	}
	g, _ := recs[1]["g"].(map[string]any)
	if g["inner"] != 1.0 || g["x"] != 2.0 || g[LogKeyRequestID] != nil {
		t.Errorf("group content wrong: %v", recs[1])
	}
	for _, k := range []string{LogKeyTraceID, LogKeySpanID, LogKeyRequestID} {
		if _, ok := recs[2][k]; ok {
			t.Errorf("record without context got %s: %v", k, recs[2])
		}
	}
}

// Without a provider there is no span, but the request ID is still logged.
func TestLogHandlerNoProvider(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil)))
	log.InfoContext(WithRequestID(context.Background(), "r1"), "x")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m[LogKeyRequestID] != "r1" || m[LogKeyTraceID] != nil {
		t.Fatalf("record %v", m)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	for _, name := range []string{"no-provider", "provider"} {
		b.Run(name, func(b *testing.B) {
			var opts []Option
			if name == "provider" {
				p, err := tracing.Setup(context.Background(), tracing.Config{}, tracing.WithExporter(tracetest.NewNoopExporter()),
					tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))
				if err != nil {
					b.Fatal(err)
				}
				defer p.Shutdown(context.Background())
				opts = append(opts, WithProvider(p))
			}
			h := Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), opts...)
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				req.Header.Del(HeaderRequestID)
				h.ServeHTTP(w, req)
			}
		})
	}
}

func TestNewLogHandlerIdempotent(t *testing.T) {
	var buf bytes.Buffer
	h := NewLogHandler(slog.NewJSONHandler(&buf, nil))
	log := slog.New(NewLogHandler(slog.New(h).With("a", 1).Handler()))
	log.InfoContext(WithRequestID(context.Background(), "r1"), "x")
	if n := strings.Count(buf.String(), `"request_id"`); n != 1 {
		t.Fatalf("request_id appears %d times: %s", n, buf.String())
	}
}
