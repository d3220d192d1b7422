package cluster

import (
	"math"
	"net/netip"
	"sync/atomic"
)

// Host is one upstream address of a cluster: a static endpoint, or one of
// the addresses a strict_dns endpoint resolved to. A Host lives as long as
// its address stays in the cluster, so its active-request count and
// balancer state survive DNS refreshes and hot reloads.
type Host struct {
	addr     netip.AddrPort
	addrStr  string
	hostname string // the configured endpoint, host:port
	endpoint int    // index of the endpoint in the cluster config
	weight   int
	zone     string
	canary   bool

	// health holds the host's health flags (flagFailedActiveHC,
	// flagFailedOutlierCheck); the host is healthy when none is set.
	// Written only through Cluster.setHealthFlag, which rebuilds the host
	// set.
	health atomic.Uint32
	active atomic.Int64
	// od is the host's outlier-detection state; unused when the cluster
	// has no outlier_detection.
	od outlierHost

	// rrCurrent is the smooth weighted round robin's current weight for this
	// host. It lives here, as nginx keeps it in its peer, so that a pick over
	// a subset of hosts (retries, health filtering) keeps each host's share
	// fair. Guarded by the owning roundRobin's mutex.
	rrCurrent int64
}

func newHost(addr netip.AddrPort, hostname string, weight int, zone string, canary bool) *Host {
	h := &Host{
		addr:     addr,
		addrStr:  addr.String(),
		hostname: hostname,
		weight:   weight,
		zone:     zone,
		canary:   canary,
	}
	h.od.successRate.Store(noSuccessRate)
	return h
}

func (h *Host) key() hostKey { return hostKey{endpoint: h.endpoint, addr: h.addr} }

// Address returns the host's "ip:port" (IPv6 in brackets), ready for a URL
// or a dial.
func (h *Host) Address() string { return h.addrStr }

// Hostname returns the endpoint as configured, "host:port". For a strict_dns
// cluster it is the DNS name that resolved to this host, which is what TLS
// verification, SNI and auto_host_rewrite want; for a static cluster it
// equals Address.
func (h *Host) Hostname() string { return h.hostname }

// Weight returns the endpoint's load-balancing weight, 1–128.
func (h *Host) Weight() int { return h.weight }

// Zone returns the endpoint's locality zone, or "".
func (h *Host) Zone() string { return h.zone }

// Canary reports whether the endpoint is marked as a canary.
func (h *Host) Canary() bool { return h.canary }

// Healthy reports whether the host may receive traffic: it has neither
// failed active health checking nor been ejected by outlier detection.
// Both mark it through Cluster.setHealthFlag so that the host set is
// rebuilt, as Envoy rebuilds its priority set on a health change. A host of
// a cluster without health checks or outlier detection is always healthy.
func (h *Host) Healthy() bool { return h.health.Load() == 0 }

// Health flags of a Host, after Envoy's Host::HealthFlag.
const (
	// flagFailedActiveHC: the host failed active health checking (or has
	// not been checked yet).
	flagFailedActiveHC uint32 = 1 << iota
	// flagFailedOutlierCheck: outlier detection ejected the host.
	flagFailedOutlierCheck
)

// FailedActiveHealthCheck reports whether active health checking marked the
// host unhealthy (Envoy's FAILED_ACTIVE_HC). A new host of a cluster with
// health checks carries it until its first check succeeds.
func (h *Host) FailedActiveHealthCheck() bool { return h.health.Load()&flagFailedActiveHC != 0 }

// FailedOutlierCheck reports whether outlier detection has ejected the host
// (Envoy's FAILED_OUTLIER_CHECK).
func (h *Host) FailedOutlierCheck() bool { return h.health.Load()&flagFailedOutlierCheck != 0 }

// HealthFlags renders the host's health as Envoy's /clusters does:
// "healthy", or each failed check as "/failed_active_hc" and
// "/failed_outlier_check", in that order.
func (h *Host) HealthFlags() string {
	f := h.health.Load()
	switch f {
	case 0:
		return "healthy"
	case flagFailedActiveHC:
		return "/failed_active_hc"
	case flagFailedOutlierCheck:
		return "/failed_outlier_check"
	}
	return "/failed_active_hc/failed_outlier_check"
}

// SuccessRate is the host's success rate, in percent, over the last
// outlier-detection interval, or -1 when it was not computed (no outlier
// detection, or too few requests), as Envoy's /clusters shows it.
func (h *Host) SuccessRate() float64 { return math.Float64frombits(h.od.successRate.Load()) }

// ActiveRequests returns the number of requests in flight to this host, as
// counted by BeginRequest and EndRequest.
func (h *Host) ActiveRequests() int64 { return h.active.Load() }

// BeginRequest counts an upstream attempt to this host as active. The
// caller brackets every attempt with BeginRequest and EndRequest; the
// least_request balancer reads the count.
func (h *Host) BeginRequest() { h.active.Add(1) }

// EndRequest ends an attempt started with BeginRequest.
func (h *Host) EndRequest() { h.active.Add(-1) }

// candidates is a list of hosts with the facts a balancer needs about it,
// computed once per list rather than once per pick.
type candidates struct {
	hosts []*Host
	// totalWeight is the sum of the hosts' weights.
	totalWeight int64
	// equalWeights is true when every host has the same weight, which lets
	// balancers use their cheaper unweighted form, as Envoy does.
	equalWeights bool
	// ownRR says that round robin keeps its position for this list in
	// rrNext rather than in the balancer (zone-aware routing's per-zone
	// lists, which live as long as the host set).
	ownRR  bool
	rrNext atomic.Uint64
}

func newCandidates(hosts []*Host) *candidates {
	c := &candidates{hosts: hosts, equalWeights: true}
	for i, h := range hosts {
		c.totalWeight += int64(h.weight)
		if i > 0 && h.weight != hosts[0].weight {
			c.equalWeights = false
		}
	}
	return c
}

// hostSet is an immutable snapshot of a cluster's hosts. A change (DNS
// answer, health flip) builds a new hostSet and swaps it in atomically, so
// readers never lock.
type hostSet struct {
	// all hosts in a stable order: by endpoint, then by address.
	all []*Host
	// byAddr finds a host by Address, for the dialer's SNI choice.
	byAddr map[string]*Host
	// active is the output of the health filter stage for the common case of
	// a first attempt: the healthy hosts, or all hosts in panic mode.
	active *candidates
	// healthyCount is how many hosts were healthy when the set was built.
	healthyCount int
	// panic is true when too few hosts are healthy and active holds all of
	// them (Envoy's panic threshold); Pick counts lb_healthy_panic.
	panic bool
}

// newHostSet builds the snapshot of hosts. panicThreshold is the
// cluster's healthy_panic_threshold in percent: when fewer than that share
// of the hosts are healthy, the cluster balances over every host, because
// sending everything to the few healthy ones would overload them too
// (Envoy's panic mode). 0 disables panic mode: with no healthy host, Pick
// finds none.
func newHostSet(hosts []*Host, panicThreshold float64) *hostSet {
	s := &hostSet{all: hosts, byAddr: make(map[string]*Host, len(hosts))}
	healthy := make([]*Host, 0, len(hosts))
	for _, h := range hosts {
		// The first endpoint that claims an address wins the dialer's SNI.
		if _, dup := s.byAddr[h.addrStr]; !dup {
			s.byAddr[h.addrStr] = h
		}
		if h.Healthy() {
			healthy = append(healthy, h)
		}
	}
	s.healthyCount = len(healthy)
	switch {
	case len(healthy) == len(hosts):
		s.active = newCandidates(hosts)
	case float64(len(healthy))*100 < float64(len(hosts))*panicThreshold:
		s.panic = true
		s.active = newCandidates(hosts)
	default:
		s.active = newCandidates(healthy)
	}
	return s
}
