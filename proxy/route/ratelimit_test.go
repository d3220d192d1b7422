package route

import (
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
)

func TestRateLimitCompile(t *testing.T) {
	bucket := func(n int) *config.LocalRateLimit {
		return &config.LocalRateLimit{TokenBucket: config.TokenBucket{MaxTokens: n, TokensPerFill: 1, FillInterval: config.Duration(time.Hour)}}
	}
	generic := func(v string) config.RateLimit {
		return config.RateLimit{Actions: []config.RateLimitAction{{GenericKey: &config.GenericKeyAction{DescriptorKey: "generic_key", DescriptorValue: v}}}}
	}
	own := prefixRoute("/own", "c")
	own.LocalRateLimit = bucket(1)
	own.Route.RateLimits = []config.RateLimit{generic("route")}
	tbl := mustTable(t, []config.VirtualHost{
		{Name: "limited", Domains: []string{"limited"}, LocalRateLimit: bucket(2), RateLimits: []config.RateLimit{generic("vhost")},
			Routes: []config.Route{own, prefixRoute("/a", "c"), prefixRoute("/b", "c"),
				{Match: config.RouteMatch{Prefix: sp("/direct")}, DirectResponse: &config.DirectResponseAction{Status: 200}}}},
		{Name: "open", Domains: []string{"*"}, Routes: []config.Route{prefixRoute("/", "c")}},
	})
	lim := tbl.VirtualHosts()[0].Routes()
	rOwn, rA, rB, rDirect := lim[0], lim[1], lim[2], lim[3]
	open := tbl.VirtualHosts()[1].Routes()[0]

	if rOwn.LocalRateLimit == nil || rOwn.LocalRateLimit == rA.LocalRateLimit {
		t.Fatal("a route with its own local_rate_limit must have its own bucket")
	}
	if rA.LocalRateLimit == nil || rA.LocalRateLimit != rB.LocalRateLimit || rA.LocalRateLimit != rDirect.LocalRateLimit {
		t.Fatal("routes without their own local_rate_limit must share the virtual host's bucket")
	}
	if open.LocalRateLimit != nil || open.RateLimits != nil {
		t.Fatal("a host without rate limiting must leave its routes without it")
	}
	// The shared bucket of two serves /a, /b and /direct together.
	refused := 0
	for _, rt := range []*Route{rA, rB, rDirect, rA} {
		if rt.LocalRateLimit.Check().Refuse {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("shared bucket of 2: %d of 4 refused, want 2", refused)
	}

	values := func(rt *Route) []string {
		var out []string
		for _, d := range ratelimit.Descriptors(rt.RateLimits, &ratelimit.Attributes{Request: req("/")}) {
			out = append(out, d[0].Value)
		}
		return out
	}
	if got := values(rOwn); !reflect.DeepEqual(got, []string{"route", "vhost"}) {
		t.Errorf("route with its own rate_limits: %v, want the route's then the host's", got)
	}
	if got := values(rA); !reflect.DeepEqual(got, []string{"vhost"}) {
		t.Errorf("route without: %v, want the host's", got)
	}
	if rDirect.RateLimits != nil {
		t.Error("a direct response must have no global rate limits (Envoy's filter skips requests without a route entry)")
	}
}

// TestRateLimitHeaderValueMatch: header_value_match uses the route's
// header matchers, pseudo-headers and regular expressions included.
func TestRateLimitHeaderValueMatch(t *testing.T) {
	r := prefixRoute("/", "c")
	r.Route.RateLimits = []config.RateLimit{{Actions: []config.RateLimitAction{{HeaderValueMatch: &config.HeaderValueMatchAction{
		DescriptorKey: "header_match", DescriptorValue: "api-post",
		Headers: []config.HeaderMatcher{{Name: ":method", ExactMatch: sp("POST")}, {Name: "x-api", SafeRegexMatch: sp("v[0-9]+")}},
	}}}}}
	rt := onlyRoute(t, r)
	tests := []struct {
		method, api string
		want        bool
	}{
		{"POST", "v2", true},
		{"GET", "v2", false},
		{"POST", "v2beta", false},
		{"POST", "", false},
	}
	for _, tt := range tests {
		rq, _ := http.NewRequest(tt.method, "http://h/", nil)
		if tt.api != "" {
			rq.Header.Set("X-Api", tt.api)
		}
		got := len(ratelimit.Descriptors(rt.RateLimits, &ratelimit.Attributes{Request: rq, RemoteAddress: netip.MustParseAddr("10.0.0.1")})) == 1
		if got != tt.want {
			t.Errorf("%s x-api=%q: descriptor %v, want %v", tt.method, tt.api, got, tt.want)
		}
	}

	r.Route.RateLimits[0].Actions[0].HeaderValueMatch.Headers[1].SafeRegexMatch = sp("(")
	_, err := NewTable([]config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []config.Route{r}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "virtual_hosts[0].routes[0].route.rate_limits[0].actions[0].header_value_match.headers[1].safe_regex_match") {
		t.Errorf("bad regex error = %v", err)
	}
}
