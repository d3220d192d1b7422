// Package shadow is the "Shadowing" end-to-end scenario: the
// real proxy mirrors 10 % of a route's traffic to a shadow upstream
// process. Over 2000 requests the shadow receives 10 % ± 2 % of them, with
// "-shadow" appended to their Host, and the proxy counts them in the
// shadow cluster's own stats. The primary's p99 stays what it is without
// shadowing when the shadow is slow (2 s per response) and when it is down
// (killed): each time, a no-shadow baseline runs at the same moment,
// through the same proxy, so both see the same machine.
package shadow

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

const n = 2000

func TestShadowing(t *testing.T) {
	primary := e2etest.StartUpstream(t, "primary")
	shadow := e2etest.StartUpstream(t, "shadow")
	in := &e2etest.Ingress{
		Routes: `
- match: {prefix: /base}
  route: {cluster: primary}
- match: {prefix: /mirror}
  route:
    cluster: primary
    request_mirror_policies:
      - cluster: shadow
        runtime_fraction: {default_value: {numerator: 10, denominator: HUNDRED}}
`,
		Clusters: fmt.Sprintf(`
- name: primary
  endpoints: [{address: %s}]
- name: shadow
  connect_timeout: 1s
  endpoints: [{address: %s}]
`, primary.Addr, shadow.Addr),
	}
	p := e2etest.StartIngress(t, in)
	listen := in.Listen

	// Warm up connections and code paths so the first phase is not
	// measured against a cold proxy.
	e2etest.RunLoad(t, e2etest.Load{URL: "http://" + listen + "/base", Requests: 200, Workers: 4})

	// settle waits until no shadow is in flight, so that counts are final.
	settle := func(t *testing.T) map[string]uint64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := p.Stats(t)
			if st["cluster.shadow.upstream_rq_active"] == 0 {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster.shadow.upstream_rq_active = %d after 20s", st["cluster.shadow.upstream_rq_active"])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// mirrored runs n requests through /mirror and, at the same time, n
	// through /base, and checks that every one got the primary's 200.
	mirrored := func(t *testing.T, phase string) (mirror, base *e2etest.LoadResult) {
		t.Helper()
		var wg sync.WaitGroup
		wg.Go(func() {
			base = e2etest.RunLoad(t, e2etest.Load{URL: "http://" + listen + "/base", Requests: n, Workers: 3, Deadline: 40 * time.Second})
		})
		mirror = e2etest.RunLoad(t, e2etest.Load{URL: "http://" + listen + "/mirror", Requests: n, Workers: 3, Deadline: 40 * time.Second})
		wg.Wait()
		for name, r := range map[string]*e2etest.LoadResult{"mirror": mirror, "base": base} {
			if r.Sent != n || r.Status[200] != n || r.ByUpstream["primary"] != n {
				t.Fatalf("%s, %s: sent %d, status %v, by upstream %v, %d errors; want %d × 200 from primary", phase, name, r.Sent, r.Status, r.ByUpstream, r.Errors, n)
			}
		}
		t.Logf("%s: p50/p99 mirrored %v/%v, baseline %v/%v", phase, mirror.Percentile(0.5), mirror.Percentile(0.99), base.Percentile(0.5), base.Percentile(0.99))
		return mirror, base
	}
	// Of n requests mirrored at 10 % the shadow gets a binomial(2000, 0.1)
	// count: mean 200, standard deviation sqrt(2000 × 0.1 × 0.9) ≈ 13.4.
	// ±2 % of 2000 is ±40, about 3 standard deviations, so a correct
	// mirror fails this about once in 370 runs, and one off by a third
	// (6.7 % or 13.3 %) fails it almost always.
	checkFraction := func(t *testing.T, phase string, selected uint64) {
		t.Helper()
		if selected < n*8/100 || selected > n*12/100 {
			t.Errorf("%s: %d of %d requests mirrored (%.1f %%), want 10 %% ± 2 %%", phase, selected, n, 100*float64(selected)/n)
		}
	}
	// The primary's p99 must not move. The shadow answers in 2 s or not at
	// all; a primary that waited for it, even only for the 10 % mirrored,
	// would show it at p99 (p99 would be ≥ 2 s, or a connect failure).
	// The bound is relative to the baseline that ran at the same moment:
	// three times its p99, with 25 ms of slack for the scheduling noise of
	// a small shared machine on millisecond latencies.
	checkP99 := func(t *testing.T, phase string, mirror, base *e2etest.LoadResult) {
		t.Helper()
		limit := max(3*base.Percentile(0.99), base.Percentile(0.99)+25*time.Millisecond)
		if got := mirror.Percentile(0.99); got > limit {
			t.Errorf("%s: the mirrored route's p99 is %v, the baseline's %v; want at most %v", phase, got, base.Percentile(0.99), limit)
		}
	}

	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatal(err)
	}
	shadowHost := host + "-shadow:" + port

	t.Run("10% mirrored", func(t *testing.T) {
		before := p.Stats(t)
		servedBefore := shadow.Served(t)
		mirror, base := mirrored(t, "healthy shadow")
		st := settle(t)
		served := uint64(shadow.Served(t) - servedBefore)
		checkFraction(t, "healthy shadow", served)
		t.Logf("healthy shadow: %d of %d requests mirrored (%.2f %%)", served, n, 100*float64(served)/n)
		for _, name := range []string{"cluster.shadow.upstream_rq_total", "cluster.shadow.upstream_rq_200"} {
			if d := st[name] - before[name]; d != served {
				t.Errorf("%s grew by %d, the shadow served %d", name, d, served)
			}
		}
		// The primary served both loads, nothing more.
		if d := st["cluster.primary.upstream_rq_200"] - before["cluster.primary.upstream_rq_200"]; d != 2*n {
			t.Errorf("cluster.primary.upstream_rq_200 grew by %d, want %d", d, 2*n)
		}
		if got := shadow.Stats(t).LastHost; got != shadowHost {
			t.Errorf("the shadow saw Host %q, want %q", got, shadowHost)
		}
		if got := primary.Stats(t).LastHost; got != listen {
			t.Errorf("the primary saw Host %q, want %q", got, listen)
		}
		checkP99(t, "healthy shadow", mirror, base)
	})

	t.Run("slow shadow", func(t *testing.T) {
		shadow.Control(t, url.Values{"delay": {"2s"}})
		defer shadow.Control(t, url.Values{"delay": {""}})
		before := p.Stats(t)
		servedBefore := shadow.Served(t)
		mirror, base := mirrored(t, "slow shadow")
		mid := p.Stats(t)
		st := settle(t)
		total := st["cluster.shadow.upstream_rq_total"] - before["cluster.shadow.upstream_rq_total"]
		refused := st["cluster.shadow.upstream_rq_pending_overflow"] - before["cluster.shadow.upstream_rq_pending_overflow"]
		// Shadows still waiting for the slow upstream when the load ended
		// were in flight, counted in upstream_rq_active.
		t.Logf("slow shadow: %d sent, %d refused by the in-flight bound, %d in flight when the load ended", total, refused, mid["cluster.shadow.upstream_rq_active"])
		checkFraction(t, "slow shadow", total+refused)
		if d := st["cluster.shadow.upstream_rq_200"] - before["cluster.shadow.upstream_rq_200"]; d != total {
			t.Errorf("slow shadow: %d shadows sent, %d answered 200; every one should finish within the route timeout", total, d)
		}
		if served := uint64(shadow.Served(t) - servedBefore); served != total {
			t.Errorf("slow shadow: the shadow served %d, the proxy sent %d", served, total)
		}
		checkP99(t, "slow shadow", mirror, base)
	})

	t.Run("shadow down", func(t *testing.T) {
		shadow.Kill()
		before := p.Stats(t)
		mirror, base := mirrored(t, "shadow down")
		st := settle(t)
		total := st["cluster.shadow.upstream_rq_total"] - before["cluster.shadow.upstream_rq_total"]
		refused := st["cluster.shadow.upstream_rq_pending_overflow"] - before["cluster.shadow.upstream_rq_pending_overflow"]
		checkFraction(t, "shadow down", total+refused)
		// Every shadow failed to connect and counts as Envoy charges an
		// upstream connect failure: 503, in the shadow cluster.
		if d := st["cluster.shadow.upstream_rq_503"] - before["cluster.shadow.upstream_rq_503"]; d != total {
			t.Errorf("shadow down: upstream_rq_503 grew by %d, want the %d shadows sent", d, total)
		}
		if d := st["cluster.shadow.upstream_cx_connect_fail"] - before["cluster.shadow.upstream_cx_connect_fail"]; d < total {
			t.Errorf("shadow down: upstream_cx_connect_fail grew by %d, want at least %d", d, total)
		}
		if d := st["cluster.primary.upstream_rq_5xx"] - before["cluster.primary.upstream_rq_5xx"]; d != 0 {
			t.Errorf("shadow down: the primary counted %d 5xx", d)
		}
		checkP99(t, "shadow down", mirror, base)
	})
}
