package route

import (
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func sp(s string) *string { return &s }
func bp(b bool) *bool     { return &b }
func ip(i int) *int       { return &i }

func prefixRoute(prefix, cluster string) config.Route {
	return config.Route{Match: config.RouteMatch{Prefix: sp(prefix)}, Route: &config.RouteAction{Cluster: cluster}}
}

func vhost(name string, domains ...string) config.VirtualHost {
	return config.VirtualHost{Name: name, Domains: domains, Routes: []config.Route{prefixRoute("/", name)}}
}

func mustTable(t testing.TB, vhosts []config.VirtualHost) *Table {
	t.Helper()
	tbl, err := NewTable(vhosts, Options{NodeHostname: "node-1"})
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tbl
}

func TestSelectVirtualHost(t *testing.T) {
	tbl := mustTable(t, []config.VirtualHost{
		vhost("exact", "api.example.com", "[::1]", "10.0.0.1"),
		vhost("suffix", "*.example.com"),
		vhost("longer-suffix", "*.eu.example.com"),
		vhost("dash-suffix", "*-canary.example.com"),
		vhost("prefix", "api.*"),
		vhost("longer-prefix", "api.example.*"),
		vhost("mixed-case", "Shop.Example.ORG"),
		vhost("default", "*"),
	})
	tests := []struct {
		authority, want string
	}{
		{"api.example.com", "exact"},
		{"api.example.com:8080", "exact"},
		{"API.Example.COM", "exact"},
		{"API.EXAMPLE.COM:443", "exact"},
		{"[::1]:8080", "exact"},
		{"[::1]", "exact"},
		{"10.0.0.1:80", "exact"},
		{"shop.example.org", "mixed-case"},
		{"www.example.com", "suffix"},
		{"a.b.example.com", "suffix"},
		{"x.eu.example.com", "longer-suffix"}, // longest suffix wins
		{"eu.example.com", "suffix"},          // the wildcard needs at least one character
		{"web-canary.example.com", "dash-suffix"},
		{"-canary.example.com", "suffix"},    // "*-canary" needs a character before the dash
		{"example.com", "default"},           // "*.example.com" does not match the apex
		{"api.example.net", "longer-prefix"}, // suffix beats prefix, then longest prefix
		{"api.example.com.evil", "longer-prefix"},
		{"api.other", "prefix"},
		{"api.", "default"}, // the prefix wildcard needs at least one character
		{"api.example.com.", "longer-prefix"},
		{"other.org", "default"},
		{"", "default"},
		{"::1", "default"}, // bare IPv6 has no port to strip and is not "[::1]"
		{"[::1", "default"},
		{"api.example.org:", "longer-prefix"},
	}
	for _, tt := range tests {
		vh := tbl.SelectVirtualHost(tt.authority)
		if vh == nil || vh.Name != tt.want {
			got := "<nil>"
			if vh != nil {
				got = vh.Name
			}
			t.Errorf("SelectVirtualHost(%q) = %s, want %s", tt.authority, got, tt.want)
		}
	}
}

func TestSelectVirtualHostPrecedence(t *testing.T) {
	// The same host matched by every kind of domain: exact > suffix > prefix > *.
	all := []config.VirtualHost{
		vhost("default", "*"),
		vhost("prefix", "www.example.*"),
		vhost("suffix", "*.example.com"),
		vhost("exact", "www.example.com"),
	}
	for n := len(all); n > 0; n-- {
		tbl := mustTable(t, all[:n])
		want := all[n-1].Name
		if got := tbl.SelectVirtualHost("www.example.com"); got == nil || got.Name != want {
			t.Errorf("with %d hosts: got %v, want %s", n, got, want)
		}
	}
	// Without a default, an unknown host has no virtual host.
	tbl := mustTable(t, []config.VirtualHost{vhost("only", "a.example.com")})
	if vh := tbl.SelectVirtualHost("b.example.com"); vh != nil {
		t.Errorf("unknown host matched %s", vh.Name)
	}
	var nilTable *Table
	if nilTable.SelectVirtualHost("x") != nil {
		t.Error("nil table matched")
	}
}

func TestNewTableErrors(t *testing.T) {
	bad := func(mut func(*config.VirtualHost)) []config.VirtualHost {
		vh := vhost("vh", "example.com")
		mut(&vh)
		return []config.VirtualHost{vhost("first", "first.example.com"), vh}
	}
	route := func(r config.Route) []config.VirtualHost {
		return bad(func(vh *config.VirtualHost) { vh.Routes = append(vh.Routes, r) })
	}
	tests := []struct {
		name   string
		vhosts []config.VirtualHost
		want   string
	}{
		{"no name", bad(func(vh *config.VirtualHost) { vh.Name = "" }), "virtual_hosts[1].name: required"},
		{"no domains", bad(func(vh *config.VirtualHost) { vh.Domains = nil }), "virtual_hosts[1].domains: at least one"},
		{"empty domain", bad(func(vh *config.VirtualHost) { vh.Domains = []string{""} }), "virtual_hosts[1].domains[0]: empty domain"},
		{"duplicate domain", bad(func(vh *config.VirtualHost) { vh.Domains = []string{"x.com", "FIRST.example.com"} }), `virtual_hosts[1].domains[1]: domain "FIRST.example.com" is already used by virtual host "first"`},
		{"duplicate default", []config.VirtualHost{vhost("a", "*"), vhost("b", "*")}, `virtual_hosts[1].domains[0]: domain "*" is already used`},
		{"port", bad(func(vh *config.VirtualHost) { vh.Domains = []string{"example.com:8080"} }), "has a port"},
		{"ipv6 port", bad(func(vh *config.VirtualHost) { vh.Domains = []string{"[::1]:80"} }), "has a port"},
		{"inner wildcard", bad(func(vh *config.VirtualHost) { vh.Domains = []string{"a.*.com"} }), "wildcard is allowed only"},
		{"double wildcard", bad(func(vh *config.VirtualHost) { vh.Domains = []string{"*.example.*"} }), "wildcard is allowed only"},
		{"slash", bad(func(vh *config.VirtualHost) { vh.Domains = []string{"example.com/x"} }), "cannot appear in a host"},
		{"vhost retry", bad(func(vh *config.VirtualHost) { vh.RetryPolicy = &config.RetryPolicy{RetryOn: []string{"nope"}} }), `virtual_hosts[1].retry_policy.retry_on[0]: unknown condition "nope"`},
		{"vhost header", bad(func(vh *config.VirtualHost) {
			vh.RequestHeadersToAdd = []config.HeaderValueOption{{Key: "x-a", Value: "%BOGUS%"}}
		}), "virtual_hosts[1].request_headers_to_add[0].value: unknown variable %BOGUS%"},
		{"no path matcher", route(config.Route{Route: &config.RouteAction{Cluster: "c"}}), "virtual_hosts[1].routes[1].match: exactly one of prefix, path and safe_regex is required, found 0"},
		{"two path matchers", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Path: sp("/a")}, Route: &config.RouteAction{Cluster: "c"}}), "found 2"},
		{"bad regex", route(config.Route{Match: config.RouteMatch{SafeRegex: sp("a)|(b")}, Route: &config.RouteAction{Cluster: "c"}}), "routes[1].match.safe_regex: invalid RE2 expression"},
		{"header no name", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{ExactMatch: sp("x")}}}, Route: &config.RouteAction{Cluster: "c"}}), "match.headers[0].name: required"},
		{"header bad name", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{Name: "a b", ExactMatch: sp("x")}}}, Route: &config.RouteAction{Cluster: "c"}}), "not a valid header name"},
		{"header bad pseudo", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{Name: ":status", ExactMatch: sp("x")}}}, Route: &config.RouteAction{Cluster: "c"}}), "unknown pseudo-header"},
		{"header two kinds", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{Name: "x", ExactMatch: sp("x"), PresentMatch: bp(true)}}}, Route: &config.RouteAction{Cluster: "c"}}), "match.headers[0].x: exactly one of"},
		{"header no kind", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{Name: "x"}}}, Route: &config.RouteAction{Cluster: "c"}}), "found 0"},
		{"header bad regex", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{Name: "x", SafeRegexMatch: sp("[")}}}, Route: &config.RouteAction{Cluster: "c"}}), "match.headers[0].safe_regex_match: invalid RE2"},
		{"query no name", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), QueryParameters: []config.QueryParameterMatcher{{ExactMatch: sp("1")}}}, Route: &config.RouteAction{Cluster: "c"}}), "match.query_parameters[0].name: required"},
		{"query two kinds", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), QueryParameters: []config.QueryParameterMatcher{{Name: "q", ExactMatch: sp("1"), SafeRegexMatch: sp("1")}}}, Route: &config.RouteAction{Cluster: "c"}}), "at most one"},
		{"query bad regex", route(config.Route{Match: config.RouteMatch{Prefix: sp("/"), QueryParameters: []config.QueryParameterMatcher{{Name: "q", SafeRegexMatch: sp("(")}}}, Route: &config.RouteAction{Cluster: "c"}}), "query_parameters[0].safe_regex_match"},
		{"no action", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}}), "routes[1]: exactly one of route, redirect and direct_response is required, found 0"},
		{"two actions", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c"}, DirectResponse: &config.DirectResponseAction{Status: 200}}), "found 2"},
		{"no cluster", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{}}), "routes[1].route: one of cluster and weighted_clusters is required"},
		{"cluster and weighted", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c", WeightedClusters: &config.WeightedClusters{}}}), "mutually exclusive"},
		{"zero total weight", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{WeightedClusters: &config.WeightedClusters{Clusters: []config.WeightedCluster{{Name: "a"}}}}}), "at least one cluster with weight > 0"},
		{"negative weight", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{WeightedClusters: &config.WeightedClusters{Clusters: []config.WeightedCluster{{Name: "a", Weight: 1}, {Name: "b", Weight: -1}}}}}), "weighted_clusters.clusters[1].weight: -1 is negative"},
		{"weighted no name", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{WeightedClusters: &config.WeightedClusters{Clusters: []config.WeightedCluster{{Weight: 1}}}}}), "clusters[0].name: required"},
		{"weighted bad header", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{WeightedClusters: &config.WeightedClusters{HeaderName: "x y", Clusters: []config.WeightedCluster{{Name: "a", Weight: 1}}}}}), "header_name"},
		{"weighted bad mutation", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{WeightedClusters: &config.WeightedClusters{Clusters: []config.WeightedCluster{{Name: "a", Weight: 1, HeadersMutation: config.HeadersMutation{ResponseHeadersToRemove: []string{":path"}}}}}}}), "clusters[0].response_headers_to_remove[0]: pseudo-header"},
		{"rewrite on regex", route(config.Route{Match: config.RouteMatch{SafeRegex: sp("/.*")}, Route: &config.RouteAction{Cluster: "c", PrefixRewrite: sp("/")}}), "route.prefix_rewrite: not allowed on a safe_regex route"},
		{"both host rewrites", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c", HostRewriteLiteral: "h", AutoHostRewrite: true}}), "host_rewrite_literal and auto_host_rewrite"},
		{"negative timeout", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c", Timeout: durp(-1)}}), "route.timeout"},
		{"negative idle", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c", IdleTimeout: durp(-1)}}), "route.idle_timeout"},
		{"negative buffer", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c", MaxReplayBufferBytes: ip(-1)}}), "per_request_buffer_limit_bytes"},
		{"route retry", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c", RetryPolicy: &config.RetryPolicy{}}}), "routes[1].route.retry_policy.retry_on: at least one"},
		{"direct status", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, DirectResponse: &config.DirectResponseAction{Status: 600}}), "direct_response.status: 600"},
		{"redirect code", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{ResponseCode: 200}}), "redirect.response_code: 200 is not allowed"},
		{"redirect port", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{PortRedirect: 70000}}), "redirect.port_redirect"},
		{"redirect schemes", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{HTTPSRedirect: true, SchemeRedirect: "http"}}), "mutually exclusive"},
		{"redirect bad scheme", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{SchemeRedirect: "ht tp"}}), "scheme_redirect"},
		{"redirect bad host", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{HostRedirect: "evil.com/x"}}), "host_redirect"},
		{"redirect bad path", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{PathRedirect: "x"}}), "path_redirect"},
		{"redirect path and prefix", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Redirect: &config.RedirectAction{PathRedirect: "/x", PrefixRewrite: sp("/y")}}), "mutually exclusive"},
		{"redirect rewrite on regex", route(config.Route{Match: config.RouteMatch{SafeRegex: sp("/")}, Redirect: &config.RedirectAction{PrefixRewrite: sp("/y")}}), "redirect.prefix_rewrite"},
		{"route header", route(config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c"},
			HeadersMutation: config.HeadersMutation{ResponseHeadersToAdd: []config.HeaderValueOption{{Key: "Host", Value: "x"}}}}), "routes[1].response_headers_to_add[0].key: host cannot be changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := NewTable(tt.vhosts, Options{})
			if err == nil {
				t.Fatalf("NewTable succeeded (%v), want error containing %q", tbl, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func durp(d int64) *config.Duration { v := config.Duration(d); return &v }
