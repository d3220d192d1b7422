package proxy_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// pathConfig denies /admin with a direct 403 and sends everything else to
// a recording upstream, with the listener's path normalisation at its
// defaults unless {{PATHNORM}} sets it.
var pathConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}"}]`, `{{PATHNORM}}`) + `
          - match: {prefix: /admin}
            direct_response: {status: 403, body: "denied"}
          - match: {prefix: /}
            route: {cluster: app}
clusters:
  - name: app
    endpoints: [{address: "{{UP}}"}]
`

// targetRecorder is an upstream that records the request target of every
// request that reaches it.
type targetRecorder struct {
	mu      sync.Mutex
	targets []string
}

func (r *targetRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.targets = append(r.targets, req.RequestURI)
	r.mu.Unlock()
	_, _ = w.Write([]byte("app"))
}

func (r *targetRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.targets...)
}

// rawGet sends one request with the target exactly as given (no client
// library canonicalises it) and returns the status code and the Location.
func rawGet(t *testing.T, h *harness, method, target, rid string) (int, string) {
	t.Helper()
	req := method + " " + target + " HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: " + rid + "\r\nConnection: close\r\n\r\n"
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(rawExchange(t, h.srv.ListenerAddr("ingress").String(), req))), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

// TestPathNormalizationDenyRoute: traversal probes against a deny route on
// /admin never reach the upstream, whatever their spelling; they are
// denied (403), refused (400) or redirected to a path the deny route then
// sees; normal paths arrive unchanged.
func TestPathNormalizationDenyRoute(t *testing.T) {
	rec := &targetRecorder{}
	h := startProxy(t, pathConfig, "{{UP}}", upstream(t, rec), "{{PATHNORM}}", "server_name: hopwatch")
	probes := []struct {
		method, target string
		code           int
		location       string
	}{
		{"GET", "/x/../admin", 403, ""},
		{"GET", "/x/%2e%2e/admin", 403, ""},
		{"GET", "/x/%2E%2e/admin/users", 403, ""},
		{"GET", "/./admin", 403, ""},
		{"GET", "/%2E/admin", 403, ""},
		{"GET", "//admin", 403, ""},
		{"GET", "///admin//x", 403, ""},
		{"GET", "/%61dmin", 403, ""},
		{"GET", "/x/..;/admin", 403, ""},
		{"GET", "/x/.;/../admin", 403, ""},
		{"GET", `/x\..\admin`, 403, ""},
		{"GET", "http://example.com/x/../admin", 403, ""},
		{"GET", "/../admin", 400, ""},
		{"GET", "/x/../../admin", 400, ""},
		{"GET", "/%2e%2e/admin", 400, ""},
		{"GET", "/admin%00", 400, ""},
		{"GET", "/x#/../admin", 400, ""},
		{"GET", "/x%zz/../admin", 400, ""}, // refused by the codec already
		{"GET", "/admin%2f..", 307, "/"},
		{"GET", "/x%2F..%2Fadmin", 307, "/admin"},
		{"GET", "/x%5C..%5Cadmin?q=%2F", 307, "/admin?q=%2F"},
	}
	for i, p := range probes {
		rid := "probe-" + strconv.Itoa(i)
		code, loc := rawGet(t, h, p.method, p.target, rid)
		if code != p.code || loc != p.location {
			t.Errorf("%s %s: %d (Location %q), want %d (Location %q)", p.method, p.target, code, loc, p.code, p.location)
		}
	}
	if seen := rec.seen(); len(seen) != 0 {
		t.Errorf("the upstream received %q; no probe may reach it", seen)
	}

	forwarded := []struct{ target, want string }{
		{"/a/b?x=../y", "/a/b?x=../y"},
		{"/a%20b/~c!$&'()*+,;=:@/%C3%A9?x=/./&y=%zz", "/a%20b/~c!$&'()*+,;=:@/%C3%A9?x=/./&y=%zz"},
		{"/x/../y/./z?q=1", "/y/z?q=1"},
		{"/%7Euser//files/", "/~user/files/"},
		{"/admins/../b", "/b"},
		{"http://example.com/a/./b?c", "/a/b?c"},
	}
	for i, f := range forwarded {
		rid := "fwd-" + strconv.Itoa(i)
		if code, _ := rawGet(t, h, "GET", f.target, rid); code != 200 {
			t.Errorf("GET %s: %d, want 200 from the upstream", f.target, code)
			continue
		}
		seen := rec.seen()
		if got := seen[len(seen)-1]; got != f.want {
			t.Errorf("GET %s reached the upstream as %q, want %q", f.target, got, f.want)
		}
		if m := h.logLine(rid); m["path"] != f.want {
			t.Errorf("GET %s: access log path %v, want the normalised %q", f.target, m["path"], f.want)
		}
	}

	// A refused path: one access-log line with Envoy's details, the raw
	// path, flag DPE; counted in downstream_rq_4xx and
	// downstream_rq_failed_path_normalization.
	m := h.logLine("probe-12")
	if m["response_code"] != float64(400) || m["response_code_details"] != "path_normalization_failed" || flags(m) != "DPE" || m["path"] != "/../admin" {
		t.Errorf("access log of /../admin: code %v, details %v, flags %q, path %v; want 400, path_normalization_failed, DPE, /../admin",
			m["response_code"], m["response_code_details"], flags(m), m["path"])
	}
	h.waitStat("http.ingress_http.downstream_rq_failed_path_normalization", 5) // the codec refused %zz itself
	h.waitStat("http.ingress_http.downstream_rq_redirected_with_normalized_path", 3)
	h.waitStat("http.ingress_http.downstream_rq_4xx", 12+6)

	// HTTP/2 (h2c) requests go through the same normalisation.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &protos}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	for _, tt := range []struct {
		path string
		code int
	}{{"/x/%2e%2e/admin", 403}, {"/../admin", 400}, {"/x/%2F../admin", 307}} {
		req, _ := http.NewRequest(http.MethodGet, h.url("ingress", tt.path), nil)
		if res, _ := e2etest.Fetch(t, c, req); res.StatusCode != tt.code || res.ProtoMajor != 2 {
			t.Errorf("h2c GET %s: %d over HTTP/%d, want %d over HTTP/2", tt.path, res.StatusCode, res.ProtoMajor, tt.code)
		}
	}
	if seen := rec.seen(); len(seen) != len(forwarded) {
		t.Errorf("the upstream received %q; want only the %d forwarded requests", seen, len(forwarded))
	}
}

// TestPathNormalizationSettings: each listener setting takes effect, and
// targets without a path are left alone.
func TestPathNormalizationSettings(t *testing.T) {
	t.Run("reject_request", func(t *testing.T) {
		rec := &targetRecorder{}
		h := startProxy(t, pathConfig, "{{UP}}", upstream(t, rec), "{{PATHNORM}}", "path_with_escaped_slashes_action: REJECT_REQUEST")
		if code, _ := rawGet(t, h, "GET", "/a%2Fb", "r1"); code != 400 {
			t.Errorf("GET /a%%2Fb: %d, want 400", code)
		}
		if code, _ := rawGet(t, h, "GET", "/a/b?c=%2F", "r2"); code != 200 {
			t.Errorf("GET /a/b?c=%%2F: %d, want 200 (the query is not the path)", code)
		}
		if code, _ := rawGet(t, h, "OPTIONS", "*", "r3"); code != 404 {
			t.Errorf("OPTIONS *: %d, want 404 (no route), untouched by normalisation", code)
		}
		if seen := rec.seen(); len(seen) != 1 || seen[0] != "/a/b?c=%2F" {
			t.Errorf("the upstream received %q, want only /a/b?c=%%2F", seen)
		}
	})
	t.Run("all off", func(t *testing.T) {
		rec := &targetRecorder{}
		h := startProxy(t, pathConfig, "{{UP}}", upstream(t, rec), "{{PATHNORM}}",
			"normalize_path: false\n    merge_slashes: false\n    path_with_escaped_slashes_action: keep_unchanged")
		for _, p := range []string{"/x/../y", "//y", "/x%2F..%2Fy"} {
			if code, _ := rawGet(t, h, "GET", p, "off"); code != 200 {
				t.Errorf("GET %s: %d, want 200", p, code)
			}
		}
		if seen := rec.seen(); strings.Join(seen, " ") != "/x/../y //y /x%2F..%2Fy" {
			t.Errorf("the upstream received %q, want the paths as sent", seen)
		}
		if code, _ := rawGet(t, h, "GET", "/x#y", "frag"); code != 400 {
			t.Errorf("GET /x#y: %d, want 400: a fragment is refused whatever the settings, as Envoy does", code)
		}
	})
}
