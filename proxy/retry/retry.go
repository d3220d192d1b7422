// Package retry compiles a route's retry policy and answers the router's
// questions about it: may this response or failure be retried, how many
// times, and how long to wait first. The semantics follow Envoy's router
// filter (retry_on, x-envoy-retry-on, x-envoy-max-retries, fully jittered
// exponential backoff) so that Envoy users can carry their intuition over.
//
// A Policy is immutable after Compile and safe for concurrent use; the
// per-request effective policy is a value returned by ForRequest.
package retry

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Conditions is a set of retry_on conditions.
type Conditions uint32

// The retry_on conditions hopwatch understands, named as in Envoy.
const (
	// On5xx retries any 5xx response, and also connect failures, resets,
	// refused streams and per-try timeouts ("5xx").
	On5xx Conditions = 1 << iota
	// OnGatewayError retries 502, 503 and 504 responses, and also connect
	// failures, resets, refused streams and per-try timeouts ("gateway-error").
	OnGatewayError
	// OnConnectFailure retries connection failures and connect timeouts
	// ("connect-failure").
	OnConnectFailure
	// OnReset retries when the upstream does not answer at all: connection
	// failures, resets, disconnects and refused streams ("reset").
	OnReset
	// OnRetriableStatusCodes retries the policy's retriable_status_codes
	// ("retriable-status-codes").
	OnRetriableStatusCodes
	// OnRefusedStream retries an HTTP/2 REFUSED_STREAM reset ("refused-stream").
	OnRefusedStream
	// OnRetriable4xx retries 409 Conflict ("retriable-4xx").
	OnRetriable4xx
)

// conditionNames maps each condition to its retry_on spelling.
var conditionNames = [...]struct {
	c    Conditions
	name string
}{
	{On5xx, "5xx"},
	{OnGatewayError, "gateway-error"},
	{OnConnectFailure, "connect-failure"},
	{OnReset, "reset"},
	{OnRetriableStatusCodes, "retriable-status-codes"},
	{OnRefusedStream, "refused-stream"},
	{OnRetriable4xx, "retriable-4xx"},
}

// ParseCondition returns the condition named s (as written in retry_on or
// x-envoy-retry-on; surrounding spaces are ignored, case matters as in
// Envoy) and whether s is known.
func ParseCondition(s string) (Conditions, bool) {
	s = strings.TrimSpace(s)
	for _, n := range conditionNames {
		if n.name == s {
			return n.c, true
		}
	}
	return 0, false
}

// Has reports whether every condition in c is in the set.
func (cs Conditions) Has(c Conditions) bool { return cs&c == c && c != 0 }

// String renders the set as a retry_on list, for logs and /config_dump.
func (cs Conditions) String() string {
	var names []string
	for _, n := range conditionNames {
		if cs&n.c != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// knownConditionNames lists the accepted values for error messages.
func knownConditionNames() string {
	names := make([]string, len(conditionNames))
	for i, n := range conditionNames {
		names[i] = n.name
	}
	return strings.Join(names, ", ")
}

// Envoy's defaults for a retry policy.
const (
	// DefaultNumRetries is used when num_retries is not set.
	DefaultNumRetries = 1
	// DefaultBaseInterval is used when retry_back_off.base_interval is not set.
	DefaultBaseInterval = 25 * time.Millisecond
	// maxIntervalFactor sets the default max_interval as a multiple of the base.
	maxIntervalFactor = 10
)

// Request headers a client may use to tune retries when the policy honours them.
const (
	// HeaderRetryOn adds conditions to the policy (a comma-separated list).
	HeaderRetryOn = "X-Envoy-Retry-On"
	// HeaderMaxRetries overrides num_retries (a non-negative integer).
	HeaderMaxRetries = "X-Envoy-Max-Retries"
	// HeaderRetriableStatusCodes adds retriable status codes (a
	// comma-separated list), used with retriable-status-codes.
	HeaderRetriableStatusCodes = "X-Envoy-Retriable-Status-Codes"
)

// Failure is a way an upstream attempt can fail without a response.
type Failure int

// The upstream failures the router reports to RetryOnFailure.
const (
	// ConnectFailure is a failed or timed-out connection attempt.
	ConnectFailure Failure = iota + 1
	// Reset is a reset or disconnect after the connection was established.
	Reset
	// RefusedStream is an HTTP/2 REFUSED_STREAM reset: the upstream did not
	// process the request, so a retry is always safe.
	RefusedStream
	// PerTryTimeout is an attempt that exceeded per_try_timeout.
	PerTryTimeout
)

// String names the failure for logs.
func (f Failure) String() string {
	switch f {
	case ConnectFailure:
		return "connect_failure"
	case Reset:
		return "reset"
	case RefusedStream:
		return "refused_stream"
	case PerTryTimeout:
		return "per_try_timeout"
	default:
		return "Failure(" + strconv.Itoa(int(f)) + ")"
	}
}

// Policy is a compiled retry policy. The zero value never retries.
type Policy struct {
	// On is the set of retry_on conditions.
	On Conditions
	// NumRetries is the maximum number of retries (attempts minus one).
	NumRetries int
	// PerTryTimeout bounds each attempt; 0 means only the route timeout applies.
	PerTryTimeout time.Duration
	// BaseInterval and MaxInterval bound the exponential backoff.
	BaseInterval, MaxInterval time.Duration
	// RetriableStatusCodes are retried when On has OnRetriableStatusCodes.
	// Shared between copies: treat as read-only.
	RetriableStatusCodes []int
	// HonorRequestHeaders lets x-envoy-retry-on, x-envoy-max-retries and
	// x-envoy-retriable-status-codes adjust the policy per request.
	HonorRequestHeaders bool
}

// Compile checks p and fills in Envoy's defaults: one retry, a 25ms base
// interval and a max interval of ten times the base. A nil p compiles to a
// nil Policy (no retries) without error.
func Compile(p *config.RetryPolicy) (*Policy, error) {
	if p == nil {
		return nil, nil
	}
	out := &Policy{
		NumRetries:          DefaultNumRetries,
		PerTryTimeout:       p.PerTryTimeout.D(),
		BaseInterval:        p.RetryBackOff.BaseInterval.D(),
		MaxInterval:         p.RetryBackOff.MaxInterval.D(),
		HonorRequestHeaders: p.HonorRequestHeaders,
	}
	if len(p.RetryOn) == 0 {
		return nil, fmt.Errorf("retry_on: at least one condition is required (allowed: %s)", knownConditionNames())
	}
	for i, name := range p.RetryOn {
		c, ok := ParseCondition(name)
		if !ok {
			return nil, fmt.Errorf("retry_on[%d]: unknown condition %q (allowed: %s)", i, name, knownConditionNames())
		}
		out.On |= c
	}
	if p.NumRetries != nil {
		if *p.NumRetries < 0 {
			return nil, fmt.Errorf("num_retries: %d is negative", *p.NumRetries)
		}
		out.NumRetries = *p.NumRetries
	}
	if out.PerTryTimeout < 0 {
		return nil, fmt.Errorf("per_try_timeout: %v is negative", out.PerTryTimeout)
	}
	for i, code := range p.RetriableStatusCodes {
		if code < 100 || code > 599 {
			return nil, fmt.Errorf("retriable_status_codes[%d]: %d is not an HTTP status (100-599)", i, code)
		}
	}
	if len(p.RetriableStatusCodes) > 0 {
		out.RetriableStatusCodes = slices.Clone(p.RetriableStatusCodes)
	}
	switch {
	case out.BaseInterval < 0:
		return nil, fmt.Errorf("retry_back_off.base_interval: %v is negative", out.BaseInterval)
	case out.MaxInterval < 0:
		return nil, fmt.Errorf("retry_back_off.max_interval: %v is negative", out.MaxInterval)
	}
	if out.BaseInterval == 0 {
		out.BaseInterval = DefaultBaseInterval
	}
	if out.MaxInterval == 0 {
		out.MaxInterval = maxIntervalFactor * out.BaseInterval
	}
	if out.MaxInterval < out.BaseInterval {
		return nil, fmt.Errorf("retry_back_off.max_interval: %v is less than base_interval %v", out.MaxInterval, out.BaseInterval)
	}
	return out, nil
}

// ForRequest returns the policy in effect for a request with headers h.
//
// When the policy honours request headers, x-envoy-retry-on adds conditions
// (unknown names are ignored, as in Envoy), x-envoy-max-retries replaces
// NumRetries (a value that is not a non-negative integer is ignored) and
// x-envoy-retriable-status-codes adds status codes (invalid entries are
// ignored). Otherwise the policy is returned unchanged.
//
// A nil receiver means the route has no retry policy; the result is then the
// zero Policy, which never retries, whatever the headers say. hopwatch
// differs from Envoy here on purpose: a client cannot switch retries on for
// a route whose owner did not configure them.
func (p *Policy) ForRequest(h http.Header) Policy {
	if p == nil {
		return Policy{}
	}
	out := *p
	if !p.HonorRequestHeaders {
		return out
	}
	for _, v := range h.Values(HeaderRetryOn) {
		for name := range strings.SplitSeq(v, ",") {
			if c, ok := ParseCondition(name); ok {
				out.On |= c
			}
		}
	}
	if v := h.Get(HeaderMaxRetries); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			out.NumRetries = n
		}
	}
	if vs := h.Values(HeaderRetriableStatusCodes); len(vs) > 0 {
		codes := out.RetriableStatusCodes
		copied := false
		for _, v := range vs {
			for s := range strings.SplitSeq(v, ",") {
				code, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || code < 100 || code > 599 || slices.Contains(codes, code) {
					continue
				}
				if !copied {
					// Never append into the compiled policy's shared slice.
					codes = slices.Clone(codes)
					copied = true
				}
				codes = append(codes, code)
			}
		}
		out.RetriableStatusCodes = codes
	}
	return out
}

// RetryOnStatus reports whether a response with this status may be retried.
// It does not count attempts; the caller compares against NumRetries.
func (p *Policy) RetryOnStatus(code int) bool {
	if p == nil {
		return false
	}
	switch {
	case p.On&On5xx != 0 && code >= 500 && code <= 599:
		return true
	case p.On&OnGatewayError != 0 && (code == 502 || code == 503 || code == 504):
		return true
	case p.On&OnRetriable4xx != 0 && code == http.StatusConflict:
		return true
	case p.On&OnRetriableStatusCodes != 0 && slices.Contains(p.RetriableStatusCodes, code):
		return true
	}
	return false
}

// RetryOnFailure reports whether an attempt that failed without a response
// may be retried, following Envoy's RetryStateImpl: reset, 5xx and
// gateway-error cover every reset (a reset turns into a 5xx downstream);
// connect-failure and refused-stream cover only their own failure. A per-try
// timeout is retried only with 5xx or gateway-error, because Envoy treats
// it as a gateway error (a 504) rather than as a reset.
func (p *Policy) RetryOnFailure(f Failure) bool {
	if p == nil {
		return false
	}
	switch f {
	case ConnectFailure:
		return p.On&(On5xx|OnGatewayError|OnReset|OnConnectFailure) != 0
	case Reset:
		return p.On&(On5xx|OnGatewayError|OnReset) != 0
	case RefusedStream:
		return p.On&(On5xx|OnGatewayError|OnReset|OnRefusedStream) != 0
	case PerTryTimeout:
		return p.On&(On5xx|OnGatewayError) != 0
	}
	return false
}

// Backoff returns how long to wait before retry number retryNumber (0 for
// the first retry), given a uniformly random rnd: Envoy's fully jittered
// exponential backoff, a duration in [0, min(BaseInterval·2^retryNumber,
// MaxInterval)). Full jitter spreads the retries of many clients that
// failed together, so that they do not return in lockstep.
func (p *Policy) Backoff(retryNumber int, rnd uint64) time.Duration {
	if p == nil || p.BaseInterval <= 0 {
		return 0
	}
	limit := p.MaxInterval
	if limit <= 0 {
		limit = maxIntervalFactor * p.BaseInterval
	}
	ceiling := limit
	if retryNumber < 0 {
		retryNumber = 0
	}
	// base<<n overflows long before n reaches 63; check the shift first.
	base := uint64(p.BaseInterval)
	if retryNumber < 63 && base <= uint64(limit)>>uint(retryNumber) {
		ceiling = time.Duration(base << uint(retryNumber))
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rnd % uint64(ceiling))
}
