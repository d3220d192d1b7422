package cluster

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// balancer chooses one host among candidates. It is the seam for selection
// policies: each policy lives in its own lb_*.go file; ring_hash and maglev
// choose by LBContext.Hash (lb_hash.go).
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

// Load-balancing policy names accepted in config.Cluster.LBPolicy.
const (
	policyRoundRobin   = "round_robin"
	policyLeastRequest = "least_request"
	policyRandom       = "random"
	policyRingHash     = "ring_hash"
	policyMaglev       = "maglev"
)

// newBalancer builds the balancer a cluster's lb_policy names. An empty
// policy is the default, round_robin.
func newBalancer(cfg *config.Cluster, rnd randSource) (balancer, error) {
	if rnd == nil {
		rnd = rand.Uint64
	}
	switch cfg.LBPolicy {
	case "", policyRoundRobin:
		return &roundRobin{}, nil
	case policyLeastRequest:
		return newLeastRequest(cfg.LeastRequest, rnd)
	case policyRandom:
		return &random{rnd: rnd}, nil
	case policyRingHash:
		return newRingHash(cfg.RingHashLBConfig, rnd)
	case policyMaglev:
		return newMaglev(cfg.MaglevLBConfig, rnd)
	default:
		return nil, fmt.Errorf("lb_policy: unknown policy %q (allowed: %s, %s, %s, %s, %s)",
			cfg.LBPolicy, policyRoundRobin, policyLeastRequest, policyRandom, policyRingHash, policyMaglev)
	}
}
