package requestid

import (
	crand "crypto/rand"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"testing"
)

var canonicalUUIDv4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewFormat(t *testing.T) {
	const n = 100_000
	seen := make(map[string]struct{}, n)
	for range n {
		id := New()
		if !canonicalUUIDv4.MatchString(id) {
			t.Fatalf("New() = %q, not a canonical lower-case version 4 UUID", id)
		}
		if _, dup := seen[id]; dup {
			t.Fatalf("New() returned %q twice in %d calls", id, len(seen))
		}
		seen[id] = struct{}{}
	}
}

// TestNewBitsVary checks that every bit outside the version and variant
// fields takes both values, which would fail if a byte were left unset or
// the hex encoding dropped a nibble.
func TestNewBitsVary(t *testing.T) {
	var ones, zeros [36]int
	for range 2000 {
		id := New()
		for i := range id {
			if id[i] == '-' {
				continue
			}
			v := hexValue(id[i])
			for bit := range 4 {
				if v&(1<<bit) != 0 {
					ones[i]++
				} else {
					zeros[i]++
				}
			}
		}
	}
	for i := range 36 {
		switch i {
		case 8, 13, 18, 23, 14, 19: // dashes, the version nibble, the variant nibble
			continue
		}
		if ones[i] == 0 || zeros[i] == 0 {
			t.Errorf("hex digit %d never varies: ones=%d zeros=%d", i, ones[i], zeros[i])
		}
	}
}

func hexValue(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func TestNewConcurrent(t *testing.T) {
	const goroutines, per = 8, 2000
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range per {
				ids[g] = append(ids[g], New())
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, list := range ids {
		for _, id := range list {
			if seen[id] {
				t.Fatalf("duplicate id %q across goroutines", id)
			}
			seen[id] = true
		}
	}
}

func TestIsInternalAddress(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"9.255.255.255", false},
		{"11.0.0.0", false},
		{"172.15.255.255", false},
		{"172.16.0.0", true},
		{"172.31.255.255", true},
		{"172.32.0.0", false},
		{"192.168.0.1", true},
		{"192.167.255.255", false},
		{"192.169.0.0", false},
		{"127.0.0.1", true},
		{"127.0.0.2", false}, // Envoy compares with INADDR_LOOPBACK only
		{"169.254.1.1", false},
		{"8.8.8.8", false},
		{"0.0.0.0", false},
		{"::1", true},
		{"::", false},
		{"fd00::1", true},
		{"fdff:ffff::1", true},
		{"fc00::1", false}, // not yet assigned; Envoy leaves it out
		{"fe80::1", false},
		{"2001:db8::1", false},
		{"::ffff:10.1.2.3", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:8.8.8.8", false},
		{"fd00::1%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := IsInternalAddress(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("IsInternalAddress(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if IsInternalAddress(netip.Addr{}) {
		t.Error("IsInternalAddress(zero Addr) = true, want false")
	}
}

func TestMod(t *testing.T) {
	tests := []struct {
		id     string
		n      uint64
		want   uint64
		wantOK bool
	}{
		{"00000000-0000-4000-8000-000000000000", 100, 0, true},
		{"0000000a-0000-4000-8000-000000000000", 100, 10, true},
		{"000003e8", 1000, 0, true},          // 1000 % 1000
		{"ffffffff-xxxx", 10000, 7295, true}, // 4294967295 % 10000
		{"FFFFFFFF", 10000, 7295, true},
		{"a8c4b8f1-7b5e-4b8d-9d1e-2f0c3a1b2c3d", 10000, 2831464689 % 10000, true},
		{"a8c4b8f1", 1, 0, true},
		{"a8c4b8f", 100, 0, false}, // too short
		{"", 100, 0, false},
		{"g0000000", 100, 0, false}, // not hex
		{"0x000001", 100, 0, false}, // strtoull would take it; a UUID never has it
		{" 0000001", 100, 0, false},
		{"-0000001", 100, 0, false},
		{"00000001", 0, 0, false}, // no modulus
	}
	for _, tt := range tests {
		got, ok := Mod(tt.id, tt.n)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Mod(%q, %d) = %d, %v; want %d, %v", tt.id, tt.n, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestModOfNew checks that generated IDs are always usable by Mod and that
// the derived values spread over the range (a constant would fail).
func TestModOfNew(t *testing.T) {
	const buckets = 10
	var counts [buckets]int
	for range 10_000 {
		v, ok := Mod(New(), buckets)
		if !ok || v >= buckets {
			t.Fatalf("Mod(New(), %d) = %d, %v", buckets, v, ok)
		}
		counts[v]++
	}
	for i, c := range counts {
		// The expected count is 1000 with a standard deviation of about 30.
		if c < 700 || c > 1300 {
			t.Errorf("bucket %d got %d of 10000 values; distribution is skewed: %v", i, c, counts)
		}
	}
}

func FuzzMod(f *testing.F) {
	f.Add("a8c4b8f1-7b5e-4b8d-9d1e-2f0c3a1b2c3d", uint64(10000))
	f.Add("zzzz", uint64(3))
	f.Add("", uint64(0))
	f.Fuzz(func(t *testing.T, id string, n uint64) {
		v, ok := Mod(id, n)
		if rv, rok := modReference(id, n); v != rv || ok != rok {
			t.Fatalf("Mod(%q, %d) = %d, %v; the plain reading gives %d, %v", id, n, v, ok, rv, rok)
		}
		if ok && v >= n {
			t.Fatalf("Mod(%q, %d) = %d, out of range", id, n, v)
		}
		if !ok && v != 0 {
			t.Fatalf("Mod(%q, %d) = %d with ok=false", id, n, v)
		}
	})
}

// modReference is Mod written plainly, digit by digit: the reading the
// table-driven Mod must agree with.
func modReference(id string, n uint64) (uint64, bool) {
	if n == 0 || len(id) < 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(id[:8], 16, 64)
	if err != nil { // base 16: digits only, no sign, prefix or underscore
		return 0, false
	}
	return v % n, true
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New()
	}
}

func BenchmarkNewParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = New()
		}
	})
}

// BenchmarkCryptoRand16 is the alternative New did not take, for comparison.
func BenchmarkCryptoRand16(b *testing.B) {
	b.ReportAllocs()
	var u [16]byte
	for b.Loop() {
		_, _ = crand.Read(u[:])
	}
}

func BenchmarkMod(b *testing.B) {
	id := New()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Mod(id, 10000)
	}
}
