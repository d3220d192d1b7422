// Package ratelimit is the "Rate limits" end-to-end scenario:
// the real hopwatch-proxy, the real test upstream, Envoy's reference
// rate-limit service (bin/ratelimit, github.com/envoyproxy/ratelimit built
// by `make tools-test` from tools/ratelimit) and Debian's redis-server
// (`make test-deps`), all on loopback.
//
// It shows, from the client's counts and from the proxy's stats, that the
// local limiter holds its token bucket's rate, that the global limiter
// holds the service's per-value rate, and that killing the service flips
// behaviour by failure_mode_deny: requests pass (and are counted in
// failure_mode_allowed) or are refused with 500 and flag RLSE.
package ratelimit

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// Limits of the scenario.
const (
	// localMax tokens, refilled by localMax every second.
	localMax = 10
	// globalPerSecond requests per second per :path value, in the service.
	globalPerSecond = 20
	// loadTime bounds each load run.
	loadTime = 3 * time.Second
)

const serviceRules = `domain: hopwatch-e2e
descriptors:
  - key: path
    rate_limit: {unit: second, requests_per_unit: %d}
`

const proxyConfig = `
admin: {address: "{{ADMIN}}"}
lifecycle: {drain_time: 0s, watch_config: false}
listeners:
  - name: edge
    address: "{{EDGE}}"
    stat_prefix: edge
    # 1s rather than Envoy's 20ms: the scenario must hold on a loaded
    # 2-core machine, where a spurious timeout would let a request through.
    rate_limit_service: {cluster: ratelimit, domain: hopwatch-e2e, timeout: 1s}
    virtual_hosts:
      - name: e2e
        domains: ["*"]
        routes:
          - match: {prefix: /local}
            route: {cluster: backend}
            local_rate_limit:
              stat_prefix: e2e_local
              token_bucket: {max_tokens: {{MAX}}, tokens_per_fill: {{MAX}}, fill_interval: 1s}
          - match: {prefix: /global}
            route:
              cluster: backend
              rate_limits: [{actions: [{request_headers: {header_name: ":path", descriptor_key: path}}]}]
  - name: edge_deny
    address: "{{DENY}}"
    stat_prefix: edge_deny
    rate_limit_service: {cluster: ratelimit, domain: hopwatch-e2e, timeout: 1s, failure_mode_deny: true}
    virtual_hosts:
      - name: e2e
        domains: ["*"]
        routes:
          - match: {prefix: /}
            route:
              cluster: backend_deny
              rate_limits: [{actions: [{request_headers: {header_name: ":path", descriptor_key: path}}]}]
clusters:
  - name: backend
    endpoints: [{address: "{{UP}}"}]
  - name: backend_deny
    endpoints: [{address: "{{UP}}"}]
  - name: ratelimit
    protocol: h2c
    connect_timeout: 1s
    endpoints: [{address: "{{RLS}}"}]
`

func TestRateLimits(t *testing.T) {
	redis := startRedis(t)
	rls := startRateLimitService(t, redis, fmt.Sprintf(serviceRules, globalPerSecond))
	up := e2etest.StartUpstream(t, "backend")
	edge, deny := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	p := e2etest.StartProxy(t, strings.NewReplacer(
		"{{ADMIN}}", e2etest.FreeAddr(t), "{{EDGE}}", edge, "{{DENY}}", deny,
		"{{UP}}", up.Addr, "{{RLS}}", rls.grpc, "{{MAX}}", fmt.Sprint(localMax),
	).Replace(proxyConfig))

	t.Run("local limit holds its rate", func(t *testing.T) {
		res := e2etest.RunLoad(t, e2etest.Load{URL: "http://" + edge + "/local", Requests: 5000, Workers: 4, Deadline: loadTime})
		ok, limited := res.Status[200], res.Status[429]
		t.Logf("local: %d requests in %v: %d accepted, %d refused (%.0f rps)", res.Sent, res.Elapsed.Round(time.Millisecond), ok, limited, float64(res.Sent)/res.Elapsed.Seconds())
		if res.Errors != 0 || ok+limited != res.Sent {
			t.Fatalf("statuses %v, %d errors: want only 200 and 429", res.Status, res.Errors)
		}
		// The bucket starts full (localMax) and gains localMax at each fill
		// boundary, which come every second at a phase set by the proxy's
		// start. Over the run's D seconds (as the client measured it) at
		// most floor(D)+1 boundaries fall inside, so at most
		// localMax*(floor(D)+2) requests are accepted. At least
		// localMax*(1+D) - 2*localMax are: the run as the proxy saw it may
		// cross one boundary fewer than D suggests, and the tokens of the
		// last fill may be left unused when the run ends just after it.
		// The load is heavy enough (hundreds of requests per second
		// against 10) to empty the bucket after every other fill.
		d := res.Elapsed.Seconds()
		upper := localMax * (int(d) + 2)
		lower := int(localMax*(1+d)) - 2*localMax
		if ok > upper || ok < lower || limited == 0 {
			t.Errorf("local: %d accepted in %.2fs, want %d..%d (bucket %d, %d per second), and some refused", ok, d, lower, upper, localMax, localMax)
		}
		st := p.Stats(t)
		for name, want := range map[string]int{
			"e2e_local.http_local_rate_limit.enabled":      res.Sent,
			"e2e_local.http_local_rate_limit.ok":           ok,
			"e2e_local.http_local_rate_limit.rate_limited": limited,
			"e2e_local.http_local_rate_limit.enforced":     limited,
			"http.edge.downstream_rq_4xx":                  limited,
		} {
			if got := st[name]; got != uint64(want) {
				t.Errorf("%s = %d, want %d (the client's count)", name, got, want)
			}
		}
		checkAccessLog(t, p, 429, "RL")
	})

	t.Run("global limit holds its rate per value", func(t *testing.T) {
		before := p.Stats(t)
		// Two :path values at once: each has its own 20 per second.
		var wg sync.WaitGroup
		results := map[string]*e2etest.LoadResult{}
		windows := map[string][2]time.Time{}
		var mu sync.Mutex
		for _, path := range []string{"/global/a", "/global/b"} {
			wg.Go(func() {
				start := time.Now()
				res := e2etest.RunLoad(t, e2etest.Load{URL: "http://" + edge + path, Requests: 2500, Workers: 2, Deadline: loadTime})
				end := time.Now()
				mu.Lock()
				results[path], windows[path] = res, [2]time.Time{start, end}
				mu.Unlock()
			})
		}
		wg.Wait()
		// A request still in flight when a run's deadline passes is
		// cancelled by the client (an error on its side); the proxy may
		// have counted the service's answer for it already.
		totalOK, totalLimited, cut := 0, 0, 0
		for path, res := range results {
			ok, limited := res.Status[200], res.Status[429]
			totalOK += ok
			totalLimited += limited
			cut += res.Errors
			w := windows[path]
			// The service counts in fixed one-second windows of Unix time.
			// Every request of the run falls in one of the n windows that
			// [start, end] touches: at most 20 per window pass. The n-2
			// windows inside the run are wholly under load and fill up; the
			// first and last may be partial.
			n := int(w[1].Unix()-w[0].Unix()) + 1
			upper, lower := globalPerSecond*n, globalPerSecond*(n-2)
			t.Logf("global %s: %d requests over %d windows: %d accepted, %d refused", path, res.Sent, n, ok, limited)
			if res.Errors > 2 || ok+limited+res.Errors != res.Sent {
				t.Errorf("%s: statuses %v, %d errors: want only 200 and 429, and errors only for the 2 workers' requests cut by the deadline", path, res.Status, res.Errors)
			}
			if ok > upper || ok < lower || limited == 0 {
				t.Errorf("%s: %d accepted over %d one-second windows, want %d..%d and some refused", path, ok, n, lower, upper)
			}
		}
		after := p.Stats(t)
		for name, want := range map[string]int{
			"cluster.backend.ratelimit.ok":         totalOK,
			"cluster.backend.ratelimit.over_limit": totalLimited,
			"cluster.backend.ratelimit.error":      0,
			"cluster.backend.upstream_rq_429":      totalLimited,
		} {
			if got := int(after[name] - before[name]); got < want || got > want+cut {
				t.Errorf("%s grew by %d, want %d (the client's count) to %d (plus the %d requests cut by the deadline)", name, got, want, want+cut, cut)
			}
		}
		if n := after["cluster.backend.ratelimit.ok"] + after["cluster.backend.ratelimit.over_limit"] - before["cluster.backend.ratelimit.ok"] - before["cluster.backend.ratelimit.over_limit"]; n > uint64(totalOK+totalLimited+cut) {
			t.Errorf("the service's answers counted %d, more than the %d requests sent", n, totalOK+totalLimited+cut)
		}
		checkAccessLog(t, p, 429, "RL")
	})

	t.Run("killing the service flips by failure_mode_deny", func(t *testing.T) {
		// While the service runs, the deny listener forwards.
		if res := e2etest.RunLoad(t, e2etest.Load{URL: "http://" + deny + "/deny", Requests: 5, Workers: 1, Deadline: 10 * time.Second}); res.Status[200] != 5 {
			t.Fatalf("deny listener with the service up: %v, want 5 × 200", res.Status)
		}
		rls.Kill()
		before := p.Stats(t)
		servedBefore := up.Served(t)

		allow := e2etest.RunLoad(t, e2etest.Load{URL: "http://" + edge + "/global/a", Requests: 300, Workers: 2, Deadline: 20 * time.Second})
		refuse := e2etest.RunLoad(t, e2etest.Load{URL: "http://" + deny + "/deny", Requests: 300, Workers: 2, Deadline: 20 * time.Second})
		t.Logf("service down: allow %v in %v (p99 %v); deny %v in %v (p99 %v)", allow.Status, allow.Elapsed.Round(time.Millisecond), allow.Percentile(0.99),
			refuse.Status, refuse.Elapsed.Round(time.Millisecond), refuse.Percentile(0.99))
		if allow.Sent != 300 || allow.Status[200] != allow.Sent {
			t.Errorf("failure_mode_deny false: %v of %d, want all 200", allow.Status, allow.Sent)
		}
		if refuse.Sent != 300 || refuse.Status[500] != refuse.Sent {
			t.Errorf("failure_mode_deny true: %v of %d, want all 500", refuse.Status, refuse.Sent)
		}
		if served := up.Served(t) - servedBefore; served != int64(allow.Status[200]) {
			t.Errorf("the upstream served %d requests, want %d (only the allowed ones)", served, allow.Status[200])
		}
		after := p.Stats(t)
		for name, want := range map[string]int{
			"cluster.backend.ratelimit.error":                     allow.Sent,
			"cluster.backend.ratelimit.failure_mode_allowed":      allow.Sent,
			"cluster.backend.ratelimit.ok":                        0,
			"cluster.backend_deny.ratelimit.error":                refuse.Sent,
			"cluster.backend_deny.ratelimit.failure_mode_allowed": 0,
			"http.edge_deny.downstream_rq_5xx":                    refuse.Sent,
		} {
			if got := after[name] - before[name]; got != uint64(want) {
				t.Errorf("%s grew by %d, want %d (the client's count)", name, got, want)
			}
		}
		checkAccessLog(t, p, 500, "RLSE")
	})
}

// checkAccessLog requires every access-log line with the given status to
// carry the response flag, and at least one such line.
func checkAccessLog(t *testing.T, p *e2etest.Proxy, status int, flag string) {
	t.Helper()
	n := 0
	for _, m := range p.AccessLog(t, 1) {
		if m["response_code"] != float64(status) {
			continue
		}
		n++
		if f, _ := m["response_flags"].(string); !strings.Contains(","+f+",", ","+flag+",") {
			t.Fatalf("a %d has response_flags %q, want %s: %v", status, f, flag, m)
		}
	}
	if n == 0 {
		t.Errorf("no access-log line with status %d", status)
	}
}

// startRedis runs Debian's redis-server on a free loopback port, without
// persistence, and returns its address.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run `make test-deps` (it installs Debian's redis-server)")
	}
	addr := e2etest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	p := e2etest.StartProcess(t, "redis-server", nil, bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	p.WaitFor(t, "connection", 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		b := make([]byte, 16)
		n, err := c.Read(b)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(b[:n]), "+PONG") {
			return fmt.Errorf("PING answered %q", b[:n])
		}
		return nil
	})
	return addr
}

// rateLimitService is a running envoyproxy/ratelimit.
type rateLimitService struct {
	*e2etest.Process
	grpc string
}

// startRateLimitService runs bin/ratelimit against redis with rules (one
// YAML config file) and waits until it has loaded them.
func startRateLimitService(t *testing.T, redis, rules string) *rateLimitService {
	t.Helper()
	bin := filepath.Join(e2etest.RepoRoot(t), "bin", "ratelimit")
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing: run `make tools-test` (or tools/build.sh ratelimit) to build github.com/envoyproxy/ratelimit pinned in tools/ratelimit/go.mod", bin)
	}
	// Rules are read from RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config/*.yaml.
	root := t.TempDir()
	dir := filepath.Join(root, "ratelimit", "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hopwatch-e2e.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &rateLimitService{grpc: e2etest.FreeAddr(t)}
	httpAddr, debugAddr := e2etest.FreeAddr(t), e2etest.FreeAddr(t)
	env := []string{
		"USE_STATSD=false", "DISABLE_STATS=true", "LOG_LEVEL=warn",
		"REDIS_SOCKET_TYPE=tcp", "REDIS_URL=" + redis,
		"RUNTIME_ROOT=" + root, "RUNTIME_SUBDIRECTORY=ratelimit", "RUNTIME_APPDIRECTORY=config",
		"RUNTIME_WATCH_ROOT=false", "RUNTIME_IGNOREDOTFILES=true",
	}
	for _, a := range []struct{ prefix, addr string }{{"", httpAddr}, {"GRPC_", s.grpc}, {"DEBUG_", debugAddr}} {
		host, port, _ := net.SplitHostPort(a.addr)
		env = append(env, a.prefix+"HOST="+host, a.prefix+"PORT="+port)
	}
	s.Process = e2etest.StartProcess(t, "ratelimit", env, bin)
	s.WaitFor(t, "loaded rules", 30*time.Second, func() error {
		res, err := http.Get((&url.URL{Scheme: "http", Host: debugAddr, Path: "/rlconfig"}).String())
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b := make([]byte, 4096)
		n, _ := res.Body.Read(b)
		if !strings.Contains(string(b[:n]), "hopwatch-e2e.path") {
			return fmt.Errorf("/rlconfig: %q", b[:n])
		}
		c, err := net.DialTimeout("tcp", s.grpc, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return s
}
