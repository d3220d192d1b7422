package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// waitUntil polls cond until it holds, failing the test after 10 s. It
// waits for a state, never for a duration.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ptrTo[T any](v T) *T { return &v }

// staticCluster returns a static cluster config with endpoints on
// 10.0.0.1, 10.0.0.2, … (never dialed) and the given weights.
func staticCluster(name, policy string, weights ...int) config.Cluster {
	cfg := withLBDefaults(config.Cluster{Name: name, LBPolicy: policy})
	for i, w := range weights {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w})
	}
	return *cfg
}

// newTestManager builds a manager and closes it when the test ends.
func newTestManager(t *testing.T, opts Options, cfgs ...config.Cluster) *Manager {
	t.Helper()
	m, err := NewManagerWithOptions(context.Background(), cfgs, nil, nil, opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

var policies = []string{"round_robin", "least_request", "random", "ring_hash", "maglev"}

func TestPickAvoidsAttempted(t *testing.T) {
	for _, policy := range policies {
		for _, weights := range [][]int{{1, 1, 1}, {5, 2, 1}} {
			t.Run(fmt.Sprintf("%s/%v", policy, weights), func(t *testing.T) {
				m := newTestManager(t, Options{rnd: seeded()}, staticCluster("c", policy, weights...))
				c := m.Get("c")
				hosts := c.Hosts()
				a, b, third := hosts[0], hosts[1], hosts[2]

				for i := range 200 {
					if h := c.Pick(&LBContext{Attempted: []*Host{a, b}}); h != third {
						t.Fatalf("pick %d with a, b attempted chose %s", i, letter(h))
					}
				}
				seen := map[*Host]bool{}
				for range 200 {
					h := c.Pick(&LBContext{Attempted: []*Host{a}})
					if h == a {
						t.Fatalf("picked the attempted host a while b and c are available")
					}
					seen[h] = true
				}
				if !seen[b] || !seen[third] {
					t.Errorf("with a attempted, picks covered %d of the 2 other hosts", len(seen))
				}
				// Every host tried: retrying one beats failing without a try.
				if h := c.Pick(&LBContext{Attempted: hosts}); h == nil {
					t.Error("Pick returned nil with every host attempted, want a retry of one")
				}
			})
		}
	}
}

func TestPickNilContextAndUnknownAttempted(t *testing.T) {
	m := newTestManager(t, Options{}, staticCluster("c", "", 1, 1))
	c := m.Get("c")
	stranger := testHosts(1)[0]
	for _, lb := range []*LBContext{nil, {}, {Attempted: []*Host{stranger}}} {
		if h := c.Pick(lb); h == nil {
			t.Errorf("Pick(%v) = nil, want a host", lb)
		}
	}
}

func TestHealthFilterAndPanicThreshold(t *testing.T) {
	m := newTestManager(t, Options{rnd: seeded()}, staticCluster("c", "round_robin", 1, 1, 1, 1))
	c := m.Get("c")
	hosts := c.Hosts()
	pickCounts := func() map[*Host]int {
		counts := map[*Host]int{}
		for range 400 {
			counts[c.Pick(nil)]++
		}
		return counts
	}

	c.setHostHealth(hosts[0], false)
	if got := pickCounts(); got[hosts[0]] != 0 || len(got) != 3 {
		t.Errorf("one unhealthy host of four: picks %v, want the three healthy hosts only", got)
	}
	if c.set.Load().panic {
		t.Error("panic mode with 75% healthy hosts")
	}
	// 2 of 4 healthy is exactly the 50% threshold: not yet panic.
	c.setHostHealth(hosts[1], false)
	if got := pickCounts(); len(got) != 2 || got[hosts[0]]+got[hosts[1]] != 0 {
		t.Errorf("two unhealthy hosts of four: picks %v, want the two healthy hosts", got)
	}
	// 1 of 4 healthy is below 50%: balance over every host.
	c.setHostHealth(hosts[2], false)
	if !c.set.Load().panic {
		t.Error("not in panic mode with 25% healthy hosts")
	}
	if got := pickCounts(); len(got) != 4 {
		t.Errorf("panic mode: picks covered %d hosts, want all 4", len(got))
	}
	for _, h := range hosts {
		c.setHostHealth(h, true)
	}
	if got := pickCounts(); len(got) != 4 || c.set.Load().panic {
		t.Errorf("all healthy again: picks covered %d hosts (panic %v), want 4", len(got), c.set.Load().panic)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, policy := range policies {
		for _, weights := range [][]int{{1, 1, 1, 1}, {1, 2, 3, 4}} {
			m := newTestManager(t, Options{}, staticCluster("c", policy, weights...))
			c := m.Get("c")
			lb := &LBContext{}
			allocs := testing.AllocsPerRun(1000, func() {
				h := c.Pick(lb)
				h.BeginRequest()
				h.EndRequest()
			})
			if allocs != 0 {
				t.Errorf("%s %v: %v allocations per pick, want 0", policy, weights, allocs)
			}
		}
	}
}

func TestNewClusterErrors(t *testing.T) {
	neg := config.Duration(-1)
	missingCA := filepath.Join(t.TempDir(), "missing.pem")
	junkCA := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junkCA, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := func(addr string) []config.Endpoint { return []config.Endpoint{{Address: addr}} }
	tests := []struct {
		name string
		cfg  config.Cluster
		want string
	}{
		{"unknown type", config.Cluster{Type: "eds", Endpoints: ep("10.0.0.1:80")}, `type: unknown cluster type "eds" (allowed: static, strict_dns)`},
		{"no endpoints", config.Cluster{}, "endpoints: at least one endpoint is required"},
		{"static needs IP", config.Cluster{Endpoints: ep("backend:80")}, `endpoints[0].address: "backend:80": a static cluster needs an IP address (use type strict_dns`},
		{"missing port", config.Cluster{Endpoints: ep("10.0.0.1")}, `endpoints[0].address: "10.0.0.1" is not host:port`},
		{"port zero", config.Cluster{Endpoints: ep("10.0.0.1:0")}, `port "0" is not a number in 1-65535`},
		{"port too big", config.Cluster{Endpoints: ep("10.0.0.1:70000")}, `port "70000" is not a number in 1-65535`},
		{"bad dns name", config.Cluster{Type: "strict_dns", Endpoints: ep("bad..name:80")}, "not a valid DNS name"},
		{"weight too big", config.Cluster{Endpoints: []config.Endpoint{{Address: "10.0.0.1:80", Weight: 129}}}, "endpoints[0].weight: 129 is out of range (1-128"},
		{"negative weight", config.Cluster{Endpoints: []config.Endpoint{{Address: "10.0.0.1:80", Weight: -1}}}, "endpoints[0].weight: -1 is out of range"},
		{"negative connect timeout", config.Cluster{ConnectTimeout: neg, Endpoints: ep("10.0.0.1:80")}, "connect_timeout: -1ns is negative"},
		{"negative idle timeout", config.Cluster{IdleTimeout: neg, Endpoints: ep("10.0.0.1:80")}, "idle_timeout: -1ns is negative"},
		{"negative dns refresh", config.Cluster{Type: "strict_dns", DNSRefreshRate: neg, Endpoints: ep("localhost:80")}, "dns_refresh_rate: -1ns is negative"},
		{"negative idle conns", config.Cluster{MaxIdleConnectionsPerHost: -1, Endpoints: ep("10.0.0.1:80")}, "max_idle_connections_per_host: -1 is negative"},
		{"unknown protocol", config.Cluster{Protocol: "http3", Endpoints: ep("10.0.0.1:80")}, `protocol: unknown protocol "http3" (allowed: http1, http2, h2c)`},
		{"h2c with tls", config.Cluster{Protocol: "h2c", TLS: &config.UpstreamTLS{}, Endpoints: ep("10.0.0.1:80")}, `tls: not allowed with protocol "h2c"`},
		{"missing CA file", config.Cluster{TLS: &config.UpstreamTLS{CAFile: missingCA}, Endpoints: ep("10.0.0.1:443")}, "tls.ca_file: open " + missingCA},
		{"junk CA file", config.Cluster{TLS: &config.UpstreamTLS{CAFile: junkCA}, Endpoints: ep("10.0.0.1:443")}, "tls.ca_file: " + junkCA + " holds no PEM certificate"},
		{"bad lb policy", config.Cluster{LBPolicy: "fastest", Endpoints: ep("10.0.0.1:80")}, `lb_policy: unknown policy "fastest"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name = "svc"
			_, err := NewManagerWithOptions(context.Background(), []config.Cluster{tt.cfg}, nil, nil, Options{})
			if err == nil {
				t.Fatalf("NewManager succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `clusters[0] ("svc")`) {
				t.Errorf("err = %q, want it to name the cluster and contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaultsForZeroValues(t *testing.T) {
	m := newTestManager(t, Options{}, config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: "[::1]:8080"}}})
	c := m.Get("c")
	if c.Scheme() != "http" {
		t.Errorf("Scheme = %q, want http", c.Scheme())
	}
	h := c.Hosts()[0]
	if h.Address() != "[::1]:8080" || h.Weight() != 1 || !h.Healthy() {
		t.Errorf("host = %s weight %d healthy %v, want [::1]:8080 weight 1 healthy", h.Address(), h.Weight(), h.Healthy())
	}
	h1, ok := c.transport.(*http1Transport)
	if !ok {
		t.Fatalf("transport = %T, want *http1Transport for an http1 cluster", c.transport)
	}
	if h1.maxIdle != defaultMaxIdleConnsPerHost || h1.idleTimeout != defaultIdleTimeout {
		t.Errorf("http1 client: max idle %d, idle timeout %v, want documented defaults", h1.maxIdle, h1.idleTimeout)
	}
	// net/http's Transport serves HTTP/2 and h2c clusters.
	spec, err := newTransport(&config.Cluster{Name: "c", Protocol: protocolH2C}, nil, func(a string) string { return a })
	if err != nil {
		t.Fatal(err)
	}
	tr := spec.transport
	if tr.MaxIdleConnsPerHost != defaultMaxIdleConnsPerHost || tr.IdleConnTimeout != defaultIdleTimeout ||
		tr.MaxResponseHeaderBytes != 1<<20 || !tr.DisableCompression || tr.Proxy != nil {
		t.Errorf("transport = %+v, want documented defaults", tr)
	}
	if _, ok := c.lb.(*roundRobin); !ok {
		t.Errorf("balancer = %T, want *roundRobin", c.lb)
	}
}

func TestHostAttributes(t *testing.T) {
	cfg := config.Cluster{Name: "c", Endpoints: []config.Endpoint{
		{Address: "10.0.0.1:80", Weight: 3, Zone: "us-east-1a", Canary: true},
		{Address: "10.0.0.2:80"},
	}}
	m := newTestManager(t, Options{}, cfg)
	hosts := m.Get("c").Hosts()
	a, b := hosts[0], hosts[1]
	if a.Weight() != 3 || a.Zone() != "us-east-1a" || !a.Canary() || a.Hostname() != "10.0.0.1:80" {
		t.Errorf("a = weight %d zone %q canary %v hostname %q", a.Weight(), a.Zone(), a.Canary(), a.Hostname())
	}
	if b.Canary() || b.Zone() != "" {
		t.Errorf("b = zone %q canary %v, want no zone, not canary", b.Zone(), b.Canary())
	}
	a.BeginRequest()
	a.BeginRequest()
	a.EndRequest()
	if a.ActiveRequests() != 1 {
		t.Errorf("ActiveRequests = %d, want 1", a.ActiveRequests())
	}
}

// setHostHealth marks h healthy or as having failed active health
// checking, as a health checker would.
func (c *Cluster) setHostHealth(h *Host, healthy bool) {
	c.setHealthFlag(h, flagFailedActiveHC, !healthy)
}
