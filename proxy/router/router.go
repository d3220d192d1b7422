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
	// Stats are the cluster's stats. Default (nil): the cluster's own,
	// without zone stats.
	Stats *UpstreamStats
	// RouteStats are the route's opt-in stats (vhost.<vh>.route.<prefix>.); nil when off.
	RouteStats *stats.RouteStats
	// Tracer starts a client span for each attempt, a child of the server
	// span in TraceContext; nil when tracing is off.
	Tracer       *tracer.Tracer
	TraceContext context.Context
	// TraceID is the server span's trace ID when the request is sampled,
	// else zero: upstream_rq_time keeps it as its bucket's exemplar.
	TraceID stats.TraceID
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
	// HeaderValues, when set, supplies the one-element header values the
	// router sets, from the blocks the connection manager allocated for
	// the request's own; used only on the request's goroutine.
	HeaderValues *headers.Values

	// body is the request body as Forward prepared it; it knows whether
	// reading it from the client failed.
	body *requestBody
	// hosts picks the attempts' hosts (forward.go); here rather than in
	// an allocation of its own.
	hosts hostPicker
}

// headerValue returns []string{v}, from HeaderValues when there is one.
func (fr *Request) headerValue(v string) []string {
	if fr.HeaderValues == nil {
		return []string{v}
	}
	return fr.HeaderValues.One(v)
}

// UpstreamStats are the stats that requests forwarded to one cluster update.
type UpstreamStats struct {
	Cluster *stats.ClusterStats
	// Zones holds cluster.<name>.zone.<local zone>.<upstream zone>. stats
	// keyed by upstream zone; nil when this proxy has no zone.
	Zones map[string]*stats.ZoneStats
}

// Or returns us, or when the caller gave none (a tool or test using the
// router without a store) c's own stats, which are a null store's when c
// was built without any: the router then counts without checking for nil.
func (us *UpstreamStats) Or(c *cluster.Cluster) *UpstreamStats {
	if us != nil {
		return us
	}
	return &UpstreamStats{Cluster: c.Stats()}
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

// reply is a response the proxy generates itself in place of an upstream
// one, as Envoy's local replies: status, response flag, response code
// details and text body.
type reply struct {
	status  int
	flag    streaminfo.Flag
	details string
	body    string
	// overloaded adds x-envoy-overloaded: a circuit breaker refused.
	overloaded bool
}

// The router's local replies, named once so that each is written once.
var (
	replyNoHealthyUpstream = reply{status: http.StatusServiceUnavailable, flag: streaminfo.NoHealthyUpstream,
		details: "no_healthy_upstream", body: "no healthy upstream"}
	replyBodyNotReplayable = reply{status: http.StatusServiceUnavailable, flag: streaminfo.UpstreamConnectionFailure,
		details: "body_not_replayable", body: "request body cannot be replayed"}
	// replyOverflow answers a request that a circuit breaker refused (see overflow.go).
	replyOverflow = reply{status: http.StatusServiceUnavailable, flag: streaminfo.UpstreamOverflow,
		details: "upstream_reset_before_response_started{overflow}",
		body:    "upstream connect error or disconnect/reset before headers. reset reason: overflow", overloaded: true}
	replyRouteTimeout = reply{status: http.StatusGatewayTimeout, flag: streaminfo.UpstreamRequestTimeout,
		details: "upstream_response_timeout", body: "upstream request timeout"}
	// replyStreamIdle: the client went quiet while sending its body; Envoy
	// answers 408 and does not retry.
	replyStreamIdle = reply{status: http.StatusRequestTimeout, flag: streaminfo.StreamIdleTimeout,
		details: "stream_idle_timeout", body: "stream timeout"}
	replyConnectFailure = reply{status: http.StatusServiceUnavailable, flag: streaminfo.UpstreamConnectionFailure,
		details: "upstream_reset_before_response_started{connection_failure}",
		body:    "upstream connect error or disconnect/reset before headers. reset reason: connection failure"}
	replyPerTryTimeout = reply{status: http.StatusGatewayTimeout, flag: streaminfo.UpstreamRequestTimeout,
		details: "upstream_per_try_timeout", body: "upstream request timeout"}
	replyProtocolError = reply{status: http.StatusBadGateway, flag: streaminfo.UpstreamProtocolError,
		details: "upstream_reset_before_response_started{protocol_error}", body: "upstream protocol error"}
	replyRefusedStream = reply{status: http.StatusServiceUnavailable, flag: streaminfo.UpstreamRemoteReset,
		details: "upstream_reset_before_response_started{remote_refused_stream_reset}",
		body:    "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"}
	replyConnectionTermination = reply{status: http.StatusServiceUnavailable, flag: streaminfo.UpstreamConnectionTermination,
		details: "upstream_reset_before_response_started{connection_termination}",
		body:    "upstream connect error or disconnect/reset before headers. reset reason: connection termination"}
)

// failureReplyFor picks the answer for an upstream failure before response
// headers.
func failureReplyFor(f retry.Failure, err error) reply {
	switch {
	case f == retry.ConnectFailure:
		return replyConnectFailure
	case f == retry.PerTryTimeout:
		return replyPerTryTimeout
	case isProtocolError(err):
		return replyProtocolError
	case f == retry.RefusedStream:
		return replyRefusedStream
	}
	return replyConnectionTermination
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
func respond(w http.ResponseWriter, fr *Request, res *http.Response, a *upstreamRequest) Outcome {
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
	h["X-Envoy-Upstream-Service-Time"] = fr.headerValue(strconv.FormatInt(info.UpstreamServiceTime.Milliseconds(), 10))
	h["Server"] = fr.headerValue(fr.ServerName)
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
func copyBody(w io.Writer, src io.Reader, buf []byte, flushEach bool, f http.Flusher, a *upstreamRequest) error {
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
