package connmgr

import (
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
)

// closed reports whether g's client is closed: closing a closed gRPC
// connection fails.
func closed(g *ratelimit.Global) bool { return g.Close() != nil }

func newTestGlobal(t *testing.T) *ratelimit.Global {
	t.Helper()
	g, err := ratelimit.NewGlobal(&config.RateLimitService{Cluster: "rls"},
		&config.Cluster{Name: "rls", Endpoints: []config.Endpoint{{Address: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSnapshotClose: Close releases the rate-limit client at once, Retire
// only after its grace; a snapshot without one, or none, is a no-op.
func TestSnapshotClose(t *testing.T) {
	var none *Snapshot
	if err := none.Close(); err != nil {
		t.Errorf("nil snapshot: Close = %v", err)
	}
	none.Retire(0)
	if err := (&Snapshot{}).Close(); err != nil {
		t.Errorf("snapshot without a rate limiter: Close = %v", err)
	}

	now := &Snapshot{RateLimit: newTestGlobal(t)}
	if err := now.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if !closed(now.RateLimit) {
		t.Error("Close left the rate-limit client open")
	}

	// Probing closes the client, so each snapshot is probed once: one
	// before its grace ends, the other well after.
	const grace = 50 * time.Millisecond
	early := &Snapshot{RateLimit: newTestGlobal(t)}
	late := &Snapshot{RateLimit: newTestGlobal(t)}
	early.Retire(grace)
	late.Retire(grace)
	if closed(early.RateLimit) {
		t.Error("Retire closed the rate-limit client before its grace")
	}
	time.Sleep(20 * grace)
	if !closed(late.RateLimit) {
		t.Error("Retire left the rate-limit client open after its grace")
	}
}
