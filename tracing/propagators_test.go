package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	wantTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	wantSpan  = "00f067aa0ba902b7"
)

// Each format's headers for the same sampled span context.
var formats = map[string]http.Header{
	"tracecontext": {"Traceparent": {"00-" + wantTrace + "-" + wantSpan + "-01"}},
	"b3":           {"B3": {wantTrace + "-" + wantSpan + "-1"}},
	"b3multi":      {"X-B3-Traceid": {wantTrace}, "X-B3-Spanid": {wantSpan}, "X-B3-Sampled": {"1"}},
	"jaeger":       {"Uber-Trace-Id": {wantTrace + ":" + wantSpan + ":0:1"}},
}

func extract(t *testing.T, names []string, h http.Header) trace.SpanContext {
	t.Helper()
	p, err := NewPropagator(names)
	if err != nil {
		t.Fatal(err)
	}
	return trace.SpanContextFromContext(p.Extract(context.Background(), propagation.HeaderCarrier(h)))
}

func TestPropagatorExtractsItsOwnFormat(t *testing.T) {
	for name, h := range formats {
		t.Run(name, func(t *testing.T) {
			sc := extract(t, []string{name}, h)
			if sc.TraceID().String() != wantTrace || sc.SpanID().String() != wantSpan || !sc.IsSampled() || !sc.IsRemote() {
				t.Fatalf("%s extracted %v", name, sc)
			}
		})
	}
}

func TestPropagatorIgnoresOtherFormats(t *testing.T) {
	for name := range formats {
		for other, h := range formats {
			// B3 extraction accepts both B3 encodings whichever is configured.
			if other == name || strings.HasPrefix(name, "b3") && strings.HasPrefix(other, "b3") {
				continue
			}
			if sc := extract(t, []string{name}, h); sc.IsValid() {
				t.Errorf("propagator %s extracted %v from %s headers", name, sc, other)
			}
		}
	}
}

func TestSeveralPropagatorsAtOnce(t *testing.T) {
	all := []string{"tracecontext", "baggage", "b3", "b3multi", "jaeger"}
	// Every format on its own is understood by the combination.
	for name, h := range formats {
		if sc := extract(t, all, h); sc.TraceID().String() != wantTrace || sc.SpanID().String() != wantSpan {
			t.Errorf("combined propagator did not extract %s: %v", name, sc)
		}
	}
	// Injection writes every format, so the next hop understands whichever it knows.
	p, _ := NewPropagator(all)
	ctx := trace.ContextWithSpanContext(context.Background(), extract(t, []string{"tracecontext"}, formats["tracecontext"]))
	h := http.Header{}
	p.Inject(ctx, propagation.HeaderCarrier(h))
	for _, key := range []string{"Traceparent", "B3", "X-B3-Traceid", "Uber-Trace-Id"} {
		if h.Get(key) == "" {
			t.Errorf("inject did not write %s; wrote %v", key, h)
		}
	}
	for name := range formats {
		if sc := extract(t, []string{name}, h); sc.TraceID().String() != wantTrace {
			t.Errorf("%s could not read back what the combination injected: %v", name, sc)
		}
	}
	// When several arrive with different IDs, the one listed last wins.
	mixed := http.Header{}
	mixed.Set("Traceparent", "00-"+strings.Repeat("1", 32)+"-"+strings.Repeat("2", 16)+"-01")
	mixed.Set("Uber-Trace-Id", wantTrace+":"+wantSpan+":0:1")
	if sc := extract(t, []string{"tracecontext", "jaeger"}, mixed); sc.TraceID().String() != wantTrace {
		t.Errorf("last propagator did not win: %v", sc)
	}
}

func TestBaggagePropagates(t *testing.T) {
	p, _ := NewPropagator(DefaultPropagators())
	ctx := p.Extract(context.Background(), propagation.HeaderCarrier(http.Header{"Baggage": {"tenant=acme"}}))
	if got := baggage.FromContext(ctx).Member("tenant").Value(); got != "acme" {
		t.Fatalf("baggage tenant = %q", got)
	}
}

func TestNewPropagatorErrorsAndNone(t *testing.T) {
	if _, err := NewPropagator([]string{"tracecontext", "ottrace"}); err == nil || !strings.Contains(err.Error(), `propagators[1]: "ottrace"`) {
		t.Fatalf("error = %v", err)
	}
	if sc := extract(t, []string{"none"}, formats["tracecontext"]); sc.IsValid() {
		t.Fatalf("none extracted %v", sc)
	}
}
