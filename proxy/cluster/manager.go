package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Options are the injectable dependencies of a Manager. The zero value is
// production: the system resolver and no dial observer.
type Options struct {
	// Resolver resolves strict_dns endpoints. Default net.DefaultResolver.
	Resolver Resolver
	// DialObserver, when set, is told about every upstream connection
	// attempt of every cluster this Manager builds (the hook for upstream
	// connection stats).
	DialObserver DialObserver
	// LocalZone is node.zone, this proxy's zone; empty turns zone-aware
	// routing off.
	LocalZone string
	// LocalClusterName is cluster_manager.local_cluster_name: the cluster of
	// this service's own instances, whose host set every cluster's
	// zone-aware routing compares itself with. Empty: no zone-aware routing.
	LocalClusterName string
	// ClusterStats returns the stats of the named cluster, which the
	// cluster updates itself (the lb_zone_* counters, lb_healthy_panic,
	// health_check.* and outlier_detection.*). A carried-over cluster keeps
	// the stats it was built with. Default: a null store's (see
	// withNullStats), counted and read by nobody.
	ClusterStats func(cluster string) *stats.ClusterStats
	// CircuitBreakerRemainingStats returns the remaining_* gauges of a
	// cluster with circuit_breakers.track_remaining. Default: a null
	// store's.
	CircuitBreakerRemainingStats func(cluster string) *stats.CircuitBreakerRemainingStats

	// rnd replaces the balancers' random source in tests.
	rnd randSource
}

// withNullStats returns o with its unset stats functions taken from a new
// null store, shared by every cluster built with the result: a cluster
// always has stats objects, which nobody reads when the caller gave none.
func (o Options) withNullStats() Options {
	if o.ClusterStats != nil && o.CircuitBreakerRemainingStats != nil {
		return o
	}
	null := stats.MustNewNullStore()
	if o.ClusterStats == nil {
		o.ClusterStats = null.ClusterStats
	}
	if o.CircuitBreakerRemainingStats == nil {
		o.CircuitBreakerRemainingStats = null.CircuitBreakerRemainingStats
	}
	return o
}

// Manager owns the clusters of one configuration (Envoy's cluster manager).
// It is immutable after NewManagerWithOptions and safe for concurrent use.
type Manager struct {
	clusters  []*Cluster
	byName    map[string]*Cluster
	closeOnce sync.Once
}

// NewManagerWithOptions builds the clusters of cfgs with opts (the zero
// Options are the defaults); a carried over cluster keeps the dependencies
// it was built with. When prev is non-nil, a cluster whose config is
// unchanged (deep-equal) is carried over as the same *Cluster, keeping its
// pools, host state and DNS loop, so that a hot reload never drops warm
// connections; clusters that disappear or change are closed. On error prev
// is left untouched.
//
// For strict_dns clusters NewManagerWithOptions waits for the first round
// of lookups (or for ctx to end), so that a new cluster starts with hosts
// when DNS works. A failed first lookup is logged, not fatal: the cluster answers
// "no healthy upstream" until a refresh succeeds, as in Envoy.
func NewManagerWithOptions(ctx context.Context, cfgs []config.Cluster, prev *Manager, log *slog.Logger, opts Options) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts = opts.withNullStats()
	m := &Manager{
		clusters: make([]*Cluster, 0, len(cfgs)),
		byName:   make(map[string]*Cluster, len(cfgs)),
	}
	var built []*Cluster // new clusters, closed again if anything fails
	fail := func(err error) (*Manager, error) {
		for _, c := range built {
			c.close()
		}
		return nil, err
	}
	for i := range cfgs {
		cfg := &cfgs[i]
		if cfg.Name == "" {
			return fail(fmt.Errorf("clusters[%d].name: required", i))
		}
		if _, dup := m.byName[cfg.Name]; dup {
			return fail(fmt.Errorf("clusters[%d].name: duplicate cluster name %q", i, cfg.Name))
		}
		c := carryOver(prev, cfg)
		if c == nil {
			var err error
			if c, err = newCluster(cfg, opts, log); err != nil {
				return fail(fmt.Errorf("clusters[%d] (%q): %w", i, cfg.Name, err))
			}
			built = append(built, c)
		}
		m.clusters = append(m.clusters, c)
		m.byName[cfg.Name] = c
	}

	readies := make([]<-chan struct{}, 0, len(built))
	for _, c := range built {
		readies = append(readies, c.startDNS(ctx))
	}
	for _, ready := range readies {
		select {
		case <-ready:
			continue // ready first, so that a static cluster never fails on ctx
		default:
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for the first DNS answers of strict_dns clusters: %w", ctx.Err()))
		}
	}
	// Active health checks start once the hosts are known; like Envoy's
	// cluster warming, the new clusters wait for every host's first check
	// (each bounded by its timeout), so that they start with real health.
	readies = readies[:0]
	for _, c := range built {
		readies = append(readies, c.startHealth())
	}
	for _, ready := range readies {
		select {
		case <-ready:
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for the first active health checks: %w", ctx.Err()))
		}
	}

	// Commit: from here on nothing fails.
	local := m.byName[opts.LocalClusterName]
	for _, c := range m.clusters {
		c.owner.Store(m)
		// Also for carried-over clusters: node.zone or the local cluster
		// may have changed with the reload.
		c.setZoneEnv(opts.LocalZone, local)
	}
	if prev != nil {
		for _, c := range prev.clusters {
			if m.byName[c.name] != c && c.owner.Load() == prev {
				c.close()
			}
		}
	}
	return m, nil
}

// carryOver returns prev's cluster for cfg when it can be reused as is.
func carryOver(prev *Manager, cfg *config.Cluster) *Cluster {
	if prev == nil {
		return nil
	}
	c := prev.byName[cfg.Name]
	if c == nil || c.closed.Load() || c.owner.Load() != prev {
		return nil
	}
	if !reflect.DeepEqual(&c.cfg, cfg) {
		return nil
	}
	return c
}

// Get returns the named cluster, or nil if there is none.
func (m *Manager) Get(name string) *Cluster { return m.byName[name] }

// Clusters returns the clusters in config order. The slice is shared: do
// not modify it.
func (m *Manager) Clusters() []*Cluster { return m.clusters }

// Close stops the DNS loops and closes the idle connections of the clusters
// this Manager owns. Clusters carried over into a newer Manager belong to it
// and keep running. Close is idempotent.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		for _, c := range m.clusters {
			if c.owner.Load() == m {
				c.close()
			}
		}
	})
}
