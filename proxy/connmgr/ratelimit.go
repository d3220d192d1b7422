package connmgr

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/hopwatch/hopwatch/proxy/ratelimit"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// Rate limiting runs as Envoy's two filters would in the usual order:
// the local limiter as soon as the route is known (so that it covers
// redirects and direct responses too, as Envoy's filter does), then the
// global one once the cluster is chosen and before the route's header
// changes (which Envoy's router applies after every decoder filter).

// localRateLimit runs the route's local limiter. It returns done when it
// refused the request (the reply is written), and prepare, extended with
// the x-ratelimit headers when they are enabled.
func localRateLimit(w http.ResponseWriter, info *streaminfo.Info, lim *ratelimit.Local, serverName string, prepare func(http.Header)) (_ func(http.Header), done bool) {
	d := lim.Check()
	switch {
	case !d.Checked:
	case d.Refuse:
		info.ResponseFlags.Set(streaminfo.RateLimited)
		info.ResponseCodeDetails = ratelimit.LocalBody
		lim.SetRefusalHeaders(w.Header(), d)
		router.WriteLocalReply(w, lim.Status(), ratelimit.LocalBody, serverName, prepare)
		return prepare, true
	case lim.XRateLimitHeaders():
		return withHeaders(prepare, func(h http.Header) { lim.SetXRateLimitHeaders(h, d) }), false
	}
	return prepare, false
}

// globalRateLimit asks the listener's rate-limit service about the
// descriptors the route's rate_limits build for req, routed to target.
// It returns done when it refused the request (over the limit, or the
// service failed and failure_mode_deny is set), and prepare, extended with
// the headers the service asked for.
func globalRateLimit(ctx context.Context, w http.ResponseWriter, req *http.Request, info *streaminfo.Info, snap *Snapshot, rt *route.Route, target string, client netip.Addr, serverName string, prepare func(http.Header)) (_ func(http.Header), done bool) {
	g := snap.RateLimit
	descs := ratelimit.Descriptors(rt.RateLimits, &ratelimit.Attributes{
		Request: req, RemoteAddress: client, DestinationCluster: target, SourceCluster: g.SourceCluster,
	})
	if len(descs) == 0 {
		return prepare, false
	}
	cs := snap.Stats.Upstream[target].Or(snap.Clusters.Get(target)).Cluster
	d := g.Check(ctx, descs, &cs.RateLimit)
	switch d.Outcome {
	case ratelimit.OverLimit:
		// Envoy charges the refusal to the cluster as a 429 response.
		cs.RecordResponse(http.StatusTooManyRequests, false)
		info.UpstreamCluster = target
		info.ResponseFlags.Set(streaminfo.RateLimited)
		info.ResponseCodeDetails = ratelimit.DetailsRateLimited
		addHeaders(w.Header(), d.ResponseHeaders)
		router.WriteLocalReply(w, d.Status, d.Body, serverName, prepare)
		return prepare, true
	case ratelimit.Canceled:
		info.UpstreamCluster = target
		info.ResponseFlags.Set(streaminfo.DownstreamConnectionTermination)
		return prepare, true
	case ratelimit.FailedDeny:
		info.UpstreamCluster = target
		info.ResponseFlags.Set(streaminfo.RateLimitServiceError)
		info.ResponseCodeDetails = ratelimit.DetailsError
		router.WriteLocalReply(w, d.Status, "", serverName, prepare)
		return prepare, true
	}
	addHeaders(req.Header, d.RequestHeaders)
	if d.ResponseHeaders != nil {
		prepare = withHeaders(prepare, func(h http.Header) { addHeaders(h, d.ResponseHeaders) })
	}
	return prepare, false
}

// withHeaders returns prepare followed by add.
func withHeaders(prepare, add func(http.Header)) func(http.Header) {
	if prepare == nil {
		return add
	}
	return func(h http.Header) {
		add(h)
		prepare(h)
	}
}

// addHeaders appends every value of from to h.
func addHeaders(h, from http.Header) {
	for k, vs := range from {
		h[k] = append(h[k], vs...)
	}
}
