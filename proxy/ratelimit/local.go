package ratelimit

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Response header names, canonical (Envoy sends them lower-case; HTTP
// header names are case-insensitive, and HTTP/2 lower-cases them).
const (
	// HeaderRateLimited is x-envoy-ratelimited, set to "true" on responses
	// refused by a rate limiter.
	HeaderRateLimited = "X-Envoy-Ratelimited"
	// HeaderLimit, HeaderRemaining and HeaderReset are the
	// draft-polli-ratelimit-headers-03 headers (enable_x_ratelimit_headers:
	// DRAFT_VERSION_03).
	HeaderLimit     = "X-Ratelimit-Limit"
	HeaderRemaining = "X-Ratelimit-Remaining"
	HeaderReset     = "X-Ratelimit-Reset"
)

// LocalBody is the body of a response refused by a local limiter, and its
// response code details.
const LocalBody = "local_rate_limited"

// Local is one compiled local_rate_limit block: a token bucket and how a
// refusal looks. A virtual host's Local is shared by its routes that have
// none of their own.
type Local struct {
	bucket *TokenBucket
	// StatPrefix roots the limiter's stats (<stat_prefix>.http_local_rate_limit.*).
	StatPrefix string
	// Stats are the limiter's stats; nil when stats are off. The proxy sets
	// them after compiling the route table, before the table serves.
	Stats    *stats.LocalRateLimitStats
	status   int
	enabled  float64 // percent
	enforced float64 // percent
	xHeaders bool
	headers  []headerOption
}

type headerOption struct {
	key, value string
	append     bool
}

// NewLocal compiles a local_rate_limit block (defaults applied and
// validated by package config). now is the bucket's clock; nil means
// time.Now.
func NewLocal(c *config.LocalRateLimit, now func() time.Time) *Local {
	if c == nil {
		return nil
	}
	tb := c.TokenBucket
	l := &Local{
		bucket:     NewTokenBucket(uint64(max(tb.MaxTokens, 1)), uint64(max(tb.TokensPerFill, 1)), tb.FillInterval.D(), now),
		StatPrefix: c.StatPrefix,
		status:     c.Status,
		enabled:    percent(c.FilterEnabled),
		enforced:   percent(c.FilterEnforced),
		xHeaders:   c.EnableXRateLimitHeaders == config.XRateLimitHeadersDraft03,
	}
	if l.status == 0 {
		l.status = config.DefaultRateLimitedStatus
	}
	for _, h := range c.ResponseHeadersToAdd {
		l.headers = append(l.headers, headerOption{key: http.CanonicalHeaderKey(h.Key), value: h.Value, append: h.Append == nil || *h.Append})
	}
	return l
}

func percent(p *float64) float64 {
	if p == nil {
		return config.DefaultFilterPercent
	}
	return *p
}

// LocalDecision is the outcome of one request's check.
type LocalDecision struct {
	// Checked reports whether the filter ran for this request
	// (filter_enabled); when false the request passes untouched.
	Checked bool
	// Refuse reports whether the request must be refused: no token, and
	// filter_enforced picked it.
	Refuse bool
	take   Take
}

// Check runs the limiter for one request and counts it in the stats, as
// Envoy's filter does: enabled for every checked request, then ok, or
// rate_limited and, when refused, enforced.
func (l *Local) Check() LocalDecision {
	if !chance(l.enabled) {
		return LocalDecision{}
	}
	st := l.Stats
	if st != nil {
		st.Enabled.Inc()
	}
	d := LocalDecision{Checked: true, take: l.bucket.Take()}
	if d.take.OK {
		if st != nil {
			st.OK.Inc()
		}
		return d
	}
	if st != nil {
		st.RateLimited.Inc()
	}
	if !chance(l.enforced) {
		return d // shadow mode: counted, not refused
	}
	if st != nil {
		st.Enforced.Inc()
	}
	d.Refuse = true
	return d
}

// chance reports true with probability pct/100.
func chance(pct float64) bool {
	return pct >= 100 || pct > 0 && rand.Float64()*100 < pct
}

// Status is the status of a refused response.
func (l *Local) Status() int { return l.status }

// XRateLimitHeaders reports whether responses carry the x-ratelimit
// headers (enable_x_ratelimit_headers: DRAFT_VERSION_03).
func (l *Local) XRateLimitHeaders() bool { return l.xHeaders }

// SetXRateLimitHeaders adds Envoy's x-ratelimit-limit (the bucket's
// max_tokens), x-ratelimit-remaining (tokens left after this request) and
// x-ratelimit-reset (whole seconds until the next fill) to h.
func (l *Local) SetXRateLimitHeaders(h http.Header, d LocalDecision) {
	h[HeaderLimit] = []string{strconv.FormatUint(l.bucket.MaxTokens(), 10)}
	h[HeaderRemaining] = []string{strconv.FormatUint(d.take.Remaining, 10)}
	h[HeaderReset] = []string{strconv.FormatInt(resetSeconds(l.bucket.FillInterval(), d.take.SinceFill), 10)}
}

// SetRefusalHeaders adds what a refused response carries besides its
// status and body: x-envoy-ratelimited: true, the block's
// response_headers_to_add (literal values) and, when enabled, the
// x-ratelimit headers.
func (l *Local) SetRefusalHeaders(h http.Header, d LocalDecision) {
	h[HeaderRateLimited] = []string{"true"}
	for _, o := range l.headers {
		if o.append {
			h[o.key] = append(h[o.key], o.value)
		} else {
			h[o.key] = []string{o.value}
		}
	}
	if l.xHeaders {
		l.SetXRateLimitHeaders(h, d)
	}
}
