// Package fault is hopwatch's HTTP fault filter, after Envoy's
// (envoy.filters.http.fault): per route, it delays and/or aborts a
// fraction of requests before they reach the router, so that a team can
// rehearse a slow or failing dependency without touching it. Where a
// route enables header control, request headers choose the abort status
// (x-envoy-fault-abort-request), the delay (x-envoy-fault-delay-request)
// and may lower the configured percentages
// (x-envoy-fault-abort-request-percentage,
// x-envoy-fault-delay-request-percentage), as in Envoy.
//
// The order is Envoy's: a delay is drawn first and, when it fires, waited
// out (the wait ends early if the client goes away); then an abort is
// drawn. Each injected fault is counted in http.<stat_prefix>.fault.*, and
// max_active_faults bounds how many faults are active on a listener at
// once.
package fault

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// The request headers that control faults where the route allows it, in
// their canonical form (http.Header keys).
const (
	HeaderAbortRequest           = "X-Envoy-Fault-Abort-Request"
	HeaderAbortRequestPercentage = "X-Envoy-Fault-Abort-Request-Percentage"
	HeaderDelayRequest           = "X-Envoy-Fault-Delay-Request"
	HeaderDelayRequestPercentage = "X-Envoy-Fault-Delay-Request-Percentage"
)

// Percent is a compiled FractionalPercent: a draw r selects the request
// when r % Denominator < Numerator, Envoy's rule.
type Percent struct {
	Numerator, Denominator uint64
}

// Selects reports whether the random value r falls inside the fraction.
func (p Percent) Selects(r uint64) bool {
	return p.Denominator > 0 && r%p.Denominator < p.Numerator
}

// CompilePercent converts a validated FractionalPercent. A nil one is 0%,
// as Envoy reads an absent percentage.
func CompilePercent(p *config.FractionalPercent) (Percent, error) {
	if p == nil {
		return Percent{Denominator: 100}, nil
	}
	name := p.Denominator
	if name == "" {
		name = config.DefaultDenominator
	}
	d := config.DenominatorValue(name)
	if d == 0 {
		return Percent{}, fmt.Errorf("denominator: %q is not one of HUNDRED, TEN_THOUSAND, MILLION", p.Denominator)
	}
	if p.Numerator < 0 || p.Numerator > d {
		return Percent{}, fmt.Errorf("numerator: %d is outside 0..%d", p.Numerator, d)
	}
	return Percent{Numerator: uint64(p.Numerator), Denominator: uint64(d)}, nil
}

// Fault is one route's compiled fault configuration. It is immutable and
// safe for concurrent use.
type Fault struct {
	abort *abortSpec
	delay *delaySpec
	// maxActive bounds the listener's active faults; -1 is unlimited.
	maxActive int64
	// rnd draws the random values; tests replace it with a seeded source.
	rnd func() uint64
}

type abortSpec struct {
	status     int  // fixed status; 0 with fromHeader
	fromHeader bool // header_abort
	pct        Percent
}

type delaySpec struct {
	d          time.Duration // fixed delay; 0 with fromHeader
	fromHeader bool          // header_delay
	pct        Percent
}

// New compiles a route's fault configuration (already validated by
// package config; New checks again what it relies on). A nil c yields nil.
func New(c *config.Fault) (*Fault, error) {
	if c == nil {
		return nil, nil
	}
	f := &Fault{maxActive: -1, rnd: rand.Uint64}
	if c.MaxActiveFaults != nil {
		if *c.MaxActiveFaults < 0 {
			return nil, fmt.Errorf("max_active_faults: %d is negative", *c.MaxActiveFaults)
		}
		f.maxActive = int64(*c.MaxActiveFaults)
	}
	if a := c.Abort; a != nil {
		pct, err := CompilePercent(a.Percentage)
		if err != nil {
			return nil, fmt.Errorf("abort.percentage.%w", err)
		}
		f.abort = &abortSpec{status: a.HTTPStatus, fromHeader: a.HeaderAbort != nil, pct: pct}
		if !f.abort.fromHeader && !validAbortStatus(uint64(max(a.HTTPStatus, 0))) {
			return nil, fmt.Errorf("abort.http_status: %d is outside 200..599", a.HTTPStatus)
		}
	}
	if d := c.Delay; d != nil {
		pct, err := CompilePercent(d.Percentage)
		if err != nil {
			return nil, fmt.Errorf("delay.percentage.%w", err)
		}
		f.delay = &delaySpec{fromHeader: d.HeaderDelay != nil, pct: pct}
		if !f.delay.fromHeader {
			if d.FixedDelay == nil || d.FixedDelay.D() <= 0 {
				return nil, fmt.Errorf("delay.fixed_delay: must be greater than 0")
			}
			f.delay.d = d.FixedDelay.D()
		}
	}
	if f.abort == nil && f.delay == nil {
		return nil, fmt.Errorf("at least one of abort or delay is required")
	}
	return f, nil
}

// Active counts the faults active on one listener at once, the quantity
// max_active_faults bounds (Envoy bounds it per filter, that is per
// connection manager). The zero value is ready to use. It is kept apart
// from the active_faults gauge so that the bound holds with stats off.
type Active struct{ n atomic.Int64 }

// Load returns the number of active faults.
func (a *Active) Load() int64 { return a.n.Load() }

// Result says what the filter did to one request.
type Result struct {
	// Delay is the delay injected (0: none); the request carries the DI
	// response flag.
	Delay time.Duration
	// ClientGone is true when the client went away during the delay; the
	// request must be dropped without a response.
	ClientGone bool
	// AbortStatus is the status to answer with (FI response flag), 0 for
	// no abort.
	AbortStatus int
}

// Run draws and injects the route's faults for one request, whose headers
// are h: it waits out a delay (returning early, with ClientGone, when ctx
// ends) and returns the abort status, if one was drawn. active is the
// listener's fault count and st its fault stats (never nil: a null
// store's when stats are off).
func (f *Fault) Run(ctx context.Context, h http.Header, active *Active, st *stats.FaultStats) Result {
	var res Result
	held := false // this request holds one active fault
	defer func() {
		if held {
			active.n.Add(-1)
			st.ActiveFaults.Dec()
		}
	}()
	if d, ok := f.delayFor(h); ok && f.tryActivate(active, st, &held) {
		res.Delay = d
		st.DelaysInjected.Inc()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			res.ClientGone = true
			return res
		}
	}
	if status, ok := f.abortFor(h); ok && f.tryActivate(active, st, &held) {
		res.AbortStatus = status
		st.AbortsInjected.Inc()
	}
	return res
}

// tryActivate charges one active fault to the request unless it holds one
// already or the listener is at max_active_faults (faults_overflow), as
// Envoy's tryIncActiveFaults. Unlike Envoy's check, the bound is exact.
func (f *Fault) tryActivate(active *Active, st *stats.FaultStats, held *bool) bool {
	if *held {
		return true
	}
	for {
		n := active.n.Load()
		if f.maxActive >= 0 && n >= f.maxActive {
			st.FaultsOverflow.Inc()
			return false
		}
		if active.n.CompareAndSwap(n, n+1) {
			break
		}
	}
	*held = true
	st.ActiveFaults.Inc()
	return true
}

// delayFor draws the delay fault: the delay to inject, or false.
func (f *Fault) delayFor(h http.Header) (time.Duration, bool) {
	d := f.delay
	if d == nil {
		return 0, false
	}
	return draw(f, h, d.pct, d.fromHeader, HeaderDelayRequestPercentage, d.d, HeaderDelay)
}

// abortFor draws the abort fault: the status to answer with, or false.
func (f *Fault) abortFor(h http.Header) (int, bool) {
	a := f.abort
	if a == nil {
		return 0, false
	}
	return draw(f, h, a.pct, a.fromHeader, HeaderAbortRequestPercentage, a.status, HeaderAbortStatus)
}

// draw decides one fault by Envoy's rule for both kinds: the request is
// selected by pct, which the header pctHeader may lower when the fault
// takes its parameter from the request (fromHeader); the fault's value is
// then fixed, or what fromRequest reads from the headers.
func draw[T any](f *Fault, h http.Header, pct Percent, fromHeader bool, pctHeader string, fixed T, fromRequest func(http.Header) (T, bool)) (T, bool) {
	var zero T
	if fromHeader {
		pct = HeaderPercentage(h, pctHeader, pct)
	}
	if !pct.Selects(f.rnd()) {
		return zero, false
	}
	if !fromHeader {
		return fixed, true
	}
	return fromRequest(h)
}

// firstValue returns the first value of header key (canonical form); the
// fault headers are untrusted, so, as in Envoy, only the first counts.
func firstValue(h http.Header, key string) (string, bool) {
	vs := h[key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// parseUint parses a header's decimal value as Envoy's absl::SimpleAtoi
// does for unsigned numbers: surrounding whitespace is allowed, a sign or
// any other character is not, and the value must fit in bits.
func parseUint(s string, bits int) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
	return n, err == nil
}

// HeaderPercentage is Envoy's HeaderPercentageProvider: the numerator in
// header key, capped at the configured numerator, over the configured
// denominator; def when the header is missing or not a number.
func HeaderPercentage(h http.Header, key string, def Percent) Percent {
	v, ok := firstValue(h, key)
	if !ok {
		return def
	}
	n, ok := parseUint(v, 32)
	if !ok {
		return def
	}
	return Percent{Numerator: min(n, def.Numerator), Denominator: def.Denominator}
}

// HeaderAbortStatus reads x-envoy-fault-abort-request: a status in
// [200, 600), or false when it is missing or invalid (no abort).
func HeaderAbortStatus(h http.Header) (int, bool) {
	v, ok := firstValue(h, HeaderAbortRequest)
	if !ok {
		return 0, false
	}
	n, ok := parseUint(v, 64)
	if !ok || !validAbortStatus(n) {
		return 0, false
	}
	return int(n), true
}

func validAbortStatus(n uint64) bool { return n >= 200 && n < 600 }

// maxHeaderDelayMs is the largest x-envoy-fault-delay-request that fits a
// time.Duration; larger values are treated as invalid.
const maxHeaderDelayMs = math.MaxInt64 / int64(time.Millisecond)

// HeaderDelay reads x-envoy-fault-delay-request, in milliseconds: the
// delay, or false when it is missing, invalid or 0 (no delay).
func HeaderDelay(h http.Header) (time.Duration, bool) {
	v, ok := firstValue(h, HeaderDelayRequest)
	if !ok {
		return 0, false
	}
	n, ok := parseUint(v, 64)
	if !ok || n == 0 || n > uint64(maxHeaderDelayMs) {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}
