package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds of the load generator, so that a typo cannot flood a laptop.
const (
	MaxRate        = 10000 // requests per second
	MaxDuration    = 24 * time.Hour
	MaxConcurrency = 1024
)

// LoadConfig configures Load.
type LoadConfig struct {
	// Target is the URL requested (GET).
	Target string
	// Rate is the requests started per second, in (0, MaxRate].
	Rate float64
	// Duration is how long to send, in (0, MaxDuration].
	Duration time.Duration
	// Concurrency bounds the requests in flight. Default 16. A tick that
	// finds every slot busy is not sent and is counted as Skipped, so a
	// slow target lowers the rate instead of piling up requests.
	Concurrency int
	// Header is added to every request (for example x-demo-fail-at).
	Header http.Header
	// Client sends the requests. Default: a client with a 10s timeout.
	Client *http.Client
}

// LoadResult counts what Load did.
type LoadResult struct {
	Sent    int         // requests that got a response or an error
	Skipped int         // ticks dropped because every slot was busy
	Errors  int         // requests that got no response
	Status  map[int]int // responses by status code
	Elapsed time.Duration
}

// String reports the result on one line, status codes in order.
func (r LoadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent=%d errors=%d skipped=%d elapsed=%s", r.Sent, r.Errors, r.Skipped, r.Elapsed.Round(time.Millisecond))
	for _, code := range slices.Sorted(maps.Keys(r.Status)) {
		fmt.Fprintf(&b, " %d=%d", code, r.Status[code])
	}
	return b.String()
}

// Validate checks the bounds; errors name the setting.
func (c LoadConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("target %q: want an http:// or https:// URL", c.Target))
	}
	if !(c.Rate > 0 && c.Rate <= MaxRate) {
		errs = append(errs, fmt.Errorf("rate %v: want more than 0 and at most %d requests per second", c.Rate, MaxRate))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration %v: want more than 0 and at most %v", c.Duration, MaxDuration))
	}
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1 to %d (0 for the default)", c.Concurrency, MaxConcurrency))
	}
	return errors.Join(errs...)
}

// Load sends GET requests to cfg.Target at cfg.Rate for cfg.Duration (or
// until ctx is done), waits for those in flight, and counts the outcomes.
// At most Rate×Duration+1 requests are sent.
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if err := cfg.Validate(); err != nil {
		return LoadResult{}, fmt.Errorf("demo load: %w", err)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	res := LoadResult{Status: map[int]int{}}
	var mu sync.Mutex
	record := func(code int, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Sent++
		if err != nil {
			res.Errors++
			return
		}
		res.Status[code]++
	}
	slots := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	send := func() {
		defer wg.Done()
		defer func() { <-slots }()
		// Requests in flight when the duration ends may finish: they were
		// sent within it. Their own timeout still bounds them.
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, cfg.Target, nil)
		if err != nil {
			record(0, err)
			return
		}
		for k, v := range cfg.Header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			record(0, err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		record(resp.StatusCode, nil)
	}

	interval := time.Duration(float64(time.Second) / cfg.Rate)
	limit := int(cfg.Rate*cfg.Duration.Seconds()) + 1
	start := time.Now()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for started := 0; started < limit; {
		select {
		case slots <- struct{}{}:
			started++
			wg.Add(1)
			go send()
		default:
			mu.Lock()
			res.Skipped++
			mu.Unlock()
			started++ // a skipped tick still uses up its share of the rate
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			started = limit
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, nil
}
