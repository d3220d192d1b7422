package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryTicksUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ticks atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func(now time.Time) {
			if now.IsZero() {
				t.Error("tick got a zero time")
			}
			if ticks.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context was cancelled")
	}
	if n := ticks.Load(); n < 3 {
		t.Errorf("ticked %d times before returning, want at least 3", n)
	}
}

func TestEveryWaitsOneIntervalBeforeTheFirstTick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	called := false
	Every(ctx, time.Hour, func(time.Time) { called = true })
	if called {
		t.Error("tick ran before its first interval had passed")
	}
}
