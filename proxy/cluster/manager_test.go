package cluster

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func TestManagerLookup(t *testing.T) {
	m := newTestManager(t, Options{},
		staticCluster("b", "", 1), staticCluster("a", "random", 1, 2), staticCluster("c", "least_request", 1))
	var names []string
	for _, c := range m.Clusters() {
		names = append(names, c.Name())
	}
	if got := strings.Join(names, ","); got != "b,a,c" {
		t.Errorf("Clusters() = %s, want config order b,a,c", got)
	}
	if m.Get("a") == nil || m.Get("a").Config().LBPolicy != "random" {
		t.Errorf("Get(a) = %v, want the random cluster", m.Get("a"))
	}
	if m.Get("nope") != nil {
		t.Error("Get of an unknown cluster is not nil")
	}
	empty := newTestManager(t, Options{})
	if empty.Get("a") != nil || len(empty.Clusters()) != 0 {
		t.Error("an empty manager has clusters")
	}
}

func TestManagerNameErrors(t *testing.T) {
	tests := []struct {
		name string
		cfgs []config.Cluster
		want string
	}{
		{"duplicate", []config.Cluster{staticCluster("a", "", 1), staticCluster("a", "", 1)}, `clusters[1].name: duplicate cluster name "a"`},
		{"empty", []config.Cluster{staticCluster("", "", 1)}, "clusters[0].name: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewManagerWithOptions(context.Background(), tt.cfgs, nil, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestManagerCarryOver(t *testing.T) {
	ctx := context.Background()
	r := newFakeResolver()
	r.set("svc.internal", "10.7.0.1")
	keep, change, drop := staticCluster("keep", "", 1, 2), staticCluster("change", "", 1), dnsCluster("svc.internal:80")
	drop.Name = "drop"
	m1, err := NewManagerWithOptions(ctx, []config.Cluster{keep, change, drop}, nil, nil, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	kept, changed, dropped := m1.Get("keep"), m1.Get("change"), m1.Get("drop")
	kept.Hosts()[0].BeginRequest()

	// The caller may reuse and mutate its config slices: the manager copied them.
	keep.Endpoints = append([]config.Endpoint(nil), keep.Endpoints...)
	change.Endpoints[0].Weight = 7
	m2, err := NewManagerWithOptions(ctx, []config.Cluster{change, keep}, m1, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Get("keep") != kept {
		t.Error("an unchanged cluster was rebuilt, want the same *Cluster carried over")
	}
	if kept.Hosts()[0].ActiveRequests() != 1 || kept.closed.Load() {
		t.Error("the carried-over cluster lost its host state or was closed")
	}
	if m2.Get("change") == changed || m2.Get("change").Hosts()[0].Weight() != 7 {
		t.Error("a changed cluster was carried over, want a new cluster with the new config")
	}
	if !changed.closed.Load() || !dropped.closed.Load() {
		t.Errorf("replaced cluster closed %v, removed cluster closed %v; want both closed", changed.closed.Load(), dropped.closed.Load())
	}
	if m2.Get("drop") != nil {
		t.Error("a removed cluster is still in the new manager")
	}

	// Closing the old manager leaves what it handed over alone.
	m1.Close()
	if kept.closed.Load() {
		t.Error("closing the old manager closed a cluster carried into the new one")
	}
	m2.Close()
	m2.Close() // idempotent
	if !kept.closed.Load() || !m2.Get("change").closed.Load() {
		t.Error("closing the owning manager left clusters open")
	}
}

func TestManagerFailedReloadLeavesPrevAlone(t *testing.T) {
	ctx := context.Background()
	m1 := newTestManager(t, Options{}, staticCluster("a", "", 1), staticCluster("b", "", 1))
	a, b := m1.Get("a"), m1.Get("b")
	bad := staticCluster("c", "nonsense", 1)
	if _, err := NewManagerWithOptions(ctx, []config.Cluster{staticCluster("a", "", 1), bad}, m1, nil, Options{}); err == nil {
		t.Fatal("NewManager with a bad cluster succeeded")
	}
	if a.closed.Load() || b.closed.Load() || a.owner.Load() != m1 || b.owner.Load() != m1 {
		t.Error("a failed reload closed or took over clusters of the previous manager")
	}
	// The previous manager still reloads normally afterwards.
	m2, err := NewManagerWithOptions(ctx, []config.Cluster{staticCluster("a", "", 1)}, m1, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Get("a") != a || !b.closed.Load() {
		t.Error("reload after a failed one did not carry a over and close b")
	}
}

// TestManagerCarryOverKeepsWarmConnections checks the point of carrying a
// cluster over: a request after the reload reuses the pooled connection.
func TestManagerCarryOverKeepsWarmConnections(t *testing.T) {
	u := newUpstream(t, "")
	cfg := config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: u.addr()}}}
	m1, err := NewManagerWithOptions(context.Background(), []config.Cluster{cfg}, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := roundTrip(t, m1.Get("c")); err != nil {
		t.Fatal(err)
	}
	m2, err := NewManagerWithOptions(context.Background(), []config.Cluster{cfg}, m1, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m1.Close()
	defer m2.Close()
	if _, _, err := roundTrip(t, m2.Get("c")); err != nil {
		t.Fatal(err)
	}
	if n := u.newConns.Load(); n != 1 {
		t.Errorf("requests before and after the reload opened %d connections, want 1", n)
	}
}

// blockingResolver never answers until its context ends.
type blockingResolver struct{}

func (blockingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestManagerContextEndsWhileResolving(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewManagerWithOptions(ctx, []config.Cluster{dnsCluster("slow.internal:80")}, nil, nil, Options{Resolver: blockingResolver{}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	// Returning means the half-built cluster's DNS loop was stopped too.
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("NewManager took %v after its context ended", elapsed)
	}
}
