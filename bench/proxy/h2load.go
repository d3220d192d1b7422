package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// h2loadResult is what one h2load run measured.
type h2loadResult struct {
	// RPS is the "finished in …, N req/s" figure: requests done in the
	// main duration (warm-up excluded) divided by it.
	RPS float64
	// Done and Succeeded are from the "requests:" line; Failed sums its
	// failed, errored and timeout counts.
	Done, Succeeded, Failed int64
	// Non2xx counts 3xx, 4xx and 5xx statuses.
	Non2xx int64
	// Protocol is the "Application protocol:" h2load negotiated (h2,
	// h2c, http/1.1); a TLS run that fell back to HTTP/1.1 is not an h2
	// measurement.
	Protocol string
}

// errors is what makes the run unfair to compare: failed requests and
// non-2xx answers.
func (r h2loadResult) errors() int64 { return r.Failed + r.Non2xx }

// parseH2load reads h2load's (nghttp2 1.52) report. It needs the
// "finished in" and "requests:" lines; others it does not know are ignored.
func parseH2load(out []byte) (h2loadResult, error) {
	var r h2loadResult
	var sawFinished, sawRequests bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Application protocol:"):
			r.Protocol = strings.TrimSpace(strings.TrimPrefix(line, "Application protocol:"))
		case strings.HasPrefix(line, "finished in "):
			// finished in 3.00s, 25179.00 req/s, 3.60MB/s
			f := strings.Split(line, ",")
			if len(f) < 2 || !strings.HasSuffix(strings.TrimSpace(f[1]), " req/s") {
				return r, fmt.Errorf("h2load: line %q: want \"finished in T, N req/s, …\"", line)
			}
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(f[1]), " req/s"), 64)
			if err != nil || v < 0 {
				return r, fmt.Errorf("h2load: line %q: req/s is not a number ≥ 0", line)
			}
			r.RPS, sawFinished = v, true
		case strings.HasPrefix(line, "requests:"):
			// requests: 50358 total, 50358 started, 50358 done, 50358 succeeded, 0 failed, 0 errored, 0 timeout
			counts, err := parseCounts(strings.TrimPrefix(line, "requests:"))
			if err != nil {
				return r, fmt.Errorf("h2load: line %q: %w", line, err)
			}
			r.Done, r.Succeeded = counts["done"], counts["succeeded"]
			r.Failed = counts["failed"] + counts["errored"] + counts["timeout"]
			sawRequests = true
		case strings.HasPrefix(line, "status codes:"):
			counts, err := parseCounts(strings.TrimPrefix(line, "status codes:"))
			if err != nil {
				return r, fmt.Errorf("h2load: line %q: %w", line, err)
			}
			r.Non2xx = counts["3xx"] + counts["4xx"] + counts["5xx"]
		}
	}
	if !sawFinished || !sawRequests {
		return r, fmt.Errorf("h2load: no \"finished in\" and \"requests:\" lines in its output")
	}
	return r, nil
}

// parseCounts parses "N word, N word, …" into word → N.
func parseCounts(s string) (map[string]int64, error) {
	out := map[string]int64{}
	for f := range strings.SplitSeq(s, ",") {
		n, word, ok := strings.Cut(strings.TrimSpace(f), " ")
		if !ok {
			return nil, fmt.Errorf("%q: want \"N word\"", f)
		}
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q: %q is not a count", f, n)
		}
		out[strings.TrimSpace(word)] = v
	}
	return out, nil
}
