package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// sectionHeading is the BENCHMARKS.md section this harness owns. Other
// sections of the file belong to other benchmarks and are preserved.
const sectionHeading = "## hopwatch-proxy vs nginx, HAProxy, Caddy"

// row is one line of the results table.
type row struct {
	// Name is the proxy, or "upstream (direct)" for the baseline.
	Name string
	// Result is the measured run.
	Result wrkResult
	// LogLines counts lines in the access log after the proxy stopped;
	// -1 means the row has no access log (the baseline).
	LogLines int64
	// StatsDatagrams and StatsBytes are what the harness's StatsD socket
	// received from this proxy, readiness check to stop; StatsDatagrams is
	// -1 for rows that are not hopwatch-proxy.
	StatsDatagrams, StatsBytes int64
}

// Row names of the hopwatch-proxy variants the cost paragraphs compare.
const (
	statsOnRow  = "hopwatch-proxy"
	statsOffRow = "hopwatch-proxy (stats off)"
	obsFullRow  = "hopwatch-proxy (full observability)"
	obsOffRow   = "hopwatch-proxy (all off)"
	// obsExemplarsRow is obsFullRow with exemplars on its StatsD sink.
	obsExemplarsRow = "hopwatch-proxy (full observability, exemplars)"
)

// load is one wrk thread and connection pair, over plaintext HTTP/1.1 or
// over TLS.
type load struct {
	Threads, Conns int
	TLS            bool
}

// String is the pair as wrk's flags, followed by "https" for TLS.
func (l load) String() string {
	s := fmt.Sprintf("-t%d -c%d", l.Threads, l.Conns)
	if l.TLS {
		s += " https"
	}
	return s
}

// sample is one measured wrk run: one proxy under one load in one round.
type sample struct {
	// Round counts from 1.
	Round int
	Load  load
	row
}

// summary is one proxy's line in a load's table: the medians over rounds,
// and its ratios to nginx measured in the same round.
type summary struct {
	// row holds the median req/s, p50 and p99 over the rounds, the summed
	// errors and requests, and the median access-log and stats counts.
	row
	// Rounds is how many rounds measured this proxy.
	Rounds int
	// RPSRatios and P99Ratios are req/s and p99 against nginx's in the same
	// round, in round order; NaN where nginx has no sample in that round.
	RPSRatios, P99Ratios []float64
}

// median returns the median of xs (the mean of the middle two for an even
// count), or NaN for none. xs is not modified.
func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(median(fs))
}

func medianInt(xs []int64) int64 {
	fs := make([]float64, len(xs))
	for i, x := range xs {
		fs[i] = float64(x)
	}
	return int64(math.Round(median(fs)))
}

// ratio is a/b, or NaN when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}

// findSample returns the sample of name under l in round, or nil.
func findSample(samples []sample, name string, l load, round int) *sample {
	for i := range samples {
		s := &samples[i]
		if s.Name == name && s.Load == l && s.Round == round {
			return s
		}
	}
	return nil
}

// summarize returns one summary per proxy measured under l, in the order
// the proxies were first measured.
func summarize(samples []sample, l load) []summary {
	var names []string
	for _, s := range samples {
		if s.Load == l && !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	out := make([]summary, 0, len(names))
	for _, name := range names {
		var (
			rps               []float64
			p50, p99          []time.Duration
			logs, dgrams, byt []int64
		)
		sm := summary{row: row{Name: name}}
		for _, s := range samples {
			if s.Name != name || s.Load != l {
				continue
			}
			sm.Rounds++
			rps = append(rps, s.Result.RPS)
			p50 = append(p50, s.Result.P50)
			p99 = append(p99, s.Result.P99)
			logs = append(logs, s.LogLines)
			dgrams = append(dgrams, s.StatsDatagrams)
			byt = append(byt, s.StatsBytes)
			sm.Result.Requests += s.Result.Requests
			sm.Result.Non2xx3xx += s.Result.Non2xx3xx
			sm.Result.SocketErrors += s.Result.SocketErrors
			rpsR, p99R := math.NaN(), math.NaN()
			if base := findSample(samples, ratioBase, l, s.Round); base != nil {
				rpsR = ratio(s.Result.RPS, base.Result.RPS)
				p99R = ratio(float64(s.Result.P99), float64(base.Result.P99))
			}
			sm.RPSRatios = append(sm.RPSRatios, rpsR)
			sm.P99Ratios = append(sm.P99Ratios, p99R)
		}
		sm.Result.RPS = median(rps)
		sm.Result.P50, sm.Result.P99 = medianDuration(p50), medianDuration(p99)
		sm.LogLines, sm.StatsDatagrams, sm.StatsBytes = medianInt(logs), medianInt(dgrams), medianInt(byt)
		out = append(out, sm)
	}
	return out
}

// statsCost describes full stats against stats off (medians over the
// rounds of one load), or returns "" when either row is missing.
func statsCost(sums []summary) string {
	var on, off *summary
	for i := range sums {
		switch sums[i].Name {
		case statsOnRow:
			on = &sums[i]
		case statsOffRow:
			off = &sums[i]
		}
	}
	if on == nil || off == nil || off.Result.RPS <= 0 {
		return ""
	}
	ratio := on.Result.RPS / off.Result.RPS
	var b strings.Builder
	fmt.Fprintf(&b, "**Cost of stats**: with full stats (every Envoy stat counted, flushed every 5 s, one `|ms` line per histogram sample, to a UDP socket on 127.0.0.1) hopwatch-proxy served %.0f req/s (median), **%.2f×** the %.0f req/s of the same proxy with `stats_config: {disabled: true}` (%+.1f%%)",
		on.Result.RPS, ratio, off.Result.RPS, (ratio-1)*100)
	if off.Result.P99 > 0 {
		fmt.Fprintf(&b, "; p99 %s against %s", formatLatency(on.Result.P99), formatLatency(off.Result.P99))
	}
	fmt.Fprintf(&b, ". The stats socket received %d datagrams (%d bytes, median per proxy run) from it, and %d from the stats-off run. ", on.StatsDatagrams, on.StatsBytes, off.StatsDatagrams)
	switch {
	case ratio >= 1:
		b.WriteString("Stats on was not slower than stats off: the difference is run-to-run noise, so what stats cost is below what this run can resolve, and within the 5 % budget.")
	case ratio >= 0.95:
		b.WriteString("That is within the 5 % budget for stats.")
	default:
		b.WriteString("That is outside the 5 % budget for stats, or within the noise of a shared machine: rerun before concluding.")
	}
	b.WriteString(" The per-request cost in isolation: `go test -run '^$' -bench BenchmarkProxyRequest ./proxy/`.\n\n")
	return b.String()
}

// pairedRatios returns num's req/s over den's under l in every round that
// measured both, side by side, in round order.
func pairedRatios(samples []sample, l load, num, den string) []float64 {
	var rs []float64
	for _, n := range samples {
		if n.Name != num || n.Load != l {
			continue
		}
		if d := findSample(samples, den, l, n.Round); d != nil {
			rs = append(rs, ratio(n.Result.RPS, d.Result.RPS))
		}
	}
	return rs
}

// formatRatios joins ratios as "0.95×, 1.01×".
func formatRatios(rs []float64) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = formatRatio(r)
	}
	return strings.Join(out, ", ")
}

// roundsDisagree warns when the per-round ratios spread over more than 10
// points, more than the effects these paragraphs measure; "" otherwise.
func roundsDisagree(rs []float64) string {
	lo, hi := slices.Min(rs), slices.Max(rs)
	if hi-lo <= 0.1 {
		return ""
	}
	return fmt.Sprintf(" The rounds disagree by %.0f points (%s to %s), more than the effect measured: treat the median as rough, and rerun with more rounds on a quieter machine.", (hi-lo)*100, formatRatio(lo), formatRatio(hi))
}

// costText is the wording of one cost paragraph.
type costText struct {
	// title is the bold lead; claim follows the load and holds one %s for
	// the median ratio; context, if any, comes after the figures.
	title, claim, context string
	// budget is the ratio at or above which the cost is within what the
	// paragraph allows; notSlower, within and outside are its verdicts.
	budget                     float64
	notSlower, within, outside string
}

// pairCost describes row num against row den under l: the ratio of the two
// in each round, where they ran side by side, the median of those ratios,
// and t's verdict on it. It returns "" when either row is missing.
func pairCost(samples []sample, l load, num, den string, t costText) string {
	rs := pairedRatios(samples, l, num, den)
	m := median(rs)
	if math.IsNaN(m) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** (`wrk %s`): %s (median of the per-round ratios %s; %+.1f%%). %s",
		t.title, l, fmt.Sprintf(t.claim, "**"+formatRatio(m)+"**"), formatRatios(rs), (m-1)*100, t.context)
	switch {
	case m >= 1:
		b.WriteString(t.notSlower)
	case m >= t.budget:
		b.WriteString(t.within)
	default:
		b.WriteString(t.outside)
	}
	b.WriteString(roundsDisagree(rs))
	b.WriteString("\n\n")
	return b.String()
}

// obsCost describes full observability against everything off under l.
func obsCost(samples []sample, l load) string {
	return pairCost(samples, l, obsFullRow, obsOffRow, costText{
		title:     "Observability cost",
		claim:     "hopwatch-proxy with full observability served %s the req/s of the same binary with everything off",
		budget:    0.97,
		notSlower: "Full observability was not slower than everything off: the difference is noise, and the cost is below what this run resolves.",
		within:    "That is within the 3 % budget.",
		outside:   "That is outside the 3 % budget, or within the noise of a shared machine: rerun before concluding.",
	})
}

// exemplarCost describes full observability with exemplars against the
// same without, under l.
func exemplarCost(samples []sample, l load) string {
	return pairCost(samples, l, obsExemplarsRow, obsFullRow, costText{
		title:     "Exemplars cost",
		claim:     "with `exemplars: true` on its StatsD sink, hopwatch-proxy with full observability served %s the req/s of the same configuration without exemplars",
		context:   "Tracing samples 1 % of requests, so exemplars are recorded and sent for one request in a hundred; every other request pays one comparison per latency histogram. ",
		budget:    0.99,
		notSlower: "Exemplars on was not slower than off: the cost is below what this run resolves.",
		within:    "That is within 1 %, below what a run on a shared machine resolves.",
		outside:   "A cost above 1 % is more than the Go benchmarks predict at 1 % sampling (under a microsecond per traced request): rerun before concluding.",
	})
}

// formatRatio prints a ratio as "0.95×", or "n/a" for NaN.
func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", r)
}

// report is everything the BENCHMARKS.md section says.
type report struct {
	Date     time.Time
	Command  string
	Nproc    int
	CPU      string
	Loads    []load
	Rounds   int
	Duration time.Duration
	Warmup   time.Duration
	BodySize int
	Workers  int
	// LoadAvg is the 1-minute load average when the run started; -1 if
	// unknown. A busy machine makes every number noisy, so it is reported.
	LoadAvg float64
	// Versions lists "name: version" pairs in display order.
	Versions [][2]string
	// Samples is every measured run, in the order they ran.
	Samples []sample
	// TracesSeen says whether Jaeger listed the full-observability proxy's
	// service after the run: "" when that row was not measured.
	TracesSeen string
	// Exemplars is what statsd-sink exposed after the run; nil when the
	// exemplars row was not measured.
	Exemplars *exemplarCount
}

// exemplarCount is the number of OpenMetrics bucket lines with an exemplar
// on statsd-sink's /metrics after the run, or why it is unknown.
type exemplarCount struct {
	Lines int
	Err   error
}

// ratioBase is the peer every ratio is relative to.
const ratioBase = "nginx"

// table renders the Markdown results table of one load.
func table(sums []summary) string {
	var b strings.Builder
	b.WriteString("| proxy | req/s | p50 | p99 | req/s vs nginx, per round | req/s vs nginx | p99 vs nginx | errors | access-log lines |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, sm := range sums {
		res := sm.Result
		per := make([]string, len(sm.RPSRatios))
		for i, r := range sm.RPSRatios {
			per[i] = formatRatio(r)
		}
		logs := "n/a"
		if sm.LogLines >= 0 {
			logs = fmt.Sprint(sm.LogLines)
			if sm.LogLines == 0 {
				logs = "0 (logging off?)"
			}
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n",
			sm.Name, res.RPS, formatLatency(res.P50), formatLatency(res.P99),
			strings.Join(per, " "), formatRatio(median(sm.RPSRatios)), formatRatio(median(sm.P99Ratios)),
			formatErrors(res), logs)
	}
	return b.String()
}

// formatLatency prints milliseconds with enough digits for loopback
// latencies, which are often well under a millisecond.
func formatLatency(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func formatErrors(r wrkResult) string {
	switch {
	case r.errors() == 0:
		return "0"
	case r.SocketErrors == 0:
		return fmt.Sprintf("%d non-2xx/3xx", r.Non2xx3xx)
	case r.Non2xx3xx == 0:
		return fmt.Sprintf("%d socket", r.SocketErrors)
	default:
		return fmt.Sprintf("%d non-2xx/3xx, %d socket", r.Non2xx3xx, r.SocketErrors)
	}
}

// section renders the whole BENCHMARKS.md section, heading included, ending
// in a newline.
func (r report) section() string {
	var b strings.Builder
	b.WriteString(sectionHeading + "\n\n")
	b.WriteString("<!-- Written by bench/proxy/run.sh (make bench-proxy); edits here are overwritten. -->\n\n")
	loads := make([]string, len(r.Loads))
	for i, l := range r.Loads {
		loads[i] = "`wrk " + l.String() + "`"
	}
	fmt.Fprintf(&b, "Measured %s with `%s`: %d interleaved rounds, each starting every proxy in turn, in reverse order every second round (so nginx and hopwatch-proxy run side by side, round after round, and neither always follows the other) and measuring it under each load (%s) with a %s warm-up, then `wrk -d%s --latency` against `http://127.0.0.1:<port>/`. ",
		r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command, r.Rounds, strings.Join(loads, ", "), r.Warmup, r.Duration)
	fmt.Fprintf(&b, "Every proxy forwards `/` to the same Go upstream (`bench/proxy/upstream`, a %d-byte body over HTTP/1.1 keep-alive), keeps upstream connections alive, generates a request ID and, unless its row says otherwise, writes a JSON access-log line per request to a file. ", r.BodySize)
	b.WriteString("req/s, p50 and p99 are medians over the rounds; \"req/s vs nginx, per round\" divides each round's req/s by nginx's in the same round, and the two \"vs nginx\" columns are the medians of those per-round ratios.\n\n")
	for _, l := range r.Loads {
		sums := summarize(r.Samples, l)
		fmt.Fprintf(&b, "### `wrk %s`\n\n", l)
		b.WriteString(table(sums))
		b.WriteString("\n")
		b.WriteString(obsCost(r.Samples, l))
		b.WriteString(exemplarCost(r.Samples, l))
		b.WriteString(statsCost(sums))
	}
	switch r.TracesSeen {
	case "":
	case "yes":
		b.WriteString("Jaeger listed the full-observability proxy's service after the run: the sampled spans were exported and stored.\n\n")
	default:
		fmt.Fprintf(&b, "**Jaeger did not list the full-observability proxy's service after the run** (%s): its tracing row may not have exported anything.\n\n", r.TracesSeen)
	}
	switch e := r.Exemplars; {
	case e == nil:
	case e.Err != nil:
		fmt.Fprintf(&b, "**statsd-sink's exemplars could not be counted after the run** (%v).\n\n", e.Err)
	case e.Lines == 0:
		b.WriteString("**statsd-sink exposed no exemplar after the run**: the exemplars row's `|trace_id:` sections did not arrive or were not kept, so that row measured no exemplar work.\n\n")
	default:
		fmt.Fprintf(&b, "statsd-sink exposed %d bucket lines with an exemplar (an OpenMetrics scrape after the run): the exemplars row's trace IDs arrived and were kept.\n\n", e.Lines)
	}
	fmt.Fprintf(&b, "Machine: `nproc` = %d", r.Nproc)
	if r.CPU != "" {
		fmt.Fprintf(&b, " (%s)", r.CPU)
	}
	fmt.Fprintf(&b, ". The load generator (wrk), the upstream and the proxy all share the same %d cores, so absolute numbers are low and noisy; compare the ratios, and rerun before trusting a difference under about 10%%. ", r.Nproc)
	if r.LoadAvg >= 0 {
		fmt.Fprintf(&b, "The 1-minute load average was %.2f when the run started", r.LoadAvg)
		if r.LoadAvg > float64(r.Nproc)/2 {
			b.WriteString(" (a busy machine: treat these numbers as rough)")
		}
		b.WriteString(". ")
	}
	b.WriteString("The baseline row is wrk against the upstream with no proxy in between, under the same load; a proxy adds a hop and its own CPU use, so it should not beat the baseline by more than the noise.\n\n")
	b.WriteString("How each proxy was set up (templates in `bench/proxy/templates/`):\n\n")
	fmt.Fprintf(&b, "- **nginx**: `worker_processes %d`; upstream `keepalive 256`; `keepalive_requests 1000000` on both sides (nginx's default of 1000 would close connections the other proxies keep); JSON `log_format` with `access_log … buffer=64k flush=1s`, close to hopwatch-proxy's buffered writer with its 1 s flush.\n", r.Workers)
	fmt.Fprintf(&b, "- **HAProxy**: `nbthread %d`, `maxconn 4096`, `mode http`, `http-reuse always`, JSON `log-format` (in place of `option httplog`), `unique-id-format` for the request ID. HAProxy logs only through syslog, so it uses `log stdout format raw` with its stdout redirected to the log file; each line is an unbuffered write(2).\n", r.Workers)
	b.WriteString("- **Caddy**: `reverse_proxy` with upstream keep-alive, `header_up X-Request-Id {http.request.uuid}`, and `log { output file … }` in JSON; Caddy's file writer does not buffer either.\n")
	b.WriteString("- **TLS** (the `https` loads): nginx and hopwatch-proxy (every variant) each get a second listener on 127.0.0.1 serving the same route over TLS with the same self-signed ECDSA P-256 certificate, generated by the harness for the run; wrk offers no ALPN, so this is HTTP/1.1 over TLS with keep-alive. HAProxy, Caddy and the upstream baseline are not measured over TLS. hopwatch-proxy logs its TLS listener to a second file, counted with the first.\n")
	b.WriteString("- **hopwatch-proxy**: YAML written by the harness, one listener (plus the TLS one for the https loads), one static cluster, `access_log: [{path: …, format: json}]`, and a `stats_sinks` entry (`type: statsd`) sending to a UDP socket on 127.0.0.1 that the harness reads and discards; all other settings at their defaults (5 s flush, timer histograms). **hopwatch-proxy (stats off)** is the same with `stats_config: {disabled: true}` and no sink. **hopwatch-proxy (all off)** also has no access log (`access_log: []`) and no tracing. **hopwatch-proxy (full observability)** sends its stats to a real `statsd-sink` (`cmd/statsd-sink`, UDP on 127.0.0.1) instead of the discarding socket, keeps the JSON access log, and traces 1 % of requests (`tracing: {sampling_ratio: 0.01}`) over OTLP gRPC to a real Jaeger (`bin/jaeger`, in-memory storage, on 127.0.0.1); the sink (`--preset=envoy`, as deployed) and Jaeger run for the whole benchmark and share the machine's cores with everything else. **hopwatch-proxy (full observability, exemplars)** is the same with `exemplars: true` on its StatsD sink: the timer lines of traced requests end in `|trace_id:<32 hex>`, and statsd-sink keeps the latest per histogram bucket.\n\n")
	b.WriteString("\"errors\" counts non-2xx/3xx responses and socket errors reported by wrk; a row with errors is not a fair comparison. \"access-log lines\" is counted after the proxy stopped, covers every load of that proxy run (warm-up and readiness requests included) and is the median over the rounds; \"n/a\" means no access log.\n\n")
	b.WriteString("Versions:\n\n")
	for _, v := range r.Versions {
		fmt.Fprintf(&b, "- %s: %s\n", v[0], v[1])
	}
	return b.String()
}

// replaceSection returns doc with the section that starts at the line
// heading replaced by section, which must start with that heading. The
// section ends before the next level-1 or level-2 heading outside a fenced
// code block, or at the end of doc. A doc without the heading gets the
// section appended (after closing a code fence the doc leaves open).
// Everything outside the section is kept byte for byte.
func replaceSection(doc, heading, section string) string {
	if !strings.HasSuffix(section, "\n") {
		section += "\n"
	}
	lines := strings.SplitAfter(doc, "\n")
	start, end := -1, len(lines)
	inFence := false
	offset := 0
	startOff, endOff := -1, len(doc)
	for i, l := range lines {
		t := strings.TrimRight(l, " \t\r\n")
		if strings.HasPrefix(strings.TrimLeft(t, " "), "```") || strings.HasPrefix(strings.TrimLeft(t, " "), "~~~") {
			inFence = !inFence
		}
		isHeading := !inFence && (strings.HasPrefix(t, "# ") || strings.HasPrefix(t, "## "))
		switch {
		case start < 0 && !inFence && t == heading:
			start, startOff = i, offset
		case start >= 0 && i > start && isHeading:
			end, endOff = i, offset
		}
		if end < len(lines) {
			break
		}
		offset += len(l)
	}
	if start < 0 {
		if inFence {
			// An unclosed fence would swallow the appended section; close
			// it so that the section renders and the next run finds it.
			if !strings.HasSuffix(doc, "\n") {
				doc += "\n"
			}
			doc += "```\n"
		}
		switch {
		case doc == "":
			return section
		case strings.HasSuffix(doc, "\n\n"):
			return doc + section
		case strings.HasSuffix(doc, "\n"):
			return doc + "\n" + section
		default:
			return doc + "\n\n" + section
		}
	}
	rest := doc[endOff:]
	if rest != "" && !strings.HasSuffix(section, "\n\n") {
		// Keep a blank line between our section and the next heading.
		section += "\n"
	}
	return doc[:startOff] + section + rest
}
