// Package slowendpoint is the "Slow endpoint" end-to-end scenario: one of
// three upstream processes becomes slow (200 ms per response) under
// bounded concurrent load. A least_request cluster moves
// traffic away from it, measurably: its share drops from about a third to
// about a ninth, while a round_robin cluster over the same three processes,
// the control, keeps sending it exactly a third.
//
// Per-host counts come from the upstream processes and, independently,
// from the proxy: every upstream is in a zone of its own and the proxy has
// a zone, so the proxy's per-zone stats cluster.<c>.zone.<from>.<to>.*
// count the responses of each host. There is no local cluster, so zones
// do not steer anything here.
package slowendpoint

import (
	"fmt"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

var names = []string{"fast1", "fast2", "slow"}

func TestSlowEndpoint(t *testing.T) {
	ups := e2etest.StartUpstreams(t, names...)
	// Each upstream is in a zone of its own name.
	eps := ups.Endpoints(func(name string) string { return name })
	in := &e2etest.Ingress{
		Head: "node: {id: slow-e2e, zone: here}",
		Routes: `
- match: {prefix: /lr}
  route: {cluster: lr}
- match: {prefix: /rr}
  route: {cluster: rr}
`,
		Clusters: `
- name: lr
  lb_policy: least_request
  endpoints: ` + eps + `
- name: rr
  lb_policy: round_robin
  endpoints: ` + eps,
	}
	p := e2etest.StartIngress(t, in)

	// counts runs a load and returns each upstream's served count during
	// it, checking that the proxy's per-zone stats saw the same.
	counts := func(t *testing.T, cluster string, l e2etest.Load) (map[string]int64, *e2etest.LoadResult) {
		t.Helper()
		before := map[string]int64{}
		statsBefore := p.Stats(t)
		for _, n := range names {
			before[n] = ups.Get(n).Served(t)
		}
		res := e2etest.RunLoad(t, l)
		if res.Sent != l.Requests || res.Status[200] != l.Requests {
			t.Fatalf("%s: %d sent, status %v, %d errors; want %d × 200", cluster, res.Sent, res.Status, res.Errors, l.Requests)
		}
		statsAfter := p.Stats(t)
		got := map[string]int64{}
		for _, n := range names {
			got[n] = ups.Get(n).Served(t) - before[n]
			stat := fmt.Sprintf("cluster.%s.zone.here.%s.upstream_rq_200", cluster, n)
			if d := int64(statsAfter[stat] - statsBefore[stat]); d != got[n] {
				t.Errorf("%s: %s grew by %d, upstream %s served %d", cluster, stat, d, n, got[n])
			}
			if got[n] != int64(res.ByUpstream[n]) {
				t.Errorf("%s: upstream %s served %d, the client saw %d", cluster, n, got[n], res.ByUpstream[n])
			}
		}
		t.Logf("%s: served %v; client p50 %v, p90 %v, p99 %v, %v elapsed", cluster, got, res.Percentile(0.5), res.Percentile(0.9), res.Percentile(0.99), res.Elapsed.Round(time.Millisecond))
		return got, res
	}
	share := func(m map[string]int64, n string) float64 {
		var total int64
		for _, v := range m {
			total += v
		}
		return float64(m[n]) / float64(total)
	}

	// Before: all three fast, least_request spreads evenly.
	before, _ := counts(t, "lr", e2etest.Load{URL: in.URL("/lr"), Requests: 1500, Workers: 6, Deadline: 30 * time.Second})
	for _, n := range names {
		if s := share(before, n); s < 0.2 || s > 0.47 {
			t.Errorf("all fast: %s got %.3f of the requests, want about 1/3", n, s)
		}
	}

	ups.Get("slow").Control(t, url.Values{"delay": {"200ms"}})

	// After: the slow host holds the requests it gets for 200 ms, so it
	// always has more active requests than a fast host, and power of two
	// choices picks it only when both draws land on it. Envoy draws with
	// replacement, so that is 1/9 of the picks: the expected share is
	// 0.111 (plus the rare pick where a fast host is momentarily busier),
	// down from 1/3. The bounds: 1/9 − 5σ of a binomial share over 1500
	// picks (σ = 0.008) below, and 0.2, over 10σ above 1/9, above.
	const n = 1500
	after, _ := counts(t, "lr", e2etest.Load{URL: in.URL("/lr"), Requests: n, Workers: 8, Deadline: 40 * time.Second})
	lrSlow := share(after, "slow")
	lower := 1.0/9 - 5*math.Sqrt(1.0/9*8/9/n)
	if lrSlow > 0.2 || lrSlow < lower || lrSlow > share(before, "slow")-0.1 {
		t.Errorf("least_request: the slow host's share went from %.3f to %.3f, want about 1/9 (%.3f to 0.2) and at least 0.1 lower", share(before, "slow"), lrSlow, lower)
	}

	// Control: round robin ignores load, so the slow host keeps exactly
	// every third request (one counter, no retries).
	rr, rrRes := counts(t, "rr", e2etest.Load{URL: in.URL("/rr"), Requests: 300, Workers: 8, Deadline: 40 * time.Second})
	if rr["slow"] != 100 {
		t.Errorf("round_robin control: the slow host served %d of 300, want 100", rr["slow"])
	}
	// A third of the requests waited 200 ms upstream: the client's p90 must
	// show it (a consequence of the counts, not a timing benchmark).
	if p90 := rrRes.Percentile(0.9); p90 < 200*time.Millisecond {
		t.Errorf("round_robin control: client p90 %v, want ≥ 200ms with a third of the requests on the slow host", p90)
	}
	t.Logf("slow host share: before %.3f, least_request after %.3f, round_robin control %.3f", share(before, "slow"), lrSlow, share(rr, "slow"))

	// The proxy's own totals agree with the clients'.
	st := p.Stats(t)
	if got := st["cluster.lr.upstream_rq_200"]; got != 3000 {
		t.Errorf("cluster.lr.upstream_rq_200 = %d, want 3000", got)
	}
	if got := st["cluster.rr.upstream_rq_200"]; got != 300 {
		t.Errorf("cluster.rr.upstream_rq_200 = %d, want 300", got)
	}
}
