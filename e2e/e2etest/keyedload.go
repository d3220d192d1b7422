package e2etest

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// KeyedLoad is a bounded load run in which every request carries a key in
// a header, for scenarios about consistent hashing: Keys distinct keys
// ("key-0", "key-1", …), each sent Rounds times, interleaved so that the
// rounds of one key are spread over the run.
type KeyedLoad struct {
	// Load gives the URL, workers, deadline and per-request timeout; its
	// Requests is ignored (Keys × Rounds requests are sent).
	Load
	// Header carries the key. Required.
	Header string
	// Keys is the number of distinct keys. Required.
	Keys int
	// Rounds is how many requests each key sends. Default 1.
	Rounds int
}

// KeyedResult is the client's view of a keyed load run.
type KeyedResult struct {
	LoadResult
	// ByKey maps each key to the upstreams (X-Upstream) that answered it,
	// with their counts; only 2xx responses count.
	ByKey map[string]map[string]int
}

// Key returns the key of index i, as KeyedLoad sends it.
func Key(i int) string { return "key-" + strconv.Itoa(i) }

// Upstream returns the one upstream that answered key, or "" when none
// did or several did.
func (r *KeyedResult) Upstream(key string) string {
	if len(r.ByKey[key]) != 1 {
		return ""
	}
	for up := range r.ByKey[key] {
		return up
	}
	return ""
}

// RunKeyedLoad runs l and returns what the clients saw. Like RunLoad it
// never fails the test on a bad response.
func RunKeyedLoad(t testing.TB, l KeyedLoad) *KeyedResult {
	t.Helper()
	if l.Keys <= 0 || l.Header == "" {
		t.Fatal("e2etest.RunKeyedLoad: Keys and Header are required")
	}
	rounds := max(l.Rounds, 1)
	total := int64(l.Keys * rounds)
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
	res := &KeyedResult{
		LoadResult: LoadResult{Status: map[int]int{}, ByUpstream: map[string]int{}},
		ByKey:      map[string]map[string]int{},
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				key := Key(int(i % int64(l.Keys)))
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
				if err != nil {
					panic(err)
				}
				req.Header.Set(l.Header, key)
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
					if code >= 200 && code < 300 {
						if res.ByKey[key] == nil {
							res.ByKey[key] = map[string]int{}
						}
						res.ByKey[key][upstream]++
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
