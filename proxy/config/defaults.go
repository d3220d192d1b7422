package config

import (
	"os"
	"strings"
	"time"

	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Documented defaults. They live here, once; docs/config.md and the godoc in
// types.go state the same values and TestDefaults pins them.
const (
	DefaultAdminAddress              = "127.0.0.1:9901"
	DefaultDrainTime                 = 5 * time.Second
	DefaultMaxRequestHeadersKB       = 60
	DefaultMaxRequestHeadersCount    = 100
	DefaultReadHeaderTimeout         = 10 * time.Second
	DefaultListenerIdleTimeout       = time.Hour
	DefaultStreamIdleTimeout         = 5 * time.Minute
	DefaultServerName                = "hopwatch"
	DefaultRouteTimeout              = 15 * time.Second
	DefaultMaxReplayBufferBytes      = 65536
	DefaultNumRetries                = 1
	DefaultRetryBaseInterval         = 25 * time.Millisecond
	DefaultDNSRefreshRate            = 5 * time.Second
	DefaultConnectTimeout            = 5 * time.Second
	DefaultMaxIdleConnectionsPerHost = 1024
	DefaultClusterIdleTimeout        = time.Hour
	DefaultEndpointWeight            = 1
	DefaultRedirectResponseCode      = 301
	DefaultTLSMinVersion             = "1.2"
)

// ApplyDefaults fills every field that has a documented default and is
// still zero (nil for pointers). Parse and Load call it; call it yourself
// for a Config built in code. A field set to its zero value in code is
// indistinguishable from an unset one here, so it gets the default; Parse
// knows better and keeps an explicit "0s" or "[]" from a file.
func (c *Config) ApplyDefaults() {
	c.applyDefaults(func(string) bool { return false })
}

// applyDefaults fills defaults; explicit reports whether a field path was
// written in the file, in which case its value, even zero, is kept.
func (c *Config) applyDefaults(explicit func(path string) bool) {
	setD := func(d *Duration, path string, def time.Duration) {
		if *d == 0 && !explicit(path) {
			*d = Duration(def)
		}
	}
	setI := func(i *int, path string, def int) {
		if *i == 0 && !explicit(path) {
			*i = def
		}
	}
	setS := func(s *string, path string, def string) {
		if *s == "" && !explicit(path) {
			*s = def
		}
	}
	setB := func(b **bool, def bool) {
		if *b == nil {
			*b = &def
		}
	}

	if c.Node.ID == "" && !explicit("node.id") {
		c.Node.ID = hostNodeID()
	}
	setS(&c.Admin.Address, "admin.address", DefaultAdminAddress)
	setD(&c.Lifecycle.DrainTime, "lifecycle.drain_time", DefaultDrainTime)
	setB(&c.Lifecycle.WatchConfig, true)

	if len(c.StatsConfig.HistogramBuckets) == 0 {
		c.StatsConfig.HistogramBuckets = stats.DefaultBuckets()
	}
	setI(&c.StatsConfig.MaxStats, "stats_config.max_stats", stats.DefaultMaxStats)
	setD(&c.StatsConfig.FlushInterval, "stats_config.flush_interval", stats.DefaultFlushInterval)
	setI(&c.StatsConfig.TimerQueueSize, "stats_config.timer_queue_size", stats.DefaultTimerQueueSize)
	setD(&c.StatsConfig.TimerDrainInterval, "stats_config.timer_drain_interval", min(250*time.Millisecond, c.StatsConfig.FlushInterval.D()))
	for i := range c.StatsSinks {
		s := &c.StatsSinks[i]
		sp := indexPath("stats_sinks", i)
		setS(&s.Type, fieldPath(sp, "type"), "statsd")
		setS(&s.Protocol, fieldPath(sp, "protocol"), "udp")
		setS(&s.Prefix, fieldPath(sp, "prefix"), stats.DefaultPrefix)
		setI(&s.MaxBytesPerDatagram, fieldPath(sp, "max_bytes_per_datagram"), stats.DefaultMaxBytesPerDatagram)
		setS(&s.Histograms, fieldPath(sp, "histograms"), "timer")
	}

	for i := range c.Listeners {
		l := &c.Listeners[i]
		lp := indexPath("listeners", i)
		if l.Protocols == nil && !explicit(fieldPath(lp, "protocols")) {
			l.Protocols = []string{"http1", "http2"}
		}
		if l.TLS != nil {
			setS(&l.TLS.MinVersion, fieldPath(lp, "tls.min_version"), DefaultTLSMinVersion)
		}
		setI(&l.Limits.MaxRequestHeadersKB, fieldPath(lp, "limits.max_request_headers_kb"), DefaultMaxRequestHeadersKB)
		setI(&l.Limits.MaxRequestHeadersCount, fieldPath(lp, "limits.max_request_headers_count"), DefaultMaxRequestHeadersCount)
		setD(&l.Limits.ReadHeaderTimeout, fieldPath(lp, "limits.read_header_timeout"), DefaultReadHeaderTimeout)
		setD(&l.Limits.IdleTimeout, fieldPath(lp, "limits.idle_timeout"), DefaultListenerIdleTimeout)
		setD(&l.Limits.StreamIdleTimeout, fieldPath(lp, "limits.stream_idle_timeout"), DefaultStreamIdleTimeout)
		setB(&l.UseRemoteAddress, true)
		setB(&l.RequestID.Generate, true)
		if l.AccessLog == nil && !explicit(fieldPath(lp, "access_log")) {
			l.AccessLog = []AccessLog{{}}
		}
		for j := range l.AccessLog {
			ap := indexPath(fieldPath(lp, "access_log"), j)
			setS(&l.AccessLog[j].Path, fieldPath(ap, "path"), "stdout")
			setS(&l.AccessLog[j].Format, fieldPath(ap, "format"), "json")
		}
		setS(&l.ServerName, fieldPath(lp, "server_name"), DefaultServerName)
		l.applyPathNormalizationDefaults()
		l.applyRateLimitDefaults(lp, explicit)
		l.applyUpgradeDefaults(lp, explicit)
		for j := range l.VirtualHosts {
			vh := &l.VirtualHosts[j]
			vp := indexPath(fieldPath(lp, "virtual_hosts"), j)
			vh.HeadersMutation.applyDefaults()
			if vh.RetryPolicy != nil {
				vh.RetryPolicy.applyDefaults(fieldPath(vp, "retry_policy"), explicit)
			}
			for k := range vh.Routes {
				r := &vh.Routes[k]
				rp := indexPath(fieldPath(vp, "routes"), k)
				r.applyDefaults(rp, explicit)
			}
		}
	}

	for i := range c.Clusters {
		cl := &c.Clusters[i]
		cp := indexPath("clusters", i)
		setS(&cl.Type, fieldPath(cp, "type"), "static")
		setD(&cl.DNSRefreshRate, fieldPath(cp, "dns_refresh_rate"), DefaultDNSRefreshRate)
		setD(&cl.ConnectTimeout, fieldPath(cp, "connect_timeout"), DefaultConnectTimeout)
		setS(&cl.LBPolicy, fieldPath(cp, "lb_policy"), "round_robin")
		setS(&cl.Protocol, fieldPath(cp, "protocol"), "http1")
		setI(&cl.MaxIdleConnectionsPerHost, fieldPath(cp, "max_idle_connections_per_host"), DefaultMaxIdleConnectionsPerHost)
		setD(&cl.IdleTimeout, fieldPath(cp, "idle_timeout"), DefaultClusterIdleTimeout)
		for j := range cl.Endpoints {
			setI(&cl.Endpoints[j].Weight, fieldPath(indexPath(fieldPath(cp, "endpoints"), j), "weight"), DefaultEndpointWeight)
		}
		cl.CommonLBConfig.applyDefaults()
		cl.applyHealthDefaults(cp, explicit)
		cl.applyCircuitBreakerDefaults(cp, explicit)
		for _, b := range cl.lbBlocks() {
			bp := fieldPath(cp, b.key)
			b.cfg.ApplyDefaults(func(f string) bool { return explicit(fieldPath(bp, f)) })
		}
	}
}

func (r *Route) applyDefaults(rp string, explicit func(string) bool) {
	if r.Match.CaseSensitive == nil {
		t := true
		r.Match.CaseSensitive = &t
	}
	r.HeadersMutation.applyDefaults()
	if a := r.Route; a != nil {
		if a.Timeout == nil {
			t := Duration(DefaultRouteTimeout)
			a.Timeout = &t
		}
		if a.MaxReplayBufferBytes == nil {
			n := DefaultMaxReplayBufferBytes
			a.MaxReplayBufferBytes = &n
		}
		if a.RetryPolicy != nil {
			a.RetryPolicy.applyDefaults(fieldPath(rp, "route.retry_policy"), explicit)
		}
		if a.WeightedClusters != nil {
			for i := range a.WeightedClusters.Clusters {
				a.WeightedClusters.Clusters[i].HeadersMutation.applyDefaults()
			}
		}
		a.applyMirrorDefaults(fieldPath(rp, "route"), explicit)
	}
	r.applyFaultDefaults(rp, explicit)
	if rd := r.Redirect; rd != nil && rd.ResponseCode == 0 && !explicit(fieldPath(rp, "redirect.response_code")) {
		rd.ResponseCode = DefaultRedirectResponseCode
	}
}

func (p *RetryPolicy) applyDefaults(path string, explicit func(string) bool) {
	if p.NumRetries == nil {
		n := DefaultNumRetries
		p.NumRetries = &n
	}
	b := &p.RetryBackOff
	if b.BaseInterval == 0 && !explicit(fieldPath(path, "retry_back_off.base_interval")) {
		b.BaseInterval = Duration(DefaultRetryBaseInterval)
	}
	if b.MaxInterval == 0 && !explicit(fieldPath(path, "retry_back_off.max_interval")) {
		// Envoy's default: ten times the base interval.
		b.MaxInterval = 10 * b.BaseInterval
	}
}

func (m *HeadersMutation) applyDefaults() {
	for _, list := range [][]HeaderValueOption{m.RequestHeadersToAdd, m.ResponseHeadersToAdd} {
		for i := range list {
			if list[i].Append == nil {
				t := true
				list[i].Append = &t
			}
		}
	}
}

// hostNodeID is the default node.id: the host name, with any character
// that may not appear in a stat name replaced by '_'.
func hostNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return DefaultServerName
	}
	return strings.Map(func(r rune) rune {
		if isNameRune(r) {
			return r
		}
		return '_'
	}, h)
}

// isNameRune reports whether r may appear in a name that ends up in stats.
func isNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}
