package fault_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// The fault filter inside the whole proxy, in process, on real sockets:
// what the client gets, what the upstream saw, the access log's response
// flags and the fault stats.

const filterConfig = `
admin: {address: "127.0.0.1:0"}
lifecycle: {drain_time: 0s, watch_config: false}
listeners:
  - name: main
    address: "127.0.0.1:0"
    stat_prefix: main
    access_log: [{path: "{{LOG}}"}]
    virtual_hosts:
      - name: vh
        domains: ["*"]
        routes:
          - match: {prefix: /abort}
            route: {cluster: up}
            fault: {abort: {http_status: 503, percentage: {numerator: 100}}}
          - match: {prefix: /delay-abort}
            route: {cluster: up}
            fault:
              delay: {fixed_delay: 1ms, percentage: {numerator: 100}}
              abort: {http_status: 429, percentage: {numerator: 100}}
          - match: {prefix: /headers}
            route: {cluster: up}
            fault:
              delay: {header_delay: {}, percentage: {numerator: 100}}
              abort: {header_abort: {}, percentage: {numerator: 100}}
          - match: {prefix: /limited}
            route: {cluster: up}
            fault:
              delay: {header_delay: {}, percentage: {numerator: 100}}
              max_active_faults: 1
          - match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`

type filterProxy struct {
	srv     *proxy.Server
	url     string
	logPath string
	served  *atomic.Int64
}

func startFilterProxy(t *testing.T) *filterProxy {
	t.Helper()
	fp := &filterProxy{served: &atomic.Int64{}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.served.Add(1)
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	fp.logPath = filepath.Join(dir, "access.log")
	path := filepath.Join(dir, "proxy.yaml")
	cfg := strings.NewReplacer("{{LOG}}", fp.logPath, "{{UP}}", up.Listener.Addr().String()).Replace(filterConfig)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
	})
	fp.srv, fp.url = srv, "http://"+srv.ListenerAddr("main").String()
	return fp
}

func (fp *filterProxy) get(t *testing.T, ctx context.Context, path string, hdr ...string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fp.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

func (fp *filterProxy) stat(name string) uint64 {
	switch s := fp.srv.Stats().Find(name).(type) {
	case *stats.Counter:
		return s.Value()
	case *stats.Gauge:
		return s.Value()
	}
	return 0
}

// logLine waits for the access-log line of path and returns it.
func (fp *filterProxy) logLine(t *testing.T, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f, err := os.Open(fp.logPath); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["path"] == path {
					f.Close()
					return m
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access-log line for %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFilterInProxy(t *testing.T) {
	fp := startFilterProxy(t)
	ctx := context.Background()
	tests := []struct {
		name, path string
		hdr        []string
		status     int
		body       string
		flags      string
		details    string
		upstream   bool
	}{
		{"abort", "/abort", nil, 503, "fault filter abort", "FI", "fault_filter_abort", false},
		{"delay then abort", "/delay-abort", nil, 429, "fault filter abort", "DI,FI", "fault_filter_abort", false},
		{"header abort", "/headers/a", []string{"x-envoy-fault-abort-request", "418"}, 418, "fault filter abort", "FI", "fault_filter_abort", false},
		{"header delay", "/headers/d", []string{"x-envoy-fault-delay-request", "5"}, 200, "upstream", "DI", "via_upstream", true},
		{"header abort lowered to 0%", "/headers/p", []string{"x-envoy-fault-abort-request", "418", "x-envoy-fault-abort-request-percentage", "0"}, 200, "upstream", "-", "via_upstream", true},
		{"no headers, no fault", "/headers/n", nil, 200, "upstream", "-", "via_upstream", true},
		{"no fault configured", "/plain", []string{"x-envoy-fault-abort-request", "500"}, 200, "upstream", "-", "via_upstream", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fp.served.Load()
			res, body, err := fp.get(t, ctx, tt.path, tt.hdr...)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || body != tt.body {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, body, tt.status, tt.body)
			}
			if reached := fp.served.Load() > before; reached != tt.upstream {
				t.Errorf("reached the upstream: %v, want %v", reached, tt.upstream)
			}
		})
	}
	// The access log is flushed every second: read it once at the end.
	for _, tt := range tests {
		line := fp.logLine(t, tt.path)
		if line["response_flags"] != tt.flags || line["response_code_details"] != tt.details {
			t.Errorf("%s: access log flags %v details %v, want %s %s", tt.name, line["response_flags"], line["response_code_details"], tt.flags, tt.details)
		}
	}
	for name, want := range map[string]uint64{
		"http.main.fault.aborts_injected": 3,
		"http.main.fault.delays_injected": 2,
		"http.main.fault.faults_overflow": 0,
		"http.main.fault.active_faults":   0,
	} {
		if got := fp.stat(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// TestFilterDelayClientGone: a client that gives up during a delay is
// logged with DI and DC and never reaches the upstream; meanwhile the
// listener's max_active_faults (1) refuses a second fault.
func TestFilterDelayClientGone(t *testing.T) {
	fp := startFilterProxy(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := fp.get(t, ctx, "/limited/long", "x-envoy-fault-delay-request", "600000")
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for fp.stat("http.main.fault.active_faults") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the delay never became active")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A second delayed request overflows and goes straight upstream.
	res, body, err := fp.get(t, context.Background(), "/limited/second", "x-envoy-fault-delay-request", "600000")
	if err != nil || res.StatusCode != 200 || body != "upstream" {
		t.Fatalf("second request: %v %v %q", err, res, body)
	}
	if got := fp.stat("http.main.fault.faults_overflow"); got != 1 {
		t.Errorf("faults_overflow = %d, want 1", got)
	}
	if line := fp.logLine(t, "/limited/second"); line["response_flags"] != "-" {
		t.Errorf("overflowed request flags %v, want -", line["response_flags"])
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	line := fp.logLine(t, "/limited/long")
	if line["response_flags"] != "DI,DC" {
		t.Errorf("abandoned request flags %v, want DI,DC", line["response_flags"])
	}
	if fp.served.Load() != 1 {
		t.Errorf("the upstream served %d requests, want only the overflowed one", fp.served.Load())
	}
	for fp.stat("http.main.fault.active_faults") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("active_faults never returned to 0")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
