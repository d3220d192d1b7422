package router

import (
	"context"
	"sync"
	"time"
)

// routeTimer is a request's route timeout: a timer that cancels the
// request (or its single attempt) with errRouteTimeout. Nearly every
// request arms one (Envoy's default timeout is 15 s) and stops it long
// before it fires, so the timers are pooled: arming one costs a Reset, not
// a new timer and a closure.
//
// A timer goes back to the pool only when Stop reports that its function
// will not run; one that fired, or is firing, is left to finish with the
// cancel it was armed with and is never reused, so a late fire cannot
// cancel another request.
type routeTimer struct {
	t *time.Timer

	mu     sync.Mutex
	cancel context.CancelCauseFunc
}

var routeTimers = sync.Pool{New: func() any {
	rt := &routeTimer{}
	rt.t = time.AfterFunc(time.Hour, rt.fire)
	rt.t.Stop()
	return rt
}}

// armRouteTimer returns a running route timer that calls cancel after d.
func armRouteTimer(d time.Duration, cancel context.CancelCauseFunc) *routeTimer {
	rt := routeTimers.Get().(*routeTimer)
	rt.mu.Lock()
	rt.cancel = cancel
	rt.mu.Unlock()
	rt.t.Reset(d)
	return rt
}

func (rt *routeTimer) fire() {
	rt.mu.Lock()
	cancel := rt.cancel
	rt.mu.Unlock()
	if cancel != nil {
		cancel(errRouteTimeout)
	}
}

// stop stops the timer; rt must not be used afterwards.
func (rt *routeTimer) stop() {
	if !rt.t.Stop() {
		return // fired: its function runs with the cancel it had
	}
	rt.mu.Lock()
	rt.cancel = nil
	rt.mu.Unlock()
	routeTimers.Put(rt)
}
