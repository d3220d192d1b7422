// Package openmetrics scrapes a /metrics page as OpenMetrics, the format
// Prometheus asks for and the only one that carries exemplars, for the
// benchmarks that must show their exemplar lines arrived.
package openmetrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// CountExemplars fetches url as OpenMetrics and returns how many of its
// sample lines carry an exemplar.
func CountExemplars(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("scrape %s as OpenMetrics: %w", url, err)
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s as OpenMetrics: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, fmt.Errorf("scrape %s as OpenMetrics: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s as OpenMetrics: status %s", url, resp.Status)
	}
	return ExemplarLines(body), nil
}

// ExemplarLines counts the sample lines of an OpenMetrics body that carry
// a trace_id exemplar; # HELP and # TYPE lines never count.
func ExemplarLines(body []byte) int {
	n := 0
	for l := range bytes.SplitSeq(body, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("#")) && bytes.Contains(l, []byte(` # {trace_id="`)) {
			n++
		}
	}
	return n
}
