package config

import (
	"reflect"
	"testing"
	"time"
)

// withClusters adds a second cluster "shadow" to minimal.
func withShadowCluster(src string) string {
	return src + "  - name: shadow\n    endpoints: [{address: 127.0.0.1:8081}]\n"
}

func TestMirrorPolicyDefaults(t *testing.T) {
	c := mustParse(t, withShadowCluster(edit(t, "route: {cluster: c}",
		"route: {cluster: c, request_mirror_policies: [{cluster: shadow}, {cluster: shadow, max_body_bytes: 0, runtime_fraction: {default_value: {numerator: 5}}}]}")))
	ps := c.Listeners[0].VirtualHosts[0].Routes[0].Route.RequestMirrorPolicies
	if len(ps) != 2 {
		t.Fatalf("policies = %+v", ps)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"max_body_bytes default", *ps[0].MaxBodyBytes, DefaultMirrorMaxBodyBytes},
		{"runtime_fraction absent (every request)", ps[0].RuntimeFraction, (*RuntimeFractionalPercent)(nil)},
		{"host suffix on by default", ps[0].DisableShadowHostSuffixAppend, false},
		{"explicit max_body_bytes 0 kept", *ps[1].MaxBodyBytes, 0},
		{"denominator default", ps[1].RuntimeFraction.DefaultValue.Denominator, "HUNDRED"},
		{"numerator", ps[1].RuntimeFraction.DefaultValue.Numerator, 5},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestFaultDefaults(t *testing.T) {
	c := mustParse(t, edit(t, "route: {cluster: c}",
		"route: {cluster: c}\n            fault: {abort: {http_status: 503, percentage: {numerator: 10}}, delay: {fixed_delay: 50ms, percentage: {numerator: 1, denominator: MILLION}}}"))
	f := c.Listeners[0].VirtualHosts[0].Routes[0].Fault
	if f == nil || f.Abort == nil || f.Delay == nil {
		t.Fatalf("fault = %+v", f)
	}
	if got := f.Abort.Percentage.Denominator; got != "HUNDRED" {
		t.Errorf("abort denominator = %q, want HUNDRED", got)
	}
	if got := f.Delay.Percentage.Denominator; got != "MILLION" {
		t.Errorf("delay denominator = %q, want MILLION", got)
	}
	if got := f.Delay.FixedDelay.D(); got != 50*time.Millisecond {
		t.Errorf("fixed_delay = %v", got)
	}
	if f.MaxActiveFaults != nil {
		t.Errorf("max_active_faults = %d, want absent (unlimited)", *f.MaxActiveFaults)
	}
	c = mustParse(t, edit(t, "route: {cluster: c}",
		"route: {cluster: c}\n            fault: {abort: {header_abort: {}, percentage: {numerator: 100}}, delay: {header_delay: {}, percentage: {numerator: 100}}, max_active_faults: 0}"))
	f = c.Listeners[0].VirtualHosts[0].Routes[0].Fault
	if f.Abort.HeaderAbort == nil || f.Delay.HeaderDelay == nil || f.MaxActiveFaults == nil || *f.MaxActiveFaults != 0 {
		t.Errorf("header-controlled fault = %+v abort %+v delay %+v", f, f.Abort, f.Delay)
	}
}

func TestDenominatorValue(t *testing.T) {
	for name, want := range map[string]int{"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000, "": 0, "hundred": 0} {
		if got := DenominatorValue(name); got != want {
			t.Errorf("DenominatorValue(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestShadowFaultErrors(t *testing.T) {
	const route = "route: {cluster: c}"
	// Line 10 holds the route; a fault goes on line 11, column 13.
	fault := func(f string) string {
		return edit(t, route, route+"\n            fault: "+f)
	}
	mirror := func(p string) string {
		return withShadowCluster(edit(t, route, "route: {cluster: c, request_mirror_policies: ["+p+"]}"))
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"mirror: unknown cluster", mirror("{cluster: nope}"), []string{
			`test.yaml:10:69: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster: unknown cluster "nope"; known clusters: c, shadow`}},
		{"mirror: cluster required", mirror("{max_body_bytes: 10}"), []string{
			`test.yaml:10:59: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster: required: the cluster that receives the shadow requests`}},
		{"mirror: negative max_body_bytes", mirror("{cluster: shadow, max_body_bytes: -1}"), []string{
			`test.yaml:10:93: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0].max_body_bytes: must not be negative (0 mirrors only requests without a body), got -1`}},
		{"mirror: bad denominator", mirror("{cluster: shadow, runtime_fraction: {default_value: {numerator: 1, denominator: THOUSAND}}}"), []string{
			`test.yaml:10:139: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0].runtime_fraction.default_value.denominator: must be one of HUNDRED, TEN_THOUSAND, MILLION; got "THOUSAND"`}},
		{"mirror: numerator above denominator", mirror("{cluster: shadow, runtime_fraction: {default_value: {numerator: 101}}}"), []string{
			`test.yaml:10:123: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0].runtime_fraction.default_value.numerator: must be from 0 to 100 (the denominator HUNDRED), got 101`}},
		{"mirror: runtime_fraction without default_value", mirror("{cluster: shadow, runtime_fraction: {}}"), []string{
			`test.yaml:10:95: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0].runtime_fraction.default_value: required: {numerator: N, denominator: HUNDRED|TEN_THOUSAND|MILLION}`}},
		{"mirror: unknown field", mirror("{cluster: shadow, fraction: 5}"), []string{
			`test.yaml:10:77: listeners[0].virtual_hosts[0].routes[0].route.request_mirror_policies[0]: unknown field "fraction"; allowed: cluster, disable_shadow_host_suffix_append, max_body_bytes, runtime_fraction`}},
		{"fault: empty", fault("{}"), []string{
			`test.yaml:11:20: listeners[0].virtual_hosts[0].routes[0].fault: at least one of abort or delay is required`}},
		{"fault: abort without status", fault("{abort: {percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:28: listeners[0].virtual_hosts[0].routes[0].fault.abort: exactly one of http_status or header_abort is required`}},
		{"fault: abort with both", fault("{abort: {http_status: 503, header_abort: {}, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:28: listeners[0].virtual_hosts[0].routes[0].fault.abort: exactly one of http_status or header_abort is required; got both`}},
		{"fault: abort status out of range", fault("{abort: {http_status: 600, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:42: listeners[0].virtual_hosts[0].routes[0].fault.abort.http_status: must be an HTTP status from 200 to 599, got 600`}},
		{"fault: abort status 1xx", fault("{abort: {http_status: 100, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:42: listeners[0].virtual_hosts[0].routes[0].fault.abort.http_status: must be an HTTP status from 200 to 599, got 100`}},
		{"fault: abort percentage required", fault("{abort: {http_status: 503}}"), []string{
			`test.yaml:11:28: listeners[0].virtual_hosts[0].routes[0].fault.abort.percentage: required: {numerator: N, denominator: HUNDRED|TEN_THOUSAND|MILLION}`}},
		{"fault: delay without duration", fault("{delay: {percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:28: listeners[0].virtual_hosts[0].routes[0].fault.delay: exactly one of fixed_delay or header_delay is required`}},
		{"fault: delay with both", fault("{delay: {fixed_delay: 1s, header_delay: {}, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:28: listeners[0].virtual_hosts[0].routes[0].fault.delay: exactly one of fixed_delay or header_delay is required; got both`}},
		{"fault: zero delay", fault("{delay: {fixed_delay: 0s, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:42: listeners[0].virtual_hosts[0].routes[0].fault.delay.fixed_delay: must be greater than 0`}},
		{"fault: negative delay", fault("{delay: {fixed_delay: -1s, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:42: listeners[0].virtual_hosts[0].routes[0].fault.delay.fixed_delay: must not be negative, got -1s`}},
		{"fault: delay numerator above TEN_THOUSAND", fault("{delay: {fixed_delay: 1s, percentage: {numerator: 10001, denominator: TEN_THOUSAND}}}"), []string{
			`test.yaml:11:70: listeners[0].virtual_hosts[0].routes[0].fault.delay.percentage.numerator: must be from 0 to 10000 (the denominator TEN_THOUSAND), got 10001`}},
		{"fault: negative numerator", fault("{delay: {fixed_delay: 1s, percentage: {numerator: -1}}}"), []string{
			`test.yaml:11:70: listeners[0].virtual_hosts[0].routes[0].fault.delay.percentage.numerator: must be from 0 to 100 (the denominator HUNDRED), got -1`}},
		{"fault: negative max_active_faults", fault("{abort: {http_status: 503, percentage: {numerator: 1}}, max_active_faults: -1}"), []string{
			`test.yaml:11:95: listeners[0].virtual_hosts[0].routes[0].fault.max_active_faults: must not be negative (absent means unlimited), got -1`}},
		{"fault: header_abort is an empty message", fault("{abort: {header_abort: {status: 503}, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:44: listeners[0].virtual_hosts[0].routes[0].fault.abort.header_abort: unknown field "status"; allowed: `}},
		{"fault: on a direct response", edit(t, route, "direct_response: {status: 200}\n            fault: {abort: {http_status: 503, percentage: {numerator: 1}}}"), []string{
			`test.yaml:11:20: listeners[0].virtual_hosts[0].routes[0].fault: only allowed on routes with a route action: the fault filter runs just before the router`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrs(t, tt.src, tt.want) })
	}
}

// TestShadowFaultRoundTrip: a config dump (YAML) of mirror policies and
// faults parses back to the same config, header_abort: {} included.
func TestShadowFaultRoundTrip(t *testing.T) {
	c := mustParse(t, withShadowCluster(edit(t, "route: {cluster: c}",
		"route: {cluster: c, request_mirror_policies: [{cluster: shadow, runtime_fraction: {default_value: {numerator: 7, denominator: MILLION}}}]}\n"+
			"            fault: {abort: {header_abort: {}, percentage: {numerator: 100}}, delay: {fixed_delay: 20ms, percentage: {numerator: 5}}, max_active_faults: 3}")))
	out, c2 := roundTrip(t, c)
	if f := c2.Listeners[0].VirtualHosts[0].Routes[0].Fault; f == nil || f.Abort.HeaderAbort == nil {
		t.Errorf("header_abort lost in the round trip:\n%s", out)
	}
}
