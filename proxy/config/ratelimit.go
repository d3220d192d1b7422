package config

// LocalRateLimit is a token bucket (Envoy's local_ratelimit filter config,
// flattened). Owned by the rate-limiting work of issue 8; see docs/config.md.
type LocalRateLimit struct{}

// RateLimit is one of Envoy's route.RateLimit entries: a list of actions
// that build one descriptor for the global rate-limit service.
type RateLimit struct{}

// RateLimitService is the global rate-limit service (Envoy's ratelimit
// filter config: envoy.service.ratelimit.v3 over gRPC).
type RateLimitService struct{}

func (l *Listener) applyRateLimitDefaults(lp string, explicit func(string) bool) {}

func (v *validator) listenerRateLimits(lp string, l *Listener) {}
