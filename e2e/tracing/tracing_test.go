//go:build jaeger

// Package tracing_test runs the tracing issue's end-to-end test with real
// processes on loopback: Jaeger v1.76.0 (bin/jaeger, built by `make tools`),
// the three demo services each behind a hopwatch-proxy sidecar, and an edge
// proxy in front, all exporting OTLP to that Jaeger. It checks what one
// request looks like in Jaeger's query API and in every hop's logs.
//
//	go test -tags jaeger ./e2e/tracing/
package tracing_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// jaeger is the Jaeger all the processes export to, with the queries
// this test makes.
type jaeger struct{ *e2etest.Jaeger }

// Jaeger's query API JSON, shared with the other tests that read Jaeger.
type (
	jTrace = e2etest.JaegerTrace
	jSpan  = e2etest.JaegerSpan
)

// getTrace fetches one trace by ID; found is false on Jaeger's 404.
func (j *jaeger) getTrace(t *testing.T, id string) (tr jTrace, found bool) {
	t.Helper()
	res, err := http.Get("http://" + j.Query + "/api/traces/" + id)
	if err != nil {
		t.Fatalf("jaeger query: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusNotFound {
		return jTrace{}, false
	}
	var r struct {
		Data []jTrace `json:"data"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || len(r.Data) != 1 {
		t.Fatalf("jaeger /api/traces/%s: %d %.500s", id, res.StatusCode, body)
	}
	tr = r.Data[0]
	tr.ResolveServices()
	return tr, true
}

// waitTrace polls until trace id holds want spans (spans arrive from every
// process on its own schedule), and fails if it ends up with another count.
func (j *jaeger) waitTrace(t *testing.T, id string, want int) jTrace {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var tr jTrace
	for time.Now().Before(deadline) {
		var ok bool
		if tr, ok = j.getTrace(t, id); ok && len(tr.Spans) >= want {
			// A moment more, so that a surplus span would show.
			time.Sleep(500 * time.Millisecond)
			tr, _ = j.getTrace(t, id)
			if len(tr.Spans) != want {
				break
			}
			return tr
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("trace %s has %d spans, want %d: %s", id, len(tr.Spans), want, describe(tr))
	return jTrace{}
}

func describe(tr jTrace) string {
	var b strings.Builder
	for _, s := range tr.Spans {
		fmt.Fprintf(&b, "\n  %s %s %q (%s) parent %s", s.Service, s.SpanID, s.OperationName, s.Kind(), s.Parent())
	}
	return b.String()
}

const proxyConfig = `
node: {id: {{.Name}}-1, cluster: {{.Name}}}
admin: {address: "{{.Admin}}"}
lifecycle: {drain_time: 0s, watch_config: false}
tracing:
  endpoint: "{{.OTLP}}"
  sampling_ratio: {{.Ratio}}
  propagators: [{{.Propagators}}]
  batch: {schedule_delay: 100ms, export_timeout: 1s}
listeners:
  - name: ingress
    address: "{{.Listen}}"
    stat_prefix: ingress
    access_log: [{path: "{{.Log}}", format: json}]
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {prefix: /}
            route:
              cluster: next
{{- if .Retry}}
              retry_policy: {retry_on: [5xx], num_retries: 2, retry_back_off: {base_interval: 1ms}}
{{- end}}
clusters:
  - name: next
    endpoints: [{address: "{{.Upstream}}"}]
`

type proxySpec struct {
	Name, Admin, OTLP, Listen, Log, Upstream, Propagators string
	Ratio                                                 float64
	Retry                                                 bool
}

type hopProxy struct {
	*e2etest.Process
	spec proxySpec
}

func startProxy(t *testing.T, dir string, spec proxySpec) *hopProxy {
	t.Helper()
	spec.Admin, spec.Listen = e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	spec.Log = filepath.Join(dir, spec.Name+"-access.log")
	if spec.Propagators == "" {
		spec.Propagators = "tracecontext, baggage"
	}
	var b bytes.Buffer
	if err := template.Must(template.New("").Parse(proxyConfig)).Execute(&b, spec); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, spec.Name+".yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &hopProxy{Process: e2etest.StartProcess(t, spec.Name, nil, e2etest.GoBuild(t, "cmd/hopwatch-proxy"), "-c", path, "--log-format", "json"), spec: spec}
	p.WaitHTTP(t, "http://"+spec.Admin+"/ready", 20*time.Second)
	return p
}

// accessLog returns the proxy's access-log line for request ID rid.
func (p *hopProxy) accessLog(t *testing.T, rid string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if data, err := os.ReadFile(p.spec.Log); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] == rid {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no access-log line for request %s", p.spec.Name, rid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counter reads one counter from the proxy's /stats.
func (p *hopProxy) counter(t *testing.T, name string) uint64 {
	t.Helper()
	res, err := http.Get("http://" + p.spec.Admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+": "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// startDemo runs one demo service and waits for it.
func startDemo(t *testing.T, name, listen, upstream, otlp string) *e2etest.Process {
	t.Helper()
	args := []string{name, "--listen", listen, "--otlp-endpoint", otlp}
	if upstream != "" {
		args = append(args, "--upstream", upstream)
	}
	// A short batch delay, so that spans reach Jaeger while the test waits.
	p := e2etest.StartProcess(t, name, []string{"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_BSP_EXPORT_TIMEOUT=1000"}, e2etest.GoBuild(t, "cmd/demo"), args...)
	p.WaitHTTP(t, "http://"+listen+"/demo/inject", 20*time.Second)
	return p
}

type reply struct {
	RequestID string `json:"request_id"`
	TraceID   string `json:"trace_id"`
}

func send(t *testing.T, url string, hdr ...string) (int, reply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Timeout: 20 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	var r reply
	body, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(body, &r)
	return res.StatusCode, r
}

// demoNames are the demo services, front to back. Each proxy's service
// name is its node.cluster.
var demoNames = []string{"frontend", "catalog", "inventory"}

func TestTracingAcrossHops(t *testing.T) {
	dir := t.TempDir()
	j := jaeger{e2etest.StartJaeger(t)}

	// Back to front: inventory, its sidecar, catalog, ... the edge.
	invAddr, catAddr, feAddr := e2etest.FreeAddr(t), e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	demos := map[string]*e2etest.Process{}
	demos["inventory"] = startDemo(t, "inventory", invAddr, "", j.OTLPGRPC)
	scInv := startProxy(t, dir, proxySpec{Name: "sidecar-inventory", OTLP: j.OTLPGRPC, Ratio: 1, Upstream: invAddr})
	demos["catalog"] = startDemo(t, "catalog", catAddr, "http://"+scInv.spec.Listen+"/", j.OTLPGRPC)
	// The sidecar in front of catalog retries, so that an error injected at
	// catalog shows one client span per attempt.
	scCat := startProxy(t, dir, proxySpec{Name: "sidecar-catalog", OTLP: j.OTLPGRPC, Ratio: 1, Upstream: catAddr, Retry: true})
	demos["frontend"] = startDemo(t, "frontend", feAddr, "http://"+scCat.spec.Listen+"/", j.OTLPGRPC)
	scFe := startProxy(t, dir, proxySpec{Name: "sidecar-frontend", OTLP: j.OTLPGRPC, Ratio: 1, Upstream: feAddr})
	edge := startProxy(t, dir, proxySpec{Name: "edge", OTLP: j.OTLPGRPC, Ratio: 1, Upstream: scFe.spec.Listen,
		Propagators: "tracecontext, baggage, b3, jaeger"})
	// An edge that samples nothing unless forced.
	edge0 := startProxy(t, dir, proxySpec{Name: "edge-unsampled", OTLP: j.OTLPGRPC, Ratio: 0, Upstream: scFe.spec.Listen})
	proxies := []*hopProxy{edge, scFe, scCat, scInv}
	edgeURL := "http://" + edge.spec.Listen + "/"

	t.Run("one request is one trace across every hop", func(t *testing.T) {
		status, r := send(t, edgeURL)
		if status != 200 || len(r.TraceID) != 32 || r.RequestID == "" {
			t.Fatalf("status %d, reply %+v", status, r)
		}
		// Per proxy a server and a client span; per demo service a server
		// span, and a client span for the two that call another.
		tr := j.waitTrace(t, r.TraceID, 4*2+3+2)
		spanByID := map[string]jSpan{}
		for _, s := range tr.Spans {
			spanByID[s.SpanID] = s
		}
		one := func(service, kind string) jSpan {
			t.Helper()
			ss := tr.SpansOf(service, kind)
			if len(ss) != 1 {
				t.Fatalf("%d %s spans of %s, want 1: %s", len(ss), kind, service, describe(tr))
			}
			return ss[0]
		}
		// The chain of parents, front to back.
		chain := []jSpan{
			one("edge", "server"), one("edge", "client"),
			one("sidecar-frontend", "server"), one("sidecar-frontend", "client"),
			one("frontend", "server"), one("frontend", "client"),
			one("sidecar-catalog", "server"), one("sidecar-catalog", "client"),
			one("catalog", "server"), one("catalog", "client"),
			one("sidecar-inventory", "server"), one("sidecar-inventory", "client"),
			one("inventory", "server"),
		}
		if p := chain[0].Parent(); p != "" {
			t.Errorf("the edge's server span has parent %s; it should be the root", p)
		}
		for i := 1; i < len(chain); i++ {
			if got, want := chain[i].Parent(), chain[i-1].SpanID; got != want {
				t.Errorf("%s %s span's parent is %s (%s), want %s's %s span %s", chain[i].Service, chain[i].Kind(), got,
					spanByID[got].Service, chain[i-1].Service, chain[i-1].Kind(), want)
			}
		}
		for _, s := range tr.Spans {
			if strings.HasPrefix(s.Service, "edge") || strings.HasPrefix(s.Service, "sidecar-") {
				if got := s.Tag("guid:x-request-id"); got != r.RequestID {
					t.Errorf("%s %s span: guid:x-request-id %q, want %q", s.Service, s.Kind(), got, r.RequestID)
				}
				if s.Tag("component") != "proxy" || s.Tag("upstream_cluster") != "next" {
					t.Errorf("%s %s span tags: %+v", s.Service, s.Kind(), s.Tags)
				}
			}
		}
		if got := chain[0].Tag("http.response.status_code"); got != "200" {
			t.Errorf("edge server span status code %q", got)
		}
		// Every hop's log line names the trace: the proxies' access logs with
		// their server span, the services' request logs through tracing/hop.
		for i, p := range proxies {
			server := chain[[]int{0, 2, 6, 10}[i]] // each proxy's server span
			line := p.accessLog(t, r.RequestID)
			if server.Service != p.spec.Name || line["trace_id"] != r.TraceID || line["span_id"] != server.SpanID {
				t.Errorf("%s access log: trace_id %v span_id %v, want %s and %s's server span %s", p.spec.Name, line["trace_id"], line["span_id"], r.TraceID, server.Service, server.SpanID)
			}
		}
		for _, name := range demoNames {
			if !logHas(demos[name].Output(), r.RequestID, r.TraceID) {
				t.Errorf("%s logged no request line with request_id %s and trace_id %s", name, r.RequestID, r.TraceID)
			}
		}
	})

	t.Run("a retried request shows one client span per attempt", func(t *testing.T) {
		status, r := send(t, edgeURL, "X-Demo-Fail", "503", "X-Demo-Fail-At", "catalog")
		if status != http.StatusBadGateway || r.TraceID == "" {
			t.Fatalf("status %d reply %+v; want frontend's 502 for catalog's injected 503", status, r)
		}
		// edge 2, sidecar-frontend 2, frontend 2, sidecar-catalog 1 server +
		// 3 client, catalog 3 server (it fails before calling inventory).
		tr := j.waitTrace(t, r.TraceID, 2+2+2+4+3)
		scServer := tr.SpansOf("sidecar-catalog", "server")
		attempts := tr.SpansOf("sidecar-catalog", "client")
		catServers := tr.SpansOf("catalog", "server")
		if len(scServer) != 1 || len(attempts) != 3 || len(catServers) != 3 {
			t.Fatalf("sidecar-catalog: %d server, %d client spans; catalog: %d server spans; want 1, 3, 3: %s", len(scServer), len(attempts), len(catServers), describe(tr))
		}
		attemptIDs := map[string]bool{}
		for _, a := range attempts {
			if a.Parent() != scServer[0].SpanID {
				t.Errorf("attempt span %s's parent %s, want the sidecar's server span %s", a.SpanID, a.Parent(), scServer[0].SpanID)
			}
			if a.Tag("http.response.status_code") != "503" || a.Tag("error") != "true" {
				t.Errorf("attempt span %s: status %q error %q", a.SpanID, a.Tag("http.response.status_code"), a.Tag("error"))
			}
			attemptIDs[a.SpanID] = true
		}
		for _, c := range catServers {
			if !attemptIDs[c.Parent()] {
				t.Errorf("catalog server span %s's parent %s is not one of the attempts", c.SpanID, c.Parent())
			}
			delete(attemptIDs, c.Parent())
		}
		if f := scServer[0].Tag("response_flags"); f != "URX" {
			t.Errorf("sidecar-catalog server span response_flags %q, want URX", f)
		}
	})

	t.Run("incoming B3 and uber-trace-id contexts are continued", func(t *testing.T) {
		for _, tc := range []struct {
			name, trace, span string
			hdr               []string
		}{
			{"b3 multi", "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312",
				[]string{"X-B3-Traceid", "463ac35c9f6413ad48485a3953bb6124", "X-B3-Spanid", "a2fb4a1d1a96d312", "X-B3-Sampled", "1"}},
			{"b3 single", "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1",
				[]string{"B3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"}},
			{"jaeger", "5a3c0f4e1b2d3c4e5f60718293a4b5c6", "1f2e3d4c5b6a7988",
				[]string{"Uber-Trace-Id", "5a3c0f4e1b2d3c4e5f60718293a4b5c6:1f2e3d4c5b6a7988:0:1"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, r := send(t, edgeURL, tc.hdr...)
				if status != 200 || r.TraceID != tc.trace {
					t.Fatalf("status %d, trace %s; want 200 and the incoming trace %s", status, r.TraceID, tc.trace)
				}
				tr := j.waitTrace(t, tc.trace, 13)
				edgeServer := tr.SpansOf("edge", "server")
				if len(edgeServer) != 1 || edgeServer[0].Parent() != tc.span {
					t.Errorf("edge server span's parent %v, want the incoming span %s", edgeServer, tc.span)
				}
			})
		}
	})

	t.Run("sampling 0: a forced request is traced, an unforced one is not", func(t *testing.T) {
		url := "http://" + edge0.spec.Listen + "/"
		before := edge0.counter(t, "http.ingress.tracing.not_traceable")
		status, unforced := send(t, url)
		if status != 200 || unforced.TraceID == "" {
			t.Fatalf("status %d reply %+v", status, unforced)
		}
		status, forced := send(t, url, "X-Envoy-Force-Trace", "true")
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		tr := j.waitTrace(t, forced.TraceID, 13)
		if len(tr.SpansOf("edge-unsampled", "server")) != 1 {
			t.Errorf("the forced trace has no edge-unsampled server span: %s", describe(tr))
		}
		// The forced trace is complete, and every hop exported the unforced
		// request's spans (if any) no later than the forced one's.
		if tr, found := j.getTrace(t, unforced.TraceID); found {
			t.Errorf("the unforced request was traced: %s", describe(tr))
		}
		if line := edge0.accessLog(t, unforced.RequestID); line["trace_id"] != nil {
			t.Errorf("access log of the unsampled request has trace_id %v", line["trace_id"])
		}
		if got := edge0.counter(t, "http.ingress.tracing.service_forced"); got != 1 {
			t.Errorf("edge-unsampled tracing.service_forced = %d, want 1", got)
		}
		if got := edge0.counter(t, "http.ingress.tracing.not_traceable"); got != before+1 {
			t.Errorf("edge-unsampled tracing.not_traceable = %d, want %d", got, before+1)
		}
	})

	t.Run("stopping Jaeger never fails requests; dropped spans are counted", func(t *testing.T) {
		sentBefore := edge.counter(t, "tracing.opentelemetry.spans_sent")
		if sentBefore == 0 {
			t.Errorf("edge's tracing.opentelemetry.spans_sent is 0 after the traces above")
		}
		j.Kill()
		const n = 40
		for i := range n {
			start := time.Now()
			status, _ := send(t, edgeURL)
			if status != 200 {
				t.Fatalf("request %d after Jaeger stopped: status %d", i, status)
			}
			// Generous: export runs beside requests, never in their way.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("request %d took %v with Jaeger down", i, d)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			dropped := edge.counter(t, "tracing.opentelemetry.spans_dropped")
			if dropped > 0 {
				t.Logf("edge dropped %d spans with Jaeger down", dropped)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edge's tracing.opentelemetry.spans_dropped stayed 0 after %d requests with Jaeger down", n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// logHas reports whether some JSON log line has both the request ID and
// the trace ID.
func logHas(out, rid, traceID string) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] == rid && m["trace_id"] == traceID {
			return true
		}
	}
	return false
}
