package route

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Reference hashes, computed here independently of hash.go.
func xx(s string) uint64 { return xxhash.Sum64String(s) }

func xxSeeded(s string, seed uint64) uint64 {
	d := xxhash.NewWithSeed(seed)
	_, _ = d.WriteString(s)
	return d.Sum64()
}

func rotl1(h uint64) uint64 { return h<<1 | h>>63 }

func mustHashPolicy(t testing.TB, list ...config.HashPolicy) *HashPolicy {
	t.Helper()
	p, err := compileHashPolicy(list, "route")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func header(name string) config.HashPolicy {
	return config.HashPolicy{Header: &config.HashPolicyHeader{HeaderName: name}}
}

func cookie(name string) config.HashPolicy {
	return config.HashPolicy{Cookie: &config.HashPolicyCookie{Name: name}}
}

func query(name string) config.HashPolicy {
	return config.HashPolicy{QueryParameter: &config.HashPolicyQueryParameter{Name: name}}
}

func sourceIP() config.HashPolicy {
	return config.HashPolicy{ConnectionProperties: &config.HashPolicyConnectionProperties{SourceIP: true}}
}

func terminal(p config.HashPolicy) config.HashPolicy { p.Terminal = true; return p }

func hashRequest(target string, h http.Header) *http.Request {
	u, _ := url.ParseRequestURI(target)
	if h == nil {
		h = http.Header{}
	}
	return &http.Request{Method: "GET", Host: "shop.example.com", URL: u, RequestURI: target, Header: h, RemoteAddr: "192.0.2.7:51000"}
}

func TestHashPolicy(t *testing.T) {
	client := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		name     string
		policies []config.HashPolicy
		req      *http.Request
		client   netip.Addr
		want     uint64
		wantOK   bool
	}{
		{"header", []config.HashPolicy{header("x-user")}, hashRequest("/", http.Header{"X-User": {"alice"}}), client, xx("alice"), true},
		{"header name case-insensitive", []config.HashPolicy{header("X-USER")}, hashRequest("/", http.Header{"X-User": {"alice"}}), client, xx("alice"), true},
		{"header missing", []config.HashPolicy{header("x-user")}, hashRequest("/", nil), client, 0, false},
		{"empty header value is hashed", []config.HashPolicy{header("x-user")}, hashRequest("/", http.Header{"X-User": {""}}), client, xx(""), true},
		// Envoy sorts repeated values and chains them through the seed.
		{"repeated header", []config.HashPolicy{header("x-user")}, hashRequest("/", http.Header{"X-User": {"b", "a"}}), client, xxSeeded("b", xx("a")), true},
		{"repeated header, other order", []config.HashPolicy{header("x-user")}, hashRequest("/", http.Header{"X-User": {"a", "b"}}), client, xxSeeded("b", xx("a")), true},
		{":authority", []config.HashPolicy{header(":authority")}, hashRequest("/", nil), client, xx("shop.example.com"), true},
		{"host is the authority", []config.HashPolicy{header("host")}, hashRequest("/", nil), client, xx("shop.example.com"), true},
		{":path", []config.HashPolicy{header(":path")}, hashRequest("/a?b=c", nil), client, xx("/a?b=c"), true},
		{":method", []config.HashPolicy{header(":method")}, hashRequest("/", nil), client, xx("GET"), true},
		{":scheme", []config.HashPolicy{header(":scheme")}, hashRequest("/", nil), client, xx("http"), true},
		{"cookie", []config.HashPolicy{cookie("session")}, hashRequest("/", http.Header{"Cookie": {`a=1; session="xyz"; b=2`}}), client, xx("xyz"), true},
		{"cookie on a second line", []config.HashPolicy{cookie("session")}, hashRequest("/", http.Header{"Cookie": {"a=1", "session=s2"}}), client, xx("s2"), true},
		{"cookie missing", []config.HashPolicy{cookie("session")}, hashRequest("/", http.Header{"Cookie": {"sessionx=1"}}), client, 0, false},
		{"cookie empty, no ttl", []config.HashPolicy{cookie("session")}, hashRequest("/", http.Header{"Cookie": {"session="}}), client, 0, false},
		{"source ip v4", []config.HashPolicy{sourceIP()}, hashRequest("/", nil), client, xx("203.0.113.9"), true},
		{"source ip v6", []config.HashPolicy{sourceIP()}, hashRequest("/", nil), netip.MustParseAddr("2001:db8::1"), xx("2001:db8::1"), true},
		{"source ip unknown", []config.HashPolicy{sourceIP()}, hashRequest("/", nil), netip.Addr{}, 0, false},
		{"query parameter", []config.HashPolicy{query("user")}, hashRequest("/p?a=1&user=bob&user=eve", nil), client, xx("bob"), true},
		{"query parameter not decoded", []config.HashPolicy{query("user")}, hashRequest("/p?user=b%20c", nil), client, xx("b%20c"), true},
		{"query parameter without value", []config.HashPolicy{query("user")}, hashRequest("/p?user&a=1", nil), client, xx(""), true},
		{"query parameter missing", []config.HashPolicy{query("user")}, hashRequest("/p?users=1", nil), client, 0, false},
		// Combination: the running hash is rotated left one bit, then XORed.
		{"two entries", []config.HashPolicy{header("x-user"), query("q")}, hashRequest("/?q=1", http.Header{"X-User": {"alice"}}), client,
			rotl1(xx("alice")) ^ xx("1"), true},
		{"three entries, the middle one empty", []config.HashPolicy{header("x-user"), cookie("s"), sourceIP()}, hashRequest("/", http.Header{"X-User": {"alice"}}), client,
			rotl1(xx("alice")) ^ xx("203.0.113.9"), true},
		{"equal entries do not cancel", []config.HashPolicy{header("x-user"), header("x-user")}, hashRequest("/", http.Header{"X-User": {"alice"}}), client,
			rotl1(xx("alice")) ^ xx("alice"), true},
		{"terminal with a hash stops", []config.HashPolicy{terminal(header("x-user")), sourceIP()}, hashRequest("/", http.Header{"X-User": {"alice"}}), client, xx("alice"), true},
		{"terminal without a hash goes on", []config.HashPolicy{terminal(header("x-user")), sourceIP()}, hashRequest("/", nil), client, xx("203.0.113.9"), true},
		{"terminal after an earlier hash stops", []config.HashPolicy{header("x-user"), terminal(cookie("s")), sourceIP()}, hashRequest("/", http.Header{"X-User": {"alice"}}), client, xx("alice"), true},
		{"nothing produced", []config.HashPolicy{header("x-user"), cookie("s"), query("q")}, hashRequest("/", nil), client, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustHashPolicy(t, tt.policies...)
			got, ok, cookies := p.Hash(tt.req, HashInput{ClientAddress: tt.client})
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Hash = %#x, %v; want %#x, %v", got, ok, tt.want, tt.wantOK)
			}
			if cookies != nil {
				t.Errorf("generated cookies %q, want none", cookies)
			}
		})
	}
}

// TestHashPolicyGeneratesCookie checks Envoy's cookie generation: the value
// is the hex xxHash64 of the connection's remote and local addresses, the
// request is hashed on it, and the Set-Cookie carries Max-Age (whole
// seconds of the ttl; none for a session cookie), Path and HttpOnly.
func TestHashPolicyGeneratesCookie(t *testing.T) {
	ttl := func(d time.Duration) *config.Duration { c := config.Duration(d); return &c }
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10000}
	value := fmt.Sprintf("%016x", xx("192.0.2.7:51000"+"127.0.0.1:10000"))
	tests := []struct {
		name   string
		cookie config.HashPolicyCookie
		header http.Header
		want   string
	}{
		{"ttl and path", config.HashPolicyCookie{Name: "session", TTL: ttl(time.Hour), Path: "/app"}, nil,
			`session="` + value + `"; Max-Age=3600; Path=/app; HttpOnly`},
		{"session cookie", config.HashPolicyCookie{Name: "session", TTL: ttl(0)}, nil,
			`session="` + value + `"; HttpOnly`},
		{"fractional ttl truncated", config.HashPolicyCookie{Name: "s", TTL: ttl(1500 * time.Millisecond)}, nil,
			`s="` + value + `"; Max-Age=1; HttpOnly`},
		{"empty cookie is replaced", config.HashPolicyCookie{Name: "s", TTL: ttl(time.Minute)}, http.Header{"Cookie": {`s=""`}},
			`s="` + value + `"; Max-Age=60; HttpOnly`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustHashPolicy(t, config.HashPolicy{Cookie: &tt.cookie})
			r := hashRequest("/", tt.header)
			r = r.WithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, net.Addr(local)))
			h, ok, cookies := p.Hash(r, HashInput{})
			if !ok || h != xx(value) {
				t.Errorf("Hash = %#x, %v; want the hash of the generated value %#x", h, ok, xx(value))
			}
			if len(cookies) != 1 || cookies[0] != tt.want {
				t.Errorf("Set-Cookie = %q, want %q", cookies, tt.want)
			}
		})
	}
	// A request that carries the cookie is hashed on it, and gets none.
	p := mustHashPolicy(t, config.HashPolicy{Cookie: &config.HashPolicyCookie{Name: "s", TTL: ttl(time.Minute)}})
	h, ok, cookies := p.Hash(hashRequest("/", http.Header{"Cookie": {`s="` + value + `"`}}), HashInput{})
	if !ok || h != xx(value) || cookies != nil {
		t.Errorf("with the cookie: Hash = %#x, %v, cookies %q; want %#x, true, none", h, ok, cookies, xx(value))
	}
}

// lookupCase is one case of a hash key lookup: in is what the request
// carries (cookie lines, a query string), name the key looked up.
type lookupCase[In any] struct {
	in    In
	name  string
	want  string
	found bool
}

// checkLookups runs lookup, called fn in messages, over tests.
func checkLookups[In any](t *testing.T, fn string, lookup func(In, string) (string, bool), tests []lookupCase[In]) {
	t.Helper()
	for _, tt := range tests {
		got, found := lookup(tt.in, tt.name)
		if got != tt.want || found != tt.found {
			t.Errorf("%s(%q, %q) = %q, %v; want %q, %v", fn, any(tt.in), tt.name, got, found, tt.want, tt.found)
		}
	}
}

func TestCookieValue(t *testing.T) {
	checkLookups(t, "CookieValue", CookieValue, []lookupCase[[]string]{
		{[]string{"a=1"}, "a", "1", true},
		{[]string{"a=1; b=2"}, "b", "2", true},
		{[]string{"a=1;b=2"}, "b", "2", true},
		{[]string{"  b=2"}, "b", "2", true},
		{[]string{`b="quoted"`}, "b", "quoted", true},
		{[]string{`b="`}, "b", `"`, true},
		{[]string{`b=""`}, "b", "", true},
		{[]string{"b=x=y"}, "b", "x=y", true},
		{[]string{"b=2 "}, "b", "2 ", true},
		{[]string{"b =2"}, "b", "", false}, // names compare exactly, as in Envoy
		{[]string{"b"}, "b", "", false},    // no '=': malformed, skipped
		{[]string{"b; b=3"}, "b", "3", true},
		{[]string{"a=1", "b=2"}, "b", "2", true},
		{[]string{"b=1", "b=2"}, "b", "1", true},
		{[]string{";;; ;b=4;"}, "b", "4", true},
		{[]string{"B=1"}, "b", "", false},
		{nil, "b", "", false},
		{[]string{""}, "b", "", false},
		{[]string{"=1"}, "", "1", true},
	})
}

func TestQueryParameterValue(t *testing.T) {
	checkLookups(t, "QueryParameterValue", QueryParameterValue, []lookupCase[string]{
		{"a=1", "a", "1", true},
		{"a=1&b=2", "b", "2", true},
		{"b=1&b=2", "b", "1", true},
		{"b", "b", "", true},
		{"b=", "b", "", true},
		{"b=%41", "b", "%41", true},
		{"b=x=y", "b", "x=y", true},
		{"&&b=3&", "b", "3", true},
		{"bb=1", "b", "", false},
		{"a=b", "b", "", false},
		{"", "b", "", false},
		{"b;c=1", "b", "", false},
	})
}

func TestCompileHashPolicyErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy config.HashPolicy
		want   string
	}{
		{"no kind", config.HashPolicy{}, "route.hash_policy[0]: exactly one of header, cookie, connection_properties and query_parameter is required, found 0"},
		{"two kinds", config.HashPolicy{Header: &config.HashPolicyHeader{HeaderName: "a"}, QueryParameter: &config.HashPolicyQueryParameter{Name: "b"}}, "found 2"},
		{"bad header", header("a b"), `route.hash_policy[0].header.header_name: "a b" is not a valid header name`},
		{"cookie name", cookie(""), "route.hash_policy[0].cookie.name: required"},
		{"query name", query(""), "route.hash_policy[0].query_parameter.name: required"},
		{"source ip false", config.HashPolicy{ConnectionProperties: &config.HashPolicyConnectionProperties{}}, "source_ip: must be true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileHashPolicy([]config.HashPolicy{tt.policy}, "route")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if p, err := compileHashPolicy(nil, "route"); p != nil || err != nil {
		t.Errorf("no hash_policy: %v, %v; want nil, nil", p, err)
	}
}

// TestRouteHashPolicyCompiled checks that a route table carries the
// route's hash policy.
func TestRouteHashPolicyCompiled(t *testing.T) {
	tbl := mustTable(t, []config.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []config.Route{
		{Match: config.RouteMatch{Prefix: sp("/h")}, Route: &config.RouteAction{Cluster: "c", HashPolicy: []config.HashPolicy{header("x-user")}}},
		{Match: config.RouteMatch{Prefix: sp("/")}, Route: &config.RouteAction{Cluster: "c"}},
	}}})
	routes := tbl.VirtualHosts()[0].Routes()
	if routes[0].Hash == nil || routes[1].Hash != nil {
		t.Fatalf("Hash = %v, %v; want a policy on the first route only", routes[0].Hash, routes[1].Hash)
	}
	if h, ok, _ := routes[0].Hash.Hash(hashRequest("/h", http.Header{"X-User": {"bob"}}), HashInput{}); !ok || h != xx("bob") {
		t.Errorf("Hash = %#x, %v", h, ok)
	}
}

// TestHashPolicyAllocs: computing a hash allocates nothing, unless a
// cookie is generated (and a header repeated more than eight times).
func TestHashPolicyAllocs(t *testing.T) {
	p := mustHashPolicy(t, header("x-user"), header("x-multi"), cookie("s"), query("q"), sourceIP(), header(":path"))
	r := hashRequest("/a?z=1&q=2", http.Header{"X-User": {"alice"}, "X-Multi": {"c", "a", "b"}, "Cookie": {"t=1; s=abc"}})
	in := HashInput{ClientAddress: netip.MustParseAddr("2001:db8::7")}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok, _ := p.Hash(r, in); !ok {
			t.Fatal("no hash")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per hash, want 0", allocs)
	}
}

func BenchmarkHashPolicy(b *testing.B) {
	p := mustHashPolicy(b, header("x-user"), cookie("s"), sourceIP())
	r := hashRequest("/a?q=2", http.Header{"X-User": {"alice"}, "Cookie": {"t=1; s=abc"}})
	in := HashInput{ClientAddress: netip.MustParseAddr("192.0.2.1")}
	b.ReportAllocs()
	for b.Loop() {
		p.Hash(r, in)
	}
}

// refCookieValue is a straightforward reading of Envoy's parseCookieValue,
// for the fuzz target to compare against.
func refCookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for _, s := range strings.Split(line, ";") {
			if s == "" {
				continue
			}
			eq := strings.IndexByte(s, '=')
			if eq < 0 {
				continue
			}
			first := 0
			for first < len(s) && s[first] == ' ' {
				first++
			}
			if s[first:eq] != name {
				continue
			}
			v := s[eq+1:]
			if len(v) >= 2 && strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// FuzzCookieValue compares the allocation-free cookie parser with a
// straightforward one on arbitrary Cookie headers.
func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; session=\"xyz\"; b=2", "x=1", "session")
	f.Add(";;; ;b=4;", "", "b")
	f.Add("  =", "\"\"=\"", "")
	f.Add("s=\"", "s", "s")
	f.Fuzz(func(t *testing.T, line1, line2, name string) {
		lines := []string{line1, line2}
		got, found := CookieValue(lines, name)
		want, wantFound := refCookieValue(lines, name)
		if got != want || found != wantFound {
			t.Fatalf("CookieValue(%q, %q) = %q, %v; reference %q, %v", lines, name, got, found, want, wantFound)
		}
		if found && !strings.Contains(line1+line2, got) {
			t.Fatalf("value %q is not in the header", got)
		}
	})
}

// FuzzQueryParameterValue compares the allocation-free query scan with a
// transcription of Envoy's index-based loop on arbitrary raw queries.
func FuzzQueryParameterValue(f *testing.F) {
	f.Add("a=1&user=bob&user=eve", "user")
	f.Add("&&user&=", "user")
	f.Add("user=%zz", "")
	f.Fuzz(func(t *testing.T, rawQuery, name string) {
		got, found := QueryParameterValue(rawQuery, name)
		// Envoy's parseParameters, index by index: a trailing '&' starts
		// no empty parameter.
		var want string
		var wantFound bool
		for start := 0; start < len(rawQuery); {
			end := strings.IndexByte(rawQuery[start:], '&')
			if end < 0 {
				end = len(rawQuery)
			} else {
				end += start
			}
			param := rawQuery[start:end]
			k, v := param, ""
			if eq := strings.IndexByte(param, '='); eq >= 0 {
				k, v = param[:eq], param[eq+1:]
			}
			if k == name {
				want, wantFound = v, true
				break
			}
			start = end + 1
		}
		if got != want || found != wantFound {
			t.Fatalf("QueryParameterValue(%q, %q) = %q, %v; reference %q, %v", rawQuery, name, got, found, want, wantFound)
		}
	})
}
