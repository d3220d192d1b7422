package route

import (
	"crypto/tls"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/retry"
)

func onlyRoute(t *testing.T, r config.Route) *Route {
	t.Helper()
	tbl := mustTable(t, []config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []config.Route{r}}})
	return tbl.VirtualHosts()[0].Routes()[0]
}

func weighted(header string, clusters ...config.WeightedCluster) config.Route {
	return config.Route{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{
		WeightedClusters: &config.WeightedClusters{HeaderName: header, Clusters: clusters},
	}}
}

func TestPickClusterSingle(t *testing.T) {
	rt := onlyRoute(t, prefixRoute("/", "backend"))
	for _, rnd := range []uint64{0, 1, 1 << 63} {
		if got := rt.PickCluster(req("/"), rnd); got == nil || got.Name != "backend" || got.Mutation != nil {
			t.Fatalf("PickCluster(%d) = %+v", rnd, got)
		}
	}
}

func TestPickClusterWeightedDistribution(t *testing.T) {
	rt := onlyRoute(t, weighted("",
		config.WeightedCluster{Name: "stable", Weight: 90},
		config.WeightedCluster{Name: "parked", Weight: 0},
		config.WeightedCluster{Name: "canary", Weight: 9},
		config.WeightedCluster{Name: "tiny", Weight: 1},
	))
	// rnd sweeps several whole periods: every cluster gets exactly its share.
	counts := map[string]int{}
	const periods = 7
	for rnd := range uint64(100 * periods) {
		counts[rt.PickCluster(req("/"), rnd+1<<40).Name]++ // an offset that is a multiple of nothing in particular
	}
	want := map[string]int{"stable": 90 * periods, "canary": 9 * periods, "tiny": 1 * periods}
	if len(counts) != len(want) {
		t.Fatalf("counts = %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Fatalf("counts = %v, want %v", counts, want)
		}
	}
	// The draw is rnd % total weight, in configuration order.
	for _, c := range []struct {
		rnd  uint64
		want string
	}{{0, "stable"}, {89, "stable"}, {90, "canary"}, {98, "canary"}, {99, "tiny"}, {100, "stable"}, {^uint64(0), "stable"}} {
		if got := rt.PickCluster(req("/"), c.rnd).Name; got != c.want {
			t.Errorf("rnd %d: %s, want %s", c.rnd, got, c.want)
		}
	}
}

func TestPickClusterHeader(t *testing.T) {
	rt := onlyRoute(t, weighted("x-canary-draw",
		config.WeightedCluster{Name: "stable", Weight: 95},
		config.WeightedCluster{Name: "canary", Weight: 5},
	))
	tests := []struct {
		header string
		rnd    uint64
		want   string
	}{
		{"97", 0, "canary"},                    // the header decides
		{" 3 ", 99, "stable"},                  // spaces are fine
		{"0", 96, "stable"},                    // zero is a valid draw
		{"99", 0, "canary"},                    // last valid value
		{"100", 96, "canary"},                  // out of range: fall back to rnd
		{"-1", 0, "stable"},                    // not a draw: rnd
		{"abc", 97, "canary"},                  // not a draw: rnd
		{"", 97, "canary"},                     // empty: rnd
		{"1e2", 0, "stable"},                   // not an integer
		{"18446744073709551616", 97, "canary"}, // overflows uint64
	}
	for _, tt := range tests {
		r := req("/", "X-Canary-Draw", tt.header)
		if got := rt.PickCluster(r, tt.rnd).Name; got != tt.want {
			t.Errorf("header %q rnd %d: %s, want %s", tt.header, tt.rnd, got, tt.want)
		}
	}
	if got := rt.PickCluster(req("/"), 96).Name; got != "canary" {
		t.Errorf("no header: %s, want canary", got)
	}
}

func TestPickClusterNonForwarding(t *testing.T) {
	rt := onlyRoute(t, config.Route{Match: config.RouteMatch{Prefix: sp("/")}, DirectResponse: &config.DirectResponseAction{Status: 204}})
	if got := rt.PickCluster(req("/"), 0); got != nil {
		t.Fatalf("direct response picked %v", got)
	}
}

func TestRouteDefaultsAndInheritance(t *testing.T) {
	vhRetry := &config.RetryPolicy{RetryOn: []string{"connect-failure"}}
	tbl := mustTable(t, []config.VirtualHost{{
		Name: "vh", Domains: []string{"*"}, RetryPolicy: vhRetry,
		Routes: []config.Route{
			{Name: "defaults", StatPrefix: "d", Match: config.RouteMatch{Path: sp("/d")}, Route: &config.RouteAction{Cluster: "c"}},
			{Name: "custom", Match: config.RouteMatch{Path: sp("/c")}, Route: &config.RouteAction{
				Cluster: "c", Timeout: durp(0), IdleTimeout: durp(int64(3 * time.Second)), MaxReplayBufferBytes: ip(0),
				RetryPolicy: &config.RetryPolicy{RetryOn: []string{"5xx"}, NumRetries: ip(3)}, HostRewriteLiteral: "upstream.internal",
			}, Decorator: &config.Decorator{Operation: "custom-op"}},
			{Name: "auto", Match: config.RouteMatch{Path: sp("/a")}, Route: &config.RouteAction{Cluster: "c", AutoHostRewrite: true, Timeout: durp(int64(time.Second))}},
			{Name: "direct", Match: config.RouteMatch{Prefix: sp("/")}, DirectResponse: &config.DirectResponseAction{Status: 404, Body: "no route\n"}},
		},
	}})
	vh := tbl.SelectVirtualHost("x")
	d := vh.Match(req("/d"))
	if d.Action != ActionRoute || d.Timeout != 15*time.Second || d.HasIdleTimeout || d.ReplayBufferLimit != 65536 ||
		d.StatPrefix != "d" || d.VirtualHost != vh || d.HostRewrite != "" || d.AutoHostRewrite || d.Operation != "" {
		t.Errorf("defaults: %+v", d)
	}
	if d.Retry == nil || d.Retry != vh.Retry || d.Retry.On != retry.OnConnectFailure {
		t.Errorf("route without a policy does not inherit the virtual host's: %+v", d.Retry)
	}
	c := vh.Match(req("/c"))
	if c.Operation != "custom-op" {
		t.Errorf("decorator operation = %q, want custom-op", c.Operation)
	}
	if c.Timeout != 0 || !c.HasIdleTimeout || c.IdleTimeout != 3*time.Second || c.ReplayBufferLimit != 0 || c.HostRewrite != "upstream.internal" {
		t.Errorf("custom: %+v", c)
	}
	if c.Retry == nil || c.Retry.On != retry.On5xx || c.Retry.NumRetries != 3 {
		t.Errorf("route policy does not override: %+v", c.Retry)
	}
	a := vh.Match(req("/a"))
	if !a.AutoHostRewrite || a.Timeout != time.Second {
		t.Errorf("auto: %+v", a)
	}
	dr := vh.Match(req("/zzz"))
	if status, body := dr.DirectResponse(); dr.Action != ActionDirectResponse || status != 404 || body != "no route\n" {
		t.Errorf("direct: %v %d %q", dr.Action, status, body)
	}
	if dr.Retry != nil {
		t.Error("a direct response has a retry policy")
	}
	if status, _ := d.DirectResponse(); status != 0 {
		t.Error("a forwarding route has a direct response")
	}
	if loc, status := d.RedirectLocation(req("/d")); loc != "" || status != 0 {
		t.Error("a forwarding route redirects")
	}
	// No policy anywhere: nil.
	rt := onlyRoute(t, prefixRoute("/", "c"))
	if rt.Retry != nil {
		t.Errorf("retry = %+v, want nil", rt.Retry)
	}
	if ActionRoute.String() != "route" || ActionRedirect.String() != "redirect" || ActionDirectResponse.String() != "direct_response" || Action(9).String() != "Action(9)" {
		t.Error("Action.String")
	}
}

func TestRewritePath(t *testing.T) {
	tests := []struct {
		name string
		m    config.RouteMatch
		rw   *string
		in   string
		want string
	}{
		{"no rewrite", config.RouteMatch{Prefix: sp("/api")}, nil, "/api/x", "/api/x"},
		{"prefix", config.RouteMatch{Prefix: sp("/api/")}, sp("/v2/"), "/api/users?id=1", "/v2/users?id=1"},
		{"prefix to root", config.RouteMatch{Prefix: sp("/api")}, sp("/"), "/api/users", "//users"}, // as Envoy: mind the slashes
		{"prefix to empty", config.RouteMatch{Prefix: sp("/api")}, sp(""), "/api/users", "/users"},
		{"prefix case-insensitive", config.RouteMatch{Prefix: sp("/API"), CaseSensitive: bp(false)}, sp("/v1"), "/api/x", "/v1/x"},
		{"prefix not present", config.RouteMatch{Prefix: sp("/api")}, sp("/v2"), "/other", "/other"},
		{"exact path", config.RouteMatch{Path: sp("/old")}, sp("/new"), "/old", "/new"},
		{"exact path keeps query", config.RouteMatch{Path: sp("/old")}, sp("/new"), "/old?a=1", "/new?a=1"},
		{"exact path mismatch", config.RouteMatch{Path: sp("/old")}, sp("/new"), "/old/x", "/old/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := onlyRoute(t, config.Route{Match: tt.m, Route: &config.RouteAction{Cluster: "c", PrefixRewrite: tt.rw}})
			if got := rt.RewritePath(tt.in); got != tt.want {
				t.Fatalf("RewritePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedirectLocation(t *testing.T) {
	tests := []struct {
		name       string
		m          config.RouteMatch
		red        config.RedirectAction
		target     string
		tls        bool
		xfp        string
		wantLoc    string
		wantStatus int
	}{
		{"https", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HTTPSRedirect: true}, "http://example.com/a/b?x=1", false, "", "https://example.com/a/b?x=1", 301},
		{"https drops :80", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HTTPSRedirect: true}, "http://example.com:80/a", false, "", "https://example.com/a", 301},
		{"https keeps other port", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HTTPSRedirect: true}, "http://example.com:8080/a", false, "", "https://example.com:8080/a", 301},
		{"https already https keeps :443", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HTTPSRedirect: true, ResponseCode: 308}, "/a", true, "", "https://example.com:443/a", 308},
		{"http from tls drops :443", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{SchemeRedirect: "HTTP"}, "/a", true, "", "http://example.com/a", 301},
		{"forwarded proto", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HTTPSRedirect: true}, "/a", false, "https", "https://example.com/a", 301},
		{"host", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HostRedirect: "new.example.org", ResponseCode: 302}, "http://old.example.com:8080/p?q", false, "", "http://new.example.org/p?q", 302},
		{"host with port", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HostRedirect: "new.example.org:9000"}, "http://old.example.com/p", false, "", "http://new.example.org:9000/p", 301},
		{"port", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{PortRedirect: 8443, HTTPSRedirect: true}, "http://example.com:80/p", false, "", "https://example.com:8443/p", 301},
		{"port on ipv6", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{PortRedirect: 81}, "http://[::1]:80/p", false, "", "http://[::1]:81/p", 301},
		{"path", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{PathRedirect: "/new"}, "http://example.com/old?x=1", false, "", "http://example.com/new?x=1", 301},
		{"path with query", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{PathRedirect: "/new?y=2", StripQuery: true}, "http://example.com/old?x=1", false, "", "http://example.com/new?y=2", 301},
		{"path strip query", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{PathRedirect: "/new", StripQuery: true}, "http://example.com/old?x=1", false, "", "http://example.com/new", 301},
		{"prefix rewrite", config.RouteMatch{Prefix: sp("/old/")}, config.RedirectAction{PrefixRewrite: sp("/new/"), ResponseCode: 307}, "http://example.com/old/a?x=1", false, "", "http://example.com/new/a?x=1", 307},
		{"escaped path kept", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{HostRedirect: "b.com"}, "http://a.com/a%2Fb%20c", false, "", "http://b.com/a%2Fb%20c", 301},
		{"strip query", config.RouteMatch{Prefix: sp("/")}, config.RedirectAction{StripQuery: true, ResponseCode: 303}, "http://example.com/p?secret=1", false, "", "http://example.com/p", 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			red := tt.red
			rt := onlyRoute(t, config.Route{Match: tt.m, Redirect: &red})
			if rt.Action != ActionRedirect {
				t.Fatalf("action %v", rt.Action)
			}
			r := req(tt.target)
			r.URL.Scheme, r.URL.Host = "", "" // as a server sees an origin-form request
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
				r.Host = "example.com:443"
			}
			if tt.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", tt.xfp)
			}
			loc, status := rt.RedirectLocation(r)
			if loc != tt.wantLoc || status != tt.wantStatus {
				t.Fatalf("got %q %d, want %q %d", loc, status, tt.wantLoc, tt.wantStatus)
			}
		})
	}
}

func TestMutationOrder(t *testing.T) {
	set := func(key, value string) config.HeadersMutation {
		return config.HeadersMutation{
			RequestHeadersToAdd:  []config.HeaderValueOption{{Key: key, Value: value, Append: bp(false)}, {Key: "x-trail", Value: value}},
			ResponseHeadersToAdd: []config.HeaderValueOption{{Key: key, Value: value, Append: bp(false)}},
		}
	}
	tbl := mustTable(t, []config.VirtualHost{{
		Name: "vh", Domains: []string{"*"}, HeadersMutation: set("x-level", "vhost"),
		Routes: []config.Route{{
			Match: config.RouteMatch{Prefix: sp("/")}, HeadersMutation: set("x-level", "route"),
			Route: &config.RouteAction{WeightedClusters: &config.WeightedClusters{Clusters: []config.WeightedCluster{
				{Name: "a", Weight: 1, HeadersMutation: set("x-level", "cluster")},
			}}},
		}},
	}})
	vh := tbl.SelectVirtualHost("x")
	rt := vh.Match(req("/"))
	target := rt.PickCluster(req("/"), 0)
	if target.Mutation == nil || len(rt.Mutations()) != 2 || rt.Mutations()[1] != vh.Mutation {
		t.Fatalf("mutations: target %v, route %v", target.Mutation, rt.Mutations())
	}
	h := http.Header{}
	rt.ApplyRequest(target, h, nil)
	// Most specific first, so the virtual host's overwrite lands last.
	if got := h.Values("X-Level"); !slices.Equal(got, []string{"vhost"}) {
		t.Errorf("x-level = %v", got)
	}
	if got := h.Values("X-Trail"); !slices.Equal(got, []string{"cluster", "route", "vhost"}) {
		t.Errorf("x-trail = %v", got)
	}
	resp := http.Header{}
	rt.ApplyResponse(nil, resp, nil)
	if got := resp.Values("X-Level"); !slices.Equal(got, []string{"vhost"}) {
		t.Errorf("response x-level = %v", got)
	}
	// A route and virtual host without header changes have no mutations.
	plain := onlyRoute(t, prefixRoute("/", "c"))
	if len(plain.Mutations()) != 0 {
		t.Errorf("plain route has mutations %v", plain.Mutations())
	}
}
