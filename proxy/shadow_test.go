package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/tracing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// These tests run the whole proxy in process, on real loopback sockets,
// with a primary and a shadow upstream, and check shadowing from both
// sides: what each upstream received and what the proxy counted.

// recorded is one request an upstream received.
type recorded struct {
	method, path, host, body string
	header                   http.Header
}

// recorder is an upstream that records requests and answers with its name.
// While block is non-nil, each request waits on it first.
type recorder struct {
	name string
	srv  *httptest.Server

	mu    sync.Mutex
	reqs  []recorded
	block chan struct{}
	got   chan struct{} // one send per request, when it arrived
}

func newRecorder(t *testing.T, name string) *recorder {
	r := &recorder{name: name, got: make(chan struct{}, 1024)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.RequestURI(), req.Host, string(b), req.Header.Clone()})
		block := r.block
		r.mu.Unlock()
		select {
		case r.got <- struct{}{}:
		default:
		}
		if block != nil {
			select {
			case <-block:
			case <-req.Context().Done():
				return
			}
		}
		w.Header().Set("X-Upstream", r.name)
		_, _ = io.WriteString(w, r.name)
	}))
	t.Cleanup(func() {
		r.unblock()
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

func (r *recorder) addr() string { return r.srv.Listener.Addr().String() }

func (r *recorder) blockAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.block = make(chan struct{})
}

func (r *recorder) unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.block != nil {
		close(r.block)
		r.block = nil
	}
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// waitRequests waits until the recorder has seen n requests.
func (r *recorder) waitRequests(t *testing.T, n int) []recorded {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := r.requests(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s saw %d requests, want %d", r.name, len(r.requests()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var shadowConfig = testHead + "{{TRACING}}\n" + listenersHead("main", "main", `access_log: [{path: "{{LOG}}"}]`) + `
          - match: {prefix: /retry}
            route:
              cluster: primary
              retry_policy: {retry_on: [5xx]}
              request_mirror_policies: [{cluster: shadow, max_body_bytes: 100}]
          - match: {prefix: /nosuffix}
            route:
              cluster: primary
              request_mirror_policies: [{cluster: shadow, disable_shadow_host_suffix_append: true}]
          - match: {prefix: /dead}
            route:
              cluster: primary
              request_mirror_policies: [{cluster: dead}]
          - match: {prefix: /never}
            route:
              cluster: primary
              request_mirror_policies: [{cluster: shadow, runtime_fraction: {default_value: {numerator: 0}}}]
          - match: {prefix: /rewrite}
            route:
              cluster: primary
              prefix_rewrite: /rewritten
              host_rewrite_literal: api.example.com:8443
              request_mirror_policies: [{cluster: shadow}]
          - match: {prefix: /}
            route:
              cluster: primary
              timeout: 20s
              request_mirror_policies: [{cluster: shadow, max_body_bytes: 100}]
clusters:
  - name: primary
    endpoints: [{address: "{{PRIMARY}}"}]
  - name: shadow
    endpoints: [{address: "{{SHADOW}}"}]
  - name: dead
    connect_timeout: 1s
    endpoints: [{address: "{{DEAD}}"}]
`

// shadowProxy is a proxy on shadowConfig with its two recording upstreams.
type shadowProxy struct {
	*harness
	primary, shadow *recorder
}

func startShadowProxy(t *testing.T, tracingSection string, opts ...proxy.Option) *shadowProxy {
	t.Helper()
	sp := &shadowProxy{primary: newRecorder(t, "primary"), shadow: newRecorder(t, "shadow")}
	sp.harness = startProxyWith(t, opts, shadowConfig, "{{PRIMARY}}", sp.primary.addr(), "{{SHADOW}}", sp.shadow.addr(),
		"{{DEAD}}", closedPort(t), "{{TRACING}}", tracingSection)
	return sp
}

// send sends a request to the listener and returns the status and body;
// chunked sends the body without a Content-Length.
func (sp *shadowProxy) send(t *testing.T, method, path, body string, chunked bool) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length from NewRequest
		}
	}
	req, err := http.NewRequest(method, sp.url("main", path), rd)
	if err != nil {
		t.Fatal(err)
	}
	res, b := sp.with(t).do(req)
	return res.StatusCode, b
}

func TestShadowMirrorsRequests(t *testing.T) {
	sp := startShadowProxy(t, "")
	host := strings.TrimPrefix(sp.url("main", ""), "http://")
	tests := []struct {
		name, method, path, body string
		chunked                  bool
		wantHost, wantPath       string
	}{
		{"no body", "GET", "/a?q=1", "", false, router.ShadowHost(host), "/a?q=1"},
		{"streamed body, declared length (tee)", "POST", "/b", "hello shadow", false, router.ShadowHost(host), "/b"},
		{"streamed body, chunked (tee)", "POST", "/c", "chunked body", true, router.ShadowHost(host), "/c"},
		{"buffered for retries", "PUT", "/retry/x", "retry body", false, router.ShadowHost(host), "/retry/x"},
		{"suffix disabled", "GET", "/nosuffix", "", false, host, "/nosuffix"},
		{"host and path rewritten", "GET", "/rewrite/y", "", false, "api.example.com-shadow:8443", "/rewritten/y"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := sp.send(t, tt.method, tt.path, tt.body, tt.chunked)
			if status != 200 || body != "primary" {
				t.Fatalf("primary response = %d %q, want 200 \"primary\"", status, body)
			}
			p := sp.primary.waitRequests(t, i+1)[i]
			s := sp.shadow.waitRequests(t, i+1)[i]
			if s.host != tt.wantHost {
				t.Errorf("shadow Host = %q, want %q", s.host, tt.wantHost)
			}
			if strings.HasSuffix(p.host, "-shadow") || strings.Contains(p.host, "-shadow:") {
				t.Errorf("primary Host = %q carries the shadow suffix", p.host)
			}
			if s.method != tt.method || s.path != tt.wantPath || s.body != tt.body {
				t.Errorf("shadow got %s %s %q, want %s %s %q", s.method, s.path, s.body, tt.method, tt.wantPath, tt.body)
			}
			if s.body != p.body {
				t.Errorf("shadow body %q differs from the primary's %q", s.body, p.body)
			}
			if rid := p.header.Get("X-Request-Id"); rid == "" || s.header.Get("X-Request-Id") != rid {
				t.Errorf("x-request-id: primary %q, shadow %q; want the same", rid, s.header.Get("X-Request-Id"))
			}
		})
	}
	n := uint64(len(tests))
	sp.waitStat("cluster.shadow.upstream_rq_200", n)
	for _, name := range []string{"cluster.shadow.upstream_rq_total", "cluster.shadow.upstream_rq_completed", "cluster.primary.upstream_rq_200"} {
		if got := sp.stat(name); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	sp.waitStat("cluster.shadow.upstream_rq_active", 0)
	if got := sp.stat("cluster.primary.retry_or_shadow_abandoned"); got != 0 {
		t.Errorf("retry_or_shadow_abandoned = %d, want 0", got)
	}

	// A fraction of 0 never mirrors.
	if status, _ := sp.send(t, "GET", "/never", "", false); status != 200 {
		t.Fatalf("status %d", status)
	}
	sp.primary.waitRequests(t, len(tests)+1)
	if got := len(sp.shadow.requests()); got != len(tests) {
		t.Errorf("the shadow saw %d requests, want %d: runtime_fraction 0 mirrored", got, len(tests))
	}
}

// TestShadowBodyLimit: a body larger than max_body_bytes reaches the
// primary whole and is not mirrored; the primary cluster counts
// retry_or_shadow_abandoned.
func TestShadowBodyLimit(t *testing.T) {
	sp := startShadowProxy(t, "")
	big := strings.Repeat("x", 101) // max_body_bytes is 100
	for i, tc := range []struct {
		path    string
		chunked bool
	}{{"/declared", false}, {"/chunked", true}, {"/retry/buffered", false}} {
		status, body := sp.send(t, "POST", tc.path, big, tc.chunked)
		if status != 200 || body != "primary" {
			t.Fatalf("%s: primary response %d %q", tc.path, status, body)
		}
		if got := sp.primary.waitRequests(t, i+1)[i].body; got != big {
			t.Fatalf("%s: the primary got %d bytes, want all %d", tc.path, len(got), len(big))
		}
		sp.waitStat("cluster.primary.retry_or_shadow_abandoned", uint64(i+1))
	}
	// Exactly at the limit is mirrored.
	if status, _ := sp.send(t, "POST", "/fits", big[:100], true); status != 200 {
		t.Fatalf("status %d", status)
	}
	if got := sp.shadow.waitRequests(t, 1); len(got) != 1 || got[0].body != big[:100] {
		t.Fatalf("shadow requests = %+v, want only the 100-byte one", got)
	}
}

// TestShadowNeverDelaysPrimary: with the shadow stuck, primary responses
// still come back, every one of them, and shadows beyond the per-listener
// bound are refused (upstream_rq_pending_overflow on the mirror cluster)
// instead of piling up.
func TestShadowNeverDelaysPrimary(t *testing.T) {
	sp := startShadowProxy(t, "")
	sp.shadow.blockAll()
	const n = router.DefaultMaxShadowsInFlight + 40
	for i := range n {
		// The shadow never answers while blocked; a primary that waited
		// for it would hang here until the client's 30 s timeout.
		status, body := sp.send(t, "GET", fmt.Sprintf("/stuck/%d", i), "", false)
		if status != 200 || body != "primary" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
	sp.waitStat("cluster.shadow.upstream_rq_active", router.DefaultMaxShadowsInFlight)
	if got := sp.stat("cluster.shadow.upstream_rq_pending_overflow"); got != 40 {
		t.Errorf("upstream_rq_pending_overflow = %d, want the 40 shadows beyond the bound", got)
	}
	sp.shadow.unblock()
	sp.waitStat("cluster.shadow.upstream_rq_200", router.DefaultMaxShadowsInFlight)
	sp.waitStat("cluster.shadow.upstream_rq_active", 0)
	// The bound is released: new shadows flow again.
	sp.send(t, "GET", "/after", "", false)
	sp.waitStat("cluster.shadow.upstream_rq_200", router.DefaultMaxShadowsInFlight+1)
}

// TestShadowDeadCluster: a mirror cluster that refuses connections does
// not affect the primary and counts its failures in its own stats.
func TestShadowDeadCluster(t *testing.T) {
	sp := startShadowProxy(t, "")
	for range 5 {
		if status, body := sp.send(t, "GET", "/dead", "", false); status != 200 || body != "primary" {
			t.Fatalf("primary response %d %q", status, body)
		}
	}
	sp.waitStat("cluster.dead.upstream_rq_503", 5)
	if got := sp.stat("cluster.dead.upstream_cx_connect_fail"); got != 5 {
		t.Errorf("dead upstream_cx_connect_fail = %d, want 5", got)
	}
	if got := sp.stat("cluster.primary.upstream_rq_200"); got != 5 {
		t.Errorf("primary upstream_rq_200 = %d, want 5", got)
	}
}

// TestShadowSpan: the shadow has its own client span, in the request's
// trace, named for the mirror cluster, and carries that span's context.
func TestShadowSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	noEnv := tracing.WithLookupEnv(func(string) (string, bool) { return "", false })
	sp := startShadowProxy(t, "tracing: {sampling_ratio: 1, batch: {schedule_delay: 10ms}}",
		proxy.WithTracingOptions(tracing.WithExporter(exp), noEnv))
	if status, _ := sp.send(t, "GET", "/traced", "", false); status != 200 {
		t.Fatalf("status %d", status)
	}
	p := sp.primary.waitRequests(t, 1)[0]
	s := sp.shadow.waitRequests(t, 1)[0]
	pt, st := p.header.Get("Traceparent"), s.header.Get("Traceparent")
	if len(pt) != 55 || len(st) != 55 {
		t.Fatalf("traceparents: primary %q, shadow %q", pt, st)
	}
	if pt[3:35] != st[3:35] {
		t.Errorf("shadow trace ID %s, want the request's %s", st[3:35], pt[3:35])
	}
	if pt[36:52] == st[36:52] {
		t.Errorf("the shadow carries the primary's span ID %s; want its own span", st[36:52])
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, span := range exp.GetSpans() {
			if span.Name == "router shadow egress" && span.SpanContext.SpanID().String() == st[36:52] {
				if span.Parent.SpanID().String() == "" || span.SpanContext.TraceID().String() != pt[3:35] {
					t.Errorf("shadow span parent %v trace %v", span.Parent.SpanID(), span.SpanContext.TraceID())
				}
				return
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, span := range exp.GetSpans() {
				names = append(names, span.Name)
			}
			t.Fatalf("no \"router shadow egress\" span with ID %s; spans: %v", st[36:52], names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
