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
