package stats

import "reflect"

// CircuitBreakerRemainingStats are Envoy's
// cluster.<name>.circuit_breakers.default.remaining_* gauges: how many of
// each resource are left before its breaker opens. Envoy creates them only
// for clusters with track_remaining, so they are a scope of their own,
// made by CircuitBreakerRemainingStats on request, rather than fields of
// CircuitBreakerStats that every cluster would list.
type CircuitBreakerRemainingStats struct {
	RemainingCx      *Gauge `stat:"remaining_cx" help:"Connections remaining before the connection circuit breaker opens"`
	RemainingPending *Gauge `stat:"remaining_pending" help:"Pending requests remaining before the pending requests circuit breaker opens"`
	RemainingRq      *Gauge `stat:"remaining_rq" help:"Requests remaining before the requests circuit breaker opens"`
	RemainingRetries *Gauge `stat:"remaining_retries" help:"Retries remaining before the retry circuit breaker opens (0 under a retry budget)"`
}

// circuitBreakerRemaining places CircuitBreakerRemainingStats under the
// cluster scope.
type circuitBreakerRemaining struct {
	Default CircuitBreakerRemainingStats `scope:"circuit_breakers.default."`
}

// CircuitBreakerRemainingStats returns cluster.<name>.circuit_breakers.default.remaining_*.
// Ask for them only for clusters that track remaining resources.
func (s *Store) CircuitBreakerRemainingStats(cluster string) *CircuitBreakerRemainingStats {
	w := lookup(s, "cbremaining\x00"+cluster, func(b *builder) *circuitBreakerRemaining {
		v := &circuitBreakerRemaining{}
		b.fill(reflect.ValueOf(v).Elem(), newScope(clusterScope, cluster))
		return v
	})
	return &w.Default
}
