package cluster

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"strings"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// balancer chooses one host among candidates. It is the seam for selection
// policies: each policy lives in its own lb_*.go file and has a row in the
// lbPolicies table; ring_hash and maglev choose by LBContext.Hash
// (lb_hash.go).
//
// pick is called concurrently, never with an empty list, and must not
// allocate: it is on every request's path.
type balancer interface {
	pick(c *candidates, lb *LBContext) *Host
}

// randSource returns uniformly distributed 64-bit values. The default is
// math/rand/v2's runtime source, which is per-thread, lock-free and safe for
// concurrent use; tests inject a seeded generator to get exact answers.
type randSource func() uint64

// intN returns a uniform value in [0, n) from one 64-bit draw (Lemire's
// multiply-shift; the bias for n ≤ 2^32 is below 2^-32, far under anything a
// load balancer could notice). n must be positive.
func (r randSource) intN(n int64) int64 {
	hi, _ := bits.Mul64(r(), uint64(n))
	return int64(hi)
}

// float64 returns a uniform value in [0, 1).
func (r randSource) float64() float64 {
	return float64(r()>>11) * 0x1p-53
}

// policy is one load-balancing policy as the cluster manager runs it. Its
// name, config block, defaults and checks are in proxy/lbpolicy, which the
// config loader reads too; how it picks is its lb_<name>.go file here.
type policy struct {
	// build makes the cluster's balancer. cfg has been through the config
	// loader's defaults; build checks the policy's block again with
	// lbpolicy.Check, for a config built in code, and applies no default.
	build func(cfg *config.Cluster, rnd randSource) (balancer, error)
	// zoneAware is true when the balancer picks well from any candidate
	// list, so zone-aware routing may narrow the list to one zone first.
	// A consistent-hash balancer must see the whole host set to keep keys
	// where they were, as in Envoy, where zone-aware routing is a feature
	// of the zone-aware load balancers only.
	zoneAware bool
	// hashesRequests is true when the balancer chooses by LBContext.Hash.
	// The router computes the route's hash only then, as Envoy computes it
	// only when the load balancer asks, so that a cookie hash policy never
	// sets a cookie for a cluster that ignores it. Such a balancer also
	// avoids the hosts a retry has tried itself: Cluster.Pick hands it the
	// full candidate list, whose table it keeps, rather than one without
	// the attempted hosts, which would need a table of its own.
	hashesRequests bool
}

// lbPolicies maps each lb_policy name to its policy. Adding a policy adds a
// row here, beside its own files; see docs/architecture.md.
var lbPolicies = map[string]policy{
	lbpolicy.RoundRobin:   {build: newRoundRobin, zoneAware: true},
	lbpolicy.LeastRequest: {build: newLeastRequest, zoneAware: true},
	lbpolicy.Random:       {build: newRandom, zoneAware: true},
	lbpolicy.RingHash:     {build: newRingHash, hashesRequests: true},
	lbpolicy.Maglev:       {build: newMaglev, hashesRequests: true},
}

// registerPolicy adds a policy that is not built in: its name to the names
// the config loader accepts, and its policy to the table. Call it from an
// init function; it panics on a name already taken.
func registerPolicy(name string, p policy) {
	lbpolicy.Register(name)
	lbPolicies[name] = p
}

// lookupPolicy returns the policy a cluster's lb_policy names; an empty
// name is the default, round_robin.
func lookupPolicy(name string) (policy, error) {
	if name == "" {
		name = lbpolicy.RoundRobin
	}
	p, ok := lbPolicies[name]
	if !ok {
		return policy{}, fmt.Errorf("lb_policy: unknown policy %q (allowed: %s)", name, strings.Join(lbpolicy.Names(), ", "))
	}
	return p, nil
}

// newBalancer builds the balancer a cluster's lb_policy names and returns
// it with the policy's capabilities.
func newBalancer(cfg *config.Cluster, rnd randSource) (balancer, policy, error) {
	p, err := lookupPolicy(cfg.LBPolicy)
	if err != nil {
		return nil, policy{}, err
	}
	if rnd == nil {
		rnd = rand.Uint64
	}
	b, err := p.build(cfg, rnd)
	return b, p, err
}
