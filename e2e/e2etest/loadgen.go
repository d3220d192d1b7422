package e2etest

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load is a bounded load run: at most Requests requests from Workers
// concurrent clients, stopped at Deadline whatever is left.
type Load struct {
	// URL every request GETs.
	URL string
	// Requests is the total number of requests. Required.
	Requests int
	// Workers is the number of concurrent clients. Default 4.
	Workers int
	// Deadline bounds the whole run. Default 30s.
	Deadline time.Duration
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration
}

// LoadResult is the client's view of a load run.
type LoadResult struct {
	// Sent counts requests started; Errors those without a response
	// (connection or timeout errors).
	Sent, Errors int
	// Status counts responses by status code.
	Status map[int]int
	// ByUpstream counts responses by their X-Upstream header (the test
	// upstream's name), "" for responses without one.
	ByUpstream map[string]int
	// Latencies of the requests that got a response, sorted.
	Latencies []time.Duration
	// Elapsed is the run's wall time.
	Elapsed time.Duration
}

// OK counts 2xx responses.
func (r *LoadResult) OK() int {
	n := 0
	for code, c := range r.Status {
		if code >= 200 && code < 300 {
			n += c
		}
	}
	return n
}

// SuccessRate is OK()/Sent, or 0 when nothing was sent.
func (r *LoadResult) SuccessRate() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.OK()) / float64(r.Sent)
}

// Percentile returns the latency at quantile q in [0, 1] (nearest rank),
// or 0 without responses.
func (r *LoadResult) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies)) + 0.5)
	return r.Latencies[min(max(i-1, 0), len(r.Latencies)-1)]
}

// RunLoad runs l and returns what the clients saw. It never fails the test
// on a bad response: the caller asserts on the result.
func RunLoad(t testing.TB, l Load) *LoadResult {
	t.Helper()
	if l.Requests <= 0 {
		t.Fatal("e2etest.RunLoad: Requests must be positive")
	}
	workers := l.Workers
	if workers <= 0 {
		workers = 4
	}
	deadline := l.Deadline
	if deadline <= 0 {
		deadline = 30 * time.Second
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}

	var next atomic.Int64
	var mu sync.Mutex
	res := &LoadResult{Status: map[int]int{}, ByUpstream: map[string]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(l.Requests) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
				if err != nil {
					panic(err)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				var code int
				var upstream string
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code, upstream = resp.StatusCode, resp.Header.Get("X-Upstream")
				}
				d := time.Since(t0)
				mu.Lock()
				res.Sent++
				if err != nil {
					res.Errors++
				} else {
					res.Status[code]++
					res.ByUpstream[upstream]++
					res.Latencies = append(res.Latencies, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	return res
}
