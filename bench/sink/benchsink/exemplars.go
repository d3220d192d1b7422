package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hopwatch/hopwatch/bench/internal/openmetrics"
	"github.com/hopwatch/hopwatch/bench/sink/stream"
	"github.com/hopwatch/hopwatch/e2e/sinkdiff/statsdproc"
)

// exemplarsHeading is the BENCHMARKS.md section of the exemplars run:
// statsd-sink against itself, on the Envoy stream and on the same stream
// with trace IDs on its timer lines. statsd_exporter cannot be the peer
// there: it drops every line with a |trace_id: section.
const exemplarsHeading = "## statsd-sink: timer lines with and without exemplars"

// exemplarCase is one of the two streams of the exemplars run.
type exemplarCase struct {
	name string
	st   *stream.Stream
}

// exemplarRound is what one round measured of one stream, each in a fresh
// statsd-sink.
type exemplarRound struct {
	result
	// rssAfterCPU is VmRSS after the CPU run.
	rssAfterCPU int64
	// exemplars counts the bucket lines of an OpenMetrics scrape after the
	// CPU run that carry an exemplar.
	exemplars int
}

// exemplarRun is the whole exemplars comparison: rounds[i][0] is the plain
// stream in round i, rounds[i][1] the stream with trace IDs.
type exemplarRun struct {
	rounds  [][2]exemplarRound
	cpuRate float64
	// bytesPerLine is the mean line size of each stream, newline included.
	bytesPerLine [2]float64
	traced       int // timer lines with a trace ID in one pass
	timers       int // timer lines in one pass
}

// exemplarStreams returns the Envoy stream and the same stream with
// trace IDs on the given fraction of its timer lines.
func exemplarStreams(traceIDs float64) [2]exemplarCase {
	return [2]exemplarCase{
		{"plain", stream.Envoy(stream.EnvoyOptions{Seed: 1})},
		{"with trace IDs", stream.Envoy(stream.EnvoyOptions{Seed: 1, TraceIDs: traceIDs})},
	}
}

// measureExemplars measures statsd-sink on both streams in interleaved rounds
// (plain, traced, traced, plain, …), each in a fresh process: first the
// lossless rate of every round, then CPU per million lines at half the
// lowest of those rates, RSS, and the exemplars an OpenMetrics scrape shows.
func measureExemplars(ctx context.Context, log *slog.Logger, c config) (exemplarRun, error) {
	cases := exemplarStreams(c.traceIDs)
	run := exemplarRun{rounds: make([][2]exemplarRound, c.exemplarRounds)}
	for i, cs := range cases {
		run.bytesPerLine[i] = meanLineBytes(cs.st)
	}
	run.timers, run.traced = countTimers(cases[1].st)
	t := target{"statsd-sink", c.sink}
	for r := range run.rounds {
		for _, i := range roundOrder(r) {
			cs := cases[i]
			l := log.With("target", t.name, "stream", cs.name, "round", r+1)
			if err := withProc(ctx, c, t, func(p *statsdproc.Proc) error {
				return searchLossless(ctx, l, c, p, cs.st, &run.rounds[r][i].result)
			}); err != nil {
				return run, fmt.Errorf("statsd-sink, %s stream, round %d: lossless search: %w", cs.name, r+1, err)
			}
		}
	}
	run.cpuRate = math.Inf(1)
	for _, rr := range run.rounds {
		for _, x := range rr {
			run.cpuRate = math.Min(run.cpuRate, x.lossless/2)
		}
	}
	for r := range run.rounds {
		for _, i := range roundOrder(r) {
			cs := cases[i]
			l := log.With("target", t.name, "stream", cs.name, "round", r+1)
			x := &run.rounds[r][i]
			if err := withProc(ctx, c, t, func(p *statsdproc.Proc) error {
				if err := measureCPU(ctx, l, c, p, cs.st, run.cpuRate, &x.result); err != nil {
					return err
				}
				var err error
				if x.rssAfterCPU, err = rss(p.Pid()); err != nil {
					return err
				}
				x.exemplars, err = openmetrics.CountExemplars(ctx, p.MetricsURL)
				return err
			}); err != nil {
				return run, fmt.Errorf("statsd-sink, %s stream, round %d: cpu: %w", cs.name, r+1, err)
			}
		}
	}
	// A traced stream that leaves no exemplar measured no exemplar work:
	// its figures would compare the plain stream with itself.
	for r, rr := range run.rounds {
		if run.traced > 0 && rr[1].exemplars == 0 {
			return run, fmt.Errorf("round %d: statsd-sink exposed no exemplar after the stream with trace IDs: were its |trace_id: sections refused?", r+1)
		}
		if rr[0].exemplars != 0 {
			return run, fmt.Errorf("round %d: statsd-sink exposed %d exemplars after the plain stream, which has no trace ID", r+1, rr[0].exemplars)
		}
	}
	return run, nil
}

// roundOrder is the order of the two streams in round r (from 0): plain
// first in even rounds, the stream with trace IDs first in odd ones, so
// that a drift in the machine's load over a round favours neither.
func roundOrder(r int) [2]int {
	if r%2 == 1 {
		return [2]int{1, 0}
	}
	return [2]int{0, 1}
}

// meanLineBytes is a stream's mean line size, newline included.
func meanLineBytes(st *stream.Stream) float64 {
	n := 0
	for _, d := range st.Datagrams {
		n += len(d) + 1
	}
	return float64(n) / float64(st.TotalLines())
}

// countTimers counts a stream's timer lines and those with a trace ID.
func countTimers(st *stream.Stream) (timers, traced int) {
	for _, d := range st.Datagrams {
		for l := range bytes.SplitSeq(d, []byte("\n")) {
			base, _, has := bytes.Cut(l, []byte("|trace_id:"))
			if bytes.Contains(base, []byte("|ms")) {
				timers++
				if has {
					traced++
				}
			}
		}
	}
	return timers, traced
}

// validateExemplarFlags checks the exemplars run's flags.
func validateExemplarFlags(c config) error {
	var errs []error
	if c.traceIDs <= 0 || c.traceIDs > 1 {
		errs = append(errs, fmt.Errorf("-trace-ids %v: want a fraction above 0, up to 1", c.traceIDs))
	}
	if c.exemplarRounds < 1 || c.exemplarRounds > 10 {
		errs = append(errs, fmt.Errorf("-exemplar-rounds %d: want 1 to 10", c.exemplarRounds))
	}
	return errors.Join(errs...)
}

// renderExemplarTable is the exemplars run's table: per figure, the median
// over the rounds of each stream, each round's ratio traced/plain, and the
// median of those ratios.
func renderExemplarTable(run exemplarRun) string {
	var b strings.Builder
	type figure struct {
		name, better string
		value        func(exemplarRound) float64
		format       func(float64) string
	}
	figures := []figure{
		{"highest lossless rate, lines/s (loss ≤ 0.1 %)", "higher",
			func(x exemplarRound) float64 { return x.lossless }, func(v float64) string { return fmt.Sprintf("%.0fk", v/1000) }},
		{fmt.Sprintf("CPU seconds per million lines (at %.0fk lines/s)", run.cpuRate/1000), "lower",
			func(x exemplarRound) float64 { return x.cpuPerMillion }, func(v float64) string { return fmt.Sprintf("%.2f", v) }},
		{"RSS after the CPU run", "lower",
			func(x exemplarRound) float64 { return float64(x.rssAfterCPU) }, func(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }},
	}
	b.WriteString("| figure | plain stream | with trace IDs | with / plain, per round | with / plain (median) | better |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, f := range figures {
		var plain, traced, ratios []float64
		for _, rr := range run.rounds {
			p, t := f.value(rr[0]), f.value(rr[1])
			plain, traced = append(plain, p), append(traced, t)
			ratios = append(ratios, safeRatio(t, p))
		}
		per := make([]string, len(ratios))
		for i, r := range ratios {
			per[i] = fmt.Sprintf("%.2f", r)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %s |\n", f.name, f.format(medianOf(plain)), f.format(medianOf(traced)),
			strings.Join(per, " "), medianOf(ratios), f.better)
	}
	var bound []string
	for r, rr := range run.rounds {
		for i, x := range rr {
			if x.losslessBound {
				bound = append(bound, fmt.Sprintf("round %d %s", r+1, exemplarStreams(0)[i].name))
			}
		}
	}
	if len(bound) > 0 {
		fmt.Fprintf(&b, "\nThe load generator, not statsd-sink, was the limit of the lossless search in %s: those rates are lower bounds.\n", strings.Join(bound, ", "))
	}
	ex := make([]string, len(run.rounds))
	for r, rr := range run.rounds {
		ex[r] = fmt.Sprint(rr[1].exemplars)
	}
	fmt.Fprintf(&b, "\nDetails: %d of the stream's %d timer lines per pass carry a trace ID; mean line %.1f bytes plain, %.1f with trace IDs; bucket lines with an exemplar in an OpenMetrics scrape after the CPU run: %s (per round; 0 after the plain stream).\n",
		run.traced, run.timers, run.bytesPerLine[0], run.bytesPerLine[1], strings.Join(ex, ", "))
	return b.String()
}

func safeRatio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// medianOf returns the median of xs, or NaN for none; xs is not modified.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// renderExemplarSection is the whole exemplars section, heading included.
func renderExemplarSection(c config, table string, took time.Duration) string {
	var b strings.Builder
	writeSectionHead(&b, exemplarsHeading, c, took, "a ratio within ±10 % of 1 is not a measured difference. Re-run on a quiet machine.")
	fmt.Fprintf(&b, "statsd-sink against itself: the Envoy stream of \"statsd-sink vs statsd_exporter\", and the same stream with `|trace_id:<32 hex>` (a distinct random ID each) appended to %.0f %% of its timer lines, the worst case of a proxy that traces every request with `exemplars: true` (at the usual 1 %% sampling, one timer line in a hundred carries one). Apart from the sections the two streams are byte for byte the same. statsd_exporter cannot be the peer here: it drops every line with a `|trace_id:` section (sink/README.md), so that comparison keeps the plain stream.\n\n", 100*c.traceIDs)
	b.WriteString(table)
	fmt.Fprintf(&b, `
Method:
- %d interleaved rounds, the plain stream first in odd rounds and second in even ones (plain, with, with, plain, …), each stream in a fresh statsd-sink with the flags and mapping of "statsd-sink vs statsd_exporter" (its timers are histograms, which keep one exemplar per bucket).
- Lossless rate: the search of "statsd-sink vs statsd_exporter", once per round and stream. The ratio counts lines, and a line with a trace ID is 42 bytes longer. On a shared machine this is the noisiest figure (a burst of other work during one 2 s step makes it lossy, and the bisection then settles lower); CPU per million lines at a fixed rate is the one that shows the cost per line.
- CPU: utime+stime around a fixed-rate run at half the lowest lossless rate of all rounds, the same rate for both streams; then VmRSS, and one OpenMetrics scrape that counts the bucket lines with an exemplar (the run fails if the stream with trace IDs leaves none).
`, c.exemplarRounds)
	return b.String()
}
