// Package zones is the "Zones" end-to-end scenario: a real
// hopwatch-proxy in zone a, with a local cluster (its own service's
// instances) spread over zones a, b and c, routes to upstream clusters of
// real upstream processes. With balanced capacity every request stays in
// zone a; with too little capacity in zone a, the proxy keeps in a exactly
// the share Envoy's algorithm allows and spills the rest by residual
// capacity. Client counts, upstream counts and the proxy's lb_zone_* and
// per-zone stats must all agree.
package zones

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// within reports whether got is p ± 5 standard deviations of a binomial
// share over n draws. The draws are the proxy's random numbers, so the
// check is statistical; at 5 σ a correct proxy fails it about once in
// 1.7 million runs, while a wrong algorithm misses by far more (see the
// per-case comments).
func within(got, p float64, n int) (bool, float64) {
	tol := 5 * math.Sqrt(p*(1-p)/float64(n))
	return math.Abs(got-p) <= tol, tol
}

func TestZones(t *testing.T) {
	// Balanced cluster: 2 upstreams in each of a, b, c. Spill cluster:
	// 1 in a, 1 in b, 3 in c. Small cluster: 2 upstreams, under
	// min_cluster_size.
	ups := e2etest.StartUpstreams(t, "a1", "a2", "b1", "b2", "c1", "c2", "as", "bs", "cs1", "cs2", "cs3")
	// endpoints renders a cluster's endpoint list; a name's first letter
	// is its zone.
	endpoints := func(names ...string) string {
		sub := make(e2etest.Upstreams, len(names))
		for i, n := range names {
			sub[i] = ups.Get(n)
		}
		return sub.Endpoints(func(name string) string { return name[:1] })
	}
	// The local cluster's endpoints stand for this service's instances in
	// each zone; nothing dials them (no health checks, no route).
	in := &e2etest.Ingress{
		Head: `
node: {id: zones-e2e, zone: a}
cluster_manager: {local_cluster_name: self}
`,
		Routes: `
- match: {prefix: /balanced}
  route: {cluster: balanced}
- match: {prefix: /spill}
  route: {cluster: spill}
- match: {prefix: /small}
  route: {cluster: small}
`,
		Clusters: `
- name: self
  endpoints: [{address: 127.0.0.1:1, zone: a}, {address: 127.0.0.1:2, zone: b}, {address: 127.0.0.1:3, zone: c}]
- name: balanced
  endpoints: ` + endpoints("a1", "a2", "b1", "b2", "c1", "c2") + `
- name: spill
  common_lb_config: {zone_aware_lb_config: {min_cluster_size: 5}}
  endpoints: ` + endpoints("as", "bs", "cs1", "cs2", "cs3") + `
- name: small
  endpoints: ` + endpoints("a1", "b1"),
	}
	p := e2etest.StartIngress(t, in)

	t.Run("balanced capacity stays local", func(t *testing.T) {
		// Local 33/33/33 %, upstream 33/33/33 %: upstream% ≥ local% in a,
		// so Envoy routes every request directly to zone a.
		const n = 2000
		res := allOK(t, e2etest.Load{URL: in.URL("/balanced"), Requests: n, Workers: 4, Deadline: 40 * time.Second})
		served := map[string]int64{}
		for _, name := range []string{"a1", "a2", "b1", "b2", "c1", "c2"} {
			served[name] = ups.Get(name).Served(t)
		}
		if served["a1"]+served["a2"] != n || res.ByUpstream["a1"]+res.ByUpstream["a2"] != n {
			t.Errorf("zone a served %d (client saw %d), want all %d; upstream counts %v", served["a1"]+served["a2"], res.ByUpstream["a1"]+res.ByUpstream["a2"], n, served)
		}
		// Round robin keeps its own position within the zone: an even split.
		if d := served["a1"] - served["a2"]; d < -n/50 || d > n/50 {
			t.Errorf("a1 %d, a2 %d: round robin inside zone a is uneven", served["a1"], served["a2"])
		}
		st := p.Stats(t)
		want := map[string]uint64{
			"cluster.balanced.lb_zone_routing_all_directly": n,
			"cluster.balanced.lb_zone_routing_sampled":      0,
			"cluster.balanced.lb_zone_routing_cross_zone":   0,
			"cluster.balanced.lb_zone_cluster_too_small":    0,
			"cluster.balanced.zone.a.a.upstream_rq_200":     n,
			"cluster.balanced.zone.a.b.upstream_rq_200":     0,
			"cluster.balanced.zone.a.c.upstream_rq_200":     0,
			"cluster.balanced.upstream_rq_200":              n,
		}
		for name, w := range want {
			if st[name] != w {
				t.Errorf("%s = %d, want %d", name, st[name], w)
			}
		}
		// The structures are built when the host sets change, not per
		// request: once here (static clusters, no health checks).
		if got := st["cluster.balanced.lb_recalculate_zone_structures"]; got < 1 || got > 3 {
			t.Errorf("lb_recalculate_zone_structures = %d, want 1 (at most a few), not one per request", got)
		}
	})

	t.Run("unbalanced capacity spills by residual capacity", func(t *testing.T) {
		// Local cluster 1/3 in each zone: 3333 basis points. Upstream: a
		// 1/5 = 2000, b 2000, c 3/5 = 6000. a has less than its share, so
		// Envoy keeps 2000×10000/3333 = 6000 basis points (60.00%) in a
		// (sampled). The other 40% cross zones by residual capacity:
		// b 2000−3333 < 0 has none, c 6000−3333 = 2667 has all of it.
		// Expected: as 60%, bs 0, each cs 13.33%. Without zone routing
		// every host would get 20%, over 40 σ away from 60% at this n.
		const n = 3000
		res := allOK(t, e2etest.Load{URL: in.URL("/spill"), Requests: n, Workers: 4, Deadline: 40 * time.Second})
		served := map[string]int64{}
		for _, name := range []string{"as", "bs", "cs1", "cs2", "cs3"} {
			served[name] = ups.Get(name).Served(t)
			if int(served[name]) != res.ByUpstream[name] {
				t.Errorf("%s served %d, client saw %d", name, served[name], res.ByUpstream[name])
			}
		}
		t.Logf("upstream counts: %v", served)
		if ok, tol := within(float64(served["as"])/n, 0.60, n); !ok {
			t.Errorf("zone a share %.4f, want 0.6000 ± %.4f", float64(served["as"])/n, tol)
		}
		if served["bs"] != 0 {
			t.Errorf("zone b (no residual capacity) served %d, want 0", served["bs"])
		}
		c := served["cs1"] + served["cs2"] + served["cs3"]
		if ok, tol := within(float64(c)/n, 0.40, n); !ok {
			t.Errorf("zone c share %.4f, want 0.4000 ± %.4f", float64(c)/n, tol)
		}
		st := p.Stats(t)
		sampled, cross := st["cluster.spill.lb_zone_routing_sampled"], st["cluster.spill.lb_zone_routing_cross_zone"]
		// Every pick is counted once, and each counter matches where the
		// requests really went.
		if sampled+cross != n || sampled != uint64(served["as"]) || cross != uint64(c) {
			t.Errorf("lb_zone_routing_sampled %d + cross_zone %d, want %d + %d (= %d)", sampled, cross, served["as"], c, n)
		}
		for name, w := range map[string]uint64{
			"cluster.spill.lb_zone_routing_all_directly": 0,
			"cluster.spill.lb_zone_no_capacity_left":     0,
			"cluster.spill.zone.a.a.upstream_rq_200":     uint64(served["as"]),
			"cluster.spill.zone.a.b.upstream_rq_200":     0,
			"cluster.spill.zone.a.c.upstream_rq_200":     uint64(c),
		} {
			if st[name] != w {
				t.Errorf("%s = %d, want %d", name, st[name], w)
			}
		}
	})

	t.Run("a cluster under min_cluster_size ignores zones", func(t *testing.T) {
		const n = 200
		before := map[string]int64{"a1": ups.Get("a1").Served(t), "b1": ups.Get("b1").Served(t)}
		allOK(t, e2etest.Load{URL: in.URL("/small"), Requests: n, Workers: 2})
		// Plain round robin over both zones.
		for name, b := range before {
			if got := ups.Get(name).Served(t) - b; got != n/2 {
				t.Errorf("%s served %d, want %d (round robin over both zones)", name, got, n/2)
			}
		}
		st := p.Stats(t)
		if st["cluster.small.lb_zone_cluster_too_small"] < 1 {
			t.Errorf("lb_zone_cluster_too_small = %d, want ≥ 1", st["cluster.small.lb_zone_cluster_too_small"])
		}
		for _, name := range []string{"all_directly", "sampled", "cross_zone"} {
			if v := st["cluster.small.lb_zone_routing_"+name]; v != 0 {
				t.Errorf("cluster.small.lb_zone_routing_%s = %d, want 0", name, v)
			}
		}
		if st["cluster.small.zone.a.a.upstream_rq_200"] != n/2 || st["cluster.small.zone.a.b.upstream_rq_200"] != n/2 {
			t.Errorf("zone stats a.a %d, a.b %d; want %d each", st["cluster.small.zone.a.a.upstream_rq_200"], st["cluster.small.zone.a.b.upstream_rq_200"], n/2)
		}
	})
	t.Run("node.zone changes on reload", func(t *testing.T) {
		// The clusters are unchanged, so the reload carries them over with
		// their host state; they must still follow the new zone, and the
		// per-zone stats must name it.
		in.Head = strings.Replace(in.Head, "zone: a}", "zone: c}", 1)
		p.Reload(t, in.Config())
		if !strings.Contains(p.ConfigText(t), "node: {id: zones-e2e, zone: c}") {
			t.Fatal("the reload did not change node.zone")
		}
		before := map[string]int64{}
		for _, name := range []string{"a1", "a2", "c1", "c2"} {
			before[name] = ups.Get(name).Served(t)
		}
		directBefore := p.Stat(t, "cluster.balanced.lb_zone_routing_all_directly")
		const n = 500
		allOK(t, e2etest.Load{URL: in.URL("/balanced"), Requests: n, Workers: 4})
		c := ups.Get("c1").Served(t) - before["c1"] + ups.Get("c2").Served(t) - before["c2"]
		if c != n || ups.Get("a1").Served(t) != before["a1"] || ups.Get("a2").Served(t) != before["a2"] {
			t.Errorf("zone c served %d of %d after the reload (a1 %d→%d, a2 %d→%d)", c, n,
				before["a1"], ups.Get("a1").Served(t), before["a2"], ups.Get("a2").Served(t))
		}
		st := p.Stats(t)
		if got := st["cluster.balanced.lb_zone_routing_all_directly"] - directBefore; got != n {
			t.Errorf("lb_zone_routing_all_directly grew by %d, want %d", got, n)
		}
		if got := st["cluster.balanced.zone.c.c.upstream_rq_200"]; got != n {
			t.Errorf("cluster.balanced.zone.c.c.upstream_rq_200 = %d, want %d", got, n)
		}
		if got := st["cluster.balanced.zone.a.c.upstream_rq_200"]; got != 0 {
			t.Errorf("cluster.balanced.zone.a.c.upstream_rq_200 = %d: responses charged to the old zone", got)
		}
	})
}

// allOK runs the load and fails the test unless every request was sent
// and answered 200.
func allOK(t *testing.T, l e2etest.Load) *e2etest.LoadResult {
	t.Helper()
	res := e2etest.RunLoad(t, l)
	t.Logf("client: %d sent, status %v, by upstream %v, p50 %v p99 %v", res.Sent, res.Status, res.ByUpstream, res.Percentile(0.5), res.Percentile(0.99))
	if res.Sent != l.Requests || res.Status[200] != l.Requests {
		t.Fatalf("client: %d sent, status %v, %d errors %q; want %d × 200", res.Sent, res.Status, res.Errors, res.ErrorSamples, l.Requests)
	}
	return res
}
