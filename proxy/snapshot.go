package proxy

import (
	"fmt"
	"maps"
	"time"

	"github.com/hopwatch/hopwatch/proxy/accesslog"
	"github.com/hopwatch/hopwatch/proxy/cluster"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/connmgr"
	"github.com/hopwatch/hopwatch/proxy/route"
	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/proxy/tracer"
)

// snapshotDeps are what a listener's snapshot is built from besides its
// configuration: the cluster manager it routes to, the stats store (a null
// one when stats are off), the tracer (nil when tracing is off) and the open
// access logs.
type snapshotDeps struct {
	clusters *cluster.Manager
	store    *stats.Store
	tracer   *tracer.Tracer
	logs     *accessLogs
}

// buildSnapshot compiles one listener's request-handling configuration
// under cfg, the configuration being loaded. It reads nothing from the
// running Server, so a snapshot depends only on what it is given; its one
// effect is opening an access-log file no running listener has open yet.
func buildSnapshot(cfg *config.Config, lc *config.Listener, d snapshotDeps) (*connmgr.Snapshot, error) {
	table, err := route.NewTable(lc.VirtualHosts, route.Options{NodeHostname: cfg.Node.ID})
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
	}
	var logs accesslog.Multi
	for _, al := range lc.AccessLog {
		fl, err := d.logs.open(al)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
		}
		logs = append(logs, fl)
	}
	snap := &connmgr.Snapshot{Listener: lc, Routes: table, Clusters: d.clusters, Stats: requestStats(d.store, cfg, lc, table), Tracer: d.tracer}
	switch len(logs) {
	case 0:
	case 1:
		snap.AccessLog = logs[0]
	default:
		snap.AccessLog = logs
	}
	setLocalRateLimitStats(d.store, table)
	if snap.RateLimit, err = rateLimiter(cfg, lc, d.clusters); err != nil {
		return nil, err
	}
	return snap, nil
}

// accessLogs are the open access-log outputs, shared by every listener
// that writes to the same one, so that a reload keeps an unchanged output
// open rather than reopening the file. Guarded by Server.mu.
type accessLogs struct {
	files map[accessLogKey]*accesslog.FileLogger
}

// accessLogKey identifies an access-log output.
type accessLogKey struct{ path, format, text string }

func newAccessLogs() *accessLogs {
	return &accessLogs{files: map[accessLogKey]*accesslog.FileLogger{}}
}

// open returns the output al names, opening it if no listener has.
func (l *accessLogs) open(al config.AccessLog) (*accesslog.FileLogger, error) {
	key := accessLogKey{al.Path, al.Format, al.TextFormat}
	if fl := l.files[key]; fl != nil {
		return fl, nil
	}
	fl, err := accesslog.New(al, accesslog.Options{})
	if err != nil {
		return nil, err
	}
	l.files[key] = fl
	return fl, nil
}

// closeUnused closes the outputs that no listener of cfg references any
// more, after a grace period for requests still finishing on an old
// snapshot.
func (l *accessLogs) closeUnused(cfg *config.Config) {
	used := map[accessLogKey]bool{}
	for i := range cfg.Listeners {
		for _, al := range cfg.Listeners[i].AccessLog {
			used[accessLogKey{al.Path, al.Format, al.TextFormat}] = true
		}
	}
	for key, fl := range maps.Clone(l.files) {
		if !used[key] {
			delete(l.files, key)
			time.AfterFunc(time.Minute, func() { _ = fl.Close() })
		}
	}
}

// reopen reopens every output (log rotation), reporting failures to fail.
func (l *accessLogs) reopen(fail func(path string, err error)) {
	for _, fl := range l.files {
		if err := fl.Reopen(); err != nil {
			fail(fl.Path(), err)
		}
	}
}

// close closes every output.
func (l *accessLogs) close() {
	for _, fl := range l.files {
		_ = fl.Close()
	}
}
