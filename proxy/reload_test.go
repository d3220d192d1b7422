package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reloadConfig is rendered with {{BODY}} (the direct response), {{EXTRA}}
// (more routes), {{API}} (the /api route action), {{KB}} (the header size
// limit, whose change forces a server handover) and {{CLUSTERS}}.
var reloadConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: []`, `limits: {max_request_headers_kb: {{KB}}}`) + `
          - match: {path: /direct}
            direct_response: {status: 200, body: "{{BODY}}"}
          - match: {prefix: /api}
            route: {{API}}
{{EXTRA}}
clusters:
  - name: a
    endpoints: [{address: "{{A}}"}]
{{CLUSTERS}}
`

func TestHotReloadUnderLoad(t *testing.T) {
	t.Parallel()
	a := upstream(t, echoHandler("a"))
	b := upstream(t, echoHandler("b"))
	type version struct {
		name                 string
		body, extra, api, kb string
		clusters             string
		check                func(t *testing.T, h *harness)
	}
	clusterB := "  - name: b\n    endpoints: [{address: \"" + b + "\"}]"
	bigHeader := strings.Repeat("x", 40<<10)
	// headerStatus sends a 40 KiB header on a new connection: connections
	// opened before a handover keep the old server's settings until they
	// close. net/http answers an oversized header with 431 and hangs up
	// while the client may still be writing, so a reset connection counts
	// as the 431 it could not read (0 here).
	headerStatus := func(h *harness) int {
		req, _ := http.NewRequest(http.MethodGet, h.url("ingress", "/direct"), nil)
		req.Header.Set("X-Big", bigHeader)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := c.Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF") {
				return 0
			}
			h.t.Fatalf("request with a big header: %v", err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	versions := []version{
		{name: "v1", body: "v1", api: "{cluster: a}", kb: "60", check: func(t *testing.T, h *harness) {
			if got := headerStatus(h); got != 200 {
				t.Errorf("40 KiB header under a 60 KiB limit: status %d", got)
			}
		}},
		{name: "v2 adds cluster b", body: "v2", api: "{cluster: a}", kb: "60", clusters: clusterB,
			extra: "          - {match: {prefix: /b}, route: {cluster: b}}",
			check: func(t *testing.T, h *harness) {
				if res, _ := h.get(h.url("ingress", "/b")); res.Header.Get("X-Upstream") != "b" {
					t.Errorf("/b after adding cluster b: status %d from %q", res.StatusCode, res.Header.Get("X-Upstream"))
				}
			}},
		{name: "v3 changes weights", body: "v3", kb: "60", clusters: clusterB,
			api: "{weighted_clusters: {clusters: [{name: a, weight: 0}, {name: b, weight: 1}]}}",
			check: func(t *testing.T, h *harness) {
				for range 10 {
					if res, _ := h.get(h.url("ingress", "/api")); res.Header.Get("X-Upstream") != "b" {
						t.Fatalf("/api with all weight on b went to %q", res.Header.Get("X-Upstream"))
					}
				}
			}},
		{name: "v4 lowers the header limit", body: "v4", api: "{cluster: a}", kb: "30", clusters: clusterB,
			check: func(t *testing.T, h *harness) {
				if got := headerStatus(h); got != http.StatusRequestHeaderFieldsTooLarge && got != 0 {
					t.Errorf("40 KiB header under a 30 KiB limit: status %d, want 431 from the new server", got)
				}
			}},
	}
	render := func(v version) []string {
		return []string{"{{BODY}}", v.body, "{{EXTRA}}", v.extra, "{{API}}", v.api, "{{KB}}", v.kb, "{{CLUSTERS}}", v.clusters}
	}
	h := startProxy(t, strings.NewReplacer(render(versions[0])...).Replace(reloadConfig), "{{A}}", a)
	versions[0].check(t, h)

	// Bounded load: four clients, at most 3000 requests each and ~3 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var sent, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			for i := 0; i < 3000 && ctx.Err() == nil; i++ {
				path := "/direct"
				if (g+i)%2 == 1 {
					path = "/api"
				}
				sent.Add(1)
				res, err := c.Get(h.url("ingress", path))
				var body []byte
				if err == nil {
					body, err = io.ReadAll(res.Body)
					res.Body.Close()
				}
				var bad string
				switch {
				case err != nil:
					bad = err.Error()
				case res.StatusCode != http.StatusOK:
					bad = fmt.Sprintf("%s: status %d: %s", path, res.StatusCode, body)
				case path == "/direct" && !strings.HasPrefix(string(body), "v"):
					bad = fmt.Sprintf("/direct: body %q", body)
				}
				if bad != "" {
					failed.Add(1)
					failMu.Lock()
					if len(failures) < 10 {
						failures = append(failures, bad)
					}
					failMu.Unlock()
				}
			}
		})
	}

	for _, v := range versions[1:] {
		time.Sleep(300 * time.Millisecond)
		h.writeConfig(strings.NewReplacer(render(v)...).Replace(reloadConfig))
		if err := h.srv.Reload(context.Background()); err != nil {
			t.Fatalf("reload to %s: %v", v.name, err)
		}
		if _, body := h.get(h.url("ingress", "/direct")); body != v.body {
			t.Errorf("after reload to %s: /direct = %q, want %q", v.name, body, v.body)
		}
		v.check(t, h)
	}

	// A broken file is refused with its location; the last good
	// configuration keeps serving.
	time.Sleep(300 * time.Millisecond)
	bad := strings.Replace(strings.NewReplacer(render(versions[3])...).Replace(reloadConfig),
		"    stat_prefix: ingress_http\n", "    stat_prefix: ingress_http\n    stat_prefx: typo\n", 1)
	h.writeConfig(bad)
	err := h.srv.Reload(context.Background())
	if err == nil {
		t.Fatal("reload of a file with an unknown key succeeded")
	}
	// The typo is on line 8 of the rendered file (line 1 is empty).
	if want := h.path + ":8"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "stat_prefx") {
		t.Errorf("reload error %q does not name %s and the key", err, want)
	}
	if _, body := h.get(h.url("ingress", "/direct")); body != "v4" {
		t.Errorf("after a refused reload: /direct = %q, want v4 still", body)
	}
	_, si := h.get(h.adminURL("/server_info"))
	if !strings.Contains(si, `"config_rejects": 1`) || !strings.Contains(si, `"config_loads": 4`) {
		t.Errorf("/server_info after 3 reloads and 1 rejection:\n%s", si)
	}

	wg.Wait()
	if sent.Load() < 100 {
		t.Errorf("only %d requests ran during the reloads", sent.Load())
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during hot reloads; first: %q", n, sent.Load(), failures)
	}
	t.Logf("%d requests during 4 reloads and 1 rejection", sent.Load())
}

func TestReloadAddsAndRemovesListeners(t *testing.T) {
	t.Parallel()
	base := testHead + listenersHead("ingress", "ingress_http", `access_log: []`) + ` [{match: {prefix: /}, direct_response: {status: 200, body: ingress}}]
{{MORE}}
`
	extra := listenerHead("extra", "extra_http", `access_log: []`) + ` [{match: {prefix: /}, direct_response: {status: 200, body: extra}}]`
	h := startProxy(t, base, "{{MORE}}", "")
	if h.srv.ListenerAddr("extra") != nil {
		t.Fatal("listener extra exists before it is configured")
	}
	h.vars = append(h.vars[:len(h.vars)-2], "{{MORE}}", extra)
	h.writeConfig(base)
	if err := h.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	extraURL := h.url("extra", "/")
	if _, body := h.get(extraURL); body != "extra" {
		t.Errorf("new listener answers %q, want extra", body)
	}
	if _, body := h.get(h.url("ingress", "/")); body != "ingress" {
		t.Errorf("old listener answers %q, want ingress", body)
	}

	h.vars = append(h.vars[:len(h.vars)-2], "{{MORE}}", "")
	h.writeConfig(base)
	if err := h.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.srv.ListenerAddr("extra") != nil {
		t.Error("listener extra still reported after its removal")
	}
	h.client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := h.client.Get(extraURL)
		if err != nil {
			break // refused: the socket is closed
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the removed listener still accepts requests after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, body := h.get(h.url("ingress", "/")); body != "ingress" {
		t.Errorf("remaining listener answers %q, want ingress", body)
	}
}

// TestWatchConfigSeesEarlierEdit edits the file after the proxy loaded it
// but before the watcher starts, the window in which hopwatch-proxy's
// main starts WatchConfig on its own goroutine.
func TestWatchConfigSeesEarlierEdit(t *testing.T) {
	t.Parallel()
	cfg := `
admin: {address: "127.0.0.1:0"}
lifecycle: {drain_time: 0s, watch_config: true}
listeners:
` + listenerHead("ingress", "ingress_http", `access_log: []`) + ` [{match: {prefix: /}, direct_response: {status: 200, body: "{{BODY}}"}}]
`
	h := startProxy(t, cfg, "{{BODY}}", "one")
	h.vars = append(h.vars[:len(h.vars)-2], "{{BODY}}", "two")
	h.writeConfig(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.srv.WatchConfig(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, body := h.get(h.url("ingress", "/")); body == "two" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an edit made before WatchConfig started was never loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
