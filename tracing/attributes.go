package tracing

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Span attribute keys. The OpenTelemetry semantic-convention keys come from
// the semconv package (the version the SDK itself uses); the others are the
// tags Envoy puts on its spans, spelled as Envoy spells them, so that Envoy
// users find their usual tags in Jaeger.
const (
	// AttrRequestID carries x-request-id. RequestIDSampler reads it at span
	// start to make the sampling decision every hop agrees on.
	AttrRequestID = attribute.Key("guid:x-request-id")
	// AttrUpstreamCluster is the cluster a client span was sent to.
	AttrUpstreamCluster = attribute.Key("upstream_cluster")
	// AttrResponseFlags holds Envoy's response flags ("UF,URX", or "-").
	AttrResponseFlags = attribute.Key("response_flags")
	// AttrNodeID is the proxy's node ID.
	AttrNodeID = attribute.Key("node_id")
	// AttrZone is the proxy's zone.
	AttrZone = attribute.Key("zone")
	// AttrComponent is "proxy" on spans a proxy makes, as in Envoy.
	AttrComponent = attribute.Key("component")

	AttrHTTPRequestMethod      = semconv.HTTPRequestMethodKey
	AttrURLPath                = semconv.URLPathKey
	AttrHTTPResponseStatusCode = semconv.HTTPResponseStatusCodeKey
	AttrServerAddress          = semconv.ServerAddressKey
	AttrNetworkPeerAddress     = semconv.NetworkPeerAddressKey
	AttrUserAgentOriginal      = semconv.UserAgentOriginalKey
)

// ComponentProxy is the value of AttrComponent on proxy spans.
const ComponentProxy = "proxy"
