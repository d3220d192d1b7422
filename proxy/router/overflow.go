package router

// Circuit breaking in the router, as Envoy's router filter does it: each
// upstream attempt holds a request slot of its cluster's breaker
// (max_requests) from before it is sent until it ends, and each retry a
// retry slot (max_retries or the retry budget) from when it is scheduled
// until its response or failure. The connection and pending-request
// breakers live in the cluster's dialer, which fails a request with
// cluster.ErrOverflow when too many wait for a connection. Either refusal
// is answered with replyOverflow: 503 with flag UO and x-envoy-overloaded,
// Envoy's local reply for an overflow reset (the cluster's breaker has
// counted upstream_rq_pending_overflow).

// mayRetry takes a retry slot for a retry the policy allows (retriesLeft)
// and reports whether the retry may go ahead; held records the slot,
// which the caller returns when the retried attempt ends. overflow means
// the retry circuit breaker refused it: the response at hand goes to the
// client with flag UO, and upstream_rq_retry_overflow counts it (the
// cluster's in the breaker, the route's here).
func (fr *Request) mayRetry(retriesLeft bool, held *bool) (ok, overflow bool) {
	if !retriesLeft {
		return false, false
	}
	if !fr.Cluster.Breaker().AcquireRetry() {
		if rs := fr.RouteStats; rs != nil {
			rs.UpstreamRqRetryOverflow.Inc()
		}
		return false, true
	}
	*held = true
	return true, false
}

// releaseRetry returns the retry slot held for the attempt that just ended.
func (fr *Request) releaseRetry(held *bool) {
	if *held {
		*held = false
		fr.Cluster.Breaker().ReleaseRetry()
	}
}
