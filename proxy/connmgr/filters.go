package connmgr

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/headers"
	"github.com/hopwatch/hopwatch/proxy/requestid"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// The connection manager decodes a request through a chain of small
// filters, as Envoy's HTTP filter chain: each reads and extends the
// stream's decodeState and either lets the request continue to the next
// or finishes it (a local reply, or a client that left). The router ends
// the chain. Order matters: the request ID exists before anything that
// replies, the route before what it configures, and the upstream request's
// headers are final before the fault filter reads them.

// filterStatus is what a decoder filter tells the chain, after Envoy's
// FilterHeadersStatus.
type filterStatus bool

const (
	// continueChain passes the request to the next filter.
	continueChain filterStatus = false
	// stopChain means the filter finished the request.
	stopChain filterStatus = true
)

// decoderFilter is one step of the chain.
type decoderFilter func(m *Manager, s *stream) filterStatus

// decoderFilters is the chain, in order, before the router.
var decoderFilters = [...]decoderFilter{
	headerLimits,
	hopByHop,
	forwardedFor,
	requestIDFilter,
	tracing,
	pathNormalization,
	selectRoute,
	localRateLimitFilter,
	directOrRedirect,
	pickCluster,
	globalRateLimitFilter,
	upstreamRequest,
	faultFilter,
}

// decodeState is what the filters know about a request as they run.
type decodeState struct {
	req  *http.Request
	snap *Snapshot
	lc   *config.Listener
	// h is the header set that goes upstream: the incoming map, which
	// this request owns (cloning it would cost an allocation per header
	// for nothing).
	h http.Header
	// upgrade is the protocol the client asked to switch to, if kept.
	upgrade string
	fwd     headers.Forwarded
	// prepare edits every response's headers (m.prepare), set once the
	// request ID is known and extended by the rate limit filters.
	prepare func(http.Header)
	vh      *route.VirtualHost
	rt      *route.Route
	target  *route.ClusterTarget
	cl      *cluster.Cluster
	// vals are the request's one-element header values, several to an
	// allocation; the router takes its own from them too.
	vals headers.Values
}

// handle runs the decoder filters and, unless one finished the request,
// the router.
func (m *Manager) handle(s *stream, req *http.Request, snap *Snapshot, lc *config.Listener) router.Outcome {
	s.dec = decodeState{req: req, snap: snap, lc: lc, h: req.Header}
	for _, f := range decoderFilters {
		if f(m, s) == stopChain {
			return router.Outcome{}
		}
	}
	return router.Forward(&s.rw, &s.fwd)
}

// reply writes a local reply through the stream's response writer.
func (s *stream) reply(status int, body string) filterStatus {
	router.WriteLocalReply(&s.rw, status, body, s.dec.lc.ServerName, s.dec.prepare)
	return stopChain
}

// headerLimits refuses a request with more headers than the listener allows.
func headerLimits(m *Manager, s *stream) filterStatus {
	d, info := &s.dec, &s.info
	limit := d.lc.Limits.MaxRequestHeadersCount
	if n := headers.Count(d.h); n > limit {
		info.ResponseFlags.Set(streaminfo.DownstreamProtocolError)
		info.ResponseCodeDetails = "too_many_headers"
		d.prepare = m.prepare(d.lc, "", d.snap.Stats)
		return s.reply(http.StatusRequestHeaderFieldsTooLarge, "too many request headers: "+strconv.Itoa(n)+" > "+strconv.Itoa(limit))
	}
	return continueChain
}

// hopByHop refuses CONNECT and removes hop-by-hop headers. An upgrade is
// put back for route matching (a route may match on Upgrade) and kept only
// if the route allows it (upstreamRequest). h2c never is, and HTTP/1.0
// cannot upgrade (RFC 9110 §7.8): those go upstream as plain requests, as
// Envoy's codec sends an h2c upgrade request.
func hopByHop(m *Manager, s *stream) filterStatus {
	d := &s.dec
	if d.req.Method == http.MethodConnect {
		refuseConnect(&s.rw, d.req, &s.info, d.lc.ServerName, m.prepare(d.lc, "", d.snap.Stats))
		return stopChain
	}
	upgrade, isUpgrade := headers.IsUpgrade(d.h)
	headers.RemoveHopByHop(d.h)
	if isUpgrade && d.req.ProtoAtLeast(1, 1) && !strings.EqualFold(upgrade, "h2c") {
		headers.SetUpgrade(d.h, upgrade)
		d.upgrade = upgrade
	}
	return continueChain
}

// forwardedFor applies Envoy's X-Forwarded-For, X-Envoy-Internal and
// X-Forwarded-Proto/Host rules.
func forwardedFor(m *Manager, s *stream) filterStatus {
	d := &s.dec
	h, lc := d.h, d.lc
	peer, _ := netip.ParseAddrPort(d.req.RemoteAddr)
	d.fwd = headers.ApplyForwardedFor(h.Get("X-Forwarded-For"), peer.Addr(), *lc.UseRemoteAddress, lc.XffNumTrustedHops)
	h["X-Forwarded-For"] = d.vals.One(d.fwd.XFF)
	s.info.XForwardedFor = d.fwd.XFF
	external := *lc.UseRemoteAddress && !d.fwd.Internal
	if *lc.UseRemoteAddress {
		if d.fwd.Internal {
			h["X-Envoy-Internal"] = valueTrue
		} else {
			// External clients must not steer retries, timeouts or tracing.
			headers.RemoveEnvoyHeaders(h)
		}
	}
	if _, ok := h["X-Forwarded-Proto"]; !ok || external {
		h["X-Forwarded-Proto"] = valueHTTP
		if d.req.TLS != nil {
			h["X-Forwarded-Proto"] = valueHTTPS
		}
	}
	if _, ok := h["X-Forwarded-Host"]; !ok || external {
		h["X-Forwarded-Host"] = d.vals.One(d.req.Host)
	}
	return continueChain
}

// requestIDFilter applies Envoy's x-request-id rules: an edge proxy
// replaces the ID of an external request unless told to preserve it; any
// missing ID is generated.
func requestIDFilter(m *Manager, s *stream) filterStatus {
	d := &s.dec
	h, lc := d.h, d.lc
	rid := h.Get("X-Request-Id")
	if *lc.UseRemoteAddress && !d.fwd.Internal && !lc.RequestID.PreserveExternal {
		rid = ""
	}
	if rid == "" && *lc.RequestID.Generate {
		rid = requestid.New()
	}
	if rid != "" {
		h["X-Request-Id"] = d.vals.One(rid)
	}
	s.info.RequestID = rid
	s.info.RequestHeaders = h
	d.prepare = m.prepare(lc, rid, d.snap.Stats)
	return continueChain
}

// tracing starts the server span when tracing is on.
func tracing(m *Manager, s *stream) filterStatus {
	d := &s.dec
	if d.snap.Tracer != nil {
		m.startSpan(s, d.req, d.snap, s.info.RequestID, d.fwd.Internal)
	}
	return continueChain
}

// pathNormalization normalises the path or refuses it (path.go).
func pathNormalization(m *Manager, s *stream) filterStatus {
	d := &s.dec
	if normalizePath(&s.rw, d.req, &s.info, d.lc, d.snap.Stats, d.lc.ServerName, d.prepare) {
		return stopChain
	}
	return continueChain
}

// selectRoute selects the virtual host and route; anything unrouted is
// refused 404 NR: never an open proxy.
func selectRoute(m *Manager, s *stream) filterStatus {
	d, info := &s.dec, &s.info
	d.vh = d.snap.Routes.SelectVirtualHost(d.req.Host)
	if d.vh != nil {
		d.rt = d.vh.Match(d.req)
	}
	if d.rt == nil {
		d.snap.Stats.HTTP.NoRoute.Inc()
		info.ResponseFlags.Set(streaminfo.NoRouteFound)
		info.ResponseCodeDetails = "route_not_found"
		return s.reply(http.StatusNotFound, "")
	}
	info.VirtualHost = d.vh.Name
	info.RouteName = d.rt.Name
	if d.rt.Operation != "" && s.span != nil {
		// Envoy's route decorator: the route names the span.
		s.span.SetName(d.rt.Operation)
	}
	return continueChain
}

// localRateLimitFilter applies the route's local rate limit (ratelimit.go).
func localRateLimitFilter(m *Manager, s *stream) filterStatus {
	d := &s.dec
	if d.rt.LocalRateLimit == nil {
		return continueChain
	}
	var done bool
	d.prepare, done = localRateLimit(&s.rw, &s.info, d.rt.LocalRateLimit, d.lc.ServerName, d.prepare)
	return filterStatus(done)
}

// directOrRedirect answers a route whose action is a direct response or a
// redirect.
func directOrRedirect(m *Manager, s *stream) filterStatus {
	d, info := &s.dec, &s.info
	st := d.snap.Stats
	switch d.rt.Action {
	case route.ActionDirectResponse:
		status, body := d.rt.DirectResponse()
		st.HTTP.RqDirectResponse.Inc()
		info.ResponseCodeDetails = "direct_response"
		return s.reply(status, body)
	case route.ActionRedirect:
		loc, status := d.rt.RedirectLocation(d.req)
		st.HTTP.RqRedirect.Inc()
		info.ResponseCodeDetails = "redirect"
		s.rw.Header()["Location"] = []string{loc}
		return s.reply(status, "")
	}
	return continueChain
}

// pickCluster picks the route's cluster (weighted clusters by chance);
// one that does not exist is answered 503 NC.
func pickCluster(m *Manager, s *stream) filterStatus {
	d, info := &s.dec, &s.info
	d.target = d.rt.PickCluster(d.req, rand.Uint64())
	d.cl = d.snap.Clusters.Get(d.target.Name)
	if d.cl == nil {
		d.snap.Stats.HTTP.NoCluster.Inc()
		info.UpstreamCluster = d.target.Name
		info.ResponseFlags.Set(streaminfo.NoClusterFound)
		info.ResponseCodeDetails = "cluster_not_found"
		return s.reply(http.StatusServiceUnavailable, "")
	}
	return continueChain
}

// globalRateLimitFilter asks the rate limit service (ratelimit.go).
func globalRateLimitFilter(m *Manager, s *stream) filterStatus {
	d := &s.dec
	if d.rt.RateLimits == nil || d.snap.RateLimit == nil {
		return continueChain
	}
	var done bool
	d.prepare, done = globalRateLimit(d.req.Context(), &s.rw, d.req, &s.info, d.snap, d.rt, d.target.Name, d.fwd.ClientAddress, d.lc.ServerName, d.prepare)
	return filterStatus(done)
}

// upstreamRequest settles the upgrade, applies the route's request
// mutations and prepares the router's request.
func upstreamRequest(m *Manager, s *stream) filterStatus {
	d := &s.dec
	lc, rt, target, h := d.lc, d.rt, d.target, d.h
	if d.upgrade != "" && !config.UpgradeAllowed(lc.UpgradeConfigs, rt.Upgrades, d.upgrade) {
		// Envoy answers 403 here; stripping serves the request all the
		// same and gives the client nothing to tunnel through.
		headers.StripUpgrade(h)
		d.upgrade = ""
	}
	vars := &s.vars
	*vars = route.Vars{RemoteAddr: d.req.RemoteAddr, UpstreamCluster: target.Name, Request: h}
	rt.ApplyRequest(target, h, vars)
	var routeStats *stats.RouteStats
	if rt.StatPrefix != "" {
		routeStats = d.snap.Stats.Routes[rt]
	}
	s.fwd = router.Request{
		Stats:             d.snap.Stats.Upstream[target.Name], // nil: the router counts in d.cl's own
		RouteStats:        routeStats,
		Downstream:        d.req,
		Header:            h,
		Route:             rt,
		Target:            target,
		Cluster:           d.cl,
		Vars:              vars,
		Info:              &s.info,
		StreamIdleTimeout: lc.Limits.StreamIdleTimeout.D(),
		ServerName:        lc.ServerName,
		PrepareResponse:   d.prepare,
		Upgrade:           d.upgrade,
		Tracer:            d.snap.Tracer,
		TraceContext:      s.traceCtx,
		TraceID:           s.traceID,
		ClientAddress:     d.fwd.ClientAddress,
		HeaderValues:      &d.vals,
	}
	if len(rt.Mirrors) > 0 {
		s.fwd.Shadow = router.ShadowEnv{Clusters: d.snap.Clusters, Limit: &m.shadows, Stats: d.snap.Stats.Upstream}
	}
	return continueChain
}

// faultFilter runs the route's fault filter, the last before the router
// (fault.go).
func faultFilter(m *Manager, s *stream) filterStatus {
	d := &s.dec
	if d.rt.Fault != nil && m.injectFault(s, d.req, d.rt, d.snap, d.lc.ServerName, d.prepare) {
		return stopChain
	}
	return continueChain
}
