package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// Cluster types accepted in config.Cluster.Type.
const (
	typeStatic    = "static"
	typeStrictDNS = "strict_dns"
)

// defaultDNSRefreshRate is config.Cluster.DNSRefreshRate's default.
const defaultDNSRefreshRate = 5 * time.Second

// Cluster is one upstream service: its host set, load balancer and pooled
// transport. All methods are safe for concurrent use.
type Cluster struct {
	name      string
	cfg       config.Cluster // a deep copy, compared on reload
	log       *slog.Logger
	transport pooledTransport
	scheme    string
	lb        balancer
	policy    policy
	// breaker holds the circuit breakers (circuit_breaker.go).
	breaker *Breaker

	set atomic.Pointer[hostSet]
	// mu serialises host set rebuilds (DNS answers, health changes); Pick
	// never takes it.
	mu sync.Mutex

	// owner is the Manager that closes this cluster; a hot reload that
	// carries the cluster over hands it to the new Manager.
	owner atomic.Pointer[Manager]

	// Zone-aware routing (zone_aware.go): the Manager sets zoneEnv; Pick
	// rebuilds zonePlan when a host set it was built from changes.
	zone     zoneState
	zoneEnv  atomic.Pointer[zoneEnv]
	zonePlan atomic.Pointer[zonePlan]
	// stats are the cluster's own counters (lb_zone_*), never nil: a null
	// store's when stats are off.
	stats *stats.ClusterStats

	// panicThreshold is common_lb_config.healthy_panic_threshold, percent.
	panicThreshold float64
	// hc runs the active health check (health_check.go); nil without
	// health_checks.
	hc *healthChecker
	// od is the outlier detector (outlier.go); nil without
	// outlier_detection.
	od *outlierDetector

	// strict_dns state, used by the DNS loop only (and by start before it).
	eps      []endpoint
	resolver Resolver
	refresh  time.Duration
	resolved [][]netip.Addr // last good answer per endpoint

	stopDNS   context.CancelFunc // nil for static clusters
	dnsDone   chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
}

// LBContext carries what the load balancer may use about one request.
type LBContext struct {
	// Attempted holds hosts already tried for this request; Pick avoids them
	// when another is available (Envoy's previous_hosts retry predicate).
	Attempted []*Host
	// Hash is the request hash of the route's hash_policy, for ring_hash and
	// maglev clusters; HasHash is false when the policy produced none (or
	// the route has none), and those balancers then draw a random value.
	Hash    uint64
	HasHash bool
}

// newCluster validates cfg and builds the cluster without starting DNS.
func newCluster(cfg *config.Cluster, opts Options, log *slog.Logger) (*Cluster, error) {
	c := &Cluster{
		name:           cfg.Name,
		cfg:            cloneClusterConfig(cfg),
		log:            log.With("cluster", cfg.Name),
		panicThreshold: config.DefaultHealthyPanicThreshold,
	}
	if t := cfg.CommonLBConfig.HealthyPanicThreshold; t != nil {
		c.panicThreshold = *t
	}
	var needIP bool
	switch cfg.Type {
	case "", typeStatic:
		needIP = true
	case typeStrictDNS:
		refresh, err := positiveOrDefault("dns_refresh_rate", cfg.DNSRefreshRate.D(), defaultDNSRefreshRate)
		if err != nil {
			return nil, err
		}
		c.refresh = refresh
		c.resolver = opts.Resolver
		if c.resolver == nil {
			c.resolver = net.DefaultResolver
		}
	default:
		return nil, fmt.Errorf("type: unknown cluster type %q (allowed: %s, %s)", cfg.Type, typeStatic, typeStrictDNS)
	}
	eps, err := parseEndpoints(cfg, needIP)
	if err != nil {
		return nil, err
	}
	c.eps = eps
	if c.lb, c.policy, err = newBalancer(cfg, opts.rnd); err != nil {
		return nil, err
	}
	c.zone = zoneState{cfg: newZoneConfig(cfg), rnd: opts.rnd}
	if c.zone.rnd == nil {
		c.zone.rnd = rand.Uint64
	}
	opts = opts.withNullStats()
	c.stats = opts.ClusterStats(cfg.Name)
	spec, err := newTransport(cfg, opts.DialObserver, c.serverName)
	if err != nil {
		return nil, err
	}
	c.transport, c.scheme = spec.client, spec.scheme
	c.breaker = newBreaker(cfg.CircuitBreakers, c.breakerStats(cfg, opts))
	spec.dialer.breaker = c.breaker
	// Health checking comes before the first host set so that its hosts
	// start as Envoy's do: unhealthy until their first check passes.
	if err := c.newHealth(cfg, opts); err != nil {
		return nil, err
	}

	// IP endpoints are known now; names wait for the first DNS answer.
	c.resolved = make([][]netip.Addr, len(eps))
	for i, e := range eps {
		if e.ip.IsValid() {
			c.resolved[i] = []netip.Addr{e.ip}
		}
	}
	c.rebuildFromResolved()
	return c, nil
}

// cloneClusterConfig deep-copies cfg so that the caller may reuse its
// config and a reload compares against exactly what this cluster runs.
func cloneClusterConfig(cfg *config.Cluster) config.Cluster {
	out := *cfg
	out.Endpoints = slices.Clone(cfg.Endpoints)
	if cfg.TLS != nil {
		t := *cfg.TLS
		out.TLS = &t
	}
	if cfg.LeastRequest.ActiveRequestBias != nil {
		b := *cfg.LeastRequest.ActiveRequestBias
		out.LeastRequest.ActiveRequestBias = &b
	}
	out.HealthChecks = cloneHealthChecks(cfg.HealthChecks)
	out.CircuitBreakers = cloneCircuitBreakers(cfg.CircuitBreakers)
	if cfg.OutlierDetection != nil {
		o := *cfg.OutlierDetection
		out.OutlierDetection = &o
	}
	return out
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Stats returns the cluster's stats: the ones Options.ClusterStats gave
// it, or a null store's. Never nil.
func (c *Cluster) Stats() *stats.ClusterStats { return c.stats }

// Config returns the configuration the cluster runs. It is shared and must
// not be modified.
func (c *Cluster) Config() *config.Cluster { return &c.cfg }

// Transport returns the cluster's pooled transport, set up for its protocol
// (http1, http2 over TLS, or h2c). Requests must use Scheme and a host's
// Address as the URL's scheme and host. Dial and TLS handshake failures come
// back as *ConnectError (possibly wrapped).
func (c *Cluster) Transport() http.RoundTripper { return c.transport }

// Scheme returns "https" when the cluster originates TLS, else "http".
func (c *Cluster) Scheme() string { return c.scheme }

// Hosts returns the current host set. The slice is an immutable snapshot
// shared with the balancer: read it, never modify it.
func (c *Cluster) Hosts() []*Host { return c.set.Load().all }

// Pick chooses the host for one upstream attempt, or returns nil when the
// cluster has no usable host (the proxy answers 503 with flag UH). lb may be
// nil. A first attempt allocates nothing.
func (c *Cluster) Pick(lb *LBContext) *Host {
	set := c.set.Load()
	cands := set.active
	if len(cands.hosts) == 0 {
		return nil
	}
	if set.panic {
		c.stats.LbHealthyPanic.Inc()
	}
	if set.panic && c.zone.cfg.failTrafficOnPanic {
		// zone_aware_lb_config.fail_traffic_on_panic: fail rather than
		// balance over unhealthy hosts.
		return nil
	}
	// Filter stage. The health filter and panic threshold were applied when
	// the set was built (set.active). Zone-aware routing narrows cands to
	// one zone's healthy hosts, before the retry predicate; in panic mode
	// Envoy balances over every host, ignoring zones.
	zoned := false
	if !set.panic {
		z, fail := c.zoneCandidates(set)
		if fail {
			return nil
		}
		if z != nil {
			cands, zoned = z, true
		}
	}
	if lb != nil && len(lb.Attempted) > 0 {
		if zoned && allAttempted(cands, lb.Attempted) {
			// The zone has no untried host left: a retry may leave it.
			cands = set.active
		}
		if !c.policy.hashesRequests {
			cands = withoutAttempted(cands, lb.Attempted)
		}
	}
	return c.lb.pick(cands, lb)
}

// allAttempted reports whether a request already tried every candidate.
func allAttempted(c *candidates, attempted []*Host) bool {
	for _, h := range c.hosts {
		if !slices.Contains(attempted, h) {
			return false
		}
	}
	return true
}

// withoutAttempted removes the hosts a request already tried, unless that
// leaves nothing: retrying the same host beats failing without a try.
func withoutAttempted(c *candidates, attempted []*Host) *candidates {
	n := 0
	for _, h := range c.hosts {
		if slices.Contains(attempted, h) {
			n++
		}
	}
	if n == 0 || n == len(c.hosts) {
		return c
	}
	rest := make([]*Host, 0, len(c.hosts)-n)
	for _, h := range c.hosts {
		if !slices.Contains(attempted, h) {
			rest = append(rest, h)
		}
	}
	return newCandidates(rest)
}

// serverName returns the TLS server name for a dialed address: the host of
// the endpoint that resolved to it, so that a strict_dns cluster verifies
// the certificate against its DNS name rather than an IP.
func (c *Cluster) serverName(addr string) string {
	if h, ok := c.set.Load().byAddr[addr]; ok {
		if host, _, err := net.SplitHostPort(h.hostname); err == nil {
			return host
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// setHealthFlag sets or clears one of h's health flags and, when that
// changes whether h is healthy, rebuilds the host set so that the filter
// stage sees it. It is the entry point for active health checking and
// outlier detection; it reports whether the flag changed.
func (c *Cluster) setHealthFlag(h *Host, flag uint32, set bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := h.health.Load()
	next := old &^ flag
	if set {
		next = old | flag
	}
	if next == old {
		return false
	}
	h.health.Store(next)
	if (old == 0) != (next == 0) && slices.Contains(c.set.Load().all, h) {
		c.set.Store(newHostSet(c.set.Load().all, c.panicThreshold))
	}
	return true
}

// hostKey identifies a host across DNS refreshes: the same address reached
// through two endpoints is two hosts, as in Envoy, since their weight, zone
// and canary flag may differ.
type hostKey struct {
	endpoint int
	addr     netip.AddrPort
}

// rebuildFromResolved builds the host set from c.resolved, reusing the Host
// of every address that stays so its active count and balancer state
// survive. It returns how many hosts it added and removed.
func (c *Cluster) rebuildFromResolved() (added, removed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.set.Load()
	existing := make(map[hostKey]*Host)
	if old != nil {
		for _, h := range old.all {
			existing[h.key()] = h
		}
	}
	hosts := make([]*Host, 0, len(existing))
	for i, e := range c.eps {
		for _, a := range c.resolved[i] {
			k := hostKey{endpoint: i, addr: netip.AddrPortFrom(a, e.port)}
			h, ok := existing[k]
			if ok {
				delete(existing, k)
			} else {
				h = newHost(k.addr, e.hostname, e.weight, e.zone, e.canary)
				h.endpoint = i
				if c.hc != nil {
					// Envoy's rule: a host is unhealthy until its first
					// active check passes.
					h.health.Store(flagFailedActiveHC)
				}
				added++
			}
			hosts = append(hosts, h)
		}
	}
	removed = len(existing)
	if old != nil && added == 0 && removed == 0 {
		return 0, 0
	}
	c.set.Store(newHostSet(hosts, c.panicThreshold))
	if c.hc != nil {
		c.hc.syncHosts(hosts)
	}
	return added, removed
}

// close stops the DNS loop and closes idle pooled connections. Requests in
// flight keep their connections; a closed cluster still serves Pick, so a
// request that started before a reload can finish.
func (c *Cluster) close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.stopDNS != nil {
			c.stopDNS()
			<-c.dnsDone
		}
		c.stopHealth()
		c.transport.CloseIdleConnections()
	})
}
