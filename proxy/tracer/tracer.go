// Package tracer makes hopwatch-proxy's spans: one server span for each
// downstream request and one client span for each upstream attempt, named
// and tagged as Envoy tags its spans, on a tracing.Provider.
//
// The request path pays for tracing only when it is configured (a nil
// *Tracer does nothing), and pays little for requests that are not sampled:
// the SDK's non-recording span carries the decision on to the next hop, and
// no attribute is built for it.
package tracer

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
	"github.com/hopwatch/hopwatch/tracing"
)

// Instrumentation is the tracer name on every span the proxy makes.
const Instrumentation = "github.com/hopwatch/hopwatch/proxy"

// Headers that force tracing, as in Envoy.
const (
	// HeaderForceTrace (x-envoy-force-trace) forces tracing of an internal
	// request; external requests lose it at an edge listener with the other
	// x-envoy-* headers, and it is ignored on them anyway.
	HeaderForceTrace = "X-Envoy-Force-Trace"
	// HeaderClientTraceID (x-client-trace-id) lets a client ask for its
	// request to be traced, as Envoy's client_sampling (100% by default).
	HeaderClientTraceID = "X-Client-Trace-Id"
)

// AttrResendCount is the semantic-convention attribute on the client span of
// a retry: how many attempts went before it.
const AttrResendCount = attribute.Key("http.request.resend_count")

// Tracer makes one proxy's spans. Its methods are safe for concurrent use;
// all of them accept a nil *Tracer, which traces nothing.
type Tracer struct {
	provider *tracing.Provider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	nodeID   string
	zone     string
	// contextKeys are the canonical names of the headers the propagators
	// read: a request carrying none of them has no parent to continue.
	contextKeys []string
	// onlyTraceContext: the propagators write nothing for an unsampled
	// root but traceparent (W3C tracecontext, with or without baggage),
	// which the fast path then formats itself.
	onlyTraceContext bool
}

// New returns a Tracer on p, tagging spans with the proxy's node ID and zone
// (Envoy's node_id and zone tags). A nil p gives a nil Tracer.
func New(p *tracing.Provider, nodeID, zone string) *Tracer {
	if p == nil {
		return nil
	}
	t := &Tracer{provider: p, tracer: p.Tracer(Instrumentation), prop: p.Propagator(), nodeID: nodeID, zone: zone}
	t.onlyTraceContext = true
	for _, f := range t.prop.Fields() {
		t.contextKeys = append(t.contextKeys, canonicalKey(f))
		switch f {
		case "traceparent", "tracestate", "baggage":
		default:
			t.onlyTraceContext = false
		}
	}
	return t
}

// Provider returns the provider the Tracer records to.
func (t *Tracer) Provider() *tracing.Provider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Reason says why a request was or was not traced: Envoy's tracing
// decision reasons, which the http.<prefix>.tracing.* counters count.
type Reason uint8

// The reasons, as Envoy charges them.
const (
	// NotTraceable: the request was not sampled (Envoy counts every
	// untraced request as not_traceable).
	NotTraceable Reason = iota
	// Sampling: sampled by the ratio, or because its parent was sampled
	// (in Envoy the reason travels inside x-request-id; here the parent's
	// sampled flag carries it).
	Sampling
	// ServiceForced: x-envoy-force-trace on an internal request.
	ServiceForced
	// ClientForced: x-client-trace-id.
	ClientForced
)

// Inbound is what StartServer needs to know about a downstream request.
type Inbound struct {
	// Header is the request's header set after the connection manager's
	// sanitising (x-envoy-* headers of external requests already removed).
	Header http.Header
	// RequestID is the request's x-request-id; the sampler decides from it
	// when there is no parent, so that every hop agrees.
	RequestID string
	// Internal reports whether the request comes from an internal address,
	// which x-envoy-force-trace requires.
	Internal bool
	// Name is the span name (see SpanName).
	Name string
}

// SpanName is the server span's default name: the request's :authority,
// Envoy's host-based default (Envoy names egress spans "egress <host>" and
// ingress spans "ingress"; a hopwatch listener has no direction, so the
// host alone). A route's decorator replaces it (Span.SetName).
func SpanName(authority string) string { return authority }

// StartServer continues the trace context the request carries (in any of
// the configured propagation formats), or starts a trace, and starts the
// request's server span. ctx is the request's context; the returned one
// holds the span and is the parent of its client spans. The span is
// non-recording when the request is not sampled, and nil when it is a root
// request (no trace context, no forcing) that its x-request-id leaves
// untraced: the fast path, which costs no span and no allocation. Either
// way StartClient passes the decision on, so the next hop keeps it.
func (t *Tracer) StartServer(ctx context.Context, in Inbound) (context.Context, trace.Span, Reason) {
	if t == nil {
		return ctx, nil, NotTraceable
	}
	cid := in.Header[HeaderClientTraceID]
	clientForced := len(cid) > 0 && cid[0] != ""
	serviceForced := in.Internal && forceTrace(in.Header)
	if !clientForced && !serviceForced && !t.carriesContext(in.Header) {
		if sampled, ok := t.provider.RootDecision(in.RequestID); ok && !sampled {
			// The common case at a low sampling ratio: a root request
			// that x-request-id leaves untraced. No span, no context,
			// no allocation; StartClient passes the decision on.
			return ctx, nil, NotTraceable
		}
	}
	ctx = t.prop.Extract(ctx, headerCarrier(in.Header))
	if clientForced || serviceForced {
		ctx = tracing.WithForcedSampling(ctx)
	}
	var ctxOut context.Context
	var span trace.Span
	if in.RequestID != "" {
		ctxOut, span = t.tracer.Start(ctx, in.Name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(tracing.AttrRequestID.String(in.RequestID)))
	} else {
		ctxOut, span = t.tracer.Start(ctx, in.Name, trace.WithSpanKind(trace.SpanKindServer))
	}
	reason := NotTraceable
	switch {
	case !span.SpanContext().IsSampled():
	case clientForced:
		reason = ClientForced
	case serviceForced:
		reason = ServiceForced
	default:
		reason = Sampling
	}
	return ctxOut, span, reason
}

// carriesContext reports whether h has any header the propagators read.
func (t *Tracer) carriesContext(h http.Header) bool {
	for _, k := range t.contextKeys {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// forceTrace reports whether x-envoy-force-trace is set. Envoy acts on the
// header's presence; "false" is read as a request not to force.
func forceTrace(h http.Header) bool {
	v := h[HeaderForceTrace]
	return len(v) > 0 && !strings.EqualFold(v[0], "false")
}

// EndServer records how the request ended on its server span and ends it.
// aborted is true when the response was cut off. It fills info's TraceID
// and SpanID when the request was sampled, so the access-log line and the
// span name each other.
func (t *Tracer) EndServer(span trace.Span, info *streaminfo.Info, aborted bool) {
	if t == nil || span == nil {
		return
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	sc := span.SpanContext()
	info.TraceID = sc.TraceID().String()
	info.SpanID = sc.SpanID().String()
	path, _, _ := strings.Cut(info.Path, "?")
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		tracing.AttrHTTPRequestMethod.String(info.Method),
		tracing.AttrURLPath.String(path),
		tracing.AttrServerAddress.String(hostOnly(info.Authority)),
		tracing.AttrNetworkPeerAddress.String(hostOnly(info.DownstreamRemoteAddress)),
		tracing.AttrResponseFlags.String(info.ResponseFlags.String()),
		tracing.AttrNodeID.String(t.nodeID),
		tracing.AttrZone.String(t.zone),
		tracing.AttrComponent.String(tracing.ComponentProxy),
	)
	if info.UserAgent != "" {
		attrs = append(attrs, tracing.AttrUserAgentOriginal.String(info.UserAgent))
	}
	if info.UpstreamCluster != "" {
		attrs = append(attrs, tracing.AttrUpstreamCluster.String(info.UpstreamCluster))
	}
	if info.ResponseCode != 0 {
		attrs = append(attrs, tracing.AttrHTTPResponseStatusCode.Int(info.ResponseCode))
	}
	span.SetAttributes(attrs...)
	switch {
	case aborted:
		span.SetStatus(codes.Error, "response aborted: "+info.ResponseFlags.String())
	case info.ResponseCode == 0:
		span.SetStatus(codes.Error, "no response sent: "+info.ResponseFlags.String())
	case info.ResponseCode >= 500:
		span.SetStatus(codes.Error, strconv.Itoa(info.ResponseCode)+" "+info.ResponseCodeDetails)
	}
	span.End()
}

// Outbound is what StartClient needs to know about one upstream attempt.
type Outbound struct {
	// Header is the header set sent upstream; the attempt's trace context
	// is written into it.
	Header http.Header
	// Cluster and HostAddress say where the attempt goes.
	Cluster     string
	HostAddress string
	// Method and Path are the request line sent upstream.
	Method string
	Path   string
	// RequestID is the request's x-request-id.
	RequestID string
	// Attempt counts from 1.
	Attempt int
}

// StartClient starts the client span of one upstream attempt as a child of
// the server span in ctx and writes its context into out.Header with the
// configured propagators, so each attempt carries its own span ID. When the
// server span is not sampled no span is started: its (unsampled) context is
// written instead, so the next hop keeps the decision, and nil is returned.
func (t *Tracer) StartClient(ctx context.Context, out Outbound) trace.Span {
	if t == nil {
		return nil
	}
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		if parent.SpanContext().IsValid() {
			t.prop.Inject(ctx, headerCarrier(out.Header))
		} else {
			t.injectUnsampledRoot(ctx, out.Header)
		}
		return nil
	}
	// Envoy's router names its child spans "router <cluster> egress".
	cctx, span := t.tracer.Start(ctx, "router "+out.Cluster+" egress", trace.WithSpanKind(trace.SpanKindClient))
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs,
		tracing.AttrHTTPRequestMethod.String(out.Method),
		tracing.AttrURLPath.String(out.Path),
		tracing.AttrServerAddress.String(hostOnly(out.HostAddress)),
		tracing.AttrUpstreamCluster.String(out.Cluster),
		tracing.AttrComponent.String(tracing.ComponentProxy),
		tracing.AttrNodeID.String(t.nodeID),
		tracing.AttrZone.String(t.zone),
	)
	if out.RequestID != "" {
		attrs = append(attrs, tracing.AttrRequestID.String(out.RequestID))
	}
	if out.Attempt > 1 {
		attrs = append(attrs, AttrResendCount.Int(out.Attempt-1))
	}
	span.SetAttributes(attrs...)
	t.prop.Inject(cctx, headerCarrier(out.Header))
	return span
}

// injectUnsampledRoot passes on the decision of a request that
// StartServer left untraced without a span (its fast path): a fresh trace
// and span ID, not sampled, so that the next hop does not start a trace of
// its own. Each attempt gets its own IDs; nothing is recorded under them.
func (t *Tracer) injectUnsampledRoot(ctx context.Context, h http.Header) {
	if !t.onlyTraceContext {
		tid, sid := newTraceID(), newSpanID()
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
		t.prop.Inject(trace.ContextWithSpanContext(ctx, sc), headerCarrier(h))
		return
	}
	// W3C traceparent, version 00, flags 00 (not sampled): what
	// propagation.TraceContext writes for this context, made in bulk
	// without building the context first (traceparent_slab.go).
	h["Traceparent"] = unsampledTraceparent()
}

// newTraceID and newSpanID return random, valid (non-zero) IDs from the
// runtime's per-thread generator, which takes no lock.
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.LittleEndian.PutUint64(id[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.LittleEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// EndClient records how an attempt ended and ends its span: status is the
// upstream's response status, 0 when none arrived; failure says why the
// attempt failed or was abandoned ("" when it did not). A nil span (the
// request was not sampled) is ignored.
func EndClient(span trace.Span, status int, failure string) {
	if span == nil {
		return
	}
	if status != 0 {
		span.SetAttributes(tracing.AttrHTTPResponseStatusCode.Int(status))
	}
	switch {
	case failure != "":
		span.SetStatus(codes.Error, failure)
	case status >= 500:
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}

// hostOnly strips the port from host:port (and the brackets of an IPv6
// literal); anything else is returned as it is.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// headerCarrier adapts http.Header to propagation.TextMapCarrier. The
// propagators ask for lower-case names; http.Header.Get would canonicalise
// (and allocate) on every call, so the names they use are mapped to their
// canonical forms here.
type headerCarrier http.Header

// canonicalKey returns the canonical form of the propagation headers'
// names without allocating, and the textproto form for any other.
func canonicalKey(k string) string {
	switch k {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	case "b3":
		return "B3"
	case "x-b3-traceid":
		return "X-B3-Traceid"
	case "x-b3-spanid":
		return "X-B3-Spanid"
	case "x-b3-parentspanid":
		return "X-B3-Parentspanid"
	case "x-b3-sampled":
		return "X-B3-Sampled"
	case "x-b3-flags":
		return "X-B3-Flags"
	case "uber-trace-id":
		return "Uber-Trace-Id"
	}
	return http.CanonicalHeaderKey(k)
}

// Get implements propagation.TextMapCarrier.
func (c headerCarrier) Get(key string) string {
	if v := c[canonicalKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set implements propagation.TextMapCarrier; it replaces any value.
func (c headerCarrier) Set(key, value string) { c[canonicalKey(key)] = []string{value} }

// Keys implements propagation.TextMapCarrier (the Jaeger propagator reads
// uberctx-* baggage through it).
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, strings.ToLower(k))
	}
	return keys
}
