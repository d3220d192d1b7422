// Package requestid generates and interprets x-request-id values the way
// Envoy's UUID request-ID extension does, so that a request keeps one ID
// across every hop and every hop derives the same decisions from it.
package requestid

import (
	crand "crypto/rand"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
)

// sources holds ChaCha8 generators seeded from crypto/rand.
//
// Why not crypto/rand.Read per ID: it is a system call (or a vDSO call that
// still takes a lock per call on older kernels), and New runs on every
// request. Why not the math/rand/v2 top-level functions: their generator is
// documented as unsuitable for security-sensitive work, and request IDs are
// sometimes used as unguessable correlation tokens. ChaCha8 is a
// cryptographically strong generator; seeding each one from crypto/rand and
// keeping them in a sync.Pool gives unpredictable IDs with no lock contention
// (a generator is used by one goroutine at a time) and no system call in the
// steady state. The pool is package-level on purpose: it is a cache with no
// observable state, like the buffer pools in fmt.
var sources = sync.Pool{New: func() any {
	var seed [32]byte
	// crypto/rand.Read never returns an error since Go 1.24; it crashes the
	// program if the OS cannot supply entropy, which is the right outcome
	// for a generator whose whole point is unpredictability.
	_, _ = crand.Read(seed[:])
	return rand.NewChaCha8(seed)
}}

const hexDigits = "0123456789abcdef"

// hexPos is where each byte of the UUID lands in the canonical 8-4-4-4-12
// form; a table avoids a branch per byte for the dashes.
var hexPos = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// New returns a random (version 4, RFC 9562 variant) UUID in canonical
// lower-case form, such as "3b241101-e2bb-4255-8caf-4136c566a962". It is
// safe for concurrent use; the only allocation is the returned string.
func New() string {
	src := sources.Get().(*rand.ChaCha8)
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], src.Uint64())
	binary.LittleEndian.PutUint64(u[8:], src.Uint64())
	sources.Put(src)

	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10xx (RFC 9562)

	out := [36]byte{8: '-', 13: '-', 18: '-', 23: '-'}
	for i, b := range u {
		p := hexPos[i]
		out[p] = hexDigits[b>>4]
		out[p+1] = hexDigits[b&0x0f]
	}
	return string(out[:])
}

// IsInternalAddress reports whether a request from a is internal in Envoy's
// sense (Network::Utility::isInternalAddress), which decides whether the
// proxy trusts an incoming x-request-id and x-envoy-* headers.
//
// It implements exactly what Envoy implements, which is narrower than "private
// address space":
//   - IPv4: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918) and the
//     single loopback address 127.0.0.1 (Envoy compares with INADDR_LOOPBACK,
//     so 127.0.0.2 is not internal).
//   - IPv6: fd00::/8 (the locally assigned half of the RFC 4193 unique local
//     range fc00::/7; Envoy leaves fc00::/8 out because it is not yet
//     assigned) and the loopback address ::1.
//
// Link-local addresses (169.254/16, fe80::/10) are not internal, as in Envoy.
// One addition: an IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged by
// its IPv4 address. Go's dual-stack listeners report IPv4 peers that way,
// and Envoy converts such peers to IPv4 addresses before asking.
func IsInternalAddress(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return b[0] == 10 ||
			(b[0] == 172 && b[1] >= 16 && b[1] <= 31) ||
			(b[0] == 192 && b[1] == 168) ||
			b == [4]byte{127, 0, 0, 1}
	case a.Is6():
		b := a.As16()
		return b[0] == 0xfd || a == netip.IPv6Loopback()
	}
	return false // the zero Addr
}

// Mod returns a stable value in [0, n) derived from a UUID request ID, as
// Envoy's UUIDRequestIDExtension::modBy does: the first 8 characters are read
// as a hexadecimal number and reduced modulo n. Every hop that sees the same
// x-request-id therefore makes the same sampling decision.
//
// ok is false when id is shorter than 8 characters, when any of its first 8
// characters is not a hexadecimal digit (either case), or when n is 0.
// Envoy parses with strtoull, which would also accept a leading sign, spaces
// or "0x"; those never occur in a UUID, so Mod rejects them.
func Mod(id string, n uint64) (v uint64, ok bool) {
	if n == 0 || len(id) < 8 {
		return 0, false
	}
	// A table rather than a switch: the digits of a random ID are letters
	// or numbers at random, which mispredicts a branch on every other one,
	// and this runs on every request that tracing sees.
	var bad byte
	for i := range 8 {
		d := hexDigitValue[id[i]]
		bad |= d
		v = v<<4 | uint64(d&0x0f)
	}
	if bad&0xf0 != 0 {
		return 0, false
	}
	if n <= math.MaxUint32 {
		// v < 2^32: a 32-bit division is several times faster.
		return uint64(uint32(v) % uint32(n)), true
	}
	return v % n, true
}

// hexDigitValue maps a hexadecimal digit (either case) to its value and every
// other byte to 0xff.
var hexDigitValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
		t[c-'a'+'A'] = c - 'a' + 10
	}
	return t
}()
