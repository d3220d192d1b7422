//go:build jaeger

// Package legacytrace_test checks that a service still instrumented with
// jaeger-client-go joins the traces of the OpenTelemetry services and the
// proxies. It runs the dev environment as `make up` does
// (deploy/local/up.sh: real binaries, the real Jaeger, bin/jaeger, with
// deploy/local/jaeger.yml's `jaeger` receiver), sends one request through
// the front proxy, and reads that request's trace from Jaeger's query API:
// legacy-pricing's span, reported as thrift by jaeger-client-go, must hang
// under its sidecar's client span, and the parent chain from it must reach
// the front proxy's root span through every hop.
//
//	go test -tags jaeger ./e2e/legacytrace/
package legacytrace_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/tracing/demo"
)

// numPorts and the offsets follow port_names in deploy/local/up.sh.
const (
	numPorts      = 23
	offFrontProxy = 0
	offStatsd     = 11
	offJaegerUI   = 15
	offCanaryApp  = 17
)

// spansPerRequest is one request's trace without retries: a server and a
// client span for each of the five proxies, a server span for each of the
// four apps, and a client span for each call an app makes (frontend to
// catalog, catalog to inventory and to legacy-pricing).
const spansPerRequest = 5*2 + 4 + 3

// wantChain is the path from legacy-pricing's span up to the trace's root,
// as service and span kind.
var wantChain = []string{
	"legacy-pricing server",
	"legacy-pricing-sidecar client", "legacy-pricing-sidecar server",
	"catalog client", "catalog server",
	"catalog-sidecar client", "catalog-sidecar server",
	"frontend client", "frontend server",
	"frontend-sidecar client", "frontend-sidecar server",
	"front-proxy client", "front-proxy server",
}

func TestLegacyServiceJoinsTrace(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Fatal("jq is not installed; this test runs deploy/local/full-trace.jq with it (make test-deps)")
	}
	bin := e2etest.PipelineBinaries(t)
	if err := os.Symlink(e2etest.PinnedBin(t, "jaeger"), filepath.Join(bin, "jaeger")); err != nil {
		t.Fatal(err)
	}
	base := e2etest.FreePortBlock(t, numPorts, offStatsd)
	url := func(off int, path string) string { return "http://127.0.0.1:" + strconv.Itoa(base+off) + path }
	up := e2etest.StartLocalPipeline(t, bin, base, "UP_LOAD_RATE=1", "UP_LOAD_DURATION=1s")

	// The catalog canary fails 10 % of its requests on purpose, and a
	// retried attempt adds spans; clear that so the count is exact.
	req, _ := http.NewRequest(http.MethodDelete, url(offCanaryApp, "/demo/inject"), nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("clearing the canary's injection: %v %v", res, err)
	} else {
		_ = res.Body.Close()
	}

	rid, traceID := request(t, url(offFrontProxy, "/"))
	raw, tr := waitTrace(t, url(offJaegerUI, "/api/traces/"+traceID), spansPerRequest)

	legacy := tr.SpansOf(demo.LegacyPricing, "server")
	if len(legacy) != 1 {
		t.Fatalf("trace %s has %d legacy-pricing server spans, want 1:\n%s", traceID, len(legacy), describe(tr))
	}
	span := legacy[0]
	// Reported through the thrift receiver by jaeger-client-go: Jaeger
	// keeps the client's version as a process tag (jaeger.version, which
	// Jaeger v2's receiver stores as opencensus.exporterversion).
	proc := tr.Processes[span.ProcessID]
	v1, v2 := proc.Tag("jaeger.version"), proc.Tag("opencensus.exporterversion")
	if !strings.HasPrefix(v1, "Go-") && !strings.HasPrefix(v2, "Jaeger-Go-") {
		t.Errorf("legacy-pricing's process tags %+v name no jaeger-client-go version", proc.Tags)
	}
	if proc.Tag("telemetry.sdk.name") != "" {
		t.Errorf("legacy-pricing's process has OpenTelemetry SDK tags %+v; its span should come from jaeger-client-go", proc.Tags)
	}
	if got := span.Tag("guid:x-request-id"); got != rid {
		t.Errorf("legacy-pricing span's guid:x-request-id = %q, want the request's %q", got, rid)
	}

	// The parent chain from legacy-pricing's span to the root.
	byID := map[string]e2etest.JaegerSpan{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	var chain []string
	for s, ok := span, true; ok; s, ok = byID[s.Parent()] {
		chain = append(chain, s.Service+" "+s.Kind())
		if len(chain) > len(tr.Spans) {
			t.Fatalf("the parent chain loops:\n%s", describe(tr))
		}
		if s.Parent() == "" {
			break
		}
		if _, ok := byID[s.Parent()]; !ok {
			t.Fatalf("span %s (%s %s) names parent %s, which is not in the trace:\n%s", s.SpanID, s.Service, s.Kind(), s.Parent(), describe(tr))
		}
	}
	if fmt.Sprint(chain) != fmt.Sprint(wantChain) {
		t.Errorf("parent chain from legacy-pricing:\n got  %v\n want %v\n%s", chain, wantChain, describe(tr))
	}
	// And no span of the trace is detached: one root, every other parent
	// present.
	roots := 0
	for _, s := range tr.Spans {
		switch _, ok := byID[s.Parent()]; {
		case s.Parent() == "":
			roots++
		case !ok:
			t.Errorf("span %s (%s %s) has parent %s outside the trace", s.SpanID, s.Service, s.Kind(), s.Parent())
		}
	}
	if roots != 1 {
		t.Errorf("trace has %d root spans, want 1 (the front proxy's)", roots)
	}

	// deploy/local/full-trace.jq, the Tiltfile's pipeline check, accepts
	// the trace, and refuses it without legacy-pricing's span.
	program := filepath.Join(e2etest.RepoRoot(t), "deploy", "local", "full-trace.jq")
	if out, err := runJQ(jq, program, raw); err != nil {
		t.Errorf("full-trace.jq refused trace %s: %v %s", traceID, err, out)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	trace0 := doc["data"].([]any)[0].(map[string]any)
	var kept []any
	for _, s := range trace0["spans"].([]any) {
		if s.(map[string]any)["spanID"] != span.SpanID {
			kept = append(kept, s)
		}
	}
	trace0["spans"] = kept
	cut, _ := json.Marshal(doc)
	if out, err := runJQ(jq, program, cut); err == nil {
		t.Errorf("full-trace.jq accepted the trace without legacy-pricing's span: %s", out)
	}

	if t.Failed() {
		t.Logf("up.sh output:\n%s", up.Output())
	}
}

// request sends one GET through the front proxy and returns its request
// ID and trace ID; the catalog's reply must carry legacy-pricing's price
// in the same trace.
func request(t *testing.T, u string) (rid, traceID string) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, body)
	}
	var frontend, catalog demo.Reply
	var price demo.PriceReply
	if err := json.Unmarshal(body, &frontend); err != nil || json.Unmarshal(frontend.Upstream, &catalog) != nil || json.Unmarshal(catalog.Price, &price) != nil {
		t.Fatalf("GET %s: reply without the catalog's price: %s", u, body)
	}
	rid = res.Header.Get("X-Request-Id")
	if price.Service != demo.LegacyPricing || price.TraceID != frontend.TraceID || price.RequestID != rid || price.PriceCents == 0 {
		t.Fatalf("legacy-pricing's reply %+v; want trace %s and request ID %s", price, frontend.TraceID, rid)
	}
	return rid, frontend.TraceID
}

// waitTrace polls Jaeger until the trace holds want spans (every process
// reports on its own schedule, jaeger-client-go every second), then waits
// a moment more so that a surplus span would show, and returns the answer
// as read and decoded.
func waitTrace(t *testing.T, u string, want int) ([]byte, e2etest.JaegerTrace) {
	t.Helper()
	var raw []byte
	var tr e2etest.JaegerTrace
	get := func() bool {
		res, err := http.Get(u)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		raw, _ = io.ReadAll(res.Body)
		var r struct {
			Data []e2etest.JaegerTrace `json:"data"`
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal(raw, &r) != nil || len(r.Data) != 1 {
			return false
		}
		tr = r.Data[0]
		tr.ResolveServices()
		return len(tr.Spans) >= want
	}
	e2etest.WaitFor(t, fmt.Sprintf("%d spans at %s", want, u), 30*time.Second, get)
	time.Sleep(2 * time.Second)
	get()
	if len(tr.Spans) != want {
		t.Fatalf("%s: %d spans, want %d:\n%s", u, len(tr.Spans), want, describe(tr))
	}
	return raw, tr
}

// runJQ runs full-trace.jq on doc, a /api/traces answer; it fails when
// the program is not true.
func runJQ(jq, program string, doc []byte) ([]byte, error) {
	cmd := exec.Command(jq, "-e", "-f", program)
	cmd.Stdin = bytes.NewReader(doc)
	return cmd.CombinedOutput()
}

// describe lists a trace's spans for failure messages.
func describe(tr e2etest.JaegerTrace) string {
	var b strings.Builder
	for _, s := range tr.Spans {
		fmt.Fprintf(&b, "  %s parent %-16s %s %s %q\n", s.SpanID, s.Parent(), s.Service, s.Kind(), s.OperationName)
	}
	return b.String()
}
