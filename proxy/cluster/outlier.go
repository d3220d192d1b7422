package cluster

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// This file is outlier detection, passive health checking after Envoy's
// outlier_detection_impl.cc with split_external_local_origin_errors off:
// the router reports every attempt's outcome as an HTTP status (a connect
// failure or reset as 503, a timeout as 504), and
//
//   - consecutive 5xx and consecutive gateway failures (502, 503, 504) are
//     counted inline; reaching the threshold ejects the host at once;
//   - every interval a sweep un-ejects hosts whose time is up, and runs
//     success-rate and failure-percentage ejection over the requests of the
//     interval that just ended, guarded by minimum hosts and request volume;
//   - an ejection lasts base_ejection_time × the host's ejection backoff
//     (one more for every ejection, one less for every interval spent
//     healthy after an un-ejection), capped at max_ejection_time, plus
//     jitter;
//   - a host is ejected only if (ejected + 1) / hosts stays within
//     max_ejection_percent (always_eject_one_host lifts that for the first),
//     and only with the enforcing_* probability of its kind; a detection
//     that is not enforced is still counted in ejections_detected_*.
//
// Envoy posts consecutive-error ejections from its workers to the main
// thread; here the request goroutine that crosses the threshold takes the
// detector's lock and ejects. The request path itself only adds to atomic
// counters.

// ejectionType is Envoy's OutlierEjectionType, for the kinds hopwatch has.
type ejectionType int

const (
	ejectConsecutive5xx ejectionType = iota
	ejectConsecutiveGatewayFailure
	ejectSuccessRate
	ejectFailurePercentage
)

func (t ejectionType) String() string {
	switch t {
	case ejectConsecutive5xx:
		return "consecutive_5xx"
	case ejectConsecutiveGatewayFailure:
		return "consecutive_gateway_failure"
	case ejectSuccessRate:
		return "success_rate"
	}
	return "failure_percentage"
}

// noSuccessRate is -1 as float64 bits: no success rate computed.
var noSuccessRate = math.Float64bits(-1)

// outlierHost is one host's outlier-detection state (Envoy's
// DetectorHostMonitorImpl). It lives in Host so that the request path finds
// it without a map.
type outlierHost struct {
	// Updated on the request path.
	consecutive5xx            atomic.Uint32
	consecutiveGatewayFailure atomic.Uint32
	// buckets count requests for success-rate analysis: current is written
	// during an interval, the other one holds the interval before.
	buckets [2]srBucket
	current atomic.Uint32
	// successRate is the last computed success rate (float64 bits), or
	// noSuccessRate; /clusters shows it.
	successRate atomic.Uint64

	// Guarded by outlierDetector.mu.
	numEjections   int
	backoff        int64
	lastEjection   time.Time
	lastUnejection time.Time // zero: never un-ejected
	jitter         time.Duration
}

type srBucket struct {
	total, success atomic.Uint64
}

// outlierConfig is a cluster's outlier_detection in the units the detector
// works in.
type outlierConfig struct {
	consecutive5xx            uint32
	consecutiveGatewayFailure uint32
	interval                  time.Duration
	baseEjectionTime          time.Duration
	maxEjectionTime           time.Duration
	maxEjectionTimeJitter     time.Duration
	maxEjectionPercent        int
	alwaysEjectOneHost        bool
	enforcing                 [4]int // by ejectionType, percent
	srMinimumHosts            int
	srRequestVolume           uint64
	srStdevFactor             float64
	fpThreshold               float64
	fpMinimumHosts            int
	fpRequestVolume           uint64
	unejectOnHealthCheck      bool
}

// outlierDetector is a cluster's outlier detection (Envoy's DetectorImpl).
type outlierDetector struct {
	c     *Cluster
	cfg   outlierConfig
	stats *stats.OutlierDetectionStats
	rnd   randSource
	now   func() time.Time

	// mu serialises ejections, un-ejections and sweeps. Lock order:
	// mu, then Cluster.mu (setHealthFlag).
	mu      sync.Mutex
	running bool
	closed  bool
	stopCh  chan struct{}
	done    chan struct{}
}

func newOutlierDetector(c *Cluster, o *config.OutlierDetection, rnd randSource, now func() time.Time) (*outlierDetector, error) {
	cfg := outlierConfig{
		consecutive5xx:            uint32(max(o.Consecutive5xx, 0)),
		consecutiveGatewayFailure: uint32(max(o.ConsecutiveGatewayFailure, 0)),
		interval:                  o.Interval.D(),
		baseEjectionTime:          o.BaseEjectionTime.D(),
		maxEjectionTime:           o.MaxEjectionTime.D(),
		maxEjectionTimeJitter:     o.MaxEjectionTimeJitter.D(),
		maxEjectionPercent:        min(max(o.MaxEjectionPercent, 0), 100),
		alwaysEjectOneHost:        o.AlwaysEjectOneHost,
		srMinimumHosts:            o.SuccessRateMinimumHosts,
		srRequestVolume:           uint64(max(o.SuccessRateRequestVolume, 0)),
		srStdevFactor:             float64(o.SuccessRateStdevFactor) / 1000,
		fpThreshold:               float64(o.FailurePercentageThreshold),
		fpMinimumHosts:            o.FailurePercentageMinimumHosts,
		fpRequestVolume:           uint64(max(o.FailurePercentageRequestVolume, 0)),
		unejectOnHealthCheck:      o.SuccessfulActiveHealthCheckUnejectHost == nil || *o.SuccessfulActiveHealthCheckUnejectHost,
	}
	cfg.enforcing[ejectConsecutive5xx] = o.EnforcingConsecutive5xx
	cfg.enforcing[ejectConsecutiveGatewayFailure] = o.EnforcingConsecutiveGatewayFailure
	cfg.enforcing[ejectSuccessRate] = o.EnforcingSuccessRate
	cfg.enforcing[ejectFailurePercentage] = o.EnforcingFailurePercentage
	// A config built in code without ApplyDefaults still gets working
	// times; config.Validate refuses these zeros in a file.
	if cfg.interval <= 0 {
		cfg.interval = config.DefaultOutlierInterval
	}
	if cfg.baseEjectionTime <= 0 {
		cfg.baseEjectionTime = config.DefaultOutlierBaseEjectionTime
	}
	if cfg.maxEjectionTime <= 0 {
		cfg.maxEjectionTime = max(config.DefaultOutlierMaxEjectionTime, cfg.baseEjectionTime)
	}
	if cfg.maxEjectionTime < cfg.baseEjectionTime {
		return nil, fmt.Errorf("max_ejection_time (%s) must be at least base_ejection_time (%s)", cfg.maxEjectionTime, cfg.baseEjectionTime)
	}
	d := &outlierDetector{c: c, cfg: cfg, rnd: rnd, now: now, stopCh: make(chan struct{}), done: make(chan struct{})}
	d.stats = &c.stats.OutlierDetection
	return d, nil
}

// ObserveResponse reports an upstream attempt on h that got response
// headers with status code: outlier detection counts it, and when the
// cluster has an active health check, x-envoy-immediate-health-check-fail
// in header marks h unhealthy at once, as Envoy's router does. The router
// calls it for every attempt, retried ones included. It does not allocate.
func (c *Cluster) ObserveResponse(h *Host, code int, header http.Header) {
	if c.hc != nil && len(header[ImmediateHealthCheckFailHeader]) > 0 {
		c.hc.passiveFailure(h)
	}
	if c.od != nil {
		c.od.putHTTPCode(h, code)
	}
}

// ObserveFailure reports an upstream attempt on h that ended without
// response headers because of the upstream or the network: a connect
// failure or reset counts as a 503, a timeout (timeout true) as a 504, as
// Envoy maps local-origin errors when split_external_local_origin_errors is
// off. A request the client abandoned is not the host's fault and must not
// be reported.
func (c *Cluster) ObserveFailure(h *Host, timeout bool) {
	if c.od == nil {
		return
	}
	code := http.StatusServiceUnavailable
	if timeout {
		code = http.StatusGatewayTimeout
	}
	c.od.putHTTPCode(h, code)
}

// putHTTPCode is Envoy's DetectorHostMonitorImpl::putHttpResponseCode.
func (d *outlierDetector) putHTTPCode(h *Host, code int) {
	o := &h.od
	b := &o.buckets[o.current.Load()&1]
	b.total.Add(1)
	if code >= 500 && code < 600 {
		if code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
			if n := o.consecutiveGatewayFailure.Add(1); n == d.cfg.consecutiveGatewayFailure {
				d.onConsecutiveError(h, ejectConsecutiveGatewayFailure)
			}
		} else {
			o.consecutiveGatewayFailure.Store(0)
		}
		if n := o.consecutive5xx.Add(1); n == d.cfg.consecutive5xx {
			d.onConsecutiveError(h, ejectConsecutive5xx)
		}
		return
	}
	b.success.Add(1)
	o.consecutive5xx.Store(0)
	o.consecutiveGatewayFailure.Store(0)
}

// onConsecutiveError is Envoy's onConsecutiveErrorWorker.
func (d *outlierDetector) onConsecutiveError(h *Host, t ejectionType) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// The host may have left the cluster while its request ran, or be
	// ejected already (its counter keeps running past the threshold then).
	if d.closed || h.FailedOutlierCheck() || !slices.Contains(d.c.Hosts(), h) {
		return
	}
	d.countDetected(t)
	d.ejectLocked(h, t, d.now())
	// Reset the counter that fired so that a further bout of errors is
	// detected even without a success in between.
	switch t {
	case ejectConsecutive5xx:
		d.stats.EjectionsConsecutive5xx.Inc()
		h.od.consecutive5xx.Store(0)
	case ejectConsecutiveGatewayFailure:
		h.od.consecutiveGatewayFailure.Store(0)
	}
}

// ejectLocked is Envoy's DetectorImpl::ejectHost.
func (d *outlierDetector) ejectLocked(h *Host, t ejectionType, now time.Time) {
	hosts := d.c.Hosts()
	active := ejectedCount(hosts)
	// The ejection may not take the ejected share above
	// max_ejection_percent, in integers: 100·(active+1)/hosts ≤ max.
	allowed := 100*(active+1) <= d.cfg.maxEjectionPercent*len(hosts)
	if d.cfg.alwaysEjectOneHost && active == 0 {
		allowed = true
	}
	if !allowed {
		d.stats.EjectionsOverflow.Inc()
		return
	}
	if t == ejectConsecutive5xx || t == ejectSuccessRate {
		d.stats.EjectionsTotal.Inc() // deprecated in Envoy, kept as it counts
	}
	if !d.enforced(t) {
		d.c.log.Info("outlier detection: outlier detected, not enforced", "host", h.Address(), "type", t.String())
		return
	}
	o := &h.od
	d.c.setHealthFlag(h, flagFailedOutlierCheck, true)
	o.numEjections++
	o.lastEjection = now
	o.jitter = 0
	if j := d.cfg.maxEjectionTimeJitter; j > 0 {
		o.jitter = time.Duration(d.rnd.intN(int64(j) + 1))
	}
	// The backoff grows with each ejection until base × backoff passes
	// max_ejection_time.
	if time.Duration(o.backoff)*d.cfg.baseEjectionTime < d.cfg.maxEjectionTime+d.cfg.baseEjectionTime {
		o.backoff++
	}
	s := d.stats
	s.EjectionsEnforcedTotal.Inc()
	switch t {
	case ejectConsecutive5xx:
		s.EjectionsEnforcedConsecutive5xx.Inc()
	case ejectConsecutiveGatewayFailure:
		s.EjectionsEnforcedConsecutiveGatewayFail.Inc()
	case ejectSuccessRate:
		s.EjectionsEnforcedSuccessRate.Inc()
	case ejectFailurePercentage:
		s.EjectionsEnforcedFailurePercentage.Inc()
	}
	s.EjectionsActive.Set(uint64(active + 1))
	d.c.log.Warn("outlier detection: host ejected", "host", h.Address(), "type", t.String(),
		"ejections", o.numEjections, "for", d.ejectionTime(o))
}

// ejectionTime is how long the current ejection of a host lasts.
func (d *outlierDetector) ejectionTime(o *outlierHost) time.Duration {
	return min(d.cfg.baseEjectionTime*time.Duration(o.backoff), d.cfg.maxEjectionTime) + o.jitter
}

// enforced draws whether a detection of kind t is enforced.
func (d *outlierDetector) enforced(t ejectionType) bool {
	pct := d.cfg.enforcing[t]
	return pct > 0 && (pct >= 100 || int(d.rnd.intN(100)) < pct)
}

func (d *outlierDetector) countDetected(t ejectionType) {
	s := d.stats
	switch t {
	case ejectConsecutive5xx:
		s.EjectionsDetectedConsecutive5xx.Inc()
	case ejectConsecutiveGatewayFailure:
		s.EjectionsDetectedConsecutiveGatewayFail.Inc()
	case ejectSuccessRate:
		s.EjectionsDetectedSuccessRate.Inc()
	case ejectFailurePercentage:
		s.EjectionsDetectedFailurePercentage.Inc()
	}
}

// unejectLocked returns h to service (Envoy's unejectHost).
func (d *outlierDetector) unejectLocked(h *Host, now time.Time) {
	o := &h.od
	d.c.setHealthFlag(h, flagFailedOutlierCheck, false)
	// Reset the consecutive counters so that a few errors right after the
	// return do not eject the host again.
	o.consecutive5xx.Store(0)
	o.consecutiveGatewayFailure.Store(0)
	o.lastUnejection = now
	d.updateActiveGauge()
	d.c.log.Info("outlier detection: host returned to service", "host", h.Address(), "after", now.Sub(o.lastEjection).Round(time.Millisecond))
}

// onHealthCheckSuccess un-ejects h when an active health check passed and
// successful_active_health_check_uneject_host is on (Envoy's default).
func (d *outlierDetector) onHealthCheckSuccess(h *Host) {
	if !d.cfg.unejectOnHealthCheck || !h.FailedOutlierCheck() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || !h.FailedOutlierCheck() || h.FailedActiveHealthCheck() {
		return
	}
	d.unejectLocked(h, d.now())
}

// sweep is Envoy's DetectorImpl::onIntervalTimer: un-eject hosts whose time
// is up, close the success-rate interval, run success-rate and
// failure-percentage ejection, and shrink the backoff of hosts that stay
// healthy.
func (d *outlierDetector) sweep(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	hosts := d.c.Hosts()
	for _, h := range hosts {
		o := &h.od
		if h.FailedOutlierCheck() && d.ejectionTime(o) <= now.Sub(o.lastEjection) {
			d.unejectLocked(h, now)
		}
		// Close the interval: writers move to the other bucket, which
		// starts empty; the one they leave is what this sweep reads.
		next := o.current.Load() ^ 1
		o.buckets[next].total.Store(0)
		o.buckets[next].success.Store(0)
		o.current.Store(next)
		o.successRate.Store(noSuccessRate)
	}
	d.successRateEjections(hosts, now)
	for _, h := range hosts {
		o := &h.od
		if !h.FailedOutlierCheck() && !o.lastUnejection.IsZero() && now.Sub(o.lastUnejection) >= d.cfg.interval && o.backoff > 0 {
			o.backoff--
		}
	}
	d.updateActiveGauge()
}

// hostRate is a host's success rate over the last interval.
type hostRate struct {
	h    *Host
	rate float64
}

// successRateEjections is Envoy's processSuccessRateEjections for external
// origin errors.
func (d *outlierDetector) successRateEjections(hosts []*Host, now time.Time) {
	cfg := &d.cfg
	if len(hosts) < cfg.srMinimumHosts && len(hosts) < cfg.fpMinimumHosts {
		return
	}
	var srHosts, fpHosts []hostRate
	sum := 0.0
	for _, h := range hosts {
		if h.FailedOutlierCheck() {
			continue
		}
		b := &h.od.buckets[(h.od.current.Load()^1)&1]
		total := b.total.Load()
		if total == 0 {
			continue
		}
		rate := float64(b.success.Load()) * 100 / float64(total)
		if total >= min(cfg.srRequestVolume, cfg.fpRequestVolume) {
			h.od.successRate.Store(math.Float64bits(rate))
		}
		if total >= cfg.srRequestVolume {
			srHosts = append(srHosts, hostRate{h, rate})
			sum += rate
		}
		if total >= cfg.fpRequestVolume {
			fpHosts = append(fpHosts, hostRate{h, rate})
		}
	}
	if len(srHosts) > 0 && len(srHosts) >= cfg.srMinimumHosts {
		_, threshold := successRateThreshold(sum, srHosts, cfg.srStdevFactor)
		for _, hr := range srHosts {
			if hr.rate < threshold && !hr.h.FailedOutlierCheck() {
				d.countDetected(ejectSuccessRate)
				d.ejectLocked(hr.h, ejectSuccessRate, now)
			}
		}
	}
	if len(fpHosts) > 0 && len(fpHosts) >= cfg.fpMinimumHosts {
		for _, hr := range fpHosts {
			if 100-hr.rate >= cfg.fpThreshold && !hr.h.FailedOutlierCheck() {
				d.countDetected(ejectFailurePercentage)
				d.ejectLocked(hr.h, ejectFailurePercentage, now)
			}
		}
	}
}

// successRateThreshold returns the mean success rate and the ejection
// threshold, mean − factor × stdev (population standard deviation), as
// Envoy's successRateEjectionThreshold. For {50, 100, 100, 100, 100} and
// factor 1.9: mean 90, stdev 20, threshold 52.
func successRateThreshold(sum float64, hosts []hostRate, factor float64) (mean, threshold float64) {
	n := float64(len(hosts))
	mean = sum / n
	variance := 0.0
	for _, hr := range hosts {
		variance += (hr.rate - mean) * (hr.rate - mean)
	}
	variance /= n
	return mean, mean - factor*math.Sqrt(variance)
}

// ejectedCount counts the ejected hosts of a host set.
func ejectedCount(hosts []*Host) int {
	n := 0
	for _, h := range hosts {
		if h.FailedOutlierCheck() {
			n++
		}
	}
	return n
}

// updateActiveGauge sets ejections_active from the current host set, which
// also forgets hosts that DNS removed while ejected.
func (d *outlierDetector) updateActiveGauge() {
	d.stats.EjectionsActive.Set(uint64(ejectedCount(d.c.Hosts())))
}

// start runs the sweep every interval until stop.
func (d *outlierDetector) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running || d.closed {
		return
	}
	d.running = true
	d.updateActiveGauge()
	go d.loop()
}

func (d *outlierDetector) loop() {
	defer close(d.done)
	t := time.NewTimer(d.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-d.stopCh:
			return
		case <-t.C:
		}
		d.sweep(d.now())
		t.Reset(d.cfg.interval)
	}
}

// stop ends the sweeps; ejected hosts stay as they are (the cluster is
// going away).
func (d *outlierDetector) stop() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	running := d.running
	close(d.stopCh)
	d.mu.Unlock()
	if running {
		<-d.done
	}
}
