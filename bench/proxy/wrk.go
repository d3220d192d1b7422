package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	// Requests is the number of completed requests.
	Requests int64
	// Elapsed is the measured run time.
	Elapsed time.Duration
	// RPS is wrk's "Requests/sec".
	RPS float64
	// Latency percentiles from wrk's --latency distribution.
	P50, P75, P90, P99 time.Duration
	// Non2xx3xx counts responses whose status was not 2xx or 3xx.
	Non2xx3xx int64
	// SocketErrors sums wrk's connect, read, write and timeout errors.
	SocketErrors int64
}

// errors returns the total of failed requests and socket errors, which must
// be zero for a run to be a fair comparison: a proxy answering 502 quickly
// would otherwise look fast.
func (r wrkResult) errors() int64 { return r.Non2xx3xx + r.SocketErrors }

// parseWrk reads the text wrk 4 prints with --latency. It needs the
// "Requests/sec" line and the 50% and 99% latency lines; anything else it
// does not recognise is ignored, so that wrk's banner and thread stats may
// change without breaking the harness.
func parseWrk(out []byte) (wrkResult, error) {
	var (
		r                 wrkResult
		haveRPS, haveReqs bool
		havePct           = map[string]bool{}
		inDistribution    bool
		lineNo            int
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "Latency Distribution":
			inDistribution = true
		case inDistribution && strings.HasSuffix(firstField(line), "%"):
			f := strings.Fields(line)
			if len(f) != 2 {
				return r, fmt.Errorf("wrk output line %d %q: want \"<pct>%% <latency>\"", lineNo, line)
			}
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk output line %d: latency %s: %w", lineNo, f[0], err)
			}
			switch f[0] {
			case "50%":
				r.P50 = d
			case "75%":
				r.P75 = d
			case "90%":
				r.P90 = d
			case "99%":
				r.P99 = d
			}
			havePct[f[0]] = true
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return r, fmt.Errorf("wrk output line %d %q: Requests/sec is not a non-negative number", lineNo, line)
			}
			r.RPS, haveRPS = v, true
		case strings.Contains(line, " requests in "):
			// "500000 requests in 10.00s, 100.00MB read"
			inDistribution = false
			f := strings.Fields(line)
			if len(f) < 4 || f[1] != "requests" || f[2] != "in" {
				return r, fmt.Errorf("wrk output line %d %q: want \"<n> requests in <time>, ...\"", lineNo, line)
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("wrk output line %d %q: request count is not a non-negative integer", lineNo, line)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("wrk output line %d: elapsed time: %w", lineNo, err)
			}
			r.Requests, r.Elapsed, haveReqs = n, d, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("wrk output line %d %q: count is not a non-negative integer", lineNo, line)
			}
			r.Non2xx3xx = n
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 12, write 0, timeout 3"
			total, err := parseSocketErrors(strings.TrimPrefix(line, "Socket errors:"))
			if err != nil {
				return r, fmt.Errorf("wrk output line %d %q: %w", lineNo, line, err)
			}
			r.SocketErrors = total
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("read wrk output: %w", err)
	}
	var missing []string
	if !haveRPS {
		missing = append(missing, `"Requests/sec:"`)
	}
	if !haveReqs {
		missing = append(missing, `"<n> requests in <time>"`)
	}
	for _, p := range []string{"50%", "99%"} {
		if !havePct[p] {
			missing = append(missing, fmt.Sprintf("latency %s (was --latency passed?)", p))
		}
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("wrk output has no %s", strings.Join(missing, ", "))
	}
	return r, nil
}

func firstField(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// parseSocketErrors sums "connect 0, read 12, write 0, timeout 3".
func parseSocketErrors(s string) (int64, error) {
	var total int64
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return 0, fmt.Errorf("socket error item %q: want \"<kind> <count>\"", strings.TrimSpace(part))
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n < 0 || total > math.MaxInt64-n {
			return 0, fmt.Errorf("socket error item %q: count is not a non-negative integer", strings.TrimSpace(part))
		}
		total += n
	}
	return total, nil
}

// wrkUnits are the suffixes of wrk's format_time, smallest first so that
// "ms" is tried before "s".
var wrkUnits = []struct {
	suffix string
	unit   time.Duration
}{
	{"us", time.Microsecond},
	{"ms", time.Millisecond},
	{"s", time.Second},
	{"m", time.Minute},
	{"h", time.Hour},
}

// parseWrkDuration parses wrk's time format, such as "812.00us", "1.23ms",
// "10.00s" or "2.00m".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range wrkUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, fmt.Errorf("%q: %q is not a non-negative number", s, num)
		}
		ns := v * float64(u.unit)
		if ns > float64(math.MaxInt64) {
			return 0, fmt.Errorf("%q: longer than %v", s, time.Duration(math.MaxInt64))
		}
		return time.Duration(math.Round(ns)), nil
	}
	return 0, fmt.Errorf("%q: want a number followed by us, ms, s, m or h", s)
}
