// Command proxy is the proxy benchmark harness behind `make bench-proxy`
// (bench/proxy/run.sh): it measures hopwatch-proxy against nginx, HAProxy
// and Caddy, each forwarding to the same upstream with access logging on,
// plus the upstream alone as a baseline, and rewrites its section of
// BENCHMARKS.md with the results.
//
// All traffic stays on 127.0.0.1. Every process it starts runs in its own
// process group, is stopped before the next proxy starts, and dies with the
// harness; the work directory is removed on exit.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/bench/internal/openmetrics"
)

// defaultProxies is every proxy, in benchmark order. hopwatch-proxy-nostats
// is hopwatch-proxy with stats_config.disabled, the baseline for the cost of
// stats; hopwatch-proxy-off (nothing on) is the baseline for
// hopwatch-proxy-full (stats to statsd-sink, access log, tracing to Jaeger).
// hopwatch-proxy-exemplars is hopwatch-proxy-full with exemplars on its
// StatsD sink, measured against it.
const defaultProxies = "nginx,haproxy,caddy,hopwatch-proxy-off,hopwatch-proxy-nostats,hopwatch-proxy,hopwatch-proxy-full"

// allProxies is every -proxies name, defaultProxies and the variants that
// are only measured when asked for.
const allProxies = defaultProxies + ",hopwatch-proxy-exemplars"

// defaultLoads are the wrk thread×connection pairs: the original -t2 -c64,
// and -t1 -c50, which leaves one of two cores to the proxy.
// tls:1x50 is -t1 -c50 over HTTPS.
const defaultLoads = "2x64,1x50,tls:1x50"

// options are the harness's flags.
type options struct {
	upstreamBin string
	hopwatchBin string
	// statsdSinkBin and jaegerBin (with jaegerConfig) serve
	// hopwatch-proxy-full.
	statsdSinkBin string
	jaegerBin     string
	jaegerConfig  string
	proxies       []string
	loads         []load
	rounds        int
	duration      time.Duration
	warmup        time.Duration
	bodySize      int
	workers       int
	out           string
	workDir       string
	command       string
	// modes are the measurements to run (wrkMode and the modes of
	// modes.go).
	modes []string
	// h1Conns is the HTTP/1.1 row's h2load connections in h2Mode;
	// h2Conns and h2Streams are the HTTP/2 connections and concurrent
	// streams per connection in h2Mode and grpcMode.
	h1Conns, h2Conns, h2Streams int
	// idleConns is how many idle keep-alive connections idleMode holds.
	idleConns int
}

func main() {
	var o options
	var proxies, loads, modes string
	flag.StringVar(&o.upstreamBin, "upstream", "", "path to the built bench/proxy/upstream binary (required)")
	flag.StringVar(&o.hopwatchBin, "hopwatch", "", "path to the built hopwatch-proxy binary (required when -proxies has a hopwatch-proxy variant)")
	flag.StringVar(&proxies, "proxies", defaultProxies, "comma-separated proxies to measure, from "+allProxies)
	flag.StringVar(&o.statsdSinkBin, "statsd-sink", "", "path to the built statsd-sink binary (required for hopwatch-proxy-full and -exemplars)")
	flag.StringVar(&o.jaegerBin, "jaeger", "", "path to bin/jaeger (required for hopwatch-proxy-full and -exemplars)")
	flag.StringVar(&o.jaegerConfig, "jaeger-config", "", "Jaeger config with its listeners taken from HOPWATCH_E2E_* variables (tracing/testdata/jaeger-e2e.yaml; required for hopwatch-proxy-full and -exemplars)")
	flag.StringVar(&loads, "loads", defaultLoads, "comma-separated wrk THREADSxCONNECTIONS pairs; a tls: prefix runs the pair over HTTPS")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds: every proxy is measured once per round, in turn, in reverse order every second round")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "wrk run time per proxy (-d), whole seconds")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up per proxy before the measured run, whole seconds; 0 skips it")
	flag.IntVar(&o.bodySize, "body-size", 128, "upstream response body size in bytes")
	flag.IntVar(&o.workers, "workers", runtime.NumCPU(), "nginx worker_processes and HAProxy nbthread")
	flag.StringVar(&o.out, "out", "", "BENCHMARKS.md to update; empty prints the section only")
	flag.StringVar(&o.workDir, "workdir", "", "directory for configs and logs; default a new temporary directory that is removed on exit")
	flag.StringVar(&o.command, "command", "", "the command line to record in BENCHMARKS.md; default this process's own")
	flag.StringVar(&modes, "modes", wrkMode, "comma-separated measurements, from "+strings.Join(allModes, ","))
	flag.IntVar(&o.h1Conns, "h1-conns", 64, "h2 mode: h2load --h1 connections of the HTTP/1.1 row")
	flag.IntVar(&o.h2Conns, "h2-conns", 4, "h2 and grpc modes: HTTP/2 connections")
	flag.IntVar(&o.h2Streams, "h2-streams", 100, "h2 and grpc modes: concurrent streams (h2load -m) or calls per connection")
	flag.IntVar(&o.idleConns, "idle-conns", 10000, "idle mode: idle keep-alive connections to hold")
	flag.Parse()
	o.proxies = splitList(proxies)
	var err error
	if o.loads, err = parseLoads(loads); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.modes, err = parseModes(modes); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.command == "" {
		o.command = strings.Join(os.Args, " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		slog.Error("proxy benchmark failed", "err", err)
		os.Exit(1)
	}
}

// parseLoads parses "2x64,1x50" into wrk thread and connection pairs.
func parseLoads(s string) ([]load, error) {
	var out []load
	for _, f := range splitList(s) {
		var l load
		pair, isTLS := strings.CutPrefix(f, "tls:")
		l.TLS = isTLS
		t, c, ok := strings.Cut(pair, "x")
		var errT, errC error
		if ok {
			l.Threads, errT = strconv.Atoi(t)
			l.Conns, errC = strconv.Atoi(c)
		}
		if !ok || errT != nil || errC != nil {
			return nil, fmt.Errorf("-loads: %q: want THREADSxCONNECTIONS or tls:THREADSxCONNECTIONS, such as 1x50", f)
		}
		if l.Threads < 1 || l.Conns < l.Threads || l.Conns > 100000 {
			return nil, fmt.Errorf("-loads: %q: want threads ≥ 1 and threads ≤ connections ≤ 100000", f)
		}
		if slices.Contains(out, l) {
			return nil, fmt.Errorf("-loads: %q is listed twice", f)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("-loads: empty; want THREADSxCONNECTIONS pairs such as " + defaultLoads)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// validate checks the options before anything is started.
func (o options) validate(all []peer) error {
	var errs []error
	if o.upstreamBin == "" {
		errs = append(errs, errors.New("-upstream: required (go build -o BIN ./bench/proxy/upstream)"))
	}
	if len(o.proxies) == 0 {
		errs = append(errs, errors.New("-proxies: empty; want some of "+defaultProxies))
	}
	for _, name := range o.proxies {
		if !slices.ContainsFunc(all, func(p peer) bool { return p.Name == name }) {
			errs = append(errs, fmt.Errorf("-proxies: unknown proxy %q; want some of %s", name, allProxies))
		}
	}
	if slices.ContainsFunc(o.proxies, isHopwatch) && o.hopwatchBin == "" {
		errs = append(errs, errors.New("-hopwatch: required when -proxies includes hopwatch-proxy"))
	}
	if needsServices(o.proxies) && (o.statsdSinkBin == "" || o.jaegerBin == "" || o.jaegerConfig == "") {
		errs = append(errs, errors.New("-statsd-sink, -jaeger, -jaeger-config: required when -proxies includes hopwatch-proxy-full or hopwatch-proxy-exemplars"))
	}
	if len(o.loads) == 0 {
		errs = append(errs, errors.New("-loads: empty; want THREADSxCONNECTIONS pairs such as "+defaultLoads))
	}
	if o.rounds < 1 || o.rounds > 20 {
		errs = append(errs, fmt.Errorf("-rounds %d: want 1 to 20", o.rounds))
	}
	if o.duration < time.Second || o.duration%time.Second != 0 || o.duration > 10*time.Minute {
		errs = append(errs, fmt.Errorf("-duration %v: want whole seconds from 1s to 10m (wrk -d)", o.duration))
	}
	if o.warmup < 0 || o.warmup%time.Second != 0 || o.warmup > time.Minute {
		errs = append(errs, fmt.Errorf("-warmup %v: want whole seconds from 0s to 1m", o.warmup))
	}
	if o.bodySize < 0 || o.bodySize > 16<<20 {
		errs = append(errs, fmt.Errorf("-body-size %d: want 0 to %d", o.bodySize, 16<<20))
	}
	if o.workers < 1 || o.workers > 1024 {
		errs = append(errs, fmt.Errorf("-workers %d: want 1 to 1024", o.workers))
	}
	return errors.Join(append(errs, o.validateModes()...)...)
}

// validateModes checks the options of the modes besides wrkMode.
func (o options) validateModes() []error {
	var errs []error
	extra := slices.ContainsFunc(o.modes, func(m string) bool { return m != wrkMode })
	if extra && (!slices.Contains(o.proxies, "nginx") || !slices.ContainsFunc(o.proxies, isHopwatch)) {
		errs = append(errs, fmt.Errorf("-modes %s: -proxies must include nginx and a hopwatch-proxy variant, which those modes compare", strings.Join(o.modes, ",")))
	}
	if slices.Contains(o.modes, statsMode) && o.hopwatchBin == "" {
		errs = append(errs, errors.New("-hopwatch: required for -modes stats"))
	}
	h2, grpc, idle := slices.Contains(o.modes, h2Mode), slices.Contains(o.modes, grpcMode), slices.Contains(o.modes, idleMode)
	for _, v := range []struct {
		used     bool
		name     string
		val, max int
	}{
		{h2, "-h1-conns", o.h1Conns, 10000}, {h2 || grpc, "-h2-conns", o.h2Conns, 1000},
		{h2 || grpc, "-h2-streams", o.h2Streams, 1000}, {idle, "-idle-conns", o.idleConns, 100000},
	} {
		if v.used && (v.val < 1 || v.val > v.max) {
			errs = append(errs, fmt.Errorf("%s %d: want 1 to %d", v.name, v.val, v.max))
		}
	}
	return errs
}

// harness holds what every measurement shares.
type harness struct {
	o        options
	workDir  string
	upstream string // host:port
	wantBody []byte
	wrkBin   string
	// sink is the StatsD server hopwatch-proxy with stats on sends to.
	sink *statsdDrain
	// cert is the self-signed certificate of every TLS listener; nil when
	// no load is over TLS.
	cert *benchCert
	// realSink is the statsd-sink's UDP host:port, realSinkWeb its HTTP
	// host:port, and jaegerOTLP Jaeger's OTLP gRPC host:port, for
	// hopwatch-proxy-full and -exemplars; empty when neither is selected.
	realSink, realSinkWeb, jaegerOTLP string
	// h2loadBin is h2load's path; empty when no mode needs it.
	h2loadBin string
	// grpcUpstream is the gRPC upstream's host:port, for grpcMode.
	grpcUpstream string
	// grpcChild is the gRPC upstream process, for grpcMode.
	grpcChild *child
	// loadAvg is the 1-minute load average when the run started.
	loadAvg float64
}

// run measures every selected proxy and the baseline, prints the section
// and, when o.out is set and every proxy was measured, rewrites it there.
func run(ctx context.Context, o options, out io.Writer) (err error) {
	if len(o.modes) == 0 {
		o.modes = []string{wrkMode}
	}
	all := peers(o.hopwatchBin)
	if err := o.validate(all); err != nil {
		return err
	}
	var selected []peer
	for _, p := range all {
		if slices.Contains(o.proxies, p.Name) {
			selected = append(selected, p)
		}
	}
	wrkBin, err := exec.LookPath("wrk")
	if err != nil {
		return fmt.Errorf("wrk not found in PATH (apt-get install -y wrk): %w", err)
	}
	for i, p := range selected {
		bin, err := exec.LookPath(p.Bin)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		selected[i].Bin = bin
	}

	h := &harness{o: o, wrkBin: wrkBin}
	if o.workDir == "" {
		dir, err := os.MkdirTemp("", "hopwatch-bench-proxy-")
		if err != nil {
			return fmt.Errorf("create work directory: %w", err)
		}
		defer os.RemoveAll(dir)
		h.workDir = dir
	} else {
		if err := os.MkdirAll(o.workDir, 0o755); err != nil {
			return fmt.Errorf("create work directory: %w", err)
		}
		h.workDir = o.workDir
	}

	up, err := h.startUpstream(ctx)
	if err != nil {
		return err
	}
	defer up.stop(syscall.SIGTERM, 5*time.Second)
	if h.sink, err = startStatsdDrain(); err != nil {
		return err
	}
	defer h.sink.close()
	if err := h.startModeServices(ctx); err != nil {
		return err
	}
	defer h.stopModeServices()
	if (slices.Contains(o.modes, wrkMode) && slices.ContainsFunc(o.loads, func(l load) bool { return l.TLS })) || slices.Contains(o.modes, h2Mode) {
		if h.cert, err = newBenchCert(filepath.Join(h.workDir, "tls")); err != nil {
			return err
		}
	}
	var jg *jaegerProc
	if needsServices(o.proxies) {
		ss, err := h.startStatsdSink(ctx)
		if err != nil {
			return err
		}
		defer ss.stop(syscall.SIGTERM, 5*time.Second)
		h.realSink, h.realSinkWeb = ss.udp, ss.web
		if jg, err = h.startJaeger(ctx); err != nil {
			return err
		}
		defer jg.stop(syscall.SIGTERM, 5*time.Second)
		h.jaegerOTLP = jg.otlp
	}

	h.loadAvg = loadAverage()
	if h.loadAvg > float64(runtime.NumCPU())/2 {
		slog.Warn("the machine is busy; results will be noisy", "load_average_1m", h.loadAvg, "nproc", runtime.NumCPU())
	}
	if slices.Contains(o.modes, wrkMode) {
		if err := h.runWrk(ctx, selected, jg, out); err != nil {
			return err
		}
	}
	for _, m := range o.modes {
		if m == wrkMode {
			continue
		}
		section, err := h.runMode(ctx, m, selected, out)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%s", section)
		if o.out != "" {
			heading := strings.SplitN(section, "\n", 2)[0]
			if err := writeSection(o.out, heading, section); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nupdated %q in %s\n", heading, o.out)
		}
	}
	return nil
}

// runWrk is the original benchmark: every selected proxy and the upstream
// under each of the wrk loads, in interleaved rounds, written to the
// sectionHeading section.
func (h *harness) runWrk(ctx context.Context, selected []peer, jg *jaegerProc, out io.Writer) error {
	o := h.o
	rep := report{
		Date: time.Now(), Command: o.command, Nproc: runtime.NumCPU(), CPU: cpuModel(),
		Loads: o.loads, Rounds: o.rounds, Duration: o.duration, Warmup: o.warmup,
		BodySize: o.bodySize, Workers: o.workers, LoadAvg: h.loadAvg,
	}
	versioned := map[string]bool{}
	for _, p := range selected {
		if versioned[p.Bin] {
			continue // hopwatch-proxy's two variants are one binary
		}
		versioned[p.Bin] = true
		rep.Versions = append(rep.Versions, [2]string{versionName(p.Name), p.Version(ctx, p.Bin)})
	}
	rep.Versions = append(rep.Versions,
		[2]string{"wrk", commandLine(ctx, h.wrkBin, "-v")},
		[2]string{"Go (upstream and harness)", runtime.Version()})

	var failed []error
	for round := 1; round <= o.rounds; round++ {
		for _, p := range wrkRoundOrder(selected, round) {
			fmt.Fprintf(out, "== round %d/%d: %s\n", round, o.rounds, p.Name)
			samples, err := h.benchPeer(ctx, p, round)
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s: %w", p.Name, context.Cause(ctx))
			}
			if err != nil {
				slog.Error("proxy not measured", "proxy", p.Name, "round", round, "err", err)
				failed = append(failed, fmt.Errorf("round %d: %w", round, err))
				continue
			}
			for _, s := range samples {
				logRow(out, s)
			}
			rep.Samples = append(rep.Samples, samples...)
		}
		fmt.Fprintf(out, "== round %d/%d: upstream (direct)\n", round, o.rounds)
		for _, l := range o.loads {
			if l.TLS {
				continue // the upstream speaks plaintext only
			}
			res, err := h.measure(ctx, "http://"+h.upstream+"/", l)
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			s := sample{Round: round, Load: l, row: row{Name: "upstream (direct)", Result: res, LogLines: -1, StatsDatagrams: -1}}
			logRow(out, s)
			rep.Samples = append(rep.Samples, s)
		}
	}
	if jg != nil {
		rep.TracesSeen = jg.sawService(ctx, "hopwatch-bench")
	}
	if slices.ContainsFunc(selected, func(p peer) bool { return p.Exemplars }) {
		// Only the exemplars row sends trace IDs: an exemplar on the
		// sink's buckets shows that its |trace_id: sections were kept.
		n, err := openmetrics.CountExemplars(ctx, "http://"+h.realSinkWeb+"/metrics")
		rep.Exemplars = &exemplarCount{Lines: n, Err: err}
	}

	section := rep.section()
	fmt.Fprintf(out, "\n%s", section)
	if len(failed) > 0 {
		msg := fmt.Sprintf("%d of %d proxies failed", len(failed), len(selected))
		if o.out != "" {
			msg += ", so " + o.out + " was not updated"
		}
		return fmt.Errorf("%s: %w", msg, errors.Join(failed...))
	}
	for _, rw := range rep.Samples {
		if e := rw.Result.errors(); e > 0 {
			slog.Warn("run had errors; its numbers are not comparable", "proxy", rw.Name, "round", rw.Round, "load", rw.Load, "errors", formatErrors(rw.Result))
		}
		if rw.LogLines == 0 {
			slog.Warn("access log is empty; was logging on?", "proxy", rw.Name, "round", rw.Round)
		}
	}
	if o.out != "" {
		if err := writeSection(o.out, sectionHeading, section); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nupdated %q in %s\n", sectionHeading, o.out)
	}
	return nil
}

// wrkRoundOrder is the order of the proxies in round (from 1) of the wrk
// mode: as selected in odd rounds, reversed in even ones. A proxy that runs right after another
// shares the machine with what that one left behind (Jaeger storing its
// spans, statsd-sink digesting its last flush, the kernel reclaiming its
// sockets), so a fixed order would favour the first of two neighbours in
// every round; alternating gives each the same share of both positions.
// (The other modes keep nginx first and rotate the rest: roundOrder.)
func wrkRoundOrder(selected []peer, round int) []peer {
	if round%2 == 1 {
		return selected
	}
	rev := slices.Clone(selected)
	slices.Reverse(rev)
	return rev
}

func logRow(w io.Writer, r sample) {
	fmt.Fprintf(w, "   wrk %s: %.0f req/s, p50 %s, p99 %s, errors %s, %d requests in %v\n",
		r.Load, r.Result.RPS, formatLatency(r.Result.P50), formatLatency(r.Result.P99),
		formatErrors(r.Result), r.Result.Requests, r.Result.Elapsed)
}

// startUpstream starts the upstream on a kernel-chosen loopback port, reads
// the port from its announcement and fetches the body every proxy must
// return.
func (h *harness) startUpstream(ctx context.Context) (*child, error) {
	dir := filepath.Join(h.workDir, "upstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	stdout := filepath.Join(dir, "stdout.log")
	c, err := startChild("upstream", []string{h.o.upstreamBin, "-addr", "127.0.0.1:0", "-body-size", fmt.Sprint(h.o.bodySize)},
		nil, stdout, filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	addr, err := waitAnnouncement(ctx, c, stdout, 10*time.Second)
	if err != nil {
		c.stop(syscall.SIGTERM, time.Second)
		return nil, err
	}
	h.upstream = addr
	body, err := fetch(ctx, "http://"+addr+"/")
	if err != nil {
		c.stop(syscall.SIGTERM, time.Second)
		return nil, fmt.Errorf("upstream: %w; %s", err, c.failure())
	}
	if len(body) != h.o.bodySize {
		c.stop(syscall.SIGTERM, time.Second)
		return nil, fmt.Errorf("upstream: body is %d bytes, want -body-size %d", len(body), h.o.bodySize)
	}
	h.wantBody = body
	return c, nil
}

// waitAnnouncement reads "listening on HOST:PORT" from the upstream's stdout.
func waitAnnouncement(ctx context.Context, c *child, stdoutPath string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(stdoutPath); err == nil {
			line, _, complete := bytes.Cut(b, []byte("\n"))
			if complete {
				addr, ok := strings.CutPrefix(string(line), "listening on ")
				if !ok {
					return "", fmt.Errorf("upstream: first line %q, want \"listening on HOST:PORT\"", line)
				}
				return addr, nil
			}
		}
		if c.exited() || time.Now().After(deadline) {
			return "", fmt.Errorf("upstream did not announce its address within %v: %s", timeout, c.failure())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return body, nil
}

// runningPeer is a proxy the harness started and found ready.
type runningPeer struct {
	p   peer
	d   configData
	c   *child
	url string // plaintext HTTP/1.1 base URL, ending in "/"
	// tlsURL is the TLS listener's base URL; empty without a certificate.
	tlsURL string
}

// startPeer renders p's config into a fresh directory of its own (after
// tweak, if any, adjusts it), starts the proxy and waits until its
// listeners return the upstream's body. It resets the StatsD counts, so
// that they cover this proxy only. The caller calls r.close.
func (h *harness) startPeer(ctx context.Context, p peer, tweak func(*configData) error) (r *runningPeer, err error) {
	dir := filepath.Join(h.workDir, p.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	h.sink.take()
	d, err := newConfigData(dir, h.upstream, h.o.workers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	d.StatsSink, d.StatsOff, d.AccessLogOff, d.Histograms, d.Exemplars = h.sink.addr(), p.StatsOff, p.AccessLogOff, p.Histograms, p.Exemplars
	if p.FullObservability {
		d.StatsSink, d.TracingEndpoint = h.realSink, h.jaegerOTLP
	}
	if h.cert != nil && p.TLS {
		d.CertFile, d.KeyFile = h.cert.certFile, h.cert.keyFile
	}
	if tweak != nil {
		if err := tweak(&d); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	cfg, err := p.render(d)
	if err != nil {
		return nil, err
	}
	stdout := filepath.Join(dir, "stdout.log")
	if p.StdoutIsLog {
		stdout = d.AccessLog
	}
	var env []string
	if p.Env != nil {
		env = p.Env(d)
	}
	c, err := startChild(p.Name, append([]string{p.Bin}, p.Args(cfg, d)...), env, stdout, filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	r = &runningPeer{p: p, d: d, c: c, url: "http://" + d.Listen + "/"}
	if err := waitReady(ctx, c, r.url, nil, h.wantBody, 15*time.Second); err != nil {
		c.stop(syscall.SIGKILL, 0)
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	if d.CertFile != "" {
		r.tlsURL = "https://" + d.TLSListen + "/"
		if err := waitReady(ctx, c, r.tlsURL, h.cert.pool, h.wantBody, 15*time.Second); err != nil {
			c.stop(syscall.SIGKILL, 0)
			return nil, fmt.Errorf("%s over TLS: %w", p.Name, err)
		}
	}
	return r, nil
}

// close kills the proxy if it still runs and removes its directory, so that
// logs do not pile up.
func (r *runningPeer) close() {
	r.c.stop(syscall.SIGKILL, 0)
	os.RemoveAll(r.d.Dir)
}

// benchPeer starts one proxy, checks that it forwards to the upstream,
// measures it, stops it and counts its access-log lines. The proxy's
// directory is removed afterwards so that logs do not pile up.
func (h *harness) benchPeer(ctx context.Context, p peer, round int) ([]sample, error) {
	r, err := h.startPeer(ctx, p, nil)
	if err != nil {
		return nil, err
	}
	defer r.close()
	c, d, url, tlsURL := r.c, r.d, r.url, r.tlsURL

	var samples []sample
	for _, l := range h.o.loads {
		u := url
		if l.TLS {
			if d.CertFile == "" {
				continue // HAProxy and Caddy are not measured over TLS
			}
			u = tlsURL
		}
		res, err := h.measure(ctx, u, l)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; %s", p.Name, err, c.failure())
		}
		if c.exited() {
			return nil, fmt.Errorf("%s died during the run: %s", p.Name, c.failure())
		}
		samples = append(samples, sample{Round: round, Load: l, row: row{Name: p.label(), Result: res, StatsDatagrams: -1}})
	}
	c.stop(p.StopSignal, 10*time.Second)
	// The access log and the stats socket cover the proxy's whole run, every
	// load included, so each of its samples carries the same counts.
	lines := int64(-1)
	if !d.AccessLogOff {
		if lines, err = countLines(d.AccessLog); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		tlsLines, err := countLines(d.AccessLogTLS)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		lines += tlsLines
	}
	dgrams, byt, _ := h.sink.take()
	for i := range samples {
		samples[i].LogLines = lines
		if isHopwatch(p.Name) && !p.FullObservability {
			samples[i].StatsDatagrams, samples[i].StatsBytes = dgrams, byt
		}
	}
	return samples, nil
}

// measure runs the warm-up, then the measured wrk run, against url.
func (h *harness) measure(ctx context.Context, url string, l load) (wrkResult, error) {
	if h.o.warmup > 0 {
		// The warm-up's numbers are thrown away; only a failure to run wrk
		// matters, not how many requests a cold proxy completed.
		if _, err := h.wrk(ctx, url, l, h.o.warmup); err != nil && !errors.Is(err, errNoRequests) {
			return wrkResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	return h.wrk(ctx, url, l, h.o.duration)
}

// errNoRequests means wrk ran but no request completed.
var errNoRequests = errors.New("no request completed")

// wrk runs one bounded wrk and parses its output. The context deadline is a
// safety net on top of -d: wrk stops by itself after d.
func (h *harness) wrk(ctx context.Context, url string, l load, d time.Duration) (wrkResult, error) {
	return h.wrkArgs(ctx, url, l, d)
}

// wrkArgs is wrk with extra arguments before the URL (a -s script).
func (h *harness) wrkArgs(ctx context.Context, url string, l load, d time.Duration, extra ...string) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	args := []string{
		fmt.Sprintf("-t%d", l.Threads), fmt.Sprintf("-c%d", l.Conns),
		fmt.Sprintf("-d%ds", int(d/time.Second)), "--latency",
	}
	args = append(append(args, extra...), url)
	stdout, err := runLoadTool(ctx, h.wrkBin, args)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %w", err)
	}
	res, err := parseWrk(stdout)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w", strings.Join(args, " "), err)
	}
	if res.Requests == 0 {
		return res, fmt.Errorf("wrk %s: %w; wrk said:\n%s", strings.Join(args, " "), errNoRequests, strings.TrimSpace(string(stdout)))
	}
	return res, nil
}

// loadAverage returns the 1-minute load average, or -1 if it is unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscanf(string(b), "%f", &l); err != nil {
		return -1
	}
	return l
}

// cpuModel returns the first "model name" in /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// writeSection replaces the section under heading (one of this harness's)
// in the Markdown file at path, creating the file if needed, and leaves
// every other section alone.
// The new file is renamed into place so that a concurrent reader never sees
// half of it.
func writeSection(path, heading, section string) error {
	doc, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		doc = []byte("# Benchmarks\n")
	} else if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	updated := replaceSection(string(doc), heading, section)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".BENCHMARKS-*.md")
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(updated); err != nil {
		tmp.Close()
		return fmt.Errorf("update %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return nil
}
