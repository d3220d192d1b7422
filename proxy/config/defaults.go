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
	c.applyDefaults(func(any) bool { return false })
}

// applyDefaults fills defaults; explicit reports whether the field its
// argument points to was written in the file, in which case its value, even
// zero, is kept.
func (c *Config) applyDefaults(explicit func(field any) bool) {
	setD := func(d *Duration, def time.Duration) {
		if *d == 0 && !explicit(d) {
			*d = Duration(def)
		}
	}
	setI := func(i *int, def int) {
		if *i == 0 && !explicit(i) {
			*i = def
		}
	}
	setS := func(s *string, def string) {
		if *s == "" && !explicit(s) {
			*s = def
		}
	}

	if c.Node.ID == "" && !explicit(&c.Node.ID) {
		c.Node.ID = hostNodeID()
	}
	setS(&c.Admin.Address, DefaultAdminAddress)
	setD(&c.Lifecycle.DrainTime, DefaultDrainTime)
	setDefault(&c.Lifecycle.WatchConfig, true)

	if len(c.StatsConfig.HistogramBuckets) == 0 {
		c.StatsConfig.HistogramBuckets = stats.DefaultBuckets()
	}
	setI(&c.StatsConfig.MaxStats, stats.DefaultMaxStats)
	setD(&c.StatsConfig.FlushInterval, stats.DefaultFlushInterval)
	setI(&c.StatsConfig.TimerQueueSize, stats.DefaultTimerQueueSize)
	setD(&c.StatsConfig.TimerDrainInterval, min(250*time.Millisecond, c.StatsConfig.FlushInterval.D()))
	for i := range c.StatsSinks {
		s := &c.StatsSinks[i]
		setS(&s.Type, "statsd")
		setS(&s.Protocol, "udp")
		setS(&s.Prefix, stats.DefaultPrefix)
		setI(&s.MaxBytesPerDatagram, stats.DefaultMaxBytesPerDatagram)
		setS(&s.Histograms, "timer")
	}

	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Protocols == nil && !explicit(&l.Protocols) {
			l.Protocols = []string{"http1", "http2"}
		}
		if l.TLS != nil {
			setS(&l.TLS.MinVersion, DefaultTLSMinVersion)
		}
		setI(&l.Limits.MaxRequestHeadersKB, DefaultMaxRequestHeadersKB)
		setI(&l.Limits.MaxRequestHeadersCount, DefaultMaxRequestHeadersCount)
		setD(&l.Limits.ReadHeaderTimeout, DefaultReadHeaderTimeout)
		setD(&l.Limits.IdleTimeout, DefaultListenerIdleTimeout)
		setD(&l.Limits.StreamIdleTimeout, DefaultStreamIdleTimeout)
		setDefault(&l.UseRemoteAddress, true)
		setDefault(&l.RequestID.Generate, true)
		if l.AccessLog == nil && !explicit(&l.AccessLog) {
			l.AccessLog = []AccessLog{{}}
		}
		for j := range l.AccessLog {
			setS(&l.AccessLog[j].Path, "stdout")
			setS(&l.AccessLog[j].Format, "json")
		}
		setS(&l.ServerName, DefaultServerName)
		l.applyPathNormalizationDefaults()
		l.applyRateLimitDefaults(explicit)
		l.applyUpgradeDefaults(explicit)
		for j := range l.VirtualHosts {
			vh := &l.VirtualHosts[j]
			vh.HeadersMutation.applyDefaults()
			if vh.RetryPolicy != nil {
				vh.RetryPolicy.applyDefaults(explicit)
			}
			for k := range vh.Routes {
				r := &vh.Routes[k]
				r.applyDefaults(explicit)
			}
		}
	}

	for i := range c.Clusters {
		cl := &c.Clusters[i]
		setS(&cl.Type, "static")
		setD(&cl.DNSRefreshRate, DefaultDNSRefreshRate)
		setD(&cl.ConnectTimeout, DefaultConnectTimeout)
		setS(&cl.LBPolicy, "round_robin")
		setS(&cl.Protocol, "http1")
		setI(&cl.MaxIdleConnectionsPerHost, DefaultMaxIdleConnectionsPerHost)
		setD(&cl.IdleTimeout, DefaultClusterIdleTimeout)
		for j := range cl.Endpoints {
			setI(&cl.Endpoints[j].Weight, DefaultEndpointWeight)
		}
		cl.CommonLBConfig.applyDefaults()
		cl.applyHealthDefaults(explicit)
		cl.applyCircuitBreakerDefaults(explicit)
		for _, b := range cl.lbBlocks() {
			b.cfg.ApplyDefaults(explicit)
		}
	}
}

func (r *Route) applyDefaults(explicit func(any) bool) {
	setDefault(&r.Match.CaseSensitive, true)
	r.HeadersMutation.applyDefaults()
	if a := r.Route; a != nil {
		setDefault(&a.Timeout, Duration(DefaultRouteTimeout))
		setDefault(&a.MaxReplayBufferBytes, DefaultMaxReplayBufferBytes)
		if a.RetryPolicy != nil {
			a.RetryPolicy.applyDefaults(explicit)
		}
		if a.WeightedClusters != nil {
			for i := range a.WeightedClusters.Clusters {
				a.WeightedClusters.Clusters[i].HeadersMutation.applyDefaults()
			}
		}
		a.applyMirrorDefaults(explicit)
	}
	r.applyFaultDefaults(explicit)
	if rd := r.Redirect; rd != nil && rd.ResponseCode == 0 && !explicit(&rd.ResponseCode) {
		rd.ResponseCode = DefaultRedirectResponseCode
	}
}

func (p *RetryPolicy) applyDefaults(explicit func(any) bool) {
	setDefault(&p.NumRetries, DefaultNumRetries)
	b := &p.RetryBackOff
	if b.BaseInterval == 0 && !explicit(&b.BaseInterval) {
		b.BaseInterval = Duration(DefaultRetryBaseInterval)
	}
	if b.MaxInterval == 0 && !explicit(&b.MaxInterval) {
		// Envoy's default: ten times the base interval.
		b.MaxInterval = 10 * b.BaseInterval
	}
}

func (m *HeadersMutation) applyDefaults() {
	for _, list := range [][]HeaderValueOption{m.RequestHeadersToAdd, m.ResponseHeadersToAdd} {
		for i := range list {
			setDefault(&list[i].Append, true)
		}
	}
}

// hostNodeID is the default node.id: the host name, with any character
// that may not appear in a stat name replaced by '_'.
// setDefault points *p at v when the file left the field unset (nil); a
// value the file wrote, even a zero one, stays.
func setDefault[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

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
