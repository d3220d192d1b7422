package tracer

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
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
	state := rand.Uint64()
	next := func() uint64 {
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	// A strings.Builder, so that the text is allocated once and not
	// copied again into a string.
	var b strings.Builder
	b.Grow(slabValues * traceparentLen)
	tp := [traceparentLen]byte{0: '0', 1: '0', 2: '-', 35: '-', 52: '-', 53: '0', 54: '0'}
	for range slabValues {
		hi, lo, sid := next(), next(), next()
		for hi|lo == 0 || sid == 0 { // all-zero IDs are invalid
			hi, lo, sid = next(), next(), next()
		}
		putHex64(tp[3:19], hi)
		putHex64(tp[19:35], lo)
		putHex64(tp[36:52], sid)
		b.Write(tp[:])
	}
	text := b.String()
	s.vals = make([]string, slabValues)
	for i := range s.vals {
		s.vals[i] = text[i*traceparentLen : (i+1)*traceparentLen]
	}
	s.next = 0
}

// putHex64 writes v as 16 lower-case hex digits into dst[:16], eight at a
// time: the nibbles of each half are spread one to a byte and turned into
// digits with word arithmetic, a third of the time of a per-digit loop.
func putHex64(dst []byte, v uint64) {
	binary.BigEndian.PutUint64(dst[0:8], hex8(uint32(v>>32)))
	binary.BigEndian.PutUint64(dst[8:16], hex8(uint32(v)))
}

// hex8 returns the 8 hex digits of v as the bytes of a word, the most
// significant digit in the highest byte.
func hex8(v uint32) uint64 {
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	// 1 in each byte whose nibble is above 9, which becomes a letter.
	letters := ((x + 0x0606060606060606) >> 4) & 0x0101010101010101
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}
