package ratelimit

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTokenBucket(t *testing.T) {
	type step struct {
		advance   time.Duration // before taking
		takes     int
		wantOK    int
		remaining uint64 // after the last take
		sinceFill time.Duration
	}
	tests := []struct {
		name         string
		max, perFill uint64
		interval     time.Duration
		steps        []step
	}{
		{
			name: "starts full, then refuses", max: 3, perFill: 1, interval: time.Second,
			steps: []step{{takes: 5, wantOK: 3, remaining: 0}},
		},
		{
			name: "no token before the fill boundary", max: 2, perFill: 1, interval: time.Second,
			steps: []step{
				{takes: 2, wantOK: 2, remaining: 0},
				{advance: 999 * time.Millisecond, takes: 1, wantOK: 0, remaining: 0, sinceFill: 999 * time.Millisecond},
				{advance: time.Millisecond, takes: 2, wantOK: 1, remaining: 0},
			},
		},
		{
			name: "fills of tokens_per_fill, capped at max", max: 10, perFill: 4, interval: 100 * time.Millisecond,
			steps: []step{
				{takes: 10, wantOK: 10},
				{advance: 100 * time.Millisecond, takes: 5, wantOK: 4},
				{advance: 250 * time.Millisecond, takes: 1, wantOK: 1, remaining: 7, sinceFill: 50 * time.Millisecond},
				{advance: 50 * time.Millisecond, takes: 0, wantOK: 0},
				{advance: time.Hour, takes: 11, wantOK: 10, remaining: 0},
			},
		},
		{
			name: "fill boundaries stay on the grid", max: 5, perFill: 5, interval: time.Second,
			steps: []step{
				{takes: 5, wantOK: 5},
				{advance: 1700 * time.Millisecond, takes: 5, wantOK: 5, sinceFill: 700 * time.Millisecond},
				// The next boundary is at 2 s, 300 ms later, not 1 s later.
				{advance: 300 * time.Millisecond, takes: 6, wantOK: 5},
			},
		},
		{
			name: "an idle century does not overflow", max: 1 << 62, perFill: 1 << 61, interval: 50 * time.Millisecond,
			steps: []step{
				{takes: 1, wantOK: 1, remaining: 1<<62 - 1},
				{advance: 100 * 365 * 24 * time.Hour, takes: 1, wantOK: 1, remaining: 1<<62 - 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			b := NewTokenBucket(tt.max, tt.perFill, tt.interval, clk.Now)
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				ok := 0
				var last Take
				for range st.takes {
					last = b.Take()
					if last.OK {
						ok++
					}
				}
				if ok != st.wantOK {
					t.Errorf("step %d: %d of %d takes succeeded, want %d", i, ok, st.takes, st.wantOK)
				}
				if st.takes > 0 && (last.Remaining != st.remaining || last.SinceFill != st.sinceFill) {
					t.Errorf("step %d: last take %+v, want remaining %d, since fill %v", i, last, st.remaining, st.sinceFill)
				}
			}
		})
	}
}

// TestTokenBucketConcurrent takes tokens from many goroutines: exactly
// max succeed while the clock stands still.
func TestTokenBucketConcurrent(t *testing.T) {
	clk := newFakeClock()
	b := NewTokenBucket(100, 1, time.Second, clk.Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			n := 0
			for range 50 {
				if b.Take().OK {
					n++
				}
			}
			mu.Lock()
			ok += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if ok != 100 {
		t.Fatalf("%d tokens taken from a bucket of 100", ok)
	}
}

func TestResetSeconds(t *testing.T) {
	tests := []struct {
		interval, since time.Duration
		want            int64
	}{
		{time.Second, 0, 1},
		{time.Second, 300 * time.Millisecond, 1}, // Envoy subtracts whole elapsed seconds only
		{3 * time.Second, 1000 * time.Millisecond, 2},
		{3 * time.Second, 2999 * time.Millisecond, 1},
		{500 * time.Millisecond, 100 * time.Millisecond, 0},
		{time.Minute, 59 * time.Second, 1},
	}
	for _, tt := range tests {
		if got := resetSeconds(tt.interval, tt.since); got != tt.want {
			t.Errorf("resetSeconds(%v, %v) = %d, want %d", tt.interval, tt.since, got, tt.want)
		}
	}
}
