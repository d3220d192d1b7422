package router

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRouteTimer: an armed timer cancels with errRouteTimeout; a stopped
// one never cancels, even after the pool hands it to another request.
func TestRouteTimer(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	armRouteTimer(time.Millisecond, cancel)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the route timer did not fire")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errRouteTimeout) {
		t.Fatalf("cause %v, want errRouteTimeout", cause)
	}

	stoppedCtx, stoppedCancel := context.WithCancelCause(context.Background())
	defer stoppedCancel(nil)
	for range 100 {
		armRouteTimer(time.Hour, stoppedCancel).stop()
		next, nextCancel := context.WithCancelCause(context.Background())
		rt := armRouteTimer(time.Microsecond, nextCancel)
		<-next.Done()
		rt.stop()
	}
	time.Sleep(5 * time.Millisecond)
	if err := stoppedCtx.Err(); err != nil {
		t.Fatalf("a stopped route timer cancelled its request: %v", context.Cause(stoppedCtx))
	}
}

// BenchmarkRouteTimer is what nearly every request pays for its route
// timeout: arm it, and stop it long before it fires; "AfterFunc" is the
// timer and closure per request that the pool replaced.
func BenchmarkRouteTimer(b *testing.B) {
	_, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			armRouteTimer(15*time.Second, cancel).stop()
		}
	})
	b.Run("AfterFunc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			time.AfterFunc(15*time.Second, func() { cancel(errRouteTimeout) }).Stop()
		}
	})
}
