package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func TestParseModes(t *testing.T) {
	got, err := parseModes("h2, idle,stats")
	if err != nil || !slices.Equal(got, []string{h2Mode, idleMode, statsMode}) {
		t.Fatalf("parseModes = %v, %v", got, err)
	}
	for _, bad := range []string{"", "h3", "h2,h2"} {
		if _, err := parseModes(bad); err == nil || !strings.Contains(err.Error(), "-modes") {
			t.Errorf("parseModes(%q) error = %v, want one naming -modes", bad, err)
		}
	}
}

func TestValidateModes(t *testing.T) {
	o := options{proxies: []string{"nginx", "hopwatch-proxy"}, modes: []string{grpcMode, statsMode},
		h1Conns: 64, h2Conns: 4, h2Streams: 100, idleConns: 10000}
	errs := o.validateModes()
	if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs), "-hopwatch") {
		t.Fatalf("validateModes = %v, want -hopwatch required", errs)
	}
	o.proxies, o.modes, o.idleConns = []string{"haproxy"}, []string{idleMode}, 0
	errs = o.validateModes()
	if len(errs) != 2 || !strings.Contains(fmt.Sprint(errs), "must include nginx") || !strings.Contains(fmt.Sprint(errs), "-idle-conns 0") {
		t.Fatalf("validateModes = %v, want nginx missing and -idle-conns out of range", errs)
	}
	o.proxies, o.modes = []string{"haproxy"}, []string{wrkMode}
	o.idleConns = 1
	if errs := o.validateModes(); len(errs) != 0 {
		t.Fatalf("wrk mode alone: validateModes = %v, want none", errs)
	}
}

func TestRoundOrder(t *testing.T) {
	ps := []peer{{Name: "nginx"}, {Name: "a"}, {Name: "b"}, {Name: "c"}}
	names := func(ps []peer) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	for round, want := range map[int]string{1: "nginx,a,b,c", 2: "nginx,b,c,a", 3: "nginx,c,a,b", 4: "nginx,a,b,c"} {
		if got := names(roundOrder(ps, round)); got != want {
			t.Errorf("round %d: %s, want %s", round, got, want)
		}
	}
	if got := names(roundOrder(ps[:2], 2)); got != "nginx,a" {
		t.Errorf("two proxies: %s", got)
	}
	if names(ps) != "nginx,a,b,c" {
		t.Errorf("roundOrder changed its argument: %s", names(ps))
	}
}

func TestParseProcStat(t *testing.T) {
	line := []byte("4242 (nginx: worker (x)) S 4240 4240 26987 0 -1 4194304 101 0 0 0 250 75 0 0 20 0 1 0 1074781 3133440 409 18446744073709551615 0 0")
	st, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st != (procStat{pgrp: 4240, utime: 250, stime: 75, rssPages: 409}) {
		t.Fatalf("parseProcStat = %+v", st)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 x 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("4242 (nginx: worker (x)) S 4240 4240 26987 0 -1 4194304 101 0 0 0 250 75 0 0 20 0 1 0 1074781 3133440 409 0"))
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := parseProcStat(in)
		if err != nil {
			return
		}
		// Whatever it accepts came from the fields after the last ')'.
		if _, err := parseProcStat(append([]byte("1 (a) "), in[bytes.LastIndexByte(in, ')')+1:]...)); err != nil {
			t.Fatalf("accepted %q as %+v but not its fields alone: %v", in, st, err)
		}
	})
}

func TestReadGroupUsageOfThisProcess(t *testing.T) {
	u, err := readGroupUsage(syscall.Getpgrp())
	if err != nil {
		t.Fatal(err)
	}
	if u.Procs < 1 || u.RSS < 1<<20 {
		t.Fatalf("usage = %+v, want this process with at least 1 MiB resident", u)
	}
}

func TestCountStatsdLines(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "a:1|c": 1, "a:1|c\n": 1, "a:1|c\nb:2|ms": 2, "a:1|c\nb:2|ms\n": 2} {
		if got := countStatsdLines([]byte(in)); got != want {
			t.Errorf("countStatsdLines(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestModeTable(t *testing.T) {
	samples := []modeSample{
		{Case: "c", Proxy: "nginx", Round: 1, RPS: 100, Requests: 1000, CPU: 0.01},
		{Case: "c", Proxy: "hopwatch-proxy", Round: 1, RPS: 50, Requests: 500, CPU: 0.01},
		{Case: "c", Proxy: "nginx", Round: 2, RPS: 200, Requests: 2000, CPU: 0.02},
		{Case: "c", Proxy: "hopwatch-proxy", Round: 2, RPS: 180, Requests: 1800, CPU: 0.036},
		{Case: "other", Proxy: "nginx", Round: 1, RPS: 1},
	}
	got := modeTable(samples, "c", 2, []column{cpuColumn})
	want := "| proxy | req/s | req/s vs nginx, per round | req/s vs nginx | proxy CPU µs/request | proxy CPU µs/request vs nginx |\n" +
		"| --- | ---: | ---: | ---: | ---: | ---: |\n" +
		"| nginx | 150 | 1.00× 1.00× | 1.00× | 10.0 | 1.00× |\n" +
		// hopwatch: 0.50× and 0.90× per round; CPU 20 and 20 µs, 2.00× each round.
		"| hopwatch-proxy | 115 | 0.50× 0.90× | 0.70× | 20.0 | 2.00× |\n"
	if got != want {
		t.Fatalf("modeTable:\n%s\nwant:\n%s", got, want)
	}
	if r := ownRatio(samples, "hopwatch-proxy", "c", "c", rps); r != 1 {
		t.Fatalf("ownRatio of a case with itself = %v, want 1", r)
	}
	if r := ownRatio(samples, "hopwatch-proxy", "c", "missing", rps); !math.IsNaN(r) {
		t.Fatalf("ownRatio against a missing case = %v, want NaN", r)
	}
}

// TestWriteSectionKeepsOtherSections writes a mode's section into a file
// that has the wrk section: both must be there afterwards.
func TestWriteSectionKeepsOtherSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := writeSection(path, sectionHeading, sectionHeading+"\n\nwrk figures\n"); err != nil {
		t.Fatal(err)
	}
	h2 := h2Spec().Heading
	for _, text := range []string{"h2 figures", "h2 figures again"} {
		if err := writeSection(path, h2, h2+"\n\n"+text+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.Contains(doc, "wrk figures") || !strings.Contains(doc, "h2 figures again") || strings.Count(doc, h2) != 1 {
		t.Fatalf("after writing the h2 section twice:\n%s", doc)
	}
}

// modeConfigData is the config of a proxy with every mode's extras on.
func modeConfigData(t *testing.T) configData {
	d := testConfigData(t)
	d.H2, d.H2CListen, d.GRPCListen, d.GRPCUpstream = true, "127.0.0.1:40011", "127.0.0.1:40012", "127.0.0.1:40013"
	d.WorkerConnections, d.Histograms, d.LargeBodies = 14096, "compact", true
	return d
}

func TestModeConfigsAcceptedByNginx(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Fatalf("nginx is not installed: run `make test-deps` (bench/proxy/install-peers.sh): %v", err)
		}
	}
	d := modeConfigData(t)
	cfg, err := peers("")[0].render(d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	for _, want := range []string{"listen " + d.TLSListen + " ssl http2;", "listen " + d.H2CListen + " http2;", "grpc_pass grpc://bench_grpc;",
		"server " + d.GRPCUpstream + ";", "worker_connections 14096;", "worker_rlimit_nofile 28192;", "proxy_request_buffering off;", "proxy_buffers 8 32k;"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nginx config lacks %q", want)
		}
	}
	out, err := exec.Command(bin, "-t", "-q", "-p", d.Dir, "-e", filepath.Join(d.Dir, "err.log"), "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx rejected the modes' config: %v\n%s", err, out)
	}
}

func TestModeConfigAcceptedByHopwatch(t *testing.T) {
	var hp peer
	for _, p := range peers("") {
		if p.Name == "hopwatch-proxy" {
			hp = p
		}
	}
	d := modeConfigData(t)
	path, err := hp.render(d)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("hopwatch-proxy rejects the modes' config: %v", err)
	}
	if len(c.Listeners) != 4 {
		t.Fatalf("%d listeners, want plaintext, TLS, h2c and gRPC", len(c.Listeners))
	}
	for i, addr := range map[int]string{2: d.H2CListen, 3: d.GRPCListen} {
		l := c.Listeners[i]
		if l.Address != addr || !slices.Equal(l.Protocols, []string{"http2"}) {
			t.Errorf("listener %d = %s %v, want %s with protocols [http2]", i, l.Address, l.Protocols, addr)
		}
	}
	if cl := c.Cluster("bench_grpc"); cl == nil || cl.Protocol != "h2c" || cl.Endpoints[0].Address != d.GRPCUpstream {
		t.Fatalf("cluster bench_grpc = %+v, want h2c to %s", cl, d.GRPCUpstream)
	}
	if got := c.StatsSinks[0].Histograms; got != "compact" {
		t.Fatalf("stats sink histograms = %q, want compact", got)
	}
}

func TestGRPCLoad(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	s, err := grpcLoad(context.Background(), ln.Addr().String(), 2, 3, 300*time.Millisecond)
	if err != nil || s.Requests == 0 || s.Errors != 0 || s.RPS <= 0 {
		t.Fatalf("grpcLoad = %+v, %v; want calls and no errors", s, err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s, err = grpcLoad(context.Background(), ln.Addr().String(), 1, 1, 100*time.Millisecond)
	if err != nil || s.Errors == 0 || s.Errors != s.Requests {
		t.Fatalf("NOT_SERVING: grpcLoad = %+v, %v; want every call counted as an error", s, err)
	}
}

func TestOpenIdleAndStillOpen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	addr := strings.TrimPrefix(srv.URL, "http://")
	conns, err := openIdle(context.Background(), addr, 40)
	if err != nil || len(conns) != 40 {
		t.Fatalf("openIdle = %d connections, %v; want 40", len(conns), err)
	}
	if n := stillOpen(conns); n != 40 {
		t.Fatalf("stillOpen = %d, want 40", n)
	}
	srv.CloseClientConnections()
	time.Sleep(100 * time.Millisecond)
	if n := stillOpen(conns); n != 0 {
		t.Fatalf("after the server closed them: stillOpen = %d, want 0", n)
	}
	for _, c := range conns {
		c.Close()
	}
	srv.Close()

	closing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
	}))
	defer closing.Close()
	conns, err = openIdle(context.Background(), strings.TrimPrefix(closing.URL, "http://"), 5)
	for _, c := range conns {
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "not an idle keep-alive connection") {
		t.Fatalf("openIdle against a server that closes = %v, want an error", err)
	}
}
