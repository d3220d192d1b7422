package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Per-request injection headers. x-demo-delay and x-demo-fail apply at the
// services named in x-demo-delay-at and x-demo-fail-at (comma-separated);
// without an -at header they apply at the first service that receives them.
// Targeted headers are forwarded to the upstream so later services see them.
const (
	HeaderDelay   = "X-Demo-Delay"
	HeaderDelayAt = "X-Demo-Delay-At"
	HeaderFail    = "X-Demo-Fail"
	HeaderFailAt  = "X-Demo-Fail-At"
)

// MaxDelay bounds an injected delay, so a typo cannot park requests for
// hours.
const MaxDelay = 30 * time.Second

// Injection is latency and errors a service adds to the requests it serves.
type Injection struct {
	// Delay is added before the service does its work.
	Delay time.Duration `json:"delay"`
	// ErrorRate is the share of requests, in [0, 1], answered with
	// ErrorCode instead of being served.
	ErrorRate float64 `json:"error_rate"`
	// ErrorCode is the status of injected errors (400–599).
	ErrorCode int `json:"error_code"`
}

// MarshalJSON writes the delay as a duration string ("200ms"), the form
// POST /demo/inject takes.
func (i Injection) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Delay     string  `json:"delay"`
		ErrorRate float64 `json:"error_rate"`
		ErrorCode int     `json:"error_code"`
	}{i.Delay.String(), i.ErrorRate, i.ErrorCode})
}

// ParseDelay parses a delay such as "200ms": a Go duration in [0, MaxDelay].
func ParseDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("delay %q: want a duration such as \"200ms\"", s)
	}
	if d < 0 || d > MaxDelay {
		return 0, fmt.Errorf("delay %q: must be between 0 and %v", s, MaxDelay)
	}
	return d, nil
}

// ParseErrorCode parses an injected status code: an integer in 400–599.
func ParseErrorCode(s string) (int, error) {
	c, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || c < 400 || c > 599 {
		return 0, fmt.Errorf("error code %q: want an HTTP status between 400 and 599", s)
	}
	return c, nil
}

// ParseInjection parses the query of POST /demo/inject:
// delay (a duration), error_rate (in [0, 1]) and error_code (400–599,
// default 503). Unknown or repeated parameters are errors, so a misspelt
// one is not silently ignored.
func ParseInjection(q url.Values) (Injection, error) {
	inj := Injection{ErrorCode: http.StatusServiceUnavailable}
	for k, vs := range q {
		if len(vs) != 1 {
			return Injection{}, fmt.Errorf("parameter %q given %d times; give it once", k, len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "delay":
			inj.Delay, err = ParseDelay(v)
		case "error_rate":
			inj.ErrorRate, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || !(inj.ErrorRate >= 0 && inj.ErrorRate <= 1) {
				err = fmt.Errorf("error_rate %q: want a number between 0 and 1", v)
			}
		case "error_code":
			inj.ErrorCode, err = ParseErrorCode(v)
		default:
			err = fmt.Errorf("unknown parameter %q; use delay, error_rate or error_code", k)
		}
		if err != nil {
			return Injection{}, err
		}
	}
	return inj, nil
}

// headerFault is what the injection headers ask of one service.
type headerFault struct {
	delay time.Duration
	code  int // 0: no failure
	// forward lists the headers to pass on to the upstream.
	forward http.Header
}

// parseHeaderFault reads the injection headers for the service named
// service. Errors name the header.
func parseHeaderFault(h http.Header, service string) (headerFault, error) {
	f := headerFault{forward: http.Header{}}
	var err error
	if f.delay, err = targeted(h, service, HeaderDelay, HeaderDelayAt, ParseDelay, f.forward); err != nil {
		return headerFault{}, err
	}
	if f.code, err = targeted(h, service, HeaderFail, HeaderFailAt, ParseErrorCode, f.forward); err != nil {
		return headerFault{}, err
	}
	return f, nil
}

// targeted parses the injection header name with parse and returns its
// value if it applies to service: when the header atName is absent or
// lists the service. A targeted header is copied to forward with its
// target list, so that the services behind see it too; the zero value
// means none asked of this service.
func targeted[T any](h http.Header, service, name, atName string, parse func(string) (T, error), forward http.Header) (T, error) {
	var zero T
	v := h.Get(name)
	if v == "" {
		return zero, nil
	}
	x, err := parse(v)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	at := h.Get(atName)
	if at == "" {
		return x, nil
	}
	forward.Set(name, v)
	forward.Set(atName, at)
	if slices.ContainsFunc(strings.Split(at, ","), func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), service) }) {
		return x, nil
	}
	return zero, nil
}
