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
	// Prepare, when set, is called with each request before it is sent and
	// the request's index, from 0 to Requests-1, to add what it must carry
	// (a hashing key, say). The workers call it concurrently.
	Prepare func(req *http.Request, i int)
	// Observe, when set, is called with each request that got a response,
	// the response (its body already read and closed) and the request's
	// latency. Calls come one at a time, so Observe may update the
	// caller's tallies without a lock.
	Observe func(req *http.Request, res *http.Response, latency time.Duration)
}

// LoadResult is the client's view of a load run.
type LoadResult struct {
	// Sent counts requests started; Errors those without a response
	// (connection or timeout errors).
	Sent, Errors int
	// ErrorSamples holds the first few errors, for failure messages.
	ErrorSamples []string
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
	return Percentile(r.Latencies, q)
}

// Percentile returns the value at quantile q in [0, 1] (nearest rank) of
// sorted latencies, or 0 when there are none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
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
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(l.Requests) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
				if err != nil {
					panic(err)
				}
				if l.Prepare != nil {
					l.Prepare(req, int(i))
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				d := time.Since(t0)
				mu.Lock()
				res.Sent++
				if err != nil {
					res.Errors++
					if len(res.ErrorSamples) < 5 {
						res.ErrorSamples = append(res.ErrorSamples, err.Error())
					}
				} else {
					res.Status[resp.StatusCode]++
					res.ByUpstream[resp.Header.Get("X-Upstream")]++
					res.Latencies = append(res.Latencies, d)
					if l.Observe != nil {
						l.Observe(req, resp, d)
					}
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
