package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// statsLoad is the stats mode's wrk load.
var statsLoad = load{Threads: 1, Conns: 50}

// Row labels of the two sink modes.
const (
	timerRow   = "hopwatch-proxy (histograms: timer)"
	compactRow = "hopwatch-proxy (histograms: compact)"
)

func statsSpec() modeSpec {
	perK := func(v func(modeSample) int64) func(modeSample) float64 {
		return func(s modeSample) float64 {
			if v(s) < 0 || s.Requests == 0 {
				return nan
			}
			return float64(v(s)) / float64(s.Requests) * 1000
		}
	}
	count := func(v func(modeSample) int64) func(modeSample) float64 {
		return func(s modeSample) float64 {
			if v(s) < 0 {
				return nan
			}
			return float64(v(s))
		}
	}
	lines := func(s modeSample) int64 { return s.StatsLines }
	dgrams := func(s modeSample) int64 { return s.StatsDatagrams }
	dropped := func(s modeSample) int64 { return s.StatsDropped }
	return modeSpec{
		Heading: "## hopwatch-proxy stats sink: timer vs compact histograms",
		peers: func(h *harness, _ []peer) []peer {
			all := peers(h.o.hopwatchBin)
			var nginx, hp peer
			for _, p := range all {
				switch p.Name {
				case "nginx":
					nginx = p
				case "hopwatch-proxy":
					hp = p
				}
			}
			timer, compact := hp, hp
			timer.Label, timer.Histograms = timerRow, "timer"
			compact.Label, compact.Histograms = compactRow, "compact"
			return []peer{nginx, timer, compact}
		},
		measure:  measureStats,
		describe: describeStats,
		columns: []column{
			errorsColumn, cpuColumn,
			{Title: "sink datagrams", Value: count(dgrams), Format: formatCount},
			{Title: "sink lines", Value: count(lines), Format: formatCount},
			{Title: "sink lines per 1000 requests", Value: perK(lines), Format: formatFixed(0)},
			{Title: "timer samples dropped", Value: count(dropped), Format: formatCount},
		},
		conclude: concludeStats,
	}
}

func describeStats(h *harness) string {
	return fmt.Sprintf("The same hopwatch-proxy config as the `hopwatch-proxy` row of the main table (JSON access log, full stats flushed every 5 s over UDP to a socket of the harness that counts datagrams and lines and parses nothing), "+
		"run twice: once with `histograms: timer` on its `stats_sinks` entry (the default: one `|ms` line per sample, drained every 250 ms) and once with `histograms: compact` (per flush, one line per histogram bucket that changed). "+
		"Load: `wrk %s` for %v after a %v warm-up. Sink datagrams and lines cover the proxy's whole run (readiness check, warm-up, measured run, and the flush on stop); "+
		"\"per 1000 requests\" divides them by the measured run's requests only, so it overstates slightly. \"timer samples dropped\" is the proxy's own `statsd.timer_samples_dropped`, read from its admin `/stats` just after the measured run. "+
		"nginx is the reference for the req/s ratio and has no stats sink; it runs first in each round, and the two hopwatch-proxy variants swap places from one round to the next.",
		statsLoad, h.o.duration, h.o.warmup)
}

func measureStats(ctx context.Context, h *harness, r *runningPeer) ([]modeSample, error) {
	s, err := h.wrkSample(ctx, r, fmt.Sprintf("wrk %s", statsLoad), r.url, statsLoad)
	if err != nil {
		return nil, err
	}
	s.StatsDropped = -1
	if r.p.Histograms != "" {
		if s.StatsDropped, err = adminStat(ctx, r.d.AdminListen, "statsd.timer_samples_dropped"); err != nil {
			return nil, err
		}
	}
	return []modeSample{s}, nil
}

// adminStat reads one counter from hopwatch-proxy's admin /stats ("name:
// value" lines, as Envoy's); a counter never incremented may be absent,
// which reads as 0.
func adminStat(ctx context.Context, admin, name string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin /stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("admin /stats: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("admin /stats: %s: %q is not a count", name, v)
			}
			return n, nil
		}
	}
	return 0, sc.Err()
}

// concludeStats compares compact with timer round by round.
func concludeStats(samples []modeSample) string {
	var rates, cpu, lines []float64
	for _, c := range samples {
		if c.Proxy != compactRow {
			continue
		}
		for _, t := range samples {
			if t.Proxy == timerRow && t.Round == c.Round && t.Case == c.Case {
				rates = append(rates, ratio(c.RPS, t.RPS))
				cpu = append(cpu, ratio(c.cpuPerRequest(), t.cpuPerRequest()))
				lines = append(lines, ratio(float64(t.StatsLines), float64(c.StatsLines)))
			}
		}
	}
	if len(rates) == 0 {
		return ""
	}
	return fmt.Sprintf("**compact against timer** (medians of per-round ratios): compact served %s the req/s of timer at %s its proxy CPU per request, and timer sent %s the sink lines of compact. "+
		"On a loaded machine req/s swings more from round to round than the two modes differ; CPU per request is the steadier figure. "+
		"The default is left as it is (`timer`, Envoy's behaviour): this harness only measures.",
		formatRatio(median(rates)), formatRatio(median(cpu)), formatBigRatio(median(lines)))
}

// formatBigRatio prints a ratio that may be in the hundreds without
// decimals.
func formatBigRatio(r float64) string {
	if r >= 100 && !math.IsInf(r, 0) {
		return fmt.Sprintf("%.0f×", r)
	}
	return formatRatio(r)
}
