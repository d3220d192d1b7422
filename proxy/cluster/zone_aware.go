package cluster

import (
	"slices"
	"sync"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Zone-aware routing is Envoy's (ZoneAwareLoadBalancerBase): send as much
// traffic as possible to upstream hosts in this proxy's zone while keeping
// roughly the same request rate on every upstream host. It compares how the
// local cluster (this service's own instances, cluster_manager.
// local_cluster_name) and the upstream cluster spread their healthy hosts
// over zones:
//
//   - If the upstream cluster's share of healthy hosts in the local zone is
//     at least the local cluster's share, every request stays in the local
//     zone (lb_zone_routing_all_directly).
//   - Otherwise only upstream%/local% of the requests stay local
//     (lb_zone_routing_sampled) and the rest go to the other zones in
//     proportion to their residual capacity, upstream% − local% where that
//     is positive (lb_zone_routing_cross_zone; lb_zone_no_capacity_left when
//     rounding left no zone with capacity and a zone is drawn at random).
//
// Percentages are integers in basis points (10000 = 100%), rounded down, as
// Envoy computes them, so hand-computed expectations match exactly.
//
// The structures (zonePlan) depend only on the two host sets, so they are
// rebuilt when either set changes (lb_recalculate_zone_structures), not per
// request: Pick notices that the host sets it was built from are no longer
// current. A request then costs one or two random draws and a short scan.

// zoneRoutingState is Envoy's LocalityRoutingState.
type zoneRoutingState uint8

const (
	// zoneNoRouting: the preconditions fail; balance over all healthy hosts.
	zoneNoRouting zoneRoutingState = iota
	// zoneDirect: every request goes to the local zone.
	zoneDirect
	// zoneResidual: a share stays local, the rest spills by residual capacity.
	zoneResidual
)

// zoneExit says why a plan does no zone-aware routing. Envoy counts two of
// the reasons, once per recalculation.
type zoneExit uint8

const (
	zoneExitNone zoneExit = iota
	// zoneExitUpstreamOneZone: the upstream cluster has fewer than two zones.
	zoneExitUpstreamOneZone
	// zoneExitLocalOneZone: the local cluster has fewer than two zones.
	zoneExitLocalOneZone
	// zoneExitLocalClusterNotOK: the local cluster has no host in this
	// proxy's zone (lb_local_cluster_not_ok).
	zoneExitLocalClusterNotOK
	// zoneExitTooSmall: fewer healthy upstream hosts than min_cluster_size
	// (lb_zone_cluster_too_small).
	zoneExitTooSmall
)

// basisPoints is 100% in the units of zone percentages.
const basisPoints = 10000

// zoneConfig is a cluster's zone_aware_lb_config with defaults applied.
type zoneConfig struct {
	// supported is false for policies that choose by hash (ring_hash,
	// maglev), which Envoy never routes by zone.
	supported          bool
	routingEnabled     float64 // percent of requests, 0–100
	minClusterSize     int
	failTrafficOnPanic bool
	// panicThreshold is this cluster's healthy_panic_threshold, which
	// Envoy also applies to the local cluster's host set.
	panicThreshold float64
}

func newZoneConfig(cfg *config.Cluster) zoneConfig {
	l := &cfg.CommonLBConfig
	z := zoneConfig{
		routingEnabled:     config.DefaultZoneRoutingEnabled,
		minClusterSize:     config.DefaultZoneMinClusterSize,
		failTrafficOnPanic: l.ZoneAwareLBConfig.FailTrafficOnPanic,
		panicThreshold:     config.DefaultHealthyPanicThreshold,
	}
	if p, err := lookupPolicy(cfg.LBPolicy); err == nil {
		z.supported = p.zoneAware
	}
	if p := l.ZoneAwareLBConfig.RoutingEnabled; p != nil {
		z.routingEnabled = *p
	}
	if n := l.ZoneAwareLBConfig.MinClusterSize; n != nil {
		z.minClusterSize = *n
	}
	if p := l.HealthyPanicThreshold; p != nil {
		z.panicThreshold = *p
	}
	return z
}

// zoneEnv is what zone-aware routing needs from outside the cluster. The
// Manager sets it on every cluster it owns, so that a cluster carried over
// by a hot reload follows a new node.zone or a new local cluster.
type zoneEnv struct {
	// zone is node.zone; empty turns zone-aware routing off.
	zone string
	// local is the cluster named by cluster_manager.local_cluster_name, or
	// nil.
	local *Cluster
}

// zonePlan is Envoy's per-priority locality routing state, computed from
// one upstream host set and one local host set.
type zonePlan struct {
	// What the plan was built from; a Pick that sees other sets rebuilds it.
	upstream, local *hostSet
	env             *zoneEnv

	state zoneRoutingState
	exit  zoneExit
	// zones holds the healthy hosts of each upstream zone, this proxy's zone
	// first when the upstream cluster has hosts there (Envoy's
	// healthyHostsPerLocality with hasLocalLocality), then by zone name. A
	// zone whose hosts are all unhealthy keeps an empty entry.
	zones []*candidates
	// names are the zones' names, in the order of zones.
	names []string
	// hasLocal is true when zones[0] is this proxy's zone.
	hasLocal bool
	// localPercent and upstreamPercent are each zone's share of the local
	// and of the upstream cluster's healthy hosts, in basis points.
	localPercent, upstreamPercent []uint64
	// localPercentToRoute is the share of requests, in basis points, that
	// stays in the local zone in the residual state.
	localPercentToRoute uint64
	// residual is the cumulative residual capacity of zones[0..i]; the last
	// entry is the total.
	residual []uint64
	// localPanic is true when the local cluster is in panic mode, checked
	// per request as Envoy does (lb_local_cluster_not_ok).
	localPanic bool
}

// zoneGroups splits hosts by zone: the local zone first if any host is in
// it, then the other zones by name. Each group keeps the hosts' order.
func zoneGroups(localZone string, hosts []*Host) (names []string, groups [][]*Host) {
	idx := make(map[string]int)
	for _, h := range hosts {
		i, ok := idx[h.zone]
		if !ok {
			i = len(names)
			idx[h.zone] = i
			names = append(names, h.zone)
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], h)
	}
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case names[a] == names[b]:
			return 0
		case names[a] == localZone:
			return -1
		case names[b] == localZone:
			return 1
		case names[a] < names[b]:
			return -1
		default:
			return 1
		}
	})
	sortedNames := make([]string, len(order))
	sortedGroups := make([][]*Host, len(order))
	for i, j := range order {
		sortedNames[i], sortedGroups[i] = names[j], groups[j]
	}
	return sortedNames, sortedGroups
}

func healthyOf(hosts []*Host) []*Host {
	out := make([]*Host, 0, len(hosts))
	for _, h := range hosts {
		if h.Healthy() {
			out = append(out, h)
		}
	}
	return out
}

// planZones computes the zone routing plan of an upstream cluster whose
// hosts are upstream, for a proxy in localZone whose local cluster's hosts
// are local (Envoy's regenerateLocalityRoutingStructures). It reads each
// host's health once.
func planZones(localZone string, upstream, local []*Host, zc zoneConfig) *zonePlan {
	p := &zonePlan{}
	names, groups := zoneGroups(localZone, upstream)
	p.names = names
	p.hasLocal = len(names) > 0 && names[0] == localZone
	p.zones = make([]*candidates, len(groups))
	totalUpstream := 0
	for i, g := range groups {
		p.zones[i] = newZoneCandidates(healthyOf(g))
		totalUpstream += len(p.zones[i].hosts)
	}

	localNames, localGroups := zoneGroups(localZone, local)
	localHealthy := make(map[string]int, len(localNames))
	totalLocal, healthyLocal := 0, 0
	for i, g := range localGroups {
		n := len(healthyOf(g))
		localHealthy[localNames[i]] = n
		totalLocal += len(g)
		healthyLocal += n
	}
	p.localPanic = isPanic(totalLocal, healthyLocal, zc.panicThreshold)

	// Envoy's earlyExitNonLocalityRouting, in its order.
	switch {
	case len(p.zones) < 2:
		p.exit = zoneExitUpstreamOneZone
	case len(localNames) < 2:
		p.exit = zoneExitLocalOneZone
	case localNames[0] != localZone:
		p.exit = zoneExitLocalClusterNotOK
	case totalUpstream < zc.minClusterSize:
		p.exit = zoneExitTooSmall
	}
	if p.exit != zoneExitNone {
		p.state = zoneNoRouting
		return p
	}

	// calculateLocalityPercentages: each upstream zone's share of the
	// healthy hosts of both clusters, matched by zone name. A zone without
	// healthy upstream hosts counts 0 on both sides.
	p.localPercent = make([]uint64, len(p.zones))
	p.upstreamPercent = make([]uint64, len(p.zones))
	for i, z := range p.zones {
		if len(z.hosts) == 0 {
			continue
		}
		if healthyLocal > 0 {
			p.localPercent[i] = basisPoints * uint64(localHealthy[names[i]]) / uint64(healthyLocal)
		}
		p.upstreamPercent[i] = basisPoints * uint64(len(z.hosts)) / uint64(totalUpstream)
	}

	if p.hasLocal && p.upstreamPercent[0] > 0 && p.upstreamPercent[0] >= p.localPercent[0] {
		p.state = zoneDirect
		return p
	}
	p.state = zoneResidual
	// E.g. 20% of the local cluster but 10% of the upstream cluster in this
	// zone: only half of the requests can stay in it.
	if p.hasLocal && p.localPercent[0] > 0 {
		p.localPercentToRoute = p.upstreamPercent[0] * basisPoints / p.localPercent[0]
	}
	// Cross-zone requests go to the zones with capacity left over after
	// their own local traffic, in proportion to it. residual accumulates so
	// that a draw in [0, total) finds its zone by a scan.
	p.residual = make([]uint64, len(p.zones))
	var acc uint64
	for i := range p.zones {
		if !(i == 0 && p.hasLocal) && p.upstreamPercent[i] > p.localPercent[i] {
			acc += p.upstreamPercent[i] - p.localPercent[i]
		}
		p.residual[i] = acc
	}
	return p
}

// isPanic is Envoy's isHostSetInPanic: fewer healthy hosts, in percent,
// than the threshold. An empty host set is 0% healthy.
func isPanic(total, healthy int, threshold float64) bool {
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(healthy) / float64(total)
	}
	return pct < threshold
}

// newZoneCandidates builds one zone's candidates with its own round-robin
// position, as Envoy keeps one per host source: a shared counter would tie
// the host a zone gets to how picks interleave across zones.
func newZoneCandidates(hosts []*Host) *candidates {
	c := newCandidates(hosts)
	c.ownRR = true
	return c
}

// choose picks the zone of one request in the direct or residual state
// (Envoy's tryChooseLocalLocalityHosts) and counts it in cs. It returns an
// index into p.zones.
func (p *zonePlan) choose(rnd randSource, cs *stats.ClusterStats) int {
	if p.state == zoneDirect {
		cs.LbZoneRoutingAllDirectly.Inc()
		return 0
	}
	if uint64(rnd.intN(basisPoints)) < p.localPercentToRoute {
		cs.LbZoneRoutingSampled.Inc()
		return 0
	}
	cs.LbZoneRoutingCrossZone.Inc()
	total := p.residual[len(p.residual)-1]
	if total == 0 {
		// Only rounding can get here; Envoy draws any zone.
		cs.LbZoneNoCapacityLeft.Inc()
		return int(rnd.intN(int64(len(p.zones))))
	}
	x := uint64(rnd.intN(int64(total)))
	i := 0
	for x >= p.residual[i] {
		i++
	}
	return i
}

// zoneState is a cluster's zone-aware routing state.
type zoneState struct {
	cfg zoneConfig
	rnd randSource
	// mu serialises plan rebuilds; the request path only loads plan.
	mu sync.Mutex
}

// setZoneEnv points the cluster at this proxy's zone and local cluster. A
// change makes the next Pick rebuild the zone plan.
func (c *Cluster) setZoneEnv(zone string, local *Cluster) {
	if old := c.zoneEnv.Load(); old != nil && old.zone == zone && old.local == local {
		return
	}
	c.zoneEnv.Store(&zoneEnv{zone: zone, local: local})
}

// zoneCandidates narrows the candidates of one pick to a zone. It returns
// nil when zone-aware routing does not apply to this pick, and fail=true
// when fail_traffic_on_panic says the pick must fail because the local
// cluster is in panic.
func (c *Cluster) zoneCandidates(set *hostSet) (cands *candidates, fail bool) {
	env := c.zoneEnv.Load()
	if env == nil || env.zone == "" || env.local == nil || !c.zone.cfg.supported {
		return nil, false
	}
	p := c.zonePlan.Load()
	if local := env.local.set.Load(); p == nil || p.upstream != set || p.local != local || p.env != env {
		p = c.replanZones(set, local, env)
	}
	if p.state == zoneNoRouting {
		return nil, false
	}
	if re := c.zone.cfg.routingEnabled; re < 100 && !(c.zone.rnd.float64()*100 < re) {
		return nil, false
	}
	if p.localPanic {
		c.stats.LbLocalClusterNotOK.Inc()
		return nil, c.zone.cfg.failTrafficOnPanic
	}
	z := p.zones[p.choose(c.zone.rnd, c.stats)]
	if len(z.hosts) == 0 {
		// Only a no-capacity draw can land on a zone without healthy hosts;
		// Envoy would fail the pick, balancing over all healthy hosts is kinder.
		return nil, false
	}
	return z, false
}

// replanZones rebuilds the zone plan for the given host sets, unless
// another Pick already did.
func (c *Cluster) replanZones(set, local *hostSet, env *zoneEnv) *zonePlan {
	c.zone.mu.Lock()
	defer c.zone.mu.Unlock()
	if p := c.zonePlan.Load(); p != nil && p.upstream == set && p.local == local && p.env == env {
		return p
	}
	p := planZones(env.zone, set.all, local.all, c.zone.cfg)
	p.upstream, p.local, p.env = set, local, env
	c.zonePlan.Store(p)
	cs := c.stats
	cs.LbRecalculateZoneStructs.Inc()
	switch p.exit {
	case zoneExitLocalClusterNotOK:
		cs.LbLocalClusterNotOK.Inc()
	case zoneExitTooSmall:
		cs.LbZoneClusterTooSmall.Inc()
	}
	return p
}
