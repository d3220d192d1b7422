package e2etest

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proxy is a running hopwatch-proxy binary.
type Proxy struct {
	// Admin is the admin server's host:port, taken from the config.
	Admin string
	// ConfigPath is the config file the proxy runs; rewrite it and call
	// Reload to hot-reload.
	ConfigPath string
	// Stdout holds the access log (JSON lines by default); Stderr the
	// proxy's own log.
	Stdout, Stderr *SyncBuffer

	proc *Process
}

// StartProxy writes config to a temporary file, runs the real
// hopwatch-proxy on it and waits until its admin server answers /ready.
// The config must give admin.address (use FreeAddr). The proxy gets
// SIGTERM at cleanup, and its logs are printed if the test failed.
func StartProxy(t testing.TB, config string) *Proxy {
	t.Helper()
	bin := GoBuild(t, "cmd/hopwatch-proxy")
	admin := adminAddress(t, config)
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Admin: admin, ConfigPath: path, Stdout: &SyncBuffer{}}
	p.proc = startCmd(t, "hopwatch-proxy", exec.Command(bin, "-c", path, "--log-format", "json"), p.Stdout)
	p.Stderr = p.proc.out
	t.Cleanup(func() {
		// A second SIGTERM skips the drain: the test is over.
		_ = p.proc.cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(50 * time.Millisecond)
		_ = p.proc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.proc.done:
		case <-time.After(15 * time.Second):
			p.proc.Kill()
		}
	})
	p.proc.WaitFor(t, "admin "+admin+" ready", 20*time.Second, func() error { return HTTPOK("http://" + admin + "/ready") })
	return p
}

// PID returns the proxy's process ID.
func (p *Proxy) PID() int { return p.proc.PID() }

// Reload writes config over the proxy's config file and sends SIGHUP.
// It returns once the proxy logs a reload newer than the call (success or
// rejection); the caller checks the outcome through behaviour or stats.
func (p *Proxy) Reload(t testing.TB, config string) {
	t.Helper()
	before := reloads(p.Stderr.String())
	if err := os.WriteFile(p.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p.proc.Signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for reloads(p.Stderr.String()) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged within 10s:\n%s", tail(p.Stderr.String(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ConfigText returns the config file the proxy runs now.
func (p *Proxy) ConfigText(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// reloads counts the reload outcomes in the proxy's JSON log.
func reloads(log string) int {
	return strings.Count(log, `"msg":"configuration reloaded"`) + strings.Count(log, `"msg":"reload rejected`)
}

// AdminGet fetches an admin path ("/clusters?format=json") and returns the
// body; a non-200 answer fails the test.
func (p *Proxy) AdminGet(t testing.TB, path string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+p.Admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, body := Fetch(t, http.DefaultClient, req) //nolint:bodyclose // Fetch has read and closed it
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, res.Status, body)
	}
	return body
}

// Stats returns every counter and gauge by its flat Envoy name, from
// /stats?format=json. Histograms are left out.
func (p *Proxy) Stats(t testing.TB) map[string]uint64 {
	t.Helper()
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(p.AdminGet(t, "/stats?format=json")), &doc); err != nil {
		t.Fatalf("decoding /stats?format=json: %v", err)
	}
	out := make(map[string]uint64, len(doc.Stats))
	for _, s := range doc.Stats {
		var v uint64
		if json.Unmarshal(s.Value, &v) == nil {
			out[s.Name] = v
		}
	}
	return out
}

// Stat returns one counter or gauge by its flat Envoy name
// ("cluster.backend.upstream_rq_503"), or 0 when the proxy has no such stat.
func (p *Proxy) Stat(t testing.TB, name string) uint64 {
	t.Helper()
	return p.Stats(t)[name]
}

// AccessLog waits until the proxy has written at least want access-log
// lines (the log is flushed every second, as Envoy's) or 10 s have passed,
// and returns the lines written so far, decoded from JSON.
func (p *Proxy) AccessLog(t testing.TB, want int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Stdout.String(), "\n") < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var out []map[string]any
	for _, line := range strings.Split(p.Stdout.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line is not JSON: %v: %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// adminAddress finds admin.address in a config without decoding it (the
// test's config may be deliberately unusual elsewhere).
func adminAddress(t testing.TB, config string) string {
	t.Helper()
	lines := strings.Split(config, "\n")
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "admin:") {
			rest := strings.TrimSpace(strings.TrimPrefix(trimmed, "admin:"))
			if strings.HasPrefix(rest, "{") { // admin: {address: 127.0.0.1:9901}
				rest = strings.Trim(rest, "{} ")
				if a, ok := strings.CutPrefix(rest, "address:"); ok {
					return strings.Trim(strings.TrimSpace(a), `"'`)
				}
			}
			for _, next := range lines[i+1:] {
				if a, ok := strings.CutPrefix(strings.TrimSpace(next), "address:"); ok {
					return strings.Trim(strings.TrimSpace(a), `"'`)
				}
			}
		}
	}
	t.Fatal("e2etest.StartProxy: the config must set admin.address (use FreeAddr)")
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
