package e2etest_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// TestRunLoad checks the load generator against an in-process server:
// every request is sent once, Prepare sees each index once, Observe sees
// each response once, and the counts agree.
func TestRunLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.Header.Get("X-Index"))
		if i%4 == 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Upstream", "u"+strconv.Itoa(i%2))
	}))
	defer srv.Close()

	const n = 200
	prepared := make([]int, n) // by index; each worker writes its own indexes
	observed := map[string]int{}
	res := e2etest.RunLoad(t, e2etest.Load{
		URL: srv.URL, Requests: n, Workers: 3,
		Prepare: func(req *http.Request, i int) {
			prepared[i]++
			req.Header.Set("X-Index", strconv.Itoa(i))
		},
		Observe: func(req *http.Request, res *http.Response, latency time.Duration) {
			if latency <= 0 {
				t.Errorf("latency %v", latency)
			}
			observed[req.Header.Get("X-Index")+"/"+strconv.Itoa(res.StatusCode)]++
		},
	})
	for i, c := range prepared {
		if c != 1 {
			t.Fatalf("Prepare saw index %d %d times, want once", i, c)
		}
	}
	if res.Sent != n || res.Errors != 0 || res.Status[200] != n*3/4 || res.Status[503] != n/4 || res.OK() != n*3/4 {
		t.Fatalf("sent %d, %d errors, status %v; want %d sent, %d × 200 and %d × 503", res.Sent, res.Errors, res.Status, n, n*3/4, n/4)
	}
	if res.ByUpstream["u0"] != n/2 || res.ByUpstream["u1"] != n/4 || res.ByUpstream[""] != n/4 {
		t.Errorf("by upstream %v; want u0 %d, u1 %d, none %d", res.ByUpstream, n/2, n/4, n/4)
	}
	if len(observed) != n || len(res.Latencies) != n {
		t.Errorf("Observe saw %d distinct requests, %d latencies; want %d", len(observed), len(res.Latencies), n)
	}
	for i := range n {
		want := "200"
		if i%4 == 3 {
			want = "503"
		}
		if observed[strconv.Itoa(i)+"/"+want] != 1 {
			t.Fatalf("request %d: Observe did not see it once with status %s", i, want)
		}
	}
	if p50, p100 := res.Percentile(0.5), res.Percentile(1); p50 <= 0 || p100 != res.Latencies[n-1] {
		t.Errorf("p50 %v, p100 %v (the largest latency is %v)", p50, p100, res.Latencies[n-1])
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}} {
		if got := e2etest.Percentile(d, tc.q); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := e2etest.Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile of nothing = %v, want 0", got)
	}
}
