package cluster

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// zoneHosts builds one host per spec: the spec is the host's zone, with a
// trailing "!" for an unhealthy host. Addresses are 10.<n>.<zone>.<i>, so
// that two calls (local and upstream cluster) never share a host.
func zoneHosts(net byte, specs ...string) []*Host {
	hosts := make([]*Host, len(specs))
	for i, s := range specs {
		zone, unhealthy := strings.CutSuffix(s, "!")
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, net, zone[0], byte(i + 1)}), 80)
		h := newHost(addr, addr.String(), 1, zone, false)
		if unhealthy {
			h.health.Store(flagFailedActiveHC)
		}
		hosts[i] = h
	}
	return hosts
}

// zones expands "a2 b1" to ["a" "a" "b"]: n hosts in each zone.
func zones(spec string) []string {
	var out []string
	for f := range strings.FieldsSeq(spec) {
		var n int
		zone := strings.TrimRight(f, "0123456789")
		if _, err := fmt.Sscanf(f[len(zone):], "%d", &n); err != nil {
			panic(f)
		}
		for range n {
			out = append(out, zone)
		}
	}
	return out
}

func testZoneConfig(minClusterSize int) zoneConfig {
	return zoneConfig{supported: true, routingEnabled: 100, minClusterSize: minClusterSize, panicThreshold: 50}
}

// TestPlanZones checks the routing structures against percentages worked out
// by hand from Envoy's documentation and the comments of Envoy's
// regenerateLocalityRoutingStructures. The proxy is in zone "a".
func TestPlanZones(t *testing.T) {
	tests := []struct {
		name            string
		local, upstream []string
		minSize         int

		state           zoneRoutingState
		exit            zoneExit
		names           []string
		localPct, upPct []uint64
		toRoute         uint64
		residual        []uint64
		localPanic      bool
	}{
		{
			// Envoy's own example: local 40/40/20, upstream 25/50/25. Only
			// 25/40 of the requests can stay in a; b has 10% spare, c 5%.
			name: "Envoy's residual example", local: zones("a2 b2 c1"), upstream: zones("a1 b2 c1"),
			state: zoneResidual, names: []string{"a", "b", "c"},
			localPct: []uint64{4000, 4000, 2000}, upPct: []uint64{2500, 5000, 2500},
			toRoute: 6250, residual: []uint64{0, 1000, 1500},
		},
		{
			// docs/config.md's zone-aware sidecar: 75% stays, 25% goes to c.
			name: "docs example", local: zones("a1 b1 c1"), upstream: zones("a1 b1 c2"),
			state: zoneResidual, names: []string{"a", "b", "c"},
			localPct: []uint64{3333, 3333, 3333}, upPct: []uint64{2500, 2500, 5000},
			toRoute: 7500, residual: []uint64{0, 0, 1667},
		},
		{
			name: "balanced zones route directly", local: zones("a1 b1 c1"), upstream: zones("a2 b2 c2"),
			state: zoneDirect, names: []string{"a", "b", "c"},
			localPct: []uint64{3333, 3333, 3333}, upPct: []uint64{3333, 3333, 3333},
		},
		{
			name: "more upstream capacity in a than local demand", local: zones("a1 b2"), upstream: zones("a3 b3"),
			state: zoneDirect, names: []string{"a", "b"},
			localPct: []uint64{3333, 6666}, upPct: []uint64{5000, 5000},
		},
		{
			// Half of a's traffic stays; the rest goes only to c, the zone
			// without local demand; b is exactly used by its own clients.
			name: "spill to a zone the local cluster lacks", local: zones("a1 b1"), upstream: zones("a1 b1 c2"),
			state: zoneResidual, names: []string{"a", "b", "c"},
			localPct: []uint64{5000, 5000, 0}, upPct: []uint64{2500, 2500, 5000},
			toRoute: 5000, residual: []uint64{0, 0, 5000},
		},
		{
			name: "upstream has no host in the local zone", local: zones("a1 b1"), upstream: zones("b3 c3"),
			state: zoneResidual, names: []string{"b", "c"},
			localPct: []uint64{5000, 0}, upPct: []uint64{5000, 5000},
			toRoute: 0, residual: []uint64{0, 5000},
		},
		{
			name: "local zone's upstream hosts all unhealthy", local: zones("a1 b1 c1"), upstream: []string{"a!", "a!", "b", "b", "c", "c"},
			state: zoneResidual, names: []string{"a", "b", "c"},
			localPct: []uint64{0, 3333, 3333}, upPct: []uint64{0, 5000, 5000},
			toRoute: 0, residual: []uint64{0, 1667, 3334},
		},
		{
			name: "unhealthy hosts elsewhere raise a's share", local: zones("a1 b1 c1"), upstream: []string{"a", "a", "b", "b!", "c", "c"},
			minSize: 5, state: zoneDirect, names: []string{"a", "b", "c"},
			localPct: []uint64{3333, 3333, 3333}, upPct: []uint64{4000, 2000, 4000},
		},
		{
			name: "zones sort by name after the local one", local: zones("a1 z1 m1"), upstream: zones("z1 m1 a1"),
			state: zoneDirect, names: []string{"a", "m", "z"},
			localPct: []uint64{3333, 3333, 3333}, upPct: []uint64{3333, 3333, 3333},
		},
		{
			name: "local hosts all unhealthy in the local zone", local: []string{"a!", "b", "c", "d"}, upstream: zones("a1 b1 c1"),
			state: zoneDirect, names: []string{"a", "b", "c"},
			localPct: []uint64{0, 3333, 3333}, upPct: []uint64{3333, 3333, 3333},
		},
		{
			// The plan is still built; each pick checks localPanic.
			name: "local cluster in panic", local: []string{"a", "b!", "c!"}, upstream: zones("a1 b1 c1"),
			state: zoneResidual, names: []string{"a", "b", "c"},
			localPct: []uint64{10000, 0, 0}, upPct: []uint64{3333, 3333, 3333},
			toRoute: 3333, residual: []uint64{0, 3333, 6666}, localPanic: true,
		},
		{name: "upstream in one zone", local: zones("a1 b1"), upstream: zones("a6"), minSize: 6,
			state: zoneNoRouting, exit: zoneExitUpstreamOneZone, names: []string{"a"}},
		{name: "local cluster in one zone", local: zones("a3"), upstream: zones("a3 b3"), minSize: 6,
			state: zoneNoRouting, exit: zoneExitLocalOneZone, names: []string{"a", "b"}},
		{name: "local cluster without the local zone", local: zones("b1 c1"), upstream: zones("a2 b2 c2"), minSize: 6,
			state: zoneNoRouting, exit: zoneExitLocalClusterNotOK, names: []string{"a", "b", "c"}},
		{name: "upstream smaller than min_cluster_size", local: zones("a1 b1"), upstream: zones("a2 b3"), minSize: 6,
			state: zoneNoRouting, exit: zoneExitTooSmall, names: []string{"a", "b"}},
		{name: "min_cluster_size counts healthy hosts", local: zones("a1 b1"), upstream: []string{"a", "a", "a", "b", "b", "b!"}, minSize: 6,
			state: zoneNoRouting, exit: zoneExitTooSmall, names: []string{"a", "b"}},
		{name: "exactly min_cluster_size", local: zones("a1 b1"), upstream: zones("a3 b3"), minSize: 6,
			state: zoneDirect, names: []string{"a", "b"}, localPct: []uint64{5000, 5000}, upPct: []uint64{5000, 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planZones("a", zoneHosts(2, tt.upstream...), zoneHosts(1, tt.local...), testZoneConfig(tt.minSize))
			if p.state != tt.state || p.exit != tt.exit {
				t.Errorf("state, exit = %d, %d; want %d, %d", p.state, p.exit, tt.state, tt.exit)
			}
			if !reflect.DeepEqual(p.names, tt.names) {
				t.Errorf("zones = %q, want %q", p.names, tt.names)
			}
			if !reflect.DeepEqual(p.localPercent, tt.localPct) || !reflect.DeepEqual(p.upstreamPercent, tt.upPct) {
				t.Errorf("local%% = %v, upstream%% = %v; want %v, %v", p.localPercent, p.upstreamPercent, tt.localPct, tt.upPct)
			}
			if p.localPercentToRoute != tt.toRoute || !reflect.DeepEqual(p.residual, tt.residual) {
				t.Errorf("local percent to route = %d, residual = %v; want %d, %v", p.localPercentToRoute, p.residual, tt.toRoute, tt.residual)
			}
			if p.localPanic != tt.localPanic {
				t.Errorf("localPanic = %v, want %v", p.localPanic, tt.localPanic)
			}
			for i, z := range p.zones {
				for _, h := range z.hosts {
					if h.zone != p.names[i] || !h.Healthy() {
						t.Errorf("zone %s holds %s of zone %s (healthy %v)", p.names[i], h.addrStr, h.zone, h.Healthy())
					}
				}
			}
		})
	}
}

func TestIsPanic(t *testing.T) {
	tests := []struct {
		total, healthy int
		threshold      float64
		want           bool
	}{
		{4, 2, 50, false}, {4, 1, 50, true}, {3, 1, 50, true}, {0, 0, 50, true},
		{0, 0, 0, false}, {10, 0, 0, false}, {10, 9, 100, true}, {10, 10, 100, false},
	}
	for _, tt := range tests {
		if got := isPanic(tt.total, tt.healthy, tt.threshold); got != tt.want {
			t.Errorf("isPanic(%d, %d, %g) = %v, want %v", tt.total, tt.healthy, tt.threshold, got, tt.want)
		}
	}
}

func newTestClusterStats(t *testing.T, name string) *stats.ClusterStats {
	t.Helper()
	st, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return st.ClusterStats(name)
}

// TestZoneChooseDistribution draws zones from Envoy's residual example
// with a seeded generator: 62.5% stay in a (sampled), and the 37.5% that
// cross zones split 1000:500 between b and c. The counters agree with the
// draws exactly.
func TestZoneChooseDistribution(t *testing.T) {
	p := planZones("a", zoneHosts(2, zones("a1 b2 c1")...), zoneHosts(1, zones("a2 b2 c1")...), testZoneConfig(0))
	cs := newTestClusterStats(t, "up")
	rnd := seeded()
	const n = 200000
	counts := make([]int, len(p.zones))
	for range n {
		counts[p.choose(rnd, cs)]++
	}
	want := []float64{0.625, 0.25, 0.125}
	for i, w := range want {
		// Seeded, so not flaky; 0.5% is over 4 standard deviations at n.
		if got := float64(counts[i]) / n; math.Abs(got-w) > 0.005 {
			t.Errorf("zone %s: share %.4f, want %.4f", p.names[i], got, w)
		}
	}
	if got := cs.LbZoneRoutingSampled.Value(); got != uint64(counts[0]) {
		t.Errorf("lb_zone_routing_sampled = %d, want %d", got, counts[0])
	}
	if got := cs.LbZoneRoutingCrossZone.Value(); got != uint64(counts[1]+counts[2]) {
		t.Errorf("lb_zone_routing_cross_zone = %d, want %d", got, counts[1]+counts[2])
	}
	if cs.LbZoneRoutingAllDirectly.Value() != 0 || cs.LbZoneNoCapacityLeft.Value() != 0 {
		t.Error("direct or no-capacity counted in the residual state")
	}
}

func TestZoneChooseDirectAndNoCapacity(t *testing.T) {
	cs := newTestClusterStats(t, "up")
	direct := &zonePlan{state: zoneDirect, zones: make([]*candidates, 3)}
	for range 10 {
		if i := direct.choose(seeded(), cs); i != 0 {
			t.Fatalf("direct chose zone %d", i)
		}
	}
	if got := cs.LbZoneRoutingAllDirectly.Value(); got != 10 {
		t.Errorf("lb_zone_routing_all_directly = %d, want 10", got)
	}
	// Rounding can leave no residual capacity; Envoy then draws any zone.
	none := &zonePlan{state: zoneResidual, zones: make([]*candidates, 3), residual: []uint64{0, 0, 0}}
	counts := make([]int, 3)
	rnd := seeded()
	for range 3000 {
		counts[none.choose(rnd, cs)]++
	}
	for i, n := range counts {
		if n < 800 {
			t.Errorf("zone %d drawn %d times of 3000, want about 1000", i, n)
		}
	}
	if cs.LbZoneNoCapacityLeft.Value() != 3000 || cs.LbZoneRoutingCrossZone.Value() != 3000 {
		t.Errorf("no_capacity_left = %d, cross_zone = %d, want 3000 each", cs.LbZoneNoCapacityLeft.Value(), cs.LbZoneRoutingCrossZone.Value())
	}
}

func TestZoneConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Cluster
		want zoneConfig
	}{
		{"zero value", config.Cluster{}, zoneConfig{supported: true, routingEnabled: 100, minClusterSize: 6, panicThreshold: 50}},
		{"least_request", config.Cluster{LBPolicy: "least_request"}, zoneConfig{supported: true, routingEnabled: 100, minClusterSize: 6, panicThreshold: 50}},
		{"random", config.Cluster{LBPolicy: "random"}, zoneConfig{supported: true, routingEnabled: 100, minClusterSize: 6, panicThreshold: 50}},
		{"ring_hash is never zone-aware", config.Cluster{LBPolicy: "ring_hash"}, zoneConfig{routingEnabled: 100, minClusterSize: 6, panicThreshold: 50}},
		{"maglev is never zone-aware", config.Cluster{LBPolicy: "maglev"}, zoneConfig{routingEnabled: 100, minClusterSize: 6, panicThreshold: 50}},
		{"explicit", config.Cluster{CommonLBConfig: config.CommonLBConfig{
			HealthyPanicThreshold: ptrTo(0.0),
			ZoneAwareLBConfig: config.ZoneAwareLBConfig{
				RoutingEnabled: ptrTo(12.5), MinClusterSize: ptrTo(0), FailTrafficOnPanic: true,
			},
		}}, zoneConfig{supported: true, routingEnabled: 12.5, minClusterSize: 0, failTrafficOnPanic: true, panicThreshold: 0}},
	}
	for _, tt := range tests {
		if got := newZoneConfig(&tt.cfg); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// zoneCluster returns a static cluster with one endpoint per zone given,
// on 10.<net>.0.1, 10.<net>.0.2, …
func zoneCluster(name, policy string, net byte, zones ...string) config.Cluster {
	cfg := *withLBDefaults(config.Cluster{Name: name, LBPolicy: policy})
	for i, z := range zones {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Address: fmt.Sprintf("10.%d.0.%d:80", net, i+1), Zone: z})
	}
	return cfg
}

func withMinClusterSize(cfg config.Cluster, n int) config.Cluster {
	cfg.CommonLBConfig.ZoneAwareLBConfig.MinClusterSize = &n
	return cfg
}

// evenSelf is the local cluster of the even three-zone setup: one proxy
// instance in each of zones a, b and c.
func evenSelf() config.Cluster { return zoneCluster("self", "", 1, "a", "b", "c") }

// evenUp is the upstream of the even three-zone setup, under lb policy
// policy: two hosts in each of zones a, b and c, so that every zone's
// share matches the local cluster's.
func evenUp(policy string) config.Cluster {
	return zoneCluster("up", policy, 2, "a", "a", "b", "b", "c", "c")
}

// evenZoneA builds the even three-zone setup under lb policy policy and
// returns the upstream with its two hosts in zone a, the proxy's own zone.
func evenZoneA(t *testing.T, policy string) (c *Cluster, a1, a2 *Host) {
	t.Helper()
	m, _ := zoneTestManager(t, evenSelf(), evenUp(policy))
	c = m.Get("up")
	return c, c.Hosts()[0], c.Hosts()[1]
}

// zoneTestManager builds a manager for a proxy in zone "a" whose local
// cluster is "self", with stats in a fresh store and seeded randomness.
func zoneTestManager(t *testing.T, cfgs ...config.Cluster) (*Manager, *stats.Store) {
	t.Helper()
	st, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return newTestManager(t, Options{LocalZone: "a", LocalClusterName: "self", ClusterStats: st.ClusterStats, rnd: seeded()}, cfgs...), st
}

// zoneShares picks n times and returns the share of picks per zone and
// the picks per host.
func zoneShares(c *Cluster, n int) (map[string]float64, map[*Host]int) {
	counts, byHost := map[string]int{}, map[*Host]int{}
	for range n {
		h := c.Pick(nil)
		counts[h.Zone()]++
		byHost[h]++
	}
	byZone := map[string]float64{}
	for z, k := range counts {
		byZone[z] = float64(k) / float64(n)
	}
	return byZone, byHost
}

// zonePolicies are the policies zone-aware routing applies to.
var zonePolicies = []string{"round_robin", "least_request", "random"}

func TestZoneAwarePickResidual(t *testing.T) {
	for _, policy := range zonePolicies {
		t.Run(policy, func(t *testing.T) {
			m, st := zoneTestManager(t,
				zoneCluster("self", "", 1, "a", "a", "b", "b", "c"),
				withMinClusterSize(zoneCluster("up", policy, 2, "a", "b", "b", "c"), 0))
			c := m.Get("up")
			const n = 40000
			shares, byHost := zoneShares(c, n)
			for zone, want := range map[string]float64{"a": 0.625, "b": 0.25, "c": 0.125} {
				if math.Abs(shares[zone]-want) > 0.01 {
					t.Errorf("zone %s: share %.4f, want %.4f", zone, shares[zone], want)
				}
			}
			// Inside zone b the policy balances its two hosts.
			b := c.Hosts()[1:3]
			if d := byHost[b[0]] - byHost[b[1]]; d < -n/50 || d > n/50 {
				t.Errorf("zone b hosts picked %d and %d times", byHost[b[0]], byHost[b[1]])
			}
			cs := st.ClusterStats("up")
			if s, x := cs.LbZoneRoutingSampled.Value(), cs.LbZoneRoutingCrossZone.Value(); s+x != n || int(s) != byHost[c.Hosts()[0]] {
				t.Errorf("sampled %d + cross_zone %d, want %d picks with %d in zone a", s, x, n, byHost[c.Hosts()[0]])
			}
			if got := cs.LbRecalculateZoneStructs.Value(); got != 1 {
				t.Errorf("lb_recalculate_zone_structures = %d after %d picks, want 1", got, n)
			}
		})
	}
}

func TestZoneAwareRoundRobinPerZone(t *testing.T) {
	m, st := zoneTestManager(t, evenSelf(), evenUp("round_robin"))
	c := m.Get("up")
	a := c.Hosts()[:2]
	for i := range 6 {
		if h := c.Pick(nil); h != a[i%2] {
			t.Fatalf("pick %d = %s (zone %s), want %s", i, h.Address(), h.Zone(), a[i%2].Address())
		}
	}
	if got := st.ClusterStats("up").LbZoneRoutingAllDirectly.Value(); got != 6 {
		t.Errorf("lb_zone_routing_all_directly = %d, want 6", got)
	}
}

// TestZoneAwareLeastRequest is "zone aware least request": the zone is
// chosen first, then least request compares the zone's hosts only.
func TestZoneAwareLeastRequest(t *testing.T) {
	c, a1, a2 := evenZoneA(t, "least_request")
	for range 5 {
		a1.BeginRequest()
	}
	for i := range 20 {
		if h := c.Pick(nil); h != a2 {
			t.Fatalf("pick %d = %s in zone %s, want the idle host of zone a", i, h.Address(), h.Zone())
		}
	}
	for range 10 {
		a2.BeginRequest()
	}
	// Both local hosts are busier than the idle hosts of b and c, but the
	// zone decision comes first: a1 (5 active) beats a2 (10).
	for i := range 20 {
		if h := c.Pick(nil); h != a1 {
			t.Fatalf("pick %d = %s in zone %s, want a1", i, h.Address(), h.Zone())
		}
	}
}

func TestZoneAwareRecalculatesOnHostSetChange(t *testing.T) {
	m, st := zoneTestManager(t, evenSelf(), withMinClusterSize(evenUp(""), 0))
	c, self := m.Get("up"), m.Get("self")
	cs := st.ClusterStats("up")
	recalcs := func() uint64 { return cs.LbRecalculateZoneStructs.Value() }

	if shares, _ := zoneShares(c, 1000); shares["a"] != 1 || recalcs() != 1 {
		t.Fatalf("balanced: shares %v, %d recalculations; want all in a, 1", shares, recalcs())
	}
	// Zone a of the upstream loses its hosts: 4 of 6 stay healthy (no
	// panic), and every request must cross to b or c.
	c.setHostHealth(c.Hosts()[0], false)
	c.setHostHealth(c.Hosts()[1], false)
	shares, _ := zoneShares(c, 4000)
	if shares["a"] != 0 || math.Abs(shares["b"]-0.5) > 0.03 {
		t.Errorf("zone a unhealthy: shares %v, want none in a, half in b and c", shares)
	}
	if recalcs() != 2 {
		t.Errorf("%d recalculations after an upstream health change, want 2", recalcs())
	}
	// The local cluster's host set changes too: its b instance fails, so
	// the local cluster is now a 50%, c 50% (and still not in panic).
	c.setHostHealth(c.Hosts()[0], true)
	c.setHostHealth(c.Hosts()[1], true)
	if h := c.Pick(nil); h.Zone() != "a" || recalcs() != 3 {
		t.Fatalf("healthy again: picked zone %s, %d recalculations; want a, 3", h.Zone(), recalcs())
	}
	self.setHostHealth(self.Hosts()[1], false)
	// Upstream a 33% < local a 50%: 6666 basis points stay in a; the rest
	// goes to b (33% upstream, 0% local), c has no spare capacity.
	shares, _ = zoneShares(c, 20000)
	if math.Abs(shares["a"]-0.6666) > 0.01 || math.Abs(shares["b"]-0.3334) > 0.01 || shares["c"] != 0 {
		t.Errorf("local b unhealthy: shares %v, want a 0.6666, b 0.3334, c 0", shares)
	}
	if recalcs() != 4 {
		t.Errorf("%d recalculations, want 4", recalcs())
	}
}

func TestZoneAwareLocalClusterPanic(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail_traffic_on_panic=%v", fail), func(t *testing.T) {
			up := evenUp("")
			up.CommonLBConfig.ZoneAwareLBConfig.FailTrafficOnPanic = fail
			m, st := zoneTestManager(t, evenSelf(), up)
			c, self := m.Get("up"), m.Get("self")
			self.setHostHealth(self.Hosts()[1], false)
			self.setHostHealth(self.Hosts()[2], false) // 1 of 3 healthy: panic
			const n = 3000
			byZone := map[string]int{}
			for range n {
				h := c.Pick(nil)
				if fail {
					if h != nil {
						t.Fatalf("picked %s with the local cluster in panic and fail_traffic_on_panic", h.Address())
					}
					continue
				}
				byZone[h.Zone()]++
			}
			if !fail && (byZone["b"] < n/4 || byZone["c"] < n/4) {
				t.Errorf("local cluster in panic: picks per zone %v, want all zones (no zone routing)", byZone)
			}
			cs := st.ClusterStats("up")
			if got := cs.LbLocalClusterNotOK.Value(); got != n {
				t.Errorf("lb_local_cluster_not_ok = %d, want %d (one per pick)", got, n)
			}
			if cs.LbZoneRoutingAllDirectly.Value()+cs.LbZoneRoutingSampled.Value()+cs.LbZoneRoutingCrossZone.Value() != 0 {
				t.Error("zone routing counted with the local cluster in panic")
			}
		})
	}
}

func TestZoneAwareUpstreamPanic(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail_traffic_on_panic=%v", fail), func(t *testing.T) {
			up := withMinClusterSize(zoneCluster("up", "", 2, "a", "b", "c", "c"), 0)
			up.CommonLBConfig.ZoneAwareLBConfig.FailTrafficOnPanic = fail
			m, st := zoneTestManager(t, evenSelf(), up)
			c := m.Get("up")
			for _, h := range c.Hosts()[1:] {
				c.setHostHealth(h, false) // 1 of 4 healthy: panic
			}
			seen := map[*Host]bool{}
			for range 100 {
				h := c.Pick(nil)
				if fail && h != nil {
					t.Fatalf("picked %s in panic with fail_traffic_on_panic", h.Address())
				}
				seen[h] = true
			}
			if !fail && len(seen) != 4 {
				t.Errorf("panic mode picked %d distinct hosts, want all 4, zones ignored", len(seen))
			}
			if cs := st.ClusterStats("up"); cs.LbZoneRoutingAllDirectly.Value()+cs.LbZoneRoutingSampled.Value() != 0 {
				t.Error("zone routing counted in panic mode")
			}
		})
	}
}

func TestZoneAwareRoutingEnabled(t *testing.T) {
	for _, pct := range []float64{0, 25, 100} {
		t.Run(fmt.Sprint(pct), func(t *testing.T) {
			up := evenUp("random")
			up.CommonLBConfig.ZoneAwareLBConfig.RoutingEnabled = &pct
			m, st := zoneTestManager(t, evenSelf(), up)
			const n = 20000
			shares, _ := zoneShares(m.Get("up"), n)
			// Routed requests all stay in a; the others spread evenly.
			p := pct / 100
			if want := p + (1-p)/3; math.Abs(shares["a"]-want) > 0.015 {
				t.Errorf("zone a share %.4f, want %.4f", shares["a"], want)
			}
			if got := float64(st.ClusterStats("up").LbZoneRoutingAllDirectly.Value()) / n; math.Abs(got-p) > 0.015 {
				t.Errorf("lb_zone_routing_all_directly share %.4f, want %.2f", got, p)
			}
		})
	}
}

func TestZoneAwareOff(t *testing.T) {
	st, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfgs := []config.Cluster{evenSelf(), evenUp("")}
	for name, opts := range map[string]Options{
		"no node.zone":           {LocalClusterName: "self"},
		"no local cluster":       {LocalZone: "a"},
		"unknown local cluster":  {LocalZone: "a", LocalClusterName: "nope"},
		"zone not in the config": {LocalZone: "x", LocalClusterName: "self"},
	} {
		t.Run(name, func(t *testing.T) {
			opts.ClusterStats, opts.rnd = st.ClusterStats, seeded()
			m := newTestManager(t, opts, cfgs...)
			if shares, _ := zoneShares(m.Get("up"), 3000); math.Abs(shares["a"]-1.0/3) > 0.01 {
				t.Errorf("zone a share %.4f, want 1/3 without zone routing", shares["a"])
			}
		})
	}
	// Without local cluster or zone nothing is ever planned; the zone that
	// is in neither cluster is planned (and found unusable) once.
	if got := st.ClusterStats("up").LbRecalculateZoneStructs.Value(); got != 1 {
		t.Errorf("lb_recalculate_zone_structures = %d, want 1", got)
	}
	if got := st.ClusterStats("up").LbLocalClusterNotOK.Value(); got != 1 {
		t.Errorf("lb_local_cluster_not_ok = %d, want 1", got)
	}
}

// TestZoneAwareReload checks that a carried-over cluster follows a new
// node.zone and a new local cluster.
func TestZoneAwareReload(t *testing.T) {
	st, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	up := evenUp("")
	self := evenSelf()
	m1 := newTestManager(t, Options{LocalZone: "a", LocalClusterName: "self", ClusterStats: st.ClusterStats}, self, up)
	if shares, _ := zoneShares(m1.Get("up"), 100); shares["a"] != 1 {
		t.Fatalf("zone a: shares %v", shares)
	}
	m2, err := NewManagerWithOptions(t.Context(), []config.Cluster{self, up}, m1, nil, Options{LocalZone: "b", LocalClusterName: "self", ClusterStats: st.ClusterStats})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m2.Close)
	if m2.Get("up") != m1.Get("up") {
		t.Fatal("the unchanged cluster was not carried over")
	}
	if shares, _ := zoneShares(m2.Get("up"), 100); shares["b"] != 1 {
		t.Errorf("after node.zone a→b: shares %v, want all in b", shares)
	}
	// A new local cluster, now in zones b and c only with 3 of 4
	// instances in b: upstream b 33% < local b 75%.
	self2 := zoneCluster("self", "", 1, "b", "b", "b", "c")
	m3, err := NewManagerWithOptions(t.Context(), []config.Cluster{self2, up}, m2, nil, Options{LocalZone: "b", LocalClusterName: "self", ClusterStats: st.ClusterStats})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m3.Close)
	if shares, _ := zoneShares(m3.Get("up"), 100); shares["b"] == 1 {
		t.Errorf("after the local cluster changed: shares %v, want some spill out of b", shares)
	}
	if got := st.ClusterStats("up").LbRecalculateZoneStructs.Value(); got != 3 {
		t.Errorf("lb_recalculate_zone_structures = %d, want 3", got)
	}
}

func TestZoneAwareRetry(t *testing.T) {
	c, a1, a2 := evenZoneA(t, "")
	for range 10 {
		if h := c.Pick(&LBContext{Attempted: []*Host{a1}}); h != a2 {
			t.Fatalf("retry after a1 picked %s, want a2 (the zone's untried host)", h.Address())
		}
	}
	for range 10 {
		if h := c.Pick(&LBContext{Attempted: []*Host{a1, a2}}); h.Zone() == "a" {
			t.Fatalf("retry after both zone a hosts picked %s in zone a, want another zone", h.Address())
		}
	}
}

func TestZoneAwarePickDoesNotAllocate(t *testing.T) {
	for _, policy := range zonePolicies {
		m, _ := zoneTestManager(t,
			zoneCluster("self", "", 1, "a", "a", "b", "b", "c"),
			withMinClusterSize(zoneCluster("up", policy, 2, "a", "b", "b", "c"), 0))
		c := m.Get("up")
		c.Pick(nil) // builds the plan
		lb := &LBContext{}
		if allocs := testing.AllocsPerRun(1000, func() { c.Pick(lb) }); allocs != 0 {
			t.Errorf("%s: %v allocations per zone-aware pick, want 0", policy, allocs)
		}
	}
}

// TestZoneAwareNotForHashPolicies: Envoy's ring_hash and maglev choose by
// the request's hash and never by zone.
func TestZoneAwareNotForHashPolicies(t *testing.T) {
	for _, policy := range []string{"ring_hash", "maglev"} {
		m, st := zoneTestManager(t, evenSelf(), evenUp(policy))
		if shares, _ := zoneShares(m.Get("up"), 3000); shares["a"] > 0.5 {
			t.Errorf("%s: zone a share %.4f, want about 1/3", policy, shares["a"])
		}
		if got := st.ClusterStats("up").LbRecalculateZoneStructs.Value(); got != 0 {
			t.Errorf("%s: lb_recalculate_zone_structures = %d, want 0", policy, got)
		}
	}
}

// TestRoundRobinPositionPerZone: picks that alternate between two zones
// must still rotate inside each zone. With one shared counter, zone x
// would get every even position and always its first host.
func TestRoundRobinPositionPerZone(t *testing.T) {
	hosts := testHosts(1, 1, 1, 1)
	x, y := newZoneCandidates(hosts[:2]), newZoneCandidates(hosts[2:])
	rr := &roundRobin{}
	var got strings.Builder
	for range 4 {
		got.WriteString(letter(rr.pick(x, nil)))
		got.WriteString(letter(rr.pick(y, nil)))
	}
	if want := "acbdacbd"; got.String() != want {
		t.Errorf("alternating picks = %q, want %q", got.String(), want)
	}
}

// FuzzPlanZones checks the plan's invariants for arbitrary host sets. Each
// input byte is a host: bits 0–1 its zone (a–d), bit 2 unhealthy, bit 3 in
// the local cluster rather than the upstream one; the first byte is also
// min_cluster_size (mod 8).
func FuzzPlanZones(f *testing.F) {
	f.Add([]byte{0x08, 0x08, 0x09, 0x09, 0x0a, 0x00, 0x01, 0x01, 0x02})
	f.Add([]byte{0x00, 0x08, 0x09, 0x0a, 0x00, 0x00, 0x01, 0x01, 0x02, 0x02})
	f.Add([]byte{0x0c, 0x09, 0x01, 0x02, 0x03, 0x04})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 64 {
			return
		}
		var local, upstream []string
		for _, b := range data {
			spec := string(rune('a' + b&3))
			if b&4 != 0 {
				spec += "!"
			}
			if b&8 != 0 {
				local = append(local, spec)
			} else {
				upstream = append(upstream, spec)
			}
		}
		p := planZones("a", zoneHosts(2, upstream...), zoneHosts(1, local...), testZoneConfig(int(data[0]%8)))
		if p.state == zoneNoRouting {
			if p.exit == zoneExitNone {
				t.Fatal("no routing without a reason")
			}
			return
		}
		var upSum, localSum uint64
		for i := range p.zones {
			upSum += p.upstreamPercent[i]
			localSum += p.localPercent[i]
		}
		if upSum > basisPoints || localSum > basisPoints {
			t.Fatalf("percentages sum to %d and %d", upSum, localSum)
		}
		if p.state == zoneDirect {
			if !p.hasLocal || len(p.zones[0].hosts) == 0 {
				t.Fatalf("direct routing to zone %q with %d hosts", p.names[0], len(p.zones[0].hosts))
			}
			return
		}
		if p.localPercentToRoute >= basisPoints || (p.localPercentToRoute > 0 && len(p.zones[0].hosts) == 0) {
			t.Fatalf("local percent to route %d with %d local hosts", p.localPercentToRoute, len(p.zones[0].hosts))
		}
		for i := 1; i < len(p.residual); i++ {
			if p.residual[i] < p.residual[i-1] {
				t.Fatalf("residual capacity decreases: %v", p.residual)
			}
		}
		rnd, cs := seeded(), stats.MustNewNullStore().ClusterStats("c")
		for range 50 {
			i := p.choose(rnd, cs)
			if len(p.zones[i].hosts) == 0 && p.residual[len(p.residual)-1] != 0 {
				t.Fatalf("chose zone %s without healthy hosts; plan %+v", p.names[i], p)
			}
		}
	})
}
