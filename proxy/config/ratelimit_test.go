package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// withRLS adds an h2c cluster "rls" and a rate_limit_service on the
// listener to src (an edit of minimal).
func withRLS(t *testing.T, service string, pairs ...string) string {
	t.Helper()
	pairs = append(pairs, "stat_prefix: l", "stat_prefix: l\n    rate_limit_service: "+service)
	return edit(t, pairs...) + "  - name: rls\n    protocol: h2c\n    endpoints: [{address: 127.0.0.1:8081}]\n"
}

func TestRateLimitDefaults(t *testing.T) {
	c := mustParse(t, withRLS(t, "{cluster: rls, domain: d}",
		"domains: [\"*\"]", "domains: [\"*\"]\n        local_rate_limit: {token_bucket: {max_tokens: 5, fill_interval: 1s}}\n        rate_limits: [{actions: [{generic_key: {descriptor_value: v}}, {header_value_match: {descriptor_value: m, headers: [{name: x, present_match: true}]}}]}]",
		"route: {cluster: c}", "route: {cluster: c, rate_limits: [{actions: [{remote_address: {}}, {destination_cluster: {}}]}]}\n            local_rate_limit: {stat_prefix: r, token_bucket: {max_tokens: 1, tokens_per_fill: 3, fill_interval: 50ms}, status: 503, filter_enabled: 0}",
	))
	l := c.Listeners[0]
	s := l.RateLimitService
	vh := l.VirtualHosts[0]
	vl := vh.LocalRateLimit
	rl := vh.Routes[0].LocalRateLimit
	ga := vh.RateLimits[0].Actions
	tests := []struct {
		name      string
		got, want any
	}{
		{"service timeout", s.Timeout.D(), 20 * time.Millisecond},
		{"service failure_mode_deny", s.FailureModeDeny, false},
		{"service x-ratelimit headers", s.EnableXRateLimitHeaders, "DISABLE_X_RATELIMIT_HEADERS"},
		{"service rate_limited_status", s.RateLimitedStatus, 429},
		{"service status_on_error", s.StatusOnError, 500},
		{"vhost stat_prefix", vl.StatPrefix, "http_local_rate_limiter"},
		{"vhost tokens_per_fill", vl.TokenBucket.TokensPerFill, 1},
		{"vhost status", vl.Status, 429},
		{"vhost filter_enabled", *vl.FilterEnabled, 100.0},
		{"vhost filter_enforced", *vl.FilterEnforced, 100.0},
		{"vhost x-ratelimit headers", vl.EnableXRateLimitHeaders, "DISABLE_X_RATELIMIT_HEADERS"},
		{"route stat_prefix kept", rl.StatPrefix, "r"},
		{"route status kept", rl.Status, 503},
		{"route filter_enabled 0 kept", *rl.FilterEnabled, 0.0},
		{"generic_key descriptor_key", ga[0].GenericKey.DescriptorKey, "generic_key"},
		{"header_value_match descriptor_key", ga[1].HeaderValueMatch.DescriptorKey, "header_match"},
		{"header_value_match expect_match", *ga[1].HeaderValueMatch.ExpectMatch, true},
		{"route actions", len(vh.Routes[0].Route.RateLimits[0].Actions), 2},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// tokens_per_fill: 0 written in the file is kept, and refused.
	errs := parseErrs(t, withRLS(t, "{cluster: rls, domain: d}",
		"route: {cluster: c}", "route: {cluster: c}\n            local_rate_limit: {token_bucket: {max_tokens: 1, tokens_per_fill: 0, fill_interval: 1s}}"))
	want := "listeners[0].virtual_hosts[0].routes[0].local_rate_limit.token_bucket.tokens_per_fill: must be at least 1, got 0"
	if len(errs) != 1 || !strings.Contains(errs[0], want) {
		t.Errorf("explicit tokens_per_fill 0: errors %q, want one with %q", errs, want)
	}
}

func TestRateLimitErrors(t *testing.T) {
	const route = "routes[0]"
	tests := []struct {
		name string
		src  string
		want []string // each must appear in one error, in order
	}{
		{
			"rate_limits without a service",
			edit(t, "route: {cluster: c}", "route: {cluster: c, rate_limits: [{actions: [{remote_address: {}}]}]}"),
			[]string{"test.yaml:2:5: listeners[0].rate_limit_service: required: rate_limits are configured under this listener but no rate_limit_service says where to send their descriptors"},
		},
		{
			"service cluster unknown, domain missing, timeout 0",
			withRLS(t, "{cluster: nope, timeout: 0s}"),
			[]string{
				"listeners[0].rate_limit_service.domain: required",
				`listeners[0].rate_limit_service.cluster: unknown cluster "nope"; known clusters: c, rls`,
				"listeners[0].rate_limit_service.timeout: must be greater than 0, got 0s",
			},
		},
		{
			"service cluster is not h2c",
			withRLS(t, "{cluster: c, domain: d}"),
			[]string{`test.yaml:5:35: listeners[0].rate_limit_service.cluster: cluster "c" has protocol "http1"; the rate-limit service speaks gRPC, which needs a cluster with protocol: h2c`},
		},
		{
			"service enums and statuses",
			withRLS(t, "{cluster: rls, domain: d, enable_x_ratelimit_headers: DRAFT_VERSION_04, rate_limited_status: 200, status_on_error: 600}"),
			[]string{
				`listeners[0].rate_limit_service.enable_x_ratelimit_headers: must be one of DISABLE_X_RATELIMIT_HEADERS, DRAFT_VERSION_03; got "DRAFT_VERSION_04"`,
				"listeners[0].rate_limit_service.rate_limited_status: must be an HTTP error status from 400 to 599, got 200",
				"listeners[0].rate_limit_service.status_on_error: must be an HTTP error status from 400 to 599, got 600",
			},
		},
		{
			"local bucket missing",
			edit(t, "route: {cluster: c}", "route: {cluster: c}\n            local_rate_limit: {}"),
			[]string{
				route + ".local_rate_limit.token_bucket.max_tokens: required: must be at least 1, got 0",
				route + ".local_rate_limit.token_bucket.fill_interval: required: must be at least 50ms (Envoy's bound), got 0s",
			},
		},
		{
			"local bucket bounds and enums",
			edit(t, "domains: [\"*\"]", "domains: [\"*\"]\n        local_rate_limit: {stat_prefix: a.b, token_bucket: {max_tokens: 1, fill_interval: 10ms}, status: 200, filter_enabled: 101, filter_enforced: -1, enable_x_ratelimit_headers: yes, response_headers_to_add: [{key: \"bad key\", value: v}]}"),
			[]string{
				`virtual_hosts[0].local_rate_limit.stat_prefix: "a.b" must be one segment without '.'`,
				"virtual_hosts[0].local_rate_limit.token_bucket.fill_interval: required: must be at least 50ms (Envoy's bound), got 10ms",
				"virtual_hosts[0].local_rate_limit.status: must be an HTTP error status from 400 to 599, got 200",
				"virtual_hosts[0].local_rate_limit.filter_enabled: must be a percentage from 0 to 100, got 101",
				"virtual_hosts[0].local_rate_limit.filter_enforced: must be a percentage from 0 to 100, got -1",
				`virtual_hosts[0].local_rate_limit.enable_x_ratelimit_headers: must be one of DISABLE_X_RATELIMIT_HEADERS, DRAFT_VERSION_03; got "yes"`,
				`virtual_hosts[0].local_rate_limit.response_headers_to_add[0].key: invalid header name "bad key": ' ' is not allowed`,
			},
		},
		{
			"unknown local field suggests",
			edit(t, "route: {cluster: c}", "route: {cluster: c}\n            local_rate_limit: {token_bucket: {max_token: 1, fill_interval: 1s}}"),
			[]string{
				route + ".local_rate_limit.token_bucket.max_tokens: required: must be at least 1, got 0",
				`token_bucket: unknown field "max_token" (did you mean "max_tokens"?); allowed: fill_interval, max_tokens, tokens_per_fill`,
			},
		},
		{
			"actions: none, two kinds, missing fields",
			withRLS(t, "{cluster: rls, domain: d}", "route: {cluster: c}", "route: {cluster: c, rate_limits: [{actions: []}, {actions: [{remote_address: {}, destination_cluster: {}}, {}, {request_headers: {header_name: \"\"}}, {generic_key: {}}, {header_value_match: {headers: []}}]}]}"),
			[]string{
				route + ".route.rate_limits[0].actions: at least one action is required; allowed: request_headers, remote_address, generic_key, destination_cluster, source_cluster, header_value_match",
				route + ".route.rate_limits[1].actions[0]: exactly one of request_headers, remote_address, generic_key, destination_cluster, source_cluster, header_value_match is required; got destination_cluster and remote_address",
				route + ".route.rate_limits[1].actions[1]: exactly one of request_headers, remote_address, generic_key, destination_cluster, source_cluster, header_value_match is required",
				route + ".route.rate_limits[1].actions[2].request_headers.descriptor_key: required",
				route + ".route.rate_limits[1].actions[2].request_headers.header_name: required",
				route + ".route.rate_limits[1].actions[3].generic_key.descriptor_value: required",
				route + ".route.rate_limits[1].actions[4].header_value_match.descriptor_value: required",
				route + ".route.rate_limits[1].actions[4].header_value_match.headers: at least one header matcher is required",
			},
		},
		{
			"actions: pseudo-header, header matcher, source_cluster without node.cluster",
			withRLS(t, "{cluster: rls, domain: d}", "domains: [\"*\"]", "domains: [\"*\"]\n        rate_limits: [{actions: [{request_headers: {header_name: \":scheme\", descriptor_key: k}}, {header_value_match: {descriptor_value: v, headers: [{name: x, safe_regex_match: \"(\"}]}}, {source_cluster: {}}]}]"),
			[]string{
				`virtual_hosts[0].rate_limits[0].actions[0].request_headers.header_name: unknown pseudo-header ":scheme"; allowed: :authority, :method, :path`,
				`virtual_hosts[0].rate_limits[0].actions[1].header_value_match.headers[0].safe_regex_match: invalid regular expression "("`,
				"virtual_hosts[0].rate_limits[0].actions[2].source_cluster: needs node.cluster",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n got: %s\nwant: %s", len(got), len(tt.want), strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("error %d:\n got: %s\nwant: …%s…", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestRateLimitValid parses a configuration that uses every rate-limiting
// field, with node.cluster for source_cluster.
func TestRateLimitValid(t *testing.T) {
	src := withRLS(t, "{cluster: rls, domain: d, timeout: 50ms, failure_mode_deny: true, enable_x_ratelimit_headers: DRAFT_VERSION_03, rate_limited_status: 503, status_on_error: 503}",
		"domains: [\"*\"]", "domains: [\"*\"]\n        local_rate_limit: {token_bucket: {max_tokens: 100, tokens_per_fill: 10, fill_interval: 100ms}, enable_x_ratelimit_headers: DRAFT_VERSION_03, filter_enforced: 50, response_headers_to_add: [{key: x-limited, value: \"yes\"}]}\n        rate_limits: [{actions: [{source_cluster: {}}, {request_headers: {header_name: \":authority\", descriptor_key: host, skip_if_absent: true}}]}]",
		"route: {cluster: c}", "route: {cluster: c, rate_limits: [{actions: [{header_value_match: {descriptor_value: v, expect_match: false, headers: [{name: x, exact_match: a}]}}]}]}",
	) + "node: {cluster: front}\n"
	c := mustParse(t, src)
	if s := c.Listeners[0].RateLimitService; !s.FailureModeDeny || s.Timeout.D() != 50*time.Millisecond || s.RateLimitedStatus != 503 {
		t.Errorf("service = %+v", s)
	}
	if a := c.Listeners[0].VirtualHosts[0].Routes[0].Route.RateLimits[0].Actions[0].HeaderValueMatch; *a.ExpectMatch {
		t.Errorf("expect_match false was not kept: %+v", a)
	}
	if h := c.Listeners[0].VirtualHosts[0].LocalRateLimit.ResponseHeadersToAdd[0]; h.Append == nil || !*h.Append {
		t.Errorf("response_headers_to_add append default = %v, want true", h.Append)
	}
}
