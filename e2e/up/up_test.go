// Package up_test runs deploy/local/up.sh, the script behind `make up`,
// with freshly built binaries on a block of free loopback ports: the whole
// local pipeline (statsd-sink, four demo apps, five proxies, the load
// generator, and Jaeger when bin/jaeger exists) must come up, produce
// Envoy's metrics in the sink, retry injected errors, tie one request's
// hops together by request ID, and leave no process behind when it stops.
package up_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// numPorts is the size of the block UP_PORT_BASE moves the ports to; it
// must match port_names in up.sh. Offsets within it follow that table.
const (
	numPorts      = 23
	offFrontProxy = 0
	offFrontAdmin = 4
	offCatalogApp = 9
	offStatsd     = 11
	offSinkWeb    = 12
	offJaegerUI   = 15
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds hopwatch-proxy, statsd-sink and demo once per test binary
// into a temporary directory, and links bin/jaeger in when `make tools` has
// built it, so that the script's Jaeger path runs too.
func binaries(t *testing.T) (dir string, jaeger bool) {
	t.Helper()
	root := e2etest.RepoRoot(t)
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "hopwatch-e2e-up-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator),
			"./cmd/hopwatch-proxy", "./cmd/statsd-sink", "./cmd/demo")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		if j := filepath.Join(root, "bin", "jaeger"); isExecutable(j) {
			buildErr = os.Symlink(j, filepath.Join(binDir, "jaeger"))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir, isExecutable(filepath.Join(binDir, "jaeger"))
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// pipeline is a running up.sh.
type pipeline struct {
	base   int
	logDir string
	*e2etest.Process
	children map[string]int // name → PID, from the "started" lines
	jaeger   bool
}

func (p *pipeline) url(off int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.base+off, path)
}

var startedLine = regexp.MustCompile(`(?m)^\s+started (\S+)\s+pid (\d+)`)

// startScript runs up.sh with env added to the environment and returns at
// once.
func startScript(t *testing.T, env ...string) *pipeline {
	t.Helper()
	root := e2etest.RepoRoot(t)
	p := &pipeline{logDir: t.TempDir()}
	p.Process = e2etest.StartProcess(t, "up.sh", append([]string{"UP_LOG_DIR=" + p.logDir}, env...),
		"bash", filepath.Join(root, "deploy", "local", "up.sh"))
	t.Cleanup(func() {
		// The test may have failed half-way: stop the script the way a user
		// does, then make sure, PID by PID, that nothing it started lives on.
		p.Terminate(40 * time.Second)
		for _, pid := range p.startedPIDs() {
			// Only a process that still runs one of the test's binaries:
			// never a stranger that reused the PID.
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
				bytes.Contains(cmdline, []byte(binDir)) {
				t.Errorf("pid %d outlived up.sh: %q", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return p
}

// startedPIDs reads the PIDs up.sh reported starting so far.
func (p *pipeline) startedPIDs() []int {
	var pids []int
	for _, m := range startedLine.FindAllStringSubmatch(p.Output(), -1) {
		if pid, err := strconv.Atoi(m[2]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// up runs up.sh on a free block of ports and waits until it reports that
// the pipeline is up. It retries on another block when a port was taken in
// between.
func up(t *testing.T, extraEnv ...string) *pipeline {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, portTaken := tryUp(t, extraEnv)
		if p != nil {
			return p
		}
		if !portTaken || attempt == 3 {
			t.FailNow()
		}
	}
}

// tryUp is one attempt of up. It returns nil after reporting the failure,
// with portTaken set when another block of ports may work.
func tryUp(t *testing.T, extraEnv []string) (p *pipeline, portTaken bool) {
	t.Helper()
	bin, jaeger := binaries(t)
	base := e2etest.FreePortBlock(t, numPorts, offStatsd)
	env := append([]string{
		"UP_PORT_BASE=" + strconv.Itoa(base),
		"UP_BIN_DIR=" + bin,
		"UP_LOAD_RATE=40",
		"UP_LOAD_DURATION=2m",
	}, extraEnv...)
	p = startScript(t, env...)
	p.base, p.jaeger = base, jaeger
	deadline := time.After(60 * time.Second)
	for !strings.Contains(p.Output(), "hopwatch is up.") {
		select {
		case <-p.Done():
			if strings.Contains(p.Output(), "ports the pipeline needs are taken") {
				t.Logf("port block %d was taken meanwhile:\n%s", base, p.Output())
				return nil, true
			}
			t.Errorf("up.sh exited before the pipeline was up (%v)", p.Err())
			return nil, false
		case <-deadline:
			t.Errorf("up.sh did not report the pipeline up within 60s")
			return nil, false
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.children = map[string]int{}
	for _, m := range startedLine.FindAllStringSubmatch(p.Output(), -1) {
		pid, _ := strconv.Atoi(m[2])
		p.children[m[1]] = pid
	}
	return p, false
}

// sample is one line of the Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseExposition reads name{labels} value lines, skipping comments. It is
// enough for the sink's output, which has no timestamps or exemplars.
func parseExposition(body string) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("line %d: no value: %q", n, line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %w", n, err)
		}
		s := sample{name: line[:i], labels: map[string]string{}, value: v}
		if j := strings.IndexByte(s.name, '{'); j >= 0 {
			for _, m := range labelPair.FindAllStringSubmatch(s.name[j:], -1) {
				s.labels[m[1]] = m[2]
			}
			s.name = s.name[:j]
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// find sums the samples named name whose labels include want.
func find(samples []sample, name string, want map[string]string) (sum float64, found bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
		found = true
	}
	return sum, found
}

var client = &http.Client{Timeout: 5 * time.Second}

func get(url string) (int, string, http.Header, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// metric is one expectation on the sink's /metrics.
type metric struct {
	name   string
	labels map[string]string
}

// String renders m as in the exposition: name{label="value",...}.
func (m metric) String() string {
	pairs := make([]string, 0, len(m.labels))
	for k, v := range m.labels {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(pairs)
	return m.name + "{" + strings.Join(pairs, ",") + "}"
}

// waitMetrics polls the sink until every expectation has a sample above 0.
func waitMetrics(t *testing.T, p *pipeline, d time.Duration, want []metric) {
	t.Helper()
	deadline := time.Now().Add(d)
	var missing []metric
	for {
		if p.Exited() {
			t.Fatalf("up.sh exited while waiting for metrics (%v)", p.Err())
		}
		missing = missing[:0]
		code, body, _, err := get(p.url(offSinkWeb, "/metrics"))
		var samples []sample
		if err == nil && code == http.StatusOK {
			samples, err = parseExposition(body)
			if err != nil {
				t.Fatalf("sink /metrics: %v", err)
			}
		}
		for _, m := range want {
			if v, ok := find(samples, m.name, m.labels); !ok || v <= 0 {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the sink still lacks %v (last error %v, status %d)", d, missing, err, code)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// assertGone checks that every process up.sh started has exited, and that
// the front proxy's and the sink's ports can be bound again.
func assertGone(t *testing.T, p *pipeline) {
	t.Helper()
	if len(p.children) < 9 {
		t.Fatalf("up.sh reported %d started processes, want at least 9: %v", len(p.children), p.children)
	}
	for name, pid := range p.children {
		// up.sh has reaped its children, so a PID that still answers is a
		// process that survived (or, vanishingly rarely, a reused PID).
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) is still running after up.sh exited (kill -0: %v)", name, pid, err)
		}
	}
	for _, off := range []int{offFrontProxy, offSinkWeb} {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.base+off)))
		if err != nil {
			t.Errorf("port %d still taken after up.sh exited: %v", p.base+off, err)
			continue
		}
		_ = ln.Close()
	}
}

// TestUp runs the pipeline, checks what it produces, and stops it with
// SIGTERM.
func TestUp(t *testing.T) {
	p := up(t)
	for _, name := range []string{"statsd-sink", "legacy-pricing", "inventory", "catalog", "frontend",
		"sidecar-legacy-pricing", "sidecar-inventory", "sidecar-catalog", "sidecar-frontend", "front-proxy", "load"} {
		if _, ok := p.children[name]; !ok {
			t.Errorf("up.sh did not report starting %s: %v", name, p.children)
		}
	}
	if _, ok := p.children["jaeger"]; ok != p.jaeger {
		t.Errorf("jaeger started = %v, but bin/jaeger present = %v", ok, p.jaeger)
	}
	if !strings.Contains(p.Output(), "Prometheus") || !strings.Contains(p.Output(), p.url(offSinkWeb, "/metrics")) {
		t.Errorf("the URL table does not name the sink's /metrics and what is missing (Prometheus):\n%s", p.Output())
	}

	t.Run("metrics", func(t *testing.T) {
		var want []metric
		for _, c := range []string{"frontend", "frontend_app", "catalog_app", "inventory_app"} {
			want = append(want,
				metric{"envoy_cluster_upstream_rq_total", map[string]string{"envoy_cluster_name": c}},
				metric{"envoy_cluster_upstream_rq", map[string]string{"envoy_cluster_name": c, "envoy_response_code": "200"}},
			)
		}
		want = append(want,
			metric{"envoy_http_downstream_rq_xx", map[string]string{"envoy_http_conn_manager_prefix": "ingress_http", "envoy_response_code_class": "2"}},
			metric{"envoy_http_downstream_rq_xx", map[string]string{"envoy_http_conn_manager_prefix": "catalog_ingress", "envoy_response_code_class": "2"}},
			// The front proxy is in zone-a and the frontend in zone-b.
			metric{"envoy_cluster_zone_zone_a_zone_b_upstream_rq", map[string]string{"envoy_cluster_name": "frontend", "envoy_response_code": "200"}},
			// Every series carries its proxy (DogStatsD with a node_id
			// fixed tag), so one gauge per proxy, not one for all four.
			metric{"envoy_cluster_upstream_rq_total", map[string]string{"envoy_cluster_name": "frontend", "node_id": "front-proxy"}},
			metric{"envoy_cluster_upstream_rq_total", map[string]string{"envoy_cluster_name": "inventory_app", "node_id": "inventory-sidecar"}},
		)
		for _, node := range []string{"front-proxy", "frontend-sidecar", "catalog-sidecar", "inventory-sidecar"} {
			want = append(want, metric{"envoy_server_live", map[string]string{"node_id": node}})
		}
		waitMetrics(t, p, 30*time.Second, want)

		code, body, _, err := get(p.url(offFrontAdmin, "/stats/prometheus"))
		if err != nil || code != http.StatusOK || !strings.Contains(body, `envoy_cluster_upstream_rq_total{envoy_cluster_name="frontend",node_id="front-proxy"}`) {
			t.Errorf("front proxy admin /stats/prometheus: status %d, err %v, no frontend cluster stats", code, err)
		}
	})

	var traceID string // of the request request_id_ties_hops sends
	t.Run("request_id_ties_hops", func(t *testing.T) {
		code, body, h, err := get(p.url(offFrontProxy, "/"))
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET through the front proxy: status %d, err %v, body %s", code, err, body)
		}
		id := h.Get("X-Request-Id")
		if id == "" {
			t.Fatal("the front proxy sent no x-request-id (always_set_request_id_in_response is on)")
		}
		// Each hop's log, or its alternatives: the catalog sidecar sends a
		// share of its requests to the catalog canary.
		logs := [][]string{{"front-proxy"}, {"sidecar-frontend"}, {"frontend"}, {"sidecar-catalog"}, {"catalog", "catalog-canary"}, {"sidecar-inventory"}, {"inventory"}}
		deadline := time.Now().Add(15 * time.Second) // access logs are buffered
		for {
			var missing []string
			for _, names := range logs {
				found := false
				for _, name := range names {
					b, err := os.ReadFile(filepath.Join(p.logDir, name+".log"))
					found = found || err == nil && bytes.Contains(b, []byte(id))
				}
				if !found {
					missing = append(missing, strings.Join(names, " or "))
				}
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request ID %s is not in the logs of %v", id, missing)
			}
			time.Sleep(250 * time.Millisecond)
		}
		// Every proxy traces (deploy/local/*.yaml, tracing:), so each
		// proxy's access-log line of this request names one trace, the
		// same at every hop, whether or not Jaeger runs.
		for _, name := range []string{"front-proxy", "sidecar-frontend", "sidecar-catalog", "sidecar-inventory"} {
			got := accessLogTraceID(t, filepath.Join(p.logDir, name+".log"), id)
			if got == "" {
				t.Errorf("%s's access-log line for request %s has no trace_id", name, id)
			} else if traceID == "" {
				traceID = got
			} else if got != traceID {
				t.Errorf("%s's access-log line for request %s has trace_id %s, the front proxy's has %s", name, id, got, traceID)
			}
		}
	})

	t.Run("catalog_sidecar_retries", func(t *testing.T) {
		inject := p.url(offCatalogApp, "/demo/inject")
		resp, err := client.Post(inject+"?error_rate=0.5", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: status %d", inject, resp.StatusCode)
		}
		defer func() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodDelete, inject, nil)
			if resp, err := client.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}()
		waitMetrics(t, p, 30*time.Second, []metric{
			{"envoy_cluster_upstream_rq_retry", map[string]string{"envoy_cluster_name": "catalog_app"}},
			{"envoy_cluster_retry_upstream_rq", map[string]string{"envoy_cluster_name": "catalog_app", "envoy_response_code": "503"}},
		})
	})

	if p.jaeger {
		t.Run("jaeger", func(t *testing.T) {
			deadline := time.Now().Add(20 * time.Second)
			for {
				_, body, _, err := get(p.url(offJaegerUI, "/api/services"))
				if err == nil && strings.Contains(body, `"frontend"`) && strings.Contains(body, `"catalog"`) && strings.Contains(body, `"inventory"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Jaeger's /api/services lacks the demo services: %s (err %v)", body, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
			if traceID == "" {
				t.Fatal("request_id_ties_hops found no trace ID to look up")
			}
			// The trace of that one request holds every proxy's server
			// and client span and every app's spans.
			want := map[string]bool{}
			for _, svc := range []string{"front-proxy", "frontend-sidecar", "catalog-sidecar", "inventory-sidecar", "legacy-pricing-sidecar"} {
				want[svc+" server"], want[svc+" client"] = true, true
			}
			for _, svc := range []string{"frontend", "catalog", "inventory", "legacy-pricing"} {
				want[svc+" server"] = true
			}
			want["frontend client"], want["catalog client"] = true, true
			var missing []string
			deadline = time.Now().Add(30 * time.Second) // the apps export every few seconds
			for {
				missing = missing[:0]
				got := jaegerSpanKinds(p.url(offJaegerUI, "/api/traces/"+traceID))
				for k := range want {
					if !got[k] {
						missing = append(missing, k)
					}
				}
				if len(missing) == 0 {
					return
				}
				if time.Now().After(deadline) {
					slices.Sort(missing)
					t.Fatalf("Jaeger's trace %s lacks spans %v", traceID, missing)
				}
				time.Sleep(500 * time.Millisecond)
			}
		})
	} else {
		t.Log("bin/jaeger is not built (make tools): the Jaeger part of up.sh is not exercised")
	}

	p.Signal(t, syscall.SIGTERM)
	if code := p.WaitExit(t, 40*time.Second); code != 0 {
		t.Errorf("up.sh exited %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(p.Output(), "SIGTERM received; stopping everything") {
		t.Errorf("up.sh did not say it was stopping")
	}
	assertGone(t, p)
}

// TestUpChildDies kills one app behind up.sh's back: up.sh must notice,
// name it, stop everything else and exit non-zero.
func TestUpChildDies(t *testing.T) {
	p := up(t, "UP_JAEGER=0")
	pid, ok := p.children["catalog"]
	if !ok {
		t.Fatalf("no catalog process reported: %v", p.children)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.WaitExit(t, 40*time.Second); code == 0 {
		t.Error("up.sh exited 0 after a child was killed, want non-zero")
	}
	out := p.Output()
	if want := fmt.Sprintf("catalog (pid %d) exited unexpectedly", pid); !strings.Contains(out, want) {
		t.Errorf("up.sh output lacks %q", want)
	}
	if !strings.Contains(out, "last lines of") {
		t.Errorf("up.sh did not show the dead process's log tail")
	}
	assertGone(t, p)
}

// TestUpRefuses covers what up.sh checks before it starts anything: every
// case must fail fast with a message that says what is wrong.
func TestUpRefuses(t *testing.T) {
	bin, _ := binaries(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	// A block whose front proxy port (offset 0) is the one held above.
	takenBase := takenPort - offFrontProxy
	if takenBase+numPorts-1 > 65535 {
		t.Fatalf("listener port %d too high to build a block on", takenPort)
	}

	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"port base too low", []string{"UP_PORT_BASE=80"}, "UP_PORT_BASE=80: want a port number from 1024"},
		{"port base not a number", []string{"UP_PORT_BASE=abc"}, "UP_PORT_BASE=abc"},
		{"zero rate", []string{"UP_LOAD_RATE=0"}, "UP_LOAD_RATE=0: want a positive number"},
		{"rate above the load generator's limit", []string{"UP_LOAD_RATE=20001"}, "UP_LOAD_RATE=20001: want a positive number of requests per second up to 10000"},
		{"duration without unit", []string{"UP_LOAD_DURATION=5"}, "UP_LOAD_DURATION=5: want a Go duration"},
		{"missing binaries", []string{"UP_BIN_DIR=" + t.TempDir()}, "hopwatch-proxy is missing: run `make build`"},
		{"port taken", []string{"UP_PORT_BASE=" + strconv.Itoa(takenBase)},
			fmt.Sprintf("%d (front_proxy) is in use by", takenPort)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"UP_BIN_DIR=" + bin, "UP_JAEGER=0"}, tc.env...)
			p := startScript(t, env...)
			if code := p.WaitExit(t, 30*time.Second); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if out := p.Output(); !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if pids := p.startedPIDs(); len(pids) != 0 {
				t.Errorf("up.sh started processes before refusing: %v", pids)
			}
		})
	}
}

func TestParseExposition(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []sample
		wantErr bool
	}{
		{in: "# TYPE x counter\nx 3\n", want: []sample{{name: "x", labels: map[string]string{}, value: 3}}},
		{in: `y{a="1",b="q\"uote"} 2.5`, want: []sample{{name: "y", labels: map[string]string{"a": "1", "b": `q\"uote`}, value: 2.5}}},
		{in: "z{le=\"+Inf\"} +Inf\n", want: []sample{{name: "z", labels: map[string]string{"le": "+Inf"}, value: math.Inf(1)}}},
		{in: "novalue", wantErr: true},
		{in: "x notanumber", wantErr: true},
	} {
		got, err := parseExposition(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseExposition(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("parseExposition(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			g, w := got[i], tc.want[i]
			if g.name != w.name || fmt.Sprint(g.labels) != fmt.Sprint(w.labels) || g.value != w.value {
				t.Errorf("parseExposition(%q)[%d] = %+v, want %+v", tc.in, i, g, w)
			}
		}
	}
	if v, ok := find([]sample{
		{name: "m", labels: map[string]string{"c": "a", "code": "200"}, value: 2},
		{name: "m", labels: map[string]string{"c": "a", "code": "503"}, value: 3},
		{name: "m", labels: map[string]string{"c": "b", "code": "200"}, value: 7},
	}, "m", map[string]string{"c": "a"}); !ok || v != 5 {
		t.Errorf("find summed %v (found %v), want 5", v, ok)
	}
}

// accessLogTraceID returns the trace_id of the JSON access-log line in
// path that carries request ID id, or "" when there is none.
func accessLogTraceID(t *testing.T, path, id string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		var entry struct {
			RequestID string  `json:"request_id"`
			TraceID   *string `json:"trace_id"`
		}
		if json.Unmarshal(line, &entry) != nil || entry.RequestID != id {
			continue
		}
		if entry.TraceID != nil {
			return *entry.TraceID
		}
		return ""
	}
	return ""
}

// jaegerSpanKinds fetches one trace from Jaeger's query API and returns
// the "<service> <span.kind>" pairs of its spans (empty while Jaeger does
// not have it).
func jaegerSpanKinds(url string) map[string]bool {
	got := map[string]bool{}
	_, body, _, err := get(url)
	if err != nil {
		return got
	}
	var r struct {
		Data []e2etest.JaegerTrace `json:"data"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || len(r.Data) != 1 {
		return got
	}
	tr := r.Data[0]
	tr.ResolveServices()
	for _, s := range tr.Spans {
		got[s.Service+" "+s.Kind()] = true
	}
	return got
}
