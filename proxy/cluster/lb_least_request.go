package cluster

import (
	"fmt"
	"math"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Defaults of config.LeastRequestConfig, applied to zero values so that a
// config built in code without the loader's defaults still works.
const (
	defaultChoiceCount       = 2
	defaultActiveRequestBias = 1.0
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

func newLeastRequest(cfg config.LeastRequestConfig, rnd randSource) (*leastRequest, error) {
	lr := &leastRequest{rnd: rnd, choiceCount: cfg.ChoiceCount, bias: defaultActiveRequestBias}
	switch {
	case cfg.ChoiceCount == 0:
		lr.choiceCount = defaultChoiceCount
	case cfg.ChoiceCount < 2:
		return nil, fmt.Errorf("least_request_lb_config.choice_count: %d is too small (at least 2; default 2)", cfg.ChoiceCount)
	}
	if cfg.ActiveRequestBias != nil {
		b := *cfg.ActiveRequestBias
		if b < 0 || math.IsNaN(b) || math.IsInf(b, 0) {
			return nil, fmt.Errorf("least_request_lb_config.active_request_bias: %v is invalid (a finite number ≥ 0; default 1.0)", b)
		}
		lr.bias = b
	}
	return lr, nil
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
