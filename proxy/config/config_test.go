package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hopwatch/hopwatch/tracing/demo"
)

// minimal is the smallest valid configuration. Error tests edit it with
// string replacements so that line numbers stay easy to check by eye:
//
//	 1 listeners:
//	 2   - name: l                 (item at column 5)
//	 3     address: 127.0.0.1:0
//	 4     stat_prefix: l
//	 5     virtual_hosts:
//	 6       - name: vh            (item at column 9)
//	 7         domains: ["*"]
//	 8         routes:
//	 9           - match: {prefix: /}   (item at column 13)
//	10             route: {cluster: c}
//	11 clusters:
//	12   - name: c
//	13     endpoints: [{address: 127.0.0.1:8080}]
const minimal = `listeners:
  - name: l
    address: 127.0.0.1:0
    stat_prefix: l
    virtual_hosts:
      - name: vh
        domains: ["*"]
        routes:
          - match: {prefix: /}
            route: {cluster: c}
clusters:
  - name: c
    endpoints: [{address: 127.0.0.1:8080}]
`

// edit applies old→new replacements to minimal, failing the test if an old
// string is not there (so a case cannot silently test the valid file).
func edit(t testing.TB, pairs ...string) string {
	t.Helper()
	s := minimal
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q not in the minimal config", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func mustParse(t testing.TB, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParseMinimal(t *testing.T) {
	c := mustParse(t, minimal)
	if len(c.Listeners) != 1 || c.Listeners[0].Name != "l" || c.Listeners[0].Address != "127.0.0.1:0" {
		t.Fatalf("listeners = %+v", c.Listeners)
	}
	r := c.Listeners[0].VirtualHosts[0].Routes[0]
	if r.Match.Prefix == nil || *r.Match.Prefix != "/" || r.Route == nil || r.Route.Cluster != "c" {
		t.Fatalf("route = %+v", r)
	}
	if got := c.Clusters[0].Endpoints[0].Address; got != "127.0.0.1:8080" {
		t.Fatalf("endpoint = %q", got)
	}
}

// TestDefaults pins every documented default.
func TestDefaults(t *testing.T) {
	c := mustParse(t, edit(t,
		"route: {cluster: c}", "route: {cluster: c, retry_policy: {retry_on: [5xx]}}",
		"  - name: c\n", "  - name: c\n    tls: {}\n    protocol: http2\n",
		"          - match: {prefix: /}\n", "          - match: {path: /r}\n            redirect: {path_redirect: /x}\n          - match: {prefix: /}\n            request_headers_to_add: [{key: x-a, value: b}]\n",
		"address: 127.0.0.1:0", "address: 127.0.0.1:0\n    tls: {cert_file: testdata/cert.pem, key_file: testdata/key.pem}",
	))
	host := hostNodeID()
	l := c.Listeners[0]
	vh := l.VirtualHosts[0]
	redirect := vh.Routes[0].Redirect
	r := vh.Routes[1]
	rp := r.Route.RetryPolicy
	cl := c.Clusters[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"node.id", c.Node.ID, host},
		{"admin.address", c.Admin.Address, "127.0.0.1:9901"},
		{"lifecycle.drain_time", c.Lifecycle.DrainTime.D(), 5 * time.Second},
		{"lifecycle.watch_config", *c.Lifecycle.WatchConfig, true},
		{"protocols", l.Protocols, []string{"http1", "http2"}},
		{"tls.min_version", l.TLS.MinVersion, "1.2"},
		{"max_request_headers_kb", l.Limits.MaxRequestHeadersKB, 60},
		{"max_request_headers_count", l.Limits.MaxRequestHeadersCount, 100},
		{"read_header_timeout", l.Limits.ReadHeaderTimeout.D(), 10 * time.Second},
		{"listener idle_timeout", l.Limits.IdleTimeout.D(), time.Hour},
		{"stream_idle_timeout", l.Limits.StreamIdleTimeout.D(), 5 * time.Minute},
		{"max_connections", l.Limits.MaxConnections, 0},
		{"use_remote_address", *l.UseRemoteAddress, true},
		{"xff_num_trusted_hops", l.XffNumTrustedHops, 0},
		{"request_id.generate", *l.RequestID.Generate, true},
		{"access_log", l.AccessLog, []AccessLog{{Path: "stdout", Format: "json"}}},
		{"server_name", l.ServerName, "hopwatch"},
		{"case_sensitive", *r.Match.CaseSensitive, true},
		{"route timeout", r.Route.Timeout.D(), 15 * time.Second},
		{"route idle_timeout", r.Route.IdleTimeout, (*Duration)(nil)},
		{"per_request_buffer_limit_bytes", *r.Route.MaxReplayBufferBytes, 65536},
		{"num_retries", *rp.NumRetries, 1},
		{"base_interval", rp.RetryBackOff.BaseInterval.D(), 25 * time.Millisecond},
		{"max_interval", rp.RetryBackOff.MaxInterval.D(), 250 * time.Millisecond},
		{"header append", *r.RequestHeadersToAdd[0].Append, true},
		{"redirect response_code", redirect.ResponseCode, 301},
		{"cluster type", cl.Type, "static"},
		{"dns_refresh_rate", cl.DNSRefreshRate.D(), 5 * time.Second},
		{"connect_timeout", cl.ConnectTimeout.D(), 5 * time.Second},
		{"lb_policy", cl.LBPolicy, "round_robin"},
		{"choice_count", cl.LeastRequest.ChoiceCount, 2},
		{"active_request_bias", *cl.LeastRequest.ActiveRequestBias, 1.0},
		{"cluster protocol (explicit)", cl.Protocol, "http2"},
		{"max_idle_connections_per_host", cl.MaxIdleConnectionsPerHost, 1024},
		{"cluster idle_timeout", cl.IdleTimeout.D(), time.Hour},
		{"endpoint weight", cl.Endpoints[0].Weight, 1},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	if got := mustParse(t, minimal).Clusters[0].Protocol; got != "http1" {
		t.Errorf("default cluster protocol = %q, want http1", got)
	}
}

// TestExplicitZeroKept checks that a value written in the file wins over the
// default even when it is the zero value ("0s disables").
func TestExplicitZeroKept(t *testing.T) {
	c := mustParse(t, edit(t,
		"stat_prefix: l", "stat_prefix: l\n    access_log: []\n    limits: {stream_idle_timeout: 0s, idle_timeout: 0s}",
		"route: {cluster: c}", "route: {cluster: c, timeout: 0s}",
	)+"lifecycle: {drain_time: 0s, watch_config: false}\n")
	l := c.Listeners[0]
	if l.AccessLog == nil || len(l.AccessLog) != 0 {
		t.Errorf("access_log = %#v, want empty", l.AccessLog)
	}
	if l.Limits.StreamIdleTimeout != 0 || l.Limits.IdleTimeout != 0 {
		t.Errorf("limits = %+v, want zero timeouts", l.Limits)
	}
	if got := *l.VirtualHosts[0].Routes[0].Route.Timeout; got != 0 {
		t.Errorf("route timeout = %v, want 0", got)
	}
	if c.Lifecycle.DrainTime != 0 || *c.Lifecycle.WatchConfig {
		t.Errorf("lifecycle = %+v", c.Lifecycle)
	}

	// An explicit null means "unset": the default applies.
	c = mustParse(t, minimal+"lifecycle: {drain_time: ~, watch_config: null}\n")
	if c.Lifecycle.DrainTime.D() != DefaultDrainTime || !*c.Lifecycle.WatchConfig {
		t.Errorf("lifecycle with nulls = %+v", c.Lifecycle)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty file", "", []string{"test.yaml: the file is empty; a configuration needs at least one listener"}},
		{"only comments", "# nothing\n", []string{"test.yaml: the file is empty; a configuration needs at least one listener"}},
		{"two documents", minimal + "---\nlisteners: []\n", []string{"test.yaml:14:1: the file holds more than one YAML document; put the whole configuration in one"}},
		{"syntax error", "listeners:\n  - name: [a\n", []string{"test.yaml:1: invalid YAML: did not find expected ',' or ']'"}},
		{"not a mapping", "- a\n- b\n", []string{"test.yaml:1:1: expected a mapping, got a list"}},
		{"no listeners", "clusters: []\n", []string{"test.yaml:1:1: listeners: at least one listener is required"}},
		{
			"unknown key with suggestion",
			edit(t, "stat_prefix: l", "stat_prefx: l"),
			[]string{
				"test.yaml:2:5: listeners[0].stat_prefix: required",
				`test.yaml:4:5: listeners[0]: unknown field "stat_prefx" (did you mean "stat_prefix"?); allowed: access_log, address, limits, merge_slashes, name, normalize_path, path_with_escaped_slashes_action, protocols, rate_limit_service, request_id, server_name, stat_prefix, tls, upgrade_configs, use_remote_address, virtual_hosts, xff_num_trusted_hops`,
			},
		},
		{
			"unknown root key",
			minimal + "bogus: 1\n",
			[]string{`test.yaml:14:1: unknown field "bogus"; allowed: admin, cluster_manager, clusters, lifecycle, listeners, node, stats_config, stats_sinks, tracing`},
		},
		{
			"tracing: an unsupported protocol, through tracing.Config.Validate",
			minimal + "tracing:\n  protocol: udp\n",
			[]string{`test.yaml:15:13: tracing.protocol: "udp" is not supported; use "grpc" or "http/protobuf"`},
		},
		{
			"tracing: several Validate errors, each at its own line",
			minimal + "tracing:\n  sampling_ratio: 1.5\n  propagators: [tracecontext, zipkin]\n  batch: {max_queue_size: 10, max_export_batch_size: 20}\n",
			[]string{
				`test.yaml:15:19: tracing.sampling_ratio: 1.5 is outside [0, 1]`,
				`test.yaml:16:31: tracing.propagators[1]: "zipkin" is not supported; use one of b3, b3multi, baggage, jaeger, none, tracecontext`,
				`test.yaml:17:54: tracing.batch.max_export_batch_size: 20 is larger than batch.max_queue_size 10`,
			},
		},
		{
			// One Duration type: tracing's durations decode as every other.
			"tracing: a bad duration reads as lifecycle.drain_time's",
			minimal + "tracing:\n  batch:\n    schedule_delay: 5\n",
			[]string{`test.yaml:16:21: tracing.batch.schedule_delay: expected a duration such as "250ms" or "1.5s", got "5" (add a unit, e.g. "5s")`},
		},
		{
			"tracing: a duration that is not a scalar",
			minimal + "tracing:\n  batch:\n    export_timeout: [5s]\n",
			[]string{`test.yaml:16:21: tracing.batch.export_timeout: expected a duration such as "250ms" or "1.5s", got a list`},
		},
		{
			"tracing: a negative duration, reported once, by tracing.Config.Validate",
			minimal + "tracing:\n  batch:\n    schedule_delay: -1s\n",
			[]string{`test.yaml:16:21: tracing.batch.schedule_delay: -1s is negative`},
		},
		{
			"tracing: resource_attributes must be a mapping",
			minimal + "tracing:\n  resource_attributes: [team]\n",
			[]string{`test.yaml:15:24: tracing.resource_attributes: expected a mapping, got a list`},
		},
		{
			"tracing: resource_attributes entries",
			minimal + "tracing:\n  resource_attributes:\n    team: core\n    deployment.environment: [prod]\n    team: edge\n    \"\": x\n",
			[]string{
				`test.yaml:16:5: tracing.resource_attributes: empty key`,
				`test.yaml:17:29: tracing.resource_attributes["deployment.environment"]: expected a string, got a list`,
				`test.yaml:18:5: tracing.resource_attributes["team"]: duplicate key "team" (first defined at line 16)`,
			},
		},
		{
			"route decorator without an operation",
			edit(t, "route: {cluster: c}", "route: {cluster: c}\n            decorator: {operation: \"\"}"),
			[]string{`test.yaml:11:36: listeners[0].virtual_hosts[0].routes[0].decorator.operation: required: the span name for requests this route matches`},
		},
		{
			"inline fields are allowed keys",
			edit(t, "domains:", "request_header_to_add: []\n        domains:"),
			[]string{`test.yaml:7:9: listeners[0].virtual_hosts[0]: unknown field "request_header_to_add" (did you mean "request_headers_to_add"?); allowed: domains, local_rate_limit, name, rate_limits, request_headers_to_add, request_headers_to_remove, response_headers_to_add, response_headers_to_remove, retry_policy, routes`},
		},
		{
			"duplicate key",
			edit(t, "stat_prefix: l", "stat_prefix: l\n    stat_prefix: m"),
			[]string{`test.yaml:5:5: listeners[0].stat_prefix: duplicate key "stat_prefix" (first defined at line 4)`},
		},
		{
			"stats sink exemplars without timer histograms",
			minimal + "stats_sinks:\n  - {address: 127.0.0.1:8125, histograms: timer, exemplars: true}\n  - address: 127.0.0.1:8125\n    histograms: compact\n    exemplars: true\n",
			[]string{`test.yaml:18:16: stats_sinks[1].exemplars: true needs histograms: timer, got "compact": a compact line stands for many samples, so no one trace ID fits it; set histograms: timer or remove exemplars`},
		},
		{
			"bad duration",
			minimal + "lifecycle:\n  drain_time: fast\n",
			[]string{`test.yaml:15:15: lifecycle.drain_time: expected a duration such as "250ms" or "1.5s", got "fast"`},
		},
		{
			"duration without unit",
			minimal + "lifecycle: {drain_time: 5}\n",
			[]string{`test.yaml:14:25: lifecycle.drain_time: expected a duration such as "250ms" or "1.5s", got "5" (add a unit, e.g. "5s")`},
		},
		{
			"negative duration",
			minimal + "lifecycle: {drain_time: -1s}\n",
			[]string{`test.yaml:14:25: lifecycle.drain_time: must not be negative, got -1s`},
		},
		{
			"wrong types",
			edit(t, "stat_prefix: l", "stat_prefix: l\n    xff_num_trusted_hops: many\n    use_remote_address: yes\n    protocols: http1\n    limits: [1]"),
			[]string{
				`test.yaml:5:27: listeners[0].xff_num_trusted_hops: expected an integer, got "many"`,
				`test.yaml:6:25: listeners[0].use_remote_address: expected true or false, got "yes"`,
				`test.yaml:7:16: listeners[0].protocols: expected a list, got "http1"`,
				`test.yaml:8:13: listeners[0].limits: expected a mapping, got a list`,
			},
		},
		{
			"string field given a mapping",
			edit(t, "name: vh", "name: {a: b}"),
			[]string{`test.yaml:6:15: listeners[0].virtual_hosts[0].name: expected a string, got a mapping`},
		},
		{
			"float for int and non-finite float",
			edit(t, "  - name: c\n", "  - name: c\n    max_idle_connections_per_host: 1.5\n    least_request_lb_config: {active_request_bias: .nan}\n"),
			[]string{
				`test.yaml:13:36: clusters[0].max_idle_connections_per_host: expected an integer, got "1.5"`,
				`test.yaml:14:52: clusters[0].least_request_lb_config.active_request_bias: expected a finite number, got ".nan"`,
			},
		},
		{
			"deep path in header matcher",
			edit(t, "match: {prefix: /}", "match: {prefix: /, headers: [{name: x-canary, exact_match: [1]}]}"),
			[]string{`test.yaml:9:72: listeners[0].virtual_hosts[0].routes[0].match.headers[0].exact_match: expected a string, got a list`},
		},
		{
			"match needs exactly one kind",
			edit(t, "match: {prefix: /}", "match: {prefix: /, path: /x}"),
			[]string{`test.yaml:9:20: listeners[0].virtual_hosts[0].routes[0].match: exactly one of prefix, path or safe_regex is required; got path and prefix`},
		},
		{
			"match with no kind",
			edit(t, "match: {prefix: /}", "match: {}"),
			[]string{`test.yaml:9:20: listeners[0].virtual_hosts[0].routes[0].match: exactly one of prefix, path or safe_regex is required`},
		},
		{
			"bad regexes",
			edit(t, "match: {prefix: /}", "match: {safe_regex: \"(\", headers: [{name: cookie, safe_regex_match: \"a**\"}]}"),
			[]string{
				"test.yaml:9:33: listeners[0].virtual_hosts[0].routes[0].match.safe_regex: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`",
				"test.yaml:9:81: listeners[0].virtual_hosts[0].routes[0].match.headers[0].safe_regex_match: invalid regular expression \"a**\": error parsing regexp: invalid nested repetition operator: `**`",
			},
		},
		{
			"header matcher needs one kind",
			edit(t, "match: {prefix: /}", "match: {prefix: /, headers: [{name: x, exact_match: a, present_match: true}, {exact_match: b}]}"),
			[]string{
				`test.yaml:9:42: listeners[0].virtual_hosts[0].routes[0].match.headers[0]: exactly one of exact_match, prefix_match, suffix_match, contains_match, safe_regex_match or present_match is required; got exact_match and present_match`,
				`test.yaml:9:90: listeners[0].virtual_hosts[0].routes[0].match.headers[1].name: required`,
			},
		},
		{
			"route needs exactly one action",
			edit(t, "            route: {cluster: c}\n", "            route: {cluster: c}\n            direct_response: {status: 200}\n"),
			[]string{`test.yaml:9:13: listeners[0].virtual_hosts[0].routes[0]: exactly one of route, redirect or direct_response is required; got direct_response and route`},
		},
		{
			"unknown cluster lists known ones",
			edit(t, "route: {cluster: c}", "route: {cluster: nope}"),
			[]string{`test.yaml:10:30: listeners[0].virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"; known clusters: c`},
		},
		{
			"weighted clusters",
			edit(t, "route: {cluster: c}", "route: {weighted_clusters: {clusters: [{name: c, weight: 0}, {name: d, weight: 0}]}}"),
			[]string{
				`test.yaml:10:51: listeners[0].virtual_hosts[0].routes[0].route.weighted_clusters.clusters: the weights add up to 0; at least one cluster needs a weight above 0`,
				`test.yaml:10:81: listeners[0].virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name: unknown cluster "d"; known clusters: c`,
			},
		},
		{
			"prefix_rewrite only on prefix routes",
			edit(t, "match: {prefix: /}", "match: {path: /a}", "route: {cluster: c}", "route: {cluster: c, prefix_rewrite: /b}"),
			[]string{`test.yaml:10:49: listeners[0].virtual_hosts[0].routes[0].route.prefix_rewrite: only allowed on routes that match a prefix`},
		},
		{
			"retry policy",
			edit(t, "route: {cluster: c}", "route: {cluster: c, retry_policy: {retry_on: [5xx, sometimes], retriable_status_codes: [503, 700]}}"),
			[]string{
				`test.yaml:10:64: listeners[0].virtual_hosts[0].routes[0].route.retry_policy.retry_on[1]: must be one of 5xx, gateway-error, connect-failure, reset, retriable-status-codes, refused-stream, retriable-4xx; got "sometimes"`,
				`test.yaml:10:100: listeners[0].virtual_hosts[0].routes[0].route.retry_policy.retriable_status_codes: has no effect unless retry_on includes retriable-status-codes`,
				`test.yaml:10:106: listeners[0].virtual_hosts[0].routes[0].route.retry_policy.retriable_status_codes[1]: must be an HTTP status from 100 to 599, got 700`,
			},
		},
		{
			"redirect and direct response codes",
			edit(t, "            route: {cluster: c}\n", "            redirect: {response_code: 304}\n          - match: {prefix: /d}\n            direct_response: {status: 99}\n"),
			[]string{
				`test.yaml:10:39: listeners[0].virtual_hosts[0].routes[0].redirect.response_code: must be one of 301, 302, 303, 307, 308; got 304`,
				`test.yaml:12:39: listeners[0].virtual_hosts[0].routes[1].direct_response.status: must be an HTTP status from 100 to 599, got 99`,
			},
		},
		{
			"domains",
			edit(t, `domains: ["*"]`, `domains: ["*", "a.*.com", "*.example.com", "*.EXAMPLE.com", "example.com:80"]`),
			[]string{
				`test.yaml:7:24: listeners[0].virtual_hosts[0].domains[1]: invalid domain "a.*.com": a wildcard may only be the whole domain ("*"), its start ("*.example.com") or its end ("example.*")`,
				`test.yaml:7:52: listeners[0].virtual_hosts[0].domains[3]: duplicate domain "*.example.com" (also used by listeners[0].virtual_hosts[0].domains)`,
				`test.yaml:7:69: listeners[0].virtual_hosts[0].domains[4]: invalid domain "example.com:80": domains match the host without its port; drop ":80"`,
			},
		},
		{
			"listener address and protocols",
			edit(t, "address: 127.0.0.1:0", "address: 127.0.0.1\n    protocols: [http1, http3]"),
			[]string{
				`test.yaml:3:14: listeners[0].address: "127.0.0.1" is not host:port: missing port in address`,
				`test.yaml:4:24: listeners[0].protocols[1]: must be one of http1, http2; got "http3"`,
			},
		},
		{
			"duplicate listeners",
			edit(t, "listeners:\n", "listeners:\n  - {name: l, address: \"127.0.0.1:80\", stat_prefix: l, virtual_hosts: [{name: v, domains: [\"*\"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}\n",
				"address: 127.0.0.1:0", "address: 127.0.0.1:80"),
			[]string{
				`test.yaml:3:11: listeners[1].name: duplicate listener name "l" (also used by listeners[0])`,
				`test.yaml:4:14: listeners[1].address: duplicate listener address "127.0.0.1:80" (also used by listeners[0])`,
				`test.yaml:5:18: listeners[1].stat_prefix: duplicate stat_prefix "l" (also used by listeners[0])`,
			},
		},
		{
			"names in stats",
			edit(t, "name: vh", "name: v h") + "  - name: c\n    endpoints: [{address: \"127.0.0.1:1\"}]\n",
			[]string{
				`test.yaml:6:15: listeners[0].virtual_hosts[0].name: "v h" may contain only letters, digits, '_', '.' and '-' (it appears in stat names)`,
				`test.yaml:14:11: clusters[1].name: duplicate cluster name "c"`,
			},
		},
		{
			"cluster checks",
			edit(t, "  - name: c\n", "  - name: c\n    type: eds\n    lb_policy: fastest\n    protocol: http2\n    least_request_lb_config: {choice_count: 1}\n    connect_timeout: 0s\n",
				"endpoints: [{address: 127.0.0.1:8080}]", "endpoints: [{address: backend:8080, weight: 200}, {address: \"127.0.0.1:0\"}]"),
			[]string{
				`test.yaml:13:11: clusters[0].type: must be one of static, strict_dns; got "eds"`,
				`test.yaml:14:16: clusters[0].lb_policy: must be one of round_robin, least_request, random, ring_hash, maglev; got "fastest"`,
				`test.yaml:15:15: clusters[0].protocol: http2 negotiates HTTP/2 by TLS ALPN and needs tls; use h2c for HTTP/2 without TLS`,
				`test.yaml:16:45: clusters[0].least_request_lb_config.choice_count: must be at least 2, got 1`,
				`test.yaml:17:22: clusters[0].connect_timeout: must be greater than 0, got 0s`,
				`test.yaml:18:49: clusters[0].endpoints[0].weight: must be from 1 to 128, got 200`,
				`test.yaml:18:65: clusters[0].endpoints[1].address: "127.0.0.1:0": port must be a number from 1 to 65535, got "0"`,
			},
		},
		{
			"static cluster needs IPs",
			edit(t, "endpoints: [{address: 127.0.0.1:8080}]", "endpoints: [{address: backend:8080}]"),
			[]string{`test.yaml:13:27: clusters[0].endpoints[0].address: "backend:8080": a static cluster needs IP addresses; use type: strict_dns for host names`},
		},
		{
			"access log",
			edit(t, "stat_prefix: l", "stat_prefix: l\n    access_log: [{format: xml}, {text_format: \"%START_TIME%\"}]"),
			[]string{
				`test.yaml:5:27: listeners[0].access_log[0].format: must be one of json, text; got "xml"`,
				`test.yaml:5:47: listeners[0].access_log[1].text_format: only allowed with format: text (format is "json")`,
			},
		},
		{
			"tls files missing",
			edit(t, "address: 127.0.0.1:0", "address: 127.0.0.1:0\n    tls: {cert_file: testdata/nope.pem, min_version: \"1.1\"}"),
			[]string{
				`test.yaml:4:10: listeners[0].tls.key_file: required`,
				`test.yaml:4:22: listeners[0].tls.cert_file: file "testdata/nope.pem" does not exist (looked for ` + absTestdata(t, "nope.pem") + `)`,
				`test.yaml:4:54: listeners[0].tls.min_version: must be one of 1.2, 1.3; got "1.1"`,
			},
		},
		{
			"decode error suppresses follow-up validation errors",
			"listeners: {}\nclusters: []\n",
			[]string{`test.yaml:1:12: listeners: expected a list, got a mapping`},
		},
		{
			"undefined alias",
			"listeners: *nope\n",
			[]string{`test.yaml: invalid YAML: unknown anchor 'nope' referenced`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrs(t, tt.src, tt.want) })
	}
}

// parseErrs parses src and returns its errors rendered, one per element,
// or nil when it parses; an error that is not Errors fails the test.
func parseErrs(t testing.TB, src string) []string {
	t.Helper()
	_, err := Parse([]byte(src), "test.yaml")
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error = %v (%T), want Errors", err, err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	return got
}

// checkErrs fails the test unless src's errors, rendered, are exactly want.
func checkErrs(t testing.TB, src string, want []string) {
	t.Helper()
	if got := parseErrs(t, src); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

func absTestdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErrorsRender(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Column: 7, Path: "a.b", Msg: "bad"}, "f.yaml:3:7: a.b: bad"},
		{Error{File: "f.yaml", Line: 3, Msg: "bad"}, "f.yaml:3: bad"},
		{Error{File: "f.yaml", Msg: "bad"}, "f.yaml: bad"},
		{Error{Path: "a", Msg: "bad"}, "a: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	es := Errors{{Line: 1, Msg: "x"}, {Line: 2, Msg: "y"}}
	if got := es.Error(); got != "1: x\n2: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestTLSFilesResolvedRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, "certs", f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := edit(t, "address: 127.0.0.1:0", "address: 127.0.0.1:0\n    tls: {cert_file: certs/cert.pem, key_file: certs/key.pem}")
	path := filepath.Join(dir, "proxy.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tls := c.Listeners[0].TLS
	if want := filepath.Join(dir, "certs", "cert.pem"); tls.CertFile != want {
		t.Errorf("cert_file = %q, want %q", tls.CertFile, want)
	}
	if want := filepath.Join(dir, "certs", "key.pem"); tls.KeyFile != want {
		t.Errorf("key_file = %q, want %q", tls.KeyFile, want)
	}

	// The same file parsed with another name does not find the certificates.
	if _, err := Parse([]byte(src), filepath.Join(t.TempDir(), "x.yaml")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Parse elsewhere: err = %v, want a missing-file error", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load error = %v, want fs.ErrNotExist", err)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	c := mustParse(t, `listeners:
  - name: l
    address: 127.0.0.1:0
    stat_prefix: l
    virtual_hosts:
      - name: vh
        domains: ["*"]
        retry_policy: &retry {retry_on: [5xx, reset], num_retries: 3}
        routes:
          - match: {prefix: /a}
            route: {cluster: a, retry_policy: *retry}
          - match: {prefix: /b}
            route: {cluster: b, retry_policy: {<<: *retry, num_retries: 5}}
clusters:
  - &base
    name: a
    connect_timeout: 1s
    lb_policy: least_request
    endpoints: [{address: 127.0.0.1:1}]
  - <<: *base
    name: b
`)
	routes := c.Listeners[0].VirtualHosts[0].Routes
	if got := *routes[0].Route.RetryPolicy.NumRetries; got != 3 {
		t.Errorf("aliased num_retries = %d, want 3", got)
	}
	if got := *routes[1].Route.RetryPolicy.NumRetries; got != 5 {
		t.Errorf("merged num_retries = %d, want 5 (explicit key wins over merge)", got)
	}
	if got := routes[1].Route.RetryPolicy.RetryOn; !reflect.DeepEqual(got, []string{"5xx", "reset"}) {
		t.Errorf("merged retry_on = %v", got)
	}
	b := c.Cluster("b")
	if b == nil || b.LBPolicy != "least_request" || b.ConnectTimeout.D() != time.Second || len(b.Endpoints) != 1 {
		t.Errorf("merged cluster b = %+v", b)
	}
	// Aliased values are copies: changing one route's policy leaves the other alone.
	*routes[0].Route.RetryPolicy.NumRetries = 9
	if got := *c.Listeners[0].VirtualHosts[0].RetryPolicy.NumRetries; got != 3 {
		t.Errorf("virtual host num_retries = %d after editing a route's copy", got)
	}
}

// mergeBomb builds a well-typed "billion laughs": each cluster merges the
// previous one nine times, so decoding the last walks 9^levels mappings.
func mergeBomb(levels int) string {
	var b strings.Builder
	b.WriteString(minimal)
	b.WriteString("  - &c0 {name: c0, endpoints: [{address: \"127.0.0.1:1\"}]}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  - &c%d {<<: [", i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*c%d", i-1)
		}
		b.WriteString("]}\n")
	}
	return b.String()
}

func TestAliasBombRejected(t *testing.T) {
	start := time.Now()
	_, err := Parse([]byte(mergeBomb(9)), "bomb.yaml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error = %v, want Errors", err)
	}
	last := errs[len(errs)-1].Error()
	if !strings.Contains(last, "refusing to decode (an alias bomb?)") {
		t.Errorf("last error = %q, want the alias budget error", last)
	}
	// Generous: the point is that it finishes at all (9^9 would not).
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Parse took %v", d)
	}

	// A small fan-out is ordinary reuse and decodes (then fails validation
	// only because the merged clusters share a name).
	_, err = Parse([]byte(mergeBomb(2)), "small.yaml")
	if err == nil || strings.Contains(err.Error(), "alias bomb") {
		t.Errorf("small fan-out: err = %v, want duplicate-name errors only", err)
	}
}

func TestRedacted(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := edit(t, "address: 127.0.0.1:0", "address: 127.0.0.1:0\n    tls: {cert_file: cert.pem, key_file: key.pem}")
	c, err := Parse([]byte(src), filepath.Join(dir, "p.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if got := r.Listeners[0].TLS.KeyFile; got != "[redacted]" {
		t.Errorf("redacted key_file = %q", got)
	}
	if got, want := r.Listeners[0].TLS.CertFile, filepath.Join(dir, "cert.pem"); got != want {
		t.Errorf("redacted cert_file = %q, want %q (not a secret)", got, want)
	}
	if got, want := c.Listeners[0].TLS.KeyFile, filepath.Join(dir, "key.pem"); got != want {
		t.Errorf("original key_file = %q, want %q: Redacted must not modify its receiver", got, want)
	}
	// Deep: no shared pointers or slices.
	r.Listeners[0].Name = "changed"
	*r.Listeners[0].UseRemoteAddress = false
	r.Listeners[0].VirtualHosts[0].Domains[0] = "changed"
	if c.Listeners[0].Name != "l" || !*c.Listeners[0].UseRemoteAddress || c.Listeners[0].VirtualHosts[0].Domains[0] != "*" {
		t.Errorf("editing the redacted copy changed the original: %+v", c.Listeners[0])
	}
	r.Listeners[0].TLS = nil
	want := *c
	want.Listeners = nil
	got := *r
	got.Listeners = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("redacted copy differs outside listeners")
	}
}

// TestTracingSection decodes a full tracing section: a string map, the
// tracing package's Duration (config.Duration itself), and a
// route decorator; the redacted copy shares no map with the original, and
// the section survives a YAML round trip.
func TestTracingSection(t *testing.T) {
	src := edit(t, "route: {cluster: c}", "route: {cluster: c}\n            decorator: {operation: checkout}") + `tracing:
  service_name: edge
  endpoint: "http://127.0.0.1:4318/v1/traces"
  protocol: http/protobuf
  sampling_ratio: 0.25
  propagators: [tracecontext, b3]
  resource_attributes: {team: core, "deployment.environment": prod}
  batch: {schedule_delay: 250ms, export_timeout: 2s, max_queue_size: 100}
`
	c := mustParse(t, src)
	tc := c.Tracing
	if tc == nil {
		t.Fatal("tracing section not decoded")
	}
	if tc.ServiceName != "edge" || tc.Protocol != "http/protobuf" || tc.SamplingRatio == nil || *tc.SamplingRatio != 0.25 ||
		!reflect.DeepEqual(tc.Propagators, []string{"tracecontext", "b3"}) {
		t.Errorf("tracing = %+v", tc)
	}
	if want := map[string]string{"team": "core", "deployment.environment": "prod"}; !reflect.DeepEqual(tc.ResourceAttributes, want) {
		t.Errorf("resource_attributes = %v, want %v", tc.ResourceAttributes, want)
	}
	if tc.Batch.ScheduleDelay.D() != 250*time.Millisecond || tc.Batch.ExportTimeout.D() != 2*time.Second || tc.Batch.MaxQueueSize != 100 {
		t.Errorf("batch = %+v", tc.Batch)
	}
	if d := c.Listeners[0].VirtualHosts[0].Routes[0].Decorator; d == nil || d.Operation != "checkout" {
		t.Errorf("decorator = %+v", d)
	}
	if mustParse(t, minimal).Tracing != nil {
		t.Error("tracing must stay nil (off) when the section is absent")
	}

	r := c.Redacted()
	r.Tracing.ResourceAttributes["team"] = "changed"
	if tc.ResourceAttributes["team"] != "core" {
		t.Error("the redacted copy shares its resource_attributes map with the original")
	}

	if _, c2 := roundTrip(t, c); !reflect.DeepEqual(c2.Tracing, c.Tracing) {
		t.Errorf("round trip changed tracing:\n%+v\n%+v", c2.Tracing, c.Tracing)
	}
}

func TestClusterLookup(t *testing.T) {
	c := mustParse(t, minimal)
	if got := c.Cluster("c"); got != &c.Clusters[0] {
		t.Errorf("Cluster(c) = %p, want %p", got, &c.Clusters[0])
	}
	if got := c.Cluster("nope"); got != nil {
		t.Errorf("Cluster(nope) = %+v, want nil", got)
	}
}

// TestMarshalRoundTrip checks that a parsed config, written back as YAML
// (as a /config_dump would), parses to the same thing: field names, the
// Duration text form and defaults agree.
func TestMarshalRoundTrip(t *testing.T) {
	c := mustParse(t, edit(t, "route: {cluster: c}", "route: {cluster: c, timeout: 1.5s, retry_policy: {retry_on: [5xx]}}"))
	if out, _ := roundTrip(t, c); !strings.Contains(string(out), "timeout: 1.5s") {
		t.Errorf("durations should marshal as text; got:\n%s", out)
	}
}

// roundTrip writes c back as YAML, as a /config_dump would, parses that
// dump and fails the test unless the result writes back the same; it
// returns the dump and the re-parsed config.
func roundTrip(t testing.TB, c *Config) ([]byte, *Config) {
	t.Helper()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(out, "dump.yaml")
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	out2, err := yaml.Marshal(c2)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("round trip changed the config:\n%s\n---\n%s", out, out2)
	}
	return out, c2
}

func TestValidateBuiltInCode(t *testing.T) {
	c := &Config{
		Listeners: []Listener{{
			Name: "l", Address: "127.0.0.1:0", StatPrefix: "l",
			VirtualHosts: []VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []Route{{
				Match: RouteMatch{Prefix: ptr("/")},
				Route: &RouteAction{Cluster: "missing"},
			}}}},
		}},
	}
	c.ApplyDefaults()
	err := c.Validate()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("Validate = %v, want one error", err)
	}
	if want := `listeners[0].virtual_hosts[0].routes[0].route.cluster: unknown cluster "missing"; no clusters are defined`; errs[0].Error() != want {
		t.Errorf("error = %q, want %q", errs[0].Error(), want)
	}
	c.Clusters = []Cluster{{Name: "missing", Endpoints: []Endpoint{{Address: "127.0.0.1:80"}}}}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after adding the cluster: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../../deploy/local/front-proxy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "front-proxy.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

// withDevCert copies the dev environment's config f (content data) into a
// temporary directory beside a fresh tls/<name>.crt and .key, as
// deploy/local/up.sh and the Tiltfile make them at start (`demo cert`),
// and returns the copy's path: a fresh checkout has no certificate.
func withDevCert(t *testing.T, f string, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
	if _, _, err := demo.WriteSelfSignedCert(filepath.Join(dir, "tls"), name, time.Hour); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, filepath.Base(f))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExampleConfigs loads every example: the dev environment's proxy
// configs in deploy/local and every yaml block in docs/config.md that starts
// with a listeners: or node: key, so that the documentation cannot rot.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../deploy/local/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !startsWithProxyKey(string(data)) {
			continue // Prometheus and other tools' configs live here too.
		}
		loaded++
		if _, err := Load(withDevCert(t, f, data)); err != nil {
			t.Errorf("%v", err)
		}
	}
	if loaded < 2 {
		t.Errorf("loaded %d proxy configs from deploy/local, want front-proxy.yaml and the sidecar-*.yaml files", loaded)
	}

	const doc = "../../docs/config.md"
	md, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlocks(string(md))
	checked := 0
	for _, b := range blocks {
		if !startsWithProxyKey(b.text) {
			continue
		}
		checked++
		if _, err := Parse([]byte(b.text), doc); err != nil {
			t.Errorf("the yaml block at %s:%d does not load (error lines are relative to the block):\n%v", doc, b.line, err)
		}
	}
	if checked < 3 {
		t.Errorf("checked %d yaml blocks in %s, want at least 3 (front proxy, sidecar, canary)", checked, doc)
	}
}

type mdBlock struct {
	line int // of the opening fence
	text string
}

// yamlBlocks returns the contents of the ```yaml fenced blocks of a markdown file.
func yamlBlocks(md string) []mdBlock {
	var out []mdBlock
	var cur *strings.Builder
	start := 0
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			cur, start = &strings.Builder{}, i+1
		case cur != nil && trimmed == "```":
			out = append(out, mdBlock{line: start, text: cur.String()})
			cur = nil
		case cur != nil:
			cur.WriteString(line)
			cur.WriteString("\n")
		}
	}
	return out
}

// startsWithProxyKey reports whether the first line that is not blank or a
// comment starts with a key a complete proxy config begins with (listeners:,
// node: or admin:); other blocks are fragments of one.
func startsWithProxyKey(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		return strings.HasPrefix(line, "listeners:") || strings.HasPrefix(line, "node:") || strings.HasPrefix(line, "admin:")
	}
	return false
}
