package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

var nan = math.NaN()

// column is one measured figure in a mode's table: its median over the
// rounds and, when Ratio is set, the median of its per-round ratios to
// nginx's.
type column struct {
	Title string
	// Value is the figure of one sample; NaN where it does not apply.
	Value  func(modeSample) float64
	Format func(float64) string
	Ratio  bool
}

// Columns several modes share.
var (
	errorsColumn = column{Title: "errors", Value: func(s modeSample) float64 { return float64(s.Errors) }, Format: formatCount}
	cpuColumn    = column{Title: "proxy CPU µs/request", Value: modeSample.cpuPerRequest, Format: formatFixed(1), Ratio: true}
)

func formatCount(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", v)
}

func formatFixed(digits int) func(float64) string {
	return func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "n/a"
		}
		return fmt.Sprintf("%.*f", digits, v)
	}
}

// caseNames returns the cases in the order they were first measured.
func caseNames(samples []modeSample) []string {
	var out []string
	for _, s := range samples {
		if !slices.Contains(out, s.Case) {
			out = append(out, s.Case)
		}
	}
	return out
}

// perRoundRatios returns value(proxy's sample) / value(nginx's sample) of
// one case, round by round; NaN where either is missing.
func perRoundRatios(samples []modeSample, kase, proxy string, rounds int, value func(modeSample) float64) []float64 {
	find := func(name string, round int) *modeSample {
		for i := range samples {
			if s := &samples[i]; s.Case == kase && s.Proxy == name && s.Round == round {
				return s
			}
		}
		return nil
	}
	out := make([]float64, 0, rounds)
	for round := 1; round <= rounds; round++ {
		p, base := find(proxy, round), find(ratioBase, round)
		if p == nil || base == nil {
			out = append(out, nan)
			continue
		}
		out = append(out, ratio(value(*p), value(*base)))
	}
	return out
}

// medianOf is the median of value over the samples of one proxy and case.
func medianOf(samples []modeSample, kase, proxy string, value func(modeSample) float64) float64 {
	var xs []float64
	for _, s := range samples {
		if s.Case == kase && s.Proxy == proxy {
			xs = append(xs, value(s))
		}
	}
	return median(xs)
}

func rps(s modeSample) float64 { return s.RPS }

// modeTable renders one case's table: a row per proxy with its median
// req/s, the per-round req/s ratios to nginx and their median, then cols.
func modeTable(samples []modeSample, kase string, rounds int, cols []column) string {
	var b strings.Builder
	head := []string{"proxy", "req/s", "req/s vs nginx, per round", "req/s vs nginx"}
	align := []string{"---", "---:", "---:", "---:"}
	for _, c := range cols {
		head, align = append(head, c.Title), append(align, "---:")
		if c.Ratio {
			head, align = append(head, c.Title+" vs nginx"), append(align, "---:")
		}
	}
	fmt.Fprintf(&b, "| %s |\n| %s |\n", strings.Join(head, " | "), strings.Join(align, " | "))
	var proxies []string
	for _, s := range samples {
		if s.Case == kase && !slices.Contains(proxies, s.Proxy) {
			proxies = append(proxies, s.Proxy)
		}
	}
	for _, p := range proxies {
		per := perRoundRatios(samples, kase, p, rounds, rps)
		perText := make([]string, len(per))
		for i, r := range per {
			perText[i] = formatRatio(r)
		}
		cells := []string{p, formatFixed(0)(medianOf(samples, kase, p, rps)), strings.Join(perText, " "), formatRatio(median(per))}
		for _, c := range cols {
			cells = append(cells, c.Format(medianOf(samples, kase, p, c.Value)))
			if c.Ratio {
				cells = append(cells, formatRatio(median(perRoundRatios(samples, kase, p, rounds, c.Value))))
			}
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	return b.String()
}

// modeSection renders a mode's whole BENCHMARKS.md section.
func (h *harness) modeSection(spec modeSpec, samples []modeSample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", spec.Heading)
	fmt.Fprintf(&b, "<!-- Written by bench/proxy/run.sh (make bench-proxy); edits here are overwritten. -->\n\n")
	fmt.Fprintf(&b, "Measured %s with `%s`, **on a loaded, shared machine** (`nproc` = %d; 1-minute load average %.2f at the start of the run): "+
		"%d interleaved rounds, nginx and hopwatch-proxy started in turn in each round, so every ratio compares runs made side by side; "+
		"each figure is the median over the rounds and each \"vs nginx\" the median of the per-round ratios. "+
		"Proxy CPU is utime+stime of the proxy's whole process group (nginx: master and workers) from `/proc/<pid>/stat`, read just before and just after the measured run; "+
		"the load generator runs on the same 2 cores. %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), h.o.command, runtime.NumCPU(), h.loadAvg, h.o.rounds, spec.describe(h))
	for _, kase := range caseNames(samples) {
		fmt.Fprintf(&b, "**%s**\n\n%s\n", kase, modeTable(samples, kase, h.o.rounds, spec.columns))
	}
	if spec.conclude != nil {
		if c := spec.conclude(samples); c != "" {
			fmt.Fprintf(&b, "%s\n\n", c)
		}
	}
	return b.String()
}
