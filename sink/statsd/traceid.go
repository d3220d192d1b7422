package statsd

// TraceID is a W3C trace ID (16 bytes), the exemplar a timer sample
// carries.
type TraceID [16]byte

// traceIDSection starts the exemplar section: `<name>:<ms>|ms[|@rate][|#tags]|trace_id:<32 lowercase hex>`.
var traceIDSection = []byte("|trace_id:")

const hexDigits = "0123456789abcdef"

// AppendHex appends the 32 lowercase hex digits of id.
func (id *TraceID) AppendHex(b []byte) []byte {
	for _, c := range id {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// String returns the 32 lowercase hex digits.
func (id TraceID) String() string { return string(id.AppendHex(make([]byte, 0, 32))) }

// parse decodes exactly 32 lowercase hex digits, as W3C tracecontext
// writes them, into id. An all-zero ID is invalid there, and so here.
func (id *TraceID) parse(b []byte) bool {
	if len(b) != 2*len(id) {
		return false
	}
	var nonZero byte
	for i := range id {
		hi, ok1 := unhex(b[2*i])
		lo, ok2 := unhex(b[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		id[i] = hi<<4 | lo
		nonZero |= id[i]
	}
	return nonZero != 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ParseTraceID decodes 32 lowercase hex digits, as the line format
// carries them.
func ParseTraceID(hex string) (TraceID, bool) {
	var id TraceID
	ok := id.parse([]byte(hex))
	return id, ok
}
