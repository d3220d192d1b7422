// Package streaminfo holds what the proxy learns about one request while it
// handles it: timings, byte counts, the chosen upstream and Envoy's response
// flags. The access log, stats and tracing all read the same Info, so the
// three views of a request agree.
package streaminfo

import (
	"net/http"
	"strings"
	"time"
)

// Flag is one of Envoy's response flags, which explain why a response was
// produced by the proxy or how the upstream failed.
type Flag uint32

// Envoy's response flags, in the order Envoy prints them.
const (
	// FailedLocalHealthCheck (LH): the upstream failed a local health check.
	FailedLocalHealthCheck Flag = 1 << iota
	// NoHealthyUpstream (UH): no healthy upstream host in the cluster.
	NoHealthyUpstream
	// UpstreamRequestTimeout (UT): the upstream request timed out.
	UpstreamRequestTimeout
	// LocalReset (LR): the connection was reset locally.
	LocalReset
	// UpstreamRemoteReset (UR): the upstream reset the connection.
	UpstreamRemoteReset
	// UpstreamConnectionFailure (UF): connecting to the upstream failed.
	UpstreamConnectionFailure
	// UpstreamConnectionTermination (UC): the upstream connection closed mid-response.
	UpstreamConnectionTermination
	// UpstreamOverflow (UO): a circuit breaker refused the request.
	UpstreamOverflow
	// NoRouteFound (NR): no virtual host or route matched.
	NoRouteFound
	// DelayInjected (DI): the fault filter delayed the request.
	DelayInjected
	// FaultInjected (FI): the fault filter aborted the request.
	FaultInjected
	// RateLimited (RL): a rate limiter refused the request.
	RateLimited
	// RateLimitServiceError (RLSE): the rate-limit service failed and
	// failure_mode_deny refused the request.
	RateLimitServiceError
	// DownstreamConnectionTermination (DC): the client went away.
	DownstreamConnectionTermination
	// UpstreamRetryLimitExceeded (URX): retries were exhausted.
	UpstreamRetryLimitExceeded
	// StreamIdleTimeout (SI): the stream idle timeout fired.
	StreamIdleTimeout
	// NoClusterFound (NC): the route named a cluster that does not exist.
	NoClusterFound
	// DownstreamProtocolError (DPE): the request was malformed.
	DownstreamProtocolError
	// UpstreamMaxStreamDurationReached (UMSDR): the upstream stream hit its limit.
	UpstreamMaxStreamDurationReached
	// OverloadManager (OM): the proxy shed load.
	OverloadManager
	// UpstreamProtocolError (UPE): the upstream sent a malformed response.
	UpstreamProtocolError
)

var flagNames = [...]struct {
	flag Flag
	code string
}{
	{FailedLocalHealthCheck, "LH"},
	{NoHealthyUpstream, "UH"},
	{UpstreamRequestTimeout, "UT"},
	{LocalReset, "LR"},
	{UpstreamRemoteReset, "UR"},
	{UpstreamConnectionFailure, "UF"},
	{UpstreamConnectionTermination, "UC"},
	{UpstreamOverflow, "UO"},
	{NoRouteFound, "NR"},
	{DelayInjected, "DI"},
	{FaultInjected, "FI"},
	{RateLimited, "RL"},
	{RateLimitServiceError, "RLSE"},
	{DownstreamConnectionTermination, "DC"},
	{UpstreamRetryLimitExceeded, "URX"},
	{StreamIdleTimeout, "SI"},
	{NoClusterFound, "NC"},
	{DownstreamProtocolError, "DPE"},
	{UpstreamMaxStreamDurationReached, "UMSDR"},
	{OverloadManager, "OM"},
	{UpstreamProtocolError, "UPE"},
}

// Flags is a set of response flags.
type Flags uint32

// Set adds f to the set.
func (fs *Flags) Set(f Flag) { *fs |= Flags(f) }

// Has reports whether f is in the set.
func (fs Flags) Has(f Flag) bool { return fs&Flags(f) != 0 }

// String renders the set as Envoy does: short codes joined by commas, or "-"
// when the set is empty.
func (fs Flags) String() string {
	if fs == 0 {
		return "-"
	}
	var b strings.Builder
	for _, n := range flagNames {
		if fs.Has(n.flag) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n.code)
		}
	}
	return b.String()
}

// Info describes one downstream request from arrival to the last byte sent.
// The connection manager owns it; it is not safe for concurrent writes.
type Info struct {
	// StartTime is when the request headers were received.
	StartTime time.Time
	// Duration is from StartTime to the last byte sent downstream.
	Duration time.Duration
	// UpstreamServiceTime is from the first upstream byte sent to the
	// upstream response headers, for the final attempt (x-envoy-upstream-service-time).
	UpstreamServiceTime time.Duration
	// HasUpstreamServiceTime is true when an upstream answered.
	HasUpstreamServiceTime bool

	Method    string
	Path      string // original path with query, as received
	Protocol  string // "HTTP/1.1", "HTTP/2"
	Authority string
	UserAgent string
	// XForwardedFor is the x-forwarded-for value sent upstream.
	XForwardedFor string
	RequestID     string
	// DownstreamRemoteAddress is the peer address of the client connection.
	DownstreamRemoteAddress string

	// ResponseCode is the status sent downstream; 0 if none was sent.
	ResponseCode int
	// ResponseFlags explain proxy-generated or failed responses.
	ResponseFlags Flags
	// ResponseCodeDetails is Envoy's short reason, such as "via_upstream".
	ResponseCodeDetails string
	// DownstreamCodecError: the client broke the protocol's framing in
	// the middle of its request (a malformed or truncated body), so its
	// connection cannot go on; counted in downstream_cx_protocol_error.
	DownstreamCodecError bool

	BytesReceived int64
	BytesSent     int64

	// RouteName is the matched route's name, if any.
	RouteName string
	// VirtualHost is the matched virtual host's name, if any.
	VirtualHost string
	// UpstreamCluster is the cluster the request was routed to.
	UpstreamCluster string
	// UpstreamHost is the address of the last upstream host tried.
	UpstreamHost string
	// Attempts counts upstream attempts, 1 + retries.
	Attempts int

	// RequestHeaders and ResponseHeaders are the headers as sent upstream
	// and downstream, for %REQ(...)% and %RESP(...)% access-log operators.
	// They are references owned by the request; read them, never keep them.
	RequestHeaders  http.Header
	ResponseHeaders http.Header

	// TraceID and SpanID tie the log line to the request's server span;
	// empty when tracing is off or the request was not sampled.
	TraceID string
	SpanID  string
}
