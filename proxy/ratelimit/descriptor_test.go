package ratelimit

import (
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// exactMatcher is a stand-in for package route's header matchers: exact
// and present matches on ordinary headers.
func exactMatcher(hs []config.HeaderMatcher) (RequestMatcher, error) {
	return func(r *http.Request) bool {
		for _, h := range hs {
			v, ok := r.Header[http.CanonicalHeaderKey(h.Name)]
			switch {
			case h.PresentMatch != nil:
				if ok != *h.PresentMatch {
					return false
				}
			case !ok || h.ExactMatch == nil || v[0] != *h.ExactMatch:
				return false
			}
		}
		return true
	}, nil
}

func ptr[T any](v T) *T { return &v }

func TestDescriptors(t *testing.T) {
	reqHeader := func(name, key string, skip bool) config.RateLimitAction {
		return config.RateLimitAction{RequestHeaders: &config.RequestHeadersAction{HeaderName: name, DescriptorKey: key, SkipIfAbsent: skip}}
	}
	remote := config.RateLimitAction{RemoteAddress: &config.EmptyAction{}}
	generic := func(key, value string) config.RateLimitAction {
		return config.RateLimitAction{GenericKey: &config.GenericKeyAction{DescriptorKey: key, DescriptorValue: value}}
	}
	dest := config.RateLimitAction{DestinationCluster: &config.EmptyAction{}}
	source := config.RateLimitAction{SourceCluster: &config.EmptyAction{}}
	match := func(expect bool, hs ...config.HeaderMatcher) config.RateLimitAction {
		return config.RateLimitAction{HeaderValueMatch: &config.HeaderValueMatchAction{DescriptorValue: "matched", ExpectMatch: &expect, Headers: hs}}
	}
	rl := func(actions ...config.RateLimitAction) config.RateLimit { return config.RateLimit{Actions: actions} }

	req, _ := http.NewRequest("POST", "http://api.example.com/v1/items?id=7", nil)
	req.Header.Set("X-User", "alice")
	req.Header.Add("X-Tenant", "t1")
	req.Header.Add("X-Tenant", "t2")
	req.Header["X-Empty"] = []string{""}
	attrs := &Attributes{Request: req, RemoteAddress: netip.MustParseAddr("::ffff:10.1.2.3"), DestinationCluster: "backend", SourceCluster: "front"}

	tests := []struct {
		name  string
		rls   []config.RateLimit
		attrs *Attributes
		want  []Descriptor
	}{
		{"request header", []config.RateLimit{rl(reqHeader("x-user", "user", false))}, attrs, []Descriptor{{{"user", "alice"}}}},
		{"first of a repeated header", []config.RateLimit{rl(reqHeader("X-Tenant", "tenant", false))}, attrs, []Descriptor{{{"tenant", "t1"}}}},
		{"empty header is present", []config.RateLimit{rl(reqHeader("x-empty", "e", false))}, attrs, []Descriptor{{{"e", ""}}}},
		{"pseudo-headers", []config.RateLimit{rl(reqHeader(":authority", "host", false), reqHeader(":method", "m", false), reqHeader(":path", "p", false))}, attrs,
			[]Descriptor{{{"host", "api.example.com"}, {"m", "POST"}, {"p", "/v1/items?id=7"}}}},
		{"missing header drops the descriptor", []config.RateLimit{rl(generic("generic_key", "g"), reqHeader("x-missing", "k", false))}, attrs, nil},
		{"missing header with skip_if_absent drops the entry", []config.RateLimit{rl(generic("generic_key", "g"), reqHeader("x-missing", "k", true))}, attrs, []Descriptor{{{"generic_key", "g"}}}},
		{"all entries skipped: no descriptor", []config.RateLimit{rl(reqHeader("x-missing", "k", true))}, attrs, nil},
		{"remote address, IPv4-mapped unmapped", []config.RateLimit{rl(remote)}, attrs, []Descriptor{{{"remote_address", "10.1.2.3"}}}},
		{"no remote address drops the descriptor", []config.RateLimit{rl(remote)}, &Attributes{Request: req}, nil},
		{"generic key with default key", []config.RateLimit{rl(generic("", "v"))}, attrs, []Descriptor{{{"generic_key", "v"}}}},
		{"destination and source cluster", []config.RateLimit{rl(dest, source)}, attrs, []Descriptor{{{"destination_cluster", "backend"}, {"source_cluster", "front"}}}},
		{"header_value_match matched", []config.RateLimit{rl(match(true, config.HeaderMatcher{Name: "x-user", ExactMatch: ptr("alice")}))}, attrs, []Descriptor{{{"header_match", "matched"}}}},
		{"header_value_match unmatched drops", []config.RateLimit{rl(match(true, config.HeaderMatcher{Name: "x-user", ExactMatch: ptr("bob")}))}, attrs, nil},
		{"header_value_match expect_match false", []config.RateLimit{rl(match(false, config.HeaderMatcher{Name: "x-user", ExactMatch: ptr("bob")}))}, attrs, []Descriptor{{{"header_match", "matched"}}}},
		{"one descriptor per entry, in order, failed ones left out",
			[]config.RateLimit{rl(remote), rl(reqHeader("x-missing", "k", false)), rl(dest, reqHeader("x-user", "user", false))}, attrs,
			[]Descriptor{{{"remote_address", "10.1.2.3"}}, {{"destination_cluster", "backend"}, {"user", "alice"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := NewPolicies(tt.rls, exactMatcher, "rate_limits")
			if err != nil {
				t.Fatal(err)
			}
			got := Descriptors(ps, tt.attrs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("descriptors = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewPoliciesErrors(t *testing.T) {
	tests := []struct {
		name string
		rls  []config.RateLimit
		want string
	}{
		{"no actions", []config.RateLimit{{}}, "rate_limits[0].actions: at least one action is required"},
		{"no kind", []config.RateLimit{{Actions: []config.RateLimitAction{{}}}}, "rate_limits[0].actions[0].exactly one action kind is required, found 0"},
		{"two kinds", []config.RateLimit{{Actions: []config.RateLimitAction{{RemoteAddress: &config.EmptyAction{}, DestinationCluster: &config.EmptyAction{}}}}}, "found 2"},
		{"unknown pseudo-header", []config.RateLimit{{Actions: []config.RateLimitAction{{RequestHeaders: &config.RequestHeadersAction{HeaderName: ":scheme", DescriptorKey: "k"}}}}}, `unknown pseudo-header ":scheme"`},
		{"no descriptor key", []config.RateLimit{{Actions: []config.RateLimitAction{{RequestHeaders: &config.RequestHeadersAction{HeaderName: "x"}}}}}, "request_headers.descriptor_key: required"},
	}
	for _, tt := range tests {
		_, err := NewPolicies(tt.rls, exactMatcher, "rate_limits")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestDescriptorString(t *testing.T) {
	if got := (Descriptor{{"a", "1"}, {"b", "2"}}).String(); got != "(a=1, b=2)" {
		t.Errorf("String = %q", got)
	}
}
