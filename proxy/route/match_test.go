package route

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// req builds a request; headers are name/value pairs, repeated names add values.
func req(target string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func named(name string, m config.RouteMatch) config.Route {
	return config.Route{Name: name, Match: m, Route: &config.RouteAction{Cluster: name}}
}

// oneRoute compiles a table with one route named "hit" and a catch-all
// named "miss" and reports which one r reaches.
func matchName(t *testing.T, m config.RouteMatch, r *http.Request) string {
	t.Helper()
	tbl := mustTable(t, []config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []config.Route{named("hit", m)}}})
	rt := tbl.SelectVirtualHost(r.Host).Match(r)
	if rt == nil {
		return "none"
	}
	return rt.Name
}

func TestMatchPath(t *testing.T) {
	insensitive := bp(false)
	tests := []struct {
		name   string
		m      config.RouteMatch
		target string
		want   bool
	}{
		{"prefix", config.RouteMatch{Prefix: sp("/api")}, "/api/v1", true},
		{"prefix exact length", config.RouteMatch{Prefix: sp("/api")}, "/api", true},
		{"prefix is not segment-aware", config.RouteMatch{Prefix: sp("/api")}, "/apis", true},
		{"prefix miss", config.RouteMatch{Prefix: sp("/api")}, "/ap", false},
		{"prefix ignores query", config.RouteMatch{Prefix: sp("/a?x")}, "/a?x=1", false},
		{"prefix case sensitive", config.RouteMatch{Prefix: sp("/API")}, "/api", false},
		{"prefix case insensitive", config.RouteMatch{Prefix: sp("/API"), CaseSensitive: insensitive}, "/api/x", true},
		{"prefix matches decoded path", config.RouteMatch{Prefix: sp("/admin")}, "/%61dmin", true},
		{"empty prefix", config.RouteMatch{Prefix: sp("")}, "/anything", true},
		{"path", config.RouteMatch{Path: sp("/health")}, "/health", true},
		{"path with query", config.RouteMatch{Path: sp("/health")}, "/health?full=1", true},
		{"path longer", config.RouteMatch{Path: sp("/health")}, "/health/", false},
		{"path case", config.RouteMatch{Path: sp("/Health")}, "/health", false},
		{"path case insensitive", config.RouteMatch{Path: sp("/Health"), CaseSensitive: insensitive}, "/HEALTH", true},
		{"regex full match", config.RouteMatch{SafeRegex: sp(`/users/[0-9]+`)}, "/users/42", true},
		{"regex no partial match", config.RouteMatch{SafeRegex: sp(`/users/[0-9]+`)}, "/users/42/posts", false},
		{"regex no partial prefix", config.RouteMatch{SafeRegex: sp(`[0-9]+`)}, "/42", false},
		{"regex alternation anchored", config.RouteMatch{SafeRegex: sp(`/a|/b`)}, "/b", true},
		{"regex alternation not partial", config.RouteMatch{SafeRegex: sp(`/a|/b`)}, "/bc", false},
		{"regex ignores case_sensitive", config.RouteMatch{SafeRegex: sp(`/a`), CaseSensitive: insensitive}, "/A", false},
		{"regex without query", config.RouteMatch{SafeRegex: sp(`/q`)}, "/q?x=1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchName(t, tt.m, req(tt.target)) == "hit"
			if got != tt.want {
				t.Fatalf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchHeaders(t *testing.T) {
	hm := func(h config.HeaderMatcher) config.RouteMatch {
		return config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{h}}
	}
	tests := []struct {
		name    string
		m       config.RouteMatch
		headers []string
		want    bool
	}{
		{"exact", hm(config.HeaderMatcher{Name: "x-canary", ExactMatch: sp("1")}), []string{"X-Canary", "1"}, true},
		{"exact name case-insensitive", hm(config.HeaderMatcher{Name: "X-CANARY", ExactMatch: sp("1")}), []string{"x-canary", "1"}, true},
		{"exact value case-sensitive", hm(config.HeaderMatcher{Name: "x-env", ExactMatch: sp("prod")}), []string{"x-env", "PROD"}, false},
		{"exact missing", hm(config.HeaderMatcher{Name: "x-canary", ExactMatch: sp("1")}), nil, false},
		{"exact empty value", hm(config.HeaderMatcher{Name: "x-e", ExactMatch: sp("")}), []string{"x-e", ""}, true},
		{"exact missing inverted", hm(config.HeaderMatcher{Name: "x-canary", ExactMatch: sp("1"), InvertMatch: true}), nil, true},
		{"exact inverted", hm(config.HeaderMatcher{Name: "x-canary", ExactMatch: sp("1"), InvertMatch: true}), []string{"x-canary", "1"}, false},
		{"exact inverted other", hm(config.HeaderMatcher{Name: "x-canary", ExactMatch: sp("1"), InvertMatch: true}), []string{"x-canary", "2"}, true},
		{"multi values joined", hm(config.HeaderMatcher{Name: "x-a", ExactMatch: sp("1,2")}), []string{"x-a", "1", "x-a", "2"}, true},
		{"multi values not one", hm(config.HeaderMatcher{Name: "x-a", ExactMatch: sp("1")}), []string{"x-a", "1", "x-a", "2"}, false},
		{"prefix", hm(config.HeaderMatcher{Name: "user-agent", PrefixMatch: sp("curl/")}), []string{"User-Agent", "curl/8.0"}, true},
		{"prefix miss", hm(config.HeaderMatcher{Name: "user-agent", PrefixMatch: sp("curl/")}), []string{"User-Agent", "Mozilla curl/"}, false},
		{"suffix", hm(config.HeaderMatcher{Name: "x-u", SuffixMatch: sp(".internal")}), []string{"x-u", "a.internal"}, true},
		{"suffix miss", hm(config.HeaderMatcher{Name: "x-u", SuffixMatch: sp(".internal")}), []string{"x-u", "a.internal.com"}, false},
		{"contains", hm(config.HeaderMatcher{Name: "cookie", ContainsMatch: sp("beta=1")}), []string{"Cookie", "a=b; beta=1; c=d"}, true},
		{"contains miss", hm(config.HeaderMatcher{Name: "cookie", ContainsMatch: sp("beta=1")}), []string{"Cookie", "beta=0"}, false},
		{"contains across values", hm(config.HeaderMatcher{Name: "x-l", ContainsMatch: sp("a,b")}), []string{"x-l", "a", "x-l", "b"}, true},
		{"regex", hm(config.HeaderMatcher{Name: "x-v", SafeRegexMatch: sp(`v[0-9]+`)}), []string{"x-v", "v12"}, true},
		{"regex full", hm(config.HeaderMatcher{Name: "x-v", SafeRegexMatch: sp(`v[0-9]+`)}), []string{"x-v", "v12b"}, false},
		{"regex inverted", hm(config.HeaderMatcher{Name: "x-v", SafeRegexMatch: sp(`v[0-9]+`), InvertMatch: true}), []string{"x-v", "x"}, true},
		{"present", hm(config.HeaderMatcher{Name: "authorization", PresentMatch: bp(true)}), []string{"Authorization", ""}, true},
		{"present missing", hm(config.HeaderMatcher{Name: "authorization", PresentMatch: bp(true)}), nil, false},
		{"present inverted", hm(config.HeaderMatcher{Name: "authorization", PresentMatch: bp(true), InvertMatch: true}), nil, true},
		{"absent", hm(config.HeaderMatcher{Name: "authorization", PresentMatch: bp(false)}), nil, true},
		{"absent but present", hm(config.HeaderMatcher{Name: "authorization", PresentMatch: bp(false)}), []string{"Authorization", "x"}, false},
		{"method pseudo", hm(config.HeaderMatcher{Name: ":method", ExactMatch: sp("GET")}), nil, true},
		{"authority pseudo", hm(config.HeaderMatcher{Name: ":authority", SuffixMatch: sp("example.com")}), nil, true},
		{"host is authority", hm(config.HeaderMatcher{Name: "Host", ExactMatch: sp("example.com")}), nil, true},
		{"path pseudo has query", hm(config.HeaderMatcher{Name: ":path", ExactMatch: sp("/p?q=1")}), nil, true},
		{"scheme pseudo", hm(config.HeaderMatcher{Name: ":scheme", ExactMatch: sp("http")}), nil, true},
		{"all headers must match", config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{
			{Name: "x-a", ExactMatch: sp("1")}, {Name: "x-b", ExactMatch: sp("2")},
		}}, []string{"x-a", "1", "x-b", "3"}, false},
		{"all headers match", config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{
			{Name: "x-a", ExactMatch: sp("1")}, {Name: "x-b", ExactMatch: sp("2")},
		}}, []string{"x-a", "1", "x-b", "2"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("http://example.com/p?q=1", tt.headers...)
			got := matchName(t, tt.m, r) == "hit"
			if got != tt.want {
				t.Fatalf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchSchemePseudoTLS(t *testing.T) {
	m := config.RouteMatch{Prefix: sp("/"), Headers: []config.HeaderMatcher{{Name: ":scheme", ExactMatch: sp("https")}}}
	r := req("/")
	r.URL.Scheme = ""
	if matchName(t, m, r) == "hit" {
		t.Fatal("plain request matched https")
	}
	r.TLS = &tls.ConnectionState{}
	if matchName(t, m, r) != "hit" {
		t.Fatal("TLS request did not match https")
	}
}

func TestMatchQueryParameters(t *testing.T) {
	qm := func(q ...config.QueryParameterMatcher) config.RouteMatch {
		return config.RouteMatch{Prefix: sp("/"), QueryParameters: q}
	}
	tests := []struct {
		name   string
		m      config.RouteMatch
		target string
		want   bool
	}{
		{"exact", qm(config.QueryParameterMatcher{Name: "debug", ExactMatch: sp("1")}), "/?debug=1", true},
		{"exact other value", qm(config.QueryParameterMatcher{Name: "debug", ExactMatch: sp("1")}), "/?debug=2", false},
		{"exact missing", qm(config.QueryParameterMatcher{Name: "debug", ExactMatch: sp("1")}), "/?x=1", false},
		{"exact no query", qm(config.QueryParameterMatcher{Name: "debug", ExactMatch: sp("1")}), "/", false},
		{"name case-sensitive", qm(config.QueryParameterMatcher{Name: "debug", ExactMatch: sp("1")}), "/?DEBUG=1", false},
		{"first value wins", qm(config.QueryParameterMatcher{Name: "v", ExactMatch: sp("a")}), "/?v=a&v=b", true},
		{"first value only", qm(config.QueryParameterMatcher{Name: "v", ExactMatch: sp("b")}), "/?v=a&v=b", false},
		{"later parameter", qm(config.QueryParameterMatcher{Name: "v", ExactMatch: sp("b")}), "/?a=1&&v=b", true},
		{"unescaped", qm(config.QueryParameterMatcher{Name: "q x", ExactMatch: sp("a b/c")}), "/?q+x=a%20b%2Fc", true},
		{"bad escape skipped", qm(config.QueryParameterMatcher{Name: "v", ExactMatch: sp("2")}), "/?v=%zz&v=2", true},
		{"empty value", qm(config.QueryParameterMatcher{Name: "v", ExactMatch: sp("")}), "/?v", true},
		{"regex", qm(config.QueryParameterMatcher{Name: "id", SafeRegexMatch: sp(`[0-9]{3}`)}), "/?id=123", true},
		{"regex full", qm(config.QueryParameterMatcher{Name: "id", SafeRegexMatch: sp(`[0-9]{3}`)}), "/?id=1234", false},
		{"present", qm(config.QueryParameterMatcher{Name: "flag", PresentMatch: bp(true)}), "/?flag", true},
		{"present missing", qm(config.QueryParameterMatcher{Name: "flag", PresentMatch: bp(true)}), "/?flags=1", false},
		{"absent", qm(config.QueryParameterMatcher{Name: "flag", PresentMatch: bp(false)}), "/?other=1", true},
		{"name only means present", qm(config.QueryParameterMatcher{Name: "flag"}), "/?flag=0", true},
		{"name only missing", qm(config.QueryParameterMatcher{Name: "flag"}), "/", false},
		{"all must match", qm(config.QueryParameterMatcher{Name: "a", ExactMatch: sp("1")}, config.QueryParameterMatcher{Name: "b", ExactMatch: sp("2")}), "/?b=2&a=1", true},
		{"all must match miss", qm(config.QueryParameterMatcher{Name: "a", ExactMatch: sp("1")}, config.QueryParameterMatcher{Name: "b", ExactMatch: sp("2")}), "/?a=1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchName(t, tt.m, req(tt.target)) == "hit"
			if got != tt.want {
				t.Fatalf("matched = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchOrder(t *testing.T) {
	tbl := mustTable(t, []config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []config.Route{
		named("canary", config.RouteMatch{Prefix: sp("/api"), Headers: []config.HeaderMatcher{{Name: "x-canary", ExactMatch: sp("1")}}}),
		named("health", config.RouteMatch{Path: sp("/api/health")}),
		named("api", config.RouteMatch{Prefix: sp("/api")}),
		named("shadowed", config.RouteMatch{Path: sp("/api/never")}), // after /api, so never reached
		named("root", config.RouteMatch{Prefix: sp("/")}),
	}}})
	vh := tbl.SelectVirtualHost("any")
	tests := []struct {
		r    *http.Request
		want string
	}{
		{req("/api/health", "x-canary", "1"), "canary"}, // first match wins even over an exact path
		{req("/api/health"), "health"},
		{req("/api/users"), "api"},
		{req("/api/never"), "api"},
		{req("/other"), "root"},
	}
	for _, tt := range tests {
		if got := vh.Match(tt.r); got == nil || got.Name != tt.want {
			t.Errorf("%s %v: got %v, want %s", tt.r.URL, tt.r.Header, got, tt.want)
		}
	}
	// No catch-all: nothing matches.
	tbl = mustTable(t, []config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []config.Route{named("a", config.RouteMatch{Path: sp("/a")})}}})
	if got := tbl.SelectVirtualHost("x").Match(req("/b")); got != nil {
		t.Errorf("matched %s, want nil", got.Name)
	}
	var nilVH *VirtualHost
	if nilVH.Match(req("/")) != nil {
		t.Error("nil virtual host matched")
	}
}
