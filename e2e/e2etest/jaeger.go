package e2etest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Jaeger is the pinned Jaeger (bin/jaeger) running all-in-one with
// tracing/testdata/jaeger-e2e.yaml, every listener on a free loopback port.
type Jaeger struct {
	*Process
	// OTLPGRPC is the OTLP/gRPC receiver's host:port, where the proxies
	// and the demo services export spans.
	OTLPGRPC string
	// Query is the query API's host:port (/api/traces, /api/services).
	Query string
}

// StartJaeger runs bin/jaeger and waits until its query API answers; a
// missing binary fails the test, which needs a real Jaeger.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	root := RepoRoot(t)
	bin := filepath.Join(root, "bin", "jaeger")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make tools` (or tools/build.sh jaeger) to build Jaeger v1.76.0 from tools/jaeger/go.mod", bin)
	}
	j := &Jaeger{OTLPGRPC: FreeAddr(t), Query: FreeAddr(t)}
	j.Process = StartProcess(t, "jaeger", []string{
		"HOPWATCH_E2E_OTLP_GRPC=" + j.OTLPGRPC,
		"HOPWATCH_E2E_OTLP_HTTP=" + FreeAddr(t),
		"HOPWATCH_E2E_QUERY_HTTP=" + j.Query,
		"HOPWATCH_E2E_QUERY_GRPC=" + FreeAddr(t),
	}, bin, "--config", filepath.Join(root, "tracing", "testdata", "jaeger-e2e.yaml"))
	j.WaitHTTP(t, "http://"+j.Query+"/api/services", 90*time.Second)
	return j
}

// JaegerTrace is one trace as Jaeger's query API (/api/traces) returns it:
// the parts the end-to-end tests read.
type JaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
}

// JaegerSpan is one span of a JaegerTrace.
type JaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []JaegerTag `json:"tags"`
	// Service is the span's service name, filled in by ResolveServices.
	Service string `json:"-"`
}

// JaegerTag is one tag of a span or a process.
type JaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// JaegerProcess is the process (service) a span came from.
type JaegerProcess struct {
	ServiceName string `json:"serviceName"`
	// Tags are the process's tags: the resource's attributes for OTLP
	// spans, the client's process tags for thrift.
	Tags []JaegerTag `json:"tags"`
}

// Tag returns the process's tag k as text, or "".
func (p JaegerProcess) Tag(k string) string { return tagValue(p.Tags, k) }

// ResolveServices sets each span's Service from the trace's processes.
func (tr *JaegerTrace) ResolveServices() {
	for i := range tr.Spans {
		tr.Spans[i].Service = tr.Processes[tr.Spans[i].ProcessID].ServiceName
	}
}

// SpansOf returns the spans of service (after ResolveServices) with the
// given kind.
func (tr *JaegerTrace) SpansOf(service, kind string) []JaegerSpan {
	var out []JaegerSpan
	for _, s := range tr.Spans {
		if s.Service == service && s.Kind() == kind {
			out = append(out, s)
		}
	}
	return out
}

// Tag returns the span's tag k as text, or "".
func (s JaegerSpan) Tag(k string) string { return tagValue(s.Tags, k) }

func tagValue(tags []JaegerTag, k string) string {
	for _, t := range tags {
		if t.Key == k {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Kind returns the span.kind tag (server, client, ...).
func (s JaegerSpan) Kind() string { return s.Tag("span.kind") }

// Parent returns the span ID of the CHILD_OF reference, or "".
func (s JaegerSpan) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}
