package tracer

import (
	"math/rand/v2"
	"sync"
)

// traceparentLen is the length of a version-00 W3C traceparent value:
// "00-" + 32 hex digits + "-" + 16 hex digits + "-" + 2 hex digits.
const traceparentLen = 55

// slabValues is how many unsampled traceparent values one refill makes:
// two allocations (the text and the []string backing) per slabValues
// requests, which rounds to none per request.
const slabValues = 64

// traceparentSlab hands out ready-made header values ([]string{v}) for
// unsampled root requests, so that passing the decision on costs the
// request path no allocation. The values are carved out of one string and
// one []string that are never written again once handed out, so a header
// map may keep its value as long as it likes: nothing is reused, only
// allocated in bulk. Each value has capacity 1, so an append to it copies
// instead of writing into its neighbour.
type traceparentSlab struct {
	vals []string
	next int
}

// slabs keeps one partly used slab per P (sync.Pool's per-P cache), so
// concurrent requests take values without a lock.
var slabs = sync.Pool{New: func() any { return new(traceparentSlab) }}

// unsampledTraceparent returns a header value holding a fresh, unsampled
// traceparent: random trace and span IDs, flags 00.
func unsampledTraceparent() []string {
	s := slabs.Get().(*traceparentSlab)
	if s.next == len(s.vals) {
		s.refill()
	}
	v := s.vals[s.next : s.next+1 : s.next+1]
	s.next++
	slabs.Put(s)
	return v
}

// refill formats slabValues new traceparents into one string. The IDs are
// drawn here rather than per request: they are random either way, and no
// value is handed out twice. They come from splitmix64 seeded by the
// runtime's generator: a bijection of its counter, so the 3*slabValues
// words of one refill never repeat, at a nanosecond a word where
// math/rand/v2's ChaCha8 costs about ten. Nothing is recorded under these
// IDs (the request is not sampled); they only need to be unique and
// unpredictable enough that two hops do not collide.
func (s *traceparentSlab) refill() {
	buf := make([]byte, slabValues*traceparentLen)
	state := rand.Uint64()
	next := func() uint64 {
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	for i := range slabValues {
		tp := buf[i*traceparentLen : (i+1)*traceparentLen]
		hi, lo, sid := next(), next(), next()
		for hi|lo == 0 || sid == 0 { // all-zero IDs are invalid
			hi, lo, sid = next(), next(), next()
		}
		copy(tp, "00-")
		putHex64(tp[3:19], hi)
		putHex64(tp[19:35], lo)
		tp[35] = '-'
		putHex64(tp[36:52], sid)
		copy(tp[52:], "-00")
	}
	text := string(buf)
	s.vals = make([]string, slabValues)
	for i := range s.vals {
		s.vals[i] = text[i*traceparentLen : (i+1)*traceparentLen]
	}
	s.next = 0
}

// putHex64 writes v as 16 lower-case hex digits into dst[:16], a byte
// (two digits) at a time.
func putHex64(dst []byte, v uint64) {
	_ = dst[15]
	for i := 14; i >= 0; i -= 2 {
		b := byte(v)
		dst[i], dst[i+1] = hexDigits[b>>4], hexDigits[b&15]
		v >>= 8
	}
}

const hexDigits = "0123456789abcdef"
