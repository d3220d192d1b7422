package cluster

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// ringHash is Envoy's ring_hash policy: consistent hashing on a ketama
// ring. Every host is placed on a ring of 64-bit hashes at several points,
// as many as its weight asks for; a request goes to the first point at or
// after its hash, wrapping around. Adding a host takes over the arcs just
// before its points and leaves every other key where it was, which is
// what keeps sessions and caches warm when the cluster grows.
//
// The ring is built as Envoy builds it, so that a hopwatch and an Envoy
// proxy with the same hosts agree on where keys go: the lightest host
// gets ceil(minimum_ring_size × its normalised weight) points, the others
// proportionally more (running sums keep the total exact), capped at
// maximum_ring_size; point i of a host is the hash of "<address>_<i>"
// with hash_function (xxHash64 by default).
//
// A retry that must avoid hosts it tried walks the ring forward from the
// key's point to the next host not tried, which is Envoy's attempt offset
// (midp + attempt) continued until it finds one.
type ringHash struct {
	rnd     randSource
	minSize uint64
	maxSize uint64
	hash    func([]byte) uint64
	tables  tableCache[ring]
}

// ring is the sorted ring of one candidate list: hashes[i] belongs to
// hosts[i], an index into the list.
type ring struct {
	hashes []uint64
	hosts  []uint32
	// minHashes and maxHashes are the fewest and most points any host got
	// (Envoy's ring_hash_lb.min_hashes_per_host and max_hashes_per_host).
	minHashes, maxHashes uint64
}

func newRingHash(cfg *config.Cluster, rnd randSource) (balancer, error) {
	return newRingHashBalancer(cfg.RingHashLBConfig, rnd)
}

func newRingHashBalancer(cfg config.RingHashLBConfig, rnd randSource) (*ringHash, error) {
	if err := lbpolicy.Check("ring_hash_lb_config", &cfg); err != nil {
		return nil, err
	}
	r := &ringHash{rnd: rnd, minSize: uint64(cfg.MinimumRingSize), maxSize: uint64(cfg.MaximumRingSize), hash: xxhash.Sum64}
	if cfg.HashFunction == "murmur_hash_2" {
		r.hash = func(b []byte) uint64 { return murmurHash2(b, stdHashSeed) }
	}
	r.tables.build = r.build
	return r, nil
}

func (r *ringHash) pick(c *candidates, lb *LBContext) *Host {
	// The ring may be the previous host set's while c's is being built:
	// its entries index its own list.
	e := r.tables.get(c)
	t, hosts := e.table, e.cands.hosts
	if len(t.hashes) == 0 {
		return c.hosts[0] // unreachable: every ring has at least one point
	}
	i := t.index(requestHash(lb, r.rnd))
	if retrying(c, lb) {
		// At most one lap: some host not tried has a point, or the first
		// choice stands.
		for step := 0; step < len(t.hosts); step++ {
			j := (i + step) % len(t.hosts)
			if h := hosts[t.hosts[j]]; !slices.Contains(lb.Attempted, h) {
				return h
			}
		}
	}
	return hosts[t.hosts[i]]
}

// index returns the position of the first point at or after h, wrapping
// to the first point past the end of the ring.
func (t *ring) index(h uint64) int {
	i, _ := slices.BinarySearch(t.hashes, h)
	if i == len(t.hashes) {
		return 0
	}
	return i
}

// build builds the ring for one candidate list (Envoy's
// RingHashLoadBalancer::Ring constructor).
func (r *ringHash) build(c *candidates) *ring {
	hosts := c.hosts
	sum := uint64(c.totalWeight)
	minNorm := math.Inf(1)
	for _, h := range hosts {
		minNorm = min(minNorm, float64(h.weight)/float64(sum))
	}
	// Scale so that the lightest host gets a whole number of points, then
	// cap the ring at maximum_ring_size.
	scale := min(math.Ceil(minNorm*float64(r.minSize))/minNorm, float64(r.maxSize))
	size := uint64(math.Ceil(scale))
	type point struct {
		hash uint64
		host uint32
	}
	points := make([]point, 0, size)
	t := &ring{minHashes: size}
	var key []byte
	current, target := 0.0, 0.0
	for idx, h := range hosts {
		key = append(append(key[:0], h.addrStr...), '_')
		prefix := len(key)
		target += scale * (float64(h.weight) / float64(sum))
		var n uint64
		for current < target {
			key = strconv.AppendUint(key[:prefix], n, 10)
			points = append(points, point{hash: r.hash(key), host: uint32(idx)})
			n++
			current++
		}
		t.minHashes = min(t.minHashes, n)
		t.maxHashes = max(t.maxHashes, n)
	}
	// Points of two hosts collide only when they share an address (two
	// endpoints naming it); the list order breaks the tie, so that the
	// ring does not depend on the sort.
	slices.SortFunc(points, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.host, b.host)
	})
	t.hashes = make([]uint64, len(points))
	t.hosts = make([]uint32, len(points))
	for i, p := range points {
		t.hashes[i], t.hosts[i] = p.hash, p.host
	}
	return t
}

// stdHashSeed is the seed libstdc++'s std::hash<std::string> passes to
// _Hash_bytes, and Envoy's MurmurHash::STD_HASH_SEED.
const stdHashSeed = 0xc70f6907

// murmurHash2 is MurmurHash64A as libstdc++'s _Hash_bytes computes it on
// 64-bit platforms, which Envoy's MURMUR_HASH_2 ring hash function
// reproduces so that rings match std::hash-based ones.
func murmurHash2(key []byte, seed uint64) uint64 {
	const mul = 0xc6a4a7935bd1e995
	shiftMix := func(v uint64) uint64 { return v ^ (v >> 47) }
	n := uint64(len(key))
	hash := seed ^ (n * mul)
	for len(key) >= 8 {
		data := shiftMix(binary.LittleEndian.Uint64(key)*mul) * mul
		hash ^= data
		hash *= mul
		key = key[8:]
	}
	if len(key) > 0 {
		// The tail's bytes, last byte most significant (load_bytes).
		var data uint64
		for i := len(key) - 1; i >= 0; i-- {
			data = data<<8 | uint64(key[i])
		}
		hash ^= data
		hash *= mul
	}
	hash = shiftMix(hash) * mul
	return shiftMix(hash)
}
