package cluster

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// seeded returns a deterministic random source for exact, repeatable tests.
func seeded() randSource { return rand.New(rand.NewPCG(1, 2)).Uint64 }

// testHosts builds hosts named a, b, c, … on 10.0.0.1, .2, … with the
// given weights.
func testHosts(weights ...int) []*Host {
	hosts := make([]*Host, len(weights))
	for i, w := range weights {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80)
		hosts[i] = newHost(addr, addr.String(), w, "", false)
	}
	return hosts
}

// letter names a test host by its position: 10.0.0.1 is "a".
func letter(h *Host) string {
	return string(rune('a' + int(h.addr.Addr().As4()[3]) - 1))
}

func pickSequence(b balancer, c *candidates, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteString(letter(b.pick(c, nil)))
	}
	return sb.String()
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string // two full cycles
	}{
		// nginx's documented example for weights 5, 1, 1.
		{"nginx 5,1,1", []int{5, 1, 1}, "aabacaa" + "aabacaa"},
		{"equal weights rotate", []int{1, 1, 1}, "abc" + "abc"},
		{"equal heavy weights rotate", []int{7, 7}, "ab" + "ab"},
		{"3,2,1", []int{3, 2, 1}, "abacba" + "abacba"},
		{"single host", []int{4}, "aaaa" + "aaaa"},
		{"2,1", []int{2, 1}, "aba" + "aba"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &roundRobin{}
			c := newCandidates(testHosts(tt.weights...))
			if got := pickSequence(b, c, len(tt.want)); got != tt.want {
				t.Errorf("sequence = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRoundRobinExactProportions checks that every cycle of sum(weights)
// picks gives each host exactly its weight, for assorted weights.
func TestRoundRobinExactProportions(t *testing.T) {
	for _, weights := range [][]int{{5, 1, 1}, {1, 2, 3, 4}, {128, 1}, {10, 20, 30}, {3, 3, 1}, {1, 127, 64, 2}} {
		b := &roundRobin{}
		hosts := testHosts(weights...)
		c := newCandidates(hosts)
		total := int(c.totalWeight)
		for cycle := range 3 {
			counts := map[*Host]int{}
			for range total {
				counts[b.pick(c, nil)]++
			}
			for i, h := range hosts {
				if counts[h] != weights[i] {
					t.Errorf("weights %v cycle %d: host %d picked %d times, want %d", weights, cycle, i, counts[h], weights[i])
				}
			}
		}
	}
}

func TestRandomWeightedDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"equal", []int{1, 1, 1, 1}},
		{"1,2,7", []int{1, 2, 7}},
		{"128,1", []int{128, 1}},
		{"5,1,1", []int{5, 1, 1}},
	}
	const n = 100_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &random{rnd: seeded()}
			hosts := testHosts(tt.weights...)
			c := newCandidates(hosts)
			counts := map[*Host]int{}
			for range n {
				counts[b.pick(c, nil)]++
			}
			for i, h := range hosts {
				want := float64(tt.weights[i]) / float64(c.totalWeight)
				got := float64(counts[h]) / n
				// 100k draws: the standard error is below 0.16%, so 1% is
				// more than six sigma and still catches a wrong formula.
				if math.Abs(got-want) > 0.01 {
					t.Errorf("host %d: share %.4f, want %.4f ± 0.01", i, got, want)
				}
			}
		})
	}
}

func TestLeastRequestPrefersFewerActive(t *testing.T) {
	lr, err := newLeastRequestBalancer(withDefaults(config.LeastRequestConfig{}), seeded())
	if err != nil {
		t.Fatal(err)
	}
	// Two hosts, two choices: a full scan, so the idle host always wins.
	hosts := testHosts(1, 1)
	for range 3 {
		hosts[0].BeginRequest()
	}
	c := newCandidates(hosts)
	for i := range 1000 {
		if h := lr.pick(c, nil); h != hosts[1] {
			t.Fatalf("pick %d chose %s with %d active, want the idle host", i, letter(h), h.ActiveRequests())
		}
	}
	// Once the idle host is busier, the preference flips.
	for range 5 {
		hosts[1].BeginRequest()
	}
	for i := range 1000 {
		if h := lr.pick(c, nil); h != hosts[0] {
			t.Fatalf("pick %d chose %s, want a (3 active vs 5)", i, letter(h))
		}
	}
}

// TestLeastRequestPowerOfTwo checks the P2C shares with five equal hosts:
// the only idle host wins unless both draws miss it (1 - (4/5)^2 = 36%),
// and the single busiest host wins only if both draws hit it (1/25 = 4%).
func TestLeastRequestPowerOfTwo(t *testing.T) {
	lr, err := newLeastRequestBalancer(withDefaults(config.LeastRequestConfig{ChoiceCount: 2}), seeded())
	if err != nil {
		t.Fatal(err)
	}
	hosts := testHosts(1, 1, 1, 1, 1)
	active := []int{0, 5, 5, 5, 9}
	for i, n := range active {
		for range n {
			hosts[i].BeginRequest()
		}
	}
	c := newCandidates(hosts)
	const n = 100_000
	counts := map[*Host]int{}
	for range n {
		counts[lr.pick(c, nil)]++
	}
	idle, busiest := float64(counts[hosts[0]])/n, float64(counts[hosts[4]])/n
	if math.Abs(idle-0.36) > 0.01 {
		t.Errorf("idle host share %.4f, want 0.36 ± 0.01", idle)
	}
	if math.Abs(busiest-0.04) > 0.005 {
		t.Errorf("busiest host share %.4f, want 0.04 ± 0.005", busiest)
	}
}

func TestLeastRequestWeighted(t *testing.T) {
	bias := func(b float64) *float64 { return &b }
	tests := []struct {
		name      string
		bias      *float64
		weights   []int
		active    []int
		wantShare []float64
	}{
		{"idle hosts follow weights", nil, []int{1, 3}, []int{0, 0}, []float64{0.25, 0.75}},
		// b's effective weight is 3/(5+1) = 0.5 against a's 1/(0+1) = 1.
		{"bias 1 divides by load", nil, []int{1, 3}, []int{0, 5}, []float64{2.0 / 3, 1.0 / 3}},
		// b: 3/(1+1)^2 = 0.75 against a: 1.
		{"bias 2", bias(2), []int{1, 3}, []int{0, 1}, []float64{1 / 1.75, 0.75 / 1.75}},
		{"bias 0 ignores load", bias(0), []int{1, 3}, []int{0, 50}, []float64{0.25, 0.75}},
	}
	const n = 100_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lr, err := newLeastRequestBalancer(withDefaults(config.LeastRequestConfig{ActiveRequestBias: tt.bias}), seeded())
			if err != nil {
				t.Fatal(err)
			}
			hosts := testHosts(tt.weights...)
			for i, a := range tt.active {
				for range a {
					hosts[i].BeginRequest()
				}
			}
			c := newCandidates(hosts)
			counts := map[*Host]int{}
			for range n {
				counts[lr.pick(c, nil)]++
			}
			for i, h := range hosts {
				got := float64(counts[h]) / n
				if math.Abs(got-tt.wantShare[i]) > 0.01 {
					t.Errorf("host %d: share %.4f, want %.4f ± 0.01", i, got, tt.wantShare[i])
				}
			}
		})
	}
}

func TestNewBalancerErrors(t *testing.T) {
	neg, nan := -0.5, math.NaN()
	tests := []struct {
		name string
		cfg  config.Cluster
		want string
	}{
		{"unknown policy", config.Cluster{LBPolicy: "least_time"}, `lb_policy: unknown policy "least_time" (allowed: round_robin, least_request, random, ring_hash, maglev`},
		{"choice count 1", config.Cluster{LBPolicy: "least_request", LeastRequest: withDefaults(config.LeastRequestConfig{ChoiceCount: 1})}, "least_request_lb_config.choice_count: must be at least 2, got 1"},
		{"negative choice count", config.Cluster{LBPolicy: "least_request", LeastRequest: withDefaults(config.LeastRequestConfig{ChoiceCount: -3})}, "choice_count: must be at least 2, got -3"},
		{"negative bias", config.Cluster{LBPolicy: "least_request", LeastRequest: withDefaults(config.LeastRequestConfig{ActiveRequestBias: &neg})}, "active_request_bias: must not be negative, got -0.5"},
		{"NaN bias", config.Cluster{LBPolicy: "least_request", LeastRequest: withDefaults(config.LeastRequestConfig{ActiveRequestBias: &nan})}, "active_request_bias: must be a finite number, got NaN"},
		{"least_request without defaults", config.Cluster{LBPolicy: "least_request"}, "least_request_lb_config.choice_count: must be at least 2, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := newBalancer(&tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	for _, p := range []string{"", "round_robin", "least_request", "random", "ring_hash", "maglev"} {
		if _, _, err := newBalancer(withLBDefaults(config.Cluster{LBPolicy: p}), nil); err != nil {
			t.Errorf("policy %q: %v", p, err)
		}
	}
}

// withDefaults returns a policy's config block with the loader's defaults
// filled in, as a balancer expects it.
func withDefaults[T any, P interface {
	*T
	lbpolicy.Config
}](c T) T {
	P(&c).ApplyDefaults(func(any) bool { return false })
	return c
}

// withLBDefaults fills the defaults of every policy block of cfg, as
// config.Parse does.
func withLBDefaults(cfg config.Cluster) *config.Cluster {
	cfg.LeastRequest = withDefaults(cfg.LeastRequest)
	cfg.RingHashLBConfig = withDefaults(cfg.RingHashLBConfig)
	cfg.MaglevLBConfig = withDefaults(cfg.MaglevLBConfig)
	return &cfg
}
