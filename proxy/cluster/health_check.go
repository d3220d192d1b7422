package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// This file is active health checking, after Envoy's HTTP health checker
// (health_checker_impl.cc and health_checker_base_impl.cc): one session per
// host, each on its own goroutine and timer, sending GET <path> every
// interval (plus jitter) with user-agent Envoy/HC and the cluster's name as
// Host.
//
// The health state machine is Envoy's:
//   - a new host starts with FAILED_ACTIVE_HC and its first passing check
//     clears it, whatever healthy_threshold says;
//   - a response with a status outside expected_statuses, or carrying
//     x-envoy-immediate-health-check-fail, marks the host unhealthy at once;
//   - a network failure (connect error, reset, timeout) counts towards
//     unhealthy_threshold, and healthy_threshold passing checks in a row
//     bring an unhealthy host back;
//   - the router reports x-envoy-immediate-health-check-fail on a proxied
//     response as a passive failure, which also marks the host at once.

// HealthCheckUserAgent is the user-agent of every health check request:
// Envoy's, so that upstreams that recognise Envoy's checks recognise
// hopwatch's.
const HealthCheckUserAgent = "Envoy/HC"

// ImmediateHealthCheckFailHeader is the response header with which an
// upstream asks to be taken out of rotation at once (Envoy's health check
// filter sends it while the upstream drains).
const ImmediateHealthCheckFailHeader = "X-Envoy-Immediate-Health-Check-Fail"

// maxHealthCheckBody bounds how much of a check response is read, so that
// its connection can be reused without reading an endless body.
const maxHealthCheckBody = 64 << 10

// hcFailure classifies a failed check, after Envoy's HealthCheckFailureType.
type hcFailure int

const (
	// hcActive: the upstream answered, with a status outside the expected
	// ones or with x-envoy-immediate-health-check-fail. Immediate.
	hcActive hcFailure = iota
	// hcNetwork: no answer (connect error, reset, timeout). Counts towards
	// unhealthy_threshold.
	hcNetwork
	// hcPassive: a proxied response carried
	// x-envoy-immediate-health-check-fail. Immediate.
	hcPassive
)

// healthChecker runs a cluster's active health check.
type healthChecker struct {
	c                  *Cluster
	timeout            time.Duration
	interval           time.Duration
	jitter             time.Duration
	jitterPercent      int64
	unhealthyThreshold int
	healthyThreshold   int
	url                url.URL // scheme, path and query; the host is set per check
	hostHeader         string
	header             http.Header
	expected           []config.StatusRange
	transport          pooledTransport
	stats              *stats.HealthCheckStats
	rnd                randSource

	// gaugeMu makes counting the healthy hosts and setting the gauge one
	// step, so that a stale count never overwrites a newer one.
	gaugeMu sync.Mutex

	mu       sync.Mutex
	started  bool
	stopped  bool
	sessions map[*Host]*hcSession
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// hcSession is the health checking of one host.
type hcSession struct {
	hc     *healthChecker
	host   *Host
	cancel context.CancelFunc

	// mu guards the counters: the session's goroutine and passive failures
	// reported by the router both update them.
	mu           sync.Mutex
	numHealthy   int
	numUnhealthy int
	firstCheck   bool
}

// newHealth builds the cluster's health checker and outlier detector from
// cfg, each nil when not configured. Neither runs until startHealth.
func (c *Cluster) newHealth(cfg *config.Cluster, opts Options) error {
	rnd := opts.rnd
	if rnd == nil {
		rnd = rand.Uint64
	}
	if len(cfg.HealthChecks) > 1 {
		return fmt.Errorf("health_checks: at most one health check is supported, got %d", len(cfg.HealthChecks))
	}
	if len(cfg.HealthChecks) == 1 {
		hc, err := newHealthChecker(c, cfg, &cfg.HealthChecks[0], opts, rnd)
		if err != nil {
			return fmt.Errorf("health_checks[0]: %w", err)
		}
		c.hc = hc
	}
	if cfg.OutlierDetection != nil {
		od, err := newOutlierDetector(c, cfg.OutlierDetection, rnd, time.Now)
		if err != nil {
			return fmt.Errorf("outlier_detection: %w", err)
		}
		c.od = od
	}
	return nil
}

// startHealth starts health checking and outlier detection. The channel is
// closed when every current host has had its first check.
func (c *Cluster) startHealth() <-chan struct{} {
	if c.od != nil {
		c.od.start()
	}
	if c.hc == nil {
		ready := make(chan struct{})
		close(ready)
		return ready
	}
	return c.hc.start()
}

// stopHealth stops health checking and outlier detection and waits for
// their goroutines.
func (c *Cluster) stopHealth() {
	if c.hc != nil {
		c.hc.stop()
	}
	if c.od != nil {
		c.od.stop()
	}
}

// cloneHealthChecks deep-copies health_checks for cloneClusterConfig.
func cloneHealthChecks(in []config.HealthCheck) []config.HealthCheck {
	if in == nil {
		return nil
	}
	out := slices.Clone(in)
	for i := range out {
		if h := out[i].HTTPHealthCheck; h != nil {
			cp := *h
			cp.ExpectedStatuses = slices.Clone(h.ExpectedStatuses)
			cp.RequestHeadersToAdd = slices.Clone(h.RequestHeadersToAdd)
			out[i].HTTPHealthCheck = &cp
		}
	}
	return out
}

func newHealthChecker(c *Cluster, cfg *config.Cluster, h *config.HealthCheck, opts Options, rnd randSource) (*healthChecker, error) {
	if h.Timeout <= 0 {
		return nil, fmt.Errorf("timeout: required, a duration greater than 0")
	}
	if h.Interval <= 0 {
		return nil, fmt.Errorf("interval: required, a duration greater than 0")
	}
	hh := h.HTTPHealthCheck
	if hh == nil {
		return nil, fmt.Errorf("http_health_check: required")
	}
	u, err := url.ParseRequestURI(hh.Path)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return nil, fmt.Errorf("http_health_check.path: %q is not a request path", hh.Path)
	}
	hc := &healthChecker{
		c:                  c,
		timeout:            h.Timeout.D(),
		interval:           h.Interval.D(),
		jitter:             h.IntervalJitter.D(),
		jitterPercent:      int64(h.IntervalJitterPercent),
		unhealthyThreshold: max(h.UnhealthyThreshold, 1),
		healthyThreshold:   max(h.HealthyThreshold, 1),
		url:                *u,
		hostHeader:         hh.Host,
		header:             http.Header{"User-Agent": {HealthCheckUserAgent}},
		expected:           slices.Clone(hh.ExpectedStatuses),
		rnd:                rnd,
		sessions:           map[*Host]*hcSession{},
	}
	if h.UnhealthyThreshold == 0 {
		hc.unhealthyThreshold = config.DefaultHealthCheckUnhealthyThreshold
	}
	if h.HealthyThreshold == 0 {
		hc.healthyThreshold = config.DefaultHealthCheckHealthyThreshold
	}
	if hc.hostHeader == "" {
		hc.hostHeader = cfg.Name // Envoy's default
	}
	if len(hc.expected) == 0 {
		hc.expected = []config.StatusRange{{Start: config.DefaultHealthCheckExpectedStatus, End: config.DefaultHealthCheckExpectedStatus + 1}}
	}
	for _, a := range hh.RequestHeadersToAdd {
		if a.Append != nil && !*a.Append {
			hc.header.Set(a.Key, a.Value)
		} else {
			hc.header.Add(a.Key, a.Value)
		}
	}
	// Checks get a pool of their own, on the cluster's protocol and TLS
	// settings, so that they neither wait behind nor count as requests.
	spec, err := newTransport(cfg, nil, c.serverName)
	if err != nil {
		return nil, err
	}
	hc.transport = spec.client
	hc.url.Scheme = spec.scheme
	hc.stats = &c.stats.HealthCheck
	return hc, nil
}

// start begins a session for every current host. The channel is closed
// when each of them has had its first check.
func (hc *healthChecker) start() <-chan struct{} {
	ready := make(chan struct{})
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.started || hc.stopped {
		close(ready)
		return ready
	}
	hc.started = true
	// Sessions outlive the context the Manager was built with (a carried
	// over cluster keeps checking); stop cancels them.
	hc.ctx, hc.cancel = context.WithCancel(context.Background())
	var first sync.WaitGroup
	for _, h := range hc.c.Hosts() {
		first.Add(1)
		hc.startSessionLocked(h, first.Done)
	}
	hc.updateHealthyGauge()
	go func() {
		first.Wait()
		close(ready)
	}()
	return ready
}

// syncHosts starts sessions for new hosts and ends those of removed ones
// (a strict_dns answer changed). Before start it does nothing: start picks
// up the hosts there are then.
func (hc *healthChecker) syncHosts(hosts []*Host) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if !hc.started || hc.stopped {
		return
	}
	for h, s := range hc.sessions {
		if !slices.Contains(hosts, h) {
			s.cancel()
			delete(hc.sessions, h)
		}
	}
	for _, h := range hosts {
		if hc.sessions[h] == nil {
			hc.startSessionLocked(h, nil)
		}
	}
}

func (hc *healthChecker) startSessionLocked(h *Host, firstDone func()) {
	ctx, cancel := context.WithCancel(hc.ctx)
	s := &hcSession{hc: hc, host: h, cancel: cancel, firstCheck: true}
	hc.sessions[h] = s
	hc.wg.Add(1)
	go func() {
		defer hc.wg.Done()
		s.run(ctx, firstDone)
	}()
}

// stop ends every session and waits for them.
func (hc *healthChecker) stop() {
	hc.mu.Lock()
	if hc.stopped {
		hc.mu.Unlock()
		return
	}
	hc.stopped = true
	if hc.cancel != nil {
		hc.cancel()
	}
	hc.mu.Unlock()
	hc.wg.Wait()
	hc.transport.CloseIdleConnections()
}

// passiveFailure marks h unhealthy because a proxied response carried
// x-envoy-immediate-health-check-fail (Envoy's router calls
// healthChecker().setUnhealthy()).
func (hc *healthChecker) passiveFailure(h *Host) {
	hc.mu.Lock()
	s := hc.sessions[h]
	hc.mu.Unlock()
	if s != nil {
		s.handleFailure(hcPassive)
	}
}

// nextInterval is the wait before a host's next check: the interval plus
// Envoy's jitters, a random share of interval_jitter_percent of it and a
// random 0 to interval_jitter.
func (hc *healthChecker) nextInterval() time.Duration {
	d := hc.interval
	if hc.jitterPercent > 0 {
		if span := int64(hc.interval) * hc.jitterPercent / 100; span > 0 {
			d += time.Duration(hc.rnd.intN(span))
		}
	}
	if hc.jitter > 0 {
		d += time.Duration(hc.rnd.intN(int64(hc.jitter)))
	}
	return d
}

// updateHealthyGauge sets health_check.healthy to the number of hosts that
// have not failed active health checking.
func (hc *healthChecker) updateHealthyGauge() {
	hc.gaugeMu.Lock()
	defer hc.gaugeMu.Unlock()
	n := 0
	for _, h := range hc.c.Hosts() {
		if !h.FailedActiveHealthCheck() {
			n++
		}
	}
	hc.stats.Healthy.Set(uint64(n))
}

// expectedStatus reports whether code is one of the healthy statuses.
func (hc *healthChecker) expectedStatus(code int) bool {
	for _, r := range hc.expected {
		if code >= r.Start && code < r.End {
			return true
		}
	}
	return false
}

// run checks the host until ctx ends: the first check at once, then one
// every nextInterval. firstDone, if set, is called after the first check.
func (s *hcSession) run(ctx context.Context, firstDone func()) {
	s.check(ctx)
	if firstDone != nil {
		firstDone()
	}
	t := time.NewTimer(s.hc.nextInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.check(ctx)
		t.Reset(s.hc.nextInterval())
	}
}

// check runs one health check and records its result.
func (s *hcSession) check(ctx context.Context) {
	hc := s.hc
	if ctx.Err() != nil {
		return
	}
	hc.stats.Attempt.Inc()
	cctx, cancel := context.WithTimeout(ctx, hc.timeout)
	defer cancel()
	u := hc.url
	u.Host = s.host.Address()
	req := (&http.Request{
		Method:     http.MethodGet,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hc.header.Clone(),
		Host:       hc.hostHeader,
	}).WithContext(cctx)
	res, err := hc.transport.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: not the host's fault
		}
		s.handleFailure(hcNetwork)
		return
	}
	immediate := len(res.Header.Values(ImmediateHealthCheckFailHeader)) > 0
	_, rerr := io.CopyN(io.Discard, res.Body, maxHealthCheckBody)
	_ = res.Body.Close()
	switch {
	case ctx.Err() != nil:
		return
	case immediate || !hc.expectedStatus(res.StatusCode):
		s.handleFailure(hcActive)
	case rerr != nil && !errors.Is(rerr, io.EOF):
		// The headers were fine but the body broke off (or outlasted the
		// timeout): a network failure, as Envoy counts a reset.
		s.handleFailure(hcNetwork)
	default:
		s.handleSuccess()
	}
}

// handleSuccess is Envoy's ActiveHealthCheckSession::handleSuccess.
func (s *hcSession) handleSuccess() {
	hc := s.hc
	h := s.host
	s.mu.Lock()
	s.numUnhealthy = 0
	changed := false
	if h.FailedActiveHealthCheck() {
		// The very first result of a host is trusted at once: startup is
		// faster for a small loss of caution (Envoy's rule).
		if s.firstCheck {
			changed = hc.c.setHealthFlag(h, flagFailedActiveHC, false)
		} else if s.numHealthy++; s.numHealthy == hc.healthyThreshold {
			changed = hc.c.setHealthFlag(h, flagFailedActiveHC, false)
		}
	}
	s.firstCheck = false
	s.mu.Unlock()
	hc.stats.Success.Inc()
	if changed {
		hc.c.log.Info("health check: host is healthy", "host", h.Address())
		hc.updateHealthyGauge()
	}
	if hc.c.od != nil {
		hc.c.od.onHealthCheckSuccess(h)
	}
}

// handleFailure is Envoy's ActiveHealthCheckSession::handleFailure (with
// setUnhealthy): only network failures wait for unhealthy_threshold.
func (s *hcSession) handleFailure(kind hcFailure) {
	hc := s.hc
	h := s.host
	s.mu.Lock()
	s.numHealthy = 0
	changed := false
	if !h.FailedActiveHealthCheck() {
		if kind != hcNetwork {
			changed = hc.c.setHealthFlag(h, flagFailedActiveHC, true)
		} else {
			s.numUnhealthy++
			if s.numUnhealthy == hc.unhealthyThreshold {
				changed = hc.c.setHealthFlag(h, flagFailedActiveHC, true)
			}
		}
	}
	s.firstCheck = false
	s.mu.Unlock()
	st := hc.stats
	st.Failure.Inc()
	switch kind {
	case hcNetwork:
		st.NetworkFailure.Inc()
	case hcPassive:
		st.PassiveFailure.Inc()
	}
	if changed {
		hc.c.log.Warn("health check: host is unhealthy", "host", h.Address(), "failure", kind.String())
		hc.updateHealthyGauge()
	}
}

func (k hcFailure) String() string {
	switch k {
	case hcNetwork:
		return "network"
	case hcPassive:
		return "passive"
	}
	return "active"
}
