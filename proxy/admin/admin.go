// Package admin serves hopwatch-proxy's admin interface, modelled on
// Envoy's: readiness, health-check failing for drains, cluster membership,
// the effective configuration with secrets redacted, and server info.
// Mutating endpoints require POST, as in Envoy.
//
// The admin server listens on 127.0.0.1:9901 by default and is never public
// unless the configuration says so.
package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/hopwatch/hopwatch/proxy/cluster"
)

// Server is what the admin interface needs from the proxy.
type Server interface {
	// State is Envoy's server state: "LIVE", "DRAINING", "PRE_INITIALIZING"
	// or "INITIALIZING".
	State() string
	// SetHealthCheckFailed starts (true) or stops (false) draining.
	SetHealthCheckFailed(bool)
	// Clusters returns the current clusters.
	Clusters() []*cluster.Cluster
	// ConfigDump returns the effective configuration with secrets redacted.
	ConfigDump() any
	// Info describes the running server.
	Info() Info
}

// Info is the body of /server_info.
type Info struct {
	Version     string    `json:"version"`
	State       string    `json:"state"`
	NodeID      string    `json:"node_id"`
	NodeCluster string    `json:"node_cluster"`
	Zone        string    `json:"zone"`
	ConfigPath  string    `json:"config_path"`
	StartTime   time.Time `json:"start_time"`
	// UptimeSeconds is the time since the process started.
	UptimeSeconds int64 `json:"uptime_current_epoch"`
	// ConfigLoads counts successful loads, the first included.
	ConfigLoads uint64 `json:"config_loads"`
	// ConfigRejects counts reloads that were refused.
	ConfigRejects uint64 `json:"config_rejects"`
	// LastReloadError is the most recent refused reload, if any.
	LastReloadError string `json:"last_reload_error,omitempty"`
}

// Handler returns the admin HTTP handler. extra registers more endpoints
// (the proxy adds /stats and /stats/prometheus).
func Handler(s Server, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	endpoints := []struct{ path, help string }{
		{"/ready", "print server state; 200 when LIVE, 503 otherwise"},
		{"/healthcheck/fail", "POST: fail health checks and start draining"},
		{"/healthcheck/ok", "POST: pass health checks and stop draining"},
		{"/clusters", "upstream cluster status (?format=json)"},
		{"/config_dump", "the effective configuration, secrets redacted"},
		{"/server_info", "version, state, node and uptime"},
	}
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		state := s.State()
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		if state != "LIVE" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, state+"\n")
	})
	mux.HandleFunc("/healthcheck/fail", post(func(w http.ResponseWriter, _ *http.Request) {
		s.SetHealthCheckFailed(true)
		_, _ = io.WriteString(w, "OK\n")
	}))
	mux.HandleFunc("/healthcheck/ok", post(func(w http.ResponseWriter, _ *http.Request) {
		s.SetHealthCheckFailed(false)
		_, _ = io.WriteString(w, "OK\n")
	}))
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") == "json" {
			writeJSON(w, clustersJSON(s.Clusters()))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		writeClustersText(w, s.Clusters())
	})
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.ConfigDump())
	})
	mux.HandleFunc("GET /server_info", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Info())
	})
	// Go's profiler, Envoy's /cpuprofiler and /heapprofiler analogue. The
	// admin server is loopback-only unless configured otherwise.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	endpoints = append(endpoints, struct{ path, help string }{"/debug/pprof/", "Go runtime profiles (CPU, heap, goroutines)"})
	for path, h := range extra {
		mux.Handle(path, h)
		endpoints = append(endpoints, struct{ path, help string }{path, ""})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = io.WriteString(w, "admin commands are:\n")
		for _, e := range endpoints {
			_, _ = fmt.Fprintf(w, "  %s: %s\n", e.path, e.help)
		}
	})
	return mux
}

// post refuses anything but POST, as Envoy does for mutating endpoints, so
// that a stray GET from a browser or crawler cannot drain the proxy.
func post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires POST.", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeClustersText renders Envoy's /clusters text format:
// cluster::host:port::field::value.
func writeClustersText(w io.Writer, clusters []*cluster.Cluster) {
	for _, c := range clusters {
		name := c.Name()
		for _, h := range c.Hosts() {
			prefix := name + "::" + h.Address() + "::"
			_, _ = fmt.Fprintf(w, "%shealth_flags::%s\n", prefix, h.HealthFlags())
			_, _ = fmt.Fprintf(w, "%sweight::%d\n", prefix, h.Weight())
			_, _ = fmt.Fprintf(w, "%szone::%s\n", prefix, h.Zone())
			_, _ = fmt.Fprintf(w, "%scanary::%s\n", prefix, strconv.FormatBool(h.Canary()))
			_, _ = fmt.Fprintf(w, "%srq_active::%d\n", prefix, h.ActiveRequests())
			_, _ = fmt.Fprintf(w, "%ssuccess_rate::%s\n", prefix, strconv.FormatFloat(h.SuccessRate(), 'g', -1, 64))
			if hn := h.Hostname(); hn != "" {
				_, _ = fmt.Fprintf(w, "%shostname::%s\n", prefix, hn)
			}
		}
	}
}

type clusterStatus struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	LBPolicy string       `json:"lb_policy"`
	Protocol string       `json:"protocol"`
	Hosts    []hostStatus `json:"host_statuses"`
}

type hostStatus struct {
	Address        string `json:"address"`
	Hostname       string `json:"hostname,omitempty"`
	Weight         int    `json:"weight"`
	Zone           string `json:"zone"`
	Canary         bool   `json:"canary"`
	Healthy        bool   `json:"healthy"`
	ActiveRequests int64  `json:"rq_active"`
	// HealthStatus is Envoy's host_statuses[].health_status.
	HealthStatus healthStatus `json:"health_status"`
	// SuccessRate is the outlier detector's last success rate of the
	// host, in percent; absent when none was computed (Envoy's rule).
	SuccessRate *successRate `json:"success_rate,omitempty"`
}

// healthStatus mirrors Envoy's admin HostHealthStatus for the flags
// hopwatch has.
type healthStatus struct {
	FailedActiveHealthCheck bool   `json:"failed_active_health_check,omitempty"`
	FailedOutlierCheck      bool   `json:"failed_outlier_check,omitempty"`
	EDSHealthStatus         string `json:"eds_health_status"`
}

type successRate struct {
	Value float64 `json:"value"`
}

func clustersJSON(clusters []*cluster.Cluster) any {
	out := struct {
		Clusters []clusterStatus `json:"cluster_statuses"`
	}{Clusters: []clusterStatus{}}
	for _, c := range clusters {
		cfg := c.Config()
		cs := clusterStatus{Name: c.Name(), Type: cfg.Type, LBPolicy: cfg.LBPolicy, Protocol: cfg.Protocol, Hosts: []hostStatus{}}
		for _, h := range c.Hosts() {
			hs := hostStatus{
				Address: h.Address(), Hostname: h.Hostname(), Weight: h.Weight(), Zone: h.Zone(),
				Canary: h.Canary(), Healthy: h.Healthy(), ActiveRequests: h.ActiveRequests(),
				HealthStatus: healthStatus{
					FailedActiveHealthCheck: h.FailedActiveHealthCheck(),
					FailedOutlierCheck:      h.FailedOutlierCheck(),
					// Static and DNS hosts carry no EDS status; Envoy
					// reports HEALTHY for them.
					EDSHealthStatus: "HEALTHY",
				},
			}
			if sr := h.SuccessRate(); sr >= 0 {
				hs.SuccessRate = &successRate{Value: sr}
			}
			cs.Hosts = append(cs.Hosts, hs)
		}
		out.Clusters = append(out.Clusters, cs)
	}
	return out
}
