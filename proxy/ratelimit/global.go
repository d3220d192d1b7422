package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Response code details of the global limiter's local replies (Envoy's).
const (
	DetailsRateLimited = "request_rate_limited"
	DetailsError       = "rate_limiter_error"
)

// Outcome is what the global limiter decided for a request.
type Outcome uint8

// The global limiter's outcomes.
const (
	// Allow: the service answered OK (or the limiter was not asked).
	Allow Outcome = iota
	// OverLimit: the service answered OVER_LIMIT; refuse.
	OverLimit
	// FailedAllow: the call failed and failure_mode_deny is false; pass.
	FailedAllow
	// FailedDeny: the call failed and failure_mode_deny is true; refuse.
	FailedDeny
	// Canceled: the request's own context ended (the client left) before
	// the service answered; nothing is counted, as Envoy cancels the call
	// without completing it, and the request goes no further.
	Canceled
)

// Global is one listener's global rate limiter: the service's client and
// the rate_limit_service settings.
type Global struct {
	// SourceCluster is node.cluster, the source_cluster action's value.
	SourceCluster     string
	client            *Client
	domain            string
	timeout           time.Duration
	failureModeDeny   bool
	xHeaders          bool
	rateLimitedStatus int
	statusOnError     int
}

// NewGlobal dials the rate-limit service of c (validated by package
// config) at the endpoints of its cluster cl.
func NewGlobal(c *config.RateLimitService, cl *config.Cluster) (*Global, error) {
	if cl == nil {
		return nil, fmt.Errorf("rate_limit_service.cluster: unknown cluster %q", c.Cluster)
	}
	addrs := make([]string, 0, len(cl.Endpoints))
	for _, e := range cl.Endpoints {
		addrs = append(addrs, e.Address)
	}
	client, err := Dial(addrs, cl.ConnectTimeout.D())
	if err != nil {
		return nil, fmt.Errorf("rate_limit_service: %w", err)
	}
	return newGlobal(c, client), nil
}

func newGlobal(c *config.RateLimitService, client *Client) *Global {
	g := &Global{
		client: client, domain: c.Domain, timeout: c.Timeout.D(), failureModeDeny: c.FailureModeDeny,
		xHeaders:          c.EnableXRateLimitHeaders == config.XRateLimitHeadersDraft03,
		rateLimitedStatus: c.RateLimitedStatus, statusOnError: c.StatusOnError,
	}
	if g.timeout <= 0 {
		g.timeout = config.DefaultRateLimitTimeout
	}
	if g.rateLimitedStatus == 0 {
		g.rateLimitedStatus = config.DefaultRateLimitedStatus
	}
	if g.statusOnError == 0 {
		g.statusOnError = config.DefaultRateLimitStatusOnError
	}
	return g
}

// Close closes the service connection.
func (g *Global) Close() error { return g.client.Close() }

// GlobalDecision is the global limiter's answer for one request.
type GlobalDecision struct {
	Outcome Outcome
	// Status is the status of a refused response (OverLimit, FailedDeny).
	Status int
	// Err is the call's failure (FailedAllow, FailedDeny).
	Err error
	// ResponseHeaders go on the response, whether the request is refused
	// (OverLimit) or forwarded (Allow): the service's
	// response_headers_to_add and, when enabled, the x-ratelimit headers.
	ResponseHeaders http.Header
	// RequestHeaders go on the upstream request (Allow): the service's
	// request_headers_to_add.
	RequestHeaders http.Header
	// Body is the body of an OverLimit refusal: the service's raw_body, or
	// empty as in Envoy.
	Body string
}

// requestEnded reports whether the request's own context has ended, so
// that the call's outcome, whatever it is, no longer matters. ctx.Err()
// alone is not enough: gRPC sends the deadline to the service, whose own
// timer may end the call (or answer it) a moment before ctx's timer fires
// here. So a deadline of ctx that has passed, and came before the service
// timeout's (own), counts as ended too.
func requestEnded(ctx context.Context, own time.Time) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && d.Before(own) && !time.Now().Before(d)
}

// Check asks the service about descs and counts the answer in st
// (cluster.<routed cluster>.ratelimit.*; never nil: a null store's when
// stats are off). With no descriptors the service is not asked and the
// request is allowed.
func (g *Global) Check(ctx context.Context, descs []Descriptor, st *stats.RateLimitStats) GlobalDecision {
	if len(descs) == 0 {
		return GlobalDecision{}
	}
	own := time.Now().Add(g.timeout)
	cctx, cancel := context.WithDeadline(ctx, own)
	res, err := g.client.ShouldRateLimit(cctx, g.domain, descs)
	cancel()
	if requestEnded(ctx, own) {
		if err == nil { // answered just as the request ended
			err = fmt.Errorf("the request ended before the rate-limit decision was used: %w", context.DeadlineExceeded)
			if ctx.Err() != nil {
				err = fmt.Errorf("the request ended before the rate-limit decision was used: %w", ctx.Err())
			}
		}
		return GlobalDecision{Outcome: Canceled, Err: err}
	}
	if err != nil {
		st.Error.Inc()
		if g.failureModeDeny {
			return GlobalDecision{Outcome: FailedDeny, Status: g.statusOnError, Err: err}
		}
		st.FailureModeAllowed.Inc()
		return GlobalDecision{Outcome: FailedAllow, Err: err}
	}
	d := GlobalDecision{ResponseHeaders: headerValues(res.GetResponseHeadersToAdd())}
	if g.xHeaders {
		if limit, remaining, reset, ok := xRateLimitValues(res.GetStatuses()); ok {
			if d.ResponseHeaders == nil {
				d.ResponseHeaders = http.Header{}
			}
			d.ResponseHeaders[HeaderLimit] = []string{limit}
			d.ResponseHeaders[HeaderRemaining] = []string{remaining}
			d.ResponseHeaders[HeaderReset] = []string{reset}
		}
	}
	if res.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		st.OverLimit.Inc()
		d.Outcome, d.Status, d.Body = OverLimit, g.rateLimitedStatus, string(res.GetRawBody())
		if d.ResponseHeaders == nil {
			d.ResponseHeaders = http.Header{}
		}
		d.ResponseHeaders[HeaderRateLimited] = []string{"true"}
		return d
	}
	// OK, or UNKNOWN, which Envoy treats as OK.
	st.OK.Inc()
	d.RequestHeaders = headerValues(res.GetRequestHeadersToAdd())
	return d
}

// headerValues converts the service's header list; nil when empty.
func headerValues[T interface {
	GetKey() string
	GetValue() string
	GetRawValue() []byte
}](hs []T) http.Header {
	if len(hs) == 0 {
		return nil
	}
	h := make(http.Header, len(hs))
	for _, hv := range hs {
		v := hv.GetValue()
		if v == "" {
			v = string(hv.GetRawValue())
		}
		if k := hv.GetKey(); k != "" {
			h.Add(k, v)
		}
	}
	return h
}

// xRateLimitValues renders Envoy's DRAFT_VERSION_03 headers from the
// descriptor statuses (XRateLimitHeaderUtils): the status with the fewest
// remaining requests (the first among equals) gives x-ratelimit-limit's
// leading number, x-ratelimit-remaining and x-ratelimit-reset (whole
// seconds); x-ratelimit-limit then lists every limit's quota policy,
// ", <requests>;w=<window seconds>[;name="<name>"]". Statuses without a
// current limit are skipped; ok is false when none has one.
func xRateLimitValues(statuses []*rlsv3.RateLimitResponse_DescriptorStatus) (limit, remaining, reset string, ok bool) {
	var minStatus *rlsv3.RateLimitResponse_DescriptorStatus
	var policy strings.Builder
	for _, s := range statuses {
		cl := s.GetCurrentLimit()
		if cl == nil {
			continue
		}
		if minStatus == nil || s.GetLimitRemaining() < minStatus.GetLimitRemaining() {
			minStatus = s
		}
		window := unitSeconds(cl.GetUnit())
		if m := cl.GetUnitMultiplier(); m != nil && m.GetValue() > 0 {
			window *= uint64(m.GetValue())
		}
		if window == 0 {
			continue
		}
		policy.WriteString(", ")
		policy.WriteString(strconv.FormatUint(uint64(cl.GetRequestsPerUnit()), 10))
		policy.WriteString(";w=")
		policy.WriteString(strconv.FormatUint(window, 10))
		if n := cl.GetName(); n != "" {
			policy.WriteString(`;name="`)
			policy.WriteString(n)
			policy.WriteByte('"')
		}
	}
	if minStatus == nil {
		return "", "", "", false
	}
	limit = strconv.FormatUint(uint64(minStatus.GetCurrentLimit().GetRequestsPerUnit()), 10) + policy.String()
	remaining = strconv.FormatUint(uint64(minStatus.GetLimitRemaining()), 10)
	reset = strconv.FormatInt(minStatus.GetDurationUntilReset().GetSeconds(), 10)
	return limit, remaining, reset, true
}

// unitSeconds is Envoy's convertRateLimitUnit.
func unitSeconds(u rlsv3.RateLimitResponse_RateLimit_Unit) uint64 {
	switch u {
	case rlsv3.RateLimitResponse_RateLimit_SECOND:
		return 1
	case rlsv3.RateLimitResponse_RateLimit_MINUTE:
		return 60
	case rlsv3.RateLimitResponse_RateLimit_HOUR:
		return 3600
	case rlsv3.RateLimitResponse_RateLimit_DAY:
		return 86400
	case rlsv3.RateLimitResponse_RateLimit_WEEK:
		return 604800
	case rlsv3.RateLimitResponse_RateLimit_MONTH:
		return 2592000
	case rlsv3.RateLimitResponse_RateLimit_YEAR:
		return 31536000
	}
	return 0
}
