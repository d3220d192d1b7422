package stats

// knownCodes are the HTTP status codes registered with IANA (the ones Go's
// net/http names). Each gets a preallocated counter per response scope;
// every other code is collapsed into its class.
var knownCodes = [...]uint16{
	100, 101, 102, 103,
	200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
	300, 301, 302, 303, 304, 305, 307, 308,
	400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418,
	421, 422, 423, 424, 425, 426, 428, 429, 431, 451,
	500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
}

// codeSlots maps a status code to its index in knownCodes, or -1. It is
// computed once and never written again.
var codeSlots = func() (t [600]int8) {
	for i := range t {
		t[i] = -1
	}
	for i, c := range knownCodes {
		t[c] = int8(i)
	}
	return t
}()

// KnownCode reports whether code has its own upstream_rq_<code> counter.
func KnownCode(code int) bool { return code >= 0 && code < len(codeSlots) && codeSlots[code] >= 0 }

// CodeStats are the response-code counters of one scope: Envoy's
// <scope>upstream_rq_completed, upstream_rq_<N>xx, upstream_rq_<code> and
// upstream_rq_time (or the downstream_rq_ equivalents). Fields are nil when
// the scope does not have them in Envoy (retry.* has no completed or time).
type CodeStats struct {
	// Completed counts every recorded response.
	Completed *Counter
	// Time is the response time histogram, in milliseconds.
	Time *Histogram

	classes   [5]*Counter
	codes     [len(knownCodes)]*Counter
	hasCodes  bool
	collapsed *Counter
}

// Record counts one response with the given status code. A registered
// code counts in upstream_rq_<code> and its class; a code in 100..599 that
// is not registered counts in its class and in the collapse counter; a code
// outside 100..599 has no class and counts only in completed and the
// collapse counter. It is a handful of atomic adds and never allocates.
func (c *CodeStats) Record(code int) {
	if c == nil {
		return
	}
	if c.Completed != nil {
		c.Completed.Inc()
	}
	if code < 100 || code >= 600 {
		if c.collapsed != nil {
			c.collapsed.Inc()
		}
		return
	}
	c.classes[code/100-1].Inc()
	if !c.hasCodes {
		return
	}
	if s := codeSlots[code]; s >= 0 {
		c.codes[s].Inc()
		return
	}
	if c.collapsed != nil {
		c.collapsed.Inc()
	}
}

// RecordTime records a response time in milliseconds, if the scope has a
// time histogram. id is the request's trace ID when it is sampled (it
// becomes the bucket's exemplar), else zero.
func (c *CodeStats) RecordTime(ms uint64, id TraceID) {
	if c != nil && c.Time != nil {
		c.Time.RecordTraced(ms, id)
	}
}

// Code returns the counter for a registered status code, or nil.
func (c *CodeStats) Code(code int) *Counter {
	if c == nil || !c.hasCodes || !KnownCode(code) {
		return nil
	}
	return c.codes[codeSlots[code]]
}

// Class returns the counter for a status class (1 to 5), or nil.
func (c *CodeStats) Class(class int) *Counter {
	if c == nil || class < 1 || class > 5 {
		return nil
	}
	return c.classes[class-1]
}
