package e2etest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Upstream is a running test upstream process (e2e/e2etest/upstream).
type Upstream struct {
	// Name is what the upstream reports in X-Upstream and its body.
	Name string
	// Addr is its loopback host:port.
	Addr string

	proc *Process
}

// StartUpstream starts a test upstream named name on a free loopback port
// and waits until it accepts connections. It is killed at cleanup.
func StartUpstream(t testing.TB, name string) *Upstream {
	t.Helper()
	u := &Upstream{Name: name, Addr: FreeAddr(t)}
	u.start(t)
	return u
}

// Upstreams is a set of test upstreams, in the order they were started.
type Upstreams []*Upstream

// StartUpstreams starts one test upstream per name, in order.
func StartUpstreams(t testing.TB, names ...string) Upstreams {
	t.Helper()
	ups := make(Upstreams, len(names))
	for i, n := range names {
		ups[i] = StartUpstream(t, n)
	}
	return ups
}

// Get returns the upstream named name, or nil.
func (us Upstreams) Get(name string) *Upstream {
	for _, u := range us {
		if u.Name == name {
			return u
		}
	}
	return nil
}

// Endpoints renders the upstreams as a cluster's endpoint list in YAML flow
// style, "[{address: 127.0.0.1:4001}, …]". With zone, each endpoint also
// gets zone: zone(its upstream's name).
func (us Upstreams) Endpoints(zone func(name string) string) string {
	eps := make([]string, len(us))
	for i, u := range us {
		if zone != nil {
			eps[i] = fmt.Sprintf("{address: %s, zone: %s}", u.Addr, zone(u.Name))
		} else {
			eps[i] = fmt.Sprintf("{address: %s}", u.Addr)
		}
	}
	return "[" + strings.Join(eps, ", ") + "]"
}

func (u *Upstream) start(t testing.TB) {
	t.Helper()
	bin := GoBuild(t, "e2e/e2etest/upstream")
	u.proc = StartProcess(t, "upstream "+u.Name, nil, bin, "-addr", u.Addr, "-name", u.Name)
	u.proc.WaitFor(t, "listener on "+u.Addr, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", u.Addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Kill kills the upstream process (SIGKILL) and waits for it to exit:
// its connections are reset and its port refuses new ones.
func (u *Upstream) Kill() { u.proc.Kill() }

// Restart starts a killed upstream again on the same address; the new
// process is killed at t's cleanup.
func (u *Upstream) Restart(t testing.TB) {
	t.Helper()
	u.Kill()
	u.start(t)
}

// Control changes the upstream's behaviour: delay (a Go duration), status
// (every response's status), health (GET /healthz status), health_header
// ("1": x-envoy-immediate-health-check-fail on /healthz). An empty value
// resets the field.
func (u *Upstream) Control(t testing.TB, v url.Values) {
	t.Helper()
	res, err := http.Get("http://" + u.Addr + "/_control?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("upstream %s control %s: %s: %s", u.Name, v.Encode(), res.Status, b)
	}
}

// UpstreamStats is what an upstream reports about the requests it served.
type UpstreamStats struct {
	// Served counts requests other than /healthz and the control paths.
	Served int64 `json:"served"`
	// LastHost is the Host header of the last request served.
	LastHost string `json:"last_host"`
}

// Stats fetches the upstream's counters.
func (u *Upstream) Stats(t testing.TB) UpstreamStats {
	t.Helper()
	res, err := http.Get("http://" + u.Addr + "/_stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s UpstreamStats
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatalf("upstream %s /_stats: %v", u.Name, err)
	}
	return s
}

// Served is how many requests the upstream has served (Stats().Served).
func (u *Upstream) Served(t testing.TB) int64 {
	t.Helper()
	return u.Stats(t).Served
}
