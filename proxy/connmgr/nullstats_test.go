package connmgr

import (
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// TestSnapshotWithoutStats: New and Swap give a snapshot without stats a
// null store's, one store per Manager, and keep the stats a snapshot has.
func TestSnapshotWithoutStats(t *testing.T) {
	m := New(&Snapshot{Listener: &config.Listener{StatPrefix: "in"}}, nil)
	first := m.Snapshot().Stats
	if first == nil || first.HTTP == nil {
		t.Fatalf("New left the snapshot's stats nil: %+v", first)
	}
	m.Swap(&Snapshot{Listener: &config.Listener{StatPrefix: "in"}})
	if got := m.Snapshot().Stats; got == nil || got.HTTP != first.HTTP {
		t.Errorf("Swap: stats %+v, want the Manager's null store's http.in (%p)", got, first.HTTP)
	}
	own := &Stats{HTTP: stats.MustNewNullStore().HTTPConnManagerStats("in")}
	m.Swap(&Snapshot{Listener: &config.Listener{StatPrefix: "in"}, Stats: own})
	if got := m.Snapshot().Stats; got != own {
		t.Errorf("Swap replaced the snapshot's own stats %p with %p", own, got)
	}
	if other := New(&Snapshot{}, nil).Snapshot().Stats; other == nil || other.HTTP == first.HTTP {
		t.Error("two Managers share a null store: it must be per Manager")
	}
}
