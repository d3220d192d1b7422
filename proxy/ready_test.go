package proxy_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy"
)

// TestReadyOnlyOnceListening: the server reports INITIALIZING (and /ready
// 503) until Start has bound every listener, so that a readiness probe
// never sends traffic to a port that is not listening yet.
func TestReadyOnlyOnceListening(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.yaml")
	cfg := `
admin: {address: "127.0.0.1:0"}
lifecycle: {drain_time: 0s, watch_config: false}
stats_config: {disabled: true}
listeners:
  - name: ingress
    address: "127.0.0.1:0"
    stat_prefix: ingress
    access_log: []
    virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.State(); got != "INITIALIZING" {
		t.Errorf("before Start: state %q, want INITIALIZING", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	if got := srv.State(); got != "LIVE" {
		t.Errorf("after Start: state %q, want LIVE", got)
	}
}
