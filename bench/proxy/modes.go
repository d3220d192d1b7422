package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The -modes names. wrkMode is the original benchmark (every proxy under
// LOADS); the others each measure one thing against nginx and write a
// section of their own.
const (
	wrkMode    = "wrk"
	h2Mode     = "h2"
	grpcMode   = "grpc"
	idleMode   = "idle"
	bodiesMode = "bodies"
	statsMode  = "stats"
)

// allModes lists every mode in run order.
var allModes = []string{wrkMode, h2Mode, grpcMode, idleMode, bodiesMode, statsMode}

// modeSample is one proxy measured under one case of a mode in one round.
type modeSample struct {
	Case  string
	Proxy string // the row label
	Round int
	// RPS is the load generator's requests (or calls) per second; Requests
	// and Errors are its counts over the measured run only.
	RPS              float64
	Requests, Errors int64
	// CPU is the proxy's CPU time (utime+stime of its whole process group)
	// over the measured run, in seconds.
	CPU float64
	// Bytes is the body bytes the proxy moved in the measured run (large
	// bodies), 0 otherwise.
	Bytes float64
	// RSSBefore and RSSAfter are the process group's resident memory before
	// and after opening Conns idle connections; Held is how many of them
	// were still open after the busy run (idle mode).
	RSSBefore, RSSAfter int64
	Conns, Held         int
	// StatsDatagrams, StatsLines and StatsDropped are what the harness's
	// StatsD socket received from the proxy's whole run and the proxy's own
	// statsd.timer_samples_dropped (stats mode); -1 where not measured.
	StatsDatagrams, StatsLines, StatsDropped int64
}

// cpuPerRequest is the proxy's CPU time per request in microseconds.
func (s modeSample) cpuPerRequest() float64 {
	if s.Requests <= 0 {
		return nan
	}
	return s.CPU / float64(s.Requests) * 1e6
}

// modeSpec is what a mode does: which proxies, how their configs differ,
// and how one running proxy is measured.
type modeSpec struct {
	Heading string
	// peers picks the proxies to measure, nginx first.
	peers func(h *harness, selected []peer) []peer
	// tweak, when set, adjusts a proxy's config for this mode.
	tweak func(h *harness, d *configData) error
	// measure runs every case against a ready proxy.
	measure func(ctx context.Context, h *harness, r *runningPeer) ([]modeSample, error)
	// describe is the section's text between the heading and the tables.
	describe func(h *harness) string
	// columns are the table's columns after req/s and its ratios.
	columns []column
	// conclude is an optional paragraph after the tables.
	conclude func(samples []modeSample) string
}

// modeSpecs returns the spec of every mode but wrkMode.
func modeSpecs() map[string]modeSpec {
	return map[string]modeSpec{
		h2Mode:     h2Spec(),
		grpcMode:   grpcSpec(),
		idleMode:   idleSpec(),
		bodiesMode: bodiesSpec(),
		statsMode:  statsSpec(),
	}
}

// nginxAndHopwatch keeps nginx and the hopwatch-proxy variants of the
// selected proxies: the extra modes compare hopwatch with nginx only.
func nginxAndHopwatch(_ *harness, selected []peer) []peer {
	var out []peer
	for _, p := range selected {
		if p.Name == "nginx" || isHopwatch(p.Name) {
			out = append(out, p)
		}
	}
	return out
}

// runMode measures one mode in interleaved rounds (nginx, hopwatch, nginx,
// hopwatch, …) and returns its Markdown section.
func (h *harness) runMode(ctx context.Context, name string, selected []peer, out io.Writer) (string, error) {
	spec := modeSpecs()[name]
	ps := spec.peers(h, selected)
	if len(ps) == 0 || ps[0].Name != "nginx" {
		return "", fmt.Errorf("mode %s: needs nginx and a hopwatch-proxy variant in -proxies", name)
	}
	var samples []modeSample
	var failed []error
	for round := 1; round <= h.o.rounds; round++ {
		for _, p := range roundOrder(ps, round) {
			fmt.Fprintf(out, "== %s round %d/%d: %s\n", name, round, h.o.rounds, p.label())
			got, err := h.measureMode(ctx, spec, p)
			if ctx.Err() != nil {
				return "", fmt.Errorf("interrupted during %s: %w", p.Name, context.Cause(ctx))
			}
			if err != nil {
				slog.Error("proxy not measured", "mode", name, "proxy", p.Name, "round", round, "err", err)
				failed = append(failed, fmt.Errorf("%s round %d: %w", name, round, err))
				continue
			}
			for i := range got {
				got[i].Round, got[i].Proxy = round, p.label()
				logModeSample(out, got[i])
			}
			samples = append(samples, got...)
		}
	}
	section := h.modeSection(spec, samples)
	if len(failed) > 0 {
		fmt.Fprintf(out, "\n%s", section)
		return "", fmt.Errorf("mode %s: %w", name, errors.Join(failed...))
	}
	return section, nil
}

// roundOrder is the order of the proxies in one round: nginx first, then
// the others rotated by one place each round, so that with two hopwatch
// variants (stats mode) neither always runs last, after the machine has
// been loaded longest.
func roundOrder(ps []peer, round int) []peer {
	if len(ps) < 3 {
		return ps
	}
	rest := ps[1:]
	k := (round - 1) % len(rest)
	return append(append([]peer{ps[0]}, rest[k:]...), rest[:k]...)
}

// measureMode starts one proxy for a mode, measures it and stops it.
func (h *harness) measureMode(ctx context.Context, spec modeSpec, p peer) ([]modeSample, error) {
	var tweak func(*configData) error
	if spec.tweak != nil {
		tweak = func(d *configData) error { return spec.tweak(h, d) }
	}
	r, err := h.startPeer(ctx, p, tweak)
	if err != nil {
		return nil, err
	}
	defer r.close()
	got, err := spec.measure(ctx, h, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; %s", p.Name, err, r.c.failure())
	}
	if r.c.exited() {
		return nil, fmt.Errorf("%s died during the run: %s", p.Name, r.c.failure())
	}
	r.c.stop(p.StopSignal, 10*time.Second)
	dgrams, _, lines := h.sink.take()
	for i := range got {
		if got[i].StatsDatagrams == 0 && got[i].StatsLines == 0 {
			got[i].StatsDatagrams, got[i].StatsLines = dgrams, lines
		}
		if !isHopwatch(p.Name) || p.StatsOff {
			got[i].StatsDatagrams, got[i].StatsLines = -1, -1
		}
	}
	return got, nil
}

// timed runs load against the proxy and adds the proxy's CPU time over it
// to the sample load returns.
func timed(r *runningPeer, load func() (modeSample, error)) (modeSample, error) {
	before, err := readGroupUsage(r.c.cmd.Process.Pid)
	if err != nil {
		return modeSample{}, err
	}
	s, err := load()
	if err != nil {
		return s, err
	}
	after, err := readGroupUsage(r.c.cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	s.CPU = after.CPU - before.CPU
	return s, nil
}

// wrkSample runs a discarded warm-up, then one measured wrk run with the
// proxy's CPU time, as one case's sample.
func (h *harness) wrkSample(ctx context.Context, r *runningPeer, name, url string, l load, extra ...string) (modeSample, error) {
	if h.o.warmup > 0 {
		if _, err := h.wrkArgs(ctx, url, l, h.o.warmup, extra...); err != nil && !errors.Is(err, errNoRequests) {
			return modeSample{}, fmt.Errorf("%s: warm-up: %w", name, err)
		}
	}
	return timed(r, func() (modeSample, error) {
		res, err := h.wrkArgs(ctx, url, l, h.o.duration, extra...)
		if err != nil {
			return modeSample{}, fmt.Errorf("%s: %w", name, err)
		}
		return modeSample{Case: name, RPS: res.RPS, Requests: res.Requests, Errors: res.errors()}, nil
	})
}

func logModeSample(w io.Writer, s modeSample) {
	fmt.Fprintf(w, "   %s: %.0f req/s, %d requests, errors %d, proxy CPU %.2fs (%.1f µs/request)",
		s.Case, s.RPS, s.Requests, s.Errors, s.CPU, s.cpuPerRequest())
	if s.Bytes > 0 {
		fmt.Fprintf(w, ", %.2f GiB", s.Bytes/(1<<30))
	}
	if s.Conns > 0 {
		fmt.Fprintf(w, ", RSS %.1f → %.1f MiB for %d idle connections (%d still open)",
			float64(s.RSSBefore)/(1<<20), float64(s.RSSAfter)/(1<<20), s.Conns, s.Held)
	}
	if s.StatsLines > 0 {
		fmt.Fprintf(w, ", stats %d datagrams, %d lines, %d samples dropped", s.StatsDatagrams, s.StatsLines, s.StatsDropped)
	}
	fmt.Fprintln(w)
}

// parseModes checks a -modes list.
func parseModes(s string) ([]string, error) {
	var out []string
	for _, m := range splitList(s) {
		if !slices.Contains(allModes, m) {
			return nil, fmt.Errorf("-modes: unknown mode %q; want some of %s", m, strings.Join(allModes, ","))
		}
		if slices.Contains(out, m) {
			return nil, fmt.Errorf("-modes: %q is listed twice", m)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-modes: empty; want some of %s", strings.Join(allModes, ","))
	}
	return out, nil
}

// startModeServices prepares what the selected modes need besides the
// proxies: h2load, the open-file limit, the gRPC upstream.
func (h *harness) startModeServices(ctx context.Context) error {
	if slices.Contains(h.o.modes, h2Mode) {
		bin, err := exec.LookPath("h2load")
		if err != nil {
			return fmt.Errorf("-modes h2: h2load not found in PATH (apt-get install -y nghttp2-client): %w", err)
		}
		h.h2loadBin = bin
	}
	if slices.Contains(h.o.modes, idleMode) {
		if err := checkNofile(h.o.idleConns); err != nil {
			return err
		}
	}
	if !slices.Contains(h.o.modes, grpcMode) {
		return nil
	}
	dir := filepath.Join(h.workDir, "grpcupstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("grpc upstream: %w", err)
	}
	stdout := filepath.Join(dir, "stdout.log")
	c, err := startChild("grpc upstream", []string{h.o.upstreamBin, "-grpc", "-addr", "127.0.0.1:0"}, nil, stdout, filepath.Join(dir, "stderr.log"))
	if err != nil {
		return err
	}
	h.grpcChild = c
	if h.grpcUpstream, err = waitAnnouncement(ctx, c, stdout, 10*time.Second); err != nil {
		return fmt.Errorf("grpc upstream: %w", err)
	}
	// A direct call proves the upstream serves before any proxy is blamed.
	s, err := grpcLoad(ctx, h.grpcUpstream, 1, 1, time.Second)
	if err != nil {
		return fmt.Errorf("grpc upstream at %s: %w; %s", h.grpcUpstream, err, c.failure())
	}
	if s.Requests == 0 || s.Errors > 0 {
		return fmt.Errorf("grpc upstream at %s does not answer Health/Check (%d calls, %d failed): %s", h.grpcUpstream, s.Requests, s.Errors, c.failure())
	}
	return nil
}

// stopModeServices stops what startModeServices started.
func (h *harness) stopModeServices() {
	if h.grpcChild != nil {
		h.grpcChild.stop(syscall.SIGTERM, 5*time.Second)
	}
}
