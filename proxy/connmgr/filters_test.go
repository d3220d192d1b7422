package connmgr

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/accesslog"
	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// filterConfig is one listener with a header-count limit of 8 and the
// listener settings ({{LISTENER}}) a case needs; routes for the upstream,
// a direct response, a redirect and a cluster the test leaves out of the
// cluster manager (/nc); nothing else is routed.
const filterConfig = `
listeners:
  - name: l
    address: 127.0.0.1:0
    stat_prefix: l
    limits: {max_request_headers_count: 8}
{{LISTENER}}
    virtual_hosts:
      - name: vh
        domains: ["a.test"]
        routes:
          - match: {prefix: /direct}
            direct_response: {status: 418, body: teapot}
          - match: {prefix: /moved}
            redirect: {host_redirect: b.test}
          - match: {prefix: /nc}
            route: {cluster: gone}
          - match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
  - name: gone
    endpoints: [{address: "{{UP}}"}]
`

// logChan receives the access-log entries of a test. The manager logs
// after the response is written, so a test waits for the entry.
type logChan chan streaminfo.Info

func (l logChan) Log(info *streaminfo.Info) { l <- *info }

func (l logChan) next(t *testing.T) streaminfo.Info {
	t.Helper()
	select {
	case info := <-l:
		return info
	case <-time.After(10 * time.Second):
		t.Fatal("no access-log entry within 10s")
		return streaminfo.Info{}
	}
}

// upstreamSeen is an upstream that reports the headers it received.
func upstreamSeen(t *testing.T) (addr string, seen chan http.Header) {
	t.Helper()
	seen = make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	return up.Listener.Addr().String(), seen
}

// newTestManager builds a connection manager from the config src (its
// first listener), logging to log; the clusters named in leaveOut are
// left out of the cluster manager, as a route to a cluster that is gone.
func newTestManager(t *testing.T, src string, log accesslog.Logger, leaveOut ...string) *Manager {
	t.Helper()
	cfg, err := config.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lc := &cfg.Listeners[0]
	table, err := route.NewTable(lc.VirtualHosts, route.Options{NodeHostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var kept []config.Cluster
	for _, c := range cfg.Clusters {
		if !slices.Contains(leaveOut, c.Name) {
			kept = append(kept, c)
		}
	}
	clusters, err := cluster.NewManagerWithOptions(context.Background(), kept, nil, slog.New(slog.DiscardHandler), cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clusters.Close)
	return New(&Snapshot{Listener: lc, Routes: table, Clusters: clusters, AccessLog: log}, nil)
}

// serveFilters serves filterConfig with listenerYAML on a real loopback
// socket, every cluster but "gone" in the cluster manager.
func serveFilters(t *testing.T, listenerYAML, up string) (string, logChan) {
	t.Helper()
	log := make(logChan, 4)
	src := strings.NewReplacer("{{LISTENER}}", listenerYAML, "{{UP}}", up).Replace(filterConfig)
	srv := httptest.NewServer(newTestManager(t, src, log, "gone"))
	t.Cleanup(srv.Close)
	return srv.URL, log
}

// send makes one request with exactly the headers h (and Go's
// Accept-Encoding) and returns the response and its body.
func send(t *testing.T, url, host string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header = h
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "filters-test")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// TestLocalReplies: the filters that finish a request answer with Envoy's
// status, response flag and details, and the upstream never sees it.
func TestLocalReplies(t *testing.T) {
	up, seen := upstreamSeen(t)
	url, log := serveFilters(t, "", up)
	many := http.Header{}
	for _, k := range []string{"X-A", "X-B", "X-C", "X-D", "X-E", "X-F", "X-G", "X-H"} {
		many.Set(k, "1")
	}
	tests := []struct {
		name, host, path string
		header           http.Header
		status           int
		body             string // contained in the body
		flags, details   string
		location         string
	}{
		{"too many headers", "a.test", "/", many, 431, "too many request headers: ", "DPE", "too_many_headers", ""},
		{"no virtual host", "other.test", "/", nil, 404, "", "NR", "route_not_found", ""},
		{"no cluster", "a.test", "/nc", nil, 503, "", "NC", "cluster_not_found", ""},
		{"direct response", "a.test", "/direct", nil, 418, "teapot", "-", "direct_response", ""},
		{"redirect", "a.test", "/moved/x", nil, 301, "", "-", "redirect", "http://b.test/moved/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := send(t, url+tc.path, tc.host, tc.header.Clone())
			if res.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("response %d %q, want %d containing %q", res.StatusCode, body, tc.status, tc.body)
			}
			if tc.location != "" && res.Header.Get("Location") != tc.location {
				t.Errorf("Location %q, want %q", res.Header.Get("Location"), tc.location)
			}
			info := log.next(t)
			if got := info.ResponseFlags.String(); got != tc.flags || info.ResponseCodeDetails != tc.details || info.ResponseCode != tc.status {
				t.Errorf("logged %d %s %q, want %d %s %q", info.ResponseCode, got, info.ResponseCodeDetails, tc.status, tc.flags, tc.details)
			}
			select {
			case h := <-seen:
				t.Errorf("the upstream saw a request that the proxy answered itself: %v", h)
			default:
			}
		})
	}
	// At the limit is allowed: 7 of ours plus User-Agent and Go's
	// Accept-Encoding would be 9, so drop two.
	atLimit := many.Clone()
	atLimit.Del("X-G")
	atLimit.Del("X-H")
	if res, body := send(t, url, "a.test", atLimit); res.StatusCode != 200 || body != "upstream" {
		t.Errorf("8 headers (the limit): %d %q, want the upstream's 200", res.StatusCode, body)
	}
	<-seen
	log.next(t)
}

// TestRequestIDRules: Envoy's x-request-id rules on an edge (external
// client, named by a trusted X-Forwarded-For hop) and an internal hop.
func TestRequestIDRules(t *testing.T) {
	const edge = "    use_remote_address: true\n    xff_num_trusted_hops: 1\n"
	const external = "203.0.113.9" // TEST-NET-3: not an internal address
	tests := []struct {
		name, listener, xff, incoming string
		// want is the ID the upstream must see: "keep" the incoming one,
		// "new" a generated one, "" none.
		want string
	}{
		{"edge replaces an external client's ID", edge, external, "from-client", "new"},
		{"edge generates a missing ID", edge, external, "", "new"},
		{"edge keeps an internal client's ID", edge, "10.1.2.3", "from-inside", "keep"},
		{"edge preserves when told to", edge + "    request_id: {preserve_external_request_id: true}\n", external, "from-client", "keep"},
		{"internal hop keeps the ID", "", external, "from-client", "keep"},
		{"internal hop generates a missing ID", "", external, "", "new"},
		{"generation off: none is made", "    request_id: {generate: false}\n", external, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, seen := upstreamSeen(t)
			url, log := serveFilters(t, tc.listener, up)
			h := http.Header{"X-Forwarded-For": {tc.xff}}
			if tc.incoming != "" {
				h.Set("X-Request-Id", tc.incoming)
			}
			res, _ := send(t, url, "a.test", h)
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			got := (<-seen).Get("X-Request-Id")
			info := log.next(t)
			switch tc.want {
			case "keep":
				if got != tc.incoming {
					t.Errorf("upstream x-request-id %q, want the incoming %q", got, tc.incoming)
				}
			case "new":
				if got == "" || got == tc.incoming {
					t.Errorf("upstream x-request-id %q, want a generated one (incoming %q)", got, tc.incoming)
				}
			default:
				if got != "" {
					t.Errorf("upstream x-request-id %q, want none", got)
				}
			}
			if info.RequestID != got {
				t.Errorf("logged request ID %q, upstream saw %q", info.RequestID, got)
			}
		})
	}
}

// TestHopByHopStripped: hop-by-hop headers, and those Connection names,
// never reach the upstream; end-to-end ones do.
func TestHopByHopStripped(t *testing.T) {
	up, seen := upstreamSeen(t)
	url, log := serveFilters(t, "", up)
	h := http.Header{
		"Connection":          {"keep-alive, X-Private"},
		"X-Private":           {"hop"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Authorization": {"Basic eA=="},
		"Te":                  {"gzip"},
		"X-End-To-End":        {"1"},
	}
	if res, _ := send(t, url, "a.test", h); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	got := <-seen
	log.next(t)
	for _, k := range []string{"X-Private", "Keep-Alive", "Proxy-Authorization", "Te"} {
		if v, ok := got[k]; ok {
			t.Errorf("hop-by-hop %s: %q reached the upstream", k, v)
		}
	}
	if strings.Contains(strings.ToLower(got.Get("Connection")), "x-private") {
		t.Errorf("Connection %q reached the upstream", got.Get("Connection"))
	}
	if got.Get("X-End-To-End") != "1" {
		t.Errorf("the end-to-end header was lost: %v", got)
	}
}
