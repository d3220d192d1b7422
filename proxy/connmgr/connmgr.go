// Package connmgr is hopwatch's HTTP connection manager, after Envoy's: for
// each downstream request it enforces header limits, applies the
// X-Forwarded-For and x-request-id rules, selects the virtual host and
// route, answers redirects, direct responses and misses itself, hands routed
// requests to the router, and writes one access-log line.
//
// A Manager serves one listener. Its configuration is an immutable Snapshot
// swapped atomically on hot reload, so a request always sees one consistent
// configuration from start to finish and a reload never fails a request.
package connmgr

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/accesslog"
	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/fault"
	"github.com/hopwatch/hopwatch/proxy/listener"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
	"github.com/hopwatch/hopwatch/proxy/tracer"

	"go.opentelemetry.io/otel/trace"
)

// Snapshot is one listener's complete, immutable request-handling
// configuration.
type Snapshot struct {
	// Listener is the listener's configuration, defaults applied.
	Listener *config.Listener
	// Routes is the compiled route table.
	Routes *route.Table
	// Clusters resolves route targets.
	Clusters *cluster.Manager
	// AccessLog receives one line per request; nil disables logging.
	AccessLog accesslog.Logger
	// Stats are the listener's stats; with stats off, a null store's. New
	// and Swap give a snapshot without them a null store's of the Manager.
	Stats *Stats
	// Tracer makes the requests' spans; nil when tracing is off. A reload
	// that changes tracing gives new snapshots a new Tracer, while requests
	// already running finish on the old one.
	Tracer *tracer.Tracer
	// RateLimit is the listener's global rate limiter (its
	// rate_limit_service); nil when it has none.
	RateLimit *ratelimit.Global
}

// Stats are the stats a listener's requests update. Everything is created
// from configuration when the snapshot is built, so the request path only
// does atomic adds and lookups by pointer or configured name.
type Stats struct {
	// HTTP is http.<stat_prefix>.*.
	HTTP *stats.HTTPConnManagerStats
	// Listener is listener.<address>.http.<stat_prefix>.*.
	Listener *stats.ListenerHTTPStats
	// Upstream holds each cluster's stats by cluster name.
	Upstream map[string]*router.UpstreamStats
	// Routes holds the opt-in per-route stats of routes with a stat_prefix.
	Routes map[*route.Route]*stats.RouteStats
}

// Manager handles the requests of one listener.
type Manager struct {
	snap atomic.Pointer[Snapshot]
	// draining makes every response ask the client to close its
	// connection, so that clients move away before shutdown.
	draining *atomic.Bool
	// faults counts the listener's active faults (max_active_faults) and
	// shadows its shadow requests in flight; both outlive reloads.
	faults  fault.Active
	shadows router.ShadowLimit
	// null is the stats store of snapshots given without stats, made on
	// first need.
	null func() *stats.Store
}

// New returns a Manager serving snap. draining is shared by every listener
// of the process and flipped by /healthcheck/fail and SIGTERM.
func New(snap *Snapshot, draining *atomic.Bool) *Manager {
	m := &Manager{draining: draining, null: sync.OnceValue(stats.MustNewNullStore)}
	m.snap.Store(m.withStats(snap))
	return m
}

// Swap installs a new snapshot; requests already running keep the old one.
func (m *Manager) Swap(snap *Snapshot) { m.snap.Store(m.withStats(snap)) }

// withStats gives snap, when it has no stats (a caller without a store),
// stats of the Manager's null store, so that requests count without
// checking for nil. It sets snap.Stats in place and returns snap.
func (m *Manager) withStats(snap *Snapshot) *Snapshot {
	if snap.Stats == nil {
		prefix := ""
		if snap.Listener != nil {
			prefix = snap.Listener.StatPrefix
		}
		snap.Stats = &Stats{HTTP: m.null().HTTPConnManagerStats(prefix)}
	}
	return snap
}

// Snapshot returns the current snapshot.
func (m *Manager) Snapshot() *Snapshot { return m.snap.Load() }

// stream holds the per-request state that the connection manager and the
// router share. It is pooled: nothing in it outlives ServeHTTP (the request
// body counter, which an upstream transport may still read after the
// response, is allocated separately).
type stream struct {
	info streaminfo.Info
	rw   responseWriter
	vars route.Vars
	fwd  router.Request
	// dec is what the decoder filters learned so far (filters.go).
	dec decodeState
	// span is the server span (nil when tracing is off) and traceCtx the
	// context holding it, the parent of the attempts' client spans.
	span     trace.Span
	traceCtx context.Context
	// traceID is the server span's trace ID when the request is sampled,
	// else zero; the latency histograms keep it as an exemplar.
	traceID stats.TraceID
}

var streamPool = sync.Pool{New: func() any { return new(stream) }}

// ServeHTTP implements http.Handler.
func (m *Manager) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	snap := m.snap.Load()
	lc := snap.Listener
	s := streamPool.Get().(*stream)
	info := &s.info
	*info = streaminfo.Info{
		StartTime:               time.Now(),
		Method:                  req.Method,
		Path:                    req.RequestURI,
		Protocol:                req.Proto,
		Authority:               req.Host,
		UserAgent:               req.Header.Get("User-Agent"),
		DownstreamRemoteAddress: req.RemoteAddr,
	}
	if info.Path == "" { // HTTP/2 leaves RequestURI empty for some clients
		info.Path = req.URL.RequestURI()
	}
	rw := &s.rw
	*rw = responseWriter{ResponseWriter: w, info: info}
	var body *countingBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &countingBody{ReadCloser: req.Body}
		req.Body = body
	}
	st := snap.Stats
	listener.MarkProtocol(req)
	st.requestStarted(req)
	outcome := m.handle(s, req, snap, lc)
	if body != nil {
		info.BytesReceived += body.n.Load()
	}
	info.Duration = time.Since(info.StartTime)
	if rw.status != 0 {
		// What reached the client wins over what the router meant to send.
		info.ResponseCode = rw.status
	}
	info.ResponseHeaders = rw.Header()
	st.requestFinished(info, outcome.Abort, s.traceID)
	if s.span != nil {
		// Before the access log: it prints the IDs EndServer fills in.
		snap.Tracer.EndServer(s.span, info, outcome.Abort)
	}
	if snap.AccessLog != nil {
		snap.AccessLog.Log(info)
	}
	*s = stream{}
	streamPool.Put(s)
	if outcome.Abort {
		// Reset the stream: the client must not take a truncated body
		// for a complete one.
		panic(http.ErrAbortHandler)
	}
}

// RecordRejected logs and counts a request that the HTTP/1 codec refused
// before routing (listener.RejectionRecorder): one access-log line with
// the status sent, flag DPE and details http1.codec_error, and the
// response in the downstream_rq_* counters, as Envoy records a codec
// error it answered with a local reply.
func (m *Manager) RecordRejected(remoteAddr string, status int) {
	snap := m.snap.Load()
	info := streaminfo.Info{
		StartTime:               time.Now(),
		Protocol:                "HTTP/1.1",
		DownstreamRemoteAddress: remoteAddr,
		ResponseCode:            status,
		ResponseCodeDetails:     "http1.codec_error",
	}
	info.ResponseFlags.Set(streaminfo.DownstreamProtocolError)
	st := snap.Stats
	st.HTTP.DownstreamRqTotal.Inc()
	st.HTTP.DownstreamRqHTTP1Total.Inc()
	st.HTTP.RecordResponse(status)
	if st.Listener != nil {
		st.Listener.RecordResponse(status)
	}
	if snap.AccessLog != nil {
		snap.AccessLog.Log(&info)
	}
}

// Header values the connection manager sets on every request, shared
// rather than allocated per request. Nothing edits a header value in
// place: code that adds to a header appends, which copies a full slice.
var (
	valueTrue  = []string{"true"}
	valueHTTP  = []string{"http"}
	valueHTTPS = []string{"https"}
)

// refuseConnect answers a CONNECT request 403, as Envoy does when CONNECT
// is not configured: hopwatch does not terminate CONNECT, and is never an
// open proxy. An HTTP/1 connection closes after the answer, because the
// client may already be sending tunnel bytes that must not be read as a
// request (HTTP/2 confines them to the stream).
func refuseConnect(w http.ResponseWriter, req *http.Request, info *streaminfo.Info, serverName string, prepare func(http.Header)) {
	info.ResponseCodeDetails = "upgrade_failed"
	if req.ProtoMajor == 1 {
		w.Header()["Connection"] = []string{"close"}
	}
	router.WriteLocalReply(w, http.StatusForbidden, "", serverName, prepare)
}

// startSpan starts the request's server span and counts the tracing
// decision in http.<prefix>.tracing.*.
func (m *Manager) startSpan(s *stream, req *http.Request, snap *Snapshot, rid string, internal bool) {
	var reason tracer.Reason
	s.traceCtx, s.span, reason = snap.Tracer.StartServer(req.Context(), tracer.Inbound{
		Header:    req.Header,
		RequestID: rid,
		Internal:  internal,
		Name:      tracer.SpanName(req.Host),
	})
	if s.span != nil {
		if sc := s.span.SpanContext(); sc.IsSampled() {
			s.traceID = stats.TraceID(sc.TraceID())
		}
	}
	ts := &snap.Stats.HTTP.Tracing
	switch reason {
	case tracer.Sampling:
		ts.RandomSampling.Inc()
	case tracer.ServiceForced:
		ts.ServiceForced.Inc()
	case tracer.ClientForced:
		ts.ClientEnabled.Inc()
	default:
		ts.NotTraceable.Inc()
	}
}

// prepare returns the last edit made to every response's headers: the
// x-request-id echo and, while draining, a request to close the connection.
func (m *Manager) prepare(lc *config.Listener, rid string, st *Stats) func(http.Header) {
	echo := lc.RequestID.AlwaysSetInResponse && rid != ""
	draining := m.draining != nil && m.draining.Load()
	if !echo && !draining {
		return nil
	}
	return func(h http.Header) {
		if echo {
			h["X-Request-Id"] = []string{rid}
		}
		if draining {
			h["Connection"] = []string{"close"}
			st.HTTP.DownstreamCxDrainClose.Inc()
		}
	}
}
