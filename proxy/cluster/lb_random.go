package cluster

import "github.com/hopwatch/hopwatch/proxy/config"

// random is the random policy: a host drawn with probability proportional
// to its weight. It keeps no state, so it spreads load well when many proxies
// share the same upstreams and none of them sees the whole traffic.
type random struct {
	rnd randSource
}

func newRandom(_ *config.Cluster, rnd randSource) (balancer, error) {
	return &random{rnd: rnd}, nil
}

func (r *random) pick(c *candidates, _ *LBContext) *Host {
	if c.equalWeights {
		return c.hosts[r.rnd.intN(int64(len(c.hosts)))]
	}
	return weightedIndex(c, r.rnd.intN(c.totalWeight))
}

// weightedIndex returns the host whose cumulative weight range holds x, for
// x in [0, c.totalWeight).
func weightedIndex(c *candidates, x int64) *Host {
	for _, h := range c.hosts {
		x -= int64(h.weight)
		if x < 0 {
			return h
		}
	}
	// Unreachable while x < totalWeight; the last host is a safe answer.
	return c.hosts[len(c.hosts)-1]
}
