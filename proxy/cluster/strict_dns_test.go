package cluster

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// fakeResolver answers from a table that tests change between refreshes.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	errs    map[string]error
	calls   int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][]netip.Addr{}, errs: map[string]error{}}
}

func (r *fakeResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[host] = nil
	for _, a := range addrs {
		r.answers[host] = append(r.answers[host], netip.MustParseAddr(a))
	}
	delete(r.errs, host)
}

func (r *fakeResolver) fail(host string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[host] = err
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if network != "ip" {
		return nil, errors.New("fake resolver: unexpected network " + network)
	}
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	if a, ok := r.answers[host]; ok {
		return slices.Clone(a), nil
	}
	return nil, errors.New("fake resolver: no such host " + host)
}

func addresses(hosts []*Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Address()
	}
	return out
}

// dnsCluster is a strict_dns cluster whose loop is effectively idle (1h
// refresh), so tests drive refreshes with resolveAll.
func dnsCluster(endpoints ...string) config.Cluster {
	cfg := *withLBDefaults(config.Cluster{Name: "dns", Type: "strict_dns", DNSRefreshRate: config.Duration(time.Hour)})
	for _, e := range endpoints {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Address: e})
	}
	return cfg
}

func TestStrictDNSUpdates(t *testing.T) {
	r := newFakeResolver()
	r.set("api.internal", "10.1.0.2", "10.1.0.1", "10.1.0.1") // unsorted, duplicated
	r.set("db.internal", "::ffff:10.2.0.1")                   // 4in6 is unmapped
	m := newTestManager(t, Options{Resolver: r}, dnsCluster("api.internal:8080", "db.internal:5432", "10.9.9.9:1"))
	c := m.Get("dns")
	ctx := context.Background()

	want := []string{"10.1.0.1:8080", "10.1.0.2:8080", "10.2.0.1:5432", "10.9.9.9:1"}
	if got := addresses(c.Hosts()); !slices.Equal(got, want) {
		t.Fatalf("initial hosts = %v, want %v", got, want)
	}
	if h := c.Hosts()[0]; h.Hostname() != "api.internal:8080" {
		t.Errorf("Hostname = %q, want the configured endpoint api.internal:8080", h.Hostname())
	}
	kept := c.Hosts()[1] // 10.1.0.2 stays across the next answer
	kept.BeginRequest()

	// An address goes, one comes; the remaining Host keeps its identity and count.
	r.set("api.internal", "10.1.0.2", "10.1.0.3")
	c.resolveAll(ctx)
	want = []string{"10.1.0.2:8080", "10.1.0.3:8080", "10.2.0.1:5432", "10.9.9.9:1"}
	if got := addresses(c.Hosts()); !slices.Equal(got, want) {
		t.Fatalf("after change hosts = %v, want %v", got, want)
	}
	if c.Hosts()[0] != kept || kept.ActiveRequests() != 1 {
		t.Errorf("10.1.0.2 is a new Host object (or lost its active count %d)", kept.ActiveRequests())
	}

	// An unchanged answer does not swap the snapshot.
	before := c.set.Load()
	c.resolveAll(ctx)
	if c.set.Load() != before {
		t.Error("an unchanged DNS answer swapped the host set")
	}

	// A failure and an empty answer both keep the last good addresses.
	r.fail("api.internal", errors.New("SERVFAIL"))
	r.set("db.internal")
	c.resolveAll(ctx)
	if got := addresses(c.Hosts()); !slices.Equal(got, want) {
		t.Errorf("after failures hosts = %v, want the last good %v", got, want)
	}
}

func TestStrictDNSFirstLookupFails(t *testing.T) {
	r := newFakeResolver()
	m := newTestManager(t, Options{Resolver: r}, dnsCluster("later.internal:80"))
	c := m.Get("dns")
	if h := c.Pick(nil); h != nil || len(c.Hosts()) != 0 {
		t.Fatalf("Pick = %v with %d hosts, want nil before any DNS answer", h, len(c.Hosts()))
	}
	r.set("later.internal", "10.3.0.1")
	c.resolveAll(context.Background())
	if h := c.Pick(nil); h == nil || h.Address() != "10.3.0.1:80" {
		t.Errorf("Pick after the answer = %v, want 10.3.0.1:80", h)
	}
}

func TestStrictDNSLoopRefreshes(t *testing.T) {
	r := newFakeResolver()
	r.set("svc.internal", "10.4.0.1")
	cfg := dnsCluster("svc.internal:80")
	cfg.DNSRefreshRate = config.Duration(5 * time.Millisecond)
	m, err := NewManagerWithOptions(context.Background(), []config.Cluster{cfg}, nil, nil, Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	c := m.Get("dns")
	r.set("svc.internal", "10.4.0.2")
	deadline := time.Now().Add(10 * time.Second)
	for addresses(c.Hosts())[0] != "10.4.0.2:80" {
		if time.Now().After(deadline) {
			t.Fatalf("hosts = %v after 10s, want the refreshed answer 10.4.0.2:80", addresses(c.Hosts()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	m.Close()
	// Close stops the loop: no lookups after it returns.
	r.mu.Lock()
	calls := r.calls
	r.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls != calls {
		t.Errorf("%d lookups after Close", r.calls-calls)
	}
}

func TestStrictDNSRealLocalhost(t *testing.T) {
	m := newTestManager(t, Options{}, dnsCluster("localhost:8080"))
	hosts := m.Get("dns").Hosts()
	if len(hosts) == 0 {
		t.Fatal("localhost resolved to no hosts")
	}
	for _, h := range hosts {
		ap, err := netip.ParseAddrPort(h.Address())
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() != 8080 {
			t.Errorf("localhost host %q is not a loopback address on port 8080", h.Address())
		}
		if h.Hostname() != "localhost:8080" {
			t.Errorf("Hostname = %q, want localhost:8080", h.Hostname())
		}
	}
}

// TestConcurrentPickDuringUpdates runs picks (with request accounting and
// retries) while the host set changes under them; the race detector checks
// the copy-on-write snapshot.
func TestConcurrentPickDuringUpdates(t *testing.T) {
	for _, policy := range policies {
		t.Run(policy, func(t *testing.T) {
			r := newFakeResolver()
			r.set("svc.internal", "10.5.0.1", "10.5.0.2")
			cfg := dnsCluster("svc.internal:80", "weighted.internal:81")
			cfg.LBPolicy = policy
			cfg.Endpoints[1].Weight = 3
			r.set("weighted.internal", "10.6.0.1")
			m := newTestManager(t, Options{Resolver: r}, cfg)
			c := m.Get("dns")

			ctx := context.Background()
			var wg sync.WaitGroup
			var nilPicks sync.Map
			for g := range 4 {
				wg.Go(func() {
					for range 5_000 {
						h := c.Pick(nil)
						if h == nil {
							nilPicks.Store(g, true)
							continue
						}
						h.BeginRequest()
						if retry := c.Pick(&LBContext{Attempted: []*Host{h}}); retry == nil {
							nilPicks.Store(g, true)
						}
						h.EndRequest()
					}
				})
			}
			pickersDone := make(chan struct{})
			go func() { wg.Wait(); close(pickersDone) }()
			// Change the set for as long as the pickers run (bounded by
			// their fixed pick count).
			answers := [][]string{{"10.5.0.1"}, {"10.5.0.1", "10.5.0.3"}, {"10.5.0.4", "10.5.0.5", "10.5.0.6"}, {"10.5.0.2"}}
			updates := 0
			for running := true; running; updates++ {
				select {
				case <-pickersDone:
					running = false
				default:
				}
				r.set("svc.internal", answers[updates%len(answers)]...)
				c.resolveAll(ctx)
				c.setHostHealth(c.Hosts()[0], updates%2 == 0)
			}
			t.Logf("%d host set updates during the picks", updates)
			nilPicks.Range(func(k, _ any) bool {
				t.Errorf("goroutine %v got a nil host although the set never emptied", k)
				return true
			})
			for _, h := range c.Hosts() {
				if h.ActiveRequests() != 0 {
					t.Errorf("host %s has %d active requests after every request ended", h.Address(), h.ActiveRequests())
				}
			}
		})
	}
}

func TestParseEndpointAddress(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		port    uint16
		isIP    bool
		wantErr string
	}{
		{in: "10.0.0.1:80", host: "10.0.0.1", port: 80, isIP: true},
		{in: "[::1]:443", host: "::1", port: 443, isIP: true},
		{in: "api.internal:8080", host: "api.internal", port: 8080},
		{in: "localhost.:1", host: "localhost.", port: 1},
		{in: "_svc.example:65535", host: "_svc.example", port: 65535},
		{in: "api.internal", wantErr: "is not host:port"},
		{in: ":80", wantErr: "the host is empty"},
		{in: "a:-1", wantErr: "is not a number"},
		{in: "a:http", wantErr: "is not a number"},
		{in: "-bad:80", wantErr: "starts or ends with '-'"},
		{in: "sp ace:80", wantErr: "not allowed"},
		{in: "a..b:80", wantErr: "empty or over-long label"},
		{in: "10.0.0.256:80", wantErr: "neither an IP address nor a DNS name"},
		{in: "1000.0.0:1", wantErr: "neither an IP address nor a DNS name"},
		{in: "1e100.net:443", host: "1e100.net", port: 443},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, ip, err := parseEndpointAddress(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port || ip.IsValid() != tt.isIP {
				t.Errorf("= %q %d ip=%v %v, want %q %d ip=%v", host, port, ip.IsValid(), err, tt.host, tt.port, tt.isIP)
			}
		})
	}
}

func FuzzParseEndpointAddress(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "[::1]:443", "api.internal:8080", "[fe80::1%eth0]:80", "a:0", ":", "[::1", "x.:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, ip, err := parseEndpointAddress(s)
		if err != nil {
			return
		}
		if port == 0 || host == "" {
			t.Fatalf("%q accepted with host %q port %d", s, host, port)
		}
		if !ip.IsValid() {
			if cerr := checkDNSName(host); cerr != nil {
				t.Fatalf("%q accepted a host that is not a DNS name: %v", s, cerr)
			}
		}
	})
}
