package config

// RequestMirrorPolicy is Envoy's route.RouteAction.RequestMirrorPolicy:
// a fraction of the route's requests is also sent, fire and forget, to
// another cluster. The shadow's response is discarded and never delays or
// changes the primary's. See docs/config.md, "Traffic shadowing".
type RequestMirrorPolicy struct {
	// Cluster receives the shadow requests. Required.
	Cluster string `yaml:"cluster"`
	// RuntimeFraction is the fraction of requests mirrored. Absent: every
	// request (Envoy's default).
	RuntimeFraction *RuntimeFractionalPercent `yaml:"runtime_fraction"`
	// DisableShadowHostSuffixAppend keeps the Host of shadow requests as
	// it is. Default false: "-shadow" is appended to the host, before any
	// port ("api.example.com:8080" becomes "api.example.com-shadow:8080").
	DisableShadowHostSuffixAppend bool `yaml:"disable_shadow_host_suffix_append"`
	// MaxBodyBytes bounds the request body kept for the shadow (a hopwatch
	// extension; Envoy uses the route's buffer limit). The body is teed
	// into memory as the primary upstream reads it; a larger body is not
	// mirrored and counts the primary cluster's retry_or_shadow_abandoned.
	// 0 mirrors only requests without a body. Default 65536.
	MaxBodyBytes *int `yaml:"max_body_bytes"`
}

// DefaultMirrorMaxBodyBytes is request_mirror_policies[].max_body_bytes
// when not given.
const DefaultMirrorMaxBodyBytes = 65536

func (a *RouteAction) applyMirrorDefaults(explicit func(any) bool) {
	for i := range a.RequestMirrorPolicies {
		p := &a.RequestMirrorPolicies[i]
		setDefault(&p.MaxBodyBytes, DefaultMirrorMaxBodyBytes)
		if p.RuntimeFraction != nil {
			p.RuntimeFraction.DefaultValue.applyDefaults(explicit)
		}
	}
}

func (v *validator) mirrorPolicies(ap string, a *RouteAction) {
	for i := range a.RequestMirrorPolicies {
		p := &a.RequestMirrorPolicies[i]
		pp := indexPath(fieldPath(ap, "request_mirror_policies"), i)
		if p.Cluster == "" {
			v.errorf(fieldPath(pp, "cluster"), "required: the cluster that receives the shadow requests")
		} else {
			v.clusterRef(fieldPath(pp, "cluster"), p.Cluster)
		}
		if rf := p.RuntimeFraction; rf != nil {
			v.fractionalPercent(fieldPath(pp, "runtime_fraction.default_value"), rf.DefaultValue, true)
		}
		if n := p.MaxBodyBytes; n != nil && *n < 0 {
			v.errorf(fieldPath(pp, "max_body_bytes"), "must not be negative (0 mirrors only requests without a body), got %d", *n)
		}
	}
}
