package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/retry"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/tracer"
)

// Traffic shadowing, after Envoy's request_mirror_policies: a selected
// request is also sent, fire and forget, to each mirror cluster. The shadow
// runs on its own goroutine with a copy of the headers, "-shadow" appended
// to its host, the route's timeout, and its own client span; its response
// is read and discarded. It counts in the shadow cluster's stats exactly as
// a routed request does (upstream_rq_total, upstream_rq_<code>, ...),
// because it goes through the same counting code.
//
// The primary is never held back. A body that was buffered for retries is
// shared as it is; a streamed body is teed into memory as the primary
// upstream reads it, and the shadows leave once it is complete. Nothing in
// the tee blocks: past max_body_bytes the copy is dropped and the shadow
// abandoned (retry_or_shadow_abandoned on the primary cluster, as Envoy
// counts a shadow given up for its buffer limit). Shadows in flight are
// bounded per listener (ShadowLimit), so a slow or dead mirror cluster
// cannot pile up goroutines or memory; one refused for that counts the
// mirror cluster's upstream_rq_pending_overflow, the stat Envoy charges
// when a circuit breaker refuses a request.

// DefaultMaxShadowsInFlight bounds the shadow requests in flight on one
// listener when ShadowLimit.Max is 0. With the default max_body_bytes of
// 64 KiB the bodies they hold stay under 16 MiB.
const DefaultMaxShadowsInFlight = 256

// shadowDrainLimit is how much of a shadow's response body is read (to
// count it and reuse the connection) before the connection is closed instead.
const shadowDrainLimit = 1 << 20

// ShadowEnv is what shadowing needs besides the request itself. The zero
// value (no Clusters) disables shadowing.
type ShadowEnv struct {
	// Clusters resolves the mirror policies' clusters by name.
	Clusters *cluster.Manager
	// Stats holds every cluster's stats by name; a cluster missing from it
	// counts in its own (UpstreamStats.Or).
	Stats map[string]*UpstreamStats
	// Limit bounds the listener's shadows in flight; nil disables shadowing.
	Limit *ShadowLimit
}

// ShadowLimit bounds the shadow requests in flight. The zero value allows
// DefaultMaxShadowsInFlight; it is safe for concurrent use.
type ShadowLimit struct {
	// Max is the bound; 0 means DefaultMaxShadowsInFlight.
	Max      int64
	inflight atomic.Int64
}

// InFlight returns the number of shadows in flight.
func (l *ShadowLimit) InFlight() int64 { return l.inflight.Load() }

func (l *ShadowLimit) acquire() bool {
	limit := l.Max
	if limit <= 0 {
		limit = DefaultMaxShadowsInFlight
	}
	for {
		n := l.inflight.Load()
		if n >= limit {
			return false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (l *ShadowLimit) release() { l.inflight.Add(-1) }

// ShadowHost is Envoy's shadowAppendedHost: "-shadow" goes after the host
// and before any port, so "api.example.com:8080" becomes
// "api.example.com-shadow:8080" and "[::1]:80" becomes "[::1]-shadow:80".
func ShadowHost(host string) string {
	if i := portStart(host); i >= 0 {
		return host[:i] + "-shadow" + host[i:]
	}
	return host + "-shadow"
}

// portStart is Envoy's HeaderUtility::getPortStart: the index of the ':'
// that starts the port, or -1 when the authority has no port. A bracketed
// IPv6 literal has a port only after its ']'; an unbracketed one with
// several colons has none.
func portStart(host string) int {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if j := strings.LastIndexByte(host, ']'); j >= 0 {
		if j > i {
			return -1 // "[::1]"
		}
		return i // "[::1]:80"
	}
	if strings.IndexByte(host, ':') != i {
		return -1 // an unbracketed IPv6 literal
	}
	return i
}

// shadow is one selected mirror of a request, waiting for its body.
type shadow struct {
	policy  *route.MirrorPolicy
	cluster *cluster.Cluster
	header  http.Header
}

// shadowOrigin is what the shadows of one request need from it. It is
// copied out of the Request, which is pooled with the downstream stream:
// a streamed body may finish (and start the shadows) on the transport's
// goroutine after the downstream request is over.
type shadowOrigin struct {
	route                *route.Route
	method, host         string
	path, rawPath, query string
	requestID            string
	env                  ShadowEnv
	primary              *stats.ClusterStats // for retry_or_shadow_abandoned
	tracer               *tracer.Tracer
	traceCtx             context.Context
	// traceID is the primary's sampled trace (zero if not sampled): the
	// shadow's span is in that trace, so its upstream_rq_time exemplar
	// leads there too.
	traceID stats.TraceID
}

// abandoned counts a shadow given up for its body limit on the primary
// cluster, as Envoy does.
func (o *shadowOrigin) abandoned() {
	o.primary.RetryOrShadowAbandoned.Inc()
}

// startShadows draws the route's mirror policies for fr and sends the
// selected shadows: now when the body is empty or buffered, or when the
// primary has read a streamed body through the tee that replaces
// body.stream. It never blocks.
func startShadows(fr *Request, body *requestBody) {
	env := fr.Shadow
	if env.Clusters == nil || env.Limit == nil || fr.Upgrade != "" {
		// Protocol upgrades are not mirrored: a shadow cannot take part
		// in the client's conversation.
		return
	}
	var buf [2]shadow
	selected := buf[:0]
	for i := range fr.Route.Mirrors {
		p := &fr.Route.Mirrors[i]
		if !p.Fraction.Selects(rand.Uint64()) {
			continue
		}
		cl := env.Clusters.Get(p.Cluster)
		if cl == nil {
			// The cluster went away in a reload; Envoy skips it too.
			continue
		}
		selected = append(selected, shadow{policy: p, cluster: cl})
	}
	if len(selected) == 0 {
		return
	}
	down := fr.Downstream
	o := &shadowOrigin{
		route: fr.Route, method: down.Method, host: down.Host,
		path: down.URL.Path, rawPath: down.URL.RawPath, query: down.URL.RawQuery,
		requestID: fr.Info.RequestID, env: env, primary: fr.clusterStats(),
		tracer: fr.Tracer, traceCtx: fr.TraceContext, traceID: fr.TraceID,
	}
	for i := range selected {
		// A copy made now, before the primary's attempts write their
		// trace context into fr.Header.
		selected[i].header = fr.Header.Clone()
	}
	switch {
	case body.empty:
		for i := range selected {
			o.send(&selected[i], nil)
		}
	case body.replayable:
		for i := range selected {
			if len(body.buffered) > selected[i].policy.MaxBodyBytes {
				o.abandoned()
				continue
			}
			o.send(&selected[i], body.buffered)
		}
	default:
		limit := -1
		var pending []shadow
		for _, s := range selected {
			if body.streamLen > int64(s.policy.MaxBodyBytes) {
				o.abandoned() // declared too large: no copy at all
				continue
			}
			pending = append(pending, s)
			limit = max(limit, s.policy.MaxBodyBytes)
		}
		if len(pending) == 0 {
			return
		}
		body.stream = newShadowTee(body.stream, body.streamLen, limit, func(b []byte) {
			for i := range pending {
				if len(b) > pending[i].policy.MaxBodyBytes {
					o.abandoned()
					continue
				}
				o.send(&pending[i], b)
			}
		}, func() {
			for range pending {
				o.abandoned()
			}
		})
	}
}

// send starts one shadow request with the given body (nil: none), unless
// the listener has too many in flight. body is never written again: the
// buffered retry body and the tee's finished copy are both read-only.
func (o *shadowOrigin) send(s *shadow, body []byte) {
	name := s.cluster.Name()
	// Counts in the mirror cluster's stats.
	sr := &Request{Stats: o.env.Stats[name].Or(s.cluster), TraceID: o.traceID}
	if !o.env.Limit.acquire() {
		sr.clusterStats().UpstreamRqPendingOverflow.Inc()
		return
	}
	path, rawPath := o.path, o.rawPath
	if rewritten := o.route.RewritePath(path); rewritten != path {
		path, rawPath = rewritten, ""
	}
	// Envoy's shadow takes the host after host_rewrite_literal;
	// auto_host_rewrite belongs to the primary's endpoint.
	authority := o.host
	if o.route.HostRewrite != "" {
		authority = o.route.HostRewrite
	}
	if s.policy.AppendHostSuffix && authority != "" {
		authority = ShadowHost(authority)
	}
	out := &http.Request{
		Method:     o.method,
		URL:        &url.URL{Scheme: s.cluster.Scheme(), Path: path, RawPath: rawPath, RawQuery: o.query},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     s.header,
		Host:       authority,
	}
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	job := &shadowJob{
		req: out, cluster: s.cluster, sr: sr, limit: o.env.Limit, timeout: o.route.Timeout,
		tracer: o.tracer, traceCtx: o.traceCtx, requestID: o.requestID,
	}
	go job.run()
}

// shadowJob is one shadow request in flight.
type shadowJob struct {
	req       *http.Request
	cluster   *cluster.Cluster
	sr        *Request // carries the mirror cluster's stats
	limit     *ShadowLimit
	timeout   time.Duration
	tracer    *tracer.Tracer
	traceCtx  context.Context
	requestID string
}

// errShadowTimeout is the cause of a shadow cancelled by the route timeout.
var errShadowTimeout = errors.New("shadow timeout")

func (j *shadowJob) run() {
	defer j.limit.release()
	host := j.cluster.Pick(&cluster.LBContext{})
	if host == nil {
		j.sr.clusterStats().UpstreamCxNoneHealthy.Inc()
		return
	}
	// The shadow outlives the downstream request: its context is its own,
	// bounded by the route timeout as Envoy bounds shadows.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(errAttemptDone)
	if j.timeout > 0 {
		t := time.AfterFunc(j.timeout, func() { cancel(errShadowTimeout) })
		defer t.Stop()
	}
	// The mirror cluster's circuit breakers apply to shadows as to any
	// request (Envoy sends shadows through the cluster's router): past
	// max_requests the breaker counts upstream_rq_pending_overflow.
	if !j.cluster.Breaker().AcquireRequest() {
		j.sr.recordLocalReply(host, http.StatusServiceUnavailable)
		return
	}
	defer j.cluster.Breaker().ReleaseRequest()
	j.req.URL.Host = host.Address()
	span := j.tracer.StartClient(j.traceCtx, tracer.Outbound{
		Header: j.req.Header, Cluster: j.cluster.Name(), HostAddress: host.Address(),
		Method: j.req.Method, Path: j.req.URL.Path, RequestID: j.requestID, Attempt: 1,
	})
	host.BeginRequest()
	j.sr.beginAttempt()
	start := time.Now()
	res, err := j.cluster.Transport().RoundTrip(j.req.WithContext(ctx))
	status, failure := 0, ""
	switch {
	case err == nil:
		status = res.StatusCode
		_, _ = io.CopyN(io.Discard, res.Body, shadowDrainLimit)
		_ = res.Body.Close()
		j.cluster.ObserveResponse(host, res.StatusCode, res.Header)
		j.sr.recordResponse(host, res.StatusCode, time.Since(start))
	case errors.Is(err, cluster.ErrOverflow):
		// max_pending_requests: the breaker counted it; the cluster is
		// overloaded, not the host, so no outlier detection.
		failure = "upstream overflow"
		j.sr.recordLocalReply(host, http.StatusServiceUnavailable)
	default:
		f, code := retry.Reset, http.StatusServiceUnavailable
		cause := causeNone
		var ce *cluster.ConnectError
		switch {
		case errors.Is(context.Cause(ctx), errShadowTimeout):
			cause, code = causeRouteTimeout, http.StatusGatewayTimeout
		case errors.As(err, &ce):
			f = retry.ConnectFailure
		}
		failure = describeFailure(f, cause)
		j.cluster.ObserveFailure(host, cause == causeRouteTimeout)
		j.sr.recordFailure(cause, f)
		j.sr.recordLocalReply(host, code)
	}
	j.sr.endAttempt()
	host.EndRequest()
	tracer.EndClient(span, status, failure)
}

// shadowTee hands a streamed request body to the primary upstream and
// keeps a copy, up to limit bytes, for the shadows. It never blocks and
// never changes what the primary reads. When the body is complete (EOF,
// or its declared length read) done receives the copy, once; when the
// body grows past limit the copy is dropped and abandon is called, once.
// The transport reads it from one goroutine at a time.
type shadowTee struct {
	io.ReadCloser
	want    int64 // declared length, -1 when unknown
	limit   int
	buf     []byte
	state   teeState
	done    func([]byte)
	abandon func()
}

type teeState uint8

const (
	teeCollecting teeState = iota
	teeDone
	teeAbandoned
)

func newShadowTee(src io.ReadCloser, want int64, limit int, done func([]byte), abandon func()) *shadowTee {
	c := 4096
	if want >= 0 {
		c = int(want)
	}
	return &shadowTee{ReadCloser: src, want: want, limit: limit, buf: make([]byte, 0, min(c, limit)), done: done, abandon: abandon}
}

// Read implements io.Reader.
func (t *shadowTee) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if t.state != teeCollecting {
		return n, err
	}
	if n > 0 {
		if len(t.buf)+n > t.limit {
			t.state, t.buf = teeAbandoned, nil
			t.abandon()
			return n, err
		}
		t.buf = append(t.buf, p[:n]...)
	}
	if err != nil && err != io.EOF { //nolint:errorlint // io.EOF is returned unwrapped by contract
		// The client's body failed (malformed, truncated): the copy is
		// not the request the client meant, and a shadow must never be
		// sent it as if it were complete. Nor is it abandoned for size.
		t.state, t.buf = teeAbandoned, nil
		return n, err
	}
	if err == io.EOF || t.want >= 0 && int64(len(t.buf)) == t.want {
		t.state = teeDone
		t.done(t.buf)
	}
	return n, err
}
