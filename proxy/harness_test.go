package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// harness is one in-process proxy started from a YAML file in a temporary
// directory, with its access log written as JSON beside it.
type harness struct {
	t       testing.TB
	dir     string
	path    string // configuration file
	logPath string // JSON access log
	srv     *proxy.Server
	vars    []string // placeholder replacements used to render configs
	client  *http.Client
}

// testHead starts every test configuration: the admin endpoint on an
// ephemeral port, no drain wait and no file watch, so that a test proxy
// starts and stops at once.
const testHead = `
admin: {address: "127.0.0.1:0"}
lifecycle: {drain_time: 0s, watch_config: false}
`

// listenersHead is the YAML of the listeners section up to the routes of
// its first listener, which listenerHead writes.
func listenersHead(name, statPrefix string, fields ...string) string {
	return "listeners:\n" + listenerHead(name, statPrefix, fields...)
}

// listenerHead is the YAML of one item of the listeners section up to its
// routes: name on an ephemeral port with statPrefix, the further listener
// fields given one a line (`access_log: []`, limits), and one virtual host
// "all" for every domain. It ends at "routes:", so the test's routes
// follow, as a flow list or as a block indented ten spaces.
func listenerHead(name, statPrefix string, fields ...string) string {
	var b strings.Builder
	b.WriteString("  - name: " + name + "\n    address: \"127.0.0.1:0\"\n    stat_prefix: " + statPrefix + "\n")
	for _, f := range fields {
		b.WriteString("    " + f + "\n")
	}
	b.WriteString("    virtual_hosts:\n      - name: all\n        domains: [\"*\"]\n        routes:")
	return b.String()
}

// startProxy renders yaml (replacing {{DIR}}, {{LOG}} and the given
// placeholder/value pairs), starts a proxy on it and stops it when the test
// ends.
func startProxy(t *testing.T, yaml string, vars ...string) *harness {
	t.Helper()
	return startProxyWith(t, nil, yaml, vars...)
}

// startProxyWith is startProxy with options for proxy.New (a span
// exporter, say), for tests and benchmarks. The proxy logs to stderr at
// debug level in verbose tests, and nowhere otherwise.
func startProxyWith(tb testing.TB, opts []proxy.Option, yaml string, vars ...string) *harness {
	tb.Helper()
	dir := tb.TempDir()
	h := &harness{t: tb, dir: dir, path: filepath.Join(dir, "proxy.yaml"), logPath: filepath.Join(dir, "access.log")}
	h.vars = append([]string{"{{DIR}}", dir, "{{LOG}}", h.logPath}, vars...)
	h.writeConfig(yaml)
	log := slog.New(slog.DiscardHandler)
	if _, bench := tb.(*testing.B); testing.Verbose() && !bench {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := proxy.New(h.path, log, opts...)
	if err != nil {
		tb.Fatalf("proxy.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	h.srv = srv
	tr := &http.Transport{}
	h.client = &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tb.Cleanup(func() {
		tr.CloseIdleConnections()
		// Cancelled at once: the drain's wait is skipped, in-flight
		// requests still get their second or so to finish.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
	})
	return h
}

// with returns a copy of h that reports to t, for use inside subtests:
// a subtest must not fail its parent from its own goroutine.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// writeConfig renders yaml and replaces the configuration file atomically,
// so that a concurrent reader never sees half a file.
func (h *harness) writeConfig(yaml string) {
	h.t.Helper()
	body := strings.NewReplacer(h.vars...).Replace(yaml)
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		h.t.Fatal(err)
	}
}

// url is the http URL of path on the named listener.
func (h *harness) url(listener, path string) string {
	h.t.Helper()
	a := h.srv.ListenerAddr(listener)
	if a == nil {
		h.t.Fatalf("listener %q has no address", listener)
	}
	return "http://" + a.String() + path
}

// adminURL is the URL of an admin endpoint.
func (h *harness) adminURL(path string) string {
	return "http://" + h.srv.AdminAddr().String() + path
}

// do sends req and returns the response with its body read.
func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	return e2etest.Fetch(h.t, h.client, req)
}

// get is a GET with optional header name/value pairs.
func (h *harness) get(url string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return h.do(req)
}

// logLine waits for the access-log line whose request_id is rid (the file
// logger flushes about once a second) and returns it decoded.
func (h *harness) logLine(rid string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := findLogLine(h.t, h.logPath, rid); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(h.logPath)
			h.t.Fatalf("no access-log line with request_id %q in %s; file holds:\n%s", rid, h.logPath, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stat returns a counter's or a gauge's value by its flat name, or 0 when
// the proxy has no such stat.
func (h *harness) stat(name string) uint64 {
	switch st := h.srv.Stats().Find(name).(type) {
	case *stats.Counter:
		return st.Value()
	case *stats.Gauge:
		return st.Value()
	}
	return 0
}

// wantStats checks that every named counter or gauge exists and reads
// its wanted value.
func (h *harness) wantStats(want map[string]uint64) {
	h.t.Helper()
	for name, w := range want {
		if h.srv.Stats().Find(name) == nil {
			h.t.Errorf("stat %s does not exist", name)
		} else if got := h.stat(name); got != w {
			h.t.Errorf("%s = %d, want %d", name, got, w)
		}
	}
}

// waitStat waits up to 10 s until stat name reads want.
func (h *harness) waitStat(name string, want uint64) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.stat(name) != want {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s = %d after 10s, want %d", name, h.stat(name), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func findLogLine(t testing.TB, path, rid string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasSuffix(line, []byte("}")) {
			continue // a line still being written
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("access log line is not JSON: %v\n%s", err, line)
		}
		if m["request_id"] == rid {
			return m
		}
	}
	return nil
}

// flags returns the response_flags of a log line.
func flags(m map[string]any) string {
	s, _ := m["response_flags"].(string)
	return s
}

// hasFlag reports whether the comma-separated flag list holds f.
func hasFlag(list, f string) bool {
	for p := range strings.SplitSeq(list, ",") {
		if p == f {
			return true
		}
	}
	return false
}

// rawOrigin is e2etest.RawServer: an origin that records or sends exact bytes.
func rawOrigin(t *testing.T, serve func(c net.Conn)) string { return e2etest.RawServer(t, serve) }

// closedPort returns a loopback address that refuses connections for the
// rest of the test (e2etest.RefusingAddr).
func closedPort(t *testing.T) string { return e2etest.RefusingAddr(t) }

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// to dir and returns the file paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool, cert tls.Certificate) {
	t.Helper()
	c := e2etest.SelfSignedCert(t, dir)
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c.CertFile, c.KeyFile, c.Pool, cert
}

// echo is what the echo upstream saw.
type echo struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Host   string      `json:"host"`
	Proto  int         `json:"proto"`
	TLS    bool        `json:"tls"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// echoHandler answers with a JSON description of the request, and sets
// x-upstream: <name> so that tests can tell upstreams apart.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e := echo{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Proto: r.ProtoMajor, TLS: r.TLS != nil, Header: r.Header, Body: string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		w.Header().Set("Server", "upstream-"+name)
		_ = json.NewEncoder(w).Encode(e)
	})
}

func decodeEcho(t *testing.T, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("upstream echo is not JSON (%v): %q", err, body)
	}
	return e
}
