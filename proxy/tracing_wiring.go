package proxy

import (
	"cmp"
	"context"
	"maps"
	"os"
	"reflect"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/tracer"
	"github.com/hopwatch/hopwatch/tracing"
)

// This file connects the tracing provider to the proxy's lifecycle. The
// provider is built at Start from the tracing: section; a reload that
// changes the section (or the node identity it borrows) builds a new one,
// which new snapshots use, while requests already running finish on the
// old one; the old one is shut down (flushing) after retireGrace. Shutdown
// flushes the current one.

// Option adjusts a Server beyond its configuration file.
type Option func(*Server)

// WithTracingOptions passes options to tracing.Setup whenever the proxy
// builds its tracing provider (tests and benchmarks send spans to an
// in-memory or discarding exporter with tracing.WithExporter).
func WithTracingOptions(opts ...tracing.Option) Option {
	return func(s *Server) { s.tracingOpts = append(s.tracingOpts, opts...) }
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

// newTracer sets up a provider for cfg, or returns nil when tracing is off.
func (s *Server) newTracer(ctx context.Context, cfg *config.Config) (*tracer.Tracer, tracing.Config, error) {
	tc, on := tracingConfig(cfg, os.LookupEnv)
	if !on {
		return nil, tc, nil
	}
	opts := append([]tracing.Option{tracing.WithLogger(s.log)}, s.tracingOpts...)
	p, err := tracing.Setup(ctx, tc, opts...)
	if err != nil {
		return nil, tc, err
	}
	if p == nil { // OTEL_SDK_DISABLED=true
		s.log.Info("tracing is configured but OTEL_SDK_DISABLED=true turns it off")
		return nil, tc, nil
	}
	rc := p.Config()
	s.log.Info("tracing on", "service_name", rc.ServiceName, "endpoint", rc.Endpoint, "protocol", rc.Protocol,
		"sampling_ratio", *rc.SamplingRatio, "propagators", rc.Propagators)
	return tracer.New(p, cfg.Node.ID, cfg.Node.Zone), tc, nil
}

// startTracing builds the first provider. Called with s.mu held.
func (s *Server) startTracing(ctx context.Context) error {
	t, tc, err := s.newTracer(ctx, s.cfg)
	if err != nil {
		return err
	}
	s.tracer, s.tracingCfg = t, tc
	if t != nil && s.statsOn() {
		s.tracerStats = s.store.TracerStats()
	}
	return nil
}

// reloadTracer returns the Tracer the reloaded configuration needs: the
// running one when nothing tracing depends on changed, else a new one
// (changed is then true, and the caller either installs it with
// swapTracer or, if the reload fails, shuts it down).
func (s *Server) reloadTracer(ctx context.Context, cfg *config.Config) (t *tracer.Tracer, tc tracing.Config, changed bool, err error) {
	next, _ := tracingConfig(cfg, os.LookupEnv)
	if reflect.DeepEqual(next, s.tracingCfg) && (cfg.Tracing == nil) == (s.cfg.Tracing == nil) &&
		cfg.Node.ID == s.cfg.Node.ID && cfg.Node.Zone == s.cfg.Node.Zone {
		return s.tracer, s.tracingCfg, false, nil
	}
	t, tc, err = s.newTracer(ctx, cfg)
	if err != nil {
		return nil, tc, false, err
	}
	return t, tc, true, nil
}

// swapTracer installs t and retires the previous Tracer. Called with s.mu
// held, after the new snapshots are in place.
func (s *Server) swapTracer(t *tracer.Tracer, tc tracing.Config) {
	old := s.tracer
	s.tracer, s.tracingCfg = t, tc
	if t != nil && s.statsOn() && s.tracerStats == nil {
		s.tracerStats = s.store.TracerStats()
	}
	s.log.Info("tracing configuration changed; new requests use the new tracing provider", "tracing", t != nil)
	if old == nil {
		return
	}
	s.retiring[old] = true
	time.AfterFunc(retireGrace, func() { s.retire(old) })
}

// retire shuts down a replaced Tracer's provider and keeps its final
// counts, so tracing.opentelemetry.* stay monotonic across reloads.
func (s *Server) retire(t *tracer.Tracer) {
	s.mu.Lock()
	pending := s.retiring[t]
	delete(s.retiring, t)
	s.mu.Unlock()
	if !pending {
		return // Shutdown got to it first
	}
	sent, dropped := s.shutdownProvider(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retiredSent += sent
	s.retiredDropped += dropped
	s.updateTracerStatsLocked()
}

// shutdownProvider flushes and stops t's provider and returns its final
// counts. It takes no lock.
func (s *Server) shutdownProvider(t *tracer.Tracer) (sent, dropped uint64) {
	p := t.Provider()
	timeout := p.Config().Batch.ExportTimeout.D() + shutdownFlushExtra
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		s.log.Warn("tracing: flushing spans at shutdown failed", "err", err)
	}
	return p.Exported(), p.Dropped()
}

// stopTracingLocked flushes and stops every provider, the current one and
// any still retiring. Called with s.mu held, after the listeners stopped.
func (s *Server) stopTracingLocked() {
	ts := make([]*tracer.Tracer, 0, len(s.retiring)+1)
	for t := range s.retiring {
		ts = append(ts, t)
	}
	clear(s.retiring)
	if s.tracer != nil {
		ts = append(ts, s.tracer)
		s.tracer = nil
	}
	for _, t := range ts {
		sent, dropped := s.shutdownProvider(t)
		s.retiredSent += sent
		s.retiredDropped += dropped
	}
	s.updateTracerStatsLocked()
}

// refreshTracerStats keeps tracing.opentelemetry.* current, away from any
// request, until ctx ends.
func (s *Server) refreshTracerStats(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.updateTracerStats()
		}
	}
}

// updateTracerStats brings tracing.opentelemetry.spans_sent and
// spans_dropped up to the providers' counts: the retired providers' final
// ones plus the current one's. A provider still retiring is not counted
// until it is shut down, so the totals may pause but never go back.
func (s *Server) updateTracerStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateTracerStatsLocked()
}

func (s *Server) updateTracerStatsLocked() {
	st := s.tracerStats
	if st == nil {
		return
	}
	sent, dropped := s.retiredSent, s.retiredDropped
	if p := s.tracer.Provider(); p != nil {
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
