package tracing

import (
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/contrib/propagators/jaeger"
	"go.opentelemetry.io/otel/propagation"
)

// propagatorsByName maps the OTEL_PROPAGATORS names hopwatch supports to
// constructors. B3 extraction accepts both encodings whichever name is
// chosen; the name decides what is injected.
var propagatorsByName = map[string]func() propagation.TextMapPropagator{
	"tracecontext": func() propagation.TextMapPropagator { return propagation.TraceContext{} },
	"baggage":      func() propagation.TextMapPropagator { return propagation.Baggage{} },
	"b3":           func() propagation.TextMapPropagator { return b3.New(b3.WithInjectEncoding(b3.B3SingleHeader)) },
	"b3multi":      func() propagation.TextMapPropagator { return b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)) },
	"jaeger":       func() propagation.TextMapPropagator { return jaeger.Jaeger{} },
	"none":         nil,
}

func propagatorNames() string {
	names := make([]string, 0, len(propagatorsByName))
	for n := range propagatorsByName {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// NewPropagator returns one propagator made of the named ones (see
// Config.Propagators), in order. On extraction each reads only its own
// headers, so a request carrying any one of the formats continues its trace;
// when a request carries several, the one listed last wins. On injection
// every format is written, so a next hop that knows only one still follows.
// "none" alone, or an empty list, gives a propagator that does nothing.
func NewPropagator(names []string) (propagation.TextMapPropagator, error) {
	var ps []propagation.TextMapPropagator
	seen := map[string]bool{}
	for i, n := range names {
		mk, ok := propagatorsByName[n]
		if !ok {
			return nil, fmt.Errorf("propagators[%d]: %q is not supported; use one of %s", i, n, propagatorNames())
		}
		if mk == nil || seen[n] {
			continue
		}
		seen[n] = true
		ps = append(ps, mk())
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}

// DefaultPropagator is NewPropagator(DefaultPropagators()): W3C tracecontext
// and baggage. The application library uses it when no Provider is given, so
// that trace context passes through an untraced service unchanged.
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
