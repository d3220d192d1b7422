package route

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// benchVirtualHosts is a realistic listener: a few exact hosts, wildcards
// and a default, one of them with ~20 routes mixing prefixes, exact paths,
// a regex and header matchers.
func benchVirtualHosts() []config.VirtualHost {
	var routes []config.Route
	for i := range 8 {
		routes = append(routes, named(fmt.Sprintf("svc%d-canary", i), config.RouteMatch{
			Prefix:  sp(fmt.Sprintf("/svc%d/", i)),
			Headers: []config.HeaderMatcher{{Name: "x-canary", ExactMatch: sp("1")}},
		}))
		routes = append(routes, named(fmt.Sprintf("svc%d", i), config.RouteMatch{Prefix: sp(fmt.Sprintf("/svc%d/", i))}))
	}
	routes = append(routes,
		named("health", config.RouteMatch{Path: sp("/healthz")}),
		named("users", config.RouteMatch{SafeRegex: sp(`/users/[0-9]+`)}),
		named("api-v2", config.RouteMatch{Prefix: sp("/api/"), Headers: []config.HeaderMatcher{
			{Name: "x-api-version", ExactMatch: sp("2")},
			{Name: "authorization", PresentMatch: bp(true)},
		}}),
		named("api", config.RouteMatch{Prefix: sp("/api/")}),
		named("root", config.RouteMatch{Prefix: sp("/")}),
	)
	return []config.VirtualHost{
		{Name: "main", Domains: []string{"www.example.com", "example.com"}, Routes: routes},
		{Name: "api", Domains: []string{"api.example.com", "api.internal"}, Routes: routes[:4]},
		{Name: "wild", Domains: []string{"*.example.com"}, Routes: routes[:2]},
		{Name: "staging", Domains: []string{"*.staging.example.com"}, Routes: routes[:2]},
		{Name: "pfx", Domains: []string{"example.*"}, Routes: routes[:2]},
		{Name: "default", Domains: []string{"*"}, Routes: routes[len(routes)-1:]},
	}
}

func BenchmarkSelectVirtualHost(b *testing.B) {
	tbl := mustTable(b, benchVirtualHosts())
	for _, authority := range []string{"www.example.com", "www.example.com:8443", "x.staging.example.com", "example.org", "unknown.test", "WWW.Example.COM"} {
		b.Run(authority, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tbl.SelectVirtualHost(authority) == nil {
					b.Fatal("no virtual host")
				}
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	tbl := mustTable(b, benchVirtualHosts())
	vh := tbl.SelectVirtualHost("www.example.com")
	cases := []struct {
		name, want string
		r          *http.Request
	}{
		{"prefix-first", "svc0", req("/svc0/items")},
		{"header-exact", "svc6-canary", req("/svc6/items", "X-Canary", "1")},
		{"headers-late", "api-v2", req("/api/things", "X-Api-Version", "2", "Authorization", "Bearer x")},
		{"regex", "users", req("/users/12345")},
		{"fallthrough", "root", req("/static/app.js")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if got := vh.Match(c.r); got == nil || got.Name != c.want {
				b.Fatalf("matched %v, want %s", got, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				vh.Match(c.r)
			}
		})
	}
}

func BenchmarkPickClusterWeighted(b *testing.B) {
	rt := mustTable(b, []config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []config.Route{weighted("x-draw",
		config.WeightedCluster{Name: "a", Weight: 90}, config.WeightedCluster{Name: "b", Weight: 9}, config.WeightedCluster{Name: "c", Weight: 1})}}}).
		VirtualHosts()[0].Routes()[0]
	r := req("/")
	b.ReportAllocs()
	var rnd uint64
	for b.Loop() {
		rnd += 0x9e3779b97f4a7c15
		if rt.PickCluster(r, rnd) == nil {
			b.Fatal("no cluster")
		}
	}
}

func TestMatchCommonPathDoesNotAllocate(t *testing.T) {
	tbl := mustTable(t, benchVirtualHosts())
	r1 := req("/svc6/items", "X-Canary", "1")
	r2 := req("/static/x")
	allocs := testing.AllocsPerRun(200, func() {
		vh := tbl.SelectVirtualHost("www.example.com:443")
		if vh.Match(r1) == nil || vh.Match(r2) == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("SelectVirtualHost+Match allocated %.1f times per run, want 0", allocs)
	}
}
