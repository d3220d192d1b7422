package proxy

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/periodic"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/tracer"
	"github.com/hopwatch/hopwatch/tracing"
)

// This file connects the tracing provider to the proxy's lifecycle, in
// tracerSet. The provider is built at Start from the tracing: section; a
// reload that changes the section (or the node identity it borrows) builds
// a new one, which new snapshots use, while requests already running
// finish on the old one; the old one is shut down (flushing) after
// retireGrace. Shutdown flushes the current one.

// Option adjusts a Server beyond its configuration file.
type Option func(*Server)

// WithTracingOptions passes options to tracing.Setup whenever the proxy
// builds its tracing provider (tests and benchmarks send spans to an
// in-memory or discarding exporter with tracing.WithExporter).
func WithTracingOptions(opts ...tracing.Option) Option {
	return func(s *Server) { s.tracers.opts = append(s.tracers.opts, opts...) }
}

// retireGrace is how long a provider replaced by a reload keeps recording
// for requests that started before the reload; then it is shut down, which
// exports what it holds. Longer than the default route timeout (15s), so
// ordinary requests end their spans in time; spans of longer streams are
// dropped uncounted.
const retireGrace = 20 * time.Second

// shutdownFlushTimeout bounds the final flush at Shutdown beyond the
// exporter's own timeout, so that a collector that is down cannot hold
// the proxy's exit for long.
const shutdownFlushExtra = time.Second

// tracingConfig is the tracing.Config the proxy sets up from cfg, and false
// when tracing is off. The node's identity fills what the section leaves
// unset and the environment does not give: service.name is node.cluster
// (Envoy's --service-cluster, which Envoy's tracers use), else node.id;
// service.instance.id is node.id; the zone is node.zone.
func tracingConfig(cfg *config.Config, lookupEnv func(string) (string, bool)) (tracing.Config, bool) {
	if cfg.Tracing == nil {
		return tracing.Config{}, false
	}
	tc := *cfg.Tracing
	tc.ResourceAttributes = maps.Clone(cfg.Tracing.ResourceAttributes)
	env := func(name string) string { v, _ := lookupEnv(name); return v }
	envAttrs, _ := tracing.ParseResourceAttributes(env(tracing.EnvResourceAttributes))
	if tc.ServiceName == "" && env(tracing.EnvServiceName) == "" && envAttrs["service.name"] == "" && tc.ResourceAttributes["service.name"] == "" {
		tc.ServiceName = cmp.Or(cfg.Node.Cluster, cfg.Node.ID)
	}
	if tc.InstanceID == "" && envAttrs["service.instance.id"] == "" && tc.ResourceAttributes["service.instance.id"] == "" {
		tc.InstanceID = cfg.Node.ID
	}
	if tc.Zone == "" {
		tc.Zone = cfg.Node.Zone
	}
	return tc, true
}

// tracerSet owns the tracing providers: the current one (nil when tracing
// is off), built from cfg, and those replaced by a reload and not yet shut
// down (retiring). retiredSent and retiredDropped are the final counts of
// the ones shut down, which stats (nil without tracing or stats) adds to.
// Its lock is its own: the Server calls it with Server.mu held, never the
// other way round.
type tracerSet struct {
	log   *slog.Logger
	opts  []tracing.Option
	store *stats.Store

	mu             sync.Mutex
	current        *tracer.Tracer
	cfg            tracing.Config
	retiring       map[*tracer.Tracer]bool
	retiredSent    uint64
	retiredDropped uint64
	stats          *stats.TracerStats
}

func newTracerSet(log *slog.Logger, store *stats.Store) *tracerSet {
	return &tracerSet{log: log, store: store, retiring: map[*tracer.Tracer]bool{}}
}

// tracerChange is the tracer a reloaded configuration needs: the running
// one when nothing tracing depends on changed, else a new one (changed),
// which the reload installs or, if it fails, discards.
type tracerChange struct {
	t       *tracer.Tracer
	cfg     tracing.Config
	changed bool
}

// newTracer sets up a provider for cfg, or returns nil when tracing is off.
func (ts *tracerSet) newTracer(ctx context.Context, cfg *config.Config) (*tracer.Tracer, tracing.Config, error) {
	tc, on := tracingConfig(cfg, os.LookupEnv)
	if !on {
		return nil, tc, nil
	}
	opts := append([]tracing.Option{tracing.WithLogger(ts.log)}, ts.opts...)
	p, err := tracing.Setup(ctx, tc, opts...)
	if err != nil {
		return nil, tc, err
	}
	if p == nil { // OTEL_SDK_DISABLED=true
		ts.log.Info("tracing is configured but OTEL_SDK_DISABLED=true turns it off")
		return nil, tc, nil
	}
	rc := p.Config()
	ts.log.Info("tracing on", "service_name", rc.ServiceName, "endpoint", rc.Endpoint, "protocol", rc.Protocol,
		"sampling_ratio", *rc.SamplingRatio, "propagators", rc.Propagators)
	return tracer.New(p, cfg.Node.ID, cfg.Node.Zone), tc, nil
}

// start builds the first provider.
func (ts *tracerSet) start(ctx context.Context, cfg *config.Config) error {
	t, tc, err := ts.newTracer(ctx, cfg)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.current, ts.cfg = t, tc
	if t != nil {
		ts.stats = ts.store.TracerStats()
	}
	return nil
}

// tracer is the current Tracer, nil when tracing is off.
func (ts *tracerSet) tracer() *tracer.Tracer {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.current
}

// prepare returns the Tracer cfg needs, prev being the running
// configuration.
func (ts *tracerSet) prepare(ctx context.Context, cfg, prev *config.Config) (tracerChange, error) {
	next, _ := tracingConfig(cfg, os.LookupEnv)
	ts.mu.Lock()
	cur, curCfg := ts.current, ts.cfg
	ts.mu.Unlock()
	if reflect.DeepEqual(next, curCfg) && (cfg.Tracing == nil) == (prev.Tracing == nil) &&
		cfg.Node.ID == prev.Node.ID && cfg.Node.Zone == prev.Node.Zone {
		return tracerChange{t: cur, cfg: curCfg}, nil
	}
	t, tc, err := ts.newTracer(ctx, cfg)
	if err != nil {
		return tracerChange{}, err
	}
	return tracerChange{t: t, cfg: tc, changed: true}, nil
}

// discard shuts down a Tracer prepared for a reload that failed.
func (ts *tracerSet) discard(c tracerChange) {
	if c.changed && c.t != nil {
		ts.shutdownProvider(c.t)
	}
}

// install makes c's Tracer the current one and retires the previous one,
// after the new snapshots are in place.
func (ts *tracerSet) install(c tracerChange) {
	if !c.changed {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	old := ts.current
	ts.current, ts.cfg = c.t, c.cfg
	if c.t != nil && ts.stats == nil {
		ts.stats = ts.store.TracerStats()
	}
	ts.log.Info("tracing configuration changed; new requests use the new tracing provider", "tracing", c.t != nil)
	if old == nil {
		return
	}
	ts.retiring[old] = true
	time.AfterFunc(retireGrace, func() { ts.retire(old) })
}

// retire shuts down a replaced Tracer's provider and keeps its final
// counts, so tracing.opentelemetry.* stay monotonic across reloads.
func (ts *tracerSet) retire(t *tracer.Tracer) {
	ts.mu.Lock()
	pending := ts.retiring[t]
	delete(ts.retiring, t)
	ts.mu.Unlock()
	if !pending {
		return // stop got to it first
	}
	sent, dropped := ts.shutdownProvider(t)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.retiredSent += sent
	ts.retiredDropped += dropped
	ts.updateStatsLocked()
}

// shutdownProvider flushes and stops t's provider and returns its final
// counts. It takes no lock.
func (ts *tracerSet) shutdownProvider(t *tracer.Tracer) (sent, dropped uint64) {
	p := t.Provider()
	timeout := p.Config().Batch.ExportTimeout.D() + shutdownFlushExtra
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		ts.log.Warn("tracing: flushing spans at shutdown failed", "err", err)
	}
	return p.Exported(), p.Dropped()
}

// stop flushes and stops every provider, the current one and any still
// retiring; called after the listeners stopped.
func (ts *tracerSet) stop() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	all := make([]*tracer.Tracer, 0, len(ts.retiring)+1)
	for t := range ts.retiring {
		all = append(all, t)
	}
	clear(ts.retiring)
	if ts.current != nil {
		all = append(all, ts.current)
		ts.current = nil
	}
	for _, t := range all {
		sent, dropped := ts.shutdownProvider(t)
		ts.retiredSent += sent
		ts.retiredDropped += dropped
	}
	ts.updateStatsLocked()
}

// refreshStats keeps tracing.opentelemetry.* current, away from any
// request, until ctx ends.
func (ts *tracerSet) refreshStats(ctx context.Context) {
	periodic.Every(ctx, time.Second, func(time.Time) {
		ts.mu.Lock()
		ts.updateStatsLocked()
		ts.mu.Unlock()
	})
}

// updateStatsLocked brings tracing.opentelemetry.spans_sent and
// spans_dropped up to the providers' counts: the retired providers' final
// ones plus the current one's. A provider still retiring is not counted
// until it is shut down, so the totals may pause but never go back.
func (ts *tracerSet) updateStatsLocked() {
	st := ts.stats
	if st == nil {
		return
	}
	sent, dropped := ts.retiredSent, ts.retiredDropped
	if p := ts.current.Provider(); p != nil {
		sent += p.Exported()
		dropped += p.Dropped()
	}
	if v := st.SpansSent.Value(); sent > v {
		st.SpansSent.Add(sent - v)
	}
	if v := st.SpansDropped.Value(); dropped > v {
		st.SpansDropped.Add(dropped - v)
	}
}
