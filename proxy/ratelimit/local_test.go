package ratelimit

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

func localConfig(maxTokens, perFill int, interval time.Duration, edit func(*config.LocalRateLimit)) *config.LocalRateLimit {
	hundred := 100.0
	c := &config.LocalRateLimit{
		StatPrefix:              "lrl",
		TokenBucket:             config.TokenBucket{MaxTokens: maxTokens, TokensPerFill: perFill, FillInterval: config.Duration(interval)},
		Status:                  429,
		FilterEnabled:           &hundred,
		FilterEnforced:          &hundred,
		EnableXRateLimitHeaders: config.XRateLimitHeadersOff,
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func newTestStats(t *testing.T) *stats.Store {
	t.Helper()
	s, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocalCheck(t *testing.T) {
	zero := 0.0
	tests := []struct {
		name    string
		edit    func(*config.LocalRateLimit)
		n       int
		refused int
		// enabled, ok, rate_limited, enforced
		stats [4]uint64
	}{
		{"refuses past the bucket", nil, 5, 2, [4]uint64{5, 3, 2, 2}},
		{"filter_enabled 0: never checked", func(c *config.LocalRateLimit) { c.FilterEnabled = &zero }, 5, 0, [4]uint64{0, 0, 0, 0}},
		{"filter_enforced 0: shadow mode", func(c *config.LocalRateLimit) { c.FilterEnforced = &zero }, 5, 0, [4]uint64{5, 3, 2, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := NewLocal(localConfig(3, 1, time.Second, tt.edit), clk.Now)
			st := newTestStats(t).LocalRateLimitStats(l.StatPrefix)
			l.Stats = st
			refused := 0
			for range tt.n {
				if l.Check().Refuse {
					refused++
				}
			}
			if refused != tt.refused {
				t.Errorf("refused %d of %d, want %d", refused, tt.n, tt.refused)
			}
			got := [4]uint64{st.Enabled.Value(), st.OK.Value(), st.RateLimited.Value(), st.Enforced.Value()}
			if got != tt.stats {
				t.Errorf("enabled, ok, rate_limited, enforced = %v, want %v", got, tt.stats)
			}
		})
	}
}

// TestLocalCheckWithoutStats: stats off (nil) must not matter.
func TestLocalCheckWithoutStats(t *testing.T) {
	l := NewLocal(localConfig(1, 1, time.Second, nil), newFakeClock().Now)
	if l.Check().Refuse || !l.Check().Refuse {
		t.Fatal("a bucket of one must allow one request and refuse the next")
	}
}

func TestLocalHeaders(t *testing.T) {
	clk := newFakeClock()
	f := false
	l := NewLocal(localConfig(2, 1, 3*time.Second, func(c *config.LocalRateLimit) {
		c.EnableXRateLimitHeaders = config.XRateLimitHeadersDraft03
		c.Status = 503
		c.ResponseHeadersToAdd = []config.HeaderValueOption{{Key: "x-limited", Value: "a"}, {Key: "x-limited", Value: "b"}, {Key: "x-only", Value: "c", Append: &f}}
	}), clk.Now)
	if !l.XRateLimitHeaders() || l.Status() != 503 {
		t.Fatalf("XRateLimitHeaders %v, Status %d", l.XRateLimitHeaders(), l.Status())
	}

	d := l.Check()
	h := http.Header{}
	l.SetXRateLimitHeaders(h, d)
	want := http.Header{HeaderLimit: {"2"}, HeaderRemaining: {"1"}, HeaderReset: {"3"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("first request headers = %v, want %v", h, want)
	}

	clk.Advance(1200 * time.Millisecond)
	_ = l.Check()
	d = l.Check() // refused
	if !d.Refuse {
		t.Fatal("third request within the interval was not refused")
	}
	h = http.Header{"X-Only": {"old"}}
	l.SetRefusalHeaders(h, d)
	want = http.Header{
		HeaderRateLimited: {"true"}, "X-Limited": {"a", "b"}, "X-Only": {"c"},
		HeaderLimit: {"2"}, HeaderRemaining: {"0"}, HeaderReset: {"2"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("refusal headers = %v, want %v", h, want)
	}
}
