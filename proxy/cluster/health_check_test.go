package cluster

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// hcServer is a loopback upstream whose /healthz status, delay and
// immediate-fail header the test sets, and which records what checks send.
type hcServer struct {
	srv       *httptest.Server
	status    atomic.Int64
	delay     atomic.Int64 // nanoseconds
	immediate atomic.Bool
	checks    atomic.Int64

	mu   sync.Mutex
	last *http.Request
}

func newHCServer(t *testing.T) *hcServer {
	t.Helper()
	s := &hcServer{}
	s.status.Store(http.StatusOK)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.checks.Add(1)
		s.mu.Lock()
		s.last = r.Clone(context.Background())
		s.mu.Unlock()
		if d := time.Duration(s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if s.immediate.Load() {
			w.Header().Set("x-envoy-immediate-health-check-fail", "true")
		}
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *hcServer) addr() string { return s.srv.Listener.Addr().String() }

func (s *hcServer) lastRequest() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// hcCluster returns a static cluster config over the servers with one
// health check (defaults applied, then edit).
func hcCluster(name string, edit func(*config.HealthCheck), servers ...*hcServer) config.Cluster {
	cl := config.Cluster{Name: name}
	for _, s := range servers {
		cl.Endpoints = append(cl.Endpoints, config.Endpoint{Address: s.addr()})
	}
	cl.HealthChecks = []config.HealthCheck{{
		Timeout:         config.Duration(time.Second),
		Interval:        config.Duration(10 * time.Millisecond),
		HTTPHealthCheck: &config.HTTPHealthCheck{Path: "/healthz"},
	}}
	full := config.Config{Clusters: []config.Cluster{cl}}
	full.ApplyDefaults()
	cl = full.Clusters[0]
	if edit != nil {
		edit(&cl.HealthChecks[0])
	}
	return cl
}

func hostAt(t *testing.T, c *Cluster, addr string) *Host {
	t.Helper()
	for _, h := range c.Hosts() {
		if h.Address() == addr {
			return h
		}
	}
	t.Fatalf("no host %s", addr)
	return nil
}

func TestHealthCheckFirstRoundBeforeManagerReturns(t *testing.T) {
	good, bad := newHCServer(t), newHCServer(t)
	bad.status.Store(http.StatusServiceUnavailable)
	// A long interval: only the first round can have run when the Manager
	// returns, so what it shows is that round's result.
	cl := hcCluster("c", func(h *config.HealthCheck) { h.Interval = config.Duration(time.Hour) }, good, bad)
	store, _ := stats.NewStore(stats.Config{})
	m := newTestManager(t, Options{ClusterStats: store.ClusterStats}, cl)
	c := m.Get("c")
	g, b := hostAt(t, c, good.addr()), hostAt(t, c, bad.addr())
	if !g.Healthy() || g.HealthFlags() != "healthy" {
		t.Errorf("host answering 200: flags %q, want healthy after the first check", g.HealthFlags())
	}
	if b.Healthy() || b.HealthFlags() != "/failed_active_hc" {
		t.Errorf("host answering 503: flags %q, want /failed_active_hc", b.HealthFlags())
	}
	hs := &store.ClusterStats("c").HealthCheck
	for name, got := range map[string]uint64{
		"attempt": hs.Attempt.Value(), "success": hs.Success.Value(), "failure": hs.Failure.Value(),
		"network_failure": hs.NetworkFailure.Value(), "healthy": hs.Healthy.Value(),
	} {
		want := map[string]uint64{"attempt": 2, "success": 1, "failure": 1, "network_failure": 0, "healthy": 1}[name]
		if got != want {
			t.Errorf("health_check.%s = %d, want %d", name, got, want)
		}
	}
	for range 100 {
		if c.Pick(nil) != g {
			t.Fatal("picked the host that failed its health check")
		}
	}
}

func TestHealthCheckRequest(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*config.HealthCheck)
		wantHost string
		wantURI  string
		wantHdr  map[string]string
	}{
		{"defaults: the cluster's name as Host", nil, "backend", "/healthz", map[string]string{"User-Agent": "Envoy/HC"}},
		{
			"host, query and headers",
			func(h *config.HealthCheck) {
				h.HTTPHealthCheck.Path = "/status?deep=1"
				h.HTTPHealthCheck.Host = "svc.internal"
				no := false
				h.HTTPHealthCheck.RequestHeadersToAdd = []config.HeaderValueOption{
					{Key: "x-hc", Value: "a"}, {Key: "x-hc", Value: "b"}, {Key: "user-agent", Value: "probe", Append: &no},
				}
			},
			"svc.internal", "/status?deep=1", map[string]string{"User-Agent": "probe", "X-Hc": "a,b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHCServer(t)
			m := newTestManager(t, Options{}, hcCluster("backend", tt.edit, srv))
			_ = m
			r := srv.lastRequest()
			if r == nil {
				t.Fatal("no check arrived before the Manager returned")
			}
			if r.Method != http.MethodGet || r.Host != tt.wantHost || r.RequestURI != tt.wantURI {
				t.Errorf("check %s %s Host %q, want GET %s Host %q", r.Method, r.RequestURI, r.Host, tt.wantURI, tt.wantHost)
			}
			for k, v := range tt.wantHdr {
				if got := strings.Join(r.Header.Values(k), ","); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestHealthCheckStateMachine drives one host's session through Envoy's
// transitions without the network. Events: S success, N network failure,
// A active failure (bad status or immediate-fail header), P passive
// failure. After each event the host is H(ealthy) or U(nhealthy).
func TestHealthCheckStateMachine(t *testing.T) {
	tests := []struct {
		name   string
		events string
		want   string
	}{
		{"a new host is unhealthy until its first success", "S", "H"},
		{"a first network failure keeps it unhealthy; then healthy_threshold applies", "NSS", "UUH"},
		{"network failures need unhealthy_threshold (3) in a row", "SNNN", "HHHU"},
		{"a success resets the network failure count", "SNNSNNN", "HHHHHHU"},
		{"an active failure is immediate", "SA", "HU"},
		{"a passive failure is immediate", "SP", "HU"},
		{"healthy_threshold (2) successes in a row bring it back", "SASS", "HUUH"},
		{"a failure resets the success count", "SASNSS", "HUUUUH"},
		{"more failures while unhealthy change nothing", "SAANAPS", "HUUUUUU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := hcCluster("c", func(h *config.HealthCheck) {
				h.UnhealthyThreshold = 3
				h.HealthyThreshold = 2
			}, newHCServer(t))
			store, _ := stats.NewStore(stats.Config{})
			c, err := newCluster(&cl, Options{ClusterStats: store.ClusterStats}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.close)
			h := c.Hosts()[0]
			if h.Healthy() {
				t.Fatal("a host of a health-checked cluster starts healthy")
			}
			s := &hcSession{hc: c.hc, host: h, firstCheck: true, cancel: func() {}}
			var got strings.Builder
			var wantFail, wantNet, wantPassive uint64
			for _, e := range tt.events {
				switch e {
				case 'S':
					s.handleSuccess()
				case 'N':
					s.handleFailure(hcNetwork)
					wantFail++
					wantNet++
				case 'A':
					s.handleFailure(hcActive)
					wantFail++
				case 'P':
					s.handleFailure(hcPassive)
					wantFail++
					wantPassive++
				}
				if h.Healthy() {
					got.WriteByte('H')
				} else {
					got.WriteByte('U')
				}
			}
			if got.String() != tt.want {
				t.Errorf("events %s: states %s, want %s", tt.events, got.String(), tt.want)
			}
			hs := &store.ClusterStats("c").HealthCheck
			if hs.Failure.Value() != wantFail || hs.NetworkFailure.Value() != wantNet || hs.PassiveFailure.Value() != wantPassive {
				t.Errorf("failure/network/passive = %d/%d/%d, want %d/%d/%d", hs.Failure.Value(), hs.NetworkFailure.Value(), hs.PassiveFailure.Value(), wantFail, wantNet, wantPassive)
			}
			if want := uint64(strings.Count(tt.events, "S")); hs.Success.Value() != want {
				t.Errorf("success = %d, want %d", hs.Success.Value(), want)
			}
		})
	}
}

func TestHealthCheckTransitionsOverTheNetwork(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*config.HealthCheck)
		fail    func(*hcServer)
		recover func(*hcServer)
		// network: the failure is a network one, so it needs
		// unhealthy_threshold checks.
		network bool
	}{
		{
			name:    "503, then 200 again",
			fail:    func(s *hcServer) { s.status.Store(http.StatusServiceUnavailable) },
			recover: func(s *hcServer) { s.status.Store(http.StatusOK) },
		},
		{
			name:    "200 with x-envoy-immediate-health-check-fail",
			fail:    func(s *hcServer) { s.immediate.Store(true) },
			recover: func(s *hcServer) { s.immediate.Store(false) },
		},
		{
			name: "204 is not in the default expected statuses (200 only)",
			fail: func(s *hcServer) { s.status.Store(http.StatusNoContent) },
			recover: func(s *hcServer) {
				s.status.Store(http.StatusOK)
			},
		},
		{
			name: "expected_statuses [200, 300) accepts 204 but not 404",
			edit: func(h *config.HealthCheck) {
				h.HTTPHealthCheck.ExpectedStatuses = []config.StatusRange{{Start: 200, End: 300}}
			},
			fail:    func(s *hcServer) { s.status.Store(http.StatusNotFound) },
			recover: func(s *hcServer) { s.status.Store(http.StatusNoContent) },
		},
		{
			name: "timeouts are network failures",
			edit: func(h *config.HealthCheck) {
				h.Timeout = config.Duration(20 * time.Millisecond)
				h.UnhealthyThreshold = 2
			},
			fail:    func(s *hcServer) { s.delay.Store(int64(time.Second)) },
			recover: func(s *hcServer) { s.delay.Store(0) },
			network: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHCServer(t)
			store, _ := stats.NewStore(stats.Config{})
			cl := hcCluster("c", func(h *config.HealthCheck) {
				h.HealthyThreshold = 3
				if tt.edit != nil {
					tt.edit(h)
				}
			}, srv)
			m := newTestManager(t, Options{ClusterStats: store.ClusterStats}, cl)
			c := m.Get("c")
			h := c.Hosts()[0]
			hs := &store.ClusterStats("c").HealthCheck
			if !h.Healthy() {
				t.Fatalf("flags %q after the first check, want healthy", h.HealthFlags())
			}
			tt.fail(srv)
			// The gauge follows the host's flag just after it flips.
			waitUntil(t, "host marked unhealthy, health_check.healthy 0", func() bool {
				return h.FailedActiveHealthCheck() && hs.Healthy.Value() == 0
			})
			if tt.network {
				if got := hs.NetworkFailure.Value(); got < 2 {
					t.Errorf("unhealthy after %d network failures, want unhealthy_threshold (2)", got)
				}
			} else if got := hs.NetworkFailure.Value(); got != 0 {
				t.Errorf("network_failure = %d, want 0", got)
			}
			okBefore := hs.Success.Value()
			tt.recover(srv)
			waitUntil(t, "host healthy again, health_check.healthy 1", func() bool { return h.Healthy() && hs.Healthy.Value() == 1 })
			if got := hs.Success.Value() - okBefore; got < 3 {
				t.Errorf("healthy again after %d successes, want healthy_threshold (3)", got)
			}
		})
	}
}

func TestHealthCheckPassiveFailureFromProxiedResponse(t *testing.T) {
	srv := newHCServer(t)
	store, _ := stats.NewStore(stats.Config{})
	m := newTestManager(t, Options{ClusterStats: store.ClusterStats}, hcCluster("c", func(h *config.HealthCheck) {
		h.Interval = config.Duration(50 * time.Millisecond)
	}, srv))
	c := m.Get("c")
	h := c.Hosts()[0]
	c.ObserveResponse(h, 200, http.Header{"X-Other": {"1"}})
	if !h.Healthy() {
		t.Fatal("a response without the header marked the host")
	}
	c.ObserveResponse(h, 200, http.Header{ImmediateHealthCheckFailHeader: {"true"}})
	if !h.FailedActiveHealthCheck() {
		t.Fatal("x-envoy-immediate-health-check-fail on a proxied response did not mark the host at once")
	}
	if got := store.ClusterStats("c").HealthCheck.PassiveFailure.Value(); got != 1 {
		t.Errorf("passive_failure = %d, want 1", got)
	}
	// The upstream still passes its checks: they bring it back.
	waitUntil(t, "active checks bring the host back", h.Healthy)
}

func TestHealthCheckStopsOnCloseAndReload(t *testing.T) {
	a, b := newHCServer(t), newHCServer(t)
	cfgA := hcCluster("c", nil, a)
	m1, err := NewManagerWithOptions(context.Background(), []config.Cluster{cfgA}, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// An unchanged cluster is carried over and keeps checking.
	m2, err := NewManagerWithOptions(context.Background(), []config.Cluster{cfgA}, m1, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Get("c") != m1.Get("c") {
		t.Fatal("an unchanged cluster was not carried over")
	}
	m1.Close()
	n := a.checks.Load()
	waitUntil(t, "checks continue after carry-over", func() bool { return a.checks.Load() > n+3 })

	// A changed cluster replaces it: the old one stops checking a.
	m3, err := NewManagerWithOptions(context.Background(), []config.Cluster{hcCluster("c", nil, b)}, m2, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m2.Close()
	stopped := a.checks.Load()
	time.Sleep(100 * time.Millisecond) // ten intervals
	if got := a.checks.Load(); got != stopped {
		t.Errorf("the replaced cluster sent %d more checks after the reload", got-stopped)
	}
	if !m3.Get("c").Hosts()[0].Healthy() {
		t.Error("the new cluster's host is not healthy after its first check")
	}
	m3.Close()
	stopped = b.checks.Load()
	time.Sleep(100 * time.Millisecond)
	if got := b.checks.Load(); got != stopped {
		t.Errorf("a closed cluster sent %d more checks", got-stopped)
	}
}

func TestHealthCheckFollowsDNS(t *testing.T) {
	// Two hosts on the same port, 127.0.0.1 and 127.0.0.2 (all of
	// 127.0.0.0/8 is loopback on Linux). The port 127.0.0.1 got may be taken
	// on 127.0.0.2 by someone else: try a few.
	var one *hcServer
	var ln net.Listener
	var port string
	for try := 0; ln == nil; try++ {
		one = newHCServer(t)
		_, port, _ = net.SplitHostPort(one.addr())
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.2:"+port); err != nil && try == 4 {
			t.Fatalf("cannot listen on 127.0.0.2 at the port of 127.0.0.1 in 5 tries, last %s: %v", port, err)
		}
	}
	two := &hcServer{}
	two.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		two.checks.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	_ = two.srv.Listener.Close()
	two.srv.Listener = ln
	two.srv.Start()
	t.Cleanup(two.srv.Close)

	r := newFakeResolver()
	r.set("svc.test", "127.0.0.1")
	cl := hcCluster("c", nil, one)
	cl.Type = "strict_dns"
	cl.Endpoints = []config.Endpoint{{Address: "svc.test:" + port, Weight: 1}}
	m := newTestManager(t, Options{Resolver: r}, cl)
	c := m.Get("c")
	if hs := c.Hosts(); len(hs) != 1 || !hs[0].Healthy() {
		t.Fatalf("hosts %v, want one healthy", addresses(hs))
	}
	r.set("svc.test", "127.0.0.1", "127.0.0.2")
	c.resolveAll(context.Background())
	if len(c.Hosts()) != 2 {
		t.Fatalf("hosts %v after the DNS change, want two", addresses(c.Hosts()))
	}
	added := hostAt(t, c, "127.0.0.2:"+port)
	waitUntil(t, "the added host is checked and becomes healthy", added.Healthy)

	r.set("svc.test", "127.0.0.2")
	c.resolveAll(context.Background())
	time.Sleep(20 * time.Millisecond) // let a check in flight finish
	n := one.checks.Load()
	time.Sleep(100 * time.Millisecond)
	if got := one.checks.Load(); got != n {
		t.Errorf("a host removed by DNS got %d more checks", got-n)
	}
}

func TestHealthCheckInterval(t *testing.T) {
	tests := []struct {
		name    string
		jitter  time.Duration
		percent int64
		draw    uint64
		want    time.Duration
	}{
		{"no jitter", 0, 0, 1 << 63, time.Second},
		{"interval_jitter: half of 100ms", 100 * time.Millisecond, 0, 1 << 63, 1050 * time.Millisecond},
		{"interval_jitter_percent: half of 10%", 0, 10, 1 << 63, 1050 * time.Millisecond},
		{"both, a zero draw", 100 * time.Millisecond, 10, 0, time.Second},
		{"both, halves", 100 * time.Millisecond, 10, 1 << 63, 1100 * time.Millisecond},
	}
	for _, tt := range tests {
		hc := &healthChecker{interval: time.Second, jitter: tt.jitter, jitterPercent: tt.percent, rnd: fixedRand(tt.draw)}
		if got := hc.nextInterval(); got != tt.want {
			t.Errorf("%s: nextInterval = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestHealthAndOutlierTogether checks the flags combine: an ejected host
// that then fails its active check shows both flags, and a passing check
// un-ejects (successful_active_health_check_uneject_host).
func TestHealthAndOutlierTogether(t *testing.T) {
	srv := newHCServer(t)
	cl := hcCluster("c", func(h *config.HealthCheck) { h.Interval = config.Duration(20 * time.Millisecond) }, srv, newHCServer(t))
	cl.OutlierDetection = &config.OutlierDetection{}
	full := config.Config{Clusters: []config.Cluster{cl}}
	full.ApplyDefaults()
	cl = full.Clusters[0]
	cl.OutlierDetection.MaxEjectionPercent = 100
	m := newTestManager(t, Options{}, cl)
	c := m.Get("c")
	h := hostAt(t, c, srv.addr())
	srv.status.Store(http.StatusServiceUnavailable)
	waitUntil(t, "active check fails", h.FailedActiveHealthCheck)
	for range 5 {
		c.ObserveResponse(h, 500, nil)
	}
	if got := h.HealthFlags(); got != "/failed_active_hc/failed_outlier_check" {
		t.Fatalf("flags %q, want both", got)
	}
	srv.status.Store(http.StatusOK)
	waitUntil(t, "passing checks clear both flags", h.Healthy)
}

func TestHealthCheckStalledBody(t *testing.T) {
	var stall atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		if stall.Load() {
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		_, _ = w.Write(make([]byte, 100))
	}))
	t.Cleanup(srv.Close)
	cl := config.Cluster{Name: "c", Endpoints: []config.Endpoint{{Address: srv.Listener.Addr().String()}}}
	cl.HealthChecks = []config.HealthCheck{{
		Timeout: config.Duration(30 * time.Millisecond), Interval: config.Duration(5 * time.Millisecond),
		UnhealthyThreshold: 2, HTTPHealthCheck: &config.HTTPHealthCheck{Path: "/"},
	}}
	store, _ := stats.NewStore(stats.Config{})
	m, err := NewManagerWithOptions(context.Background(), []config.Cluster{cl}, nil, nil, Options{ClusterStats: store.ClusterStats})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Get("c").Hosts()[0]
	if !h.Healthy() {
		t.Fatalf("flags %q, want healthy", h.HealthFlags())
	}
	stall.Store(true)
	waitUntil(t, "a body that never ends fails the check", h.FailedActiveHealthCheck)
	if got := store.ClusterStats("c").HealthCheck.NetworkFailure.Value(); got < 2 {
		t.Errorf("network_failure = %d, want at least unhealthy_threshold (2)", got)
	}
	done := make(chan struct{})
	go func() { m.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked behind a stalled check")
	}
}
