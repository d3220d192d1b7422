package config

import (
	"reflect"
	"testing"
	"time"
)

// withCluster appends lines (indented as keys of the minimal config's
// cluster c, from line 14 on) to minimal.
func withCluster(t *testing.T, lines string) string {
	t.Helper()
	return edit(t, "    endpoints: [{address: 127.0.0.1:8080}]\n", "    endpoints: [{address: 127.0.0.1:8080}]\n"+lines)
}

func TestHealthDefaults(t *testing.T) {
	c := mustParse(t, withCluster(t, `    health_checks:
      - timeout: 1s
        interval: 5s
        http_health_check: {path: /healthz, request_headers_to_add: [{key: x-a, value: b}]}
    outlier_detection: {}
`))
	cl := c.Clusters[0]
	hc := cl.HealthChecks[0]
	od := cl.OutlierDetection
	tests := []struct {
		name      string
		got, want any
	}{
		{"unhealthy_threshold", hc.UnhealthyThreshold, 3},
		{"healthy_threshold", hc.HealthyThreshold, 2},
		{"interval_jitter", hc.IntervalJitter.D(), time.Duration(0)},
		{"interval_jitter_percent", hc.IntervalJitterPercent, 0},
		{"host", hc.HTTPHealthCheck.Host, ""},
		{"expected_statuses", hc.HTTPHealthCheck.ExpectedStatuses, []StatusRange{{Start: 200, End: 201}}},
		{"request_headers_to_add.append", *hc.HTTPHealthCheck.RequestHeadersToAdd[0].Append, true},
		{"consecutive_5xx", od.Consecutive5xx, 5},
		{"consecutive_gateway_failure", od.ConsecutiveGatewayFailure, 5},
		{"interval", od.Interval.D(), 10 * time.Second},
		{"base_ejection_time", od.BaseEjectionTime.D(), 30 * time.Second},
		{"max_ejection_time", od.MaxEjectionTime.D(), 300 * time.Second},
		{"max_ejection_time_jitter", od.MaxEjectionTimeJitter.D(), time.Duration(0)},
		{"max_ejection_percent", od.MaxEjectionPercent, 10},
		{"always_eject_one_host", od.AlwaysEjectOneHost, false},
		{"enforcing_consecutive_5xx", od.EnforcingConsecutive5xx, 100},
		{"enforcing_consecutive_gateway_failure", od.EnforcingConsecutiveGatewayFailure, 0},
		{"enforcing_success_rate", od.EnforcingSuccessRate, 100},
		{"success_rate_minimum_hosts", od.SuccessRateMinimumHosts, 5},
		{"success_rate_request_volume", od.SuccessRateRequestVolume, 100},
		{"success_rate_stdev_factor", od.SuccessRateStdevFactor, 1900},
		{"enforcing_failure_percentage", od.EnforcingFailurePercentage, 0},
		{"failure_percentage_threshold", od.FailurePercentageThreshold, 85},
		{"failure_percentage_minimum_hosts", od.FailurePercentageMinimumHosts, 5},
		{"failure_percentage_request_volume", od.FailurePercentageRequestVolume, 50},
		{"successful_active_health_check_uneject_host", *od.SuccessfulActiveHealthCheckUnejectHost, true},
		{"healthy_panic_threshold", *cl.CommonLBConfig.HealthyPanicThreshold, 50.0},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestHealthExplicitValuesKept(t *testing.T) {
	c := mustParse(t, withCluster(t, `    common_lb_config: {healthy_panic_threshold: 0}
    outlier_detection:
      consecutive_5xx: 0
      enforcing_consecutive_5xx: 0
      enforcing_success_rate: 0
      max_ejection_percent: 0
      base_ejection_time: 600s
      successful_active_health_check_uneject_host: false
`))
	cl := c.Clusters[0]
	od := cl.OutlierDetection
	if od.Consecutive5xx != 0 || od.EnforcingConsecutive5xx != 0 || od.EnforcingSuccessRate != 0 || od.MaxEjectionPercent != 0 {
		t.Errorf("explicit zeros replaced by defaults: %+v", od)
	}
	if *od.SuccessfulActiveHealthCheckUnejectHost {
		t.Error("successful_active_health_check_uneject_host: false became true")
	}
	// Envoy's default max_ejection_time is the larger of 300s and the base.
	if got := od.MaxEjectionTime.D(); got != 600*time.Second {
		t.Errorf("max_ejection_time = %v with base 600s, want 600s", got)
	}
	if got := *cl.CommonLBConfig.HealthyPanicThreshold; got != 0 {
		t.Errorf("healthy_panic_threshold = %v, want the explicit 0", got)
	}
}

func TestHealthErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines string
		want  []string
	}{
		{
			"timeout, interval and the check kind are required",
			"    health_checks: [{unhealthy_threshold: 2}]\n",
			[]string{
				"test.yaml:14:21: clusters[0].health_checks[0].timeout: required: a duration greater than 0, got 0s",
				"test.yaml:14:21: clusters[0].health_checks[0].interval: required: a duration greater than 0, got 0s",
				"test.yaml:14:21: clusters[0].health_checks[0].http_health_check: required: http_health_check is the only kind of health check",
			},
		},
		{
			"thresholds of zero",
			"    health_checks: [{timeout: 1s, interval: 1s, unhealthy_threshold: 0, healthy_threshold: 0, http_health_check: {path: /h}}]\n",
			[]string{
				"test.yaml:14:70: clusters[0].health_checks[0].unhealthy_threshold: must be at least 1, got 0",
				"test.yaml:14:92: clusters[0].health_checks[0].healthy_threshold: must be at least 1, got 0",
			},
		},
		{
			"path, host, jitter percent and header",
			"    health_checks: [{timeout: 1s, interval: 1s, interval_jitter_percent: 101, http_health_check: {path: healthz, host: \"a b\", request_headers_to_add: [{key: \"bad key\", value: v}]}}]\n",
			[]string{
				"test.yaml:14:74: clusters[0].health_checks[0].interval_jitter_percent: must be from 0 to 100, got 101",
				"test.yaml:14:105: clusters[0].health_checks[0].http_health_check.path: must start with \"/\", got \"healthz\"",
				"test.yaml:14:120: clusters[0].health_checks[0].http_health_check.host: must be a host name (with an optional port), got \"a b\"",
				"test.yaml:14:158: clusters[0].health_checks[0].http_health_check.request_headers_to_add[0].key: invalid header name \"bad key\": ' ' is not allowed",
			},
		},
		{
			"missing path",
			"    health_checks: [{timeout: 1s, interval: 1s, http_health_check: {host: x}}]\n",
			[]string{`test.yaml:14:68: clusters[0].health_checks[0].http_health_check.path: required: the path to check, such as "/healthz"`},
		},
		{
			"expected status ranges",
			"    health_checks: [{timeout: 1s, interval: 1s, http_health_check: {path: /h, expected_statuses: [{start: 200, end: 200}, {start: 99, end: 601}]}}]\n",
			[]string{
				"test.yaml:14:117: clusters[0].health_checks[0].http_health_check.expected_statuses[0].end: must be greater than start (200) and at most 600 (the range is [start, end)), got 200",
				"test.yaml:14:131: clusters[0].health_checks[0].http_health_check.expected_statuses[1].start: must be an HTTP status from 100 to 599, got 99",
				"test.yaml:14:140: clusters[0].health_checks[0].http_health_check.expected_statuses[1].end: must be greater than start (99) and at most 600 (the range is [start, end)), got 601",
			},
		},
		{
			"an empty expected_statuses list",
			"    health_checks: [{timeout: 1s, interval: 1s, http_health_check: {path: /h, expected_statuses: []}}]\n",
			[]string{"test.yaml:14:98: clusters[0].health_checks[0].http_health_check.expected_statuses: at least one status range is required (omit the field for the default, 200 only)"},
		},
		{
			"two health checks",
			"    health_checks:\n      - {timeout: 1s, interval: 1s, http_health_check: {path: /a}}\n      - {timeout: 1s, interval: 1s, http_health_check: {path: /b}}\n",
			[]string{"test.yaml:15:7: clusters[0].health_checks: at most 1 health check is supported per cluster (as in Envoy), got 2"},
		},
		{
			"an unknown health check field",
			"    health_checks: [{timeout: 1s, interval: 1s, tcp_health_check: {}, http_health_check: {path: /h}}]\n",
			[]string{`test.yaml:14:49: clusters[0].health_checks[0]: unknown field "tcp_health_check" (did you mean "http_health_check"?); allowed: healthy_threshold, http_health_check, interval, interval_jitter, interval_jitter_percent, timeout, unhealthy_threshold`},
		},
		{
			"outlier percentages and counts",
			"    outlier_detection: {max_ejection_percent: 101, enforcing_success_rate: -1, failure_percentage_threshold: 150, consecutive_5xx: -1, success_rate_request_volume: -5}\n",
			[]string{
				"test.yaml:14:47: clusters[0].outlier_detection.max_ejection_percent: must be from 0 to 100, got 101",
				"test.yaml:14:76: clusters[0].outlier_detection.enforcing_success_rate: must be from 0 to 100, got -1",
				"test.yaml:14:110: clusters[0].outlier_detection.failure_percentage_threshold: must be from 0 to 100, got 150",
				"test.yaml:14:132: clusters[0].outlier_detection.consecutive_5xx: must not be negative, got -1",
				"test.yaml:14:165: clusters[0].outlier_detection.success_rate_request_volume: must not be negative, got -5",
			},
		},
		{
			"outlier times",
			"    outlier_detection: {interval: 0s, base_ejection_time: 60s, max_ejection_time: 30s}\n",
			[]string{
				"test.yaml:14:35: clusters[0].outlier_detection.interval: must be greater than 0, got 0s",
				"test.yaml:14:83: clusters[0].outlier_detection.max_ejection_time: must be at least base_ejection_time (1m0s), got 30s",
			},
		},
		{
			"a negative jitter (the general duration check)",
			"    outlier_detection: {max_ejection_time_jitter: -1s}\n",
			[]string{"test.yaml:14:51: clusters[0].outlier_detection.max_ejection_time_jitter: must not be negative, got -1s"},
		},
		{
			"panic threshold above 100",
			"    common_lb_config: {healthy_panic_threshold: 101}\n",
			[]string{"test.yaml:14:49: clusters[0].common_lb_config.healthy_panic_threshold: must be a percentage from 0 to 100, got 101"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrs(t, withCluster(t, tt.lines), tt.want) })
	}
}
