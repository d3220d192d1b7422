package stats

import (
	"net/http"
	"strings"
	"testing"
)

// TestNullStoreCountsButListsNothing: a null store's constructors hand
// out working, deduplicated stats, and nothing lists, finds, exposes or
// queues them.
func TestNullStoreCountsButListsNothing(t *testing.T) {
	s, err := NewNullStore(Config{})
	if err != nil {
		t.Fatal(err)
	}
	real := newTestStore(t, Config{})
	if !s.IsNull() || real.IsNull() {
		t.Fatal("IsNull does not tell a null store from a real one")
	}
	scriptedTraffic(s)
	scriptedTraffic(real)
	cs := s.ClusterStats("backend")
	if cs != s.ClusterStats("backend") {
		t.Error("ClusterStats returned a new scope for the same name: the per-scope cache is bypassed")
	}
	if got, want := cs.UpstreamRqTotal.Value(), real.ClusterStats("backend").UpstreamRqTotal.Value(); got != want || got == 0 {
		t.Errorf("upstream_rq_total = %d, want %d as in a real store: stats of a null store count as usual", got, want)
	}
	if n := s.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
	if c, g, h := s.Counters(), s.Gauges(), s.Histograms(); len(c)+len(g)+len(h) != 0 {
		t.Errorf("listed %d counters, %d gauges, %d histograms; want none", len(c), len(g), len(h))
	}
	if st := s.Find("cluster.backend.upstream_rq_total"); st != nil {
		t.Errorf("Find = %v, want nil", st)
	}
	for _, target := range []string{"/stats", "/stats?format=json", "/stats/prometheus"} {
		h := s.StatsHandler()
		if strings.HasPrefix(target, "/stats/prometheus") {
			h = s.PrometheusHandler()
		}
		code, body := get(t, h, target)
		if code != http.StatusOK || strings.Contains(body, "backend") || strings.Contains(body, "overflow") {
			t.Errorf("%s: %d %q, want 200 without any stat", target, code, body)
		}
	}
	// A timer-mode sink's queue, were one installed, gets nothing.
	q := newSampleQueue(8)
	s.timerQueue.Store(q)
	cs.UpstreamCxConnectMs.Record(5)
	if smp, ok := q.pop(); ok {
		t.Errorf("a null store's histogram queued %+v, want nothing", smp)
	}
}

// TestNullStoreKeepsTheCap: a null store is bounded by max_stats as a real
// one is, so memory stays bounded by the configuration.
func TestNullStoreKeepsTheCap(t *testing.T) {
	s, err := NewNullStore(Config{MaxStats: 10})
	if err != nil {
		t.Fatal(err)
	}
	s.ClusterStats("a")
	if s.OverflowCount() == 0 {
		t.Error("stats.overflow = 0 past max_stats: the null store is not capped")
	}
	if _, err := NewNullStore(Config{MaxStats: -1}); err == nil {
		t.Error("NewNullStore accepted max_stats: -1")
	}
}
