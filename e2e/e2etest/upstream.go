package e2etest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"testing"
	"time"
)

// Upstream is a running test upstream process (e2e/e2etest/upstream).
type Upstream struct {
	// Name is what the upstream reports in X-Upstream and its body.
	Name string
	// Addr is its loopback host:port.
	Addr string

	log  *SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// StartUpstream starts a test upstream named name on a free loopback port
// and waits until it accepts connections. It is killed at cleanup.
func StartUpstream(t testing.TB, name string) *Upstream {
	t.Helper()
	u := &Upstream{Name: name, Addr: FreeAddr(t), log: &SyncBuffer{}}
	u.start(t)
	t.Cleanup(u.Kill)
	return u
}

func (u *Upstream) start(t testing.TB) {
	t.Helper()
	bin := GoBuild(t, "e2e/e2etest/upstream")
	u.cmd = exec.Command(bin, "-addr", u.Addr, "-name", u.Name)
	u.cmd.Stdout, u.cmd.Stderr = u.log, u.log
	u.done = make(chan struct{})
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := u.done
	cmd := u.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("upstream %s exited early:\n%s", u.Name, u.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", u.Addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream %s not listening on %s after 10s:\n%s", u.Name, u.Addr, u.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill kills the upstream process (SIGKILL) and waits for it to exit:
// its connections are reset and its port refuses new ones.
func (u *Upstream) Kill() {
	if u.cmd == nil {
		return
	}
	select {
	case <-u.done:
	default:
		_ = u.cmd.Process.Kill()
		<-u.done
	}
}

// Restart starts a killed upstream again on the same address.
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
