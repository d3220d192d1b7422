package demo

import (
	"context"

	"github.com/hopwatch/hopwatch/tracing"
)

// SetupTracing returns a Provider for service that exports to endpoint, or,
// when endpoint is empty, to the endpoint in OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (read through lookupEnv). With neither,
// tracing is off and it returns a nil Provider, which the demo services
// accept: request IDs still propagate, spans are just not recorded. All
// other settings come from OTEL_* variables.
func SetupTracing(ctx context.Context, service, endpoint string, lookupEnv func(string) (string, bool)) (*tracing.Provider, error) {
	if endpoint == "" {
		v1, _ := lookupEnv(tracing.EnvEndpoint)
		v2, _ := lookupEnv(tracing.EnvTracesEndpoint)
		if v1 == "" && v2 == "" {
			return nil, nil
		}
	}
	return tracing.Setup(ctx, tracing.Config{ServiceName: service, Endpoint: endpoint}, tracing.WithLookupEnv(lookupEnv))
}
