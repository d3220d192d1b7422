package router

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/retry"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// Forward proxies fr to its cluster and writes the response to w. It reads
// as Envoy's router filter does: decode the request headers (retry policy,
// request body, mirrors, route timeout), then for each attempt pick a host,
// send one upstream request and decide on its response or failure whether
// to retry, and finally respond with the upstream's response or a local
// reply.
func Forward(w http.ResponseWriter, fr *Request) Outcome {
	fr.Stats = fr.Stats.Or(fr.Cluster)
	var f forwarder
	if out, done := f.decodeHeaders(w, fr); done {
		return out
	}
	defer f.end()
	for attempt := 1; ; attempt++ {
		u, req, out, done := f.startAttempt(attempt)
		if done {
			return out
		}
		o := u.send(f.reqCtx, req)
		fr.releaseRetry(&f.retryHeld)
		if berr := f.body.failed(); o.err != nil && berr != nil {
			// The exchange failed because the client's body did: its
			// fault, not the host's. No outlier or retry accounting, and
			// the transport has closed the connection that carried the
			// partial request.
			u.failure = "downstream request body: " + berr.Error()
			u.finish()
			fr.recordFailure(causeClientBody, 0)
			return clientBodyFailed(w, fr, berr, false)
		}
		if o.overflow() {
			// Too many requests wait for a connection (max_pending_requests).
			// The cluster is overloaded, not the host: no outlier detection
			// and no retry, as in Envoy.
			u.failure = "upstream overflow"
			u.finish()
			return f.localReply(replyOverflow, u.host)
		}
		u.observe(o)
		var retry bool
		if o.err == nil {
			out, retry = f.onResponse(u, o)
		} else {
			out, retry = f.onFailure(u, o)
		}
		if !retry {
			return out
		}
	}
}

// forwarder is one request's way through the router: the state that spans
// its attempts.
type forwarder struct {
	w      http.ResponseWriter
	fr     *Request
	policy retry.Policy
	body   *requestBody

	// single: the request cannot be retried, so it has one attempt whose
	// context the route timer cancels directly (one context and timer
	// fewer on the common path). Otherwise reqCtx spans every attempt and
	// the backoff between them, and cancelReq ends it.
	single     bool
	reqCtx     context.Context
	cancelReq  context.CancelCauseFunc
	routeTimer *routeTimer
	// routeTimerArmed: the route timer was armed once; it never is again.
	routeTimerArmed bool

	hosts *hostPicker
	// retryHeld: a retry slot of the circuit breaker is held (overflow.go).
	retryHeld bool
}

// hostPicker picks each attempt's host, telling the balancer which hosts
// earlier attempts tried (a retry host predicate) and the request's hash.
// It lives apart from the forwarder because the balancer takes its
// address (an interface call, so it escapes): the forwarder itself stays on
// the stack, and the picker lives in the Request, which the connection
// manager already keeps in its pooled per-request state.
type hostPicker struct {
	lb        cluster.LBContext
	buf       [4]*cluster.Host
	attempted []*cluster.Host
}

func (p *hostPicker) pick(c *cluster.Cluster) *cluster.Host {
	p.lb.Attempted = p.attempted
	h := c.Pick(&p.lb)
	if h != nil {
		p.attempted = append(p.attempted, h)
	}
	return h
}

// decodeHeaders prepares the request for its attempts: the retry policy,
// the request body (buffered for replay when retries may need it), mirrors,
// the route timeout and the hash a hashing balancer needs. done means the
// request was answered already.
func (f *forwarder) decodeHeaders(w http.ResponseWriter, fr *Request) (out Outcome, done bool) {
	f.w, f.fr = w, fr
	rt, down := fr.Route, fr.Downstream
	fr.Info.UpstreamCluster = fr.Cluster.Name()
	if rt.Retry != nil {
		f.policy = rt.Retry.ForRequest(down.Header)
	}
	limit := rt.ReplayBufferLimit
	if f.policy.NumRetries == 0 {
		limit = 0 // no retries: never hold the body back
	}
	body, err := newRequestBody(down, limit)
	if err != nil {
		// Buffering for retries read the body up front and the client
		// failed to send it: no upstream was involved.
		return clientBodyFailed(w, fr, err, false), true
	}
	f.body, fr.body = body, body
	if len(rt.Mirrors) > 0 {
		startShadows(fr, body)
	}
	if body.stream != nil && down.ProtoMajor == 1 {
		// A streamed body may still be arriving while the response flows
		// back (gRPC-web, long uploads answered early).
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	// The route timeout spans every attempt and the backoff between them,
	// from the first byte sent upstream to the response headers.
	f.single = f.policy.NumRetries == 0
	f.reqCtx = down.Context()
	if !f.single {
		f.reqCtx, f.cancelReq = context.WithCancelCause(f.reqCtx)
		f.armRouteTimer(f.cancelReq)
	}
	fr.hosts = hostPicker{}
	f.hosts = &fr.hosts
	f.hosts.attempted = f.hosts.buf[:0]
	if rt.Hash != nil && fr.Cluster.HashesRequests() {
		// As in Envoy, the hash is computed only for a balancer that uses
		// it, so that a cookie policy sets no cookie for one that does not.
		lb := &f.hosts.lb
		lb.Hash, lb.HasHash, fr.setCookies = rt.Hash.Hash(down, route.HashInput{ClientAddress: fr.ClientAddress})
	}
	return Outcome{}, false
}

// end releases what spans the attempts once the request is done.
func (f *forwarder) end() {
	f.fr.releaseRetry(&f.retryHeld)
	f.stopRouteTimer()
	if f.cancelReq != nil {
		f.cancelReq(errAttemptDone)
	}
}

func (f *forwarder) armRouteTimer(cancel context.CancelCauseFunc) {
	if t := f.fr.Route.Timeout; t > 0 && !f.routeTimerArmed {
		f.routeTimer, f.routeTimerArmed = armRouteTimer(t, cancel), true
	}
}

// stopRouteTimer stops the route timer; it may be called again.
func (f *forwarder) stopRouteTimer() {
	if f.routeTimer != nil {
		f.routeTimer.stop()
		f.routeTimer = nil
	}
}

// startAttempt picks a host for attempt number n and prepares its upstream
// request: its body, its request slot of the circuit breaker, its timers;
// req is what to send. done means the request was answered instead.
func (f *forwarder) startAttempt(n int) (u *upstreamRequest, req *http.Request, out Outcome, done bool) {
	fr := f.fr
	fr.Info.Attempts = n
	host := f.hosts.pick(fr.Cluster)
	if host == nil {
		fr.clusterStats().UpstreamCxNoneHealthy.Inc()
		return nil, nil, f.localReply(replyNoHealthyUpstream, nil), true
	}
	fr.Info.UpstreamHost = host.Address()

	body, size, ok := f.body.forAttempt(n)
	if !ok {
		// Unreachable: retries are refused when the body cannot be replayed.
		return nil, nil, f.localReply(replyBodyNotReplayable, nil), true
	}
	if !fr.Cluster.Breaker().AcquireRequest() {
		// max_requests: refused before it is sent; released in finish.
		return nil, nil, f.localReply(replyOverflow, host), true
	}
	u = newUpstreamRequest(f.reqCtx, fr, host, n, f.policy.PerTryTimeout)
	if f.single {
		f.armRouteTimer(u.cancel)
	}
	return u, u.prepare(body, size, f.body.stream != nil), Outcome{}, false
}

// onResponse handles an attempt that got response headers: retry on a
// retriable status, else stream the response downstream.
func (f *forwarder) onResponse(u *upstreamRequest, o upstreamOutcome) (out Outcome, retry bool) {
	fr, res := f.fr, o.res
	info := fr.Info
	info.UpstreamServiceTime = time.Since(o.start)
	info.HasUpstreamServiceTime = true
	if f.policy.RetryOnStatus(res.StatusCode) && res.StatusCode != http.StatusSwitchingProtocols {
		if f.retryDecision(u.n) {
			discard(res.Body)
			u.finish()
			fr.retried(res.StatusCode)
			return Outcome{}, true
		}
	} else if u.n > 1 {
		fr.retrySucceeded()
	}
	fr.recordResponse(u.host, res.StatusCode, info.UpstreamServiceTime)
	f.stopRouteTimer()
	u.stopPerTry()
	if res.StatusCode == http.StatusSwitchingProtocols {
		out = tunnel(f.w, fr, res)
	} else {
		out = respond(f.w, fr, res, u)
	}
	if out.Abort {
		u.failure = "response aborted: " + info.ResponseFlags.String()
	}
	u.finish()
	return out, false
}

// onFailure handles an attempt that got no response: a downstream
// disconnect or a timeout ends the request; a failure the policy retries
// is retried; anything else gets the local reply for its failure.
func (f *forwarder) onFailure(u *upstreamRequest, o upstreamOutcome) (out Outcome, retry bool) {
	fr := f.fr
	u.finish()
	fr.recordFailure(o.cause, o.failure)
	switch o.cause {
	case causeDownstreamGone:
		fr.Info.ResponseFlags.Set(streaminfo.DownstreamConnectionTermination)
		fr.Info.ResponseCodeDetails = "downstream_remote_disconnect"
		return Outcome{}, false
	case causeRouteTimeout:
		if u.n > 1 {
			fr.Info.ResponseFlags.Set(streaminfo.UpstreamRetryLimitExceeded)
		}
		return f.localReply(replyRouteTimeout, u.host), false
	case causeIdleTimeout:
		// Before response headers the only idle timer running is the
		// request body's: the client went quiet.
		return f.localReply(replyStreamIdle, nil), false
	}
	if f.policy.RetryOnFailure(o.failure) && f.retryDecision(u.n) {
		fr.retried(0)
		return Outcome{}, true
	}
	if errors.Is(context.Cause(f.reqCtx), errRouteTimeout) {
		// The route timeout fired during the backoff.
		fr.recordFailure(causeRouteTimeout, o.failure)
		return f.localReply(replyRouteTimeout, u.host), false
	}
	return f.localReply(failureReplyFor(o.failure, o.err), u.host), false
}

// retryDecision decides whether attempt n, whose response or failure the
// policy retries, is followed by another: a retry left (and a body that
// can be replayed), a retry slot of the circuit breaker, then the backoff.
// When the answer is no, the response flags say why: UO for a refused
// retry slot, URX (and retry_limit_exceeded) otherwise.
func (f *forwarder) retryDecision(n int) bool {
	fr := f.fr
	retriesLeft := n <= f.policy.NumRetries && f.body.replayable
	ok, overflow := fr.mayRetry(retriesLeft, &f.retryHeld)
	if ok && backoff(f.reqCtx, &f.policy, n) {
		return true
	}
	if overflow {
		fr.Info.ResponseFlags.Set(streaminfo.UpstreamOverflow)
	} else if f.policy.NumRetries > 0 {
		fr.Info.ResponseFlags.Set(streaminfo.UpstreamRetryLimitExceeded)
		fr.retryLimitExceeded()
	}
	return false
}

// localReply answers the request with r. charge is the host whose attempt
// the reply stands for, charged with r's status as Envoy charges upstream
// aborts to the cluster; nil when no host is to blame.
func (f *forwarder) localReply(r reply, charge *cluster.Host) Outcome {
	if charge != nil {
		f.fr.recordLocalReply(charge, r.status)
	}
	if r.overloaded {
		f.w.Header()["X-Envoy-Overloaded"] = []string{"true"}
	}
	localReply(f.w, f.fr, r.status, r.flag, r.details, r.body)
	return Outcome{}
}
