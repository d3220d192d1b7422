// Package router forwards a routed request to an upstream cluster. It is
// hopwatch's counterpart of Envoy's router filter: it picks a host, applies
// the route and per-try timeouts, retries by the route's retry policy with
// jittered backoff, streams bodies both ways (trailers and protocol upgrades
// included) and records Envoy's response flags for what went wrong.
package router

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/headers"
	"github.com/hopwatch/hopwatch/proxy/retry"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
	"github.com/hopwatch/hopwatch/proxy/tracer"

	"go.opentelemetry.io/otel/trace"
)

// Causes attached to cancelled upstream contexts, so that a failed attempt
// can be classified without guessing from error strings.
var (
	errRouteTimeout  = errors.New("route timeout")
	errPerTryTimeout = errors.New("per-try timeout")
	errIdleTimeout   = errors.New("stream idle timeout")
	errAttemptDone   = errors.New("attempt finished")
)

// Request is everything Forward needs about one downstream request. The
// connection manager has already matched the route, chosen the cluster and
// prepared the outgoing headers.
type Request struct {
	// Downstream is the request as received.
	Downstream *http.Request
	// Header is the header set to send upstream (hop-by-hop headers already
	// removed, X-Forwarded-*, x-request-id and route mutations applied).
	Header http.Header
	// Route is the matched route; Target the cluster it picked.
	Route   *route.Route
	Target  *route.ClusterTarget
	Cluster *cluster.Cluster
	// Vars feed dynamic header values in response mutations.
	Vars *route.Vars
	// Info receives what happened.
	Info *streaminfo.Info
	// StreamIdleTimeout applies when the route sets none; 0 disables it.
	StreamIdleTimeout time.Duration
	// ServerName replaces the upstream's Server header, as Envoy does.
	ServerName string
	// PrepareResponse runs on the downstream response headers just before
	// they are written (x-request-id echo, drain's Connection: close).
	PrepareResponse func(http.Header)
	// Upgrade is the protocol the client asked to switch to, if any.
	Upgrade string
	// Stats are the cluster's stats; nil when stats are off.
	Stats *UpstreamStats
	// RouteStats are the route's opt-in stats (vhost.<vh>.route.<prefix>.); nil when off.
	RouteStats *stats.RouteStats
	// Tracer starts a client span for each attempt, a child of the server
	// span in TraceContext; nil when tracing is off.
	Tracer       *tracer.Tracer
	TraceContext context.Context
	// ClientAddress is the downstream remote address (the peer, or the
	// client X-Forwarded-For designates), which a source_ip hash policy
	// hashes; invalid when unknown.
	ClientAddress netip.Addr

	// setCookies are the cookies a cookie hash policy generated, added to
	// the upstream response.
	setCookies []string
	// Shadow is what the route's request mirror policies need; its zero
	// value disables shadowing (see shadow.go).
	Shadow ShadowEnv

	// body is the request body as Forward prepared it; it knows whether
	// reading it from the client failed.
	body *requestBody
}

// UpstreamStats are the stats that requests forwarded to one cluster update.
type UpstreamStats struct {
	Cluster *stats.ClusterStats
	// Zones holds cluster.<name>.zone.<local zone>.<upstream zone>. stats
	// keyed by upstream zone; nil when this proxy has no zone.
	Zones map[string]*stats.ZoneStats
}

// Outcome tells the caller how the response ended.
type Outcome struct {
	// Abort is true when the response was cut off after its headers were
	// sent; the caller must reset the stream (panic(http.ErrAbortHandler))
	// after logging.
	Abort bool
}

// idleTimerMinBody is the declared body size above which the stream idle
// timeout is armed while copying a response.
const idleTimerMinBody = 64 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// Forward proxies fr to its cluster and writes the response to w.
func Forward(w http.ResponseWriter, fr *Request) Outcome {
	info := fr.Info
	rt := fr.Route
	down := fr.Downstream
	info.UpstreamCluster = fr.Cluster.Name()

	var policy retry.Policy
	if rt.Retry != nil {
		policy = rt.Retry.ForRequest(down.Header)
	}
	limit := rt.ReplayBufferLimit
	if policy.NumRetries == 0 {
		limit = 0 // no retries: never hold the body back
	}
	body, err := newRequestBody(down, limit)
	if err != nil {
		// Buffering for retries read the body up front and the client
		// failed to send it: no upstream was involved.
		return clientBodyFailed(w, fr, err, false)
	}
	fr.body = body
	if len(rt.Mirrors) > 0 {
		startShadows(fr, body)
	}
	if body.stream != nil && down.ProtoMajor == 1 {
		// A streamed body may still be arriving while the response flows
		// back (gRPC-web, long uploads answered early).
		_ = http.NewResponseController(w).EnableFullDuplex()
	}

	// The route timeout spans every attempt and the backoff between them,
	// from the first byte sent upstream to the response headers. A request
	// that cannot be retried has one attempt, whose context the timer
	// cancels directly: one context and timer fewer on the common path.
	single := policy.NumRetries == 0
	reqCtx := down.Context()
	var cancelReq context.CancelCauseFunc
	if !single {
		reqCtx, cancelReq = context.WithCancelCause(reqCtx)
		defer cancelReq(errAttemptDone)
	}
	var routeTimer *time.Timer
	armRouteTimer := func(cancel context.CancelCauseFunc) {
		if rt.Timeout > 0 && routeTimer == nil {
			routeTimer = time.AfterFunc(rt.Timeout, func() { cancel(errRouteTimeout) })
		}
	}
	if !single {
		armRouteTimer(cancelReq)
	}
	defer func() {
		if routeTimer != nil {
			routeTimer.Stop()
		}
	}()

	var attemptedBuf [4]*cluster.Host
	attempted := attemptedBuf[:0]
	var lb cluster.LBContext
	if rt.Hash != nil && fr.Cluster.HashesRequests() {
		// As in Envoy, the hash is computed only for a balancer that uses
		// it, so that a cookie policy sets no cookie for one that does not.
		lb.Hash, lb.HasHash, fr.setCookies = rt.Hash.Hash(down, route.HashInput{ClientAddress: fr.ClientAddress})
	}
	// retryHeld: a retry slot of the circuit breaker is held (overflow.go).
	retryHeld := false
	defer fr.releaseRetry(&retryHeld)
	for attempt := 1; ; attempt++ {
		info.Attempts = attempt
		lb.Attempted = attempted
		host := fr.Cluster.Pick(&lb)
		if host == nil {
			if cs := fr.clusterStats(); cs != nil {
				cs.UpstreamCxNoneHealthy.Inc()
			}
			localReply(w, fr, http.StatusServiceUnavailable, streaminfo.NoHealthyUpstream, "no_healthy_upstream", "no healthy upstream")
			return Outcome{}
		}
		attempted = append(attempted, host)
		info.UpstreamHost = host.Address()

		reqBody, n, ok := body.forAttempt(attempt)
		if !ok {
			// Unreachable: retries are refused below when the body cannot be replayed.
			localReply(w, fr, http.StatusServiceUnavailable, streaminfo.UpstreamConnectionFailure, "body_not_replayable", "request body cannot be replayed")
			return Outcome{}
		}
		if !fr.Cluster.Breaker().AcquireRequest() {
			// max_requests: refused before it is sent; released in finish.
			fr.recordLocalReply(host, http.StatusServiceUnavailable)
			overflowReply(w, fr)
			return Outcome{}
		}
		a := newAttempt(reqCtx, fr, host, policy.PerTryTimeout)
		if single {
			armRouteTimer(a.cancel)
		}
		if body.stream != nil && a.idle > 0 {
			// A client that stops sending its body must not hold the
			// upstream exchange open forever (stream_idle_timeout).
			a.bodyIdle = time.AfterFunc(a.idle, func() { a.cancel(errIdleTimeout) })
			reqBody = &idleBody{ReadCloser: reqBody, timer: a.bodyIdle, idle: a.idle}
		}
		hdr := fr.Header
		if fr.Tracer != nil && attempt > 1 {
			// Each attempt carries its own span context, but an abandoned
			// attempt's transport may still be writing the previous
			// header map: write this one's into a copy.
			hdr = fr.Header.Clone()
		}
		out := a.request(fr, host, hdr, reqBody, n)
		if fr.Tracer != nil {
			a.span = fr.Tracer.StartClient(fr.TraceContext, tracer.Outbound{
				Header: hdr, Cluster: fr.Cluster.Name(), HostAddress: host.Address(),
				Method: out.Method, Path: out.URL.Path, RequestID: info.RequestID, Attempt: attempt,
			})
		}
		attemptStart := time.Now()
		host.BeginRequest()
		fr.beginAttempt()
		res, err := fr.Cluster.Transport().RoundTrip(out)
		fr.releaseRetry(&retryHeld)
		if berr := body.failed(); err != nil && berr != nil {
			// The exchange failed because the client's body did: its
			// fault, not the host's. No outlier or retry accounting, and
			// the transport has closed the connection that carried the
			// partial request.
			a.failure = "downstream request body: " + berr.Error()
			a.finish(fr, host)
			fr.recordFailure(causeClientBody, 0)
			return clientBodyFailed(w, fr, berr, false)
		}
		failure, cause := classify(a.ctx, reqCtx, down.Context(), err)
		if err != nil && cause == causeNone && errors.Is(err, cluster.ErrOverflow) {
			// Too many requests wait for a connection (max_pending_requests).
			// The cluster is overloaded, not the host: no outlier detection
			// and no retry, as in Envoy.
			a.failure = "upstream overflow"
			a.finish(fr, host)
			fr.recordLocalReply(host, http.StatusServiceUnavailable)
			overflowReply(w, fr)
			return Outcome{}
		}
		if err == nil {
			a.status = res.StatusCode
			fr.Cluster.ObserveResponse(host, res.StatusCode, res.Header)
		} else {
			a.failure = describeFailure(failure, cause)
			if cause != causeDownstreamGone {
				// Outlier detection: a timeout counts as a 504, a connect
				// failure or reset as a 503 (Envoy's local-origin mapping).
				fr.Cluster.ObserveFailure(host, failure == retry.PerTryTimeout || cause == causeIdleTimeout)
			}
		}

		retriesLeft := attempt <= policy.NumRetries && body.replayable
		if err == nil {
			info.UpstreamServiceTime = time.Since(attemptStart)
			info.HasUpstreamServiceTime = true
			if policy.RetryOnStatus(res.StatusCode) && res.StatusCode != http.StatusSwitchingProtocols {
				ok, overflow := fr.mayRetry(retriesLeft, &retryHeld)
				if ok && backoff(reqCtx, &policy, attempt) {
					discard(res.Body)
					a.finish(fr, host)
					fr.retried(res.StatusCode)
					continue
				}
				if overflow {
					info.ResponseFlags.Set(streaminfo.UpstreamOverflow)
				} else if policy.NumRetries > 0 {
					info.ResponseFlags.Set(streaminfo.UpstreamRetryLimitExceeded)
					fr.retryLimitExceeded()
				}
			} else if attempt > 1 {
				fr.retrySucceeded()
			}
			fr.recordResponse(host, res.StatusCode, info.UpstreamServiceTime)
			if routeTimer != nil {
				routeTimer.Stop()
			}
			a.stopPerTry()
			var outcome Outcome
			if res.StatusCode == http.StatusSwitchingProtocols {
				outcome = tunnel(w, fr, res)
			} else {
				outcome = respond(w, fr, res, a)
			}
			if outcome.Abort {
				a.failure = "response aborted: " + info.ResponseFlags.String()
			}
			a.finish(fr, host)
			return outcome
		}

		a.finish(fr, host)
		fr.recordFailure(cause, failure)
		switch cause {
		case causeDownstreamGone:
			info.ResponseFlags.Set(streaminfo.DownstreamConnectionTermination)
			info.ResponseCodeDetails = "downstream_remote_disconnect"
			return Outcome{}
		case causeRouteTimeout:
			if attempt > 1 {
				info.ResponseFlags.Set(streaminfo.UpstreamRetryLimitExceeded)
			}
			fr.recordLocalReply(host, http.StatusGatewayTimeout)
			localReply(w, fr, http.StatusGatewayTimeout, streaminfo.UpstreamRequestTimeout, "upstream_response_timeout", "upstream request timeout")
			return Outcome{}
		case causeIdleTimeout:
			// Before response headers the only idle timer running is the
			// request body's: the client went quiet. Envoy answers 408 and
			// does not retry.
			localReply(w, fr, http.StatusRequestTimeout, streaminfo.StreamIdleTimeout, "stream_idle_timeout", "stream timeout")
			return Outcome{}
		}
		if policy.RetryOnFailure(failure) {
			ok, overflow := fr.mayRetry(retriesLeft, &retryHeld)
			if ok && backoff(reqCtx, &policy, attempt) {
				fr.retried(0)
				continue
			}
			if overflow {
				info.ResponseFlags.Set(streaminfo.UpstreamOverflow)
			} else if policy.NumRetries > 0 {
				info.ResponseFlags.Set(streaminfo.UpstreamRetryLimitExceeded)
				fr.retryLimitExceeded()
			}
		}
		if errors.Is(context.Cause(reqCtx), errRouteTimeout) {
			// The route timeout fired during the backoff.
			fr.recordFailure(causeRouteTimeout, failure)
			fr.recordLocalReply(host, http.StatusGatewayTimeout)
			localReply(w, fr, http.StatusGatewayTimeout, streaminfo.UpstreamRequestTimeout, "upstream_response_timeout", "upstream request timeout")
			return Outcome{}
		}
		failureReply(w, fr, host, failure, err)
		return Outcome{}
	}
}

// attempt is one upstream try: its context, per-try timer, stream idle
// timer and client span.
type attempt struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	perTry    *time.Timer
	idle      time.Duration
	idleTimer *time.Timer
	// bodyIdle is the stream idle timer while a streamed request body is
	// sent (idleBody resets it); idleTimer is the response body's.
	bodyIdle *time.Timer

	// span is the attempt's client span (nil when tracing is off or the
	// request is not sampled); status and failure are what it records.
	span    trace.Span
	status  int
	failure string
}

func newAttempt(reqCtx context.Context, fr *Request, host *cluster.Host, perTry time.Duration) *attempt {
	a := &attempt{}
	a.ctx, a.cancel = context.WithCancelCause(reqCtx)
	if perTry > 0 {
		a.perTry = time.AfterFunc(perTry, func() { a.cancel(errPerTryTimeout) })
	}
	a.idle = fr.StreamIdleTimeout
	if fr.Route.HasIdleTimeout {
		a.idle = fr.Route.IdleTimeout
	}
	return a
}

// request builds the outgoing request for host, with header set h.
func (a *attempt) request(fr *Request, host *cluster.Host, h http.Header, body io.ReadCloser, n int64) *http.Request {
	down := fr.Downstream
	path := down.URL.Path
	rawPath := down.URL.RawPath
	if rewritten := fr.Route.RewritePath(path); rewritten != path {
		path, rawPath = rewritten, ""
	}
	authority := down.Host
	switch {
	case fr.Route.HostRewrite != "":
		authority = fr.Route.HostRewrite
	case fr.Route.AutoHostRewrite:
		authority = host.Address()
	}
	out := &http.Request{
		Method:        down.Method,
		URL:           &url.URL{Scheme: fr.Cluster.Scheme(), Host: host.Address(), Path: path, RawPath: rawPath, RawQuery: down.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: n,
		Host:          authority,
		Trailer:       down.Trailer,
	}
	if body == http.NoBody {
		out.Body = nil
	}
	return out.WithContext(a.ctx)
}

func (a *attempt) stopPerTry() {
	if a.perTry != nil {
		a.perTry.Stop()
	}
}

// startIdle arms the stream idle timer for body copying.
func (a *attempt) startIdle() {
	if a.idle > 0 {
		a.idleTimer = time.AfterFunc(a.idle, func() { a.cancel(errIdleTimeout) })
	}
}

// progress records body progress, postponing the idle timeout.
func (a *attempt) progress() {
	if a.idleTimer != nil {
		a.idleTimer.Reset(a.idle)
	}
}

func (a *attempt) finish(fr *Request, host *cluster.Host) {
	tracer.EndClient(a.span, a.status, a.failure)
	fr.endAttempt()
	a.stopPerTry()
	if a.idleTimer != nil {
		a.idleTimer.Stop()
	}
	if a.bodyIdle != nil {
		a.bodyIdle.Stop()
	}
	a.cancel(errAttemptDone)
	host.EndRequest()
	fr.Cluster.Breaker().ReleaseRequest()
}

// idleBody is a streamed request body under the stream idle timeout: each
// read that brings bytes postpones the timer, and the end of the body stops
// it (what follows is the upstream's turn, bounded by the route timeout).
type idleBody struct {
	io.ReadCloser
	timer *time.Timer
	idle  time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err != nil:
		b.timer.Stop()
	case n > 0:
		b.timer.Reset(b.idle)
	}
	return n, err
}

type failureCause int

// describeFailure says why an attempt got no response, for its span.
func describeFailure(f retry.Failure, c failureCause) string {
	switch c {
	case causeDownstreamGone:
		return "downstream disconnected"
	case causeRouteTimeout:
		return "route timeout"
	case causePerTryTimeout:
		return "per-try timeout"
	case causeIdleTimeout:
		return "stream idle timeout"
	case causeClientBody:
		return "downstream request body failed"
	}
	return "upstream " + f.String()
}

const (
	causeNone failureCause = iota
	causeDownstreamGone
	causeRouteTimeout
	causePerTryTimeout
	causeIdleTimeout
	// causeClientBody: the client's request body failed (malformed,
	// truncated, or the client went away while sending it).
	causeClientBody
)

// classify maps a RoundTrip error to a retry failure kind and, where a
// context was cancelled, to who cancelled it.
func classify(attemptCtx, reqCtx, downCtx context.Context, err error) (retry.Failure, failureCause) {
	if err == nil {
		return 0, causeNone
	}
	switch cause := context.Cause(attemptCtx); {
	case errors.Is(cause, errPerTryTimeout):
		return retry.PerTryTimeout, causePerTryTimeout
	case errors.Is(cause, errRouteTimeout):
		return retry.PerTryTimeout, causeRouteTimeout
	case errors.Is(cause, errIdleTimeout):
		return retry.Reset, causeIdleTimeout
	}
	if downCtx.Err() != nil {
		return retry.Reset, causeDownstreamGone
	}
	var ce *cluster.ConnectError
	if errors.As(err, &ce) {
		return retry.ConnectFailure, causeNone
	}
	if strings.Contains(err.Error(), "REFUSED_STREAM") {
		return retry.RefusedStream, causeNone
	}
	return retry.Reset, causeNone
}

// backoff sleeps before retry number attempt, returning false if the
// request's context ended first.
func backoff(ctx context.Context, p *retry.Policy, attempt int) bool {
	d := p.Backoff(attempt, rand.Uint64())
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discard drains a little of a response we will not use so that its
// connection can be reused, then closes it.
func discard(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4096)
	_ = body.Close()
}

// clientBodyFailed ends a request whose body the client failed to send. A
// client that went away is a downstream disconnect (DC) and gets nothing;
// a malformed or truncated body is a downstream protocol error (DPE), as
// Envoy's codec reports it: 400 while no response has started, a reset
// once one has. The downstream connection cannot carry another request
// (its framing is lost), so an HTTP/1 reply says Connection: close. The
// upstream host is never charged: no 5xx, no outlier failure, no retry.
func clientBodyFailed(w http.ResponseWriter, fr *Request, err error, responseStarted bool) Outcome {
	info := fr.Info
	if clientGone(fr.Downstream, err) {
		info.ResponseFlags.Set(streaminfo.DownstreamConnectionTermination)
		info.ResponseCodeDetails = "downstream_remote_disconnect"
		// Nothing may be written: the handler returning normally would
		// send an empty 200.
		return Outcome{Abort: true}
	}
	info.DownstreamCodecError = true
	details := "http1.codec_error"
	if fr.Downstream.ProtoMajor == 2 {
		details = "http2.violation.of.messaging.rule"
	}
	if responseStarted {
		info.ResponseFlags.Set(streaminfo.DownstreamProtocolError)
		info.ResponseCodeDetails = details
		return Outcome{Abort: true}
	}
	prepare := fr.PrepareResponse
	if fr.Downstream.ProtoMajor == 1 {
		prepare = func(h http.Header) {
			if fr.PrepareResponse != nil {
				fr.PrepareResponse(h)
			}
			h["Connection"] = []string{"close"}
		}
	}
	info.ResponseFlags.Set(streaminfo.DownstreamProtocolError)
	info.ResponseCodeDetails = details
	info.ResponseCode = http.StatusBadRequest
	msg := "request body: " + err.Error()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "incomplete request body: the client closed its side before the body ended"
	}
	WriteLocalReply(w, http.StatusBadRequest, msg, fr.ServerName, prepare)
	return Outcome{}
}

// failureReply answers for an upstream failure before response headers.
func failureReply(w http.ResponseWriter, fr *Request, host *cluster.Host, f retry.Failure, err error) {
	defer func() { fr.recordLocalReply(host, fr.Info.ResponseCode) }()
	switch {
	case f == retry.ConnectFailure:
		localReply(w, fr, http.StatusServiceUnavailable, streaminfo.UpstreamConnectionFailure,
			"upstream_reset_before_response_started{connection_failure}",
			"upstream connect error or disconnect/reset before headers. reset reason: connection failure")
	case f == retry.PerTryTimeout:
		localReply(w, fr, http.StatusGatewayTimeout, streaminfo.UpstreamRequestTimeout, "upstream_per_try_timeout", "upstream request timeout")
	case isProtocolError(err):
		localReply(w, fr, http.StatusBadGateway, streaminfo.UpstreamProtocolError,
			"upstream_reset_before_response_started{protocol_error}", "upstream protocol error")
	case f == retry.RefusedStream:
		localReply(w, fr, http.StatusServiceUnavailable, streaminfo.UpstreamRemoteReset,
			"upstream_reset_before_response_started{remote_refused_stream_reset}",
			"upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset")
	default:
		localReply(w, fr, http.StatusServiceUnavailable, streaminfo.UpstreamConnectionTermination,
			"upstream_reset_before_response_started{connection_termination}",
			"upstream connect error or disconnect/reset before headers. reset reason: connection termination")
	}
}

func isProtocolError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "malformed") || strings.Contains(s, "PROTOCOL_ERROR")
}

// localReply writes a response generated by the proxy itself, as Envoy's
// local replies: text/plain body, the response flag recorded.
func localReply(w http.ResponseWriter, fr *Request, status int, flag streaminfo.Flag, details, body string) {
	info := fr.Info
	if flag != 0 {
		info.ResponseFlags.Set(flag)
	}
	info.ResponseCodeDetails = details
	info.ResponseCode = status
	WriteLocalReply(w, status, body, fr.ServerName, fr.PrepareResponse)
}

// WriteLocalReply writes a proxy-generated response: the connection manager
// uses it for 404 NR and friends, the router for upstream failures.
func WriteLocalReply(w http.ResponseWriter, status int, body, serverName string, prepare func(http.Header)) {
	h := w.Header()
	if body != "" {
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	h["Server"] = []string{serverName}
	if prepare != nil {
		prepare(h)
	}
	w.WriteHeader(status)
	if body != "" {
		_, _ = io.WriteString(w, body)
	}
}

// respond streams an upstream response downstream.
func respond(w http.ResponseWriter, fr *Request, res *http.Response, a *attempt) Outcome {
	info := fr.Info
	info.ResponseCodeDetails = "via_upstream"
	headers.RemoveHopByHop(res.Header)
	h := w.Header()
	for k, vv := range res.Header {
		h[k] = vv
	}
	// Announce the trailers the upstream declared; any that arrive
	// unannounced (common over HTTP/2, e.g. grpc-status) are sent with
	// http.TrailerPrefix after the body.
	var announced []string
	if len(res.Trailer) > 0 {
		announced = make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			announced = append(announced, k)
		}
		h["Trailer"] = []string{strings.Join(announced, ", ")}
	}
	h["X-Envoy-Upstream-Service-Time"] = []string{strconv.FormatInt(info.UpstreamServiceTime.Milliseconds(), 10)}
	h["Server"] = []string{fr.ServerName}
	if len(fr.setCookies) > 0 {
		h["Set-Cookie"] = append(h["Set-Cookie"], fr.setCookies...)
	}
	fr.Route.ApplyResponse(fr.Target, h, fr.Vars)
	if fr.PrepareResponse != nil {
		fr.PrepareResponse(h)
	}
	w.WriteHeader(res.StatusCode)

	// Flush every write when the body has no declared length (streaming,
	// server-sent events, gRPC); otherwise let the server buffer.
	flusher, _ := w.(http.Flusher)
	flushEach := res.ContentLength < 0 && flusher != nil
	if flushEach {
		flusher.Flush()
	}
	if res.ContentLength < 0 || res.ContentLength > idleTimerMinBody {
		// Small bodies of known length arrive with their headers; only
		// streams and large bodies need an idle timer.
		a.startIdle()
	}
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	err := copyBody(w, res.Body, *bufp, flushEach, flusher, a)
	_ = res.Body.Close()
	if err != nil {
		if berr := fr.body.failed(); berr != nil && !errors.Is(err, errDownstreamWrite) {
			// The transport cut the upstream exchange short because the
			// client's body failed while the response was flowing back.
			return clientBodyFailed(w, fr, berr, true)
		}
		switch cause := context.Cause(a.ctx); {
		case errors.Is(cause, errRouteTimeout):
			info.ResponseFlags.Set(streaminfo.UpstreamRequestTimeout)
		case errors.Is(cause, errIdleTimeout):
			info.ResponseFlags.Set(streaminfo.StreamIdleTimeout)
		default:
			if fr.Downstream.Context().Err() != nil || errors.Is(err, errDownstreamWrite) {
				info.ResponseFlags.Set(streaminfo.DownstreamConnectionTermination)
			} else {
				info.ResponseFlags.Set(streaminfo.UpstreamConnectionTermination)
			}
		}
		return Outcome{Abort: true}
	}
	for k, vv := range res.Trailer {
		if slices.Contains(announced, k) {
			h[k] = vv
		} else {
			h[http.TrailerPrefix+k] = vv
		}
	}
	return Outcome{}
}

var errDownstreamWrite = errors.New("downstream write failed")

// copyBody copies src to w, reporting progress for the idle timer.
func copyBody(w io.Writer, src io.Reader, buf []byte, flushEach bool, f http.Flusher, a *attempt) error {
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			a.progress()
			if _, werr := w.Write(buf[:n]); werr != nil {
				return errDownstreamWrite
			}
			if flushEach {
				f.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
