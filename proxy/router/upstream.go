package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/retry"
	"github.com/hopwatch/hopwatch/proxy/tracer"

	"go.opentelemetry.io/otel/trace"
)

// upstreamRequest is one attempt to one host, as Envoy's UpstreamRequest:
// its context, per-try timer, stream idle timers and client span. send
// makes the exchange and returns its outcome; the forwarder decides what
// follows.
type upstreamRequest struct {
	fr   *Request
	host *cluster.Host
	// n is the attempt's number, from 1.
	n int

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

// upstreamOutcome is what one attempt came to: a response, or a failure
// with its retry classification and who caused it.
type upstreamOutcome struct {
	res *http.Response
	err error
	// start is when the request was sent.
	start   time.Time
	failure retry.Failure
	cause   failureCause
}

// overflow reports a request the cluster's pending-request breaker refused
// (cluster.ErrOverflow) rather than a failure of the host.
func (o upstreamOutcome) overflow() bool {
	return o.err != nil && o.cause == causeNone && errors.Is(o.err, cluster.ErrOverflow)
}

func newUpstreamRequest(reqCtx context.Context, fr *Request, host *cluster.Host, n int, perTry time.Duration) *upstreamRequest {
	u := &upstreamRequest{fr: fr, host: host, n: n}
	u.ctx, u.cancel = context.WithCancelCause(reqCtx)
	if perTry > 0 {
		u.perTry = time.AfterFunc(perTry, func() { u.cancel(errPerTryTimeout) })
	}
	u.idle = fr.StreamIdleTimeout
	if fr.Route.HasIdleTimeout {
		u.idle = fr.Route.IdleTimeout
	}
	return u
}

// prepare builds the outgoing request with body (size bytes, -1 when
// unknown) and starts the attempt's client span. streamed means the body
// is still arriving from the client.
func (u *upstreamRequest) prepare(body io.ReadCloser, size int64, streamed bool) *http.Request {
	fr := u.fr
	if streamed && u.idle > 0 {
		// A client that stops sending its body must not hold the
		// upstream exchange open forever (stream_idle_timeout).
		u.bodyIdle = time.AfterFunc(u.idle, func() { u.cancel(errIdleTimeout) })
		body = &idleBody{ReadCloser: body, timer: u.bodyIdle, idle: u.idle}
	}
	hdr := fr.Header
	if fr.Tracer != nil && u.n > 1 {
		// Each attempt carries its own span context, but an abandoned
		// attempt's transport may still be writing the previous
		// header map: write this one's into a copy.
		hdr = fr.Header.Clone()
	}
	out := u.request(hdr, body, size)
	if fr.Tracer != nil {
		u.span = fr.Tracer.StartClient(fr.TraceContext, tracer.Outbound{
			Header: hdr, Cluster: fr.Cluster.Name(), HostAddress: u.host.Address(),
			Method: out.Method, Path: out.URL.Path, RequestID: fr.Info.RequestID, Attempt: u.n,
		})
	}
	return out
}

// send makes the exchange and classifies a failure; reqCtx is the context
// that spans the request's attempts.
func (u *upstreamRequest) send(reqCtx context.Context, out *http.Request) upstreamOutcome {
	start := time.Now()
	u.host.BeginRequest()
	u.fr.beginAttempt()
	// The body travels in the outcome: respond, tunnel or discard closes it.
	res, err := u.fr.Cluster.Transport().RoundTrip(out) //nolint:bodyclose // closed by the forwarder
	failure, cause := classify(u.ctx, reqCtx, u.fr.Downstream.Context(), err)
	return upstreamOutcome{res: res, err: err, start: start, failure: failure, cause: cause}
}

// observe feeds the outcome to outlier detection and the client span.
func (u *upstreamRequest) observe(o upstreamOutcome) {
	if o.err == nil {
		u.status = o.res.StatusCode
		u.fr.Cluster.ObserveResponse(u.host, o.res.StatusCode, o.res.Header)
		return
	}
	u.failure = describeFailure(o.failure, o.cause)
	if o.cause != causeDownstreamGone {
		// Outlier detection: a timeout counts as a 504, a connect
		// failure or reset as a 503 (Envoy's local-origin mapping).
		u.fr.Cluster.ObserveFailure(u.host, o.failure == retry.PerTryTimeout || o.cause == causeIdleTimeout)
	}
}

// request builds the outgoing request for the attempt's host, with header
// set h.
func (u *upstreamRequest) request(h http.Header, body io.ReadCloser, n int64) *http.Request {
	fr := u.fr
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
		authority = u.host.Address()
	}
	// A value, not a pointer: WithContext copies it to the heap anyway,
	// and this one then stays on the stack.
	out := http.Request{
		Method:        down.Method,
		URL:           &url.URL{Scheme: fr.Cluster.Scheme(), Host: u.host.Address(), Path: path, RawPath: rawPath, RawQuery: down.URL.RawQuery},
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
	return out.WithContext(u.ctx)
}

func (u *upstreamRequest) stopPerTry() {
	if u.perTry != nil {
		u.perTry.Stop()
	}
}

// startIdle arms the stream idle timer for body copying.
func (u *upstreamRequest) startIdle() {
	if u.idle > 0 {
		u.idleTimer = time.AfterFunc(u.idle, func() { u.cancel(errIdleTimeout) })
	}
}

// progress records body progress, postponing the idle timeout.
func (u *upstreamRequest) progress() {
	if u.idleTimer != nil {
		u.idleTimer.Reset(u.idle)
	}
}

// finish ends the attempt: its span, timers, context and the host's and
// breaker's request counts.
func (u *upstreamRequest) finish() {
	tracer.EndClient(u.span, u.status, u.failure)
	u.fr.endAttempt()
	u.stopPerTry()
	if u.idleTimer != nil {
		u.idleTimer.Stop()
	}
	if u.bodyIdle != nil {
		u.bodyIdle.Stop()
	}
	u.cancel(errAttemptDone)
	u.host.EndRequest()
	u.fr.Cluster.Breaker().ReleaseRequest()
}
