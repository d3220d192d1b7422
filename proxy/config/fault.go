package config

// Fault is Envoy's HTTP fault filter configuration for one route. Owned by
// the fault-injection work of issue 8; see docs/config.md.
type Fault struct{}

func (r *Route) applyFaultDefaults(rp string, explicit func(string) bool) {}

func (v *validator) routeFault(rp string, r *Route) {}
