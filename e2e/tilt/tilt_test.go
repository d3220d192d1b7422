// Package tilt_test runs the repository's Tiltfile with the pinned Tilt
// (bin/tilt, `make tools`): `tilt ci` over local mode as an end-to-end test
// of the whole dev environment, and Tilt's own Tiltfile evaluation of
// Kubernetes mode, which needs no cluster.
//
// Ports: the local-mode run moves every port of the pipeline into a block
// of free loopback ports (the Tiltfile's --port-base, like up.sh's
// UP_PORT_BASE) and gives Tilt's own API server a free port, and it builds
// into and writes to temporary directories, so it runs beside e2e/up and
// the other tests of `go test ./...` without a lock and beside a developer's
// running `make up`.
package tilt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// numPorts is the Tiltfile's PORT_TABLE length; offsets follow its order.
const (
	numPorts  = 26
	offStatsd = 11
)

// pinnedTool returns bin/<name>, failing the test when `make tools` has not
// built it: these tests are part of `make test`, which builds them first.
func pinnedTool(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(e2etest.RepoRoot(t), "bin", name)
	if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing: run `make tools` (it builds the %s pinned in tools/%s into ./bin)", path, name, name)
	}
	return path
}

// tiltfileResult evaluates the Tiltfile as `tilt up` would, without running
// anything, and returns its manifests.
func tiltfileResult(t *testing.T, args ...string) []manifest {
	t.Helper()
	tilt := pinnedTool(t, "tilt")
	root := e2etest.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tilt, append([]string{"alpha", "tiltfile-result", "--file", filepath.Join(root, "Tiltfile"), "--"}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tilt alpha tiltfile-result -- %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var res struct {
		Manifests []manifest
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("tilt alpha tiltfile-result: %v\n%.2000s", err, out)
	}
	return res.Manifests
}

// manifest is the part of Tilt's manifest JSON these tests read.
type manifest struct {
	Name                 string
	ResourceDependencies []string
	Labels               map[string]string
	ImageTargets         []struct {
		Selector string `json:"selector"`
	}
	DeployTarget json.RawMessage
}

func names(ms []manifest) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

func find(ms []manifest, name string) (manifest, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return manifest{}, false
}

func TestTiltfileK8sModeParses(t *testing.T) {
	pinnedTool(t, "kustomize") // the Tiltfile renders deploy/k8s with it
	ms := tiltfileResult(t, "--mode=k8s")
	for _, want := range []string{"statsd-sink", "front-proxy", "frontend", "catalog", "inventory", "legacy-pricing", "load", "prometheus", "alertmanager", "jaeger", "grafana"} {
		m, ok := find(ms, want)
		if !ok {
			t.Errorf("k8s mode has no resource %q; it has %v", want, names(ms))
			continue
		}
		if !bytes.Contains(m.DeployTarget, []byte("Deployment")) {
			t.Errorf("k8s mode resource %q deploys no Kubernetes Deployment", want)
		}
	}
	// The infra UIs and APIs are forwarded to the ports local mode uses.
	for name, port := range map[string]int{"prometheus": 9090, "alertmanager": 9093, "jaeger": 16686, "grafana": 3000} {
		m, ok := find(ms, name)
		if !ok {
			continue // reported above
		}
		var dt struct {
			PortForwardTemplateSpec struct {
				Forwards []struct {
					LocalPort int `json:"localPort"`
				} `json:"forwards"`
			} `json:"portForwardTemplateSpec"`
		}
		if err := json.Unmarshal(m.DeployTarget, &dt); err != nil {
			t.Fatalf("k8s mode resource %q: %v", name, err)
		}
		var local []int
		for _, f := range dt.PortForwardTemplateSpec.Forwards {
			local = append(local, f.LocalPort)
		}
		if !slices.Contains(local, port) {
			t.Errorf("k8s mode resource %q forwards no local port %d (k8s_resource port_forwards)", name, port)
		}
	}
	images := map[string]bool{}
	for _, m := range ms {
		for _, it := range m.ImageTargets {
			images[it.Selector] = true
		}
	}
	for _, img := range []string{"hopwatch/hopwatch-proxy", "hopwatch/statsd-sink", "hopwatch/demo"} {
		if !images[img] {
			t.Errorf("k8s mode builds no image %s (docker_build); it builds %v", img, images)
		}
	}
}

func TestTiltfileLocalModeParses(t *testing.T) {
	ms := tiltfileResult(t, "--port-base=40000", "--state-dir="+t.TempDir())
	labels := map[string]string{
		"build-hopwatch-proxy": "build", "build-statsd-sink": "build", "build-demo": "build",
		"statsd-sink": "pipeline", "front-proxy": "pipeline", "sidecar-frontend": "pipeline",
		"sidecar-catalog": "pipeline", "sidecar-inventory": "pipeline", "sidecar-legacy-pricing": "pipeline", "pipeline-check": "pipeline",
		"frontend": "demo", "catalog": "demo", "catalog-canary": "demo", "inventory": "demo", "legacy-pricing": "demo", "load": "demo",
		"prometheus": "infra", "jaeger": "infra", "grafana": "infra", "alertmanager": "infra",
	}
	for name, label := range labels {
		m, ok := find(ms, name)
		if !ok {
			t.Errorf("local mode has no resource %q; it has %v", name, names(ms))
			continue
		}
		if _, ok := m.Labels[label]; !ok {
			t.Errorf("resource %q: labels %v, want %q", name, m.Labels, label)
		}
	}
	if len(ms) != len(labels) {
		t.Errorf("local mode has %d resources %v, want %d", len(ms), names(ms), len(labels))
	}
	if _, err := exec.LookPath("grafana"); err != nil {
		if m, ok := find(ms, "grafana"); ok && !bytes.Contains(m.DeployTarget, []byte("grafana.com")) {
			t.Errorf("without grafana on PATH, the grafana resource must explain how to get it; it is %s", m.DeployTarget)
		}
	}
}

// TestTiltfileRejectsBadOptions checks that a bad option fails with a
// message that names it, rather than starting a half-configured pipeline.
func TestTiltfileRejectsBadOptions(t *testing.T) {
	tilt := pinnedTool(t, "tilt")
	root := e2etest.RepoRoot(t)
	for _, tc := range []struct{ arg, want string }{
		{"--mode=swarm", "--mode=swarm: want local or k8s"},
		{"--port-base=80", "--port-base=80: want a port number from 1024"},
		{"--port-base=65530", "--port-base=65530: want a port number from 1024"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, tilt, "alpha", "tiltfile-result", "--file", filepath.Join(root, "Tiltfile"), "--", tc.arg)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("%s: the Tiltfile loaded; want an error", tc.arg)
			continue
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: output does not say %q:\n%s", tc.arg, tc.want, out)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// leftovers lists the processes whose command line mentions dir: everything
// the Tiltfile starts runs a binary from the test's bin directory or writes
// into its state directory.
func leftovers(dirs ...string) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, d := range dirs {
			if strings.Contains(cmdline, d) {
				out[pid] = cmdline
			}
		}
	}
	return out
}

// TestTiltCI runs `tilt ci --web-mode=prod` over local mode. Tilt exits 0
// only when every resource is ready within the time limit, and the
// pipeline-check resource is ready only when Prometheus holds
// envoy_cluster_upstream_rq_total from statsd-sink for every demo cluster
// and Jaeger holds one trace with every proxy's server and client spans and
// every app's spans in parent order (the Tiltfile, deploy/local/full-trace.jq). Afterwards no process may be left.
func TestTiltCI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline under Tilt (a few minutes); not in -short")
	}
	tilt := pinnedTool(t, "tilt")
	pinnedTool(t, "prometheus")
	pinnedTool(t, "jaeger")
	pinnedTool(t, "alertmanager")
	root := e2etest.RepoRoot(t)

	binDir := t.TempDir()
	stateDir := t.TempDir()
	// The pipeline-check probe must really find the data; make sure this
	// Tiltfile still has one that asks for it.
	ms := tiltfileResult(t, "--port-base=40000", "--state-dir="+stateDir, "--bin-dir="+binDir)
	check, ok := find(ms, "pipeline-check")
	if !ok {
		t.Fatalf("the Tiltfile has no pipeline-check resource; resources: %v", names(ms))
	}
	for _, want := range []string{"envoy_cluster_upstream_rq_total", "inventory_app", "service=front-proxy", "deploy/local/full-trace.jq", "query_exemplars", "ReadinessProbe"} {
		if !bytes.Contains(check.DeployTarget, []byte(want)) {
			t.Errorf("pipeline-check's readiness probe does not look for %s:\n%s", want, check.DeployTarget)
		}
	}

	var out bytes.Buffer
	var cmd *exec.Cmd
	var err error
	var base int
	for attempt := range 3 {
		base = e2etest.FreePortBlock(t, numPorts, offStatsd)
		out.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		cmd = exec.CommandContext(ctx, tilt, "ci", "--web-mode=prod", "--timeout=10m",
			"--port="+strconv.Itoa(freePort(t)), "--file", filepath.Join(root, "Tiltfile"), "--",
			"--port-base="+strconv.Itoa(base), "--bin-dir="+binDir, "--state-dir="+stateDir,
			"--load-rate=20", "--load-duration=15m")
		cmd.Dir = root
		cmd.Stdout = &out
		cmd.Stderr = &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// On the outer timeout, stop Tilt's whole process group (it and
		// everything it started, unless they made their own).
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		start := time.Now()
		err = cmd.Run()
		cancel()
		t.Logf("tilt ci (attempt %d, ports %d-%d) took %v", attempt+1, base, base+numPorts-1, time.Since(start).Round(time.Second))
		// Another process may take a port of the block between the check and
		// the bind; only that is retried.
		if err == nil || !strings.Contains(out.String(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("tilt ci failed: %v\n%s", err, tail(out.String(), 200))
	}
	if !strings.Contains(out.String(), "SUCCESS. All workloads are healthy.") {
		t.Fatalf("tilt ci exited 0 without its success line:\n%s", tail(out.String(), 200))
	}
	// The probe's own report of what it found, logged by Tilt when it passed.
	for _, want := range []string{
		"pipeline OK: Prometheus has envoy_cluster_upstream_rq_total from statsd-sink for clusters frontend, frontend_app, catalog_app and inventory_app",
		"Jaeger has a trace front-proxy → frontend-sidecar → frontend → catalog-sidecar → catalog → inventory-sidecar → inventory, " +
			"and catalog → legacy-pricing-sidecar → legacy-pricing (jaeger-client-go), server and client spans in parent order",
		"an exemplar on envoy_cluster_upstream_rq_time_bucket opens its trace in Jaeger, with a span of the proxy that recorded it",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tilt ci succeeded, but pipeline-check never reported %q:\n%s", want, tail(out.String(), 100))
		}
	}

	// Every process is stopped: give Tilt's teardown a moment, then look.
	var left map[int]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		left = leftovers(binDir, stateDir)
		if len(left) == 0 && e2etest.PortBlockFree(base, numPorts, offStatsd) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(left) > 0 {
		var msgs []string
		for pid, c := range left {
			msgs = append(msgs, fmt.Sprintf("pid %d: %s", pid, c))
			// Only these PIDs, found by our own temporary paths.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Errorf("processes left after tilt ci exited:\n%s", strings.Join(msgs, "\n"))
	}
	if !e2etest.PortBlockFree(base, numPorts, offStatsd) {
		t.Errorf("a port of %d-%d is still in use 30s after tilt ci exited: something it started is still running", base, base+numPorts-1)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
