package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// roundRobin is the round_robin policy. With equal weights it is plain
// round robin on an atomic counter, as in Envoy. With unequal weights it is
// nginx's smooth weighted round robin: every host's current weight grows by
// its weight on each pick, the host with the largest current weight wins
// and gives back the total. Over a cycle of sum(weights) picks each host is
// chosen exactly weight times, and the picks are interleaved (weights 5,1,1
// give a a b a c a a) instead of bursting on the heaviest host.
type roundRobin struct {
	next atomic.Uint64

	// mu guards every Host.rrCurrent of this cluster. The smooth algorithm
	// must read and update all current weights together; the critical
	// section is a short loop without allocation.
	mu sync.Mutex
}

func newRoundRobin(*config.Cluster, randSource) (balancer, error) {
	return &roundRobin{}, nil
}

func (r *roundRobin) pick(c *candidates, _ *LBContext) *Host {
	if c.equalWeights {
		next := &r.next
		if c.ownRR {
			next = &c.rrNext
		}
		i := (next.Add(1) - 1) % uint64(len(c.hosts))
		return c.hosts[i]
	}
	r.mu.Lock()
	var best *Host
	for _, h := range c.hosts {
		h.rrCurrent += int64(h.weight)
		if best == nil || h.rrCurrent > best.rrCurrent {
			best = h
		}
	}
	best.rrCurrent -= c.totalWeight
	r.mu.Unlock()
	return best
}
