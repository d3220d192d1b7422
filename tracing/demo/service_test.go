package demo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hopwatch/hopwatch/tracing"
)

type stack struct {
	url      string // the frontend
	services map[string]*Service
	mem      *tracetest.InMemoryExporter
	p        *tracing.Provider
}

// startStack runs frontend → catalog → inventory on loopback.
func startStack(t *testing.T) *stack {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	p, err := tracing.Setup(context.Background(), tracing.Config{ServiceName: "demo"}, tracing.WithExporter(mem),
		tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	st := &stack{services: map[string]*Service{}, mem: mem, p: p}
	upstream := ""
	for i := len(Services) - 1; i >= 0; i-- {
		s, err := NewService(Config{Name: Services[i], Upstream: upstream, Provider: p, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		st.services[Services[i]] = s
		upstream = srv.URL + "/"
	}
	st.url = upstream
	return st
}

func do(t *testing.T, method, url string, h http.Header) (int, Reply) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r Reply
	_ = json.Unmarshal(body, &r)
	return resp.StatusCode, r
}

// chainOf flattens nested replies: frontend, catalog, inventory.
func chainOf(t *testing.T, r Reply) []Reply {
	out := []Reply{r}
	for len(r.Upstream) > 0 {
		var next Reply
		if err := json.Unmarshal(r.Upstream, &next); err != nil {
			t.Fatal(err)
		}
		out = append(out, next)
		r = next
	}
	return out
}

func TestChainCarriesOneTraceAndRequestID(t *testing.T) {
	st := startStack(t)
	code, r := do(t, http.MethodGet, st.url, http.Header{"X-Request-Id": {"demo-1"}})
	if code != http.StatusOK {
		t.Fatalf("status %d: %+v", code, r)
	}
	hops := chainOf(t, r)
	if len(hops) != 3 {
		t.Fatalf("got %d hops", len(hops))
	}
	for i, h := range hops {
		if h.Service != Services[i] || h.RequestID != "demo-1" || h.TraceID != hops[0].TraceID || len(h.TraceID) != 32 {
			t.Errorf("hop %d: %+v", i, h)
		}
	}
	_ = st.p.ForceFlush(context.Background())
	if n := len(st.mem.GetSpans()); n != 5 { // 3 server spans, 2 client spans
		t.Errorf("%d spans, want 5", n)
	}
}

func TestHeaderInjection(t *testing.T) {
	st := startStack(t)
	tests := []struct {
		name  string
		h     http.Header
		codes []int // frontend, catalog, inventory ( 0: not reached )
	}{
		{"fail at inventory", http.Header{HeaderFail: {"503"}, HeaderFailAt: {"inventory"}}, []int{502, 502, 503}},
		{"fail at frontend, untargeted", http.Header{HeaderFail: {"429"}}, []int{429}},
		{"bad header is a 400 that names it", http.Header{HeaderDelay: {"later"}}, []int{400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, r := do(t, http.MethodGet, st.url, tt.h)
			if code != tt.codes[0] {
				t.Fatalf("status %d, want %d (%+v)", code, tt.codes[0], r)
			}
			hops := chainOf(t, r)
			if len(hops) != len(tt.codes) {
				t.Fatalf("reached %d hops, want %d: %+v", len(hops), len(tt.codes), hops)
			}
			if tt.codes[0] == 400 && !strings.Contains(r.Error, HeaderDelay) {
				t.Errorf("error %q does not name %s", r.Error, HeaderDelay)
			}
		})
	}
}

func TestAdminInjection(t *testing.T) {
	st := startStack(t)
	cat := st.services["catalog"]
	catURL := st.services["frontend"].cfg.Upstream
	base := strings.TrimSuffix(catURL, "/")

	if code, _ := do(t, http.MethodPost, base+"/demo/inject?error_rate=1&error_code=500&delay=5ms", nil); code != 200 {
		t.Fatalf("POST inject: %d", code)
	}
	resp, err := http.Get(base + "/demo/inject")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"delay":"5ms","error_rate":1,"error_code":500}`; strings.TrimSpace(string(body)) != want {
		t.Fatalf("GET /demo/inject = %s, want %s", body, want)
	}
	if got := cat.Injection(); got.ErrorRate != 1 || got.ErrorCode != 500 {
		t.Fatalf("injection = %+v", got)
	}
	if code, r := do(t, http.MethodGet, st.url, nil); code != 502 || len(chainOf(t, r)) != 2 {
		t.Fatalf("with catalog failing: %d %+v", code, r)
	}
	if code, _ := do(t, http.MethodPost, base+"/demo/inject?error_rate=2", nil); code != 400 {
		t.Fatalf("bad injection accepted: %d", code)
	}
	if code, _ := do(t, http.MethodDelete, base+"/demo/inject", nil); code != 200 {
		t.Fatalf("DELETE inject: %d", code)
	}
	if code, _ := do(t, http.MethodGet, st.url, nil); code != 200 {
		t.Fatalf("after clearing: %d", code)
	}
}

func TestHealthzNotTraced(t *testing.T) {
	st := startStack(t)
	resp, err := http.Get(st.url + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = st.p.ForceFlush(context.Background())
	if resp.StatusCode != 200 || len(st.mem.GetSpans()) != 0 {
		t.Fatalf("healthz: %d, %d spans", resp.StatusCode, len(st.mem.GetSpans()))
	}
}

func TestNewServiceErrors(t *testing.T) {
	if _, err := NewService(Config{}); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := NewService(Config{Name: "x", Upstream: "localhost:8080"}); err == nil || !strings.Contains(err.Error(), "want an http://") {
		t.Errorf("bad upstream: %v", err)
	}
}

func TestSetupTracingOffWithoutEndpoint(t *testing.T) {
	p, err := SetupTracing(context.Background(), "x", "", func(string) (string, bool) { return "", false })
	if err != nil || p != nil {
		t.Fatalf("= %v, %v; want nil, nil", p, err)
	}
	p, err = SetupTracing(context.Background(), "x", "", func(k string) (string, bool) {
		if k == tracing.EnvEndpoint {
			return "http://127.0.0.1:4317", true
		}
		return "", false
	})
	if err != nil || p == nil || p.Config().ServiceName != "x" {
		t.Fatalf("with env endpoint: %v, %v", p, err)
	}
	_ = p.Shutdown(context.Background())
}
