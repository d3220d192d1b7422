package cluster

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/config/configtest"
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// firstHost is a test-only policy that always picks the first candidate.
// It shows what adding a policy takes: a balancer, a row registered under
// its name, and nothing edited elsewhere; the config loader accepts its
// name and the cluster runs it.
type firstHost struct{}

func (firstHost) pick(c *candidates, _ *LBContext) *Host { return c.hosts[0] }

func init() {
	registerPolicy("first_host", policy{
		build:     func(*config.Cluster, randSource) (balancer, error) { return firstHost{}, nil },
		zoneAware: true,
	})
}

func TestRegisteredPolicyThroughConfigAndCluster(t *testing.T) {
	const clusters = `  - name: c
    lb_policy: first_host
    endpoints: [{address: 127.0.0.1:8080}, {address: 127.0.0.1:8081}]
`
	cfg := configtest.ParseClusters(t, clusters)
	m, err := NewManagerWithOptions(context.Background(), cfg.Clusters, nil, nil, Options{})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	defer m.Close()
	c := m.Get("c")
	for range 5 {
		if h := c.Pick(nil); h != c.Hosts()[0] {
			t.Fatalf("Pick = %v, want the first host %v", h, c.Hosts()[0])
		}
	}
	if c.HashesRequests() {
		t.Error("HashesRequests = true for a policy that does not hash")
	}

	// A misspelt name is still refused, with the registered name listed.
	_, err = config.Parse([]byte(configtest.WithClusters(strings.Replace(clusters, "first_host", "first_hots", 1))), "test.yaml")
	want := `test.yaml:4:16: clusters[0].lb_policy: must be one of round_robin, least_request, random, ring_hash, maglev, first_host; got "first_hots"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// TestPolicyTableMatchesNames: every name the config loader accepts has a
// balancer, and every balancer a name.
func TestPolicyTableMatchesNames(t *testing.T) {
	names := lbpolicy.Names()
	for _, n := range names {
		if _, ok := lbPolicies[n]; !ok {
			t.Errorf("lb_policy %q has no row in lbPolicies", n)
		}
	}
	for n := range lbPolicies {
		if !slices.Contains(names, n) {
			t.Errorf("lbPolicies row %q is not a name lbpolicy knows", n)
		}
	}
}
