// Command benchsink is `make bench-sink`: it runs statsd_exporter and
// statsd-sink in turn on free loopback ports with the same Envoy mapping,
// replays the same pre-generated datagram stream into each, and measures
//
//	(a) the highest lossless rate (loss ≤ 0.1 %, from the receiver's own
//	    line counter against the lines sent), by doubling then bisecting;
//	(b) CPU seconds per million lines at one fixed rate both sustain;
//	(c) RSS with 100k series;
//	(d) /metrics scrape time with 100k series (median of 5);
//	(e) peak RSS while sent twice its lossless rate for ~10 s.
//
// It prints a Markdown table and rewrites the "## statsd-sink vs
// statsd_exporter" section of BENCHMARKS.md.
//
// Then it measures statsd-sink against itself on that stream and on the same
// stream with |trace_id: sections on its timer lines (exemplars.go; lossless
// rate, CPU per million lines, RSS, in interleaved rounds), which
// statsd_exporter would drop, and rewrites the "## statsd-sink: timer lines
// with and without exemplars" section. -runs picks either. The whole run is
// bounded (about 6 minutes) and children are always killed, also when this
// process is.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hopwatch/hopwatch/bench/sink/stream"
	"github.com/hopwatch/hopwatch/e2e/sinkdiff"
	"github.com/hopwatch/hopwatch/e2e/sinkdiff/statsdproc"
)

// maxLoss is the loss at or under which a rate counts as lossless.
const maxLoss = 0.001

type config struct {
	exporter, sink string
	mapping        string
	benchmarks     string
	step           time.Duration
	startRate      float64
	maxRate        float64
	refine         int
	cpuDuration    time.Duration
	overload       time.Duration
	series         int
	readBuffer     int
	command        string
	loadBefore     string
	timeout        time.Duration
	// runs are the comparisons to make: runExporter, runExemplars.
	runs []string
	// traceIDs is the fraction of timer lines with a trace ID in the
	// exemplars run's second stream, and exemplarRounds its rounds.
	traceIDs       float64
	exemplarRounds int
}

// The comparisons -runs selects.
const (
	runExporter  = "exporter"
	runExemplars = "exemplars"
)

func main() {
	var c config
	flag.StringVar(&c.exporter, "exporter", "bin/statsd_exporter", "statsd_exporter binary (built by `make tools`)")
	flag.StringVar(&c.sink, "sink", "bin/statsd-sink", "statsd-sink binary (built by `make bin/statsd-sink`)")
	flag.StringVar(&c.mapping, "mapping", "bench/sink/mapping.yml", "mapping file given to both receivers")
	flag.StringVar(&c.benchmarks, "benchmarks", "BENCHMARKS.md", "file whose \""+sectionHeading+"\" section is rewritten; empty to skip")
	flag.DurationVar(&c.step, "step", 2*time.Second, "duration of each rate step of the lossless search")
	flag.Float64Var(&c.startRate, "start-rate", 100000, "first rate of the lossless search, lines/s")
	flag.Float64Var(&c.maxRate, "max-rate", 6.4e6, "highest rate the lossless search tries, lines/s")
	flag.IntVar(&c.refine, "refine", 3, "bisection steps after the doubling phase")
	flag.DurationVar(&c.cpuDuration, "cpu-duration", 5*time.Second, "duration of the fixed-rate CPU run")
	flag.DurationVar(&c.overload, "overload", 10*time.Second, "duration of the 2× overload run")
	flag.IntVar(&c.series, "series", 100000, "distinct series for the RSS and scrape measurements")
	flag.IntVar(&c.readBuffer, "read-buffer", 0, "pass --statsd.read-buffer to both receivers when > 0")
	flag.DurationVar(&c.timeout, "timeout", 12*time.Minute, "abort the whole run after this long")
	runs := flag.String("runs", runExporter+","+runExemplars, "comparisons to make: "+runExporter+" (statsd-sink vs statsd_exporter) and "+runExemplars+" (statsd-sink on the stream with and without trace IDs)")
	flag.Float64Var(&c.traceIDs, "trace-ids", 1, "exemplars run: fraction of timer lines that carry |trace_id:<32 hex> in the second stream")
	flag.IntVar(&c.exemplarRounds, "exemplar-rounds", 2, "exemplars run: interleaved rounds")
	flag.Parse()
	for r := range strings.SplitSeq(*runs, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.runs = append(c.runs, r)
		}
	}
	c.command = "make bench-sink"
	if flag.NFlag() > 0 {
		c.command = "go run ./bench/sink/benchsink " + strings.Join(os.Args[1:], " ")
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	err := run(ctx, log, c)
	cancel()
	stop()
	if err != nil {
		log.Error("bench-sink failed", "err", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	bin  string
}

// result holds one receiver's figures.
type result struct {
	lossless      float64 // lines/s
	losslessBound bool    // the load generator, not the receiver, was the limit
	cpuPerMillion float64 // CPU seconds
	cpuRate       float64
	rss100k       int64
	series        int
	scrape        time.Duration
	scrapeBytes   int
	overloadPeak  int64
	overloadRate  float64
	overloadLoss  float64
}

func run(ctx context.Context, log *slog.Logger, c config) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	c.exporter, c.sink, c.mapping, c.benchmarks = abs(c.exporter), abs(c.sink), abs(c.mapping), abs(c.benchmarks)
	// Other work on the machine skews every figure; record it, and warn
	// when the machine is already busy.
	c.loadBefore = loadAverage()
	if busy(c.loadBefore) {
		log.Warn("the machine is busy; figures will be low and noisy", "loadavg", c.loadBefore, "cpus", runtime.NumCPU())
	}
	if len(c.runs) == 0 {
		return fmt.Errorf("-runs: empty; want %s, %s or both", runExporter, runExemplars)
	}
	for _, r := range c.runs {
		if r != runExporter && r != runExemplars {
			return fmt.Errorf("-runs: unknown comparison %q; want %s or %s", r, runExporter, runExemplars)
		}
	}
	if slices.Contains(c.runs, runExemplars) {
		if err := validateExemplarFlags(c); err != nil {
			return err
		}
	}
	if err := statsdproc.CheckBinary(c.sink, "make bin/statsd-sink"); err != nil {
		return err
	}
	if _, err := os.Stat(c.mapping); err != nil {
		return fmt.Errorf("mapping: %w", err)
	}
	if slices.Contains(c.runs, runExporter) {
		if err := compareExporter(ctx, log, c); err != nil {
			return err
		}
	}
	if slices.Contains(c.runs, runExemplars) {
		if err := compareExemplars(ctx, log, c); err != nil {
			return err
		}
	}
	return nil
}

// compareExemplars runs the exemplars comparison and writes its section.
func compareExemplars(ctx context.Context, log *slog.Logger, c config) error {
	began := time.Now()
	run, err := measureExemplars(ctx, log, c)
	if err != nil {
		return fmt.Errorf("exemplars: %w", err)
	}
	table := renderExemplarTable(run)
	fmt.Println(table)
	log.Info("exemplars comparison done", "elapsed", time.Since(began).Round(time.Second))
	if c.benchmarks == "" {
		return nil
	}
	if err := writeSection(c.benchmarks, exemplarsHeading, renderExemplarSection(c, table, time.Since(began))); err != nil {
		return err
	}
	log.Info("wrote section", "file", c.benchmarks, "heading", exemplarsHeading)
	return nil
}

// compareExporter is statsd-sink against statsd_exporter on the same
// streams, written to the sectionHeading section.
func compareExporter(ctx context.Context, log *slog.Logger, c config) error {
	if err := statsdproc.CheckBinary(c.exporter, "make tools"); err != nil {
		return err
	}
	targets := []target{{"statsd_exporter", c.exporter}, {"statsd-sink", c.sink}}
	res := make([]result, len(targets))
	envoy := stream.Envoy(stream.EnvoyOptions{Seed: 1})
	began := time.Now()

	// (a) for both first: (b) needs one rate that both sustain.
	for i, t := range targets {
		if err := withProc(ctx, c, t, func(p *statsdproc.Proc) error {
			return searchLossless(ctx, log.With("target", t.name), c, p, envoy, &res[i])
		}); err != nil {
			return fmt.Errorf("%s: lossless search: %w", t.name, err)
		}
	}
	cpuRate := math.Min(res[0].lossless, res[1].lossless) / 2
	for i, t := range targets {
		l := log.With("target", t.name)
		if err := withProc(ctx, c, t, func(p *statsdproc.Proc) error {
			if err := measureCPU(ctx, l, c, p, envoy, cpuRate, &res[i]); err != nil {
				return err
			}
			return measureOverload(ctx, l, c, p, envoy, &res[i])
		}); err != nil {
			return fmt.Errorf("%s: cpu/overload: %w", t.name, err)
		}
		if err := withProc(ctx, c, t, func(p *statsdproc.Proc) error {
			return measureSeries(ctx, l, c, p, &res[i])
		}); err != nil {
			return fmt.Errorf("%s: 100k series: %w", t.name, err)
		}
	}
	table := renderTable(c, res)
	fmt.Println(table)
	log.Info("bench-sink done", "elapsed", time.Since(began).Round(time.Second))
	if c.benchmarks == "" {
		return nil
	}
	section := renderSection(c, table, time.Since(began))
	if err := writeSection(c.benchmarks, sectionHeading, section); err != nil {
		return err
	}
	log.Info("wrote section", "file", c.benchmarks, "heading", sectionHeading)
	return nil
}

func withProc(ctx context.Context, c config, t target, f func(*statsdproc.Proc) error) error {
	var args []string
	if c.readBuffer > 0 {
		args = append(args, "--statsd.read-buffer="+strconv.Itoa(c.readBuffer))
	}
	p, err := statsdproc.Start(ctx, statsdproc.Config{Binary: t.bin, MappingFile: c.mapping, Args: args})
	if err != nil {
		return err
	}
	defer p.Stop()
	err = f(p)
	if exited, werr := p.Exited(); exited {
		return fmt.Errorf("%s exited during the run (%w): %w\n%s", t.name, werr, err, p.Output())
	}
	return err
}

// step is one fixed-rate replay and what the receiver counted of it.
type step struct {
	target, achieved float64
	sent, received   float64
	loss             float64
}

func (s step) lossless() bool { return s.loss <= maxLoss }

// replay sends at rate for d and waits until the receiver's line counter
// stops moving, so that lines queued inside the receiver still count.
func replay(ctx context.Context, p *statsdproc.Proc, snd *stream.Sender, st *stream.Stream, offset *int, rate float64, d time.Duration) (step, error) {
	base, err := p.Lines(ctx)
	if err != nil {
		return step{}, err
	}
	lines := int(rate * d.Seconds())
	if rate == 0 {
		lines = math.MaxInt
	}
	r, err := snd.Send(ctx, st, stream.SendOptions{Rate: rate, Lines: lines, MaxDuration: d + d/2, Offset: *offset})
	*offset = r.Next
	if err != nil {
		return step{}, err
	}
	got, err := p.WaitLines(ctx, base+float64(r.Lines), time.Second)
	if err != nil {
		return step{}, err
	}
	s := step{target: rate, achieved: r.Rate(), sent: float64(r.Lines), received: got - base}
	s.loss = 1 - s.received/s.sent
	return s, nil
}

func searchLossless(ctx context.Context, log *slog.Logger, c config, p *statsdproc.Proc, st *stream.Stream, res *result) error {
	snd, err := stream.Dial(p.UDPAddr)
	if err != nil {
		return err
	}
	defer snd.Close()
	offset := 0
	// Warm up: mapping caches, series creation, Go heap growth.
	if _, err := replay(ctx, p, snd, st, &offset, c.startRate/2, time.Second); err != nil {
		return err
	}
	measure := func(rate float64) (step, error) {
		s, err := replay(ctx, p, snd, st, &offset, rate, c.step)
		if err == nil {
			log.Info("rate step", "target_lps", int(rate), "sent_lps", int(s.achieved), "loss_pct", fmt.Sprintf("%.3f", 100*s.loss))
		}
		return s, err
	}
	var good, bad float64 // target rates known lossless / lossy
	best := 0.0           // highest achieved lossless rate
	for rate := c.startRate; rate <= c.maxRate; rate *= 2 {
		s, err := measure(rate)
		if err != nil {
			return err
		}
		if !s.lossless() {
			bad = rate
			break
		}
		good, best = rate, math.Max(best, s.achieved)
		if s.achieved < 0.9*rate {
			// The sender could not reach the target on the shared cores.
			res.losslessBound = true
			break
		}
	}
	if good == 0 {
		// Lossy from the start: halve until lossless.
		for rate := c.startRate / 2; rate >= c.startRate/32 && good == 0; rate /= 2 {
			s, err := measure(rate)
			if err != nil {
				return err
			}
			if s.lossless() {
				good, best = rate, s.achieved
			} else {
				bad = rate
			}
		}
		if good == 0 {
			return fmt.Errorf("lossy even at %.0f lines/s", c.startRate/32)
		}
	}
	for i := 0; i < c.refine && bad > 0 && !res.losslessBound; i++ {
		mid := (good + bad) / 2
		s, err := measure(mid)
		if err != nil {
			return err
		}
		if s.lossless() {
			good, best = mid, math.Max(best, s.achieved)
		} else {
			bad = mid
		}
	}
	res.lossless = best
	log.Info("lossless rate", "lines_per_s", int(best), "loadgen_bound", res.losslessBound)
	return nil
}

func measureCPU(ctx context.Context, log *slog.Logger, c config, p *statsdproc.Proc, st *stream.Stream, rate float64, res *result) error {
	snd, err := stream.Dial(p.UDPAddr)
	if err != nil {
		return err
	}
	defer snd.Close()
	offset := 0
	if _, err := replay(ctx, p, snd, st, &offset, rate/2, time.Second); err != nil {
		return err
	}
	before, err := cpuTime(p.Pid())
	if err != nil {
		return err
	}
	s, err := replay(ctx, p, snd, st, &offset, rate, c.cpuDuration)
	if err != nil {
		return err
	}
	after, err := cpuTime(p.Pid())
	if err != nil {
		return err
	}
	if s.received == 0 {
		return errors.New("no lines received in the CPU run")
	}
	res.cpuRate = s.achieved
	res.cpuPerMillion = (after - before).Seconds() / (s.received / 1e6)
	log.Info("cpu", "rate_lps", int(s.achieved), "cpu_s", (after - before).Seconds(), "lines", int(s.received), "loss_pct", fmt.Sprintf("%.3f", 100*s.loss))
	return nil
}

func measureOverload(ctx context.Context, log *slog.Logger, c config, p *statsdproc.Proc, st *stream.Stream, res *result) error {
	snd, err := stream.Dial(p.UDPAddr)
	if err != nil {
		return err
	}
	defer snd.Close()
	rate := 2 * res.lossless
	var (
		mu   sync.Mutex
		peak int64
	)
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := rss(p.Pid()); err == nil {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	offset := 0
	s, err := replay(ctx, p, snd, st, &offset, rate, c.overload)
	stopSampling()
	wg.Wait()
	if err != nil {
		return err
	}
	res.overloadPeak, res.overloadRate, res.overloadLoss = peak, s.achieved, s.loss
	log.Info("overload", "target_lps", int(rate), "sent_lps", int(s.achieved), "loss_pct", fmt.Sprintf("%.1f", 100*s.loss), "peak_rss_mib", peak>>20)
	return nil
}

func measureSeries(ctx context.Context, log *slog.Logger, c config, p *statsdproc.Proc, res *result) error {
	// Series are created over TCP: this measures memory and scrape cost,
	// not ingest, and TCP's flow control delivers every line however slow
	// the receiver (or the shared machine) is, where UDP would lose some.
	st := stream.DistinctSeries(c.series, 10)
	base, err := p.Lines(ctx)
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", p.TCPAddr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", p.TCPAddr, err)
	}
	w := bufio.NewWriterSize(conn, 64<<10)
	// bufio keeps the first write error and Flush returns it.
	for _, d := range st.Datagrams {
		w.Write(d)
		w.WriteByte('\n')
	}
	err = w.Flush()
	conn.Close()
	if err != nil {
		return fmt.Errorf("send series over TCP: %w", err)
	}
	if got, err := p.WaitLines(ctx, base+float64(st.TotalLines()), 5*time.Second); err != nil {
		return err
	} else if got < base+float64(st.TotalLines()) {
		log.Warn("not every line arrived over TCP", "want", st.TotalLines(), "got", got-base)
	}
	// Lines are counted before they are applied; let the series appear.
	count := 0
	for range 50 {
		if count, err = countSeries(ctx, p); err != nil {
			return err
		}
		if count >= c.series {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.series = count
	if count < c.series {
		log.Warn("not every series arrived", "want", c.series, "got", count)
	}
	// Let the receiver settle (GC, queues) before reading RSS.
	time.Sleep(2 * time.Second)
	if res.rss100k, err = rss(p.Pid()); err != nil {
		return err
	}
	var times []time.Duration
	for range 5 {
		start := time.Now()
		body, err := p.ScrapeRaw(ctx)
		if err != nil {
			return err
		}
		times = append(times, time.Since(start))
		res.scrapeBytes = len(body)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	res.scrape = times[len(times)/2]
	log.Info("series", "series", count, "rss_mib", res.rss100k>>20, "scrape_median", res.scrape, "scrape_bytes", res.scrapeBytes)
	return nil
}

// countSeries counts the non-self series the receiver exports.
func countSeries(ctx context.Context, p *statsdproc.Proc) (int, error) {
	fams, err := p.Scrape(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for name, mf := range fams {
		if !sinkdiff.IsSelfMetric(name) {
			n += len(mf.GetMetric())
		}
	}
	return n, nil
}

func renderTable(c config, r []result) string {
	var b strings.Builder
	ratio := func(sink, exp float64) string {
		if exp == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", sink/exp)
	}
	rate := func(x result) string {
		s := fmt.Sprintf("%.0fk", x.lossless/1000)
		if x.losslessBound {
			s = "≥ " + s + " (load generator bound)"
		}
		return s
	}
	mib := func(v int64) string { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }
	e, s := r[0], r[1]
	fmt.Fprintf(&b, "| figure | statsd_exporter v0.31.0 | statsd-sink | statsd-sink / statsd_exporter | better |\n")
	fmt.Fprintf(&b, "| --- | ---: | ---: | ---: | --- |\n")
	fmt.Fprintf(&b, "| highest lossless rate, lines/s (loss ≤ 0.1 %%) | %s | %s | %s | higher |\n", rate(e), rate(s), ratio(s.lossless, e.lossless))
	fmt.Fprintf(&b, "| CPU seconds per million lines (at %.0fk lines/s) | %.2f | %.2f | %s | lower |\n", e.cpuRate/1000, e.cpuPerMillion, s.cpuPerMillion, ratio(s.cpuPerMillion, e.cpuPerMillion))
	fmt.Fprintf(&b, "| RSS with %dk series | %s | %s | %s | lower |\n", c.series/1000, mib(e.rss100k), mib(s.rss100k), ratio(float64(s.rss100k), float64(e.rss100k)))
	fmt.Fprintf(&b, "| /metrics scrape time with %dk series (median of 5) | %s | %s | %s | lower |\n", c.series/1000, e.scrape.Round(time.Millisecond), s.scrape.Round(time.Millisecond), ratio(float64(s.scrape), float64(e.scrape)))
	fmt.Fprintf(&b, "| peak RSS at 2× its lossless rate for %v | %s | %s | %s | lower |\n", c.overload, mib(e.overloadPeak), mib(s.overloadPeak), ratio(float64(s.overloadPeak), float64(e.overloadPeak)))
	fmt.Fprintf(&b, "\nDetails: series counted %d / %d; scrape body %d / %d bytes; overload sent at %.0fk / %.0fk lines/s, lost %.1f %% / %.1f %% (statsd_exporter / statsd-sink).\n",
		e.series, s.series, e.scrapeBytes, s.scrapeBytes, e.overloadRate/1000, s.overloadRate/1000, 100*e.overloadLoss, 100*s.overloadLoss)
	return b.String()
}

// writeSectionHead writes a section's heading, command, machine and, when
// the machine was busy, busyNote.
func writeSectionHead(b *strings.Builder, heading string, c config, took time.Duration, busyNote string) {
	fmt.Fprintf(b, "%s\n\n", heading)
	fmt.Fprintf(b, "Command: `%s` (runs `go run ./bench/sink/benchsink`), %s, %s.\n\n", c.command, time.Now().UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintf(b, "Machine: `nproc` = %s, %s, %s; load average before the run: %s. The load generator (Go, sendmmsg, 10 lines per datagram) runs on the same %s cores as the receiver, so every figure includes competing with it.\n\n", nproc(), kernel(), runtime.Version(), c.loadBefore, nproc())
	if busy(c.loadBefore) {
		b.WriteString("**The machine was busy when this ran (load average above half the cores), so the absolute figures are low and noisy; " + busyNote + "**\n\n")
	}
}

func renderSection(c config, table string, took time.Duration) string {
	var b strings.Builder
	writeSectionHead(&b, sectionHeading, c, took, "the ratios are the meaningful part. Re-run `make bench-sink` on a quiet machine for absolute numbers.")
	b.WriteString(table)
	b.WriteString(`
Method:
- Both receivers get the same flags and bench/sink/mapping.yml (an Envoy mapping in the style of Ambassador's), and the same pre-generated stream of Envoy-style lines (envoy.cluster.<c>.upstream_rq_<code>, upstream_rq_<n>xx, upstream_rq_time timers, envoy.http.<p>.downstream_rq_<n>xx, gauges; about 650 series, within statsd_exporter's default mapping cache of 1000). e2e/sinkdiff checks that both export the same series from it.
- Lossless rate: rate steps of a few seconds, doubling then bisecting; loss is 1 − (increase of the receiver's statsd_exporter_lines_total ÷ lines sent), after its counter stops moving.
- CPU: utime+stime of the receiver from /proc/<pid>/stat around a fixed-rate run at half the lower of the two lossless rates.
- Series: 100k distinct counters (envoy.cluster.svc<i>.upstream_rq_200) sent over TCP so that none is lost, then VmRSS from /proc/<pid>/status after 2 s idle, and five full /metrics downloads in text format.
- Overload: the Envoy stream at twice the receiver's own lossless rate; peak VmRSS sampled every 50 ms until the receiver's line counter stops moving.
`)
	b.WriteString(bufferNote(c))
	return b.String()
}

// bufferNote says which UDP receive buffers the receivers had, since the
// kernel buffer is what absorbs bursts in the lossless-rate search.
func bufferNote(c config) string {
	if c.readBuffer > 0 {
		return fmt.Sprintf("- UDP receive buffer: both receivers get --statsd.read-buffer=%d (the kernel clamps it to net.core.rmem_max = %s).\n", c.readBuffer, sysctl("rmem_max"))
	}
	return fmt.Sprintf("- UDP receive buffer and GC: each receiver's own defaults. statsd-sink asks for 8 MiB (the kernel clamps it to net.core.rmem_max = %s) and runs with GOGC=50; statsd_exporter keeps the system default (net.core.rmem_default = %s) plus its internal queue of 10000 packets, and GOGC=100. `go run ./bench/sink/benchsink -read-buffer N` gives both the same buffer.\n", sysctl("rmem_max"), sysctl("rmem_default"))
}

// sysctl reads /proc/sys/net/core/<name>, or "unknown".
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/net/core/" + name)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func nproc() string {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return strconv.Itoa(runtime.NumCPU())
	}
	return strings.TrimSpace(string(out))
}

// busy reports whether the 1-minute load average exceeds half the CPUs.
func busy(loadavg string) bool {
	f := strings.Fields(loadavg)
	if len(f) == 0 {
		return false
	}
	l, err := strconv.ParseFloat(f[0], 64)
	return err == nil && l > float64(runtime.NumCPU())/2
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	out, err := exec.Command("uname", "-sr").Output()
	if err != nil {
		return runtime.GOOS
	}
	return strings.TrimSpace(string(out))
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found: run from inside the repository")
		}
		dir = parent
	}
}
