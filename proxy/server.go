// Package proxy is hopwatch-proxy as a library: it loads a configuration,
// starts the listeners and the admin server, reloads without failing a
// request, and drains gracefully on shutdown.
//
// The pieces live in sub-packages named after Envoy's architecture:
// listener → connmgr (HTTP connection manager) → route → router → cluster.
package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/proxy/admin"
	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/connmgr"
	"github.com/hopwatch/hopwatch/proxy/listener"
	"github.com/hopwatch/hopwatch/proxy/periodic"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/tracer"
)

// Version is hopwatch-proxy's version, reported by /server_info.
var Version = "dev"

// Server is a running proxy.
type Server struct {
	path string
	log  *slog.Logger

	// mu serialises Start, Reload and Shutdown.
	mu        sync.Mutex
	cfg       *config.Config
	clusters  *cluster.Manager
	listeners map[string]*liveListener // by listener name
	logs      *accessLogs
	admin     *http.Server
	adminLn   net.Listener

	// store holds every stat for the life of the process: stats are keyed
	// by name, so a reload that keeps a cluster or listener keeps its
	// counts. flusher sends them to the configured StatsD sinks. With
	// stats_config.disabled the store is a null one (stats.NewNullStore):
	// everything counts into stats nobody reads, and no flusher runs.
	store   *stats.Store
	server  *stats.ServerStats
	flusher *stats.Flusher

	// tracers owns the tracing providers (tracing_wiring.go).
	tracers *tracerSet

	draining     atomic.Bool
	healthFailed atomic.Bool
	// initialized is set once Start has bound every listener: until then
	// /ready answers 503 INITIALIZING, as Envoy's does, so that nothing
	// (a readiness probe, a test) sends traffic to a port not yet bound.
	initialized atomic.Bool
	started     time.Time
	loads       atomic.Uint64
	rejects     atomic.Uint64
	lastErr     atomic.Pointer[string]

	// loadedStamp is the configuration file's stamp taken just before New
	// read it. WatchConfig starts from it rather than from the file as it
	// is when the watcher happens to start, which would silently miss an
	// edit made in between (the watcher starts after Start, on its own
	// goroutine).
	loadedStamp fileStamp
}

type liveListener struct {
	ln  *listener.Listener
	mgr *connmgr.Manager
}

// New loads the configuration at path. It does not start anything.
func New(path string, log *slog.Logger, opts ...Option) (*Server, error) {
	// Stamp first: an edit racing with the load then shows as a change.
	stamp := statFile(path)
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	newStore := stats.NewStore
	if cfg.StatsConfig.Disabled {
		newStore = stats.NewNullStore
	}
	store, err := newStore(stats.Config{HistogramBuckets: cfg.StatsConfig.HistogramBuckets, MaxStats: cfg.StatsConfig.MaxStats,
		FixedTags: cfg.StatsConfig.FixedTags()})
	if err != nil {
		return nil, fmt.Errorf("%s: stats_config: %w", path, err)
	}
	s := &Server{path: path, log: log, cfg: cfg, store: store, listeners: map[string]*liveListener{}, logs: newAccessLogs(), loadedStamp: stamp}
	s.tracers = newTracerSet(log, store)
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Stats returns the stats store.
func (s *Server) Stats() *stats.Store { return s.store }

// Start binds the admin server and every listener.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = time.Now()
	s.server = s.store.ServerStats()
	s.server.Live.Set(1)
	clusters, err := cluster.NewManagerWithOptions(ctx, s.cfg.Clusters, nil, s.log, s.clusterOptions(s.cfg))
	if err != nil {
		return err
	}
	s.clusters = clusters
	if err := s.tracers.start(ctx, s.cfg); err != nil {
		clusters.Close()
		return err
	}
	if err := s.startFlusher(ctx); err != nil {
		clusters.Close()
		s.tracers.stop()
		return err
	}
	go s.refreshMembership(ctx)
	go s.tracers.refreshStats(ctx)
	if err := s.startAdmin(ctx); err != nil {
		clusters.Close()
		s.tracers.stop()
		return err
	}
	for i := range s.cfg.Listeners {
		lc := &s.cfg.Listeners[i]
		snap, err := buildSnapshot(s.cfg, lc, s.snapshotDeps(clusters, s.tracers.tracer()))
		if err == nil {
			err = s.startListener(ctx, lc, snap)
		}
		if err != nil {
			s.stopLocked(ctx)
			return err
		}
	}
	s.setCertExpiry()
	s.logs.closeUnused(s.cfg)
	s.loads.Add(1)
	s.initialized.Store(true)
	return nil
}

func (s *Server) startAdmin(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Admin.Address)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.adminLn = ln
	s.admin = &http.Server{Handler: admin.Handler(s, map[string]http.Handler{
		"/stats":            s.store.StatsHandler(),
		"/stats/prometheus": s.store.PrometheusHandler(),
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.admin.Serve(ln) }()
	s.log.Info("admin server started", "address", ln.Addr().String())
	return nil
}

// AdminAddr is the admin server's bound address.
func (s *Server) AdminAddr() net.Addr { return s.adminLn.Addr() }

// ListenerAddr is the bound address of the named listener, or nil.
func (s *Server) ListenerAddr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listeners[name]; l != nil {
		return l.ln.Addr()
	}
	return nil
}

// snapshotDeps are the running pieces a snapshot built now refers to.
func (s *Server) snapshotDeps(clusters *cluster.Manager, tr *tracer.Tracer) snapshotDeps {
	return snapshotDeps{clusters: clusters, store: s.store, tracer: tr, logs: s.logs}
}

// startListener binds lc's listener, serving snap, and registers it. On
// failure snap is closed (its rate-limit client): it never served.
func (s *Server) startListener(ctx context.Context, lc *config.Listener, snap *connmgr.Snapshot) error {
	mgr := connmgr.New(snap, &s.draining)
	ln, err := listener.Listen(ctx, lc, mgr, s.listenerStats(lc), s.log)
	if err != nil {
		_ = snap.Close()
		return err
	}
	// A port-0 listener learns its address only now.
	s.setListenerHTTPStats(snap, ln, lc)
	s.listeners[lc.Name] = &liveListener{ln: ln, mgr: mgr}
	s.log.Info("listener started", "listener", lc.Name, "address", ln.Addr().String(), "stat_prefix", lc.StatPrefix)
	return nil
}

// Reload reads the configuration file again and applies it. A file that
// does not load or validate is refused with the reason, and the running
// configuration keeps serving. Listeners that appear are started and
// listeners that disappear are drained.
func (s *Server) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.reloadLocked(ctx)
	if err != nil {
		s.rejects.Add(1)
		msg := err.Error()
		s.lastErr.Store(&msg)
		return err
	}
	s.loads.Add(1)
	return nil
}

func (s *Server) reloadLocked(ctx context.Context) error {
	cfg, err := config.Load(s.path)
	if err != nil {
		return err
	}
	if cfg.Admin.Address != s.cfg.Admin.Address {
		return fmt.Errorf("admin.address changed from %s to %s: the admin address cannot change on reload; restart the proxy", s.cfg.Admin.Address, cfg.Admin.Address)
	}
	for i := range cfg.Listeners {
		if old := s.listeners[cfg.Listeners[i].Name]; old != nil && old.ln.Config().Address != cfg.Listeners[i].Address {
			return fmt.Errorf("listener %q: address changed from %s to %s: rename the listener to move it", cfg.Listeners[i].Name, old.ln.Config().Address, cfg.Listeners[i].Address)
		}
	}
	if !slices.Equal(cfg.StatsConfig.HistogramBuckets, s.cfg.StatsConfig.HistogramBuckets) {
		return fmt.Errorf("stats_config.histogram_buckets changed: histogram buckets cannot change on reload; restart the proxy")
	}
	if !reflect.DeepEqual(cfg.StatsSinks, s.cfg.StatsSinks) || !reflect.DeepEqual(cfg.StatsConfig, s.cfg.StatsConfig) {
		// Counter deltas are tracked by the running flusher; a new one
		// would resend every total. Keep it and say so.
		s.log.Warn("stats_sinks and stats_config changes take effect on restart; the running stats sinks are kept")
		cfg.StatsSinks, cfg.StatsConfig = s.cfg.StatsSinks, s.cfg.StatsConfig
	}
	tc, err := s.tracers.prepare(ctx, cfg, s.cfg)
	if err != nil {
		return err
	}
	clusters, err := cluster.NewManagerWithOptions(ctx, cfg.Clusters, s.clusters, s.log, s.clusterOptions(cfg))
	if err != nil {
		s.tracers.discard(tc)
		return err
	}
	// Compile every snapshot before touching anything, so that a bad
	// listener leaves the running configuration whole.
	snaps := make([]*connmgr.Snapshot, len(cfg.Listeners))
	for i := range cfg.Listeners {
		if snaps[i], err = buildSnapshot(cfg, &cfg.Listeners[i], s.snapshotDeps(clusters, tc.t)); err != nil {
			for _, snap := range snaps[:i] {
				_ = snap.Close()
			}
			clusters.Close()
			s.tracers.discard(tc)
			return err
		}
	}
	// A provider built for this reload is shut down if the reload fails,
	// installed (and the previous one retired) once its snapshots are ready.
	s.tracers.install(tc)
	keep := map[string]bool{}
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		keep[lc.Name] = true
		if live := s.listeners[lc.Name]; live != nil {
			s.setListenerHTTPStats(snaps[i], live.ln, lc)
			live.ln.SetStats(s.listenerStats(lc)(live.ln.Addr()))
			live.mgr.Snapshot().Retire(rateLimitGrace)
			live.mgr.Swap(snaps[i])
			if err := live.ln.Update(lc); err != nil {
				s.log.Error("listener update failed; it keeps its previous server settings", "listener", lc.Name, "err", err)
			}
			continue
		}
		if err := s.startListener(ctx, lc, snaps[i]); err != nil {
			s.log.Error("new listener failed to start", "listener", lc.Name, "err", err)
		}
	}
	for name, live := range s.listeners {
		if !keep[name] {
			delete(s.listeners, name)
			// The drain outlives the reload call: detach it from the caller's context.
			go func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Lifecycle.DrainTime.D()+time.Second)
				defer cancel()
				_ = live.ln.Shutdown(ctx)
				_ = live.mgr.Snapshot().Close()
			}()
			s.log.Info("listener removed", "listener", name)
		}
	}
	old := s.clusters
	s.clusters = clusters
	s.cfg = cfg
	// Requests that started before the swap may still use the old cluster
	// manager's transports; closing it only closes idle connections of
	// clusters that were not carried over.
	old.Close()
	s.setCertExpiry()
	s.logs.closeUnused(cfg)
	s.log.Info("configuration reloaded", "path", s.path, "listeners", len(cfg.Listeners), "clusters", len(cfg.Clusters))
	return nil
}

// ReopenLogs reopens every access-log file, for log rotation (SIGUSR1).
func (s *Server) ReopenLogs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs.reopen(func(path string, err error) {
		s.log.Error("reopening access log failed", "path", path, "err", err)
	})
}

// Shutdown drains: every response asks its client to close the connection
// and /ready fails for the configured drain time, then the listeners stop
// accepting and in-flight requests get another drain time to finish.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	drain := s.cfg.Lifecycle.DrainTime.D()
	s.mu.Unlock()
	s.draining.Store(true)
	s.setLive()
	s.log.Info("draining", "drain_time", drain.String())
	t := time.NewTimer(drain)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), drain+time.Second)
	defer cancel()
	s.stopLocked(sctx)
}

func (s *Server) stopLocked(ctx context.Context) {
	var wg sync.WaitGroup
	for _, live := range s.listeners {
		wg.Go(func() {
			_ = live.ln.Shutdown(ctx)
			_ = live.mgr.Snapshot().Close()
		})
	}
	wg.Wait()
	if s.admin != nil {
		_ = s.admin.Shutdown(ctx)
	}
	if s.clusters != nil {
		s.clusters.Close()
	}
	// After the listeners: every span has ended. Before the flusher, so
	// that its last flush has the final span counts.
	s.tracers.stop()
	if s.flusher != nil {
		// Close sends what the last interval counted.
		_ = s.flusher.Close()
	}
	s.logs.close()
}

// State implements admin.Server.
func (s *Server) State() string {
	switch {
	case !s.initialized.Load():
		return "INITIALIZING"
	case s.draining.Load() || s.healthFailed.Load():
		return "DRAINING"
	}
	return "LIVE"
}

// SetHealthCheckFailed implements admin.Server: /healthcheck/fail starts
// draining, /healthcheck/ok stops it.
func (s *Server) SetHealthCheckFailed(failed bool) {
	s.healthFailed.Store(failed)
	s.draining.Store(failed)
	s.setLive()
}

// setLive keeps server.live in step with the drain state.
func (s *Server) setLive() {
	if s.server == nil {
		return
	}
	if s.State() == "LIVE" {
		s.server.Live.Set(1)
	} else {
		s.server.Live.Set(0)
	}
}

// Clusters implements admin.Server.
func (s *Server) Clusters() []*cluster.Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clusters.Clusters()
}

// ConfigDump implements admin.Server.
func (s *Server) ConfigDump() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Redacted()
}

// Info implements admin.Server.
func (s *Server) Info() admin.Info {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	info := admin.Info{
		Version:       Version,
		State:         s.State(),
		NodeID:        cfg.Node.ID,
		NodeCluster:   cfg.Node.Cluster,
		Zone:          cfg.Node.Zone,
		ConfigPath:    s.path,
		StartTime:     s.started,
		UptimeSeconds: int64(time.Since(s.started).Seconds()),
		ConfigLoads:   s.loads.Load(),
		ConfigRejects: s.rejects.Load(),
	}
	if e := s.lastErr.Load(); e != nil {
		info.LastReloadError = *e
	}
	return info
}

// WatchConfig reloads the configuration whenever the file's identity or
// modification time changes (polling, which also sees Kubernetes ConfigMap
// symlink swaps), until ctx ends.
func (s *Server) WatchConfig(ctx context.Context, every time.Duration) {
	last := s.loadedStamp // immutable after New
	periodic.Every(ctx, every, func(time.Time) {
		cur := statFile(s.path)
		if cur == last {
			return
		}
		last = cur
		if err := s.Reload(ctx); err != nil {
			s.log.Error("configuration change rejected; the previous configuration keeps serving", "path", s.path, "err", err)
		}
	})
}

// fileStamp is what WatchConfig compares to notice a changed file.
type fileStamp struct {
	ok      bool
	size    int64
	modTime time.Time
	ino     uint64
}

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{ok: true, size: fi.Size(), modTime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}
