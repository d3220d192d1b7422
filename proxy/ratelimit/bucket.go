package ratelimit

import (
	"sync"
	"time"
)

// TokenBucket is Envoy's local rate limit token bucket (its timer-based
// TimerTokenBucket): it starts full with max tokens and gains tokensPerFill
// tokens every fillInterval, never more than max; each request takes one
// token or is refused. Fills are computed lazily from the clock when a
// token is asked for, at the same fill boundaries a timer would have hit,
// so an idle bucket costs nothing. It is safe for concurrent use.
type TokenBucket struct {
	max, perFill uint64
	interval     time.Duration
	now          func() time.Time

	mu     sync.Mutex
	tokens uint64
	// filled is the last fill boundary: the bucket's creation plus a whole
	// number of fill intervals.
	filled time.Time
}

// Take is what one request got from the bucket.
type Take struct {
	// OK reports whether the request took a token.
	OK bool
	// Remaining is the number of tokens left after this request.
	Remaining uint64
	// SinceFill is the time since the last fill boundary, in [0, fill
	// interval).
	SinceFill time.Duration
}

// NewTokenBucket returns a full bucket. now is the clock (time.Now when
// nil); tests inject their own. maxTokens, tokensPerFill and fillInterval
// must be positive (the configuration guarantees it).
func NewTokenBucket(maxTokens, tokensPerFill uint64, fillInterval time.Duration, now func() time.Time) *TokenBucket {
	if now == nil {
		now = time.Now
	}
	maxTokens = max(maxTokens, 1)
	return &TokenBucket{
		max: maxTokens, perFill: max(tokensPerFill, 1), interval: max(fillInterval, time.Nanosecond),
		now: now, tokens: maxTokens, filled: now(),
	}
}

// Take takes one token if there is one.
func (b *TokenBucket) Take() Take {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fill(now)
	t := Take{SinceFill: max(now.Sub(b.filled), 0)}
	if b.tokens > 0 {
		b.tokens--
		t.OK = true
	}
	t.Remaining = b.tokens
	return t
}

// fill adds the fills whose boundaries have passed since the last one.
func (b *TokenBucket) fill(now time.Time) {
	elapsed := now.Sub(b.filled)
	if elapsed < b.interval {
		return // includes a clock that went backwards
	}
	n := uint64(elapsed / b.interval)
	b.filled = b.filled.Add(time.Duration(n) * b.interval)
	// n*perFill may overflow after a long idle time; the bucket is full
	// once n reaches the fills that an empty bucket needs.
	if need := (b.max - b.tokens + b.perFill - 1) / b.perFill; n >= need {
		b.tokens = b.max
		return
	}
	b.tokens += n * b.perFill
}

// MaxTokens is the bucket's capacity.
func (b *TokenBucket) MaxTokens() uint64 { return b.max }

// FillInterval is the bucket's fill period.
func (b *TokenBucket) FillInterval() time.Duration { return b.interval }

// resetSeconds is Envoy's x-ratelimit-reset for a timer bucket: the fill
// interval minus the whole seconds since the last fill, in whole seconds
// (TimerTokenBucket::remainingFillInterval).
func resetSeconds(interval, sinceFill time.Duration) int64 {
	return int64((interval - sinceFill.Truncate(time.Second)) / time.Second)
}
