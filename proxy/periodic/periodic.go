// Package periodic runs background work on a fixed period: the stats
// refreshers, DNS re-resolution, configuration polling, the sink's series
// expiry and relay flushes all share this one loop.
package periodic

import (
	"context"
	"time"
)

// Every calls tick with the tick's time every interval until ctx ends; the
// first call is one interval after the start. Ticks that fall due while
// tick runs are dropped, as a time.Ticker drops them, so a slow tick delays
// the next one instead of queueing more.
func Every(ctx context.Context, interval time.Duration, tick func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			tick(now)
		}
	}
}
