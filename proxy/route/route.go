package route

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/fault"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
	"github.com/hopwatch/hopwatch/proxy/retry"
)

// Action says what a route does with the requests it matches.
type Action uint8

// The three route actions; exactly one is configured per route.
const (
	// ActionRoute forwards the request to a cluster.
	ActionRoute Action = iota + 1
	// ActionRedirect answers with a 3xx and a Location header.
	ActionRedirect
	// ActionDirectResponse answers with a fixed status and body.
	ActionDirectResponse
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case ActionRoute:
		return "route"
	case ActionRedirect:
		return "redirect"
	case ActionDirectResponse:
		return "direct_response"
	default:
		return "Action(" + strconv.Itoa(int(a)) + ")"
	}
}

// Route defaults, as in Envoy.
const (
	// DefaultTimeout is the route timeout when none is configured.
	DefaultTimeout = 15 * time.Second
	// DefaultReplayBufferLimit is the default per_request_buffer_limit_bytes.
	DefaultReplayBufferLimit = 64 << 10
)

// ClusterTarget is the cluster a request is sent to.
type ClusterTarget struct {
	// Name of the cluster.
	Name string
	// Mutation holds the weighted cluster's header changes; nil for a
	// single-cluster route or a weighted cluster without any.
	Mutation *HeaderMutation
}

type weightedTarget struct {
	target ClusterTarget
	// upto is the cumulative weight: the target wins draws below it.
	upto uint64
}

// Route is a compiled route. Its exported fields are read-only.
type Route struct {
	// Name identifies the route in logs; may be empty.
	Name string
	// StatPrefix enables per-route stats (vhost.<vh>.route.<stat_prefix>);
	// empty when per-route stats are off.
	StatPrefix string
	// Operation names the server span of requests the route matches (its
	// decorator); empty for the default name.
	Operation string
	// Action is what the route does.
	Action Action
	// VirtualHost is the virtual host that owns the route.
	VirtualHost *VirtualHost

	// Timeout bounds the whole upstream exchange, retries included, until
	// the response headers arrive; 0 means no timeout. ActionRoute only.
	Timeout time.Duration
	// IdleTimeout is the route's stream idle timeout when HasIdleTimeout is
	// true (0 then disables it); otherwise the listener's applies.
	IdleTimeout    time.Duration
	HasIdleTimeout bool
	// ReplayBufferLimit bounds the request body kept for retries.
	ReplayBufferLimit int
	// Retry is the route's retry policy, else the virtual host's, else nil.
	Retry *retry.Policy
	// HostRewrite, when not empty, replaces the Host sent upstream.
	HostRewrite string
	// AutoHostRewrite sets Host to the chosen endpoint's address.
	AutoHostRewrite bool
	// Hash computes the request hash for ring_hash and maglev clusters
	// (hash_policy); nil when the route has none.
	Hash *HashPolicy
	// LocalRateLimit is the route's token bucket, else its virtual host's
	// (shared), else nil.
	LocalRateLimit *ratelimit.Local
	// RateLimits are the global rate-limit policies, the route's then the
	// virtual host's; nil when there are none (ActionRoute only).
	RateLimits []*ratelimit.Policy
	// Fault is the route's fault filter; nil when it has none.
	Fault *fault.Fault
	// Mirrors are the route's request mirror policies (ActionRoute only).
	Mirrors []MirrorPolicy
	// Upgrades are the route's upgrade_configs, which override the
	// listener's (config.UpgradeAllowed); nil when it has none.
	Upgrades []config.UpgradeConfig

	match matcher

	cluster      *ClusterTarget
	weighted     []weightedTarget
	totalWeight  uint64
	weightHeader string // canonical header name, or ""

	prefixRewrite    string
	hasPrefixRewrite bool

	redirect *config.RedirectAction

	directStatus int
	directBody   string

	mutation  *HeaderMutation
	mutations []*HeaderMutation // route's then virtual host's, nil ones left out
}

func compileRoute(cr *config.Route, vh *VirtualHost, path string, opts Options) (*Route, error) {
	rt := &Route{Name: cr.Name, StatPrefix: cr.StatPrefix, VirtualHost: vh}
	if cr.Decorator != nil {
		rt.Operation = cr.Decorator.Operation
	}
	var err error
	if rt.match, err = compileMatch(&cr.Match, path+".match"); err != nil {
		return nil, err
	}
	if rt.mutation, err = NewHeaderMutation(cr.HeadersMutation, opts.NodeHostname); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	if rt.Fault, err = fault.New(cr.Fault); err != nil {
		return nil, fmt.Errorf("%s.fault.%w", path, err)
	}
	for _, m := range []*HeaderMutation{rt.mutation, vh.Mutation} {
		if m != nil {
			rt.mutations = append(rt.mutations, m)
		}
	}

	actions := 0
	if cr.Route != nil {
		actions++
		rt.Action = ActionRoute
		if err := rt.compileRouteAction(cr.Route, path+".route", opts); err != nil {
			return nil, err
		}
		if rt.Retry == nil {
			rt.Retry = vh.Retry
		}
	}
	if cr.Redirect != nil {
		actions++
		rt.Action = ActionRedirect
		if err := rt.compileRedirect(cr.Redirect, path+".redirect"); err != nil {
			return nil, err
		}
	}
	if cr.DirectResponse != nil {
		actions++
		rt.Action = ActionDirectResponse
		if s := cr.DirectResponse.Status; s < 100 || s > 599 {
			return nil, fmt.Errorf("%s.direct_response.status: %d is not an HTTP status (100-599)", path, s)
		}
		rt.directStatus, rt.directBody = cr.DirectResponse.Status, cr.DirectResponse.Body
	}
	if actions != 1 {
		return nil, fmt.Errorf("%s: exactly one of route, redirect and direct_response is required, found %d", path, actions)
	}
	if err := rt.compileRateLimits(cr, vh, path); err != nil {
		return nil, err
	}
	return rt, nil
}

func (rt *Route) compileRouteAction(a *config.RouteAction, path string, opts Options) error {
	switch {
	case a.Cluster != "" && a.WeightedClusters != nil:
		return fmt.Errorf("%s: cluster and weighted_clusters are mutually exclusive", path)
	case a.Cluster != "":
		rt.cluster = &ClusterTarget{Name: a.Cluster}
	case a.WeightedClusters != nil:
		wc := a.WeightedClusters
		for i := range wc.Clusters {
			c := &wc.Clusters[i]
			cpath := fmt.Sprintf("%s.weighted_clusters.clusters[%d]", path, i)
			if c.Name == "" {
				return fmt.Errorf("%s.name: required", cpath)
			}
			if c.Weight < 0 {
				return fmt.Errorf("%s.weight: %d is negative", cpath, c.Weight)
			}
			m, err := NewHeaderMutation(c.HeadersMutation, opts.NodeHostname)
			if err != nil {
				return fmt.Errorf("%s.%w", cpath, err)
			}
			if c.Weight == 0 {
				continue // never chosen; Envoy allows it so a canary can be parked at 0
			}
			rt.totalWeight += uint64(c.Weight)
			rt.weighted = append(rt.weighted, weightedTarget{
				target: ClusterTarget{Name: c.Name, Mutation: m},
				upto:   rt.totalWeight,
			})
		}
		if rt.totalWeight == 0 {
			return fmt.Errorf("%s.weighted_clusters.clusters: at least one cluster with weight > 0 is required", path)
		}
		if h := wc.HeaderName; h != "" {
			if !httpguts.ValidHeaderFieldName(h) {
				return fmt.Errorf("%s.weighted_clusters.header_name: %q is not a valid header name", path, h)
			}
			rt.weightHeader = http.CanonicalHeaderKey(h)
		}
	default:
		return fmt.Errorf("%s: one of cluster and weighted_clusters is required", path)
	}

	if a.PrefixRewrite != nil {
		if rt.match.kind == pathRegex {
			return fmt.Errorf("%s.prefix_rewrite: not allowed on a safe_regex route, which has no prefix to replace", path)
		}
		rt.prefixRewrite, rt.hasPrefixRewrite = *a.PrefixRewrite, true
	}
	if a.HostRewriteLiteral != "" && a.AutoHostRewrite {
		return fmt.Errorf("%s: host_rewrite_literal and auto_host_rewrite are mutually exclusive", path)
	}
	rt.HostRewrite, rt.AutoHostRewrite = a.HostRewriteLiteral, a.AutoHostRewrite
	rt.Upgrades = a.UpgradeConfigs

	rt.Timeout = DefaultTimeout
	if a.Timeout != nil {
		if rt.Timeout = a.Timeout.D(); rt.Timeout < 0 {
			return fmt.Errorf("%s.timeout: %v is negative", path, rt.Timeout)
		}
	}
	if a.IdleTimeout != nil {
		if rt.IdleTimeout = a.IdleTimeout.D(); rt.IdleTimeout < 0 {
			return fmt.Errorf("%s.idle_timeout: %v is negative", path, rt.IdleTimeout)
		}
		rt.HasIdleTimeout = true
	}
	rt.ReplayBufferLimit = DefaultReplayBufferLimit
	if a.MaxReplayBufferBytes != nil {
		if rt.ReplayBufferLimit = *a.MaxReplayBufferBytes; rt.ReplayBufferLimit < 0 {
			return fmt.Errorf("%s.per_request_buffer_limit_bytes: %d is negative", path, rt.ReplayBufferLimit)
		}
	}
	var err error
	if rt.Retry, err = retry.Compile(a.RetryPolicy); err != nil {
		return fmt.Errorf("%s.retry_policy.%w", path, err)
	}
	if rt.Hash, err = compileHashPolicy(a.HashPolicy, path); err != nil {
		return err
	}
	if rt.Mirrors, err = compileMirrors(a.RequestMirrorPolicies, path+".request_mirror_policies"); err != nil {
		return err
	}
	return nil
}

// MirrorPolicy is a compiled request mirror policy (Envoy's
// RequestMirrorPolicy): the router shadows the selected fraction of the
// route's requests to Cluster.
type MirrorPolicy struct {
	// Cluster receives the shadow requests.
	Cluster string
	// Fraction selects the requests to mirror; 100% when none is configured.
	Fraction fault.Percent
	// AppendHostSuffix appends "-shadow" to the shadow's host (Envoy's
	// default; disable_shadow_host_suffix_append turns it off).
	AppendHostSuffix bool
	// MaxBodyBytes bounds the request body kept for the shadow; a request
	// with a larger body is not mirrored.
	MaxBodyBytes int
}

func compileMirrors(ps []config.RequestMirrorPolicy, path string) ([]MirrorPolicy, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]MirrorPolicy, len(ps))
	for i := range ps {
		p := &ps[i]
		ppath := fmt.Sprintf("%s[%d]", path, i)
		if p.Cluster == "" {
			return nil, fmt.Errorf("%s.cluster: required", ppath)
		}
		m := MirrorPolicy{Cluster: p.Cluster, Fraction: fault.Percent{Numerator: 100, Denominator: 100},
			AppendHostSuffix: !p.DisableShadowHostSuffixAppend, MaxBodyBytes: config.DefaultMirrorMaxBodyBytes}
		if p.RuntimeFraction != nil {
			var err error
			if m.Fraction, err = fault.CompilePercent(p.RuntimeFraction.DefaultValue); err != nil {
				return nil, fmt.Errorf("%s.runtime_fraction.default_value.%w", ppath, err)
			}
		}
		if p.MaxBodyBytes != nil {
			if m.MaxBodyBytes = *p.MaxBodyBytes; m.MaxBodyBytes < 0 {
				return nil, fmt.Errorf("%s.max_body_bytes: %d is negative", ppath, m.MaxBodyBytes)
			}
		}
		out[i] = m
	}
	return out, nil
}

func (rt *Route) compileRedirect(r *config.RedirectAction, path string) error {
	red := *r
	switch red.ResponseCode {
	case 0:
		red.ResponseCode = http.StatusMovedPermanently
	case 301, 302, 303, 307, 308:
	default:
		return fmt.Errorf("%s.response_code: %d is not allowed (allowed: 301, 302, 303, 307, 308)", path, red.ResponseCode)
	}
	if red.PortRedirect < 0 || red.PortRedirect > 65535 {
		return fmt.Errorf("%s.port_redirect: %d is not a port (1-65535)", path, red.PortRedirect)
	}
	if red.HTTPSRedirect && red.SchemeRedirect != "" {
		return fmt.Errorf("%s: https_redirect and scheme_redirect are mutually exclusive", path)
	}
	if red.HTTPSRedirect {
		red.SchemeRedirect = "https"
	}
	red.SchemeRedirect = strings.ToLower(red.SchemeRedirect)
	if s := red.SchemeRedirect; s != "" && !validScheme(s) {
		return fmt.Errorf("%s.scheme_redirect: %q is not a URL scheme", path, s)
	}
	if strings.ContainsAny(red.HostRedirect, "/?#@ ") {
		return fmt.Errorf("%s.host_redirect: %q is not a host", path, red.HostRedirect)
	}
	if red.PathRedirect != "" && !strings.HasPrefix(red.PathRedirect, "/") {
		return fmt.Errorf("%s.path_redirect: %q must start with /", path, red.PathRedirect)
	}
	if red.PathRedirect != "" && red.PrefixRewrite != nil {
		return fmt.Errorf("%s: path_redirect and prefix_rewrite are mutually exclusive", path)
	}
	if red.PrefixRewrite != nil {
		if rt.match.kind == pathRegex {
			return fmt.Errorf("%s.prefix_rewrite: not allowed on a safe_regex route, which has no prefix to replace", path)
		}
		rt.prefixRewrite, rt.hasPrefixRewrite = *red.PrefixRewrite, true
	}
	rt.redirect = &red
	return nil
}

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// Match returns the first route of the virtual host that matches r, or nil.
// It does not allocate unless a header matcher meets a repeated header or
// a query parameter needs unescaping.
func (vh *VirtualHost) Match(r *http.Request) *Route {
	if vh == nil || r == nil {
		return nil
	}
	for _, rt := range vh.routes {
		if rt.match.matches(r) {
			return rt
		}
	}
	return nil
}

// DirectResponse returns the status and body of an ActionDirectResponse
// route; status is 0 for other routes.
func (rt *Route) DirectResponse() (status int, body string) {
	return rt.directStatus, rt.directBody
}

// PickCluster chooses the upstream cluster of an ActionRoute route; it
// returns nil for other actions. With weighted clusters the draw is
// rnd % total weight, unless the weighted_clusters header_name header holds
// an integer in [0, total weight), which then decides, so that a client can
// pin itself to one side of a split.
func (rt *Route) PickCluster(r *http.Request, rnd uint64) *ClusterTarget {
	if rt.cluster != nil {
		return rt.cluster
	}
	if rt.totalWeight == 0 {
		return nil
	}
	draw := rnd % rt.totalWeight
	if rt.weightHeader != "" && r != nil {
		if vs := r.Header[rt.weightHeader]; len(vs) > 0 {
			if v, err := strconv.ParseUint(strings.TrimSpace(vs[0]), 10, 64); err == nil && v < rt.totalWeight {
				draw = v
			}
		}
	}
	for i := range rt.weighted {
		if draw < rt.weighted[i].upto {
			return &rt.weighted[i].target
		}
	}
	return &rt.weighted[len(rt.weighted)-1].target // unreachable: draw < totalWeight
}

// RewritePath applies the route's prefix_rewrite to a request path (which
// may carry a query string, kept as is). On a prefix route the matched
// prefix is replaced; on a path route the whole path is. Without a rewrite,
// or when path does not start with the route's prefix, path is returned
// unchanged.
func (rt *Route) RewritePath(path string) string {
	if !rt.hasPrefixRewrite {
		return path
	}
	m := &rt.match
	switch m.kind {
	case pathPrefix:
		if len(path) >= len(m.value) && m.equal(path[:len(m.value)], m.value) {
			return rt.prefixRewrite + path[len(m.value):]
		}
	case pathExact:
		p, q, hasQuery := strings.Cut(path, "?")
		if m.equal(p, m.value) {
			if hasQuery {
				return rt.prefixRewrite + "?" + q
			}
			return rt.prefixRewrite
		}
	}
	return path
}

// RedirectLocation builds the Location of an ActionRedirect route for r and
// returns it with the redirect status; it returns "", 0 for other routes.
//
// As in Envoy: host_redirect replaces the host; port_redirect replaces the
// port; when the scheme changes, a port that was the old scheme's default
// (:80 for http, :443 for https) is dropped rather than carried into the
// new scheme. The scheme the client used is r.URL.Scheme, else
// X-Forwarded-Proto, else https when the connection is TLS. path_redirect
// replaces the path (a query in it replaces the request's);
// prefix_rewrite replaces the matched prefix; strip_query drops the query.
func (rt *Route) RedirectLocation(r *http.Request) (location string, status int) {
	red := rt.redirect
	if red == nil || r == nil {
		return "", 0
	}
	oldScheme := requestScheme(r)
	if (r.URL == nil || r.URL.Scheme == "") && r.TLS == nil {
		if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			oldScheme = p
		}
	}
	scheme := oldScheme
	if red.SchemeRedirect != "" {
		scheme = red.SchemeRedirect
	}

	host := r.Host
	if red.HostRedirect != "" {
		host = red.HostRedirect
	}
	hostOnly := stripPort(host)
	port := host[len(hostOnly):] // "" or ":1234"
	switch {
	case red.PortRedirect != 0:
		port = ":" + strconv.Itoa(red.PortRedirect)
	case scheme != oldScheme && (oldScheme == "http" && port == ":80" || oldScheme == "https" && port == ":443"):
		port = ""
	}

	var path, query string
	if r.URL != nil {
		path, query = r.URL.EscapedPath(), r.URL.RawQuery
	}
	if path == "" {
		path = "/"
	}
	switch {
	case red.PathRedirect != "":
		p, q, hasQuery := strings.Cut(red.PathRedirect, "?")
		path = p
		if hasQuery {
			query = q
		}
	case rt.hasPrefixRewrite:
		path = rt.RewritePath(path)
	}
	if red.StripQuery && !strings.Contains(red.PathRedirect, "?") {
		query = ""
	}

	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(hostOnly) + len(port) + len(path) + 1 + len(query))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(hostOnly)
	b.WriteString(port)
	b.WriteString(path)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String(), red.ResponseCode
}

// Mutations returns the header changes of the route and of its virtual
// host, in the order they are applied after the chosen weighted cluster's
// (ClusterTarget.Mutation). This is Envoy's default order (its
// most_specific_header_mutations_wins is false): the most specific level
// is applied first, so when two levels overwrite the same header
// (append: false) the less specific one, the virtual host, has the last
// word. The slice is shared; do not modify it.
func (rt *Route) Mutations() []*HeaderMutation { return rt.mutations }

// ApplyRequest applies, in order, the weighted cluster's (when t has one),
// the route's and the virtual host's request header changes to h.
func (rt *Route) ApplyRequest(t *ClusterTarget, h http.Header, vars *Vars) {
	if t != nil {
		t.Mutation.ApplyRequest(h, vars)
	}
	for _, m := range rt.mutations {
		m.ApplyRequest(h, vars)
	}
}

// ApplyResponse applies, in order, the weighted cluster's (when t has
// one), the route's and the virtual host's response header changes to h.
// Use it for redirects and direct responses too, with a nil t.
func (rt *Route) ApplyResponse(t *ClusterTarget, h http.Header, vars *Vars) {
	if t != nil {
		t.Mutation.ApplyResponse(h, vars)
	}
	for _, m := range rt.mutations {
		m.ApplyResponse(h, vars)
	}
}
