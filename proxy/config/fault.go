package config

import (
	"strings"
)

// Fault is Envoy's HTTP fault filter configuration
// (extensions.filters.http.fault.v3.HTTPFault) for one route: it delays
// and/or aborts a fraction of the requests the route matches, before they
// reach the router. At least one of Abort and Delay is required. A delay
// comes first; an abort, if drawn, follows it.
type Fault struct {
	// Abort answers a fraction of requests with an HTTP status instead of
	// forwarding them. Absent: no aborts.
	Abort *FaultAbort `yaml:"abort"`
	// Delay holds a fraction of requests for a while before forwarding
	// them. Absent: no delays.
	Delay *FaultDelay `yaml:"delay"`
	// MaxActiveFaults bounds the faults (delays in progress and aborts)
	// active at once on the listener, counted in the listener's
	// http.<stat_prefix>.fault.active_faults gauge; a fault beyond it is
	// not injected and counts faults_overflow. Absent: unlimited (Envoy's
	// default).
	MaxActiveFaults *int `yaml:"max_active_faults"`
}

// FaultAbort is Envoy's FaultAbort. Exactly one of HTTPStatus and
// HeaderAbort is required.
type FaultAbort struct {
	// HTTPStatus is the status of the aborted response, 200–599.
	HTTPStatus int `yaml:"http_status"`
	// HeaderAbort, when present ("header_abort: {}"), takes the status from
	// the request header x-envoy-fault-abort-request (200–599; a missing or
	// invalid value means no abort) and lets
	// x-envoy-fault-abort-request-percentage lower the percentage.
	HeaderAbort *FaultHeaderControl `yaml:"header_abort"`
	// Percentage of requests aborted. Required: Envoy reads an absent
	// percentage as 0%, which would never fire.
	Percentage *FractionalPercent `yaml:"percentage"`
}

// FaultDelay is Envoy's common.fault.v3.FaultDelay. Exactly one of
// FixedDelay and HeaderDelay is required.
type FaultDelay struct {
	// FixedDelay is how long a delayed request waits; greater than 0.
	FixedDelay *Duration `yaml:"fixed_delay"`
	// HeaderDelay, when present ("header_delay: {}"), takes the delay in
	// milliseconds from the request header x-envoy-fault-delay-request (a
	// missing, invalid or 0 value means no delay) and lets
	// x-envoy-fault-delay-request-percentage lower the percentage.
	HeaderDelay *FaultHeaderControl `yaml:"header_delay"`
	// Percentage of requests delayed. Required, as for aborts.
	Percentage *FractionalPercent `yaml:"percentage"`
}

// FaultHeaderControl is Envoy's empty HeaderAbort and HeaderDelay messages:
// its presence hands the fault's parameters to request headers.
type FaultHeaderControl struct{}

// FractionalPercent is Envoy's type.v3.FractionalPercent: Numerator out of
// Denominator. A request is selected when a uniform random number modulo
// the denominator is below the numerator.
type FractionalPercent struct {
	// Numerator, from 0 to the denominator's value.
	Numerator int `yaml:"numerator"`
	// Denominator is HUNDRED (default), TEN_THOUSAND or MILLION.
	Denominator string `yaml:"denominator"`
}

// RuntimeFractionalPercent is Envoy's core.v3.RuntimeFractionalPercent.
// hopwatch has no runtime layer, so only the default value exists.
type RuntimeFractionalPercent struct {
	// DefaultValue is the fraction. Required.
	DefaultValue *FractionalPercent `yaml:"default_value"`
}

// Denominators of FractionalPercent, as Envoy names them.
var allowedDenominators = []string{"HUNDRED", "TEN_THOUSAND", "MILLION"}

// DefaultDenominator is a FractionalPercent's denominator when none is given.
const DefaultDenominator = "HUNDRED"

// DenominatorValue returns the value of a FractionalPercent denominator
// name, or 0 for an unknown one.
func DenominatorValue(name string) int {
	switch name {
	case "HUNDRED":
		return 100
	case "TEN_THOUSAND":
		return 10_000
	case "MILLION":
		return 1_000_000
	}
	return 0
}

func (p *FractionalPercent) applyDefaults(explicit func(any) bool) {
	if p != nil && p.Denominator == "" && !explicit(&p.Denominator) {
		p.Denominator = DefaultDenominator
	}
}

// fractionalPercent checks a FractionalPercent at path; required says
// whether it may be absent.
func (v *validator) fractionalPercent(path string, p *FractionalPercent, required bool) {
	if p == nil {
		if required {
			v.errorf(path, "required: {numerator: N, denominator: %s}", strings.Join(allowedDenominators, "|"))
		}
		return
	}
	v.oneOf(fieldPath(path, "denominator"), p.Denominator, allowedDenominators)
	if d := DenominatorValue(p.Denominator); d > 0 && (p.Numerator < 0 || p.Numerator > d) {
		v.errorf(fieldPath(path, "numerator"), "must be from 0 to %d (the denominator %s), got %d", d, p.Denominator, p.Numerator)
	}
}

func (r *Route) applyFaultDefaults(explicit func(any) bool) {
	f := r.Fault
	if f == nil {
		return
	}
	if f.Abort != nil {
		f.Abort.Percentage.applyDefaults(explicit)
	}
	if f.Delay != nil {
		f.Delay.Percentage.applyDefaults(explicit)
	}
}

func (v *validator) routeFault(rp string, r *Route) {
	f := r.Fault
	if f == nil {
		return
	}
	fp := fieldPath(rp, "fault")
	if f.Abort == nil && f.Delay == nil {
		v.errorf(fp, "at least one of abort or delay is required")
	}
	if r.Route == nil && (r.Redirect != nil || r.DirectResponse != nil) {
		v.errorf(fp, "only allowed on routes with a route action: the fault filter runs just before the router")
	}
	if a := f.Abort; a != nil {
		ap := fieldPath(fp, "abort")
		switch {
		case a.HeaderAbort != nil && a.HTTPStatus != 0:
			v.errorf(ap, "exactly one of http_status or header_abort is required; got both")
		case a.HeaderAbort == nil && a.HTTPStatus == 0:
			v.errorf(ap, "exactly one of http_status or header_abort is required")
		case a.HeaderAbort == nil && (a.HTTPStatus < 200 || a.HTTPStatus > 599):
			v.errorf(fieldPath(ap, "http_status"), "must be an HTTP status from 200 to 599, got %d", a.HTTPStatus)
		}
		v.fractionalPercent(fieldPath(ap, "percentage"), a.Percentage, true)
	}
	if d := f.Delay; d != nil {
		dp := fieldPath(fp, "delay")
		switch {
		case d.HeaderDelay != nil && d.FixedDelay != nil:
			v.errorf(dp, "exactly one of fixed_delay or header_delay is required; got both")
		case d.HeaderDelay == nil && d.FixedDelay == nil:
			v.errorf(dp, "exactly one of fixed_delay or header_delay is required")
		case d.FixedDelay != nil && *d.FixedDelay == 0:
			v.errorf(fieldPath(dp, "fixed_delay"), "must be greater than 0")
		}
		v.fractionalPercent(fieldPath(dp, "percentage"), d.Percentage, true)
	}
	if m := f.MaxActiveFaults; m != nil && *m < 0 {
		v.errorf(fieldPath(fp, "max_active_faults"), "must not be negative (absent means unlimited), got %d", *m)
	}
}
