package hop_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/tracing"
	"github.com/hopwatch/hopwatch/tracing/hop"
)

// Service A calls service B. Both wrap their handlers in hop.Middleware and
// A calls out through hop.Transport with the request's context, so B sees
// A's trace and A's request ID.
func Example() {
	ctx := context.Background()
	// In a real service: tracing.Setup(ctx, tracing.Config{ServiceName: "a"}),
	// which exports over OTLP. Here spans stay in memory.
	p, err := tracing.Setup(ctx, tracing.Config{ServiceName: "example"}, tracing.WithExporter(tracetest.NewInMemoryExporter()))
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)

	// Service B answers with the trace ID and request ID it sees.
	b := httptest.NewServer(hop.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", trace.SpanContextFromContext(r.Context()).TraceID(), hop.RequestID(r.Context()))
	}), hop.WithProvider(p)))
	defer b.Close()

	// Service A calls B and compares.
	client := &http.Client{Transport: hop.Transport(nil, hop.WithProvider(p))}
	a := httptest.NewServer(hop.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		seen := strings.Fields(string(body)) // B's trace ID and request ID
		mine := trace.SpanContextFromContext(r.Context()).TraceID().String()
		fmt.Fprintf(w, "same trace at B: %v\nrequest ID at B: %s\n", seen[0] == mine, seen[1])
	}), hop.WithProvider(p)))
	defer a.Close()

	req, _ := http.NewRequest(http.MethodGet, a.URL, nil)
	req.Header.Set("X-Request-Id", "order-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	fmt.Print(string(out))
	// Output:
	// same trace at B: true
	// request ID at B: order-42
}
