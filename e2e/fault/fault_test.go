// Package fault is the fault-injection end-to-end scenario: the
// real proxy, with Envoy's fault filter on three routes, in front of a real
// upstream process. A 25 % abort is observed by the client (the share of
// 503s), by the upstream (it never sees an aborted request) and in
// http.<prefix>.fault.aborts_injected, exactly. Header-controlled aborts
// and delays (x-envoy-fault-*) do what the headers ask, show as FI and DI
// in the access log and count in the fault stats; a client that leaves
// during a delay is logged DI,DC and never reaches the upstream; and
// max_active_faults refuses faults beyond it (faults_overflow).
package fault

import (
	"context"
	"io"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

func TestFaultInjection(t *testing.T) {
	up := e2etest.StartUpstream(t, "backend")
	in := &e2etest.Ingress{
		AccessLog: true,
		Routes: `
- match: {prefix: /abort}
  route: {cluster: backend}
  fault:
    abort: {http_status: 503, percentage: {numerator: 2500, denominator: TEN_THOUSAND}}
- match: {prefix: /chaos}
  route: {cluster: backend}
  fault:
    delay: {header_delay: {}, percentage: {numerator: 100}}
    abort: {header_abort: {}, percentage: {numerator: 100}}
- match: {prefix: /limited}
  route: {cluster: backend}
  fault:
    delay: {fixed_delay: 1s, percentage: {numerator: 100}}
    max_active_faults: 2
`,
		Clusters: `
- name: backend
  endpoints: ` + e2etest.Upstreams{up}.Endpoints(nil),
	}
	p := e2etest.StartIngress(t, in)
	base := in.URL("")
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(t *testing.T, ctx context.Context, path string, hdr ...string) (int, string, time.Duration, error) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return 0, "", time.Since(start), err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), time.Since(start), nil
	}
	stat := func(t *testing.T, name string) uint64 { t.Helper(); return p.Stat(t, name) }

	t.Run("abort percentage", func(t *testing.T) {
		const n = 2000
		served0 := up.Served(t)
		res := e2etest.RunLoad(t, e2etest.Load{URL: base + "/abort", Requests: n, Workers: 4, Deadline: 40 * time.Second})
		if res.Sent != n || res.Errors != 0 || res.Status[200]+res.Status[503] != n {
			t.Fatalf("sent %d, %d errors, status %v; want %d answered 200 or 503", res.Sent, res.Errors, res.Status, n)
		}
		aborted := res.Status[503]
		// binomial(2000, 0.25): mean 500, sd ≈ 19.4; ±4 sd.
		sd := math.Sqrt(n * 0.25 * 0.75)
		if math.Abs(float64(aborted)-n*0.25) > 4*sd {
			t.Errorf("%d of %d aborted (%.1f %%), want 25 %% ± %.0f requests", aborted, n, 100*float64(aborted)/n, 4*sd)
		}
		// Aborted requests never leave the proxy, and carry no X-Upstream.
		if got := up.Served(t) - served0; got != int64(n-aborted) {
			t.Errorf("the upstream served %d, want the %d requests not aborted", got, n-aborted)
		}
		if res.ByUpstream[""] != aborted {
			t.Errorf("%d responses without X-Upstream, want the %d aborts", res.ByUpstream[""], aborted)
		}
		if got := stat(t, "http.ingress.fault.aborts_injected"); got != uint64(aborted) {
			t.Errorf("http.ingress.fault.aborts_injected = %d, the client saw %d aborts", got, aborted)
		}
		if got := stat(t, "cluster.backend.upstream_rq_total"); got != uint64(n-aborted) {
			t.Errorf("cluster.backend.upstream_rq_total = %d, want %d", got, n-aborted)
		}
		t.Logf("aborted %d of %d (%.2f %%)", aborted, n, 100*float64(aborted)/n)
	})

	t.Run("header control", func(t *testing.T) {
		aborts0, delays0 := stat(t, "http.ingress.fault.aborts_injected"), stat(t, "http.ingress.fault.delays_injected")
		// An abort status chosen by the client.
		code, body, _, err := get(t, context.Background(), "/chaos/abort", "x-envoy-fault-abort-request", "418")
		if err != nil || code != 418 || body != "fault filter abort" {
			t.Fatalf("header abort: %d %q %v, want 418 \"fault filter abort\"", code, body, err)
		}
		// A delay chosen by the client: the response comes from the
		// upstream after at least that long (a consequence of the delay,
		// not a timing benchmark).
		code, body, took, err := get(t, context.Background(), "/chaos/delay", "x-envoy-fault-delay-request", "300")
		if err != nil || code != 200 || body != "backend" || took < 300*time.Millisecond {
			t.Fatalf("header delay: %d %q after %v (%v), want 200 \"backend\" after ≥ 300ms", code, body, took, err)
		}
		// A delay, then an abort.
		code, _, took, err = get(t, context.Background(), "/chaos/both", "x-envoy-fault-delay-request", "100", "x-envoy-fault-abort-request", "503")
		if err != nil || code != 503 || took < 100*time.Millisecond {
			t.Fatalf("delay then abort: %d after %v (%v)", code, took, err)
		}
		// Without the headers the route does nothing.
		if code, body, _, err := get(t, context.Background(), "/chaos/none"); err != nil || code != 200 || body != "backend" {
			t.Fatalf("no headers: %d %q %v", code, body, err)
		}
		// The percentage header lowers the configured 100 % to 30 %:
		// binomial(400, 0.3), mean 120, sd ≈ 9.2; ±4 sd.
		const n = 400
		aborted := 0
		for range n {
			code, _, _, err := get(t, context.Background(), "/chaos/pct", "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage", "30")
			if err != nil {
				t.Fatal(err)
			}
			if code == 503 {
				aborted++
			}
		}
		if sd := math.Sqrt(n * 0.3 * 0.7); math.Abs(float64(aborted)-n*0.3) > 4*sd {
			t.Errorf("x-envoy-fault-abort-request-percentage 30: %d of %d aborted, want 30 %% ± %.0f", aborted, n, 4*sd)
		}
		if d := stat(t, "http.ingress.fault.aborts_injected") - aborts0; d != uint64(2+aborted) {
			t.Errorf("aborts_injected grew by %d, want %d", d, 2+aborted)
		}
		if d := stat(t, "http.ingress.fault.delays_injected") - delays0; d != 2 {
			t.Errorf("delays_injected grew by %d, want 2", d)
		}
		// The access log says what the filter did.
		want := map[string]string{"/chaos/abort": "FI", "/chaos/delay": "DI", "/chaos/both": "DI,FI", "/chaos/none": "-"}
		found := map[string]bool{}
		for _, line := range p.AccessLog(t, 2000+4+n) {
			path, _ := line["path"].(string)
			if flags, ok := want[path]; ok {
				found[path] = true
				if line["response_flags"] != flags {
					t.Errorf("%s: access-log response_flags %v, want %s", path, line["response_flags"], flags)
				}
				if flags != "-" && flags != "DI" && line["response_code_details"] != "fault_filter_abort" {
					t.Errorf("%s: response_code_details %v, want fault_filter_abort", path, line["response_code_details"])
				}
			}
		}
		if len(found) != len(want) {
			t.Errorf("access-log lines found for %v, want %d paths", found, len(want))
		}
	})

	t.Run("client leaves during a delay", func(t *testing.T) {
		served0 := up.Served(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, _, _, err := get(t, ctx, "/chaos/gone", "x-envoy-fault-delay-request", "10000"); err == nil {
			t.Fatal("the request succeeded despite the client's 200ms deadline and a 10s delay")
		}
		e2etest.WaitFor(t, "active_faults returns to 0 after the client left", 10*time.Second, func() bool {
			return stat(t, "http.ingress.fault.active_faults") == 0
		})
		var line map[string]any
		for deadline := time.Now().Add(10 * time.Second); line == nil && time.Now().Before(deadline); {
			for _, l := range p.AccessLog(t, 0) {
				if l["path"] == "/chaos/gone" {
					line = l
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if line == nil || line["response_flags"] != "DI,DC" {
			t.Errorf("access-log line %v, want response_flags DI,DC", line)
		}
		if got := up.Served(t); got != served0 {
			t.Errorf("the upstream served %d requests, want none", got-served0)
		}
	})

	t.Run("max_active_faults", func(t *testing.T) {
		// Ten requests at once on a route that delays everything by 1 s,
		// with at most two faults active: the others overflow and go
		// straight to the upstream.
		const n = 10
		over0, delays0 := stat(t, "http.ingress.fault.faults_overflow"), stat(t, "http.ingress.fault.delays_injected")
		var wg sync.WaitGroup
		codes := make(chan int, n)
		for range n {
			wg.Go(func() {
				code, _, _, err := get(t, context.Background(), "/limited")
				if err != nil {
					t.Error(err)
				}
				codes <- code
			})
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Errorf("status %d, want 200", c)
			}
		}
		over := stat(t, "http.ingress.fault.faults_overflow") - over0
		delayed := stat(t, "http.ingress.fault.delays_injected") - delays0
		if over+delayed != n || over == 0 || delayed == 0 {
			t.Errorf("%d delayed and %d overflowed of %d requests; want both, adding up", delayed, over, n)
		}
		if got := stat(t, "http.ingress.fault.active_faults"); got != 0 {
			t.Errorf("active_faults = %d after every request finished", got)
		}
		t.Logf("max_active_faults 2: %d delayed, %d overflowed", delayed, over)
	})
}
