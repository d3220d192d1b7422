package ratelimit

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// FuzzDescriptors builds descriptors from arbitrary request data (header
// values, :authority, :path, the client address) with every action kind,
// and checks what must hold whatever the request: no panic, no empty
// descriptor, request_headers entries carry the header's first value or
// skip it, a remote_address entry is the client address in its canonical
// form, and header_value_match agrees with its matcher.
func FuzzDescriptors(f *testing.F) {
	f.Add("alice", "api.example.com", "/v1/items?id=7", "10.1.2.3", true)
	f.Add("", "", "", "", false)
	f.Add("x\x00y", "[::1]:8080", "/%zz", "::ffff:192.0.2.1", true)
	f.Add("a,b", "h", "*", "fe80::1%eth0", false)
	policies, err := NewPolicies([]config.RateLimit{
		{Actions: []config.RateLimitAction{{RequestHeaders: &config.RequestHeadersAction{HeaderName: "x-user", DescriptorKey: "user"}}}},
		{Actions: []config.RateLimitAction{
			{RequestHeaders: &config.RequestHeadersAction{HeaderName: "x-user", DescriptorKey: "user", SkipIfAbsent: true}},
			{RequestHeaders: &config.RequestHeadersAction{HeaderName: ":authority", DescriptorKey: "host"}},
			{RequestHeaders: &config.RequestHeadersAction{HeaderName: ":path", DescriptorKey: "path"}},
		}},
		{Actions: []config.RateLimitAction{{RemoteAddress: &config.EmptyAction{}}}},
		{Actions: []config.RateLimitAction{{HeaderValueMatch: &config.HeaderValueMatchAction{DescriptorKey: "vip", DescriptorValue: "yes", Headers: []config.HeaderMatcher{{Name: "x-user", ExactMatch: ptr("alice")}}}}}},
		{Actions: []config.RateLimitAction{{GenericKey: &config.GenericKeyAction{DescriptorKey: "generic_key", DescriptorValue: "all"}}, {DestinationCluster: &config.EmptyAction{}}}},
	}, exactMatcher, "rate_limits")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, user, host, path, remote string, hasUser bool) {
		req := &http.Request{Method: "GET", Host: host, RequestURI: path, Header: http.Header{}}
		if hasUser {
			req.Header["X-User"] = []string{user, "second"}
		}
		addr, _ := netip.ParseAddr(remote)
		descs := Descriptors(policies, &Attributes{Request: req, RemoteAddress: addr, DestinationCluster: "backend"})
		found := map[string]Descriptor{}
		for _, d := range descs {
			if len(d) == 0 {
				t.Fatalf("empty descriptor in %v", descs)
			}
			found[d[0].Key] = d
			for _, e := range d {
				switch e.Key {
				case "user":
					if !hasUser || e.Value != user {
						t.Fatalf("user entry %q for header %q (present %v)", e.Value, user, hasUser)
					}
				case "remote_address":
					got, err := netip.ParseAddr(e.Value)
					if err != nil || got != addr.Unmap() {
						t.Fatalf("remote_address %q for %q", e.Value, remote)
					}
				case "host":
					if e.Value != host {
						t.Fatalf("host %q, want %q", e.Value, host)
					}
				}
			}
		}
		if _, ok := found["user"]; ok != hasUser {
			t.Fatalf("user descriptor present %v, header present %v", ok, hasUser)
		}
		if _, ok := found["remote_address"]; ok != addr.IsValid() {
			t.Fatalf("remote_address descriptor present %v for %q", ok, remote)
		}
		if _, ok := found["vip"]; ok != (hasUser && user == "alice") {
			t.Fatalf("header_value_match present %v for user %q", ok, user)
		}
		if d := found["generic_key"]; len(d) != 2 || d[1] != (Entry{"destination_cluster", "backend"}) {
			t.Fatalf("generic descriptor %v", d)
		}
	})
}
