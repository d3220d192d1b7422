package config

import (
	"slices"
	"strings"
	"time"
)

// Rate limiting: Envoy's local rate limit filter
// (envoy.filters.http.local_ratelimit) and its global rate limit filter
// (envoy.filters.http.ratelimit, which asks a service speaking
// envoy.service.ratelimit.v3), flattened into the listener, virtual host
// and route they apply to. docs/config.md ("Rate limiting") is the
// reference.

// Rate-limiting defaults. Envoy's, except where the comment says otherwise.
const (
	// DefaultLocalRateLimitStatPrefix names the local limiter's stats
	// (<stat_prefix>.http_local_rate_limit.*) when stat_prefix is not set.
	// Envoy requires a stat_prefix; this is the name its documentation uses.
	DefaultLocalRateLimitStatPrefix = "http_local_rate_limiter"
	// DefaultTokensPerFill is token_bucket.tokens_per_fill's default.
	DefaultTokensPerFill = 1
	// DefaultRateLimitedStatus answers a refused request (local and global).
	DefaultRateLimitedStatus = 429
	// DefaultRateLimitStatusOnError answers a request that failure_mode_deny
	// refuses because the rate-limit service failed.
	DefaultRateLimitStatusOnError = 500
	// DefaultRateLimitTimeout bounds one call to the rate-limit service.
	DefaultRateLimitTimeout = 20 * time.Millisecond
	// DefaultFilterPercent is filter_enabled's and filter_enforced's
	// default. Envoy defaults both to 0% (and reads them from runtime);
	// hopwatch has no runtime, so a configured limiter is on.
	DefaultFilterPercent = 100.0
	// MinFillInterval is Envoy's lower bound for token_bucket.fill_interval.
	MinFillInterval = 50 * time.Millisecond
)

// The x-ratelimit header modes (Envoy's XRateLimitHeadersRFCVersion).
const (
	XRateLimitHeadersOff     = "DISABLE_X_RATELIMIT_HEADERS"
	XRateLimitHeadersDraft03 = "DRAFT_VERSION_03"
)

var allowedXRateLimitHeaders = []string{XRateLimitHeadersOff, XRateLimitHeadersDraft03}

// LocalRateLimit is a token bucket (Envoy's local_ratelimit filter config,
// flattened). Each configured block is one bucket: on a route it is the
// route's own; on a virtual host it is shared by the host's routes that
// have none of their own. Buckets start full and are rebuilt (full) when
// the configuration reloads.
type LocalRateLimit struct {
	// StatPrefix roots the limiter's stats:
	// <stat_prefix>.http_local_rate_limit.{enabled,ok,rate_limited,enforced}.
	// One dot-free segment, as Envoy's tag extractor takes it. Default
	// "http_local_rate_limiter". Limiters may share a prefix (and so their
	// stats).
	StatPrefix string `yaml:"stat_prefix"`
	// TokenBucket is the bucket. Required.
	TokenBucket TokenBucket `yaml:"token_bucket"`
	// Status answers a refused request; 400–599. Default 429.
	Status int `yaml:"status"`
	// FilterEnabled is the percentage (0–100) of requests that are checked
	// against the bucket at all (counted in enabled). Default 100.
	FilterEnabled *float64 `yaml:"filter_enabled"`
	// FilterEnforced is the percentage (0–100) of limited requests that are
	// refused (counted in enforced); the others pass, counted only in
	// rate_limited (shadow mode). Default 100.
	FilterEnforced *float64 `yaml:"filter_enforced"`
	// EnableXRateLimitHeaders is DISABLE_X_RATELIMIT_HEADERS (default) or
	// DRAFT_VERSION_03, which adds x-ratelimit-limit, x-ratelimit-remaining
	// and x-ratelimit-reset to every response of a checked request.
	EnableXRateLimitHeaders string `yaml:"enable_x_ratelimit_headers"`
	// ResponseHeadersToAdd are added to refused responses.
	ResponseHeadersToAdd []HeaderValueOption `yaml:"response_headers_to_add"`
}

// TokenBucket is Envoy's type.v3.TokenBucket: it holds at most MaxTokens,
// starts full, and gains TokensPerFill every FillInterval; a request takes
// one token or is refused.
type TokenBucket struct {
	// MaxTokens is the bucket's capacity. Required, at least 1.
	MaxTokens int `yaml:"max_tokens"`
	// TokensPerFill is added every fill_interval. Default 1.
	TokensPerFill int `yaml:"tokens_per_fill"`
	// FillInterval is the fill period. Required, at least 50ms (Envoy's bound).
	FillInterval Duration `yaml:"fill_interval"`
}

// RateLimit is one of Envoy's route.RateLimit entries: a list of actions
// that build one descriptor for the global rate-limit service. If any
// action cannot produce its entry (a missing header without
// skip_if_absent, an unmatched header_value_match, a remote address that
// is not IP), the whole descriptor is left out of the request, as in Envoy.
type RateLimit struct {
	// Actions build the descriptor's entries, in order. Required.
	Actions []RateLimitAction `yaml:"actions"`
}

// RateLimitAction is one descriptor entry. Exactly one field is set.
type RateLimitAction struct {
	// RequestHeaders: (descriptor_key, value of header_name).
	RequestHeaders *RequestHeadersAction `yaml:"request_headers"`
	// RemoteAddress: ("remote_address", the trusted client address, as
	// use_remote_address and xff_num_trusted_hops decide it).
	RemoteAddress *EmptyAction `yaml:"remote_address"`
	// GenericKey: (descriptor_key, descriptor_value).
	GenericKey *GenericKeyAction `yaml:"generic_key"`
	// DestinationCluster: ("destination_cluster", the routed cluster).
	DestinationCluster *EmptyAction `yaml:"destination_cluster"`
	// SourceCluster: ("source_cluster", node.cluster).
	SourceCluster *EmptyAction `yaml:"source_cluster"`
	// HeaderValueMatch: (descriptor_key, descriptor_value) when the request
	// headers match (or, with expect_match false, do not match).
	HeaderValueMatch *HeaderValueMatchAction `yaml:"header_value_match"`
}

// EmptyAction is an action without settings, written {}.
type EmptyAction struct{}

// RequestHeadersAction is Envoy's RateLimit.Action.RequestHeaders.
type RequestHeadersAction struct {
	// HeaderName is the request header to read (first value); :authority,
	// :method and :path name the pseudo-headers. Required.
	HeaderName string `yaml:"header_name"`
	// DescriptorKey is the entry's key. Required.
	DescriptorKey string `yaml:"descriptor_key"`
	// SkipIfAbsent leaves the entry out, rather than the whole descriptor,
	// when the header is missing. Default false.
	SkipIfAbsent bool `yaml:"skip_if_absent"`
}

// GenericKeyAction is Envoy's RateLimit.Action.GenericKey.
type GenericKeyAction struct {
	// DescriptorValue is the entry's value. Required.
	DescriptorValue string `yaml:"descriptor_value"`
	// DescriptorKey is the entry's key. Default "generic_key".
	DescriptorKey string `yaml:"descriptor_key"`
}

// HeaderValueMatchAction is Envoy's RateLimit.Action.HeaderValueMatch.
type HeaderValueMatchAction struct {
	// DescriptorValue is the entry's value. Required.
	DescriptorValue string `yaml:"descriptor_value"`
	// DescriptorKey is the entry's key. Default "header_match".
	DescriptorKey string `yaml:"descriptor_key"`
	// ExpectMatch: the entry is produced when the headers match (true,
	// default) or when they do not (false).
	ExpectMatch *bool `yaml:"expect_match"`
	// Headers must all match, as a route's match.headers. Required.
	Headers []HeaderMatcher `yaml:"headers"`
}

// RateLimitService is the global rate-limit service (Envoy's ratelimit
// filter config: envoy.service.ratelimit.v3 over gRPC). The proxy keeps
// one gRPC connection per listener configuration to the cluster's
// endpoints, and asks ShouldRateLimit for every request whose route and
// virtual host rate_limits produce at least one descriptor.
type RateLimitService struct {
	// Cluster is the service's cluster; it must use protocol h2c. Required.
	Cluster string `yaml:"cluster"`
	// Domain is the rate-limit domain of the service's configuration. Required.
	Domain string `yaml:"domain"`
	// Timeout bounds each call. Default 20ms (Envoy's).
	Timeout Duration `yaml:"timeout"`
	// FailureModeDeny refuses requests (status_on_error, flag RLSE) when
	// the service fails or times out. Default false: they pass, counted in
	// cluster.<target>.ratelimit.failure_mode_allowed.
	FailureModeDeny bool `yaml:"failure_mode_deny"`
	// EnableXRateLimitHeaders is DISABLE_X_RATELIMIT_HEADERS (default) or
	// DRAFT_VERSION_03: x-ratelimit-limit, -remaining and -reset from the
	// service's answer, on every response of a checked request.
	EnableXRateLimitHeaders string `yaml:"enable_x_ratelimit_headers"`
	// RateLimitedStatus answers an OVER_LIMIT request; 400–599. Default 429.
	RateLimitedStatus int `yaml:"rate_limited_status"`
	// StatusOnError answers a request refused by failure_mode_deny;
	// 400–599. Default 500.
	StatusOnError int `yaml:"status_on_error"`
}

func (l *Listener) applyRateLimitDefaults(explicit func(any) bool) {
	if s := l.RateLimitService; s != nil {
		if s.Timeout == 0 && !explicit(&s.Timeout) {
			s.Timeout = Duration(DefaultRateLimitTimeout)
		}
		if s.EnableXRateLimitHeaders == "" {
			s.EnableXRateLimitHeaders = XRateLimitHeadersOff
		}
		if s.RateLimitedStatus == 0 && !explicit(&s.RateLimitedStatus) {
			s.RateLimitedStatus = DefaultRateLimitedStatus
		}
		if s.StatusOnError == 0 && !explicit(&s.StatusOnError) {
			s.StatusOnError = DefaultRateLimitStatusOnError
		}
	}
	for i := range l.VirtualHosts {
		vh := &l.VirtualHosts[i]
		vh.LocalRateLimit.applyDefaults(explicit)
		applyRateLimitActionDefaults(vh.RateLimits)
		for j := range vh.Routes {
			r := &vh.Routes[j]
			r.LocalRateLimit.applyDefaults(explicit)
			if r.Route != nil {
				applyRateLimitActionDefaults(r.Route.RateLimits)
			}
		}
	}
}

func (lr *LocalRateLimit) applyDefaults(explicit func(any) bool) {
	if lr == nil {
		return
	}
	if lr.StatPrefix == "" && !explicit(&lr.StatPrefix) {
		lr.StatPrefix = DefaultLocalRateLimitStatPrefix
	}
	if lr.TokenBucket.TokensPerFill == 0 && !explicit(&lr.TokenBucket.TokensPerFill) {
		lr.TokenBucket.TokensPerFill = DefaultTokensPerFill
	}
	if lr.Status == 0 && !explicit(&lr.Status) {
		lr.Status = DefaultRateLimitedStatus
	}
	for _, p := range []**float64{&lr.FilterEnabled, &lr.FilterEnforced} {
		setDefault(p, DefaultFilterPercent)
	}
	if lr.EnableXRateLimitHeaders == "" {
		lr.EnableXRateLimitHeaders = XRateLimitHeadersOff
	}
	(&HeadersMutation{ResponseHeadersToAdd: lr.ResponseHeadersToAdd}).applyDefaults()
}

func applyRateLimitActionDefaults(rls []RateLimit) {
	for i := range rls {
		for j := range rls[i].Actions {
			a := &rls[i].Actions[j]
			if g := a.GenericKey; g != nil && g.DescriptorKey == "" {
				g.DescriptorKey = "generic_key"
			}
			if h := a.HeaderValueMatch; h != nil {
				if h.DescriptorKey == "" {
					h.DescriptorKey = "header_match"
				}
				setDefault(&h.ExpectMatch, true)
			}
		}
	}
}

// listenerRateLimits checks the listener's rate_limit_service and every
// local_rate_limit and rate_limits below it.
func (v *validator) listenerRateLimits(lp string, l *Listener) {
	if s := l.RateLimitService; s != nil {
		v.rateLimitService(fieldPath(lp, "rate_limit_service"), s)
	}
	hasRateLimits := false
	for i := range l.VirtualHosts {
		vh := &l.VirtualHosts[i]
		vp := indexPath(fieldPath(lp, "virtual_hosts"), i)
		if vh.LocalRateLimit != nil {
			v.localRateLimit(fieldPath(vp, "local_rate_limit"), vh.LocalRateLimit)
		}
		v.rateLimits(fieldPath(vp, "rate_limits"), vh.RateLimits)
		hasRateLimits = hasRateLimits || len(vh.RateLimits) > 0
		for j := range vh.Routes {
			r := &vh.Routes[j]
			rp := indexPath(fieldPath(vp, "routes"), j)
			if r.LocalRateLimit != nil {
				v.localRateLimit(fieldPath(rp, "local_rate_limit"), r.LocalRateLimit)
			}
			if r.Route != nil {
				v.rateLimits(fieldPath(rp, "route.rate_limits"), r.Route.RateLimits)
				hasRateLimits = hasRateLimits || len(r.Route.RateLimits) > 0
			}
		}
	}
	if hasRateLimits && l.RateLimitService == nil {
		v.errorf(fieldPath(lp, "rate_limit_service"), "required: rate_limits are configured under this listener but no rate_limit_service says where to send their descriptors")
	}
}

func (v *validator) rateLimitService(sp string, s *RateLimitService) {
	cp := fieldPath(sp, "cluster")
	switch {
	case s.Cluster == "":
		v.errorf(cp, "required: the h2c cluster of the rate-limit service")
	case !v.clusters[s.Cluster]:
		v.clusterRef(cp, s.Cluster)
	case v.cfg != nil:
		if c := v.cfg.Cluster(s.Cluster); c != nil && c.Protocol != "h2c" {
			v.errorf(cp, "cluster %q has protocol %q; the rate-limit service speaks gRPC, which needs a cluster with protocol: h2c", s.Cluster, c.Protocol)
		}
	}
	if s.Domain == "" {
		v.errorf(fieldPath(sp, "domain"), "required: the rate-limit domain of the service's configuration")
	}
	if s.Timeout <= 0 {
		v.errorf(fieldPath(sp, "timeout"), "must be greater than 0, got %s", s.Timeout.D())
	}
	v.oneOf(fieldPath(sp, "enable_x_ratelimit_headers"), s.EnableXRateLimitHeaders, allowedXRateLimitHeaders)
	v.errorStatus(fieldPath(sp, "rate_limited_status"), s.RateLimitedStatus)
	v.errorStatus(fieldPath(sp, "status_on_error"), s.StatusOnError)
}

func (v *validator) errorStatus(path string, status int) {
	if status < 400 || status > 599 {
		v.errorf(path, "must be an HTTP error status from 400 to 599, got %d", status)
	}
}

func (v *validator) localRateLimit(path string, lr *LocalRateLimit) {
	sp := fieldPath(path, "stat_prefix")
	v.name(sp, lr.StatPrefix, true)
	if strings.Contains(lr.StatPrefix, ".") {
		v.errorf(sp, "%q must be one segment without '.': Envoy's tag extractor takes the prefix of <stat_prefix>.http_local_rate_limit.* as one segment", lr.StatPrefix)
	}
	tb := &lr.TokenBucket
	tp := fieldPath(path, "token_bucket")
	if tb.MaxTokens < 1 {
		v.errorf(fieldPath(tp, "max_tokens"), "required: must be at least 1, got %d", tb.MaxTokens)
	}
	if tb.TokensPerFill < 1 {
		v.errorf(fieldPath(tp, "tokens_per_fill"), "must be at least 1, got %d", tb.TokensPerFill)
	}
	if tb.FillInterval.D() < MinFillInterval {
		v.errorf(fieldPath(tp, "fill_interval"), "required: must be at least %s (Envoy's bound), got %s", MinFillInterval, tb.FillInterval.D())
	}
	v.errorStatus(fieldPath(path, "status"), lr.Status)
	for name, p := range map[string]*float64{"filter_enabled": lr.FilterEnabled, "filter_enforced": lr.FilterEnforced} {
		if p != nil && (*p < 0 || *p > 100 || *p != *p) {
			v.errorf(fieldPath(path, name), "must be a percentage from 0 to 100, got %v", *p)
		}
	}
	v.oneOf(fieldPath(path, "enable_x_ratelimit_headers"), lr.EnableXRateLimitHeaders, allowedXRateLimitHeaders)
	v.headersMutation(path, &HeadersMutation{ResponseHeadersToAdd: lr.ResponseHeadersToAdd})
}

func (v *validator) rateLimits(path string, rls []RateLimit) {
	for i := range rls {
		ip := indexPath(path, i)
		ap := fieldPath(ip, "actions")
		if len(rls[i].Actions) == 0 {
			v.errorf(ap, "at least one action is required; allowed: %s", strings.Join(rateLimitActionNames, ", "))
		}
		for j := range rls[i].Actions {
			v.rateLimitAction(indexPath(ap, j), &rls[i].Actions[j])
		}
	}
}

var rateLimitActionNames = []string{"request_headers", "remote_address", "generic_key", "destination_cluster", "source_cluster", "header_value_match"}

func (v *validator) rateLimitAction(path string, a *RateLimitAction) {
	kinds := setNames(map[string]bool{
		"request_headers": a.RequestHeaders != nil, "remote_address": a.RemoteAddress != nil,
		"generic_key": a.GenericKey != nil, "destination_cluster": a.DestinationCluster != nil,
		"source_cluster": a.SourceCluster != nil, "header_value_match": a.HeaderValueMatch != nil,
	})
	if len(kinds) != 1 {
		names := slices.Clone(rateLimitActionNames)
		v.errorf(path, "exactly one of %s is required%s", strings.Join(names, ", "), gotKinds(kinds))
	}
	if h := a.RequestHeaders; h != nil {
		hp := fieldPath(path, "request_headers")
		if strings.HasPrefix(h.HeaderName, ":") {
			if !slices.Contains([]string{":authority", ":method", ":path"}, strings.ToLower(h.HeaderName)) {
				v.errorf(fieldPath(hp, "header_name"), "unknown pseudo-header %q; allowed: :authority, :method, :path", h.HeaderName)
			}
		} else {
			v.headerName(fieldPath(hp, "header_name"), h.HeaderName)
		}
		if h.DescriptorKey == "" {
			v.errorf(fieldPath(hp, "descriptor_key"), "required")
		}
	}
	if g := a.GenericKey; g != nil && g.DescriptorValue == "" {
		v.errorf(fieldPath(path, "generic_key.descriptor_value"), "required")
	}
	if h := a.HeaderValueMatch; h != nil {
		hp := fieldPath(path, "header_value_match")
		if h.DescriptorValue == "" {
			v.errorf(fieldPath(hp, "descriptor_value"), "required")
		}
		if len(h.Headers) == 0 {
			v.errorf(fieldPath(hp, "headers"), "at least one header matcher is required")
		}
		for i := range h.Headers {
			v.headerMatcher(indexPath(fieldPath(hp, "headers"), i), &h.Headers[i])
		}
	}
	if a.SourceCluster != nil && v.cfg != nil && v.cfg.Node.Cluster == "" {
		v.errorf(fieldPath(path, "source_cluster"), "needs node.cluster, the name of the local service cluster")
	}
}
