package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// ErrOverflow is returned (possibly wrapped) by a cluster's transport when a
// circuit breaker refused the request: too many requests were already
// waiting for a connection (max_pending_requests). The proxy answers 503
// with response flag UO and does not retry, as Envoy does.
var ErrOverflow = errors.New("upstream overflow: circuit breaker open")

// errIdleConn ends a dial that waited for a connection slot because its
// transport's pool has an idle connection to the same address now: the
// transport looks in its pool again (see idlePool).
var errIdleConn = errors.New("dial gave way to an idle pooled connection")

// idleHandoff ends a dial that waited for a connection slot with a
// connection its transport's pool took back meanwhile (Breaker.handIdle):
// the transport uses conn, one of its own, instead of a new one.
type idleHandoff struct {
	conn any
}

func (*idleHandoff) Error() string { return "dial answered by an idle pooled connection" }

// errAbandoned ends a dial that waited for a connection slot on behalf of a
// request that no longer needs it: the request was handed an idle
// connection meanwhile, or it ended. The request never sees this error.
var errAbandoned = errors.New("dial abandoned: the request no longer needs a new connection")

// BreakerStats are the stats a Breaker keeps.
type BreakerStats struct {
	// Cluster are the cluster's stats: the *_overflow counters, the pending
	// request counters and the circuit_breakers.default.*_open gauges.
	Cluster *stats.ClusterStats
	// Remaining are the remaining_* gauges; nil unless track_remaining.
	Remaining *stats.CircuitBreakerRemainingStats
}

// Breaker holds a cluster's circuit breakers (Envoy's resource manager for
// the default priority): how many connections, pending requests, requests
// and retries the cluster has outstanding, against their limits. A resource
// is taken with a compare-and-swap, so a limit is never exceeded, even
// briefly (Envoy allows a brief overshoot). Every method is safe for
// concurrent use and, but for connection waits, lock-free.
//
// Requests and retries are taken by the router, around each upstream
// attempt and each retry. Connections are taken by the cluster's dialer:
// every upstream connection, whichever transport asks for it, holds a slot
// from its dial until it is closed. A dial beyond max_connections waits
// for a slot; the request it dials for is pending (Envoy's pending request
// queue) from the moment its transport starts a dial for it until a
// connection, new or idle, is handed to it, and only max_pending_requests
// requests may be pending at once.
type Breaker struct {
	maxCx, maxPending, maxRq, maxRetries int64
	// budget replaces maxRetries by budgetPct% of the active requests, at
	// least minRetryConc.
	budget       bool
	budgetPct    float64
	minRetryConc int64

	cs  *stats.ClusterStats
	rem *stats.CircuitBreakerRemainingStats // nil unless track_remaining

	cx, pending, rq, retries atomic.Int64

	// waiters are the dials waiting for a connection slot, oldest first.
	// nwait is len(waiters), readable without the lock, so that closing a
	// connection takes the lock only when someone waits.
	mu      sync.Mutex
	waiters []*connWait
	nwait   atomic.Int64
}

// newBreaker builds the breakers of a cluster from its config; a nil cfg
// means Envoy's defaults. A nil st means stats of a null store of its own.
func newBreaker(cfg *config.CircuitBreakers, st *BreakerStats) *Breaker {
	if cfg == nil {
		cfg = &config.CircuitBreakers{
			MaxConnections: config.DefaultMaxConnections, MaxPendingRequests: config.DefaultMaxPendingRequests,
			MaxRequests: config.DefaultMaxRequests, MaxRetries: config.DefaultMaxRetries,
		}
	}
	b := &Breaker{
		maxCx:      int64(cfg.MaxConnections),
		maxPending: int64(cfg.MaxPendingRequests),
		maxRq:      int64(cfg.MaxRequests),
		maxRetries: int64(cfg.MaxRetries),
	}
	if rb := cfg.RetryBudget; rb != nil {
		b.budget = true
		b.budgetPct, b.minRetryConc = config.DefaultRetryBudgetPercent, config.DefaultMinRetryConcurrency
		if rb.BudgetPercent != nil {
			b.budgetPct = *rb.BudgetPercent
		}
		if rb.MinRetryConcurrency != nil {
			b.minRetryConc = int64(*rb.MinRetryConcurrency)
		}
	}
	if st == nil {
		st = &BreakerStats{Cluster: stats.MustNewNullStore().ClusterStats("")}
	}
	b.cs = st.Cluster
	if cfg.TrackRemaining {
		b.rem = st.Remaining
	}
	// Start every gauge from its true value: a limit of 0 is open at once,
	// and the remaining gauges start at their maximum, as in Envoy.
	b.syncCx()
	b.syncPending()
	b.syncRq()
	b.syncRetries()
	// hopwatch has no max_connection_pools (one pool per host), so
	// the connection pool breaker is never open. Set, it is reported
	// like the other breakers' gauges (a gauge never set is not
	// flushed), so dashboards that chart it read 0, as on Envoy.
	b.cs.CircuitBreakers.CxPoolOpen.Set(0)
	return b
}

// tryTake adds one to n unless that would exceed limit.
func tryTake(n *atomic.Int64, limit int64) bool {
	for {
		v := n.Load()
		if v >= limit {
			return false
		}
		if n.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// AcquireRequest takes a request slot (max_requests) for one upstream
// attempt. When none is left it counts upstream_rq_pending_overflow (where
// Envoy counts a request overflow) and returns false: the caller answers
// 503 with flag UO. A successful call must be paired with ReleaseRequest.
func (b *Breaker) AcquireRequest() bool {
	if !tryTake(&b.rq, b.maxRq) {
		b.cs.UpstreamRqPendingOverflow.Inc()
		return false
	}
	b.syncRq()
	return true
}

// ReleaseRequest returns the slot of a finished attempt.
func (b *Breaker) ReleaseRequest() {
	b.rq.Add(-1)
	b.syncRq()
}

// AcquireRetry takes a retry slot (max_retries, or the retry budget) for a
// retry about to be scheduled; the slot is held through the backoff and
// the retried attempt. When none is left it counts the cluster's
// upstream_rq_retry_overflow and returns false: the retry is not made. A
// successful call must be paired with ReleaseRetry.
func (b *Breaker) AcquireRetry() bool {
	if !tryTake(&b.retries, b.retryLimit()) {
		b.cs.UpstreamRqRetryOverflow.Inc()
		b.syncRetries()
		return false
	}
	b.syncRetries()
	return true
}

// ReleaseRetry returns a retry slot.
func (b *Breaker) ReleaseRetry() {
	b.retries.Add(-1)
	b.syncRetries()
}

// retryLimit is max_retries, or under a retry budget Envoy's
// max(min_retry_concurrency, budget_percent% of active and pending
// requests), truncated as Envoy converts it. A pending request holds its
// request slot while it waits, so the requests in flight already count the
// pending ones.
func (b *Breaker) retryLimit() int64 {
	if !b.budget {
		return b.maxRetries
	}
	return max(int64(b.budgetPct/100*float64(b.rq.Load())), b.minRetryConc)
}

// Counts returns the resources in use: connections, pending requests,
// requests and retries. For tests and the admin page.
func (b *Breaker) Counts() (cx, pending, rq, retries int64) {
	return b.cx.Load(), b.pending.Load(), b.rq.Load(), b.retries.Load()
}

// The sync* methods set a resource's gauges from its count. Two goroutines
// changing a count at once could write their gauges in the wrong order, so
// each writer reads the count again after writing and writes again if it
// moved: the goroutine that changes the count last also writes last, so
// the gauges are exact whenever the count rests.

func (b *Breaker) syncCx() {
	for {
		n := b.cx.Load()
		b.cs.CircuitBreakers.CxOpen.Set(open(n, b.maxCx))
		if b.rem != nil {
			b.rem.RemainingCx.Set(remaining(n, b.maxCx))
		}
		if b.cx.Load() == n {
			return
		}
	}
}

func (b *Breaker) syncPending() {
	for {
		n := b.pending.Load()
		b.cs.CircuitBreakers.RqPendingOpen.Set(open(n, b.maxPending))
		if b.rem != nil {
			b.rem.RemainingPending.Set(remaining(n, b.maxPending))
		}
		if b.pending.Load() == n {
			return
		}
	}
}

func (b *Breaker) syncRq() {
	for {
		n := b.rq.Load()
		b.cs.CircuitBreakers.RqOpen.Set(open(n, b.maxRq))
		if b.rem != nil {
			b.rem.RemainingRq.Set(remaining(n, b.maxRq))
		}
		if b.rq.Load() == n {
			return
		}
	}
}

// syncRetries sets rq_retry_open against the limit of the moment; under a
// retry budget that limit moves with the requests in flight, so the gauge
// is as of the last retry taken or returned, and remaining_retries stays 0
// (Envoy does not track it either).
func (b *Breaker) syncRetries() {
	for {
		n := b.retries.Load()
		limit := b.retryLimit()
		b.cs.CircuitBreakers.RqRetryOpen.Set(open(n, limit))
		if b.rem != nil {
			if b.budget {
				b.rem.RemainingRetries.Set(0)
			} else {
				b.rem.RemainingRetries.Set(remaining(n, limit))
			}
		}
		if b.retries.Load() == n {
			return
		}
	}
}

func open(n, limit int64) uint64 {
	if n >= limit {
		return 1
	}
	return 0
}

func remaining(n, limit int64) uint64 { return uint64(max(limit-n, 0)) }

// connWait is one dial's claim on the connection breaker: the pending
// request it dials for and, while it waits, its place in the queue.
type connWait struct {
	b *Breaker
	// pending is true while the dial counts in upstream_rq_pending_active;
	// whoever swaps it to false ends the pending request.
	pending atomic.Bool
	state   atomic.Int32 // one of the wait* states
	ch      chan struct{}
	// addr and pool are where the dial goes and the transport's own pool
	// (nil for net/http's): an idle connection to addr in pool may end the
	// wait (gaveWay), see idlePool.
	addr     string
	pool     idlePool
	gaveWay  atomic.Bool
	released atomic.Bool
	// handoff is the idle connection handIdle gave the dial (under b.mu).
	handoff any
}

// States of a connWait.
const (
	waitNone      int32 = iota // not queued
	waitQueued                 // in b.waiters
	waitGranted                // a closing connection handed over its slot
	waitAbandoned              // the dial gave up
)

// acquireConn claims a connection slot for a dial to addr that is about to
// be made, first counting the request it is made for as pending. Beyond
// max_pending_requests it returns ErrOverflow. At max_connections it
// waits until a connection closes and hands over its slot, or until the
// request no longer needs the dial: it got a connection another way
// (errAbandoned), its transport's pool has an idle connection to addr for
// it (errIdleConn), or ctx ended. On success the caller must call ready or
// failed, and conn wraps the connection so that closing it frees the slot.
func (b *Breaker) acquireConn(ctx context.Context, addr string) (*connWait, error) {
	w := &connWait{b: b, addr: addr}
	w.pool, _ = ctx.Value(idlePoolKey{}).(idlePool)
	tk, _ := ctx.Value(ticketKey{}).(*pendingTicket)
	if tk != nil && !tk.wanting() {
		// The request has its connection already, or has ended: Go's
		// transport still finishes the dial to pool the connection, which
		// is fine if it costs no wait.
		return w, b.takeCxNow(w)
	}
	if !tryTake(&b.pending, b.maxPending) {
		b.cs.UpstreamRqPendingOverflow.Inc()
		b.syncPending()
		return nil, ErrOverflow
	}
	w.pending.Store(true)
	b.cs.UpstreamRqPendingTotal.Inc()
	b.cs.UpstreamRqPendingActive.Inc()
	b.syncPending()
	if tk != nil && !tk.add(w) {
		w.endPending()
		return w, b.takeCxNow(w)
	}
	if tryTake(&b.cx, b.maxCx) {
		b.syncCx()
		return w, nil
	}
	b.cs.UpstreamCxOverflow.Inc()
	w.ch = make(chan struct{}, 1)
	b.mu.Lock()
	// Count the waiter before the last try, so that a connection closing
	// between the try and the queueing sees it (see releaseCx).
	b.nwait.Add(1)
	if tryTake(&b.cx, b.maxCx) {
		b.nwait.Add(-1)
		b.mu.Unlock()
		b.syncCx()
		return w, nil
	}
	w.state.Store(waitQueued)
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	b.syncCx()
	// A connection that turned idle just before w was queued was not
	// offered to it (see handIdle): look once.
	if w.pool != nil && w.pool.hasIdle(addr) {
		w.gaveWay.Store(true)
		if b.abandon(w) {
			w.endPending()
			return nil, errIdleConn
		}
	}

	select {
	case <-w.ch:
	case <-ctx.Done():
	}
	if b.abandon(w) {
		w.endPending()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, errAbandoned
	}
	if w.state.Load() == waitGranted {
		// A closed connection's slot is ours.
		if err := ctx.Err(); err != nil {
			w.failed()
			return nil, err
		}
		return w, nil
	}
	// Abandoned by the ticket or in favour of an idle connection.
	w.endPending()
	b.mu.Lock()
	handoff := w.handoff
	b.mu.Unlock()
	switch {
	case handoff != nil:
		// The connection is the request's now, even if ctx ended: its
		// exchange fails at once and closes it.
		return nil, &idleHandoff{conn: handoff}
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case w.gaveWay.Load():
		return nil, errIdleConn
	}
	return nil, errAbandoned
}

// takeCxNow takes a slot for a dial nobody waits for, or refuses it.
func (b *Breaker) takeCxNow(w *connWait) error {
	if !tryTake(&b.cx, b.maxCx) {
		return errAbandoned
	}
	w.state.Store(waitGranted)
	b.syncCx()
	return nil
}

// abandon takes w out of the queue if it is still waiting and reports
// whether it did; false means a slot was granted to w, or w was abandoned
// already.
func (b *Breaker) abandon(w *connWait) bool {
	if !w.state.CompareAndSwap(waitQueued, waitAbandoned) {
		return false
	}
	b.mu.Lock()
	for i, q := range b.waiters {
		if q == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.nwait.Add(-1)
			break
		}
	}
	b.mu.Unlock()
	select {
	case w.ch <- struct{}{}:
	default:
	}
	return true
}

// handIdle offers a connection that the transport's pool takes back
// idle, to addr, to the oldest dial to addr waiting for a slot, and
// reports whether one took it: that dial returns an *idleHandoff with the
// connection, first come first served, as a pending request gets the next
// free connection in Envoy. It costs one atomic load when nobody waits, so
// the pool offers every connection it takes back.
func (b *Breaker) handIdle(addr string, conn any) bool {
	if b == nil || b.nwait.Load() == 0 {
		return false
	}
	b.mu.Lock()
	for i, w := range b.waiters {
		if w.pool == nil || w.addr != addr || !w.state.CompareAndSwap(waitQueued, waitAbandoned) {
			continue
		}
		w.handoff = conn
		b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
		b.nwait.Add(-1)
		b.mu.Unlock()
		w.ch <- struct{}{}
		return true
	}
	b.mu.Unlock()
	return false
}

// connIdle tells the breaker that the transport's pool has just put a
// connection to addr among its idle ones (handIdle found no taker, but a
// dial may have started waiting since): the oldest dial to addr waiting
// for a slot gives way (errIdleConn), and its transport looks in the pool
// again. With the pool's own check after a dial queues (acquireConn), a
// connection turning idle and a dial starting to wait cannot miss each
// other.
func (b *Breaker) connIdle(addr string) {
	if b == nil || b.nwait.Load() == 0 {
		return
	}
	for {
		b.mu.Lock()
		var w *connWait
		for _, q := range b.waiters {
			if q.pool != nil && q.addr == addr && q.state.Load() == waitQueued {
				w = q
				break
			}
		}
		b.mu.Unlock()
		if w == nil {
			return
		}
		w.gaveWay.Store(true)
		if b.abandon(w) {
			return
		}
		// w was granted a slot meanwhile; the next waiter may want the
		// idle connection.
	}
}

// releaseCx returns a connection slot, handing it to the oldest waiting
// dial if there is one.
func (b *Breaker) releaseCx() {
	b.cx.Add(-1)
	if b.nwait.Load() > 0 {
		b.grant()
	}
	b.syncCx()
}

// grant hands free slots to waiting dials, oldest first.
func (b *Breaker) grant() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if w.state.Load() != waitQueued {
			b.popWaiter()
			continue
		}
		if !tryTake(&b.cx, b.maxCx) {
			return
		}
		if w.state.CompareAndSwap(waitQueued, waitGranted) {
			b.popWaiter()
			w.ch <- struct{}{}
			continue
		}
		b.cx.Add(-1) // w was abandoned meanwhile; try the next one
	}
}

func (b *Breaker) popWaiter() {
	b.waiters[0] = nil
	b.waiters = b.waiters[1:]
	b.nwait.Add(-1)
}

// endPending ends the request's pending state, once.
func (w *connWait) endPending() {
	if w.pending.CompareAndSwap(true, false) {
		b := w.b
		b.pending.Add(-1)
		b.cs.UpstreamRqPendingActive.Dec()
		b.syncPending()
	}
}

// ready reports that the dial connected: the request is no longer pending.
// Like failed and conn, it does nothing on a nil connWait (a dial outside
// the breakers).
func (w *connWait) ready() {
	if w != nil {
		w.endPending()
	}
}

// failed reports that the dial failed: the slot is free again.
func (w *connWait) failed() {
	if w != nil {
		w.endPending()
		w.release()
	}
}

// release frees the slot, once, whether the dial failed or its connection
// closed.
func (w *connWait) release() {
	if w.released.CompareAndSwap(false, true) {
		w.b.releaseCx()
	}
}

// conn wraps an established connection so that closing it frees its slot.
func (w *connWait) conn(c net.Conn) net.Conn {
	if w == nil {
		return c
	}
	return &breakerConn{Conn: c, w: w}
}

// breakerConn holds a connection slot until it is closed.
type breakerConn struct {
	net.Conn
	w *connWait
}

// Close closes the connection and frees its slot.
func (c *breakerConn) Close() error {
	err := c.Conn.Close()
	c.w.release()
	return err
}

// NetConn returns the wrapped connection, so that the HTTP/1.1 client can
// reach the socket beneath (it peeks at idle connections before reuse).
func (c *breakerConn) NetConn() net.Conn { return c.Conn }

// ticketKey is the context key of a request's pendingTicket.
type ticketKey struct{}

// pendingTicket tells the dialer whether the request a dial is made for
// still needs it. Go's http.Transport dials on a goroutine of its own with
// a context detached from the request, and hands a waiting request any
// connection that turns idle meanwhile; without the ticket a dial waiting
// for a slot could not tell that its request was served, or gone, and
// would keep the request counted as pending. The ticket follows the
// request through httptrace: GetConn when the transport starts looking for
// a connection, GotConn when it has one.
type pendingTicket struct {
	gets, gots atomic.Int32
	closed     atomic.Bool
	mu         sync.Mutex
	waits      []*connWait
	trace      httptrace.ClientTrace
}

func newPendingTicket() *pendingTicket {
	t := &pendingTicket{}
	t.trace.GetConn = func(string) { t.gets.Add(1) }
	t.trace.GotConn = func(httptrace.GotConnInfo) {
		t.gots.Add(1)
		t.release()
	}
	return t
}

// wanting reports whether the request still waits for a connection. A
// transport that reports no GetConn is taken to want its dials until the
// request ends.
func (t *pendingTicket) wanting() bool {
	if t.closed.Load() {
		return false
	}
	gets := t.gets.Load()
	return gets == 0 || gets > t.gots.Load()
}

// add registers a dial made for the request, unless the request has its
// connection already. The check and the append are under t.mu, which
// release takes after the request's state changed, so a dial is either
// registered in time to be released or told not to wait.
func (t *pendingTicket) add(w *connWait) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.wanting() {
		return false
	}
	t.waits = append(t.waits, w)
	return true
}

// release ends the pending state of the request's dials and abandons those
// still waiting for a slot: the request has a connection, or has ended.
func (t *pendingTicket) release() {
	t.mu.Lock()
	ws := t.waits
	t.waits = nil
	t.mu.Unlock()
	for _, w := range ws {
		w.endPending()
		w.b.abandon(w)
	}
}

// close marks the request finished with its transport.
func (t *pendingTicket) close() {
	t.closed.Store(true)
	t.release()
}

// ticketTransport is a net/http Transport that gives every request a
// pendingTicket, so that the cluster's dialer can count and bound the
// request's wait for a connection exactly.
type ticketTransport struct {
	*http.Transport
}

// RoundTrip implements http.RoundTripper.
func (t ticketTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tk := newPendingTicket()
	ctx := httptrace.WithClientTrace(context.WithValue(req.Context(), ticketKey{}, tk), &tk.trace)
	res, err := t.Transport.RoundTrip(req.WithContext(ctx))
	tk.close()
	return res, err
}

// idlePool is a transport that pools its connections itself and hands them
// out on the requesting goroutine (the HTTP/1.1 client, http1.go). Such a
// pool never gives a connection to a request that is inside a dial, so a
// dial that waits for a slot while the pool holds idle connections to its
// address would wait for nothing. So the pool offers every connection it
// takes back to the waiting dials first (Breaker.handIdle); one that no
// dial took goes idle and wakes a dial that started waiting meanwhile
// (Breaker.connIdle); and a dial that starts waiting asks the pool once
// (hasIdle).
type idlePool interface {
	// hasIdle reports whether the pool holds an idle connection to addr.
	hasIdle(addr string) bool
}

// idlePoolKey is the context key of the idlePool a dial is made for.
type idlePoolKey struct{}

// withIdlePool marks ctx as a dial for pool: a wait for a connection slot
// gives way (errIdleConn) to a connection the pool has idle.
func withIdlePool(ctx context.Context, pool idlePool) context.Context {
	return context.WithValue(ctx, idlePoolKey{}, pool)
}

// Breaker returns the cluster's circuit breakers.
func (c *Cluster) Breaker() *Breaker { return c.breaker }

// breakerStats picks the stats the cluster's breaker keeps. c.stats must
// be set and opts must have its stats functions (withNullStats).
func (c *Cluster) breakerStats(cfg *config.Cluster, opts Options) *BreakerStats {
	st := &BreakerStats{Cluster: c.stats}
	if cb := cfg.CircuitBreakers; cb != nil && cb.TrackRemaining {
		st.Remaining = opts.CircuitBreakerRemainingStats(cfg.Name)
	}
	return st
}

// cloneCircuitBreakers deep-copies a circuit_breakers block.
func cloneCircuitBreakers(cb *config.CircuitBreakers) *config.CircuitBreakers {
	if cb == nil {
		return nil
	}
	out := *cb
	if rb := cb.RetryBudget; rb != nil {
		r := *rb
		if rb.BudgetPercent != nil {
			p := *rb.BudgetPercent
			r.BudgetPercent = &p
		}
		if rb.MinRetryConcurrency != nil {
			n := *rb.MinRetryConcurrency
			r.MinRetryConcurrency = &n
		}
		out.RetryBudget = &r
	}
	return &out
}
