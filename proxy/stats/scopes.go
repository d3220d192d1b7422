package stats

// The typed stats structs below are the catalogue: every field's struct tag
// names the stat (relative to the scope) and gives its help line, and both
// the store's constructors and Catalogue() walk these same types, so the
// names the proxy emits and the names the dashboards and the sink preset
// read cannot drift apart.
//
// Tag syntax:
//
//	stat:"upstream_cx_total" help:"..."        a counter, gauge or histogram
//	hopwatch:"true"                             not an Envoy stat (documented hopwatch addition)
//	scope:"health_check."                       a nested struct under that name prefix
//	codes:"retry." stem:"upstream_rq" parts:"…" a *CodeStats block (parts: codes, classes, completed, time)

// ClusterStats are Envoy's cluster.<name>.* stats.
type ClusterStats struct {
	UpstreamCxTotal                     *Counter   `stat:"upstream_cx_total" help:"Total upstream connections"`
	UpstreamCxActive                    *Gauge     `stat:"upstream_cx_active" help:"Active upstream connections"`
	UpstreamCxHTTP1Total                *Counter   `stat:"upstream_cx_http1_total" help:"Total HTTP/1.1 upstream connections"`
	UpstreamCxHTTP2Total                *Counter   `stat:"upstream_cx_http2_total" help:"Total HTTP/2 upstream connections"`
	UpstreamCxConnectFail               *Counter   `stat:"upstream_cx_connect_fail" help:"Total upstream connection failures"`
	UpstreamCxConnectTimeout            *Counter   `stat:"upstream_cx_connect_timeout" help:"Total upstream connection connect timeouts"`
	UpstreamCxIdleTimeout               *Counter   `stat:"upstream_cx_idle_timeout" help:"Total upstream connection idle timeouts"`
	UpstreamCxOverflow                  *Counter   `stat:"upstream_cx_overflow" help:"Times the cluster's connection circuit breaker overflowed"`
	UpstreamCxConnectMs                 *Histogram `stat:"upstream_cx_connect_ms" help:"Upstream connection establishment milliseconds"`
	UpstreamCxLengthMs                  *Histogram `stat:"upstream_cx_length_ms" help:"Upstream connection length milliseconds"`
	UpstreamCxDestroy                   *Counter   `stat:"upstream_cx_destroy" help:"Total destroyed upstream connections"`
	UpstreamCxDestroyLocal              *Counter   `stat:"upstream_cx_destroy_local" help:"Total upstream connections destroyed locally"`
	UpstreamCxDestroyRemote             *Counter   `stat:"upstream_cx_destroy_remote" help:"Total upstream connections destroyed remotely"`
	UpstreamCxDestroyWithActiveRq       *Counter   `stat:"upstream_cx_destroy_with_active_rq" help:"Total upstream connections destroyed with 1+ active request"`
	UpstreamCxDestroyLocalWithActiveRq  *Counter   `stat:"upstream_cx_destroy_local_with_active_rq" help:"Total upstream connections destroyed locally with 1+ active request"`
	UpstreamCxDestroyRemoteWithActiveRq *Counter   `stat:"upstream_cx_destroy_remote_with_active_rq" help:"Total upstream connections destroyed remotely with 1+ active request"`
	UpstreamCxRxBytesTotal              *Counter   `stat:"upstream_cx_rx_bytes_total" help:"Total received upstream connection bytes"`
	UpstreamCxRxBytesBuffered           *Gauge     `stat:"upstream_cx_rx_bytes_buffered" help:"Received upstream connection bytes currently buffered"`
	UpstreamCxTxBytesTotal              *Counter   `stat:"upstream_cx_tx_bytes_total" help:"Total sent upstream connection bytes"`
	UpstreamCxTxBytesBuffered           *Gauge     `stat:"upstream_cx_tx_bytes_buffered" help:"Sent upstream connection bytes currently buffered"`
	UpstreamCxPoolOverflow              *Counter   `stat:"upstream_cx_pool_overflow" help:"Times the cluster's connection pool circuit breaker overflowed"`
	UpstreamCxProtocolError             *Counter   `stat:"upstream_cx_protocol_error" help:"Total upstream connection protocol errors"`
	UpstreamCxMaxRequests               *Counter   `stat:"upstream_cx_max_requests" help:"Total upstream connections closed due to maximum requests"`
	UpstreamCxNoneHealthy               *Counter   `stat:"upstream_cx_none_healthy" help:"Times no connection was made because no host was healthy"`

	UpstreamRqTotal               *Counter `stat:"upstream_rq_total" help:"Total upstream requests"`
	UpstreamRqActive              *Gauge   `stat:"upstream_rq_active" help:"Active upstream requests"`
	UpstreamRqPendingTotal        *Counter `stat:"upstream_rq_pending_total" help:"Total requests pending a connection pool connection"`
	UpstreamRqPendingActive       *Gauge   `stat:"upstream_rq_pending_active" help:"Active requests pending a connection pool connection"`
	UpstreamRqPendingOverflow     *Counter `stat:"upstream_rq_pending_overflow" help:"Requests that overflowed connection pool or request circuit breaking and were failed"`
	UpstreamRqPendingFailureEject *Counter `stat:"upstream_rq_pending_failure_eject" help:"Requests failed by a connection pool connection failure"`
	UpstreamRqCancelled           *Counter `stat:"upstream_rq_cancelled" help:"Requests cancelled before obtaining a connection pool connection"`
	UpstreamRqMaintenanceMode     *Counter `stat:"upstream_rq_maintenance_mode" help:"Requests answered 503 because of maintenance mode"`
	UpstreamRqTimeout             *Counter `stat:"upstream_rq_timeout" help:"Requests that timed out waiting for a response"`
	UpstreamRqPerTryTimeout       *Counter `stat:"upstream_rq_per_try_timeout" help:"Requests that hit the per try timeout"`
	UpstreamRqRxReset             *Counter `stat:"upstream_rq_rx_reset" help:"Requests reset remotely"`
	UpstreamRqTxReset             *Counter `stat:"upstream_rq_tx_reset" help:"Requests reset locally"`
	UpstreamRqRetry               *Counter `stat:"upstream_rq_retry" help:"Total request retries"`
	UpstreamRqRetrySuccess        *Counter `stat:"upstream_rq_retry_success" help:"Total request retry successes"`
	UpstreamRqRetryOverflow       *Counter `stat:"upstream_rq_retry_overflow" help:"Requests not retried due to circuit breaking or the retry budget"`
	UpstreamRqRetryLimitExceeded  *Counter `stat:"upstream_rq_retry_limit_exceeded" help:"Requests not retried because the maximum retries were reached"`
	RetryOrShadowAbandoned        *Counter `stat:"retry_or_shadow_abandoned" help:"Times shadowing or retry buffering was cancelled due to buffer limits"`

	// UpstreamRqCodeCollapsed is hopwatch's: responses whose status code has
	// no counter of its own (not IANA-registered, or outside 100..599),
	// across the cluster's response, retry, canary and zone scopes.
	UpstreamRqCodeCollapsed *Counter `stat:"upstream_rq_code_collapsed" hopwatch:"true" help:"Responses with an unregistered status code, counted only in their class"`

	// Responses are the final responses sent downstream.
	Responses *CodeStats `codes:"" parts:"codes,classes,completed,time"`
	// Retry counts responses that triggered a retry (not sent downstream).
	Retry *CodeStats `codes:"retry." parts:"codes,classes"`
	// Canary counts responses from endpoints marked canary.
	Canary *CodeStats `codes:"canary." parts:"codes,classes,completed,time"`

	MembershipChange   *Counter `stat:"membership_change" help:"Total cluster membership changes"`
	MembershipHealthy  *Gauge   `stat:"membership_healthy" help:"Current healthy cluster members"`
	MembershipDegraded *Gauge   `stat:"membership_degraded" help:"Current degraded cluster members"`
	MembershipExcluded *Gauge   `stat:"membership_excluded" help:"Current excluded cluster members"`
	MembershipTotal    *Gauge   `stat:"membership_total" help:"Current cluster members"`
	MaxHostWeight      *Gauge   `stat:"max_host_weight" help:"Maximum weight of any host in the cluster"`
	BindErrors         *Counter `stat:"bind_errors" help:"Errors binding the socket to the source address"`

	LbHealthyPanic           *Counter              `stat:"lb_healthy_panic" help:"Requests load balanced in panic mode"`
	LbZoneClusterTooSmall    *Counter              `stat:"lb_zone_cluster_too_small" help:"No zone aware routing because the upstream cluster is too small"`
	LbZoneRoutingAllDirectly *Counter              `stat:"lb_zone_routing_all_directly" help:"Requests sent directly to the same zone"`
	LbZoneRoutingSampled     *Counter              `stat:"lb_zone_routing_sampled" help:"Requests sent to the same zone by sampling"`
	LbZoneRoutingCrossZone   *Counter              `stat:"lb_zone_routing_cross_zone" help:"Zone aware routing that had to send cross zone"`
	LbLocalClusterNotOK      *Counter              `stat:"lb_local_cluster_not_ok" help:"Local host set not set or local cluster in panic mode"`
	LbZoneNoCapacityLeft     *Counter              `stat:"lb_zone_no_capacity_left" help:"Random zone selections due to rounding error"`
	LbRecalculateZoneStructs *Counter              `stat:"lb_recalculate_zone_structures" help:"Times locality aware routing structures were regenerated"`
	LbSubsetsActive          *Gauge                `stat:"lb_subsets_active" help:"Currently available subsets"`
	LbSubsetsSelected        *Counter              `stat:"lb_subsets_selected" help:"Times any subset was selected"`
	LbSubsetsFallback        *Counter              `stat:"lb_subsets_fallback" help:"Times the subset fallback policy was invoked"`
	OriginalDstHostInvalid   *Counter              `stat:"original_dst_host_invalid" help:"Invalid hosts passed to the original destination load balancer"`
	HealthCheck              HealthCheckStats      `scope:"health_check."`
	OutlierDetection         OutlierDetectionStats `scope:"outlier_detection."`
	CircuitBreakers          CircuitBreakerStats   `scope:"circuit_breakers.default."`
	RateLimit                RateLimitStats        `scope:"ratelimit."`
}

// HealthCheckStats are Envoy's cluster.<name>.health_check.* stats.
type HealthCheckStats struct {
	Attempt        *Counter `stat:"attempt" help:"Health checks performed"`
	Success        *Counter `stat:"success" help:"Successful health checks"`
	Failure        *Counter `stat:"failure" help:"Failed health checks, including network failures"`
	PassiveFailure *Counter `stat:"passive_failure" help:"Health check failures due to passive events"`
	NetworkFailure *Counter `stat:"network_failure" help:"Health check failures due to network errors"`
	VerifyCluster  *Counter `stat:"verify_cluster" help:"Health checks that attempted cluster name verification"`
	Healthy        *Gauge   `stat:"healthy" help:"Healthy members"`
	Degraded       *Gauge   `stat:"degraded" help:"Degraded members"`
}

// OutlierDetectionStats are Envoy's cluster.<name>.outlier_detection.* stats.
type OutlierDetectionStats struct {
	EjectionsEnforcedTotal                  *Counter `stat:"ejections_enforced_total" help:"Enforced ejections of any outlier type"`
	EjectionsActive                         *Gauge   `stat:"ejections_active" help:"Currently ejected hosts"`
	EjectionsOverflow                       *Counter `stat:"ejections_overflow" help:"Ejections aborted due to the max ejection percentage"`
	EjectionsEnforcedConsecutive5xx         *Counter `stat:"ejections_enforced_consecutive_5xx" help:"Enforced consecutive 5xx ejections"`
	EjectionsDetectedConsecutive5xx         *Counter `stat:"ejections_detected_consecutive_5xx" help:"Detected consecutive 5xx ejections (even if unenforced)"`
	EjectionsEnforcedSuccessRate            *Counter `stat:"ejections_enforced_success_rate" help:"Enforced success rate ejections"`
	EjectionsDetectedSuccessRate            *Counter `stat:"ejections_detected_success_rate" help:"Detected success rate ejections (even if unenforced)"`
	EjectionsEnforcedConsecutiveGatewayFail *Counter `stat:"ejections_enforced_consecutive_gateway_failure" help:"Enforced consecutive gateway failure ejections"`
	EjectionsDetectedConsecutiveGatewayFail *Counter `stat:"ejections_detected_consecutive_gateway_failure" help:"Detected consecutive gateway failure ejections (even if unenforced)"`
	EjectionsEnforcedConsecutiveLocalOrigin *Counter `stat:"ejections_enforced_consecutive_local_origin_failure" help:"Enforced consecutive local origin failure ejections"`
	EjectionsDetectedConsecutiveLocalOrigin *Counter `stat:"ejections_detected_consecutive_local_origin_failure" help:"Detected consecutive local origin failure ejections (even if unenforced)"`
	EjectionsEnforcedFailurePercentage      *Counter `stat:"ejections_enforced_failure_percentage" help:"Enforced failure percentage ejections"`
	EjectionsDetectedFailurePercentage      *Counter `stat:"ejections_detected_failure_percentage" help:"Detected failure percentage ejections (even if unenforced)"`
	EjectionsTotal                          *Counter `stat:"ejections_total" help:"Deprecated: ejections of any outlier type (even if unenforced)"`
	EjectionsConsecutive5xx                 *Counter `stat:"ejections_consecutive_5xx" help:"Deprecated: consecutive 5xx ejections (even if unenforced)"`
}

// CircuitBreakerStats are Envoy's cluster.<name>.circuit_breakers.default.*
// gauges: 1 while that breaker is at capacity, else 0.
type CircuitBreakerStats struct {
	CxOpen        *Gauge `stat:"cx_open" help:"Whether the connection circuit breaker is at capacity"`
	CxPoolOpen    *Gauge `stat:"cx_pool_open" help:"Whether the connection pool circuit breaker is at capacity"`
	RqPendingOpen *Gauge `stat:"rq_pending_open" help:"Whether the pending requests circuit breaker is at capacity"`
	RqOpen        *Gauge `stat:"rq_open" help:"Whether the requests circuit breaker is at capacity"`
	RqRetryOpen   *Gauge `stat:"rq_retry_open" help:"Whether the retry circuit breaker is at capacity"`
}

// RecordResponse counts a final response from the cluster (sent
// downstream): upstream_rq_completed, upstream_rq_<N>xx, upstream_rq_<code>,
// and the canary.* equivalents when the endpoint is a canary.
func (c *ClusterStats) RecordResponse(code int, canary bool) {
	c.Responses.Record(code)
	if canary {
		c.Canary.Record(code)
	}
}

// RecordRetriedResponse counts a response that triggered a retry and was not
// sent downstream (retry.upstream_rq_<code>, retry.upstream_rq_<N>xx).
func (c *ClusterStats) RecordRetriedResponse(code int) { c.Retry.Record(code) }

// RecordResponseTime records upstream_rq_time (and canary.upstream_rq_time);
// id is the trace ID of a sampled request, else zero.
func (c *ClusterStats) RecordResponseTime(ms uint64, canary bool, id TraceID) {
	c.Responses.RecordTime(ms, id)
	if canary {
		c.Canary.RecordTime(ms, id)
	}
}

// ZoneStats are Envoy's cluster.<name>.zone.<from>.<to>.* stats, charged
// when the proxy and the upstream endpoint both have a zone. Envoy has no
// tag extractor for zones, so the zones stay in the tag-extracted and
// Prometheus names (envoy_cluster_zone_<from>_<to>_upstream_rq).
type ZoneStats struct {
	Responses *CodeStats `codes:"" parts:"codes,classes,completed,time"`
}

// RecordResponse counts a response in the zone pair's code counters.
func (z *ZoneStats) RecordResponse(code int) { z.Responses.Record(code) }

// RecordResponseTime records the zone pair's upstream_rq_time; id is the
// trace ID of a sampled request, else zero.
func (z *ZoneStats) RecordResponseTime(ms uint64, id TraceID) { z.Responses.RecordTime(ms, id) }

// HTTPConnManagerStats are Envoy's http.<stat_prefix>.* stats.
type HTTPConnManagerStats struct {
	DownstreamCxTotal                 *Counter   `stat:"downstream_cx_total" help:"Total downstream connections"`
	DownstreamCxSslTotal              *Counter   `stat:"downstream_cx_ssl_total" help:"Total downstream TLS connections"`
	DownstreamCxHTTP1Total            *Counter   `stat:"downstream_cx_http1_total" help:"Total downstream HTTP/1.1 connections"`
	DownstreamCxHTTP2Total            *Counter   `stat:"downstream_cx_http2_total" help:"Total downstream HTTP/2 connections"`
	DownstreamCxUpgradesTotal         *Counter   `stat:"downstream_cx_upgrades_total" help:"Total successfully upgraded downstream connections"`
	DownstreamCxActive                *Gauge     `stat:"downstream_cx_active" help:"Active downstream connections"`
	DownstreamCxSslActive             *Gauge     `stat:"downstream_cx_ssl_active" help:"Active downstream TLS connections"`
	DownstreamCxHTTP1Active           *Gauge     `stat:"downstream_cx_http1_active" help:"Active downstream HTTP/1.1 connections"`
	DownstreamCxHTTP2Active           *Gauge     `stat:"downstream_cx_http2_active" help:"Active downstream HTTP/2 connections"`
	DownstreamCxUpgradesActive        *Gauge     `stat:"downstream_cx_upgrades_active" help:"Active upgraded downstream connections"`
	DownstreamCxDestroy               *Counter   `stat:"downstream_cx_destroy" help:"Total downstream connections destroyed"`
	DownstreamCxDestroyRemote         *Counter   `stat:"downstream_cx_destroy_remote" help:"Downstream connections destroyed by the remote end"`
	DownstreamCxDestroyLocal          *Counter   `stat:"downstream_cx_destroy_local" help:"Downstream connections destroyed locally"`
	DownstreamCxDestroyActiveRq       *Counter   `stat:"downstream_cx_destroy_active_rq" help:"Downstream connections destroyed with 1+ active request"`
	DownstreamCxDestroyLocalActiveRq  *Counter   `stat:"downstream_cx_destroy_local_active_rq" help:"Downstream connections destroyed locally with 1+ active request"`
	DownstreamCxDestroyRemoteActiveRq *Counter   `stat:"downstream_cx_destroy_remote_active_rq" help:"Downstream connections destroyed remotely with 1+ active request"`
	DownstreamCxRxBytesTotal          *Counter   `stat:"downstream_cx_rx_bytes_total" help:"Total bytes received from downstream"`
	DownstreamCxRxBytesBuffered       *Gauge     `stat:"downstream_cx_rx_bytes_buffered" help:"Downstream bytes received and currently buffered"`
	DownstreamCxTxBytesTotal          *Counter   `stat:"downstream_cx_tx_bytes_total" help:"Total bytes sent downstream"`
	DownstreamCxTxBytesBuffered       *Gauge     `stat:"downstream_cx_tx_bytes_buffered" help:"Downstream bytes sent and currently buffered"`
	DownstreamCxLengthMs              *Histogram `stat:"downstream_cx_length_ms" help:"Downstream connection length milliseconds"`
	DownstreamCxIdleTimeout           *Counter   `stat:"downstream_cx_idle_timeout" help:"Downstream connections closed by the idle timeout"`
	DownstreamCxDrainClose            *Counter   `stat:"downstream_cx_drain_close" help:"Downstream connections closed due to draining"`
	DownstreamCxProtocolError         *Counter   `stat:"downstream_cx_protocol_error" help:"Downstream connection protocol errors"`
	DownstreamCxMaxDurationReached    *Counter   `stat:"downstream_cx_max_duration_reached" help:"Downstream connections closed due to max connection duration"`

	DownstreamRqTotal                    *Counter `stat:"downstream_rq_total" help:"Total downstream requests"`
	DownstreamRqHTTP1Total               *Counter `stat:"downstream_rq_http1_total" help:"Total downstream HTTP/1.1 requests"`
	DownstreamRqHTTP2Total               *Counter `stat:"downstream_rq_http2_total" help:"Total downstream HTTP/2 requests"`
	DownstreamRqActive                   *Gauge   `stat:"downstream_rq_active" help:"Active downstream requests"`
	DownstreamRqResponseBeforeRqComplete *Counter `stat:"downstream_rq_response_before_rq_complete" help:"Responses sent before the request was complete"`
	DownstreamRqRxReset                  *Counter `stat:"downstream_rq_rx_reset" help:"Downstream requests reset by the remote end"`
	DownstreamRqTxReset                  *Counter `stat:"downstream_rq_tx_reset" help:"Downstream requests reset locally"`
	DownstreamRqNonRelativePath          *Counter `stat:"downstream_rq_non_relative_path" help:"Requests with a non-relative HTTP path"`
	DownstreamRqTooLarge                 *Counter `stat:"downstream_rq_too_large" help:"Requests answered 413 because the body was too large to buffer"`
	DownstreamRqIdleTimeout              *Counter `stat:"downstream_rq_idle_timeout" help:"Requests closed by the stream idle timeout"`
	DownstreamRqTimeout                  *Counter `stat:"downstream_rq_timeout" help:"Requests closed by the request timeout"`
	DownstreamRqHeaderTimeout            *Counter `stat:"downstream_rq_header_timeout" help:"Requests closed because headers did not arrive in time"`
	RsTooLarge                           *Counter `stat:"rs_too_large" help:"Responses reset because the body was too large to buffer"`
	NoRoute                              *Counter `stat:"no_route" help:"Requests with no matching route (router)"`
	NoCluster                            *Counter `stat:"no_cluster" help:"Requests whose target cluster does not exist (router)"`
	RqRedirect                           *Counter `stat:"rq_redirect" help:"Requests answered with a redirect (router)"`
	RqDirectResponse                     *Counter `stat:"rq_direct_response" help:"Requests answered with a direct response (router)"`

	// Path normalisation (normalize_path, path_with_escaped_slashes_action).
	DownstreamRqFailedPathNormalization      *Counter `stat:"downstream_rq_failed_path_normalization" help:"Requests refused with 400 because their path could not be normalised"`
	DownstreamRqRedirectedWithNormalizedPath *Counter `stat:"downstream_rq_redirected_with_normalized_path" help:"Requests redirected to their normalised path"`

	// Responses are downstream_rq_completed, downstream_rq_<N>xx and
	// downstream_rq_time (Envoy has no per-code downstream counters).
	Responses *CodeStats `codes:"" stem:"downstream_rq" parts:"classes,completed,time"`

	Tracing TracingStats `scope:"tracing."`
	Fault   FaultStats   `scope:"fault."`
}

// RecordResponse counts a response sent downstream.
func (h *HTTPConnManagerStats) RecordResponse(code int) { h.Responses.Record(code) }

// RecordDestroy counts how a downstream connection ended: closed by the
// client (remote) or by the proxy, and whether a request was in progress.
// downstream_cx_destroy itself is counted when the socket closes.
func (h *HTTPConnManagerStats) RecordDestroy(remote, activeRequest bool) {
	switch {
	case remote && activeRequest:
		h.DownstreamCxDestroyRemote.Inc()
		h.DownstreamCxDestroyActiveRq.Inc()
		h.DownstreamCxDestroyRemoteActiveRq.Inc()
	case remote:
		h.DownstreamCxDestroyRemote.Inc()
	case activeRequest:
		h.DownstreamCxDestroyLocal.Inc()
		h.DownstreamCxDestroyActiveRq.Inc()
		h.DownstreamCxDestroyLocalActiveRq.Inc()
	default:
		h.DownstreamCxDestroyLocal.Inc()
	}
}

// TracingStats are Envoy's http.<stat_prefix>.tracing.* counters: why a
// request was or was not traced.
type TracingStats struct {
	RandomSampling *Counter `stat:"random_sampling" help:"Requests traced by random sampling"`
	ServiceForced  *Counter `stat:"service_forced" help:"Requests traced because x-envoy-force-trace was set"`
	ClientEnabled  *Counter `stat:"client_enabled" help:"Requests traced because the client asked for it"`
	NotTraceable   *Counter `stat:"not_traceable" help:"Requests not traced because the request ID is not traceable"`
	HealthCheck    *Counter `stat:"health_check" help:"Health check requests, never traced"`
}

// FaultStats are Envoy's HTTP fault filter stats,
// http.<stat_prefix>.fault.*. Envoy's per-downstream-cluster
// fault.<downstream_cluster>.{delays,aborts}_injected and
// response_rl_injected (response rate limiting) are not implemented.
type FaultStats struct {
	DelaysInjected *Counter `stat:"delays_injected" help:"Requests delayed by the fault filter"`
	AbortsInjected *Counter `stat:"aborts_injected" help:"Requests aborted by the fault filter"`
	FaultsOverflow *Counter `stat:"faults_overflow" help:"Faults not injected because max_active_faults was reached"`
	ActiveFaults   *Gauge   `stat:"active_faults" help:"Faults active at the current time"`
}

// TracerStats are Envoy's tracing.opentelemetry.* counters: what became of
// the sampled spans the proxy ended. They exist only while tracing is
// configured.
type TracerStats struct {
	SpansSent    *Counter `stat:"spans_sent" help:"Spans the OTLP collector accepted"`
	SpansDropped *Counter `stat:"spans_dropped" help:"Spans that will never reach the collector: the export queue was full, or the export failed or timed out"`
}

// HTTP2CodecStats are Envoy's downstream HTTP/2 codec stats, rooted at
// http2.* (no tags: Envoy keeps one set for every downstream connection
// manager; Prometheus names envoy_http2_<name>). Envoy creates them with
// its first HTTP/2 connection; hopwatch creates them, at 0, as soon as a
// listener has HTTP/2 enabled.
//
// hopwatch serves HTTP/2 with golang.org/x/net/http2, whose Server reports
// protocol errors through CountError and does not expose frame counts or
// its flood limits. What each counter counts here:
//
//   - rx_reset, tx_reset: RST_STREAM frames received from and sent to
//     clients, counted from the frames on the connection.
//   - rx_messaging_error: requests x/net refused as malformed HTTP
//     messages (RFC 9113 §8: bad pseudo-headers, connection-specific or
//     invalid header fields, bad trailers, a body longer than its
//     content-length), each answered with RST_STREAM PROTOCOL_ERROR.
//   - stream_refused_errors: streams x/net refused with REFUSED_STREAM
//     (opened past SETTINGS_MAX_CONCURRENT_STREAMS).
//   - trailers: requests that ended with a trailer HEADERS frame.
//   - header_overflow, inbound_empty_frames_flood,
//     inbound_priority_frames_flood, inbound_window_update_frames_flood,
//     outbound_flood, outbound_control_flood: always 0. x/net answers a
//     header list over max_request_headers_kb with 431 instead of a reset,
//     has no limits on empty, PRIORITY or WINDOW_UPDATE frames, and closes
//     a connection whose queued control frames pass its limit without
//     reporting it. They are registered so that Envoy dashboards and
//     alerts find the series.
type HTTP2CodecStats struct {
	HeaderOverflow                 *Counter `stat:"header_overflow" help:"Connections reset because the headers were larger than max_request_headers_kb (x/net answers 431 instead: always 0)"`
	InboundEmptyFramesFlood        *Counter `stat:"inbound_empty_frames_flood" help:"Connections closed for too many consecutive empty inbound frames (no such limit in x/net: always 0)"`
	InboundPriorityFramesFlood     *Counter `stat:"inbound_priority_frames_flood" help:"Connections closed for too many inbound PRIORITY frames (no such limit in x/net: always 0)"`
	InboundWindowUpdateFramesFlood *Counter `stat:"inbound_window_update_frames_flood" help:"Connections closed for too many inbound WINDOW_UPDATE frames (no such limit in x/net: always 0)"`
	OutboundControlFlood           *Counter `stat:"outbound_control_flood" help:"Connections closed for too many queued outbound PING, SETTINGS and RST_STREAM frames (x/net does not report it: always 0)"`
	OutboundFlood                  *Counter `stat:"outbound_flood" help:"Connections closed for too many queued outbound frames (x/net does not report it: always 0)"`
	RxMessagingError               *Counter `stat:"rx_messaging_error" help:"Received requests that violated RFC 9113 section 8 and were reset"`
	RxReset                        *Counter `stat:"rx_reset" help:"RST_STREAM frames received from downstream"`
	StreamRefusedErrors            *Counter `stat:"stream_refused_errors" help:"Streams refused with REFUSED_STREAM"`
	Trailers                       *Counter `stat:"trailers" help:"Requests from downstream that carried trailers"`
	TxReset                        *Counter `stat:"tx_reset" help:"RST_STREAM frames sent downstream"`
}

// ListenerStats are Envoy's listener.<address>.* stats.
type ListenerStats struct {
	DownstreamCxTotal      *Counter   `stat:"downstream_cx_total" help:"Total connections accepted"`
	DownstreamCxDestroy    *Counter   `stat:"downstream_cx_destroy" help:"Total connections destroyed"`
	DownstreamCxActive     *Gauge     `stat:"downstream_cx_active" help:"Active connections"`
	DownstreamCxLengthMs   *Histogram `stat:"downstream_cx_length_ms" help:"Connection length milliseconds"`
	DownstreamCxOverflow   *Counter   `stat:"downstream_cx_overflow" help:"Connections rejected by the listener's connection limit"`
	DownstreamPreCxTimeout *Counter   `stat:"downstream_pre_cx_timeout" help:"Sockets that timed out during listener filter processing"`
	NoFilterChainMatch     *Counter   `stat:"no_filter_chain_match" help:"Connections that matched no filter chain"`
}

// ListenerHTTPStats are Envoy's per-listener connection manager stats,
// listener.<address>.http.<stat_prefix>.downstream_rq_{completed,<N>xx}.
type ListenerHTTPStats struct {
	Responses *CodeStats `codes:"" stem:"downstream_rq" parts:"classes,completed"`
}

// RecordResponse counts a response sent downstream on this listener.
func (l *ListenerHTTPStats) RecordResponse(code int) { l.Responses.Record(code) }

// ListenerCertStats are Envoy's per-certificate stats of a TLS listener,
// listener.<address>.ssl.certificate.<cert_name>.*. Envoy names a
// certificate loaded from files by its certificate chain's path.
type ListenerCertStats struct {
	ExpirationUnixTimeSeconds *Gauge `stat:"expiration_unix_time_seconds" help:"Expiry of the certificate (its NotAfter), in seconds since the Unix epoch"`
}

// RouteStats are Envoy's opt-in per-route stats,
// vhost.<virtual_host>.route.<stat_prefix>.*.
type RouteStats struct {
	UpstreamRqTotal              *Counter `stat:"upstream_rq_total" help:"Requests routed by this route"`
	UpstreamRqTimeout            *Counter `stat:"upstream_rq_timeout" help:"Requests on this route that timed out"`
	UpstreamRqRetry              *Counter `stat:"upstream_rq_retry" help:"Retries on this route"`
	UpstreamRqRetrySuccess       *Counter `stat:"upstream_rq_retry_success" help:"Successful retries on this route"`
	UpstreamRqRetryOverflow      *Counter `stat:"upstream_rq_retry_overflow" help:"Requests on this route not retried due to circuit breaking"`
	UpstreamRqRetryLimitExceeded *Counter `stat:"upstream_rq_retry_limit_exceeded" help:"Requests on this route not retried because the maximum retries were reached"`
	// UpstreamRqCodeCollapsed is hopwatch's, as for clusters.
	UpstreamRqCodeCollapsed *Counter   `stat:"upstream_rq_code_collapsed" hopwatch:"true" help:"Responses on this route with an unregistered status code"`
	Responses               *CodeStats `codes:"" parts:"codes,classes,time"`
}

// RecordResponse counts a final response on this route.
func (r *RouteStats) RecordResponse(code int) { r.Responses.Record(code) }

// RecordResponseTime records the route's upstream_rq_time; id is the trace
// ID of a sampled request, else zero.
func (r *RouteStats) RecordResponseTime(ms uint64, id TraceID) { r.Responses.RecordTime(ms, id) }

// ServerStats are Envoy's server.* gauges. The flusher refreshes uptime,
// concurrency and memory before every flush (and the admin handlers before
// every response), never on the request path.
type ServerStats struct {
	Uptime                     *Gauge `stat:"uptime" help:"Current server uptime in seconds"`
	Live                       *Gauge `stat:"live" help:"1 if the server is not draining, else 0"`
	Concurrency                *Gauge `stat:"concurrency" help:"Number of worker threads (GOMAXPROCS)"`
	MemoryAllocated            *Gauge `stat:"memory_allocated" help:"Bytes of heap currently allocated"`
	MemoryHeapSize             *Gauge `stat:"memory_heap_size" help:"Bytes of heap reserved from the OS"`
	Version                    *Gauge `stat:"version" help:"Integer build version (first 6 hex digits of the VCS revision)"`
	DaysUntilFirstCertExpiring *Gauge `stat:"days_until_first_cert_expiring" help:"Days until the next certificate being managed will expire"`
}

// selfStats are the store's and the flusher's own stats (hopwatch's).
type selfStats struct {
	Overflow            *Counter `stat:"stats.overflow" hopwatch:"true" help:"Stats not created because the store's max_stats cap was reached"`
	TimerSamplesDropped *Counter `stat:"statsd.timer_samples_dropped" hopwatch:"true" help:"Histogram samples dropped because the timer queue was full"`
	SendErrors          *Counter `stat:"statsd.send_errors" hopwatch:"true" help:"Failed StatsD datagram or TCP writes"`
	LinesDropped        *Counter `stat:"statsd.lines_dropped" hopwatch:"true" help:"StatsD lines lost to send errors or longer than max_bytes_per_datagram"`
	LinesSent           *Counter `stat:"statsd.lines_sent" hopwatch:"true" help:"StatsD lines written to the sinks"`
}
