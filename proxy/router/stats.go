package router

import (
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/retry"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// The router's stats follow Envoy's: every upstream attempt counts in
// upstream_rq_total; a response that is retried counts only under
// retry.upstream_rq_<code> (Envoy charges it with the "retry" prefix); the
// final response, or the 503/504 the proxy answers for a failed attempt,
// counts under upstream_rq_<code>, canary.* for canary hosts and
// zone.<from>.<to>.* when both zones are known. fr.Stats is set (Forward
// and the shadow give a default); with stats off it holds a null store's.

func (fr *Request) clusterStats() *stats.ClusterStats { return fr.Stats.Cluster }

func (fr *Request) beginAttempt() {
	cs := fr.clusterStats()
	cs.UpstreamRqTotal.Inc()
	cs.UpstreamRqActive.Inc()
	if rs := fr.RouteStats; rs != nil {
		rs.UpstreamRqTotal.Inc()
	}
}

func (fr *Request) endAttempt() {
	cs := fr.clusterStats()
	cs.UpstreamRqActive.Dec()
}

// retried counts a retry; code is the response that caused it, 0 for a
// failure without a response.
func (fr *Request) retried(code int) {
	cs := fr.clusterStats()
	cs.UpstreamRqRetry.Inc()
	if code != 0 {
		cs.RecordRetriedResponse(code)
	}
	if rs := fr.RouteStats; rs != nil {
		rs.UpstreamRqRetry.Inc()
	}
}

func (fr *Request) retrySucceeded() {
	fr.clusterStats().UpstreamRqRetrySuccess.Inc()
	if rs := fr.RouteStats; rs != nil {
		rs.UpstreamRqRetrySuccess.Inc()
	}
}

func (fr *Request) retryLimitExceeded() {
	fr.clusterStats().UpstreamRqRetryLimitExceeded.Inc()
	if rs := fr.RouteStats; rs != nil {
		rs.UpstreamRqRetryLimitExceeded.Inc()
	}
}

// recordResponse counts the final upstream response of a request.
func (fr *Request) recordResponse(host *cluster.Host, code int, serviceTime time.Duration) {
	ms := uint64(max(serviceTime.Milliseconds(), 0))
	cs := fr.clusterStats()
	canary := host.Canary()
	cs.RecordResponse(code, canary)
	cs.RecordResponseTime(ms, canary, fr.TraceID)
	if zs := fr.Stats.Zones[host.Zone()]; zs != nil {
		zs.RecordResponse(code)
		zs.RecordResponseTime(ms, fr.TraceID)
	}
	if rs := fr.RouteStats; rs != nil {
		rs.RecordResponse(code)
		rs.RecordResponseTime(ms, fr.TraceID)
	}
}

// recordLocalReply counts the status the proxy answered for a failed
// attempt on host, as Envoy charges upstream aborts to the cluster.
func (fr *Request) recordLocalReply(host *cluster.Host, code int) {
	if code == 0 {
		return
	}
	fr.clusterStats().RecordResponse(code, host.Canary())
	if zs := fr.Stats.Zones[host.Zone()]; zs != nil {
		zs.RecordResponse(code)
	}
	if rs := fr.RouteStats; rs != nil {
		rs.RecordResponse(code)
	}
}

// recordFailure counts why an attempt ended without a response.
func (fr *Request) recordFailure(cause failureCause, f retry.Failure) {
	cs := fr.clusterStats()
	switch {
	case cause == causeRouteTimeout:
		cs.UpstreamRqTimeout.Inc()
		if rs := fr.RouteStats; rs != nil {
			rs.UpstreamRqTimeout.Inc()
		}
	case cause == causePerTryTimeout:
		cs.UpstreamRqPerTryTimeout.Inc()
	case cause == causeDownstreamGone || cause == causeIdleTimeout || cause == causeClientBody:
		cs.UpstreamRqTxReset.Inc()
	case f == retry.Reset || f == retry.RefusedStream:
		cs.UpstreamRqRxReset.Inc()
	}
}
