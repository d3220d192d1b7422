package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config/configtest"
)

// fakeServer is the admin.Server a test controls: a fixed state, clusters
// and dump, and a record of the health-check calls.
type fakeServer struct {
	state    string
	clusters []*cluster.Cluster
	dump     any
	info     Info

	mu      sync.Mutex
	hcCalls []bool
}

func (f *fakeServer) State() string                { return f.state }
func (f *fakeServer) Clusters() []*cluster.Cluster { return f.clusters }
func (f *fakeServer) ConfigDump() any              { return f.dump }
func (f *fakeServer) Info() Info                   { return f.info }
func (f *fakeServer) SetHealthCheckFailed(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hcCalls = append(f.hcCalls, fail)
}

func (f *fakeServer) calls() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.hcCalls...)
}

// testClusters builds real clusters from YAML: "backend" with a weighted
// zone-a host and a canary in zone-b (static hosts, never dialed).
func testClusters(t *testing.T) []*cluster.Cluster {
	t.Helper()
	cfg := configtest.ParseClusters(t, `  - name: backend
    endpoints:
      - {address: "127.0.0.1:1", weight: 3, zone: zone-a}
      - {address: "127.0.0.1:2", zone: zone-b, canary: true}
`)
	m, err := cluster.NewManagerWithOptions(context.Background(), cfg.Clusters, nil, slog.New(slog.DiscardHandler), cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m.Clusters()
}

func newAdmin(t *testing.T, f *fakeServer) string {
	t.Helper()
	extra := map[string]http.Handler{"/stats": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "extra stats\n")
	})}
	srv := httptest.NewServer(Handler(f, extra))
	t.Cleanup(srv.Close)
	return srv.URL
}

func do(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e2etest.Fetch(t, http.DefaultClient, req)
}

func TestEndpoints(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, state, method, path string
		wantStatus                int
		wantBody                  string // exact, unless contains is set
		contains                  []string
		wantType                  string
		wantHC                    []bool
	}{
		{name: "ready when live", state: "LIVE", method: "GET", path: "/ready", wantStatus: 200, wantBody: "LIVE\n", wantType: "text/plain; charset=UTF-8"},
		{name: "not ready when draining", state: "DRAINING", method: "GET", path: "/ready", wantStatus: 503, wantBody: "DRAINING\n"},
		{name: "not ready while initializing", state: "INITIALIZING", method: "GET", path: "/ready", wantStatus: 503, wantBody: "INITIALIZING\n"},
		{name: "ready refuses POST", state: "LIVE", method: "POST", path: "/ready", wantStatus: 405},
		{name: "healthcheck fail", state: "LIVE", method: "POST", path: "/healthcheck/fail", wantStatus: 200, wantBody: "OK\n", wantHC: []bool{true}},
		{name: "healthcheck ok", state: "LIVE", method: "POST", path: "/healthcheck/ok", wantStatus: 200, wantBody: "OK\n", wantHC: []bool{false}},
		{name: "healthcheck fail by GET does not drain", state: "LIVE", method: "GET", path: "/healthcheck/fail", wantStatus: 405, wantBody: "This endpoint requires POST.\n"},
		{name: "healthcheck ok by GET changes nothing", state: "LIVE", method: "GET", path: "/healthcheck/ok", wantStatus: 405, wantBody: "This endpoint requires POST.\n"},
		{name: "clusters text", state: "LIVE", method: "GET", path: "/clusters", wantStatus: 200, wantType: "text/plain; charset=UTF-8", contains: []string{
			"backend::127.0.0.1:1::health_flags::healthy\n",
			"backend::127.0.0.1:1::weight::3\n",
			"backend::127.0.0.1:1::zone::zone-a\n",
			"backend::127.0.0.1:1::canary::false\n",
			"backend::127.0.0.1:1::rq_active::0\n",
			"backend::127.0.0.1:2::zone::zone-b\n",
			"backend::127.0.0.1:2::canary::true\n",
		}},
		{name: "config dump", state: "LIVE", method: "GET", path: "/config_dump", wantStatus: 200, wantType: "application/json", wantBody: "{\n  \"secret\": \"[redacted]\"\n}\n"},
		{name: "server info", state: "LIVE", method: "GET", path: "/server_info", wantStatus: 200, wantType: "application/json", contains: []string{
			`"version": "v-test"`, `"node_id": "n1"`, `"start_time": "2026-01-02T03:04:05Z"`, `"config_rejects": 2`, `"last_reload_error": "bad: line 3"`,
		}},
		{name: "extra endpoint", state: "LIVE", method: "GET", path: "/stats", wantStatus: 200, wantBody: "extra stats\n"},
		{name: "index lists every endpoint", state: "LIVE", method: "GET", path: "/", wantStatus: 200, contains: []string{
			"admin commands are:\n", "  /ready: ", "  /healthcheck/fail: ", "  /healthcheck/ok: ", "  /clusters: ",
			"  /config_dump: ", "  /server_info: ", "  /debug/pprof/: ", "  /stats: \n",
		}},
		{name: "unknown path", state: "LIVE", method: "GET", path: "/nope", wantStatus: 404},
	}
	clusters := testClusters(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{state: tc.state, clusters: clusters, dump: map[string]string{"secret": "[redacted]"},
				info: Info{Version: "v-test", State: tc.state, NodeID: "n1", StartTime: start, ConfigRejects: 2, LastReloadError: "bad: line 3"}}
			res, body := do(t, tc.method, newAdmin(t, f)+tc.path)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.path, res.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
			for _, c := range tc.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body lacks %q:\n%s", c, body)
				}
			}
			if tc.wantType != "" && res.Header.Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tc.wantType)
			}
			if tc.wantStatus == 405 && tc.path != "/ready" && res.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", res.Header.Get("Allow"))
			}
			if got := f.calls(); !equalBools(got, tc.wantHC) {
				t.Errorf("SetHealthCheckFailed calls %v, want %v", got, tc.wantHC)
			}
		})
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestClustersJSON: /clusters?format=json follows Envoy's cluster_statuses
// shape, and a host without a computed success rate has none.
func TestClustersJSON(t *testing.T) {
	f := &fakeServer{state: "LIVE", clusters: testClusters(t)}
	res, body := do(t, "GET", newAdmin(t, f)+"/clusters?format=json")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, type %q: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	var doc struct {
		Clusters []struct {
			Name     string `json:"name"`
			LBPolicy string `json:"lb_policy"`
			Hosts    []struct {
				Address      string         `json:"address"`
				Weight       int            `json:"weight"`
				Zone         string         `json:"zone"`
				Canary       bool           `json:"canary"`
				Healthy      bool           `json:"healthy"`
				HealthStatus map[string]any `json:"health_status"`
				SuccessRate  *struct {
					Value float64 `json:"value"`
				} `json:"success_rate"`
			} `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(doc.Clusters) != 1 || doc.Clusters[0].Name != "backend" || doc.Clusters[0].LBPolicy != "round_robin" {
		t.Fatalf("clusters: %+v", doc.Clusters)
	}
	hosts := doc.Clusters[0].Hosts
	if len(hosts) != 2 {
		t.Fatalf("hosts: %+v", hosts)
	}
	h0, h1 := hosts[0], hosts[1]
	if h0.Address != "127.0.0.1:1" || h0.Weight != 3 || h0.Zone != "zone-a" || h0.Canary || !h0.Healthy {
		t.Errorf("first host: %+v", h0)
	}
	if h1.Address != "127.0.0.1:2" || h1.Weight != 1 || h1.Zone != "zone-b" || !h1.Canary {
		t.Errorf("second host: %+v", h1)
	}
	for _, h := range hosts {
		if h.HealthStatus["eds_health_status"] != "HEALTHY" {
			t.Errorf("%s: health_status %v, want eds_health_status HEALTHY", h.Address, h.HealthStatus)
		}
		if _, ok := h.HealthStatus["failed_outlier_check"]; ok {
			t.Errorf("%s: failed_outlier_check present on a host that never failed: %v", h.Address, h.HealthStatus)
		}
		if h.SuccessRate != nil {
			t.Errorf("%s: success_rate %v before the outlier detector computed one", h.Address, h.SuccessRate.Value)
		}
	}
}

// TestClustersJSONEmpty: no clusters is an empty list, not null.
func TestClustersJSONEmpty(t *testing.T) {
	_, body := do(t, "GET", newAdmin(t, &fakeServer{state: "LIVE"})+"/clusters?format=json")
	if !strings.Contains(body, `"cluster_statuses": []`) {
		t.Errorf("body %s, want an empty cluster_statuses list", body)
	}
}
