// Package config defines hopwatch-proxy's configuration: the YAML schema,
// its documented defaults, strict loading (an unknown key is an error) and
// validation whose errors name the file, line, field path and allowed values.
//
// The schema borrows Envoy's vocabulary (listeners, virtual hosts, routes,
// clusters, retry_on, stat_prefix) but flattens Envoy's protobuf nesting so
// that a hand-written file stays short. docs/config.md is the reference.
package config

import (
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/tracing"
)

// Config is the root of a hopwatch-proxy configuration file.
type Config struct {
	// Node identifies this proxy instance in stats, logs and spans.
	Node Node `yaml:"node"`
	// Admin is the admin server. It listens on 127.0.0.1:9901 by default and
	// is never public unless an address says so.
	Admin Admin `yaml:"admin"`
	// Listeners accept downstream connections; at least one is required.
	Listeners []Listener `yaml:"listeners"`
	// Clusters are the upstream services that routes send traffic to.
	Clusters []Cluster `yaml:"clusters"`
	// ClusterManager holds settings across clusters (the local cluster for
	// zone-aware routing).
	ClusterManager ClusterManager `yaml:"cluster_manager"`
	// Lifecycle controls draining, shutdown and hot reload.
	Lifecycle Lifecycle `yaml:"lifecycle"`
	// StatsConfig tunes the stats store and its flushes.
	StatsConfig StatsConfig `yaml:"stats_config"`
	// StatsSinks receive the stats every flush interval, as Envoy's statsd
	// and DogStatsD sinks send them. Empty: stats are kept for the admin
	// endpoints only.
	StatsSinks []StatsSink `yaml:"stats_sinks"`
	// Tracing turns on OpenTelemetry tracing: a server span per downstream
	// request and a client span per upstream attempt, exported over OTLP.
	// Absent: tracing is off and costs nothing on the request path. Every
	// field is optional (tracing: {} exports to localhost:4317); OTEL_*
	// environment variables fill the fields left unset. See
	// tracing.Config and docs/config.md.
	Tracing *tracing.Config `yaml:"tracing"`
}

// StatsConfig tunes the stats store.
type StatsConfig struct {
	// Disabled turns every stat off: no counting on the request path, no
	// flushes, empty admin stats. It exists to measure what stats cost;
	// production proxies keep stats on. Default false.
	Disabled bool `yaml:"disabled"`
	// HistogramBuckets are the histogram bucket upper bounds in ms,
	// strictly increasing. Default: Envoy's (0.5, 1, 5, 10, 25, 50, 100,
	// 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
	// 1800000, 3600000).
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// MaxStats caps how many stats the store holds; past it, new stats are
	// folded into one overflow stat and counted in stats.overflow.
	// Default 100000.
	MaxStats int `yaml:"max_stats"`
	// FlushInterval is how often counters, gauges and compact histograms
	// go to the sinks. Default 5s.
	FlushInterval Duration `yaml:"flush_interval"`
	// TimerQueueSize bounds histogram samples waiting for timer-mode sinks;
	// samples beyond it are dropped and counted. Default 65536.
	TimerQueueSize int `yaml:"timer_queue_size"`
	// TimerDrainInterval is how often queued timer samples are sent.
	// Default: 250ms, or the flush interval if shorter.
	TimerDrainInterval Duration `yaml:"timer_drain_interval"`
	// StatsTags are Envoy's tag specifiers; hopwatch takes those with a
	// fixed_value, a tag added to every stat (the node's identity, say):
	// DogStatsD sinks send it as a tag, /stats/prometheus as a label.
	// Plain StatsD cannot carry tags. Names never change.
	StatsTags []TagSpecifier `yaml:"stats_tags"`
	// UseAllDefaultTags is Envoy's switch for its default tag extractors
	// (envoy.cluster_name, envoy.response_code, ...). Default true, and
	// hopwatch accepts only true: the catalogue of metric names, the
	// sink's Envoy preset and the dashboards rely on those tags.
	UseAllDefaultTags *bool `yaml:"use_all_default_tags"`
}

// TagSpecifier is one entry of stats_config.stats_tags, in Envoy's shape.
type TagSpecifier struct {
	// TagName is the tag's name (a DogStatsD tag key; as a Prometheus
	// label, '.' becomes '_'). Required.
	TagName string `yaml:"tag_name"`
	// FixedValue is the value every stat gets. Required.
	FixedValue string `yaml:"fixed_value"`
	// Regex is Envoy's custom tag extractor. hopwatch does not support it
	// (its stats are created with their tags already known) and says so.
	Regex string `yaml:"regex"`
}

// FixedTags returns the stats_tags as the stats store takes them.
func (c StatsConfig) FixedTags() []stats.Tag {
	var tags []stats.Tag
	for _, t := range c.StatsTags {
		tags = append(tags, stats.Tag{Name: t.TagName, Value: t.FixedValue})
	}
	return tags
}

// StatsSink is one StatsD or DogStatsD destination, one entry of
// stats_sinks. It is the stats package's SinkConfig itself, documented
// there, so that the YAML schema and the flusher that sends the lines
// cannot drift apart.
type StatsSink = stats.SinkConfig

// Node describes the proxy instance itself.
type Node struct {
	// ID names this instance (Envoy's --service-node). Default: the host name.
	ID string `yaml:"id"`
	// Cluster names the service this proxy belongs to (Envoy's --service-cluster).
	Cluster string `yaml:"cluster"`
	// Zone is the locality zone of this proxy, used by zone-aware routing and
	// zone stats. Empty means no zone.
	Zone string `yaml:"zone"`
}

// Admin configures the admin HTTP server.
type Admin struct {
	// Address is host:port. Default 127.0.0.1:9901. An empty host or 0.0.0.0
	// exposes the admin server on every interface, so it must be explicit.
	Address string `yaml:"address"`
}

// Lifecycle controls draining, shutdown and hot reload.
type Lifecycle struct {
	// DrainTime is how long SIGTERM waits for in-flight requests before
	// closing connections. Default 5s.
	DrainTime Duration `yaml:"drain_time"`
	// WatchConfig reloads the file when it changes on disk, in addition to
	// SIGHUP. Default true.
	WatchConfig *bool `yaml:"watch_config"`
}

// Listener is one downstream socket with its HTTP connection manager.
type Listener struct {
	// Name identifies the listener in logs and the admin server. Required, unique.
	Name string `yaml:"name"`
	// Address is host:port to bind. Required.
	Address string `yaml:"address"`
	// StatPrefix names the connection manager in stats (http.<stat_prefix>.*).
	// Required.
	StatPrefix string `yaml:"stat_prefix"`
	// TLS terminates TLS with the given certificate. HTTP/2 is negotiated by ALPN.
	TLS *ListenerTLS `yaml:"tls"`
	// Protocols accepted on this listener. Default [http1, http2]: HTTP/2 over
	// TLS via ALPN, or h2c with prior knowledge on a plaintext listener.
	Protocols []string `yaml:"protocols"`
	// UpgradeConfigs lists the protocol upgrades the listener allows
	// (Envoy's upgrade_configs); a route can override each type. Default:
	// websocket only. Any other Upgrade is stripped (upgrade.go).
	UpgradeConfigs []UpgradeConfig `yaml:"upgrade_configs"`
	// Limits protect the listener from slow or oversized requests.
	Limits ListenerLimits `yaml:"limits"`
	// UseRemoteAddress makes this listener an edge: the peer address is
	// appended to X-Forwarded-For and decides whether a request is internal.
	// Default true.
	UseRemoteAddress *bool `yaml:"use_remote_address"`
	// XffNumTrustedHops is how many X-Forwarded-For entries, counted from the
	// right, come from trusted proxies. Default 0.
	XffNumTrustedHops int `yaml:"xff_num_trusted_hops"`
	// RequestID controls x-request-id generation and propagation.
	RequestID RequestID `yaml:"request_id"`
	// AccessLog lists the access-log outputs. Default: JSON to stdout.
	AccessLog []AccessLog `yaml:"access_log"`
	// ServerName is sent as the Server response header. Default "hopwatch".
	ServerName string `yaml:"server_name"`
	// PathNormalization holds normalize_path, merge_slashes and
	// path_with_escaped_slashes_action, as keys of the listener.
	PathNormalization `yaml:",inline"`
	// VirtualHosts route requests by :authority.
	VirtualHosts []VirtualHost `yaml:"virtual_hosts"`
	// RateLimitService is the global rate-limit service that rate_limits
	// descriptors are sent to. Absent: global rate limiting is off.
	RateLimitService *RateLimitService `yaml:"rate_limit_service"`
}

// ListenerTLS configures TLS termination from files.
type ListenerTLS struct {
	// CertFile is a PEM certificate chain. Required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key. Required. Redacted in /config_dump.
	KeyFile string `yaml:"key_file"`
	// MinVersion is "1.2" or "1.3". Default "1.2".
	MinVersion string `yaml:"min_version"`
}

// ListenerLimits bound what a downstream connection may cost.
type ListenerLimits struct {
	// MaxRequestHeadersKB bounds the total size of request headers. Default 60
	// (Envoy's default); at most 8192.
	MaxRequestHeadersKB int `yaml:"max_request_headers_kb"`
	// MaxRequestHeadersCount bounds the number of request headers. Default 100.
	MaxRequestHeadersCount int `yaml:"max_request_headers_count"`
	// ReadHeaderTimeout bounds how long a client may take to send headers
	// (slowloris protection). Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes a downstream connection idle this long. Default 1h
	// (Envoy's common_http_protocol_options.idle_timeout).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// StreamIdleTimeout resets a request whose body makes no progress for this
	// long. Default 5m. 0 disables.
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout"`
	// MaxConnections bounds concurrent downstream connections. 0 = unlimited.
	MaxConnections int `yaml:"max_connections"`
}

// RequestID follows Envoy's x-request-id rules.
type RequestID struct {
	// Generate an x-request-id when the request has none. Default true.
	Generate *bool `yaml:"generate"`
	// PreserveExternal keeps an x-request-id that arrives from an external
	// (non-internal) client at an edge listener. Envoy replaces it by default.
	PreserveExternal bool `yaml:"preserve_external_request_id"`
	// AlwaysSetInResponse echoes x-request-id on every response.
	AlwaysSetInResponse bool `yaml:"always_set_request_id_in_response"`
}

// AccessLog is one access-log output.
type AccessLog struct {
	// Path is a file path, or "stdout"/"stderr". Default "stdout".
	Path string `yaml:"path"`
	// Format is "json" (default) or "text" (Envoy's default text format).
	Format string `yaml:"format"`
	// TextFormat overrides the text format with Envoy command operators such
	// as %START_TIME% or %REQ(X-REQUEST-ID)%. Only with format: text.
	TextFormat string `yaml:"text_format"`
}

// VirtualHost groups routes for a set of domains.
type VirtualHost struct {
	// Name identifies the virtual host in stats (vhost.<name>.*). Required.
	Name string `yaml:"name"`
	// Domains matched against :authority (port stripped): exact, "*.suffix",
	// "prefix.*", or "*". Required. Exact beats suffix beats prefix beats "*";
	// among wildcards the longest match wins.
	Domains []string `yaml:"domains"`
	// Routes are matched in order; the first match wins.
	Routes []Route `yaml:"routes"`
	// HeadersMutation is applied to every request and response of this host.
	HeadersMutation `yaml:",inline"`
	// RetryPolicy applies to routes that have none of their own.
	RetryPolicy *RetryPolicy `yaml:"retry_policy"`
	// LocalRateLimit is a token bucket shared by the host's routes that have
	// none of their own.
	LocalRateLimit *LocalRateLimit `yaml:"local_rate_limit"`
	// RateLimits build global rate-limit descriptors for every route of the
	// host (Envoy's include_vh_rate_limits behaviour is always on).
	RateLimits []RateLimit `yaml:"rate_limits"`
}

// Route matches requests and says what to do with them. Exactly one of
// Route, Redirect and DirectResponse must be set.
type Route struct {
	// Name identifies the route in logs. Optional.
	Name string `yaml:"name"`
	// Match selects requests. Required.
	Match RouteMatch `yaml:"match"`
	// Route forwards to a cluster or weighted clusters.
	Route *RouteAction `yaml:"route"`
	// Redirect answers with a 3xx.
	Redirect *RedirectAction `yaml:"redirect"`
	// DirectResponse answers with a fixed status and body.
	DirectResponse *DirectResponseAction `yaml:"direct_response"`
	// HeadersMutation is applied after the virtual host's.
	HeadersMutation `yaml:",inline"`
	// StatPrefix enables per-route stats under vhost.<vh>.route.<stat_prefix>.
	StatPrefix string `yaml:"stat_prefix"`
	// Decorator names the server span of requests this route matches
	// (Envoy's route decorator). Default: the request's :authority.
	Decorator *Decorator `yaml:"decorator"`
	// Fault injects aborts and delays (Envoy's HTTP fault filter).
	Fault *Fault `yaml:"fault"`
	// LocalRateLimit is a token bucket for this route; it overrides the
	// virtual host's.
	LocalRateLimit *LocalRateLimit `yaml:"local_rate_limit"`
}

// Decorator is Envoy's route decorator.
type Decorator struct {
	// Operation is the span name. Required.
	Operation string `yaml:"operation"`
}

// RouteMatch selects requests. Exactly one of Prefix, Path and SafeRegex is
// required; Headers and QueryParameters must all match too.
type RouteMatch struct {
	// Prefix matches the path prefix.
	Prefix *string `yaml:"prefix"`
	// Path matches the whole path exactly (the query string is not part of it).
	Path *string `yaml:"path"`
	// SafeRegex matches the whole path against an RE2 regular expression.
	SafeRegex *string `yaml:"safe_regex"`
	// CaseSensitive applies to prefix and path. Default true.
	CaseSensitive *bool `yaml:"case_sensitive"`
	// Headers that must match.
	Headers []HeaderMatcher `yaml:"headers"`
	// QueryParameters that must match.
	QueryParameters []QueryParameterMatcher `yaml:"query_parameters"`
}

// HeaderMatcher matches one request header. Exactly one of the match fields
// is required. A missing header never matches except with InvertMatch.
type HeaderMatcher struct {
	// Name is the header name, case-insensitive. Required.
	Name string `yaml:"name"`
	// ExactMatch compares the whole value.
	ExactMatch *string `yaml:"exact_match"`
	// PrefixMatch compares the start of the value.
	PrefixMatch *string `yaml:"prefix_match"`
	// SuffixMatch compares the end of the value.
	SuffixMatch *string `yaml:"suffix_match"`
	// ContainsMatch looks for a substring.
	ContainsMatch *string `yaml:"contains_match"`
	// SafeRegexMatch matches the whole value against an RE2 expression.
	SafeRegexMatch *string `yaml:"safe_regex_match"`
	// PresentMatch true requires the header; false requires its absence.
	PresentMatch *bool `yaml:"present_match"`
	// InvertMatch negates the result.
	InvertMatch bool `yaml:"invert_match"`
}

// QueryParameterMatcher matches one query parameter.
type QueryParameterMatcher struct {
	// Name of the parameter, case-sensitive. Required.
	Name string `yaml:"name"`
	// ExactMatch compares the value.
	ExactMatch *string `yaml:"exact_match"`
	// SafeRegexMatch matches the whole value against an RE2 expression.
	SafeRegexMatch *string `yaml:"safe_regex_match"`
	// PresentMatch requires the parameter to be present.
	PresentMatch *bool `yaml:"present_match"`
}

// RouteAction forwards a request upstream. Exactly one of Cluster and
// WeightedClusters is required.
type RouteAction struct {
	// Cluster is the name of the target cluster.
	Cluster string `yaml:"cluster"`
	// WeightedClusters splits traffic by weight (canary, blue/green).
	WeightedClusters *WeightedClusters `yaml:"weighted_clusters"`
	// PrefixRewrite replaces the matched prefix (prefix routes only).
	PrefixRewrite *string `yaml:"prefix_rewrite"`
	// HostRewriteLiteral replaces the Host header sent upstream.
	HostRewriteLiteral string `yaml:"host_rewrite_literal"`
	// AutoHostRewrite sets Host to the chosen endpoint's address.
	AutoHostRewrite bool `yaml:"auto_host_rewrite"`
	// Timeout bounds the whole request, retries included, until the response
	// headers arrive. Default 15s (Envoy's). 0 disables.
	Timeout *Duration `yaml:"timeout"`
	// IdleTimeout resets the stream when no body bytes move for this long.
	// Default: the listener's stream_idle_timeout.
	IdleTimeout *Duration `yaml:"idle_timeout"`
	// RetryPolicy overrides the virtual host's.
	RetryPolicy *RetryPolicy `yaml:"retry_policy"`
	// MaxReplayBufferBytes bounds the request body kept for retries. A
	// larger body is streamed and not retried. Default 65536.
	MaxReplayBufferBytes *int `yaml:"per_request_buffer_limit_bytes"`
	// HashPolicy computes the request hash for ring_hash and maglev clusters.
	HashPolicy []HashPolicy `yaml:"hash_policy"`
	// RequestMirrorPolicies shadow a fraction of requests to other clusters.
	RequestMirrorPolicies []RequestMirrorPolicy `yaml:"request_mirror_policies"`
	// RateLimits build descriptors for the global rate-limit service.
	RateLimits []RateLimit `yaml:"rate_limits"`
	// UpgradeConfigs allow or refuse upgrade types on this route, over
	// the listener's (Envoy's RouteAction.upgrade_configs).
	UpgradeConfigs []UpgradeConfig `yaml:"upgrade_configs"`
}

// WeightedClusters splits traffic between clusters by integer weight.
type WeightedClusters struct {
	// Clusters with their weights. Required, at least one with weight > 0.
	Clusters []WeightedCluster `yaml:"clusters"`
	// HeaderName, when set, names a request header whose integer value in
	// [0, total weight) picks the cluster instead of a random draw, so that
	// a client can pin itself (Envoy's random_value_specifier analogue).
	HeaderName string `yaml:"header_name"`
}

// WeightedCluster is one side of a traffic split.
type WeightedCluster struct {
	// Name of the cluster. Required.
	Name string `yaml:"name"`
	// Weight, 0 or more. Required.
	Weight int `yaml:"weight"`
	// HeadersMutation is applied when this cluster is chosen.
	HeadersMutation `yaml:",inline"`
}

// RedirectAction answers with a redirect.
type RedirectAction struct {
	// HostRedirect replaces the host.
	HostRedirect string `yaml:"host_redirect"`
	// PortRedirect replaces the port.
	PortRedirect int `yaml:"port_redirect"`
	// PathRedirect replaces the whole path.
	PathRedirect string `yaml:"path_redirect"`
	// PrefixRewrite replaces the matched prefix.
	PrefixRewrite *string `yaml:"prefix_rewrite"`
	// SchemeRedirect replaces the scheme.
	SchemeRedirect string `yaml:"scheme_redirect"`
	// HTTPSRedirect is shorthand for scheme_redirect: https.
	HTTPSRedirect bool `yaml:"https_redirect"`
	// StripQuery drops the query string.
	StripQuery bool `yaml:"strip_query"`
	// ResponseCode is 301 (default), 302, 303, 307 or 308.
	ResponseCode int `yaml:"response_code"`
}

// DirectResponseAction answers without going upstream.
type DirectResponseAction struct {
	// Status is the HTTP status, 100–599. Required.
	Status int `yaml:"status"`
	// Body is sent as text/plain.
	Body string `yaml:"body"`
}

// HeadersMutation adds and removes headers. Values may use the dynamic
// variables %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %REQ(name)%,
// %UPSTREAM_CLUSTER% and %HOSTNAME%.
type HeadersMutation struct {
	RequestHeadersToAdd     []HeaderValueOption `yaml:"request_headers_to_add"`
	RequestHeadersToRemove  []string            `yaml:"request_headers_to_remove"`
	ResponseHeadersToAdd    []HeaderValueOption `yaml:"response_headers_to_add"`
	ResponseHeadersToRemove []string            `yaml:"response_headers_to_remove"`
}

// HeaderValueOption adds one header.
type HeaderValueOption struct {
	// Key is the header name. Required.
	Key string `yaml:"key"`
	// Value may contain dynamic variables.
	Value string `yaml:"value"`
	// Append keeps existing values (true, default) or overwrites them.
	Append *bool `yaml:"append"`
}

// RetryPolicy follows Envoy's route.RetryPolicy.
type RetryPolicy struct {
	// RetryOn is a list of conditions: 5xx, gateway-error, connect-failure,
	// reset, retriable-status-codes, refused-stream, retriable-4xx. Required.
	RetryOn []string `yaml:"retry_on"`
	// NumRetries is the maximum number of retries. Default 1.
	NumRetries *int `yaml:"num_retries"`
	// PerTryTimeout bounds each attempt. Default: none (the route timeout).
	PerTryTimeout Duration `yaml:"per_try_timeout"`
	// RetriableStatusCodes are retried with retriable-status-codes.
	RetriableStatusCodes []int `yaml:"retriable_status_codes"`
	// RetryBackOff is exponential backoff with full jitter.
	RetryBackOff RetryBackOff `yaml:"retry_back_off"`
	// HonorRequestHeaders lets clients set x-envoy-max-retries and
	// x-envoy-retry-on. Envoy honours them on internal requests only unless
	// told otherwise; hopwatch makes it explicit. Default false.
	HonorRequestHeaders bool `yaml:"honor_request_headers"`
}

// RetryBackOff is the retry backoff; Envoy's defaults are 25ms and 10×base.
type RetryBackOff struct {
	BaseInterval Duration `yaml:"base_interval"`
	MaxInterval  Duration `yaml:"max_interval"`
}

// Cluster is an upstream service.
type Cluster struct {
	// Name is unique and appears in stats (cluster.<name>.*). Required.
	Name string `yaml:"name"`
	// Type is "static" (default) or "strict_dns" (every address resolved,
	// re-resolved every dns_refresh_rate).
	Type string `yaml:"type"`
	// DNSRefreshRate for strict_dns. Default 5s.
	DNSRefreshRate Duration `yaml:"dns_refresh_rate"`
	// ConnectTimeout bounds TCP (and TLS) connection set-up. Default 5s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// LBPolicy is round_robin (default, smooth weighted), least_request,
	// random, ring_hash or maglev (consistent hashing on the route's
	// hash_policy).
	LBPolicy string `yaml:"lb_policy"`
	// LeastRequest tunes least_request.
	LeastRequest LeastRequestConfig `yaml:"least_request_lb_config"`
	// Protocol spoken upstream: http1 (default), http2 (TLS with ALPN h2), or
	// h2c (HTTP/2 with prior knowledge).
	Protocol string `yaml:"protocol"`
	// TLS originates TLS to the endpoints.
	TLS *UpstreamTLS `yaml:"tls"`
	// MaxIdleConnectionsPerHost bounds idle pooled connections per endpoint.
	// Default 1024.
	MaxIdleConnectionsPerHost int `yaml:"max_idle_connections_per_host"`
	// IdleTimeout closes pooled connections idle this long. Default 1h.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// Endpoints of the cluster. Required, at least one.
	Endpoints []Endpoint `yaml:"endpoints"`
	// CommonLBConfig holds the panic threshold and zone-aware routing.
	CommonLBConfig CommonLBConfig `yaml:"common_lb_config"`
	// HealthChecks are active health checks (Envoy's cluster.health_checks).
	HealthChecks []HealthCheck `yaml:"health_checks"`
	// OutlierDetection ejects hosts by their observed failures. Absent: off.
	OutlierDetection *OutlierDetection `yaml:"outlier_detection"`
	// CircuitBreakers bound what the cluster may have outstanding.
	// Absent: Envoy's defaults (1024 connections, pending and requests, 3 retries).
	CircuitBreakers *CircuitBreakers `yaml:"circuit_breakers"`
	// RingHashLBConfig tunes lb_policy ring_hash.
	RingHashLBConfig RingHashLBConfig `yaml:"ring_hash_lb_config"`
	// MaglevLBConfig tunes lb_policy maglev.
	MaglevLBConfig MaglevLBConfig `yaml:"maglev_lb_config"`
}

// LeastRequestConfig is Envoy's cluster.least_request_lb_config; the type,
// its defaults and its checks live with the policy in proxy/lbpolicy.
type LeastRequestConfig = lbpolicy.LeastRequestConfig

// UpstreamTLS originates TLS.
type UpstreamTLS struct {
	// SNI to send. Default: the endpoint host.
	SNI string `yaml:"sni"`
	// CAFile verifies the upstream. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify disables verification; for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Endpoint is one upstream address.
type Endpoint struct {
	// Address is host:port. Required.
	Address string `yaml:"address"`
	// Weight for weighted balancers, 1–128. Default 1.
	Weight int `yaml:"weight"`
	// Zone of the endpoint, for zone-aware routing and zone stats.
	Zone string `yaml:"zone"`
	// Canary marks the endpoint as a canary (stats under canary.*).
	Canary bool `yaml:"canary"`
}
