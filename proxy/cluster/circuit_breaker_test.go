package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// breakerStore returns a stats store and the stats a breaker of cluster c
// keeps in it.
func breakerStore(t *testing.T) (*stats.Store, *BreakerStats) {
	t.Helper()
	s, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s, &BreakerStats{Cluster: s.ClusterStats("c"), Remaining: s.CircuitBreakerRemainingStats("c")}
}

func TestBreakerRequests(t *testing.T) {
	for _, tt := range []struct {
		max, concurrent int
	}{{0, 5}, {1, 1}, {1, 8}, {5, 20}, {20, 5}} {
		t.Run(fmt.Sprintf("max%d_of_%d", tt.max, tt.concurrent), func(t *testing.T) {
			_, st := breakerStore(t)
			b := newBreaker(&config.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: tt.max, MaxRetries: 1, TrackRemaining: true}, st)
			var ok atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range tt.concurrent {
				wg.Go(func() {
					<-start
					if b.AcquireRequest() {
						ok.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			want := min(tt.max, tt.concurrent)
			cb, cs := st.Cluster.CircuitBreakers, st.Cluster
			if got := int(ok.Load()); got != want {
				t.Fatalf("%d requests admitted, want %d", got, want)
			}
			if got := cs.UpstreamRqPendingOverflow.Value(); got != uint64(tt.concurrent-want) {
				t.Errorf("upstream_rq_pending_overflow = %d, want %d", got, tt.concurrent-want)
			}
			wantOpen := uint64(0)
			if want == tt.max {
				wantOpen = 1
			}
			if cb.RqOpen.Value() != wantOpen || st.Remaining.RemainingRq.Value() != uint64(tt.max-want) {
				t.Errorf("rq_open = %d, remaining_rq = %d; want %d, %d", cb.RqOpen.Value(), st.Remaining.RemainingRq.Value(), wantOpen, tt.max-want)
			}
			for range want {
				b.ReleaseRequest()
			}
			if _, _, rq, _ := b.Counts(); rq != 0 {
				t.Errorf("requests after release = %d", rq)
			}
			if tt.max > 0 && (cb.RqOpen.Value() != 0 || st.Remaining.RemainingRq.Value() != uint64(tt.max)) {
				t.Errorf("after release: rq_open = %d, remaining_rq = %d", cb.RqOpen.Value(), st.Remaining.RemainingRq.Value())
			}
		})
	}
}

func TestBreakerRetryLimit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cb     config.CircuitBreakers
		active int // requests in flight
		want   int // retries admitted
	}{
		{"max_retries", config.CircuitBreakers{MaxRetries: 3}, 100, 3},
		{"max_retries 0", config.CircuitBreakers{MaxRetries: 0}, 10, 0},
		{"budget floor when idle", config.CircuitBreakers{MaxRetries: 1, RetryBudget: &config.RetryBudget{}}, 0, 3},
		{"budget 20% of 100", config.CircuitBreakers{MaxRetries: 1, RetryBudget: &config.RetryBudget{}}, 100, 20},
		{"budget 20% of 14 is below the floor", config.CircuitBreakers{RetryBudget: &config.RetryBudget{}}, 14, 3},
		{"budget truncates", config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: ptrTo(25.0), MinRetryConcurrency: ptrTo(0)}}, 10, 2},
		{"budget 0% leaves the floor", config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: ptrTo(0.0), MinRetryConcurrency: ptrTo(5)}}, 50, 5},
		{"budget 100%", config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: ptrTo(100.0), MinRetryConcurrency: ptrTo(1)}}, 7, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, st := breakerStore(t)
			tt.cb.MaxRequests = 1000
			tt.cb.TrackRemaining = true
			b := newBreaker(&tt.cb, st)
			for range tt.active {
				if !b.AcquireRequest() {
					t.Fatal("request refused")
				}
			}
			got := 0
			for b.AcquireRetry() {
				got++
				if got > 1000 {
					t.Fatal("no retry limit")
				}
			}
			if got != tt.want {
				t.Errorf("%d retries admitted, want %d", got, tt.want)
			}
			cs := st.Cluster
			if cs.UpstreamRqRetryOverflow.Value() != 1 || cs.CircuitBreakers.RqRetryOpen.Value() != 1 {
				t.Errorf("upstream_rq_retry_overflow = %d, rq_retry_open = %d; want 1, 1", cs.UpstreamRqRetryOverflow.Value(), cs.CircuitBreakers.RqRetryOpen.Value())
			}
			if tt.cb.RetryBudget != nil && st.Remaining.RemainingRetries.Value() != 0 {
				t.Errorf("remaining_retries = %d under a budget, want 0 (as Envoy)", st.Remaining.RemainingRetries.Value())
			}
			for range got {
				b.ReleaseRetry()
			}
			if tt.want > 0 && cs.CircuitBreakers.RqRetryOpen.Value() != 0 {
				t.Errorf("rq_retry_open = %d after release", cs.CircuitBreakers.RqRetryOpen.Value())
			}
		})
	}
}

// TestBreakerConcurrentInvariants hammers requests and retries from many
// goroutines (run it with -race): no limit is ever exceeded, and once all
// is released every count and gauge is back at rest, whatever order the
// gauge writes raced in.
func TestBreakerConcurrentInvariants(t *testing.T) {
	_, st := breakerStore(t)
	const maxRq, maxRetries = 7, 3
	b := newBreaker(&config.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: maxRq, MaxRetries: maxRetries, TrackRemaining: true}, st)
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 400 {
				if b.AcquireRequest() {
					admitted.Add(1)
					if _, _, rq, _ := b.Counts(); rq > maxRq {
						t.Errorf("requests = %d > %d", rq, maxRq)
					}
					if (g+i)%3 == 0 && b.AcquireRetry() {
						if _, _, _, r := b.Counts(); r > maxRetries {
							t.Errorf("retries = %d > %d", r, maxRetries)
						}
						b.ReleaseRetry()
					}
					b.ReleaseRequest()
				} else {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if admitted.Load()+refused.Load() != 8*400 {
		t.Fatalf("admitted %d + refused %d != %d", admitted.Load(), refused.Load(), 8*400)
	}
	if got := st.Cluster.UpstreamRqPendingOverflow.Value(); got != uint64(refused.Load()) {
		t.Errorf("upstream_rq_pending_overflow = %d, refused %d", got, refused.Load())
	}
	cx, pending, rq, retries := b.Counts()
	if cx != 0 || pending != 0 || rq != 0 || retries != 0 {
		t.Errorf("counts at rest = %d %d %d %d", cx, pending, rq, retries)
	}
	cb, rem := st.Cluster.CircuitBreakers, st.Remaining
	if cb.RqOpen.Value() != 0 || cb.RqRetryOpen.Value() != 0 || rem.RemainingRq.Value() != maxRq || rem.RemainingRetries.Value() != maxRetries {
		t.Errorf("gauges at rest: rq_open %d rq_retry_open %d remaining_rq %d remaining_retries %d",
			cb.RqOpen.Value(), cb.RqRetryOpen.Value(), rem.RemainingRq.Value(), rem.RemainingRetries.Value())
	}
}

func TestBreakerStatsOff(t *testing.T) {
	b := newBreaker(nil, nil)
	if !b.AcquireRequest() || !b.AcquireRetry() {
		t.Fatal("defaults refused a request or retry")
	}
	b.ReleaseRetry()
	b.ReleaseRequest()
	if b.maxCx != 1024 || b.maxPending != 1024 || b.maxRq != 1024 || b.maxRetries != 3 {
		t.Errorf("defaults = %d %d %d %d", b.maxCx, b.maxPending, b.maxRq, b.maxRetries)
	}
}

// gatedServer is an upstream whose requests block until released by path:
// Release("/a") lets the request for /a answer. It counts connections.
type gatedServer struct {
	*e2etest.Gate
	srv   *httptest.Server
	conns atomic.Int64
}

func newGatedServer(t *testing.T) *gatedServer {
	t.Helper()
	g := &gatedServer{Gate: e2etest.NewGate()}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.Wait(r) {
			_, _ = io.WriteString(w, r.URL.Path)
		}
	}))
	g.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			g.conns.Add(1)
		}
	}
	g.srv.Start()
	t.Cleanup(func() {
		g.ReleaseAll()
		g.srv.Close()
	})
	return g
}

func (g *gatedServer) addr() string { return g.srv.Listener.Addr().String() }

// result is what one request through a transport came to.
type result struct {
	body string
	err  error
}

// send starts a GET of path through rt and delivers its result.
func send(ctx context.Context, rt http.RoundTripper, addr, path string) <-chan result {
	out := make(chan result, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			out <- result{err: err}
			return
		}
		res, err := rt.RoundTrip(req)
		if err != nil {
			out <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		out <- result{body: string(b), err: err}
	}()
	return out
}

func wantBody(t *testing.T, ch <-chan result, body string) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil || r.body != body {
			t.Fatalf("result = %q, %v; want %q", r.body, r.err, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no response for %s", body)
	}
}

func wantErr(t *testing.T, ch <-chan result, target error) {
	t.Helper()
	select {
	case r := <-ch:
		if !errors.Is(r.err, target) {
			t.Fatalf("result = %q, %v; want error %v", r.body, r.err, target)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no result, want error %v", target)
	}
}

// waiting returns how many dials wait for a connection slot.
func (b *Breaker) waiting() int64 { return b.nwait.Load() }

// TestConnectionLimitHTTP1 drives the cluster's own HTTP/1.1 client against
// max_connections 2 and max_pending_requests 2 over real sockets: a third
// request waits for a connection, a fifth is refused at once, a waiting
// request whose context ends leaves the queue, and a connection that
// turns idle is handed to the oldest waiting request instead of a new
// connection being opened.
func TestConnectionLimitHTTP1(t *testing.T) {
	up := newGatedServer(t)
	store, _ := breakerStore(t)
	cfg := config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: up.addr()}},
		CircuitBreakers: &config.CircuitBreakers{MaxConnections: 2, MaxPendingRequests: 2, MaxRequests: 100, MaxRetries: 3, TrackRemaining: true}}
	m := newTestManager(t, Options{ClusterStats: store.ClusterStats, CircuitBreakerRemainingStats: store.CircuitBreakerRemainingStats}, cfg)
	c := m.Get("c")
	b, rt := c.Breaker(), c.Transport()
	cs, rem := store.ClusterStats("c"), store.CircuitBreakerRemainingStats("c")

	a := send(context.Background(), rt, up.addr(), "/a")
	bb := send(context.Background(), rt, up.addr(), "/b")
	waitUntil(t, "a and b reach the upstream", func() bool { return up.Arrived("/a") > 0 && up.Arrived("/b") > 0 })
	if cs.CircuitBreakers.CxOpen.Value() != 1 || rem.RemainingCx.Value() != 0 {
		t.Errorf("cx_open = %d, remaining_cx = %d with 2 of 2 connections", cs.CircuitBreakers.CxOpen.Value(), rem.RemainingCx.Value())
	}

	cc := send(context.Background(), rt, up.addr(), "/c")
	waitUntil(t, "c waits for a connection", func() bool { return b.waiting() == 1 })
	ctxE, cancelE := context.WithCancel(context.Background())
	e := send(ctxE, rt, up.addr(), "/e")
	waitUntil(t, "e waits for a connection", func() bool { return b.waiting() == 2 })
	if cs.UpstreamRqPendingActive.Value() != 2 || cs.CircuitBreakers.RqPendingOpen.Value() != 1 || rem.RemainingPending.Value() != 0 {
		t.Errorf("pending_active = %d, rq_pending_open = %d, remaining_pending = %d; want 2, 1, 0",
			cs.UpstreamRqPendingActive.Value(), cs.CircuitBreakers.RqPendingOpen.Value(), rem.RemainingPending.Value())
	}
	wantErr(t, send(context.Background(), rt, up.addr(), "/d"), ErrOverflow)

	cancelE()
	wantErr(t, e, context.Canceled)
	waitUntil(t, "e leaves the queue", func() bool { return b.waiting() == 1 })

	up.Release("/a")
	wantBody(t, a, "/a")
	waitUntil(t, "c gets a's connection", func() bool { return up.Arrived("/c") > 0 })
	up.Release("/c")
	wantBody(t, cc, "/c")
	up.Release("/b")
	wantBody(t, bb, "/b")

	if got := up.conns.Load(); got != 2 {
		t.Errorf("upstream saw %d connections, want 2: c must reuse a's", got)
	}
	for _, s := range []struct {
		name      string
		got, want uint64
	}{
		{"upstream_rq_pending_total", cs.UpstreamRqPendingTotal.Value(), 4},       // a, b, c, e
		{"upstream_rq_pending_overflow", cs.UpstreamRqPendingOverflow.Value(), 1}, // d
		{"upstream_rq_pending_active", cs.UpstreamRqPendingActive.Value(), 0},
		{"upstream_cx_overflow", cs.UpstreamCxOverflow.Value(), 2}, // c, e
		{"rq_pending_open", cs.CircuitBreakers.RqPendingOpen.Value(), 0},
		{"remaining_pending", rem.RemainingPending.Value(), 2},
		{"cx_open (two idle connections)", cs.CircuitBreakers.CxOpen.Value(), 1},
	} {
		if s.got != s.want {
			t.Errorf("%s = %d, want %d", s.name, s.got, s.want)
		}
	}
	if cx, pending, _, _ := b.Counts(); cx != 2 || pending != 0 {
		t.Errorf("connections %d, pending %d; want 2, 0", cx, pending)
	}

	// Closing the pool frees every slot.
	c.transport.CloseIdleConnections()
	waitUntil(t, "the idle connections' slots are free", func() bool { cx, _, _, _ := b.Counts(); return cx == 0 })
	if cs.CircuitBreakers.CxOpen.Value() != 0 || rem.RemainingCx.Value() != 2 {
		t.Errorf("cx_open = %d, remaining_cx = %d with no connections", cs.CircuitBreakers.CxOpen.Value(), rem.RemainingCx.Value())
	}
}

// TestGoTransportDialBehaviour pins the net/http Transport behaviour that
// the pending tickets are built for (Go 1.23 and later): a request whose
// dial blocks takes a connection that turns idle meanwhile, and a request
// cancelled during its dial does not cancel the dial, whose connection
// then goes to the pool.
func TestGoTransportDialBehaviour(t *testing.T) {
	up := newGatedServer(t)
	var dials atomic.Int64
	entered := make(chan context.Context, 4)
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			entered <- ctx
			<-unblock
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)

	a := send(context.Background(), tr, up.addr(), "/a")
	waitUntil(t, "a reaches the upstream", func() bool { return up.Arrived("/a") > 0 })
	bb := send(context.Background(), tr, up.addr(), "/b")
	<-entered // b's dial blocks
	up.Release("/a")
	wantBody(t, a, "/a")
	up.Release("/b")
	wantBody(t, bb, "/b") // served on a's connection while its own dial still blocks

	// A cancelled request leaves its dial running, uncancelled.
	busy := send(context.Background(), tr, up.addr(), "/busy")
	waitUntil(t, "busy reaches the upstream", func() bool { return up.Arrived("/busy") > 0 })
	ctx, cancel := context.WithCancel(context.Background())
	cc := send(ctx, tr, up.addr(), "/c")
	dialCtx := <-entered
	cancel()
	wantErr(t, cc, context.Canceled)
	if dialCtx.Err() != nil {
		t.Fatalf("the dial's context ended with its request: %v; the pending ticket design assumes it does not", dialCtx.Err())
	}
	release()
	up.Release("/busy")
	wantBody(t, busy, "/busy")
}

// TestConnectionLimitGoTransport checks the pending tickets on net/http's
// Transport (used for HTTP/2, h2c and upgrades): with max_connections 1, a
// request waiting for a slot that is handed the idle connection stops
// being pending at once and its dial gives up, so no second connection is
// made; a waiting request that is cancelled leaves the queue.
func TestConnectionLimitGoTransport(t *testing.T) {
	up := newGatedServer(t)
	store, st := breakerStore(t)
	cfg := &config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: up.addr()}}}
	spec, err := newTransport(cfg, nil, func(a string) string { return a })
	if err != nil {
		t.Fatal(err)
	}
	b := newBreaker(&config.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 5, MaxRequests: 100, MaxRetries: 3}, st)
	spec.dialer.breaker = b
	rt := ticketTransport{spec.transport}
	t.Cleanup(rt.CloseIdleConnections)
	cs := store.ClusterStats("c")

	a := send(context.Background(), rt, up.addr(), "/a")
	waitUntil(t, "a reaches the upstream", func() bool { return up.Arrived("/a") > 0 })
	bb := send(context.Background(), rt, up.addr(), "/b")
	waitUntil(t, "b waits for a connection", func() bool { return b.waiting() == 1 })
	up.Release("/a")
	wantBody(t, a, "/a")
	waitUntil(t, "b gets a's connection and its dial gives up", func() bool { return b.waiting() == 0 && up.Arrived("/b") > 0 })
	if got := cs.UpstreamRqPendingActive.Value(); got != 0 {
		t.Errorf("upstream_rq_pending_active = %d while b is served, want 0", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cc := send(ctx, rt, up.addr(), "/c")
	waitUntil(t, "c waits for a connection", func() bool { return b.waiting() == 1 })
	cancel()
	wantErr(t, cc, context.Canceled)
	waitUntil(t, "c's dial leaves the queue", func() bool { return b.waiting() == 0 })

	up.Release("/b")
	wantBody(t, bb, "/b")
	if got := up.conns.Load(); got != 1 {
		t.Errorf("upstream saw %d connections, want 1", got)
	}
	_, pending, _, _ := b.Counts()
	if pending != 0 || cs.UpstreamRqPendingActive.Value() != 0 || cs.UpstreamRqPendingTotal.Value() != 3 || cs.UpstreamCxOverflow.Value() != 2 {
		t.Errorf("pending %d, pending_active %d, pending_total %d (want 3), cx_overflow %d (want 2)",
			pending, cs.UpstreamRqPendingActive.Value(), cs.UpstreamRqPendingTotal.Value(), cs.UpstreamCxOverflow.Value())
	}
}

// TestFailedDialsFreeTheirSlot checks that a refused connection and a
// failed TLS handshake (whose TCP connection is closed on the way) each
// free their slot exactly once.
func TestFailedDialsFreeTheirSlot(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(plain.Close)
	for _, tt := range []struct {
		name string
		cfg  config.Cluster
	}{
		{"connection refused", config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: closedPort(t)}}}},
		{"tls handshake", config.Cluster{Name: "c", TLS: &config.UpstreamTLS{}, Endpoints: []config.Endpoint{{Address: plain.Listener.Addr().String()}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CircuitBreakers = &config.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 10, MaxRetries: 1}
			c := newTestManager(t, Options{}, tt.cfg).Get("c")
			for i := range 3 {
				_, _, err := roundTrip(t, c)
				var ce *ConnectError
				if !errors.As(err, &ce) {
					t.Fatalf("request %d: err = %v, want a ConnectError (not an overflow)", i, err)
				}
			}
			if cx, pending, _, _ := c.Breaker().Counts(); cx != 0 || pending != 0 {
				t.Errorf("connections %d, pending %d after failed dials; want 0, 0", cx, pending)
			}
		})
	}
}

// TestIdlePoolEndsDialWaits covers the ways a dial waiting for a slot on
// behalf of a self-pooling transport (the HTTP/1.1 client) ends without a
// slot: a connection handed over as it goes back to the pool, a connection
// gone idle that the dial should look for, one that was idle already when
// the wait began, and a cancelled request. A connection to another address
// never ends the wait.
func TestIdlePoolEndsDialWaits(t *testing.T) {
	const addr, other = "10.0.0.1:80", "10.0.0.2:80"
	for _, tt := range []struct {
		name    string
		idle    bool // the pool has an idle connection when the wait begins
		wake    func(b *Breaker, cancel func())
		want    error  // errors.Is target; nil: an idleHandoff
		handoff string // the handed connection
	}{
		{"handed over", false, func(b *Breaker, _ func()) {
			if b.handIdle(other, "other") {
				t.Error("a connection to another address was handed over")
			}
			if !b.handIdle(addr, "mine") {
				t.Error("the connection was not handed over")
			}
		}, nil, "mine"},
		{"went idle", false, func(b *Breaker, _ func()) {
			b.connIdle(other)
			if b.waiting() != 1 {
				t.Error("a connection to another address ended the wait")
			}
			b.connIdle(addr)
		}, errIdleConn, ""},
		{"idle already", true, nil, errIdleConn, ""},
		{"cancelled", false, func(b *Breaker, cancel func()) { cancel() }, context.Canceled, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, st := breakerStore(t)
			b := newBreaker(&config.CircuitBreakers{MaxConnections: 0, MaxPendingRequests: 2, MaxRequests: 10}, st)
			ctx, cancel := context.WithCancel(withIdlePool(context.Background(), fakePool{idle: tt.idle}))
			defer cancel()
			errs := make(chan error, 1)
			go func() {
				_, err := b.acquireConn(ctx, addr)
				errs <- err
			}()
			if tt.wake != nil {
				waitUntil(t, "the dial waits", func() bool { return b.waiting() == 1 })
				tt.wake(b, cancel)
			}
			err := <-errs
			var h *idleHandoff
			switch {
			case tt.want == nil && (!errors.As(err, &h) || h.conn != tt.handoff):
				t.Fatalf("dial ended with %v, want the handed connection %q", err, tt.handoff)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("dial ended with %v, want %v", err, tt.want)
			}
			if _, pending, _, _ := b.Counts(); pending != 0 || b.waiting() != 0 {
				t.Errorf("pending %d, waiting %d after the wait", pending, b.waiting())
			}
			if b.handIdle(addr, "again") {
				t.Error("handed a connection with nobody waiting")
			}
			cs := st.Cluster
			if cs.UpstreamRqPendingTotal.Value() != 1 || cs.UpstreamRqPendingActive.Value() != 0 || cs.UpstreamCxOverflow.Value() != 1 {
				t.Errorf("pending_total %d, pending_active %d, cx_overflow %d; want 1, 0, 1",
					cs.UpstreamRqPendingTotal.Value(), cs.UpstreamRqPendingActive.Value(), cs.UpstreamCxOverflow.Value())
			}
		})
	}
}

type fakePool struct{ idle bool }

func (p fakePool) hasIdle(string) bool { return p.idle }

// TestBreakerRequestPathDoesNotAllocate: taking and returning request and
// retry slots, with every gauge kept, costs atomics only.
func TestBreakerRequestPathDoesNotAllocate(t *testing.T) {
	_, st := breakerStore(t)
	b := newBreaker(&config.CircuitBreakers{MaxRequests: 10, MaxRetries: 3, RetryBudget: &config.RetryBudget{}, TrackRemaining: true}, st)
	allocs := testing.AllocsPerRun(1000, func() {
		if b.AcquireRequest() {
			if b.AcquireRetry() {
				b.ReleaseRetry()
			}
			b.ReleaseRequest()
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}

// BenchmarkBreakerRequest measures a request slot taken and returned from
// every P at once, stats on.
func BenchmarkBreakerRequest(b *testing.B) {
	s, err := stats.NewStore(stats.Config{})
	if err != nil {
		b.Fatal(err)
	}
	br := newBreaker(&config.CircuitBreakers{MaxRequests: 1 << 30, MaxRetries: 3}, &BreakerStats{Cluster: s.ClusterStats("c")})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if br.AcquireRequest() {
				br.ReleaseRequest()
			}
		}
	})
}
