package route

import (
	"fmt"
	"net/http"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
)

// compileRateLimits compiles a virtual host's local_rate_limit bucket and
// rate_limits policies, which its routes inherit.
func (vh *VirtualHost) compileRateLimits(cv *config.VirtualHost, path string) error {
	vh.localRateLimit = ratelimit.NewLocal(cv.LocalRateLimit, nil)
	var err error
	vh.rateLimits, err = ratelimit.NewPolicies(cv.RateLimits, compileRequestMatcher, path+".rate_limits")
	return err
}

// compileRateLimits gives the route its own bucket, else its virtual
// host's (one bucket shared by every route without its own), and its
// global rate-limit policies: the route's then the virtual host's, as
// Envoy orders them with include_vh_rate_limits. Redirects and direct
// responses have no policies: Envoy's rate limit filter skips requests
// without a route entry.
func (rt *Route) compileRateLimits(cr *config.Route, vh *VirtualHost, path string) error {
	rt.LocalRateLimit = ratelimit.NewLocal(cr.LocalRateLimit, nil)
	if rt.LocalRateLimit == nil {
		rt.LocalRateLimit = vh.localRateLimit
	}
	if cr.Route == nil {
		return nil
	}
	ps, err := ratelimit.NewPolicies(cr.Route.RateLimits, compileRequestMatcher, path+".route.rate_limits")
	if err != nil {
		return err
	}
	if len(ps)+len(vh.rateLimits) > 0 {
		rt.RateLimits = append(ps, vh.rateLimits...)
	}
	return nil
}

// compileRequestMatcher compiles a header_value_match's headers with the
// route matchers' rules; all must match.
func compileRequestMatcher(hs []config.HeaderMatcher) (ratelimit.RequestMatcher, error) {
	ms := make([]headerMatcher, 0, len(hs))
	for i := range hs {
		m, err := compileHeaderMatcher(&hs[i])
		if err != nil {
			return nil, fmt.Errorf("headers[%d].%w", i, err)
		}
		ms = append(ms, m)
	}
	return func(r *http.Request) bool {
		for i := range ms {
			if !ms[i].matches(r) {
				return false
			}
		}
		return true
	}, nil
}
