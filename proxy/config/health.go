package config

import (
	"net/url"
	"strings"
	"time"
)

// HealthCheck is one active health check of a cluster: Envoy's
// core.HealthCheck with an http_health_check, flattened. A cluster has at
// most one (Envoy refuses more). See docs/config.md, "health_checks".
type HealthCheck struct {
	// Timeout bounds one check, from sending the request to the response
	// headers. A check that times out is a network failure. Required, > 0.
	Timeout Duration `yaml:"timeout"`
	// Interval is the time between two checks of a host. Required, > 0.
	Interval Duration `yaml:"interval"`
	// IntervalJitter adds a random 0 to interval_jitter to every wait.
	// Default 0.
	IntervalJitter Duration `yaml:"interval_jitter"`
	// IntervalJitterPercent adds a random 0 to interval_jitter_percent% of
	// the interval to every wait, 0–100. Default 0.
	IntervalJitterPercent int `yaml:"interval_jitter_percent"`
	// UnhealthyThreshold is how many consecutive network failures (connect
	// errors, timeouts) mark a healthy host unhealthy. A response with an
	// unexpected status, or with x-envoy-immediate-health-check-fail, marks
	// it unhealthy at once, as in Envoy. Envoy requires it; hopwatch
	// defaults it to 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// HealthyThreshold is how many consecutive successful checks mark an
	// unhealthy host healthy again. The first check of a new host needs
	// only one success, as in Envoy. Envoy requires it; hopwatch defaults
	// it to 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// HTTPHealthCheck is the HTTP request to send. Required: HTTP is the
	// only kind of check hopwatch has.
	HTTPHealthCheck *HTTPHealthCheck `yaml:"http_health_check"`
}

// HTTPHealthCheck is Envoy's HealthCheck.HttpHealthCheck: a GET of Path
// with a Host header and user-agent Envoy/HC.
type HTTPHealthCheck struct {
	// Path is requested on every check, for example /healthz. Required,
	// starts with "/".
	Path string `yaml:"path"`
	// Host is the Host header of the check. Default: the cluster's name,
	// as in Envoy.
	Host string `yaml:"host"`
	// ExpectedStatuses are the healthy response statuses, as half-open
	// ranges [start, end) within [100, 600). Default: 200 only
	// ([{start: 200, end: 201}]), Envoy's default; a list replaces it.
	ExpectedStatuses []StatusRange `yaml:"expected_statuses"`
	// RequestHeadersToAdd are added to every check request. Values are
	// literal (no dynamic variables). Default none.
	RequestHeadersToAdd []HeaderValueOption `yaml:"request_headers_to_add"`
}

// StatusRange is a half-open range of HTTP statuses, [Start, End)
// (Envoy's type.v3.Int64Range).
type StatusRange struct {
	// Start is the first status in the range. Required, 100–599.
	Start int `yaml:"start"`
	// End is one past the last status in the range. Required, Start+1–600.
	End int `yaml:"end"`
}

// OutlierDetection is Envoy's cluster.outlier_detection: passive health
// checking from the outcome of real requests. Local-origin failures
// (connect failure, reset, timeout) count as the 5xx Envoy maps them to
// (503, or 504 for a timeout), as with Envoy's
// split_external_local_origin_errors: false. See docs/config.md,
// "outlier_detection".
type OutlierDetection struct {
	// Consecutive5xx is how many 5xx responses in a row eject a host.
	// 0 disables the check. Default 5.
	Consecutive5xx int `yaml:"consecutive_5xx"`
	// ConsecutiveGatewayFailure is how many 502, 503 or 504 in a row eject
	// a host. 0 disables the check. Default 5.
	ConsecutiveGatewayFailure int `yaml:"consecutive_gateway_failure"`
	// Interval is the time between ejection sweeps: success-rate and
	// failure-percentage analysis, and un-ejection. Default 10s, > 0.
	Interval Duration `yaml:"interval"`
	// BaseEjectionTime is how long a first ejection lasts; each further
	// ejection of the same host lasts one base_ejection_time longer, up to
	// max_ejection_time. Default 30s, > 0.
	BaseEjectionTime Duration `yaml:"base_ejection_time"`
	// MaxEjectionTime caps an ejection. Default the larger of 300s and
	// base_ejection_time; must be at least base_ejection_time.
	MaxEjectionTime Duration `yaml:"max_ejection_time"`
	// MaxEjectionTimeJitter adds a random 0 to max_ejection_time_jitter to
	// each ejection, so that hosts do not all return at once. Default 0.
	MaxEjectionTimeJitter Duration `yaml:"max_ejection_time_jitter"`
	// MaxEjectionPercent is the largest share of the cluster's hosts that
	// may be ejected at once, 0–100: a host is ejected only if
	// (ejected + 1) / hosts stays within it. Default 10.
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
	// AlwaysEjectOneHost lets one host be ejected whatever
	// max_ejection_percent says, when none is. Default false.
	AlwaysEjectOneHost bool `yaml:"always_eject_one_host"`
	// EnforcingConsecutive5xx is the chance, 0–100 %, that a detected
	// consecutive-5xx outlier is really ejected. Default 100.
	EnforcingConsecutive5xx int `yaml:"enforcing_consecutive_5xx"`
	// EnforcingConsecutiveGatewayFailure is the same for consecutive gateway
	// failures. Default 0 (detected and counted, not ejected), as in Envoy.
	EnforcingConsecutiveGatewayFailure int `yaml:"enforcing_consecutive_gateway_failure"`
	// EnforcingSuccessRate is the same for success-rate outliers.
	// Default 100.
	EnforcingSuccessRate int `yaml:"enforcing_success_rate"`
	// SuccessRateMinimumHosts is how many hosts need
	// success_rate_request_volume requests in an interval for success-rate
	// ejection to run. Default 5.
	SuccessRateMinimumHosts int `yaml:"success_rate_minimum_hosts"`
	// SuccessRateRequestVolume is how many requests a host needs in an
	// interval to take part in success-rate analysis. Default 100.
	SuccessRateRequestVolume int `yaml:"success_rate_request_volume"`
	// SuccessRateStdevFactor, divided by 1000, is how many standard
	// deviations below the mean success rate a host must fall to be an
	// outlier. Default 1900 (1.9).
	SuccessRateStdevFactor int `yaml:"success_rate_stdev_factor"`
	// EnforcingFailurePercentage is the chance, 0–100 %, that a
	// failure-percentage outlier is really ejected. Default 0.
	EnforcingFailurePercentage int `yaml:"enforcing_failure_percentage"`
	// FailurePercentageThreshold is the failure percentage, 0–100, at or
	// above which a host is a failure-percentage outlier. Default 85.
	FailurePercentageThreshold int `yaml:"failure_percentage_threshold"`
	// FailurePercentageMinimumHosts is how many hosts need
	// failure_percentage_request_volume requests in an interval for
	// failure-percentage ejection to run. Default 5.
	FailurePercentageMinimumHosts int `yaml:"failure_percentage_minimum_hosts"`
	// FailurePercentageRequestVolume is how many requests a host needs in
	// an interval to take part in failure-percentage analysis. Default 50.
	FailurePercentageRequestVolume int `yaml:"failure_percentage_request_volume"`
	// SuccessfulActiveHealthCheckUnejectHost returns an ejected host to
	// service as soon as an active health check of it succeeds. Default
	// true, as in Envoy.
	SuccessfulActiveHealthCheckUnejectHost *bool `yaml:"successful_active_health_check_uneject_host"`
}

// Documented defaults of health_checks and outlier_detection.
const (
	DefaultHealthCheckUnhealthyThreshold      = 3
	DefaultHealthCheckHealthyThreshold        = 2
	DefaultHealthCheckExpectedStatus          = 200
	DefaultOutlierConsecutive5xx              = 5
	DefaultOutlierConsecutiveGatewayFailure   = 5
	DefaultOutlierInterval                    = 10 * time.Second
	DefaultOutlierBaseEjectionTime            = 30 * time.Second
	DefaultOutlierMaxEjectionTime             = 300 * time.Second
	DefaultOutlierMaxEjectionPercent          = 10
	DefaultOutlierEnforcingConsecutive5xx     = 100
	DefaultOutlierEnforcingGatewayFailure     = 0
	DefaultOutlierEnforcingSuccessRate        = 100
	DefaultOutlierSuccessRateMinimumHosts     = 5
	DefaultOutlierSuccessRateRequestVolume    = 100
	DefaultOutlierSuccessRateStdevFactor      = 1900
	DefaultOutlierEnforcingFailurePercentage  = 0
	DefaultOutlierFailurePercentageThreshold  = 85
	DefaultOutlierFailurePercentageMinHosts   = 5
	DefaultOutlierFailurePercentageReqVolume  = 50
	DefaultOutlierUnejectOnHealthCheckSuccess = true
)

func (c *Cluster) applyHealthDefaults(explicit func(any) bool) {
	setI := func(i *int, def int) {
		if *i == 0 && !explicit(i) {
			*i = def
		}
	}
	setD := func(d *Duration, def time.Duration) {
		if *d == 0 && !explicit(d) {
			*d = Duration(def)
		}
	}
	for i := range c.HealthChecks {
		h := &c.HealthChecks[i]
		setI(&h.UnhealthyThreshold, DefaultHealthCheckUnhealthyThreshold)
		setI(&h.HealthyThreshold, DefaultHealthCheckHealthyThreshold)
		if hh := h.HTTPHealthCheck; hh != nil {
			if hh.ExpectedStatuses == nil && !explicit(&hh.ExpectedStatuses) {
				hh.ExpectedStatuses = []StatusRange{{Start: DefaultHealthCheckExpectedStatus, End: DefaultHealthCheckExpectedStatus + 1}}
			}
			for j := range hh.RequestHeadersToAdd {
				setDefault(&hh.RequestHeadersToAdd[j].Append, true)
			}
		}
	}
	o := c.OutlierDetection
	if o == nil {
		return
	}
	setI(&o.Consecutive5xx, DefaultOutlierConsecutive5xx)
	setI(&o.ConsecutiveGatewayFailure, DefaultOutlierConsecutiveGatewayFailure)
	setD(&o.Interval, DefaultOutlierInterval)
	setD(&o.BaseEjectionTime, DefaultOutlierBaseEjectionTime)
	// Envoy: the default max_ejection_time is 300s or base_ejection_time,
	// whichever is larger, so that a long base alone stays valid.
	setD(&o.MaxEjectionTime, max(DefaultOutlierMaxEjectionTime, o.BaseEjectionTime.D()))
	setI(&o.MaxEjectionPercent, DefaultOutlierMaxEjectionPercent)
	setI(&o.EnforcingConsecutive5xx, DefaultOutlierEnforcingConsecutive5xx)
	setI(&o.EnforcingConsecutiveGatewayFailure, DefaultOutlierEnforcingGatewayFailure)
	setI(&o.EnforcingSuccessRate, DefaultOutlierEnforcingSuccessRate)
	setI(&o.SuccessRateMinimumHosts, DefaultOutlierSuccessRateMinimumHosts)
	setI(&o.SuccessRateRequestVolume, DefaultOutlierSuccessRateRequestVolume)
	setI(&o.SuccessRateStdevFactor, DefaultOutlierSuccessRateStdevFactor)
	setI(&o.EnforcingFailurePercentage, DefaultOutlierEnforcingFailurePercentage)
	setI(&o.FailurePercentageThreshold, DefaultOutlierFailurePercentageThreshold)
	setI(&o.FailurePercentageMinimumHosts, DefaultOutlierFailurePercentageMinHosts)
	setI(&o.FailurePercentageRequestVolume, DefaultOutlierFailurePercentageReqVolume)
	setDefault(&o.SuccessfulActiveHealthCheckUnejectHost, DefaultOutlierUnejectOnHealthCheckSuccess)
}

// maxHealthChecks is how many health_checks a cluster may have: Envoy
// supports one.
const maxHealthChecks = 1

func (v *validator) clusterHealth(cp string, c *Cluster) {
	hcp := fieldPath(cp, "health_checks")
	if len(c.HealthChecks) > maxHealthChecks {
		v.errorf(hcp, "at most %d health check is supported per cluster (as in Envoy), got %d", maxHealthChecks, len(c.HealthChecks))
	}
	for i := range c.HealthChecks {
		v.healthCheck(indexPath(hcp, i), &c.HealthChecks[i])
	}
	if o := c.OutlierDetection; o != nil {
		v.outlierDetection(fieldPath(cp, "outlier_detection"), o)
	}
}

func (v *validator) healthCheck(hp string, h *HealthCheck) {
	if h.Timeout <= 0 {
		v.errorf(fieldPath(hp, "timeout"), "required: a duration greater than 0, got %s", h.Timeout.D())
	}
	if h.Interval <= 0 {
		v.errorf(fieldPath(hp, "interval"), "required: a duration greater than 0, got %s", h.Interval.D())
	}
	v.healthIntRange(fieldPath(hp, "interval_jitter_percent"), h.IntervalJitterPercent, 0, 100)
	if h.UnhealthyThreshold < 1 {
		v.errorf(fieldPath(hp, "unhealthy_threshold"), "must be at least 1, got %d", h.UnhealthyThreshold)
	}
	if h.HealthyThreshold < 1 {
		v.errorf(fieldPath(hp, "healthy_threshold"), "must be at least 1, got %d", h.HealthyThreshold)
	}
	hh := h.HTTPHealthCheck
	if hh == nil {
		v.errorf(fieldPath(hp, "http_health_check"), "required: http_health_check is the only kind of health check")
		return
	}
	pp := fieldPath(hp, "http_health_check")
	switch {
	case hh.Path == "":
		v.errorf(fieldPath(pp, "path"), `required: the path to check, such as "/healthz"`)
	case !strings.HasPrefix(hh.Path, "/"):
		v.errorf(fieldPath(pp, "path"), "must start with \"/\", got %q", hh.Path)
	case strings.ContainsAny(hh.Path, " \t\r\n#"):
		v.errorf(fieldPath(pp, "path"), "must be a request path without spaces or a fragment, got %q", hh.Path)
	default:
		if _, err := url.ParseRequestURI(hh.Path); err != nil {
			v.errorf(fieldPath(pp, "path"), "must be a request path with an optional query: %v", err)
		}
	}
	if strings.ContainsAny(hh.Host, " \t\r\n/") {
		v.errorf(fieldPath(pp, "host"), "must be a host name (with an optional port), got %q", hh.Host)
	}
	esp := fieldPath(pp, "expected_statuses")
	if len(hh.ExpectedStatuses) == 0 {
		v.errorf(esp, "at least one status range is required (omit the field for the default, 200 only)")
	}
	for i, r := range hh.ExpectedStatuses {
		ip := indexPath(esp, i)
		if r.Start < 100 || r.Start > 599 {
			v.errorf(fieldPath(ip, "start"), "must be an HTTP status from 100 to 599, got %d", r.Start)
		}
		if r.End <= r.Start || r.End > 600 {
			v.errorf(fieldPath(ip, "end"), "must be greater than start (%d) and at most 600 (the range is [start, end)), got %d", r.Start, r.End)
		}
	}
	for i, a := range hh.RequestHeadersToAdd {
		ap := indexPath(fieldPath(pp, "request_headers_to_add"), i)
		v.headerName(fieldPath(ap, "key"), a.Key)
		if strings.ContainsAny(a.Value, "\r\n") {
			v.errorf(fieldPath(ap, "value"), "must not contain a line break")
		}
	}
}

func (v *validator) outlierDetection(op string, o *OutlierDetection) {
	for _, f := range []struct {
		name string
		val  int
	}{
		{"consecutive_5xx", o.Consecutive5xx},
		{"consecutive_gateway_failure", o.ConsecutiveGatewayFailure},
		{"success_rate_minimum_hosts", o.SuccessRateMinimumHosts},
		{"success_rate_request_volume", o.SuccessRateRequestVolume},
		{"success_rate_stdev_factor", o.SuccessRateStdevFactor},
		{"failure_percentage_minimum_hosts", o.FailurePercentageMinimumHosts},
		{"failure_percentage_request_volume", o.FailurePercentageRequestVolume},
	} {
		if f.val < 0 {
			v.errorf(fieldPath(op, f.name), "must not be negative, got %d", f.val)
		}
	}
	for _, f := range []struct {
		name string
		val  int
	}{
		{"max_ejection_percent", o.MaxEjectionPercent},
		{"enforcing_consecutive_5xx", o.EnforcingConsecutive5xx},
		{"enforcing_consecutive_gateway_failure", o.EnforcingConsecutiveGatewayFailure},
		{"enforcing_success_rate", o.EnforcingSuccessRate},
		{"enforcing_failure_percentage", o.EnforcingFailurePercentage},
		{"failure_percentage_threshold", o.FailurePercentageThreshold},
	} {
		v.healthIntRange(fieldPath(op, f.name), f.val, 0, 100)
	}
	if o.Interval <= 0 {
		v.errorf(fieldPath(op, "interval"), "must be greater than 0, got %s", o.Interval.D())
	}
	if o.BaseEjectionTime <= 0 {
		v.errorf(fieldPath(op, "base_ejection_time"), "must be greater than 0, got %s", o.BaseEjectionTime.D())
	} else if o.MaxEjectionTime < o.BaseEjectionTime {
		v.errorf(fieldPath(op, "max_ejection_time"), "must be at least base_ejection_time (%s), got %s", o.BaseEjectionTime.D(), o.MaxEjectionTime.D())
	}
}

// healthIntRange checks that n is in [lo, hi].
func (v *validator) healthIntRange(path string, n, lo, hi int) {
	if n < lo || n > hi {
		v.errorf(path, "must be from %d to %d, got %d", lo, hi, n)
	}
}
