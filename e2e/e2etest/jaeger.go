package e2etest

import "fmt"

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
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	// Service is the span's service name, filled in by ResolveServices.
	Service string `json:"-"`
}

// JaegerProcess is the process (service) a span came from.
type JaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

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
func (s JaegerSpan) Tag(k string) string {
	for _, t := range s.Tags {
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
