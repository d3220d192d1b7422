package cluster

import (
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// maglevRetryProbes bounds how many perturbed hashes a retry tries (Envoy's
// attempt mutation) before it scans the table for a host not yet tried.
const maglevRetryProbes = 32

// maglev is Envoy's maglev policy: consistent hashing with a lookup table
// (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016). Every host has its own permutation of the table's
// slots, from an offset and a skip derived from two hashes of its address;
// hosts take turns claiming the next free slot of their permutation until
// the table is full, a host of weight w taking a turn w/max_weight as often
// as the heaviest host. A request goes to table[hash % table_size]: one
// lookup, whatever the number of hosts, and each host's share of the table
// is within a few per cent of its weight. Adding a host mostly takes slots
// from the others in proportion, so most keys stay where they were.
//
// The table is built exactly as Envoy's OriginalMaglevTable: offset =
// xxHash64(address) % size, skip = xxHash64(address, seed 1) % (size-1) + 1.
//
// A retry that must avoid the hosts it tried perturbs the hash as Envoy
// does for attempt n (hash ^ -n), and after maglevRetryProbes misses scans
// the table from the key's slot.
type maglev struct {
	rnd    randSource
	size   uint64
	tables tableCache[maglevTable]
}

// maglevTable is the lookup table of one candidate list: slots[i] is an
// index into the list.
type maglevTable struct {
	slots []uint32
	// minEntries and maxEntries are the fewest and most slots any host got
	// (Envoy's maglev_lb.min_entries_per_host and max_entries_per_host).
	minEntries, maxEntries uint64
}

func newMaglev(cfg *config.Cluster, rnd randSource) (balancer, error) {
	return newMaglevBalancer(cfg.MaglevLBConfig, rnd)
}

func newMaglevBalancer(cfg config.MaglevLBConfig, rnd randSource) (*maglev, error) {
	if err := lbpolicy.Check("maglev_lb_config", &cfg); err != nil {
		return nil, err
	}
	m := &maglev{rnd: rnd, size: uint64(cfg.TableSize)}
	m.tables.build = m.build
	return m, nil
}

func (m *maglev) pick(c *candidates, lb *LBContext) *Host {
	// The table may be the previous host set's while c's is being built:
	// its slots index its own list.
	e := m.tables.get(c)
	t, hosts := e.table, e.cands.hosts
	h := requestHash(lb, m.rnd)
	first := hosts[t.slots[h%m.size]]
	if !retrying(c, lb) || !slices.Contains(lb.Attempted, first) {
		return first
	}
	for n := uint64(1); n <= maglevRetryProbes; n++ {
		// Envoy: "hash ^= ~0ULL - attempt + 1", a value with most bits set,
		// so that each attempt lands far from the last.
		if alt := hosts[t.slots[(h^(^uint64(0)-n+1))%m.size]]; !slices.Contains(lb.Attempted, alt) {
			return alt
		}
	}
	start := h % m.size
	for i := range m.size {
		if alt := hosts[t.slots[(start+i)%m.size]]; !slices.Contains(lb.Attempted, alt) {
			return alt
		}
	}
	return first // only when the hosts not tried have no slot (more hosts than slots)
}

// build fills the table for one candidate list (Envoy's MaglevTable and
// OriginalMaglevTable::constructImplementationInternals).
func (m *maglev) build(c *candidates) *maglevTable {
	type entry struct {
		offset, skip, next, count uint64
		weight, target            float64
	}
	sum := float64(c.totalWeight)
	maxNorm := 0.0
	entries := make([]entry, len(c.hosts))
	for i, h := range c.hosts {
		var d xxhash.Digest
		d.ResetWithSeed(1)
		_, _ = d.WriteString(h.addrStr)
		entries[i] = entry{
			offset: xxhash.Sum64String(h.addrStr) % m.size,
			skip:   d.Sum64()%(m.size-1) + 1,
			weight: float64(h.weight) / sum,
		}
		maxNorm = max(maxNorm, entries[i].weight)
	}
	const empty = math.MaxUint32
	slots := make([]uint32, m.size)
	for i := range slots {
		slots[i] = empty
	}
	filled := uint64(0)
	for iteration := 1.0; filled < m.size; iteration++ {
		for i := 0; i < len(entries) && filled < m.size; i++ {
			e := &entries[i]
			// A host of the heaviest weight claims a slot every round; one
			// of a third of that weight every third round.
			if iteration*e.weight < e.target {
				continue
			}
			e.target += maxNorm
			s := (e.offset + e.skip*e.next) % m.size
			for slots[s] != empty {
				e.next++
				s = (e.offset + e.skip*e.next) % m.size
			}
			slots[s] = uint32(i)
			e.next++
			e.count++
			filled++
		}
	}
	t := &maglevTable{slots: slots, minEntries: m.size}
	for _, e := range entries {
		t.minEntries = min(t.minEntries, e.count)
		t.maxEntries = max(t.maxEntries, e.count)
	}
	return t
}
