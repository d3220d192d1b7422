package config

// CircuitBreakers are a cluster's default-priority thresholds (Envoy's
// circuit_breakers.thresholds[priority=DEFAULT], flattened). Owned by the
// circuit-breaking work of issue 8; see docs/config.md.
type CircuitBreakers struct{}

func (c *Cluster) applyCircuitBreakerDefaults(cp string, explicit func(string) bool) {}

func (v *validator) clusterCircuitBreakers(cp string, c *Cluster) {}
