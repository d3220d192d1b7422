package lbpolicy

import "math"

// Defaults and limits of least_request_lb_config.
const (
	DefaultChoiceCount       = 2
	DefaultActiveRequestBias = 1.0
	// MinChoiceCount is the fewest hosts a least_request pick compares:
	// one would be random with extra work.
	MinChoiceCount = 2
)

// LeastRequestConfig is Envoy's cluster.least_request_lb_config.
type LeastRequestConfig struct {
	// ChoiceCount is how many random hosts are compared. At least 2.
	// Default 2.
	ChoiceCount int `yaml:"choice_count"`
	// ActiveRequestBias is Envoy's active_request_bias for weighted hosts:
	// a finite number ≥ 0. Default 1.0.
	ActiveRequestBias *float64 `yaml:"active_request_bias"`
}

// ApplyDefaults implements Config.
func (c *LeastRequestConfig) ApplyDefaults(explicit func(field any) bool) {
	if c.ChoiceCount == 0 && !explicit(&c.ChoiceCount) {
		c.ChoiceCount = DefaultChoiceCount
	}
	if c.ActiveRequestBias == nil {
		b := DefaultActiveRequestBias
		c.ActiveRequestBias = &b
	}
}

// Validate implements Config.
func (c *LeastRequestConfig) Validate(r Reporter) {
	if c.ChoiceCount < MinChoiceCount {
		r.Errorf("choice_count", "must be at least %d, got %d", MinChoiceCount, c.ChoiceCount)
	}
	switch b := c.ActiveRequestBias; {
	case b == nil:
		// Only a config built in code without ApplyDefaults gets here.
		r.Errorf("active_request_bias", "required (the default is %g)", DefaultActiveRequestBias)
	case *b < 0:
		r.Errorf("active_request_bias", "must not be negative, got %g", *b)
	case math.IsNaN(*b) || math.IsInf(*b, 0):
		r.Errorf("active_request_bias", "must be a finite number, got %g", *b)
	}
}
