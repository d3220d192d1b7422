package cluster

import (
	"slices"
	"sync"
	"sync/atomic"
)

// This file holds what the two consistent-hash balancers, ring_hash
// (lb_ring_hash.go) and maglev (lb_maglev.go), share: they choose a host by
// the request hash (LBContext.Hash, from the route's hash_policy), from a
// table built once per candidate list, and they avoid the hosts a retry has
// already tried themselves.

// HashesRequests reports whether the cluster's balancer chooses by the
// request hash (ring_hash, maglev); see policy.hashesRequests.
func (c *Cluster) HashesRequests() bool {
	return c.policy.hashesRequests
}

// requestHash returns the request's hash, or a random value when it has
// none: Envoy's hash balancers then behave as a random balancer (weighted
// by each host's share of the table) rather than fail.
func requestHash(lb *LBContext, rnd randSource) uint64 {
	if lb != nil && lb.HasHash {
		return lb.Hash
	}
	return rnd()
}

// retrying reports whether the balancer must look past the hosts lb has
// already tried: there are some, and at least one candidate has not been
// tried (otherwise any host will do, and the first choice is kept).
func retrying(c *candidates, lb *LBContext) bool {
	if lb == nil || len(lb.Attempted) == 0 {
		return false
	}
	for _, h := range c.hosts {
		if !slices.Contains(lb.Attempted, h) {
			return true
		}
	}
	return false
}

// maxCachedTables bounds how many candidate lists a hash balancer keeps a
// table for. The current host set's list is the one that matters; a few
// older ones are kept so that a request which loaded the host set just
// before it changed still finds its table instead of asking for a rebuild
// of a list that is already gone.
const maxCachedTables = 4

// tableCache maps candidate lists to the lookup table built for each. A
// candidate list is immutable and replaced when the host set changes, so
// its pointer identifies it: a table is built once per host set, never per
// request, and lookups take no lock.
//
// Tables are built off the request path, as Envoy builds them on its main
// thread and publishes them to the workers: a pick that finds no table for
// its list uses the newest table there is (the previous host set's) and
// asks a background goroutine to build one; later picks use the new table
// once it is published. Only a balancer's very first pick, with no table at
// all, builds one itself. A host set that changes faster than tables build
// costs one build at a time, for the newest list, however many picks see
// it.
type tableCache[T any] struct {
	// build builds the table of a list; set once, when the balancer is
	// made.
	build   func(*candidates) *T
	entries atomic.Pointer[[]tableEntry[T]]
	// mu serialises stores (the first synchronous build and the builder).
	mu sync.Mutex
	// pending is the newest list waiting for a table; building is true
	// while a builder goroutine runs.
	pending  atomic.Pointer[candidates]
	building atomic.Bool
}

// tableEntry is a table and the candidate list it was built for (and
// whose hosts its entries index).
type tableEntry[T any] struct {
	cands *candidates
	table *T
}

// get returns the entry to pick from for c: c's own, or while c's is being
// built the newest one. It allocates nothing unless c is new.
func (tc *tableCache[T]) get(c *candidates) tableEntry[T] {
	if es := tc.entries.Load(); es != nil {
		return tc.pick(*es, c)
	}
	return tc.first(c)
}

// pick returns c's entry from es or, asking for c's table to be built,
// the newest entry.
func (tc *tableCache[T]) pick(es []tableEntry[T], c *candidates) tableEntry[T] {
	for _, e := range es {
		if e.cands == c {
			return e
		}
	}
	tc.request(c)
	return es[0]
}

// lookup returns the table built for c, or nil.
func (tc *tableCache[T]) lookup(c *candidates) *T {
	if es := tc.entries.Load(); es != nil {
		for _, e := range *es {
			if e.cands == c {
				return e.table
			}
		}
	}
	return nil
}

// first builds the first table, on the request path: there is nothing
// older to pick from.
func (tc *tableCache[T]) first(c *candidates) tableEntry[T] {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if es := tc.entries.Load(); es != nil {
		// Another pick built one meanwhile; c's own comes in the background.
		return tc.pick(*es, c)
	}
	e := tableEntry[T]{cands: c, table: tc.build(c)}
	tc.entries.Store(&[]tableEntry[T]{e})
	return e
}

// request asks for c's table; at most one builder runs, and it builds the
// newest list asked for.
func (tc *tableCache[T]) request(c *candidates) {
	if tc.pending.Load() == c {
		return
	}
	tc.pending.Store(c)
	if tc.building.CompareAndSwap(false, true) {
		go tc.builder()
	}
}

// builder builds the pending lists' tables until none is left.
func (tc *tableCache[T]) builder() {
	for {
		c := tc.pending.Swap(nil)
		if c == nil {
			tc.building.Store(false)
			// A request that came between the Swap and the Store found
			// building still set: take it over, unless another builder did.
			if tc.pending.Load() != nil && tc.building.CompareAndSwap(false, true) {
				continue
			}
			return
		}
		if tc.lookup(c) != nil {
			continue
		}
		tc.store(c, tc.build(c))
	}
}

// store publishes c's table, newest first, keeping maxCachedTables.
func (tc *tableCache[T]) store(c *candidates, t *T) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var old []tableEntry[T]
	if es := tc.entries.Load(); es != nil {
		old = *es
	}
	next := make([]tableEntry[T], 0, maxCachedTables)
	next = append(next, tableEntry[T]{cands: c, table: t})
	for _, e := range old {
		if len(next) < maxCachedTables && e.cands != c {
			next = append(next, e)
		}
	}
	tc.entries.Store(&next)
}
