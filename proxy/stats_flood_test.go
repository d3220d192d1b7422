package proxy_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/stats"
)

// floodConfig routes every host and path to one cluster whose upstream
// answers whatever status the client asks for.
var floodConfig = testHead + listenersHead("ingress", "flood_http", `access_log: [{path: "{{LOG}}", format: json}]`) + ` [{match: {prefix: /}, route: {cluster: chaos}}]
clusters:
  - name: chaos
    endpoints: [{address: "{{UP}}"}]
`

// floodTally counts, from the client's side, the responses of a flood.
type floodTally struct {
	mu        sync.Mutex
	total     uint64
	collapsed uint64    // codes net/http does not name: no counter of their own
	classes   [6]uint64 // index 1..5: codes 100..599 by class
	codes     [1000]uint64
}

func (f *floodTally) add(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total++
	f.codes[code]++
	if http.StatusText(code) == "" {
		f.collapsed++
	}
	if code >= 100 && code < 600 {
		f.classes[code/100]++
	}
}

// randomToken returns n bytes from alphabet.
func randomToken(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// randomRequest builds a request with a random method, Host, path and
// query, asking the upstream for a random status in 200..999 (1xx are
// interim responses in Go's server, not final ones).
func randomRequest(r *rand.Rand, base string) (*http.Request, int) {
	const lower = "abcdefghijklmnopqrstuvwxyz0123456789"
	const pathChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE", "FOO", strings.ToUpper(randomToken(r, "abcdefghijklmnopqrstuvwxyz", 1+r.IntN(12)))}
	method := methods[r.IntN(len(methods))]
	var path strings.Builder
	for range 1 + r.IntN(5) {
		seg := randomToken(r, pathChars, 1+r.IntN(20))
		if seg == "." || seg == ".." {
			seg += "x" // a dot segment would be normalised away, or refused above the root
		}
		path.WriteString("/" + seg)
	}
	query := randomToken(r, lower, 1+r.IntN(8)) + "=" + randomToken(r, pathChars, r.IntN(30))
	code := 200 + r.IntN(800)
	req, err := http.NewRequest(method, base+path.String()+"?"+query, nil)
	if err != nil {
		panic(err) // every part above is valid by construction
	}
	req.Host = randomToken(r, lower, 1+r.IntN(30)) + "." + randomToken(r, lower, 2+r.IntN(4))
	if r.IntN(2) == 0 {
		req.Host += ":" + strconv.Itoa(1+r.IntN(65535))
	}
	req.Header.Set("X-Status", strconv.Itoa(code))
	return req, code
}

// flood sends up to n random requests from workers goroutines, stopping
// early at the deadline, and returns what it saw.
func flood(t *testing.T, client *http.Client, base string, n, workers int, seed uint64, deadline time.Time) *floodTally {
	t.Helper()
	tally := &floodTally{}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				req, code := randomRequest(r, base)
				res, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("%s %s (Host %s): %w", req.Method, req.URL, req.Host, err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != code {
					errs <- fmt.Errorf("%s %s: status %d, want the upstream's %d", req.Method, req.URL, res.StatusCode, code)
					return
				}
				tally.add(code)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return tally
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func counterValue(t *testing.T, s *stats.Store, name string) uint64 {
	t.Helper()
	st := s.Find(name)
	if st == nil {
		t.Fatalf("stat %s does not exist", name)
	}
	c, ok := st.(*stats.Counter)
	if !ok {
		t.Fatalf("stat %s is a %v, not a counter", name, st.Kind())
	}
	return c.Value()
}

func gaugeValue(t *testing.T, s *stats.Store, name string) uint64 {
	t.Helper()
	g, ok := s.Find(name).(*stats.Gauge)
	if !ok {
		t.Fatalf("stat %s is not a gauge", name)
	}
	return g.Value()
}

// TestStatsCardinalityFlood sends random hosts, paths, methods, queries
// and upstream status codes, and checks that none of it creates a stat:
// the store holds as many stats after the flood as after a warm-up, odd
// codes are counted in their class and in upstream_rq_code_collapsed, and
// the heap stays bounded.
func TestStatsCardinalityFlood(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.Header.Get("X-Status"))
		if err != nil || code < 100 || code > 999 {
			code = http.StatusTeapot
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(up.Close)
	h := startProxy(t, floodConfig, "{{UP}}", up.Listener.Addr().String())
	store := h.srv.Stats()
	const workers = 8
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := h.url("ingress", "")

	before := store.Len()
	warm := flood(t, client, base, 300, workers, 1, time.Now().Add(30*time.Second))
	if t.Failed() {
		t.FailNow()
	}
	afterWarmup := store.Len()
	heapWarm := heapAfterGC()

	// Bounded in count and in time: a slow machine sends fewer requests,
	// which weakens the test but cannot make it flake.
	const n = 20000
	fl := flood(t, client, base, n, workers, 2, time.Now().Add(20*time.Second))
	if t.Failed() {
		t.FailNow()
	}
	if fl.total < 1000 {
		t.Fatalf("only %d flood requests completed in 20s; too few to say anything", fl.total)
	}
	t.Logf("flood: %d requests, %d with a collapsed code", fl.total, fl.collapsed)

	// Every response is written before the client reads it, but the
	// connection manager counts it just after: wait for it to settle.
	deadline := time.Now().Add(20 * time.Second)
	for gaugeValue(t, store, "http.flood_http.downstream_rq_active") != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	if got := store.Len(); got != afterWarmup || got != before {
		t.Errorf("store holds %d stats after the flood, %d after the warm-up, %d before any traffic; request data must not create stats", got, afterWarmup, before)
	}
	heapFlood := heapAfterGC()
	t.Logf("heap after GC: %d bytes after the warm-up, %d after the flood", heapWarm, heapFlood)
	if heapFlood > heapWarm+16<<20 {
		t.Errorf("heap grew from %d to %d bytes over the flood; request data must not grow memory", heapWarm, heapFlood)
	}

	var total floodTally
	for _, tl := range []*floodTally{warm, fl} {
		total.total += tl.total
		total.collapsed += tl.collapsed
		for i := range tl.classes {
			total.classes[i] += tl.classes[i]
		}
		for i := range tl.codes {
			total.codes[i] += tl.codes[i]
		}
	}
	checks := []struct {
		name string
		want uint64
	}{
		{"cluster.chaos.upstream_rq_completed", total.total},
		{"cluster.chaos.upstream_rq_total", total.total},
		{"cluster.chaos.upstream_rq_code_collapsed", total.collapsed},
		{"http.flood_http.downstream_rq_total", total.total},
		{"http.flood_http.downstream_rq_completed", total.total},
	}
	for class := 2; class <= 5; class++ {
		checks = append(checks,
			struct {
				name string
				want uint64
			}{fmt.Sprintf("cluster.chaos.upstream_rq_%dxx", class), total.classes[class]},
			struct {
				name string
				want uint64
			}{fmt.Sprintf("http.flood_http.downstream_rq_%dxx", class), total.classes[class]})
	}
	for _, code := range []int{200, 204, 301, 404, 418, 503, 511} {
		checks = append(checks, struct {
			name string
			want uint64
		}{fmt.Sprintf("cluster.chaos.upstream_rq_%d", code), total.codes[code]})
	}
	for _, c := range checks {
		if got := counterValue(t, store, c.name); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
	if total.collapsed == 0 {
		t.Error("the flood produced no unregistered code; the collapse was not exercised")
	}
	for _, name := range []string{"cluster.chaos.upstream_rq_299", "cluster.chaos.upstream_rq_600", "cluster.chaos.upstream_rq_999", "cluster.chaos.upstream_rq_6xx"} {
		if st := store.Find(name); st != nil {
			t.Errorf("stat %s exists; unregistered codes must collapse into their class", name)
		}
	}
	if v := store.OverflowCount(); v != 0 {
		t.Errorf("stats.overflow = %d; the flood must not even approach the cap", v)
	}
}
