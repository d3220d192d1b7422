package config

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestHashingDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	cl := c.Clusters[0]
	want := RingHashLBConfig{MinimumRingSize: 1024, MaximumRingSize: 8388608, HashFunction: "xx_hash"}
	if cl.RingHashLBConfig != want {
		t.Errorf("ring_hash_lb_config = %+v, want %+v", cl.RingHashLBConfig, want)
	}
	if cl.MaglevLBConfig.TableSize != 65537 {
		t.Errorf("maglev_lb_config.table_size = %d, want 65537", cl.MaglevLBConfig.TableSize)
	}
	if hp := c.Listeners[0].VirtualHosts[0].Routes[0].Route.HashPolicy; hp != nil {
		t.Errorf("hash_policy = %+v, want none", hp)
	}
}

func TestHashingParse(t *testing.T) {
	c := mustParse(t, edit(t,
		"route: {cluster: c}", `route:
              cluster: c
              hash_policy:
                - header: {header_name: x-user}
                - cookie: {name: session, ttl: 1h, path: /}
                  terminal: true
                - connection_properties: {source_ip: true}
                - query_parameter: {name: user}
                - header: {header_name: ":authority"}`,
		"  - name: c\n", "  - name: c\n    lb_policy: maglev\n    maglev_lb_config: {table_size: 131071}\n    ring_hash_lb_config: {minimum_ring_size: 64, maximum_ring_size: 4096, hash_function: murmur_hash_2}\n",
	))
	hp := c.Listeners[0].VirtualHosts[0].Routes[0].Route.HashPolicy
	ttl := Duration(time.Hour)
	want := []HashPolicy{
		{Header: &HashPolicyHeader{HeaderName: "x-user"}},
		{Cookie: &HashPolicyCookie{Name: "session", TTL: &ttl, Path: "/"}, Terminal: true},
		{ConnectionProperties: &HashPolicyConnectionProperties{SourceIP: true}},
		{QueryParameter: &HashPolicyQueryParameter{Name: "user"}},
		{Header: &HashPolicyHeader{HeaderName: ":authority"}},
	}
	if !reflect.DeepEqual(hp, want) {
		t.Errorf("hash_policy = %+v, want %+v", hp, want)
	}
	cl := c.Clusters[0]
	if cl.LBPolicy != "maglev" || cl.MaglevLBConfig.TableSize != 131071 {
		t.Errorf("cluster = %+v", cl)
	}
	if want := (RingHashLBConfig{MinimumRingSize: 64, MaximumRingSize: 4096, HashFunction: "murmur_hash_2"}); cl.RingHashLBConfig != want {
		t.Errorf("ring_hash_lb_config = %+v, want %+v", cl.RingHashLBConfig, want)
	}
}

func TestHashingErrors(t *testing.T) {
	route := func(policy string) string {
		return edit(t, "route: {cluster: c}", "route: {cluster: c, hash_policy: ["+policy+"]}")
	}
	cluster := func(fields string) string {
		return edit(t, "  - name: c\n", "  - name: c\n    "+fields+"\n")
	}
	// at locates an error on line 10, the route, at column col.
	at := func(col int) string {
		return fmt.Sprintf("test.yaml:10:%d: listeners[0].virtual_hosts[0].routes[0].route.hash_policy[0]", col)
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"two kinds", route("{header: {header_name: x-a}, cookie: {name: s}}"),
			[]string{at(47) + ": exactly one of header, cookie, connection_properties or query_parameter is required; got cookie and header"}},
		{"no kind", route("{terminal: true}"),
			[]string{at(47) + ": exactly one of header, cookie, connection_properties or query_parameter is required"}},
		{"header name missing", route("{header: {}}"),
			[]string{at(56) + ".header.header_name: required"}},
		{"header name invalid", route(`{header: {header_name: "x a"}}`),
			[]string{at(70) + `.header.header_name: invalid header name "x a": ' ' is not allowed`}},
		{"unknown pseudo-header", route(`{header: {header_name: ":status"}}`),
			[]string{at(70) + `.header.header_name: unknown pseudo-header ":status" (allowed: :authority, :path, :method, :scheme)`}},
		{"cookie name missing", route("{cookie: {ttl: 1s}}"),
			[]string{at(56) + ".cookie.name: required"}},
		{"cookie path with semicolon", route(`{cookie: {name: s, path: "/a;b"}}`),
			[]string{at(72) + `.cookie.path: "/a;b": a cookie path must not contain ';' or control characters`}},
		{"negative cookie ttl", route("{cookie: {name: s, ttl: -1s}}"),
			[]string{at(71) + ".cookie.ttl: must not be negative, got -1s"}},
		{"source_ip false", route("{connection_properties: {source_ip: false}}"),
			[]string{at(83) + ".connection_properties.source_ip: must be true: the source IP is the only connection property that can be hashed"}},
		{"query parameter name missing", route("{query_parameter: {}}"),
			[]string{at(65) + ".query_parameter.name: required"}},
		{"unknown field", route("{header: {name: x-a}}"),
			[]string{
				at(56) + ".header.header_name: required",
				at(57) + `.header: unknown field "name"; allowed: header_name`,
			}},
		{"table size not prime", cluster("maglev_lb_config: {table_size: 65536}"),
			[]string{"test.yaml:13:36: clusters[0].maglev_lb_config.table_size: must be a prime number (such as 65537, the default, 131071 or 1000003), got 65536"}},
		{"table size too large", cluster("maglev_lb_config: {table_size: 5000101}"),
			[]string{"test.yaml:13:36: clusters[0].maglev_lb_config.table_size: must be a prime from 2 to 5000011, got 5000101"}},
		{"table size zero", cluster("maglev_lb_config: {table_size: 0}"),
			[]string{"test.yaml:13:36: clusters[0].maglev_lb_config.table_size: must be a prime from 2 to 5000011, got 0"}},
		{"minimum ring size zero", cluster("ring_hash_lb_config: {minimum_ring_size: 0}"),
			[]string{"test.yaml:13:46: clusters[0].ring_hash_lb_config.minimum_ring_size: must be from 1 to 8388608, got 0"}},
		{"maximum ring size too large", cluster("ring_hash_lb_config: {maximum_ring_size: 8388609}"),
			[]string{"test.yaml:13:46: clusters[0].ring_hash_lb_config.maximum_ring_size: must be from 1 to 8388608, got 8388609"}},
		{"minimum above maximum", cluster("ring_hash_lb_config: {minimum_ring_size: 4096, maximum_ring_size: 1024}"),
			[]string{"test.yaml:13:71: clusters[0].ring_hash_lb_config.maximum_ring_size: must not be less than minimum_ring_size 4096, got 1024"}},
		{"unknown hash function", cluster("ring_hash_lb_config: {hash_function: XX_HASH}"),
			[]string{`test.yaml:13:42: clusters[0].ring_hash_lb_config.hash_function: must be one of xx_hash, murmur_hash_2; got "XX_HASH"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrs(t, tt.src, tt.want) })
	}
}
