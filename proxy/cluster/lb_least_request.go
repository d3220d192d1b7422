package cluster

import (
	"math"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// leastRequest is Envoy's least_request policy.
//
// With equal weights it is "power of N choices": it draws choice_count hosts
// at random (with replacement, as Envoy does) and keeps the one with the
// fewest active requests, the first one drawn on a tie. When the candidates
// are no more than choice_count, drawing is pointless, so it scans them all
// from a random start and keeps the least loaded; with two hosts and two
// choices that is what an operator expects: the idle host always wins.
//
// With unequal weights each host gets the dynamic weight
//
//	weight / (active_requests + 1) ^ active_request_bias
//
// and one host is drawn in proportion to it. Envoy feeds the same weights to
// an EDF scheduler; a weighted draw gives the same long-run shares without
// scheduler state or a lock. Bias 0 ignores load (weighted random); bias 1
// (the default) divides by the load.
type leastRequest struct {
	rnd         randSource
	choiceCount int
	bias        float64
}

func newLeastRequest(cfg *config.Cluster, rnd randSource) (balancer, error) {
	return newLeastRequestBalancer(cfg.LeastRequest, rnd)
}

func newLeastRequestBalancer(cfg config.LeastRequestConfig, rnd randSource) (*leastRequest, error) {
	if err := lbpolicy.Check("least_request_lb_config", &cfg); err != nil {
		return nil, err
	}
	return &leastRequest{rnd: rnd, choiceCount: cfg.ChoiceCount, bias: *cfg.ActiveRequestBias}, nil
}

func (lr *leastRequest) pick(c *candidates, _ *LBContext) *Host {
	if c.equalWeights {
		return lr.pickUnweighted(c.hosts)
	}
	return lr.pickWeighted(c.hosts)
}

func (lr *leastRequest) pickUnweighted(hosts []*Host) *Host {
	n := int64(len(hosts))
	if n <= int64(lr.choiceCount) {
		start := lr.rnd.intN(n)
		best := hosts[start]
		bestActive := best.ActiveRequests()
		for i := int64(1); i < n; i++ {
			h := hosts[(start+i)%n]
			if a := h.ActiveRequests(); a < bestActive {
				best, bestActive = h, a
			}
		}
		return best
	}
	var best *Host
	var bestActive int64
	for range lr.choiceCount {
		h := hosts[lr.rnd.intN(n)]
		if a := h.ActiveRequests(); best == nil || a < bestActive {
			best, bestActive = h, a
		}
	}
	return best
}

// effectiveWeight is Envoy's dynamic host weight.
func (lr *leastRequest) effectiveWeight(h *Host) float64 {
	w := float64(h.weight)
	switch lr.bias {
	case 0:
		return w
	case 1:
		// The default bias; skip math.Pow on the hot path.
		return w / float64(max(h.ActiveRequests(), 0)+1)
	default:
		return w / math.Pow(float64(max(h.ActiveRequests(), 0)+1), lr.bias)
	}
}

func (lr *leastRequest) pickWeighted(hosts []*Host) *Host {
	var total float64
	for _, h := range hosts {
		total += lr.effectiveWeight(h)
	}
	// Active counts move between the two passes; if they shrink the weights
	// so that x is never reached, the last host is a fair enough answer.
	x := lr.rnd.float64() * total
	for _, h := range hosts {
		x -= lr.effectiveWeight(h)
		if x < 0 {
			return h
		}
	}
	return hosts[len(hosts)-1]
}
