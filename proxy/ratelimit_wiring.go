package proxy

import (
	"fmt"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// This file connects rate limiting to the proxy: each listener snapshot
// gets its own long-lived client of the rate-limit service, closed when a
// reload replaces the snapshot (connmgr.Snapshot.Retire) or its listener
// stops (Snapshot.Close), and each local limiter its stats.

// rateLimitGrace is how long a replaced snapshot's rate-limit client stays
// open for the requests still running on it. A call takes at most the
// service's timeout (20 ms by default); anything still calling after this
// fails the call and follows failure_mode_deny.
const rateLimitGrace = 10 * time.Second

// rateLimiter dials the listener's rate-limit service, if it has one, at
// the endpoints of its cluster in clusters.
func rateLimiter(cfg *config.Config, lc *config.Listener, clusters *cluster.Manager) (*ratelimit.Global, error) {
	rls := lc.RateLimitService
	if rls == nil {
		return nil, nil
	}
	c := clusters.Get(rls.Cluster)
	if c == nil {
		return nil, fmt.Errorf("listener %q: rate_limit_service.cluster: unknown cluster %q", lc.Name, rls.Cluster)
	}
	g, err := ratelimit.NewGlobal(rls, c.Config())
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
	}
	g.SourceCluster = cfg.Node.Cluster
	return g, nil
}

// setLocalRateLimitStats gives every local limiter of the table its stats
// (<stat_prefix>.http_local_rate_limit.*) in store, before the table
// serves.
func setLocalRateLimitStats(store *stats.Store, table *route.Table) {
	for _, vh := range table.VirtualHosts() {
		for _, rt := range vh.Routes() {
			if l := rt.LocalRateLimit; l != nil && l.Stats == nil { // a virtual host's limiter, met again
				l.Stats = store.LocalRateLimitStats(l.StatPrefix)
			}
		}
	}
}
