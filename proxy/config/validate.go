package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/tracing"
)

// Allowed values of enumerated fields, in the order the docs list them.
var (
	allowedProtocols          = []string{"http1", "http2"}
	allowedUpstreamProtocols  = []string{"http1", "http2", "h2c"}
	allowedClusterTypes       = []string{"static", "strict_dns"}
	allowedRetryOn            = []string{"5xx", "gateway-error", "connect-failure", "reset", "retriable-status-codes", "refused-stream", "retriable-4xx"}
	allowedRedirectCodes      = []int{301, 302, 303, 307, 308}
	allowedLogFormats         = []string{"json", "text"}
	allowedTLSVersions        = []string{"1.2", "1.3"}
	allowedSchemes            = []string{"http", "https"}
	allowedStatsSinkTypes     = []string{"statsd", "dogstatsd"}
	allowedStatsSinkProtocols = []string{"udp", "tcp"}
	allowedHistogramModes     = []string{"timer", "compact"}
)

const (
	// maxRequestHeadersKB is Envoy's upper bound for max_request_headers_kb.
	maxRequestHeadersKB = 8192
	// maxEndpointWeight bounds an endpoint weight; it is
	// kept small so that smooth weighted round robin stays cheap.
	maxEndpointWeight = 128
	// maxClusterWeight bounds one weighted_clusters weight so that totals
	// cannot overflow.
	maxClusterWeight = 1_000_000
	// redactedValue replaces secrets in Redacted.
	redactedValue = "[redacted]"
)

// Validate checks a Config built in code (Parse and Load validate already).
// Call ApplyDefaults first. Relative TLS paths are resolved against the
// working directory and stored back as absolute paths. The error, if any,
// is Errors; the errors carry paths but no line numbers.
func (c *Config) Validate() error {
	v := newValidator("", ".", nil, nil)
	v.config(c)
	if len(v.errs) > 0 {
		sortErrors(v.errs)
		return v.errs
	}
	return nil
}

// validator checks a decoded and defaulted Config. Errors are located by
// field path through pos, the positions the decoder saw.
type validator struct {
	file    string
	baseDir string
	pos     map[string]position
	failed  map[string]bool
	errs    Errors

	clusters     map[string]bool
	clusterNames []string
	// cfg is the configuration being checked, for checks that look across
	// sections (a listener's rate_limit_service needs its cluster's protocol).
	cfg *Config
}

func newValidator(file, baseDir string, pos map[string]position, failed map[string]bool) *validator {
	return &validator{file: file, baseDir: baseDir, pos: pos, failed: failed, clusters: map[string]bool{}}
}

// errorf reports a problem at path, located at the nearest path the file
// has (a missing field is reported where its parent is). A problem under a
// path that failed to decode is dropped: the decode error already says it.
func (v *validator) errorf(path, format string, args ...any) {
	for p := path; ; p = parentPath(p) {
		if v.failed[p] {
			return
		}
		if p == "" {
			break
		}
	}
	e := &Error{File: v.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	for p := path; ; p = parentPath(p) {
		if pos, ok := v.pos[p]; ok {
			e.Line, e.Column = pos.line, pos.col
			break
		}
		if p == "" {
			break
		}
	}
	v.errs = append(v.errs, e)
}

func (v *validator) config(c *Config) {
	v.cfg = c
	v.name("node.id", c.Node.ID, true)
	v.name("node.cluster", c.Node.Cluster, false)
	v.name("node.zone", c.Node.Zone, false)
	v.address("admin.address", c.Admin.Address, true)

	// Clusters first: routes refer to them by name.
	for i := range c.Clusters {
		v.cluster(indexPath("clusters", i), &c.Clusters[i])
	}
	slices.Sort(v.clusterNames)
	v.clusterManager(&c.ClusterManager)

	if len(c.Listeners) == 0 {
		v.errorf("listeners", "at least one listener is required")
	}
	names := map[string]string{}
	addrs := map[string]string{}
	prefixes := map[string]string{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		lp := indexPath("listeners", i)
		v.listener(lp, l)
		v.unique(names, l.Name, fieldPath(lp, "name"), "listener name")
		v.unique(prefixes, l.StatPrefix, fieldPath(lp, "stat_prefix"), "stat_prefix")
		if _, port, err := net.SplitHostPort(l.Address); err == nil && port != "0" {
			// Port 0 asks the kernel for a free port, so several may share it.
			v.unique(addrs, l.Address, fieldPath(lp, "address"), "listener address")
		}
	}
	v.stats(c)
	v.tracing(c.Tracing)
	v.durations("", reflect.ValueOf(c).Elem())
}

// tracing checks the tracing section with tracing.Config's own rules, so
// that the proxy and the tracing package never disagree on what is valid.
// Each error is a *tracing.FieldError whose field, as a path under
// tracing, finds the line.
func (v *validator) tracing(t *tracing.Config) {
	if t == nil {
		return
	}
	err := t.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if fe, ok := errors.AsType[*tracing.FieldError](e); ok {
			v.errorf("tracing."+fe.Field, "%s", fe.Problem)
		} else {
			v.errorf("tracing", "%v", e)
		}
	}
}

// stats checks stats_config and stats_sinks.
func (v *validator) stats(c *Config) {
	sc := &c.StatsConfig
	for i, b := range sc.HistogramBuckets {
		p := indexPath("stats_config.histogram_buckets", i)
		if b <= 0 || b != b {
			v.errorf(p, "bucket bounds must be positive numbers of milliseconds; got %v", b)
		} else if i > 0 && b <= sc.HistogramBuckets[i-1] {
			v.errorf(p, "bucket bounds must be strictly increasing; %v follows %v", b, sc.HistogramBuckets[i-1])
		}
	}
	if sc.MaxStats < 0 {
		v.errorf("stats_config.max_stats", "must be 0 or more; got %d", sc.MaxStats)
	}
	if sc.TimerQueueSize < 0 {
		v.errorf("stats_config.timer_queue_size", "must be 0 or more; got %d", sc.TimerQueueSize)
	}
	if sc.UseAllDefaultTags != nil && !*sc.UseAllDefaultTags {
		v.errorf("stats_config.use_all_default_tags", "false is not supported: hopwatch always applies Envoy's default tag extractors, which its metric names, the sink's Envoy preset and the dashboards rely on; remove the key or set it to true")
	}
	labels := map[string]string{}
	for i, t := range sc.StatsTags {
		tp := indexPath("stats_config.stats_tags", i)
		if t.Regex != "" {
			v.errorf(fieldPath(tp, "regex"), "custom tag extraction is not supported: hopwatch applies Envoy's default extractors only; use fixed_value to add a tag to every stat")
			continue
		}
		if err := stats.CheckFixedTagName(t.TagName); err != nil {
			v.errorf(fieldPath(tp, "tag_name"), "%v", err)
		} else {
			label := strings.ReplaceAll(t.TagName, ".", "_")
			v.unique(labels, label, fieldPath(tp, "tag_name"), "tag (as a Prometheus label)")
		}
		if err := stats.CheckFixedTagValue(t.FixedValue); err != nil {
			v.errorf(fieldPath(tp, "fixed_value"), "%v", err)
		}
	}
	for i := range c.StatsSinks {
		s := &c.StatsSinks[i]
		sp := indexPath("stats_sinks", i)
		v.oneOf(fieldPath(sp, "type"), s.Type, allowedStatsSinkTypes)
		v.oneOf(fieldPath(sp, "protocol"), s.Protocol, allowedStatsSinkProtocols)
		v.oneOf(fieldPath(sp, "histograms"), s.Histograms, allowedHistogramModes)
		if s.Exemplars && s.Histograms != "timer" {
			v.errorf(fieldPath(sp, "exemplars"), "true needs histograms: timer, got %q: a compact line stands for many samples, so no one trace ID fits it; set histograms: timer or remove exemplars", s.Histograms)
		}
		v.address(fieldPath(sp, "address"), s.Address, false)
		if s.MaxBytesPerDatagram < 64 || s.MaxBytesPerDatagram > 65507 {
			v.errorf(fieldPath(sp, "max_bytes_per_datagram"), "must be between 64 and 65507 (the largest UDP payload); got %d", s.MaxBytesPerDatagram)
		}
		v.name(fieldPath(sp, "prefix"), s.Prefix, false)
	}
}

// unique reports value if an earlier element (at seen[value]) had it too.
func (v *validator) unique(seen map[string]string, value, path, what string) {
	if value == "" {
		return
	}
	if first, dup := seen[value]; dup {
		v.errorf(path, "duplicate %s %q (also used by %s)", what, value, first)
		return
	}
	seen[value] = parentPath(path)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// name checks a name that ends up in stat names.
func (v *validator) name(path, s string, required bool) {
	switch {
	case s == "":
		if required {
			v.errorf(path, "required")
		}
	case !nameRE.MatchString(s):
		v.errorf(path, "%q may contain only letters, digits, '_', '.' and '-' (it appears in stat names)", s)
	}
}

func (v *validator) oneOf(path, s string, allowed []string) {
	if !slices.Contains(allowed, s) {
		v.errorf(path, "%s", lbpolicy.OneOfMessage(s, allowed))
	}
}

// address checks host:port. listen allows an empty host (every interface)
// and port 0 (any free port); an upstream address needs both.
func (v *validator) address(path, addr string, listen bool) (host string, ok bool) {
	if addr == "" {
		v.errorf(path, "required (host:port)")
		return "", false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		msg := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			msg = ae.Err
		}
		v.errorf(path, "%q is not host:port: %s", addr, msg)
		return "", false
	}
	minPort := 1
	if listen {
		minPort = 0
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < minPort || p > 65535 {
		v.errorf(path, "%q: port must be a number from %d to 65535, got %q", addr, minPort, port)
		return "", false
	}
	if host == "" && !listen {
		v.errorf(path, "%q: host is missing", addr)
		return "", false
	}
	return host, true
}

// checkFile resolves a file name relative to the config file's directory, checks
// that it names a readable regular file, and stores the absolute path back.
func (v *validator) checkFile(path string, name *string, required bool) {
	if *name == "" {
		if required {
			v.errorf(path, "required")
		}
		return
	}
	p := *name
	if !filepath.IsAbs(p) {
		p = filepath.Join(v.baseDir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.errorf(path, "file %q does not exist (looked for %s)", *name, p)
		return
	case err != nil:
		v.errorf(path, "file %q: %v", *name, err)
		return
	case !st.Mode().IsRegular():
		v.errorf(path, "%q (%s) is not a regular file", *name, p)
		return
	}
	*name = p
}

func (v *validator) listener(lp string, l *Listener) {
	defer v.listenerRateLimits(lp, l)
	defer v.listenerUpgrades(lp, l)
	v.name(fieldPath(lp, "name"), l.Name, true)
	v.address(fieldPath(lp, "address"), l.Address, true)
	v.name(fieldPath(lp, "stat_prefix"), l.StatPrefix, true)
	if t := l.TLS; t != nil {
		tp := fieldPath(lp, "tls")
		v.checkFile(fieldPath(tp, "cert_file"), &t.CertFile, true)
		v.checkFile(fieldPath(tp, "key_file"), &t.KeyFile, true)
		v.oneOf(fieldPath(tp, "min_version"), t.MinVersion, allowedTLSVersions)
	}
	pp := fieldPath(lp, "protocols")
	if len(l.Protocols) == 0 {
		v.errorf(pp, "at least one protocol is required; allowed: %s", strings.Join(allowedProtocols, ", "))
	}
	for i, p := range l.Protocols {
		v.oneOf(indexPath(pp, i), p, allowedProtocols)
		if slices.Index(l.Protocols, p) < i {
			v.errorf(indexPath(pp, i), "%q is listed twice", p)
		}
	}
	lim := l.Limits
	limp := fieldPath(lp, "limits")
	if lim.MaxRequestHeadersKB < 1 || lim.MaxRequestHeadersKB > maxRequestHeadersKB {
		v.errorf(fieldPath(limp, "max_request_headers_kb"), "must be from 1 to %d, got %d", maxRequestHeadersKB, lim.MaxRequestHeadersKB)
	}
	if lim.MaxRequestHeadersCount < 1 {
		v.errorf(fieldPath(limp, "max_request_headers_count"), "must be at least 1, got %d", lim.MaxRequestHeadersCount)
	}
	if lim.MaxConnections < 0 {
		v.errorf(fieldPath(limp, "max_connections"), "must not be negative (0 means unlimited), got %d", lim.MaxConnections)
	}
	if l.XffNumTrustedHops < 0 {
		v.errorf(fieldPath(lp, "xff_num_trusted_hops"), "must not be negative, got %d", l.XffNumTrustedHops)
	}
	v.pathNormalization(lp, &l.PathNormalization)
	for i, a := range l.AccessLog {
		ap := indexPath(fieldPath(lp, "access_log"), i)
		if a.Path == "" {
			v.errorf(fieldPath(ap, "path"), `required: a file path, "stdout" or "stderr"`)
		}
		v.oneOf(fieldPath(ap, "format"), a.Format, allowedLogFormats)
		if a.TextFormat != "" && a.Format != "text" {
			v.errorf(fieldPath(ap, "text_format"), "only allowed with format: text (format is %q)", a.Format)
		}
	}

	vhp := fieldPath(lp, "virtual_hosts")
	if len(l.VirtualHosts) == 0 {
		v.errorf(vhp, "at least one virtual host is required")
	}
	vhNames := map[string]string{}
	domains := map[string]string{}
	for i := range l.VirtualHosts {
		vh := &l.VirtualHosts[i]
		vp := indexPath(vhp, i)
		v.name(fieldPath(vp, "name"), vh.Name, true)
		v.unique(vhNames, vh.Name, fieldPath(vp, "name"), "virtual host name")
		dp := fieldPath(vp, "domains")
		if len(vh.Domains) == 0 {
			v.errorf(dp, `at least one domain is required ("*" matches any)`)
		}
		for j, d := range vh.Domains {
			if msg := domainProblem(d); msg != "" {
				v.errorf(indexPath(dp, j), "%s", msg)
				continue
			}
			v.unique(domains, strings.ToLower(d), indexPath(dp, j), "domain")
		}
		rp := fieldPath(vp, "routes")
		if len(vh.Routes) == 0 {
			v.errorf(rp, "at least one route is required")
		}
		for j := range vh.Routes {
			v.route(indexPath(rp, j), &vh.Routes[j])
		}
		v.headersMutation(vp, &vh.HeadersMutation)
		if vh.RetryPolicy != nil {
			v.retryPolicy(fieldPath(vp, "retry_policy"), vh.RetryPolicy)
		}
	}
}

// domainProblem explains what is wrong with a virtual host domain, or
// returns "" if it is valid: "*", "*.suffix", "prefix.*" or an exact host.
func domainProblem(d string) string {
	if d == "*" {
		return ""
	}
	host := d
	switch {
	case strings.HasPrefix(d, "*"):
		host = d[1:]
	case strings.HasSuffix(d, "*"):
		host = d[:len(d)-1]
	}
	if host == "" || strings.Contains(host, "*") {
		return fmt.Sprintf(`invalid domain %q: a wildcard may only be the whole domain ("*"), its start ("*.example.com") or its end ("example.*")`, d)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") || net.ParseIP(host[1:len(host)-1]) == nil {
			return fmt.Sprintf("invalid domain %q: not a bracketed IPv6 address", d)
		}
		return ""
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		return fmt.Sprintf("invalid domain %q: domains match the host without its port; drop %q", d, host[i:])
	}
	for _, r := range host {
		if !isNameRune(r) {
			return fmt.Sprintf("invalid domain %q: %q is not allowed in a host name", d, r)
		}
	}
	return ""
}

func (v *validator) route(rp string, r *Route) {
	mp := fieldPath(rp, "match")
	m := &r.Match
	if kinds := setNames(map[string]bool{"prefix": m.Prefix != nil, "path": m.Path != nil, "safe_regex": m.SafeRegex != nil}); len(kinds) != 1 {
		v.errorf(mp, "exactly one of prefix, path or safe_regex is required%s", gotKinds(kinds))
	}
	if m.Prefix != nil && !strings.HasPrefix(*m.Prefix, "/") {
		v.errorf(fieldPath(mp, "prefix"), "must start with \"/\", got %q", *m.Prefix)
	}
	if m.Path != nil && !strings.HasPrefix(*m.Path, "/") {
		v.errorf(fieldPath(mp, "path"), "must start with \"/\", got %q", *m.Path)
	}
	if m.SafeRegex != nil {
		v.regex(fieldPath(mp, "safe_regex"), *m.SafeRegex)
	}
	for i := range m.Headers {
		v.headerMatcher(indexPath(fieldPath(mp, "headers"), i), &m.Headers[i])
	}
	for i := range m.QueryParameters {
		q := &m.QueryParameters[i]
		qp := indexPath(fieldPath(mp, "query_parameters"), i)
		if q.Name == "" {
			v.errorf(fieldPath(qp, "name"), "required")
		}
		kinds := setNames(map[string]bool{"exact_match": q.ExactMatch != nil, "safe_regex_match": q.SafeRegexMatch != nil, "present_match": q.PresentMatch != nil})
		if len(kinds) != 1 {
			v.errorf(qp, "exactly one of exact_match, safe_regex_match or present_match is required%s", gotKinds(kinds))
		}
		if q.SafeRegexMatch != nil {
			v.regex(fieldPath(qp, "safe_regex_match"), *q.SafeRegexMatch)
		}
	}

	v.routeFault(rp, r)
	actions := setNames(map[string]bool{"route": r.Route != nil, "redirect": r.Redirect != nil, "direct_response": r.DirectResponse != nil})
	if len(actions) != 1 {
		v.errorf(rp, "exactly one of route, redirect or direct_response is required%s", gotKinds(actions))
	}
	if a := r.Route; a != nil {
		v.routeAction(fieldPath(rp, "route"), a, m.Prefix != nil)
		v.routeHashPolicy(fieldPath(rp, "route"), a)
		v.mirrorPolicies(fieldPath(rp, "route"), a)
	}
	if rd := r.Redirect; rd != nil {
		v.redirect(fieldPath(rp, "redirect"), rd, m.Prefix != nil)
	}
	if dr := r.DirectResponse; dr != nil && (dr.Status < 100 || dr.Status > 599) {
		v.errorf(fieldPath(rp, "direct_response.status"), "must be an HTTP status from 100 to 599, got %d", dr.Status)
	}
	v.headersMutation(rp, &r.HeadersMutation)
	v.name(fieldPath(rp, "stat_prefix"), r.StatPrefix, false)
	if d := r.Decorator; d != nil && strings.TrimSpace(d.Operation) == "" {
		v.errorf(fieldPath(rp, "decorator.operation"), "required: the span name for requests this route matches")
	}
}

// headerMatcher checks one header matcher (route match.headers, and
// rate_limits header_value_match.headers).
func (v *validator) headerMatcher(hp string, h *HeaderMatcher) {
	v.matchHeaderName(fieldPath(hp, "name"), h.Name)
	kinds := setNames(map[string]bool{
		"exact_match": h.ExactMatch != nil, "prefix_match": h.PrefixMatch != nil,
		"suffix_match": h.SuffixMatch != nil, "contains_match": h.ContainsMatch != nil,
		"safe_regex_match": h.SafeRegexMatch != nil, "present_match": h.PresentMatch != nil,
	})
	if len(kinds) != 1 {
		v.errorf(hp, "exactly one of exact_match, prefix_match, suffix_match, contains_match, safe_regex_match or present_match is required%s", gotKinds(kinds))
	}
	if h.SafeRegexMatch != nil {
		v.regex(fieldPath(hp, "safe_regex_match"), *h.SafeRegexMatch)
	}
}

// setNames returns the names whose flag is set, sorted.
func setNames(flags map[string]bool) []string {
	var out []string
	for k, set := range flags {
		if set {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func gotKinds(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	return "; got " + strings.Join(kinds, " and ")
}

func (v *validator) regex(path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.errorf(path, "invalid regular expression %q: %v", re, err)
	}
}

func (v *validator) routeAction(ap string, a *RouteAction, prefixRoute bool) {
	hasWC := a.WeightedClusters != nil
	switch {
	case a.Cluster == "" && !hasWC:
		v.errorf(ap, "exactly one of cluster or weighted_clusters is required")
	case a.Cluster != "" && hasWC:
		v.errorf(ap, "exactly one of cluster or weighted_clusters is required; got both")
	case a.Cluster != "":
		v.clusterRef(fieldPath(ap, "cluster"), a.Cluster)
	}
	if wc := a.WeightedClusters; wc != nil {
		wp := fieldPath(ap, "weighted_clusters")
		cp := fieldPath(wp, "clusters")
		if len(wc.Clusters) == 0 {
			v.errorf(cp, "at least one cluster is required")
		}
		total := 0
		for i := range wc.Clusters {
			w := &wc.Clusters[i]
			ip := indexPath(cp, i)
			if w.Name == "" {
				v.errorf(fieldPath(ip, "name"), "required")
			} else {
				v.clusterRef(fieldPath(ip, "name"), w.Name)
			}
			if w.Weight < 0 || w.Weight > maxClusterWeight {
				v.errorf(fieldPath(ip, "weight"), "must be from 0 to %d, got %d", maxClusterWeight, w.Weight)
			} else {
				total += w.Weight
			}
			v.headersMutation(ip, &w.HeadersMutation)
		}
		if len(wc.Clusters) > 0 && total == 0 {
			v.errorf(cp, "the weights add up to 0; at least one cluster needs a weight above 0")
		}
		if wc.HeaderName != "" {
			v.headerName(fieldPath(wp, "header_name"), wc.HeaderName)
		}
	}
	if a.PrefixRewrite != nil && !prefixRoute {
		v.errorf(fieldPath(ap, "prefix_rewrite"), "only allowed on routes that match a prefix")
	}
	if a.HostRewriteLiteral != "" && a.AutoHostRewrite {
		v.errorf(fieldPath(ap, "auto_host_rewrite"), "cannot be combined with host_rewrite_literal")
	}
	if a.MaxReplayBufferBytes != nil && *a.MaxReplayBufferBytes < 0 {
		v.errorf(fieldPath(ap, "per_request_buffer_limit_bytes"), "must not be negative, got %d", *a.MaxReplayBufferBytes)
	}
	if a.RetryPolicy != nil {
		v.retryPolicy(fieldPath(ap, "retry_policy"), a.RetryPolicy)
	}
}

func (v *validator) clusterRef(path, name string) {
	if v.clusters[name] {
		return
	}
	if len(v.clusterNames) == 0 {
		v.errorf(path, "unknown cluster %q; no clusters are defined", name)
		return
	}
	v.errorf(path, "unknown cluster %q; known clusters: %s", name, strings.Join(v.clusterNames, ", "))
}

func (v *validator) redirect(rp string, rd *RedirectAction, prefixRoute bool) {
	if !slices.Contains(allowedRedirectCodes, rd.ResponseCode) {
		v.errorf(fieldPath(rp, "response_code"), "must be one of 301, 302, 303, 307, 308; got %d", rd.ResponseCode)
	}
	if rd.PortRedirect < 0 || rd.PortRedirect > 65535 {
		v.errorf(fieldPath(rp, "port_redirect"), "must be a port from 1 to 65535 (or 0 to keep the port), got %d", rd.PortRedirect)
	}
	if rd.SchemeRedirect != "" {
		v.oneOf(fieldPath(rp, "scheme_redirect"), rd.SchemeRedirect, allowedSchemes)
		if rd.HTTPSRedirect {
			v.errorf(fieldPath(rp, "https_redirect"), "cannot be combined with scheme_redirect")
		}
	}
	if rd.PrefixRewrite != nil {
		if rd.PathRedirect != "" {
			v.errorf(fieldPath(rp, "prefix_rewrite"), "cannot be combined with path_redirect")
		}
		if !prefixRoute {
			v.errorf(fieldPath(rp, "prefix_rewrite"), "only allowed on routes that match a prefix")
		}
	}
	if rd.PathRedirect != "" && !strings.HasPrefix(rd.PathRedirect, "/") {
		v.errorf(fieldPath(rp, "path_redirect"), "must start with \"/\", got %q", rd.PathRedirect)
	}
}

func (v *validator) retryPolicy(pp string, p *RetryPolicy) {
	rop := fieldPath(pp, "retry_on")
	if len(p.RetryOn) == 0 {
		v.errorf(rop, "at least one condition is required; allowed: %s", strings.Join(allowedRetryOn, ", "))
	}
	for i, c := range p.RetryOn {
		v.oneOf(indexPath(rop, i), c, allowedRetryOn)
	}
	if p.NumRetries != nil && *p.NumRetries < 0 {
		v.errorf(fieldPath(pp, "num_retries"), "must not be negative, got %d", *p.NumRetries)
	}
	for i, code := range p.RetriableStatusCodes {
		if code < 100 || code > 599 {
			v.errorf(indexPath(fieldPath(pp, "retriable_status_codes"), i), "must be an HTTP status from 100 to 599, got %d", code)
		}
	}
	if len(p.RetriableStatusCodes) > 0 && !slices.Contains(p.RetryOn, "retriable-status-codes") {
		v.errorf(fieldPath(pp, "retriable_status_codes"), "has no effect unless retry_on includes retriable-status-codes")
	}
	bp := fieldPath(pp, "retry_back_off")
	b := p.RetryBackOff
	if b.BaseInterval <= 0 {
		v.errorf(fieldPath(bp, "base_interval"), "must be greater than 0, got %s", b.BaseInterval.D())
	} else if b.MaxInterval < b.BaseInterval {
		v.errorf(fieldPath(bp, "max_interval"), "must be at least base_interval (%s), got %s", b.BaseInterval.D(), b.MaxInterval.D())
	}
}

func (v *validator) headersMutation(path string, m *HeadersMutation) {
	for _, add := range []struct {
		name string
		list []HeaderValueOption
	}{{"request_headers_to_add", m.RequestHeadersToAdd}, {"response_headers_to_add", m.ResponseHeadersToAdd}} {
		for i, h := range add.list {
			v.headerName(fieldPath(indexPath(fieldPath(path, add.name), i), "key"), h.Key)
		}
	}
	for _, rm := range []struct {
		name string
		list []string
	}{{"request_headers_to_remove", m.RequestHeadersToRemove}, {"response_headers_to_remove", m.ResponseHeadersToRemove}} {
		for i, h := range rm.list {
			v.headerName(indexPath(fieldPath(path, rm.name), i), h)
		}
	}
}

// headerName checks an HTTP header name (an RFC 9110 token).
func (v *validator) headerName(path, name string) {
	if name == "" {
		v.errorf(path, "required")
		return
	}
	for _, r := range name {
		if !isTokenRune(r) {
			v.errorf(path, "invalid header name %q: %q is not allowed", name, r)
			return
		}
	}
}

// matchPseudoHeaders are the HTTP/2 pseudo-headers a route may match on,
// as Envoy's header matchers can (":authority" is the Host header).
var matchPseudoHeaders = []string{":authority", ":method", ":path", ":scheme"}

// matchHeaderName checks the name of a header to match: a header name, or
// one of the pseudo-headers.
func (v *validator) matchHeaderName(path, name string) {
	if strings.HasPrefix(name, ":") {
		if !slices.Contains(matchPseudoHeaders, strings.ToLower(name)) {
			v.errorf(path, "unknown pseudo-header %q; allowed: %s", name, strings.Join(matchPseudoHeaders, ", "))
		}
		return
	}
	v.headerName(path, name)
}

func isTokenRune(r rune) bool {
	return r < 0x7f && r > 0x20 && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}

func (v *validator) cluster(cp string, c *Cluster) {
	np := fieldPath(cp, "name")
	v.name(np, c.Name, true)
	if c.Name != "" {
		if v.clusters[c.Name] {
			v.errorf(np, "duplicate cluster name %q", c.Name)
		} else {
			v.clusters[c.Name] = true
			v.clusterNames = append(v.clusterNames, c.Name)
		}
	}
	v.oneOf(fieldPath(cp, "type"), c.Type, allowedClusterTypes)
	v.oneOf(fieldPath(cp, "lb_policy"), c.LBPolicy, lbpolicy.Names())
	v.oneOf(fieldPath(cp, "protocol"), c.Protocol, allowedUpstreamProtocols)
	if c.Type == "strict_dns" && c.DNSRefreshRate <= 0 {
		v.errorf(fieldPath(cp, "dns_refresh_rate"), "must be greater than 0, got %s", c.DNSRefreshRate.D())
	}
	if c.ConnectTimeout <= 0 {
		v.errorf(fieldPath(cp, "connect_timeout"), "must be greater than 0, got %s", c.ConnectTimeout.D())
	}
	switch {
	case c.Protocol == "http2" && c.TLS == nil:
		v.errorf(fieldPath(cp, "protocol"), "http2 negotiates HTTP/2 by TLS ALPN and needs tls; use h2c for HTTP/2 without TLS")
	case c.Protocol == "h2c" && c.TLS != nil:
		v.errorf(fieldPath(cp, "protocol"), "h2c is HTTP/2 without TLS but tls is set; use http2")
	}
	if c.TLS != nil {
		v.checkFile(fieldPath(cp, "tls.ca_file"), &c.TLS.CAFile, false)
	}
	if c.MaxIdleConnectionsPerHost < 0 {
		v.errorf(fieldPath(cp, "max_idle_connections_per_host"), "must not be negative, got %d", c.MaxIdleConnectionsPerHost)
	}
	ep := fieldPath(cp, "endpoints")
	if len(c.Endpoints) == 0 {
		v.errorf(ep, "at least one endpoint is required")
	}
	for i, e := range c.Endpoints {
		ip := indexPath(ep, i)
		host, ok := v.address(fieldPath(ip, "address"), e.Address, false)
		if ok && c.Type == "static" && net.ParseIP(host) == nil {
			v.errorf(fieldPath(ip, "address"), "%q: a static cluster needs IP addresses; use type: strict_dns for host names", e.Address)
		}
		if e.Weight < 1 || e.Weight > maxEndpointWeight {
			v.errorf(fieldPath(ip, "weight"), "must be from 1 to %d, got %d", maxEndpointWeight, e.Weight)
		}
		v.name(fieldPath(ip, "zone"), e.Zone, false)
	}
	v.commonLBConfig(cp, &c.CommonLBConfig)
	v.clusterHealth(cp, c)
	v.clusterCircuitBreakers(cp, c)
	for _, b := range c.lbBlocks() {
		b.cfg.Validate(blockReporter{v: v, path: fieldPath(cp, b.key)})
	}
}

// tracingConfigType is the tracing section's type, whose durations its own
// Validate checks.
var tracingConfigType = reflect.TypeFor[tracing.Config]()

// durations reports every negative Duration under v, wherever it is, so
// that no new Duration field can forget the check.
func (v *validator) durations(path string, rv reflect.Value) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.durations(path, rv.Elem())
		}
	case reflect.Slice:
		for i := range rv.Len() {
			v.durations(indexPath(path, i), rv.Index(i))
		}
	case reflect.Struct:
		t := rv.Type()
		if t == tracingConfigType {
			return // tracing.Config.Validate checks its own durations
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if opts == "inline" {
				v.durations(path, rv.Field(i))
				continue
			}
			v.durations(fieldPath(path, name), rv.Field(i))
		}
	case reflect.Int64:
		if rv.Type() == durationType && rv.Int() < 0 {
			v.errorf(path, "must not be negative, got %s", Duration(rv.Int()).D())
		}
	}
}
