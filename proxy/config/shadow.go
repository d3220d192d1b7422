package config

// RequestMirrorPolicy is Envoy's route.RequestMirrorPolicy. Owned by the
// shadowing work of issue 8; see docs/config.md.
type RequestMirrorPolicy struct{}

func (a *RouteAction) applyMirrorDefaults(ap string, explicit func(string) bool) {}

func (v *validator) mirrorPolicies(ap string, a *RouteAction) {}
