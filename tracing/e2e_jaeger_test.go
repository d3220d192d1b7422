//go:build jaeger

// The end-to-end test against a real Jaeger. It needs bin/jaeger, which
// `make tools` (tools/build.sh jaeger) builds from tools/jaeger/go.mod, and
// runs with `go test -tags jaeger ./tracing/`.

package tracing_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/requestid"
	"github.com/hopwatch/hopwatch/tracing"
	"github.com/hopwatch/hopwatch/tracing/demo"
)

type jaeger struct {
	otlpGRPC, otlpHTTP, query string
	out                       *e2etest.SyncBuffer
}

// startJaeger runs bin/jaeger with testdata/jaeger-e2e.yaml on free loopback
// ports and waits until its query API answers.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := filepath.Join(e2etest.RepoRoot(t), "bin", "jaeger")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make tools` (or tools/build.sh jaeger) to build Jaeger v1.76.0 from tools/jaeger/go.mod", bin)
	}
	j := &jaeger{otlpGRPC: e2etest.FreeAddr(t), otlpHTTP: e2etest.FreeAddr(t), query: e2etest.FreeAddr(t), out: &e2etest.SyncBuffer{}}
	cmd := exec.Command(bin, "--config", "testdata/jaeger-e2e.yaml")
	cmd.Env = append(os.Environ(),
		"HOPWATCH_E2E_OTLP_GRPC="+j.otlpGRPC,
		"HOPWATCH_E2E_OTLP_HTTP="+j.otlpHTTP,
		"HOPWATCH_E2E_QUERY_HTTP="+j.query,
		"HOPWATCH_E2E_QUERY_GRPC="+e2etest.FreeAddr(t),
	)
	cmd.Stdout, cmd.Stderr = j.out, j.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("jaeger exited early (%v):\n%s", err, j.out)
		default:
		}
		resp, err := http.Get("http://" + j.query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger's query API at %s not ready after 90s (last error %v):\n%s", j.query, err, j.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Jaeger's query API JSON, shared with the other tests that read Jaeger.
type (
	jTrace = e2etest.JaegerTrace
	jSpan  = e2etest.JaegerSpan
)

// findTrace polls /api/traces?service=… until the trace with traceID holds
// want spans.
func (j *jaeger) findTrace(t *testing.T, service, traceID string, want int) jTrace {
	t.Helper()
	q := url.Values{"service": {service}, "limit": {"50"}, "lookback": {"1h"}}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + j.query + "/api/traces?" + q.Encode())
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(body)
			var r struct {
				Data []jTrace `json:"data"`
			}
			if json.Unmarshal(body, &r) == nil {
				for _, tr := range r.Data {
					if tr.TraceID == traceID && len(tr.Spans) >= want {
						return tr
					}
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("trace %s with %d spans not found for service %s within 60s; last answer: %.2000s\njaeger output:\n%s", traceID, want, service, last, j.out)
	return jTrace{}
}

// Two demo services, each with its own provider (one exporting over OTLP
// gRPC, the other over OTLP HTTP), serve one request; Jaeger must hold one
// trace with both services' spans, correctly linked, all carrying the
// request ID.
func TestJaegerEndToEnd(t *testing.T) {
	j := startJaeger(t)
	ctx := context.Background()
	suffix := requestid.New()[:8]
	feName, catName := "e2e-frontend-"+suffix, "e2e-catalog-"+suffix
	batch := tracing.BatchConfig{ScheduleDelay: tracing.Duration(100 * time.Millisecond), ExportTimeout: tracing.Duration(5 * time.Second)}
	noEnv := tracing.WithLookupEnv(func(string) (string, bool) { return "", false })
	quiet := slog.New(slog.DiscardHandler)

	catP, err := tracing.Setup(ctx, tracing.Config{ServiceName: catName, Endpoint: j.otlpGRPC, Batch: batch}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	feP, err := tracing.Setup(ctx, tracing.Config{ServiceName: feName, Protocol: tracing.ProtocolHTTP,
		Endpoint: "http://" + j.otlpHTTP + "/v1/traces", Zone: "zone-a", Batch: batch}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := demo.NewService(demo.Config{Name: "catalog", Provider: catP, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	catSrv := httptest.NewServer(cat.Handler())
	defer catSrv.Close()
	fe, err := demo.NewService(demo.Config{Name: "frontend", Upstream: catSrv.URL + "/", Provider: feP, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	feSrv := httptest.NewServer(fe.Handler())
	defer feSrv.Close()

	rid := requestid.New()
	req, _ := http.NewRequest(http.MethodGet, feSrv.URL+"/", nil)
	req.Header.Set("X-Request-Id", rid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply demo.Reply
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(reply.TraceID) != 32 || reply.RequestID != rid {
		t.Fatalf("demo reply: status %d %+v %v", resp.StatusCode, reply, err)
	}

	for _, p := range []*tracing.Provider{feP, catP} {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.Shutdown(sctx)
		cancel()
		if err != nil || p.Dropped() != 0 || p.Exported() == 0 {
			t.Fatalf("%s: shutdown %v, exported %d, dropped %d\njaeger output:\n%s", p.Config().ServiceName, err, p.Exported(), p.Dropped(), j.out)
		}
	}

	tr := j.findTrace(t, feName, reply.TraceID, 3)
	// The same trace is found through the other service too.
	j.findTrace(t, catName, reply.TraceID, 3)

	if len(tr.Spans) != 3 {
		t.Fatalf("trace has %d spans, want 3 (frontend server, frontend client, catalog server): %+v", len(tr.Spans), tr.Spans)
	}
	type role struct{ service, kind string }
	byRole := map[role]jSpan{}
	for _, s := range tr.Spans {
		byRole[role{tr.Processes[s.ProcessID].ServiceName, s.Tag("span.kind")}] = s
		if got := s.Tag("guid:x-request-id"); got != rid {
			t.Errorf("span %s (%s) has guid:x-request-id %q, want %q", s.OperationName, s.SpanID, got, rid)
		}
	}
	feServer, ok1 := byRole[role{feName, "server"}]
	feClient, ok2 := byRole[role{feName, "client"}]
	catServer, ok3 := byRole[role{catName, "server"}]
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("missing spans by role: %v", byRole)
	}
	parent := func(s jSpan) string {
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" && r.TraceID == tr.TraceID {
				return r.SpanID
			}
		}
		return ""
	}
	if p := parent(feServer); p != "" {
		t.Errorf("frontend server span has parent %s, want a root", p)
	}
	if parent(feClient) != feServer.SpanID {
		t.Errorf("frontend client span's parent %q, want frontend server %s", parent(feClient), feServer.SpanID)
	}
	if parent(catServer) != feClient.SpanID {
		t.Errorf("catalog server span's parent %q, want frontend client %s", parent(catServer), feClient.SpanID)
	}
	t.Logf("trace %s: %s server %s ← %s client %s ← %s server %s, request ID %s",
		tr.TraceID, feName, feServer.SpanID, feName, feClient.SpanID, catName, catServer.SpanID, rid)
	if feServer.Tag("http.response.status_code") != "200" || catServer.Tag("http.request.method") != "GET" {
		t.Errorf("semantic-convention tags missing: %+v / %+v", feServer.Tags, catServer.Tags)
	}
}
