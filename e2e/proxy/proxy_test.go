// Package proxy_test runs the real hopwatch-proxy binary: configuration
// checking, reload by SIGHUP and by watching the file, and the SIGTERM drain.
package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// proc is a running hopwatch-proxy.
type proc struct {
	*e2etest.Process
	listener string // address of the listener named "ingress"
	admin    string
	path     string // configuration file, for reloads
}

// startProc writes yaml to a new configuration file, runs the binary on it
// and waits until it logs the addresses of its admin server and its
// "ingress" listener.
func startProc(t *testing.T, yaml string, extra ...string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeFile(t, path, yaml)
	bin := e2etest.GoBuild(t, "cmd/hopwatch-proxy")
	p := &proc{path: path, Process: e2etest.StartProcess(t, "hopwatch-proxy", nil, bin, append([]string{"-c", path, "--log-format", "json"}, extra...)...)}
	p.WaitFor(t, "its addresses logged", 20*time.Second, func() error {
		sc := bufio.NewScanner(strings.NewReader(p.Output()))
		for sc.Scan() {
			var l struct {
				Msg      string `json:"msg"`
				Listener string `json:"listener"`
				Address  string `json:"address"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			switch {
			case l.Msg == "admin server started":
				p.admin = l.Address
			case l.Msg == "listener started" && l.Listener == "ingress":
				p.listener = l.Address
			}
		}
		if p.listener == "" || p.admin == "" {
			return errors.New("no admin or ingress address logged yet")
		}
		return nil
	})
	return p
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// config is a minimal proxy: /direct answers {{BODY}}, everything else
// goes to {{UP}}.
func config(body, up, lifecycle string) string {
	return strings.NewReplacer("{{BODY}}", body, "{{UP}}", up, "{{LIFECYCLE}}", lifecycle).Replace(`
admin: {address: "127.0.0.1:0"}
lifecycle: {{LIFECYCLE}}
listeners:
  - name: ingress
    address: "127.0.0.1:0"
    stat_prefix: ingress_http
    access_log: []
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {path: /direct}
            direct_response: {status: 200, body: "{{BODY}}"}
          - match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`)
}

var client = &http.Client{Timeout: 20 * time.Second}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res, string(b)
}

// waitBody polls url until its body is want.
func waitBody(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		if _, body = get(t, url); body == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s still answers %q, want %q", url, body, want)
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, config("ok", "127.0.0.1:9", "{drain_time: 1s}"))
	bad := filepath.Join(dir, "bad.yaml")
	// Two mistakes: an unknown key on line 9 and a cluster that does not
	// exist on line 17 (line 1 is empty).
	badBody := strings.Replace(config("ok", "127.0.0.1:9", "{drain_time: 1s}"), "    access_log: []\n", "    access_log: []\n    acces_log: []\n", 1)
	badBody = strings.Replace(badBody, "route: {cluster: up}", "route: {cluster: nope}", 1)
	writeFile(t, bad, badBody)

	for _, tc := range []struct {
		name     string
		path     string
		wantCode int
		want     []string
	}{
		{"good", good, 0, []string{"configuration OK"}},
		{"bad", bad, 1, []string{bad + ":9:", "acces_log", bad + ":17:", "nope"}},
		{"missing", filepath.Join(dir, "absent.yaml"), 1, []string{"absent.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, e2etest.GoBuild(t, "cmd/hopwatch-proxy"), "--check-config", "-c", tc.path).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestReloadBySIGHUP(t *testing.T) {
	t.Parallel()
	p := startProc(t, config("one", "127.0.0.1:9", "{drain_time: 0s, watch_config: false}"))
	url := "http://" + p.listener + "/direct"
	if _, body := get(t, url); body != "one" {
		t.Fatalf("body %q, want one", body)
	}
	writeFile(t, p.path, config("two", "127.0.0.1:9", "{drain_time: 0s, watch_config: false}"))
	// Without SIGHUP nothing changes: the file is not watched.
	time.Sleep(500 * time.Millisecond)
	if _, body := get(t, url); body != "one" {
		t.Fatalf("body %q before SIGHUP with watch_config false, want one", body)
	}
	p.Signal(t, syscall.SIGHUP)
	waitBody(t, url, "two")

	// A broken file is refused; the running configuration keeps serving.
	writeFile(t, p.path, "listeners: [\n")
	p.Signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), "reload rejected") {
		if time.Now().After(deadline) {
			t.Fatalf("no rejection logged:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, body := get(t, url); body != "two" {
		t.Errorf("after a rejected reload: body %q, want two", body)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.WaitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestReloadByFileWatch(t *testing.T) {
	t.Parallel()
	p := startProc(t, config("one", "127.0.0.1:9", "{drain_time: 0s, watch_config: true}"), "--watch-interval", "100ms")
	url := "http://" + p.listener + "/direct"
	if _, body := get(t, url); body != "one" {
		t.Fatalf("body %q, want one", body)
	}
	writeFile(t, p.path, config("two", "127.0.0.1:9", "{drain_time: 0s, watch_config: true}"))
	waitBody(t, url, "two")
}

func TestSIGTERMDrain(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			time.Sleep(time.Second)
		}
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	const drain = 3 * time.Second
	p := startProc(t, config("direct", up.Listener.Addr().String(), "{drain_time: 3s, watch_config: false}"))
	base := "http://" + p.listener

	if res, _ := get(t, base+"/fast"); res.Close {
		t.Fatal("Connection: close before draining")
	}
	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		res, err := client.Get(base + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		slow <- result{res.StatusCode, string(b), err}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the upstream")
	}
	signalled := time.Now()
	p.Signal(t, syscall.SIGTERM)
	// Wait for the drain to start, then check new requests are still
	// served but told to close their connections.
	deadline := time.Now().Add(drain - time.Second)
	for !strings.Contains(p.Output(), `"msg":"draining"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no drain logged:\n%s", p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// logrotate sends SIGUSR1 whenever it likes: reopening the logs must
	// not cut the drain short (only a second SIGTERM or SIGINT does).
	p.Signal(t, syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	res, body := get(t, base+"/fast")
	if res.StatusCode != http.StatusOK || body != "upstream /fast" || !res.Close {
		t.Errorf("request during the drain: %d %q Connection %q; want 200 with Connection: close", res.StatusCode, body, res.Header.Get("Connection"))
	}
	if r := <-slow; r.err != nil || r.status != http.StatusOK || r.body != "upstream /slow" {
		t.Errorf("in-flight request: %d %q %v; want 200 \"upstream /slow\"", r.status, r.body, r.err)
	}
	// drain_time for the drain itself plus a generous margin for a loaded
	// machine; the in-flight request finished long before.
	if code := p.WaitExit(t, drain+10*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took := time.Since(signalled); took < drain {
		t.Errorf("exited %v after SIGTERM, before the %v drain time", took, drain)
	}
}

func TestSecondSIGTERMSkipsDrain(t *testing.T) {
	t.Parallel()
	p := startProc(t, config("direct", "127.0.0.1:9", "{drain_time: 60s, watch_config: false}"))
	p.Signal(t, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), `"msg":"draining"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no drain logged:\n%s", p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Signal(t, syscall.SIGINT)
	// Far less than the 60 s drain time.
	if code := p.WaitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}
