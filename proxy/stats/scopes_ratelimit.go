package stats

import "reflect"

// TagLocalHTTPRateLimitPrefix is Envoy's tag for the stat_prefix of the
// HTTP local rate limit filter: Envoy's extractor
// "$.http_local_rate_limit.**" takes the first segment of
// <stat_prefix>.http_local_rate_limit.<stat>, leaving
// http_local_rate_limit.<stat> (Prometheus:
// envoy_http_local_rate_limit_<stat>{envoy_local_http_ratelimit_prefix}).
const TagLocalHTTPRateLimitPrefix = "envoy.local_http_ratelimit_prefix"

// localRateLimitScope is where a local limiter's stats live. Unlike every
// other scope it starts with its tag value: Envoy roots these stats at the
// filter's stat_prefix, not under http.<prefix>.
var localRateLimitScope = scopeDef{
	flat:   "{" + TagLocalHTTPRateLimitPrefix + "}.http_local_rate_limit.",
	ext:    "http_local_rate_limit.",
	params: []string{TagLocalHTTPRateLimitPrefix},
	tags:   []string{TagLocalHTTPRateLimitPrefix},
}

// LocalRateLimitStats are Envoy's HTTP local rate limit filter stats,
// <stat_prefix>.http_local_rate_limit.*. Limiters with the same
// stat_prefix share them.
type LocalRateLimitStats struct {
	Enabled     *Counter `stat:"enabled" help:"Requests checked against the local rate limiter's token bucket"`
	Enforced    *Counter `stat:"enforced" help:"Rate limited requests that were refused"`
	RateLimited *Counter `stat:"rate_limited" help:"Requests that found no token, refused or not (shadow mode)"`
	OK          *Counter `stat:"ok" help:"Requests that took a token"`
}

// RateLimitStats are Envoy's HTTP rate limit filter stats, charged to the
// cluster the request is routed to: cluster.<name>.ratelimit.*.
type RateLimitStats struct {
	OK                 *Counter `stat:"ok" help:"Requests the rate limit service allowed"`
	Error              *Counter `stat:"error" help:"Errors and timeouts contacting the rate limit service"`
	OverLimit          *Counter `stat:"over_limit" help:"Requests the rate limit service refused as over the limit"`
	FailureModeAllowed *Counter `stat:"failure_mode_allowed" help:"Requests allowed through because the rate limit service failed and failure_mode_deny is false"`
}

// LocalRateLimitStats returns <statPrefix>.http_local_rate_limit.*.
func (s *Store) LocalRateLimitStats(statPrefix string) *LocalRateLimitStats {
	return lookup(s, "localratelimit\x00"+statPrefix, func(b *builder) *LocalRateLimitStats {
		l := &LocalRateLimitStats{}
		b.fill(reflect.ValueOf(l).Elem(), newScope(localRateLimitScope, statPrefix))
		return l
	})
}
