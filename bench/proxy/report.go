package main

import (
	"fmt"
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

// Row names of the two hopwatch-proxy variants the stats cost compares.
const (
	statsOnRow  = "hopwatch-proxy"
	statsOffRow = "hopwatch-proxy (stats off)"
)

// statsCost describes full stats against stats off, measured in the same
// run, or returns "" when either row is missing.
func (r report) statsCost() string {
	var on, off *row
	for i := range r.Rows {
		switch r.Rows[i].Name {
		case statsOnRow:
			on = &r.Rows[i]
		case statsOffRow:
			off = &r.Rows[i]
		}
	}
	if on == nil || off == nil || off.Result.RPS <= 0 {
		return ""
	}
	ratio := on.Result.RPS / off.Result.RPS
	var b strings.Builder
	fmt.Fprintf(&b, "**Cost of stats**: with full stats (every Envoy stat counted, flushed every 5 s, one `|ms` line per histogram sample, to a UDP socket on 127.0.0.1) hopwatch-proxy served %.0f req/s, **%.2f×** the %.0f req/s of the same proxy with `stats_config: {disabled: true}` (%+.1f%%)",
		on.Result.RPS, ratio, off.Result.RPS, (ratio-1)*100)
	if off.Result.P99 > 0 {
		fmt.Fprintf(&b, "; p99 %s against %s", formatLatency(on.Result.P99), formatLatency(off.Result.P99))
	}
	fmt.Fprintf(&b, ". The stats socket received %d datagrams (%d bytes) from it, and %d from the stats-off run. ", on.StatsDatagrams, on.StatsBytes, off.StatsDatagrams)
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

// report is everything the BENCHMARKS.md section says.
type report struct {
	Date     time.Time
	Command  string
	Nproc    int
	CPU      string
	Threads  int
	Conns    int
	Duration time.Duration
	Warmup   time.Duration
	BodySize int
	Workers  int
	// LoadAvg is the 1-minute load average when the run started; -1 if
	// unknown. A busy machine makes every number noisy, so it is reported.
	LoadAvg float64
	// Versions lists "name: version" pairs in display order.
	Versions [][2]string
	Rows     []row
}

// ratioBase is the peer every ratio is relative to.
const ratioBase = "nginx"

// table renders the Markdown results table.
func (r report) table() string {
	var base *row
	for i := range r.Rows {
		if r.Rows[i].Name == ratioBase {
			base = &r.Rows[i]
		}
	}
	var b strings.Builder
	b.WriteString("| proxy | req/s | p50 | p99 | req/s vs nginx | p99 vs nginx | errors | access-log lines |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, rw := range r.Rows {
		res := rw.Result
		rpsRatio, p99Ratio := "n/a", "n/a"
		if base != nil && base.Result.RPS > 0 {
			rpsRatio = fmt.Sprintf("%.2f×", res.RPS/base.Result.RPS)
		}
		if base != nil && base.Result.P99 > 0 {
			p99Ratio = fmt.Sprintf("%.2f×", float64(res.P99)/float64(base.Result.P99))
		}
		logs := "n/a"
		if rw.LogLines >= 0 {
			logs = fmt.Sprint(rw.LogLines)
			if rw.LogLines == 0 {
				logs = "0 (logging off?)"
			}
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s | %s |\n",
			rw.Name, res.RPS, formatLatency(res.P50), formatLatency(res.P99),
			rpsRatio, p99Ratio, formatErrors(res), logs)
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
	fmt.Fprintf(&b, "Measured %s with `%s`: for each proxy a %s warm-up, then `wrk -t%d -c%d -d%s --latency` against `http://127.0.0.1:<port>/`. ",
		r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command, r.Warmup, r.Threads, r.Conns, r.Duration)
	fmt.Fprintf(&b, "Every proxy forwards `/` to the same Go upstream (`bench/proxy/upstream`, a %d-byte body over HTTP/1.1 keep-alive), keeps upstream connections alive, generates a request ID and writes a JSON access-log line per request to a file.\n\n", r.BodySize)
	b.WriteString(r.table())
	b.WriteString("\n")
	b.WriteString(r.statsCost())
	fmt.Fprintf(&b, "Machine: `nproc` = %d", r.Nproc)
	if r.CPU != "" {
		fmt.Fprintf(&b, " (%s)", r.CPU)
	}
	fmt.Fprintf(&b, ". The load generator (wrk, %d threads), the upstream and the proxy all share the same %d cores, so absolute numbers are low and noisy; compare the ratios, and rerun before trusting a difference under about 10%%. ", r.Threads, r.Nproc)
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
	b.WriteString("- **hopwatch-proxy**: YAML written by the harness, one listener, one static cluster, `access_log: [{path: …, format: json}]`, and a `stats_sinks` entry (`type: statsd`) sending to a UDP socket on 127.0.0.1 that the harness reads and discards; all other settings at their defaults (5 s flush, timer histograms). **hopwatch-proxy (stats off)** is the same with `stats_config: {disabled: true}` and no sink.\n\n")
	b.WriteString("\"errors\" counts non-2xx/3xx responses and socket errors reported by wrk; a row with errors is not a fair comparison. \"access-log lines\" is counted after the proxy stopped and includes warm-up and readiness requests.\n\n")
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
