package config

import "math"

// CircuitBreakers are a cluster's default-priority thresholds (Envoy's
// circuit_breakers.thresholds[priority=DEFAULT], flattened: one set of
// limits, no priorities). A cluster without a circuit_breakers block gets
// one with every default, as Envoy applies its defaults to a cluster that
// configures none. See docs/config.md, "circuit_breakers".
type CircuitBreakers struct {
	// MaxConnections bounds the connections (open and being opened) to all
	// the cluster's hosts together. A request that needs a new connection
	// beyond it waits, as a pending request, for one to close or to become
	// idle. Default 1024; 0 allows none.
	MaxConnections int `yaml:"max_connections"`
	// MaxPendingRequests bounds the requests waiting for a connection; one
	// more is answered 503 with response flag UO at once. Default 1024; 0
	// refuses every request that cannot reuse an idle connection.
	MaxPendingRequests int `yaml:"max_pending_requests"`
	// MaxRequests bounds the requests in flight to the cluster (each retry
	// is a request of its own); one more is answered 503 with response
	// flag UO at once. Default 1024.
	MaxRequests int `yaml:"max_requests"`
	// MaxRetries bounds the retries in flight (in backoff or awaiting their
	// response); a retry beyond it is not made and the response at hand goes
	// to the client. Ignored when RetryBudget is set, as in Envoy.
	// Default 3.
	MaxRetries int `yaml:"max_retries"`
	// RetryBudget, when set, replaces MaxRetries by a limit that grows with
	// the load. Default: absent (MaxRetries applies).
	RetryBudget *RetryBudget `yaml:"retry_budget"`
	// TrackRemaining publishes circuit_breakers.default.remaining_* gauges:
	// how many of each resource are left before its breaker opens.
	// remaining_retries stays 0 under a retry budget, as in Envoy.
	// Default false.
	TrackRemaining bool `yaml:"track_remaining"`
}

// RetryBudget is Envoy's CircuitBreakers.Thresholds.RetryBudget: the
// retries allowed in flight are max(MinRetryConcurrency, BudgetPercent% of
// the requests in flight and pending).
type RetryBudget struct {
	// BudgetPercent is the share, 0–100, of the active and pending requests
	// that may be retries at the same time. Default 20.
	BudgetPercent *float64 `yaml:"budget_percent"`
	// MinRetryConcurrency is the retry concurrency always allowed, however
	// few requests are active. Default 3.
	MinRetryConcurrency *int `yaml:"min_retry_concurrency"`
}

// Documented defaults of circuit_breakers: Envoy's.
const (
	DefaultMaxConnections      = 1024
	DefaultMaxPendingRequests  = 1024
	DefaultMaxRequests         = 1024
	DefaultMaxRetries          = 3
	DefaultRetryBudgetPercent  = 20.0
	DefaultMinRetryConcurrency = 3
)

// maxThreshold is the largest threshold: Envoy's thresholds are UInt32Values.
const maxThreshold = math.MaxUint32

// applyCircuitBreakerDefaults gives a cluster without circuit_breakers the
// default thresholds and fills the unset fields of one that has them. An
// explicit 0 is kept: it is a legal, if drastic, limit.
func (c *Cluster) applyCircuitBreakerDefaults(explicit func(any) bool) {
	if c.CircuitBreakers == nil {
		c.CircuitBreakers = &CircuitBreakers{}
	}
	cb := c.CircuitBreakers
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&cb.MaxConnections, DefaultMaxConnections},
		{&cb.MaxPendingRequests, DefaultMaxPendingRequests},
		{&cb.MaxRequests, DefaultMaxRequests},
		{&cb.MaxRetries, DefaultMaxRetries},
	} {
		if *f.v == 0 && !explicit(f.v) {
			*f.v = f.def
		}
	}
	if rb := cb.RetryBudget; rb != nil {
		setDefault(&rb.BudgetPercent, DefaultRetryBudgetPercent)
		setDefault(&rb.MinRetryConcurrency, DefaultMinRetryConcurrency)
	}
}

func (v *validator) clusterCircuitBreakers(cp string, c *Cluster) {
	cb := c.CircuitBreakers
	if cb == nil {
		return
	}
	bp := fieldPath(cp, "circuit_breakers")
	for _, f := range []struct {
		v    int
		name string
	}{
		{cb.MaxConnections, "max_connections"},
		{cb.MaxPendingRequests, "max_pending_requests"},
		{cb.MaxRequests, "max_requests"},
		{cb.MaxRetries, "max_retries"},
	} {
		v.threshold(fieldPath(bp, f.name), f.v)
	}
	if rb := cb.RetryBudget; rb != nil {
		rp := fieldPath(bp, "retry_budget")
		v.percent(fieldPath(rp, "budget_percent"), rb.BudgetPercent)
		if n := rb.MinRetryConcurrency; n != nil {
			v.threshold(fieldPath(rp, "min_retry_concurrency"), *n)
		}
	}
}

// threshold checks a circuit-breaker count: an unsigned 32-bit integer, as
// Envoy's UInt32Value.
func (v *validator) threshold(path string, n int) {
	if n < 0 || n > maxThreshold {
		v.errorf(path, "must be from 0 to %d, got %d", maxThreshold, n)
	}
}
