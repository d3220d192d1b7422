package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/connmgr"
	"github.com/hopwatch/hopwatch/proxy/listener"
	"github.com/hopwatch/hopwatch/proxy/periodic"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/router"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// This file connects the stats store to the proxy's pieces. Every stat is
// created here, from configuration, so request data can never add one:
// the store's size is bounded by the configuration, whatever the traffic.

// startFlusher starts sending stats to the configured sinks.
func (s *Server) startFlusher(ctx context.Context) error {
	sc := s.cfg.StatsConfig
	if sc.Disabled {
		return nil
	}
	fc := stats.FlusherConfig{
		FlushInterval:      sc.FlushInterval.D(),
		TimerQueueSize:     sc.TimerQueueSize,
		TimerDrainInterval: sc.TimerDrainInterval.D(),
		// Zero from the first scrape: see docs/config.md, stats_sinks.
		AnnounceCounters: true,
	}
	fc.Sinks = append(fc.Sinks, s.cfg.StatsSinks...)
	f, err := stats.NewFlusher(s.store, fc, s.log)
	if err != nil {
		return err
	}
	s.flusher = f
	go func() { _ = f.Run(context.WithoutCancel(ctx)) }()
	return nil
}

// listenerStats returns the function that names a listener's connection
// stats once its address is known.
func (s *Server) listenerStats(lc *config.Listener) func(net.Addr) *listener.Stats {
	return func(addr net.Addr) *listener.Stats {
		if slices.Contains(lc.Protocols, "http2") {
			// Envoy creates http2.* at the first HTTP/2 connection; a
			// listener that may speak HTTP/2 shows them at 0 from the
			// first scrape instead, so a dashboard of HTTP/2 errors reads
			// 0, not "No data", until something goes wrong.
			s.store.HTTP2CodecStats()
		}
		return &listener.Stats{
			Listener: s.store.ListenerStats(addr.String()),
			HTTP:     s.store.HTTPConnManagerStats(lc.StatPrefix),
			HTTP2:    s.store.HTTP2CodecStats,
		}
	}
}

// requestStats builds the stats in store that one listener's requests
// update under cfg, which is the configuration being loaded (on a reload
// the running one's clusters and node.zone may differ).
func requestStats(store *stats.Store, cfg *config.Config, lc *config.Listener, table *route.Table) *connmgr.Stats {
	st := &connmgr.Stats{
		HTTP:     store.HTTPConnManagerStats(lc.StatPrefix),
		Upstream: make(map[string]*router.UpstreamStats, len(cfg.Clusters)),
		Routes:   map[*route.Route]*stats.RouteStats{},
	}
	for _, vh := range table.VirtualHosts() {
		for _, rt := range vh.Routes() {
			if rt.StatPrefix != "" {
				st.Routes[rt] = store.RouteStats(vh.Name, rt.StatPrefix)
			}
		}
	}
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		us := &router.UpstreamStats{Cluster: store.ClusterStats(c.Name)}
		if local := cfg.Node.Zone; local != "" {
			for _, ep := range c.Endpoints {
				if ep.Zone != "" && us.Zones[ep.Zone] == nil {
					if us.Zones == nil {
						us.Zones = map[string]*stats.ZoneStats{}
					}
					us.Zones[ep.Zone] = store.ZoneStats(c.Name, local, ep.Zone)
				}
			}
		}
		st.Upstream[c.Name] = us
	}
	return st
}

// dialStats counts upstream connections in their cluster's stats: attempts
// and connect times through DialDone, and each established connection's
// bytes, lifetime and close through WrapConn.
type dialStats struct {
	store *stats.Store
	// http2 names the clusters that speak HTTP/2 upstream (http2, h2c).
	http2 map[string]bool
}

// WrapConn implements cluster.ConnObserver.
func (d dialStats) WrapConn(clusterName string, c net.Conn) net.Conn {
	cs := d.store.ClusterStats(clusterName)
	cs.UpstreamCxActive.Inc()
	if d.http2[clusterName] {
		cs.UpstreamCxHTTP2Total.Inc()
	} else {
		cs.UpstreamCxHTTP1Total.Inc()
	}
	return &upstreamConn{Conn: c, cs: cs, start: time.Now()}
}

// upstreamConn counts one upstream connection's bytes and its end.
type upstreamConn struct {
	net.Conn
	cs    *stats.ClusterStats
	start time.Time
	// remoteClosed records that a read failed before we closed: the
	// upstream (or the network) ended the connection.
	remoteClosed atomic.Bool
	closed       atomic.Bool
}

// NetConn returns the wrapped connection, so that the upstream client can
// reach the socket (it peeks at idle connections before reuse).
func (c *upstreamConn) NetConn() net.Conn { return c.Conn }

func (c *upstreamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.cs.UpstreamCxRxBytesTotal.Add(uint64(n))
	}
	// A deadline error is the proxy cancelling an exchange, not the
	// upstream ending the connection.
	if err != nil && !c.closed.Load() && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.remoteClosed.Store(true)
	}
	return n, err
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.cs.UpstreamCxTxBytesTotal.Add(uint64(n))
	}
	return n, err
}

func (c *upstreamConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		cs := c.cs
		cs.UpstreamCxActive.Dec()
		cs.UpstreamCxDestroy.Inc()
		if c.remoteClosed.Load() {
			cs.UpstreamCxDestroyRemote.Inc()
		} else {
			cs.UpstreamCxDestroyLocal.Inc()
		}
		cs.UpstreamCxLengthMs.Record(uint64(max(time.Since(c.start).Milliseconds(), 0)))
	}
	return c.Conn.Close()
}

// DialDone implements cluster.DialObserver.
func (d dialStats) DialDone(_ context.Context, clusterName, _ string, elapsed time.Duration, err error) {
	cs := d.store.ClusterStats(clusterName)
	if err != nil {
		cs.UpstreamCxConnectFail.Inc()
		var ce *cluster.ConnectError
		if errors.As(err, &ce) && ce.Timeout {
			cs.UpstreamCxConnectTimeout.Inc()
		}
		return
	}
	cs.UpstreamCxTotal.Inc()
	cs.UpstreamCxConnectMs.Record(uint64(max(elapsed.Milliseconds(), 0)))
}

// refreshMembership keeps each cluster's membership gauges current: host
// sets change with DNS answers, health checks and outlier ejections, away
// from any request.
func (s *Server) refreshMembership(ctx context.Context) {
	s.updateMembership()
	periodic.Every(ctx, time.Second, func(time.Time) { s.updateMembership() })
}

func (s *Server) updateMembership() {
	s.mu.Lock()
	clusters := s.clusters
	s.mu.Unlock()
	if clusters == nil {
		return
	}
	for _, c := range clusters.Clusters() {
		cs := s.store.ClusterStats(c.Name())
		hosts := c.Hosts()
		healthy, maxWeight := 0, 0
		for _, h := range hosts {
			if h.Healthy() {
				healthy++
			}
			maxWeight = max(maxWeight, h.Weight())
		}
		if prev := cs.MembershipTotal.Value(); cs.MembershipTotal.Used() && prev != uint64(len(hosts)) {
			cs.MembershipChange.Inc()
		}
		cs.MembershipTotal.Set(uint64(len(hosts)))
		cs.MembershipHealthy.Set(uint64(healthy))
		cs.MembershipDegraded.Set(0)
		cs.MaxHostWeight.Set(uint64(maxWeight))
	}
}

// clusterOptions are the cluster manager's dependencies for cfg: the
// upstream connection counter, the cluster stats the clusters update
// themselves (lb_zone_*), and the zone-aware routing settings.
func (s *Server) clusterOptions(cfg *config.Config) cluster.Options {
	return cluster.Options{
		DialObserver:     s.dialObserver(cfg.Clusters),
		LocalZone:        cfg.Node.Zone,
		LocalClusterName: cfg.ClusterManager.LocalClusterName,
		ClusterStats:     s.store.ClusterStats,
		// Circuit breakers (cluster.Breaker) keep the *_overflow counters,
		// the pending-request stats and the circuit_breakers.default.*
		// gauges in ClusterStats, and remaining_* with track_remaining.
		CircuitBreakerRemainingStats: s.store.CircuitBreakerRemainingStats,
	}
}

// dialObserver returns the upstream connection counter.
func (s *Server) dialObserver(clusters []config.Cluster) cluster.DialObserver {
	ds := dialStats{store: s.store, http2: map[string]bool{}}
	for _, c := range clusters {
		ds.http2[c.Name] = c.Protocol == "http2" || c.Protocol == "h2c"
	}
	return ds
}

// setListenerHTTPStats names listener.<address>.http.<prefix>.* once the
// listener's address is known.
func (s *Server) setListenerHTTPStats(snap *connmgr.Snapshot, ln *listener.Listener, lc *config.Listener) {
	snap.Stats.Listener = s.store.ListenerHTTPStats(ln.Addr().String(), lc.StatPrefix)
}

// setCertExpiry sets each TLS listener's
// listener.<address>.ssl.certificate.<cert_file>.expiration_unix_time_seconds
// and server.days_until_first_cert_expiring from the certificates the
// listeners serve now, as Envoy reports for the certificates it manages.
// It reads the listeners' loaded certificates rather than the files, so a
// reload that could not read new files reports the certificate still in use.
// The caller holds s.mu.
func (s *Server) setCertExpiry() {
	if s.server == nil {
		return
	}
	var first time.Time
	for name, live := range s.listeners {
		notAfter, ok := live.ln.CertNotAfter()
		if !ok {
			continue
		}
		if lc := live.ln.Config(); lc.TLS != nil {
			s.store.ListenerCertStats(live.ln.Addr().String(), lc.TLS.CertFile).ExpirationUnixTimeSeconds.Set(uint64(max(notAfter.Unix(), 0)))
		} else {
			s.log.Warn("listener serves a certificate but has no TLS settings", "listener", name)
		}
		if first.IsZero() || notAfter.Before(first) {
			first = notAfter
		}
	}
	if !first.IsZero() {
		s.server.SetDaysUntilFirstCertExpiring(uint64(max(time.Until(first).Hours()/24, 0)))
	}
}
