package router

import (
	"context"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// TestUpstreamStatsDefault: a request without stats counts in its
// cluster's own, a request with stats keeps them, so the router never
// meets a nil stats pointer.
func TestUpstreamStatsDefault(t *testing.T) {
	store := stats.MustNewNullStore()
	for _, tc := range []struct {
		name string
		opts cluster.Options
	}{
		{"cluster without stats", cluster.Options{}},
		{"cluster with stats", cluster.Options{ClusterStats: store.ClusterStats}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := cluster.NewManagerWithOptions(context.Background(),
				[]config.Cluster{{Name: "c", Endpoints: []config.Endpoint{{Address: "127.0.0.1:1"}}}}, nil, nil, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			c := m.Get("c")
			if c.Stats() == nil {
				t.Fatal("Cluster.Stats is nil")
			}
			if tc.opts.ClusterStats != nil && c.Stats() != store.ClusterStats("c") {
				t.Error("Cluster.Stats are not the ones Options.ClusterStats gave")
			}
			var none *UpstreamStats
			if got := none.Or(c); got == nil || got.Cluster != c.Stats() {
				t.Errorf("nil.Or(c) = %+v, want the cluster's own stats", got)
			}
			given := &UpstreamStats{Cluster: store.ClusterStats("other")}
			if got := given.Or(c); got != given {
				t.Errorf("given.Or(c) = %p, want the given stats %p", got, given)
			}
		})
	}
}
