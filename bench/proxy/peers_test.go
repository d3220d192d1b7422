package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func testConfigData(t *testing.T) configData {
	t.Helper()
	d, err := newConfigData(t.TempDir(), "127.0.0.1:40001", 2)
	if err != nil {
		t.Fatal(err)
	}
	d.StatsSink = "127.0.0.1:40002"
	cert, err := newBenchCert(filepath.Join(d.Dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	d.CertFile, d.KeyFile = cert.certFile, cert.keyFile
	return d
}

func TestTemplatesRender(t *testing.T) {
	for _, p := range peers("/nonexistent/hopwatch-proxy") {
		t.Run(p.Name, func(t *testing.T) {
			d := testConfigData(t)
			path, err := p.render(d)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg := string(b)
			want := []string{d.Listen, d.Upstream}
			if p.TLS {
				want = append(want, d.TLSListen, d.CertFile, d.KeyFile)
			}
			for _, want := range want {
				if !strings.Contains(cfg, want) {
					t.Errorf("config lacks %q:\n%s", want, cfg)
				}
			}
			// HAProxy's log goes to stdout, which the harness redirects.
			if !p.StdoutIsLog && !strings.Contains(cfg, d.AccessLog) {
				t.Errorf("config does not log to %s:\n%s", d.AccessLog, cfg)
			}
			if strings.Contains(cfg, "<no value>") {
				t.Errorf("config has an unfilled field:\n%s", cfg)
			}
		})
	}
}

// TestConfigsAcceptedByTheRealPrograms asks each installed proxy to check
// its rendered config, so a template typo fails here rather than mid-run.
func TestConfigsAcceptedByTheRealPrograms(t *testing.T) {
	checks := map[string]func(cfg string, d configData) []string{
		"nginx": func(cfg string, d configData) []string {
			return []string{"-t", "-q", "-p", d.Dir, "-e", filepath.Join(d.Dir, "err.log"), "-c", cfg}
		},
		"haproxy": func(cfg string, _ configData) []string { return []string{"-c", "-q", "-f", cfg} },
		"caddy": func(cfg string, _ configData) []string {
			return []string{"adapt", "--validate", "--config", cfg, "--adapter", "caddyfile"}
		},
	}
	for _, p := range peers("") {
		check, ok := checks[p.Name]
		if !ok {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			bin, err := exec.LookPath(p.Bin)
			if err != nil {
				t.Fatalf("%s is not installed: run `make test-deps` (bench/proxy/install-peers.sh): %v", p.Name, err)
			}
			d := testConfigData(t)
			cfg, err := p.render(d)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, check(cfg, d)...)
			if p.Env != nil {
				cmd.Env = append(os.Environ(), p.Env(d)...)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s rejected its config: %v\n%s", p.Name, err, out)
			}
		})
	}
}

// TestHopwatchConfigValid parses both rendered hopwatch-proxy configs with
// the proxy's own strict loader, so a schema change breaks this test, and
// checks that they differ only in stats.
func TestHopwatchConfigValid(t *testing.T) {
	for _, p := range peers("") {
		if isHopwatch(p.Name) {
			t.Run(p.Name, func(t *testing.T) { checkHopwatchConfig(t, p) })
		}
	}
}

func checkHopwatchConfig(t *testing.T, hp peer) {
	d := testConfigData(t)
	d.StatsOff, d.AccessLogOff, d.Exemplars = hp.StatsOff, hp.AccessLogOff, hp.Exemplars
	if hp.FullObservability {
		d.TracingEndpoint = "127.0.0.1:40003"
	}
	path, err := hp.render(d)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("hopwatch-proxy rejects the benchmark config: %v", err)
	}
	if len(c.Listeners) != 2 || c.Listeners[0].Address != d.Listen {
		t.Fatalf("listeners = %+v, want one on %s and one over TLS", c.Listeners, d.Listen)
	}
	l := c.Listeners[0]
	switch {
	case hp.AccessLogOff && len(l.AccessLog) != 0:
		t.Fatalf("access_log = %+v, want none", l.AccessLog)
	case !hp.AccessLogOff && (len(l.AccessLog) != 1 || l.AccessLog[0].Path != d.AccessLog || l.AccessLog[0].Format != "json"):
		t.Fatalf("access_log = %+v, want JSON to %s", l.AccessLog, d.AccessLog)
	}
	checkHopwatchTLSListener(t, hp, d, c)
	checkHopwatchTracing(t, hp, c)
	if c.Admin.Address != d.AdminListen {
		t.Fatalf("admin address = %q, want the harness's free port %q, not the shared default", c.Admin.Address, d.AdminListen)
	}
	if cl := c.Cluster("bench_upstream"); cl == nil || len(cl.Endpoints) != 1 || cl.Endpoints[0].Address != d.Upstream {
		t.Fatalf("cluster bench_upstream = %+v, want one endpoint %s", cl, d.Upstream)
	}
	if hp.StatsOff {
		if !c.StatsConfig.Disabled || len(c.StatsSinks) != 0 {
			t.Fatalf("stats off: stats_config.disabled = %v, %d sinks; want disabled and none", c.StatsConfig.Disabled, len(c.StatsSinks))
		}
		return
	}
	if c.StatsConfig.Disabled || len(c.StatsSinks) != 1 || c.StatsSinks[0].Address != d.StatsSink ||
		c.StatsSinks[0].Type != "statsd" || c.StatsSinks[0].Protocol != "udp" || c.StatsConfig.FlushInterval.D() != 5*time.Second {
		t.Fatalf("stats on: stats_config %+v, sinks %+v; want one UDP statsd sink to %s at the default 5s flush", c.StatsConfig, c.StatsSinks, d.StatsSink)
	}
	if c.StatsSinks[0].Exemplars != hp.Exemplars {
		t.Fatalf("stats sink exemplars = %v, want %v", c.StatsSinks[0].Exemplars, hp.Exemplars)
	}
}

// checkHopwatchTLSListener checks the second listener: TLS with the
// harness's certificate, logging (unless off) to its own file.
func checkHopwatchTLSListener(t *testing.T, hp peer, d configData, c *config.Config) {
	t.Helper()
	l := c.Listeners[1]
	if l.Address != d.TLSListen || l.TLS == nil || l.TLS.CertFile != d.CertFile || l.TLS.KeyFile != d.KeyFile {
		t.Fatalf("TLS listener = %+v, TLS %+v; want %s with %s and %s", l, l.TLS, d.TLSListen, d.CertFile, d.KeyFile)
	}
	switch {
	case hp.AccessLogOff && len(l.AccessLog) != 0:
		t.Fatalf("TLS access_log = %+v, want none", l.AccessLog)
	case !hp.AccessLogOff && (len(l.AccessLog) != 1 || l.AccessLog[0].Path != d.AccessLogTLS):
		t.Fatalf("TLS access_log = %+v, want %s", l.AccessLog, d.AccessLogTLS)
	}
}

// checkHopwatchTracing checks that only the full-observability variant
// traces, at 1 %, to the endpoint the harness gives it.
func checkHopwatchTracing(t *testing.T, hp peer, c *config.Config) {
	t.Helper()
	if !hp.FullObservability {
		if c.Tracing != nil {
			t.Fatalf("tracing = %+v, want none", c.Tracing)
		}
		return
	}
	if c.Tracing == nil || c.Tracing.SamplingRatio == nil || *c.Tracing.SamplingRatio != 0.01 || c.Tracing.Endpoint != "127.0.0.1:40003" {
		t.Fatalf("tracing = %+v, want 1 %% to 127.0.0.1:40003", c.Tracing)
	}
}

func TestValidate(t *testing.T) {
	good := options{
		upstreamBin: "u", hopwatchBin: "h", proxies: []string{"nginx", "hopwatch-proxy"},
		loads: []load{{Threads: 2, Conns: 64}, {Threads: 1, Conns: 50}}, rounds: 3, duration: 10 * time.Second, warmup: 2 * time.Second,
		bodySize: 128, workers: 2,
	}
	tests := []struct {
		name    string
		edit    func(o *options)
		wantErr string
	}{
		{"good", func(*options) {}, ""},
		{"no upstream", func(o *options) { o.upstreamBin = "" }, "-upstream: required"},
		{"unknown proxy", func(o *options) { o.proxies = []string{"envoy"} }, `unknown proxy "envoy"`},
		{"no proxies", func(o *options) { o.proxies = nil }, "-proxies: empty"},
		{"hopwatch without binary", func(o *options) { o.hopwatchBin = "" }, "-hopwatch: required"},
		{"peers only need no hopwatch binary", func(o *options) { o.hopwatchBin, o.proxies = "", []string{"caddy"} }, ""},
		{"no loads", func(o *options) { o.loads = nil }, "-loads: empty"},
		{"no rounds", func(o *options) { o.rounds = 0 }, "-rounds 0"},
		{"full without its services", func(o *options) { o.proxies = []string{"hopwatch-proxy-full"} }, "-statsd-sink, -jaeger, -jaeger-config: required"},
		{"full with its services", func(o *options) {
			o.proxies, o.statsdSinkBin, o.jaegerBin, o.jaegerConfig = []string{"hopwatch-proxy-full"}, "s", "j", "c"
		}, ""},
		{"exemplars without the services", func(o *options) { o.proxies = []string{"hopwatch-proxy-exemplars"} }, "-statsd-sink, -jaeger, -jaeger-config: required"},
		{"exemplars with the services", func(o *options) {
			o.proxies, o.statsdSinkBin, o.jaegerBin, o.jaegerConfig = []string{"hopwatch-proxy-exemplars"}, "s", "j", "c"
		}, ""},
		{"fractional duration", func(o *options) { o.duration = 1500 * time.Millisecond }, "-duration 1.5s"},
		{"endless duration", func(o *options) { o.duration = time.Hour }, "-duration 1h0m0s"},
		{"negative warmup", func(o *options) { o.warmup = -time.Second }, "-warmup"},
		{"zero warmup ok", func(o *options) { o.warmup = 0 }, ""},
		{"huge body", func(o *options) { o.bodySize = 1 << 30 }, "-body-size"},
		{"no workers", func(o *options) { o.workers = 0 }, "-workers 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			err := o.validate(peers(o.hopwatchBin))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseLoads(t *testing.T) {
	got, err := parseLoads(" 2x64, 1x50 ,tls:1x50")
	want := []load{{Threads: 2, Conns: 64}, {Threads: 1, Conns: 50}, {Threads: 1, Conns: 50, TLS: true}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parseLoads = %v, %v; want %v", got, err, want)
	}
	for in, want := range map[string]string{
		"":          "-loads: empty",
		"2":         `"2": want THREADSxCONNECTIONS`,
		"2x":        `"2x": want THREADSxCONNECTIONS`,
		"ax64":      `"ax64": want THREADSxCONNECTIONS`,
		"0x64":      "threads ≥ 1",
		"8x4":       "threads ≤ connections",
		"1x50,1x50": "listed twice",
		"tls:":      `"tls:": want THREADSxCONNECTIONS or tls:`,
		"ssl:1x50":  `"ssl:1x50": want`,
	} {
		if _, err := parseLoads(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseLoads(%q) error = %v, want one containing %q", in, err, want)
		}
	}
}

func TestSplitList(t *testing.T) {
	got := splitList(" nginx, ,haproxy,")
	if strings.Join(got, "|") != "nginx|haproxy" {
		t.Fatalf("splitList = %q", got)
	}
}

func TestCountLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	if err := os.WriteFile(path, []byte("a\nb\nc\npartial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := countLines(path); err != nil || n != 3 {
		t.Fatalf("countLines = %d, %v; want 3", n, err)
	}
	if n, err := countLines(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Fatalf("countLines(missing) = %d, %v; want 0, nil", n, err)
	}
}

// TestRunEndToEnd runs the real harness against nginx with a short run: it
// builds the upstream, measures nginx and the baseline, writes the section
// into a copy of BENCHMARKS.md and leaves no process or file behind.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for several seconds")
	}
	for _, bin := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: run `make test-deps` (bench/proxy/install-peers.sh): %v", bin, err)
		}
	}
	tmp := t.TempDir()
	upstream := filepath.Join(tmp, "upstream")
	if out, err := exec.Command("go", "build", "-o", upstream, "./upstream").CombinedOutput(); err != nil {
		t.Fatalf("build upstream: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "BENCHMARKS.md")
	other := "# Benchmarks\n\n## statsd-sink vs statsd_exporter\n\nkeep\n"
	if err := os.WriteFile(out, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "work")
	o := options{
		upstreamBin: upstream, proxies: []string{"nginx"}, loads: []load{{Threads: 1, Conns: 4}, {Threads: 1, Conns: 4, TLS: true}}, rounds: 2,
		duration: time.Second, warmup: 0, bodySize: 64, workers: 1,
		out: out, workDir: work, command: "go test",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	if err := run(ctx, o, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, other) {
		t.Fatalf("the other section was not preserved:\n%s", doc)
	}
	for _, want := range []string{"### `wrk -t1 -c4`", "### `wrk -t1 -c4 https`", "| nginx | ", "| upstream (direct) | ", "| 1.00× 1.00× | 1.00× | 1.00× | 0 |"} {
		if !strings.Contains(doc, want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "logging off?") {
		t.Errorf("nginx wrote no access log:\n%s", doc)
	}
	// Every proxy's directory is removed after its run; only the
	// upstream's remains until the caller removes the work directory.
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "upstream" && e.Name() != "tls" {
			t.Errorf("left behind in the work directory: %s", e.Name())
		}
	}
	// No process of ours is left: the upstream and nginx's master and
	// workers all have a path under tmp on their command lines.
	if ps, err := exec.Command("pgrep", "-af", tmp).Output(); err == nil {
		t.Errorf("processes left behind:\n%s", ps)
	}
}
