package mapping

import (
	"regexp"
	"strings"

	"github.com/hopwatch/hopwatch/sink/statsd"
)

// EnvoyBuckets are Envoy's default histogram buckets, in milliseconds.
var EnvoyBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Envoy tag names (Envoy's source/common/config/well_known_names.h), as
// Prometheus label names.
const (
	TagClusterName       = "envoy_cluster_name"
	TagResponseCode      = "envoy_response_code"
	TagResponseCodeClass = "envoy_response_code_class"
	TagHTTPConnManager   = "envoy_http_conn_manager_prefix"
	TagListenerAddress   = "envoy_listener_address"
	TagVirtualHost       = "envoy_virtual_host"
	TagVirtualCluster    = "envoy_virtual_cluster"
	TagRoute             = "envoy_route"
	TagWorkerID          = "envoy_worker_id"
	TagUserAgent         = "envoy_http_user_agent"
	TagFaultCluster      = "envoy_fault_downstream_cluster"
	TagRDSRouteConfig    = "envoy_rds_route_config"
)

// ClusterStats is the table of Envoy cluster stat names after tag extraction
// (the part after `cluster.<name>.`; `*` stands for one dot-free segment).
// It is how cluster names that contain dots are recognised: the split that
// leaves a known stat wins over Envoy's "first segment" rule. It is the one
// place to extend when the proxy's stats catalogue grows.
var ClusterStats = buildClusterStats()

// requestStats exist at cluster level and again under the canary, internal,
// external and zone scopes.
var requestStats = []string{"upstream_rq", "upstream_rq_xx", "upstream_rq_time", "upstream_rq_completed"}

func buildClusterStats() []string {
	s := []string{
		"upstream_cx_total", "upstream_cx_active", "upstream_cx_http1_total", "upstream_cx_http2_total",
		"upstream_cx_http3_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
		"upstream_cx_idle_timeout", "upstream_cx_max_duration_reached", "upstream_cx_connect_attempts_exceeded",
		"upstream_cx_overflow", "upstream_cx_connect_ms", "upstream_cx_length_ms", "upstream_cx_destroy",
		"upstream_cx_destroy_local", "upstream_cx_destroy_remote", "upstream_cx_destroy_with_active_rq",
		"upstream_cx_destroy_local_with_active_rq", "upstream_cx_destroy_remote_with_active_rq",
		"upstream_cx_close_notify", "upstream_cx_rx_bytes_total", "upstream_cx_rx_bytes_buffered",
		"upstream_cx_tx_bytes_total", "upstream_cx_tx_bytes_buffered", "upstream_cx_pool_overflow",
		"upstream_cx_protocol_error", "upstream_cx_max_requests", "upstream_cx_none_healthy",
		"upstream_rq_total", "upstream_rq_active", "upstream_rq_pending_total", "upstream_rq_pending_overflow",
		"upstream_rq_pending_failure_eject", "upstream_rq_pending_active", "upstream_rq_cancelled",
		"upstream_rq_maintenance_mode", "upstream_rq_timeout", "upstream_rq_max_duration_reached",
		"upstream_rq_per_try_timeout", "upstream_rq_rx_reset", "upstream_rq_tx_reset", "upstream_rq_retry",
		"upstream_rq_retry_backoff_exponential", "upstream_rq_retry_backoff_ratelimited",
		"upstream_rq_retry_limit_exceeded", "upstream_rq_retry_success", "upstream_rq_retry_overflow",
		"upstream_rq_per_try_idle_timeout", "upstream_internal_redirect_failed_total",
		"upstream_internal_redirect_succeeded_total", "upstream_flow_control_paused_reading_total",
		"upstream_flow_control_resumed_reading_total", "upstream_flow_control_backed_up_total",
		"upstream_flow_control_drained_total", "membership_change", "membership_healthy", "membership_degraded",
		"membership_excluded", "membership_total", "retry_or_shadow_abandoned", "update_attempt",
		"update_success", "update_failure", "update_empty", "update_no_rebuild", "version", "max_host_weight",
		"bind_errors", "assignment_timeout_received", "assignment_stale", "lb_healthy_panic",
		"lb_zone_cluster_too_small", "lb_zone_routing_all_directly", "lb_zone_routing_sampled",
		"lb_zone_routing_cross_zone", "lb_local_cluster_not_ok", "lb_zone_number_differs",
		"lb_zone_no_capacity_left", "lb_subsets_active", "lb_subsets_created", "lb_subsets_removed",
		"lb_subsets_selected", "lb_subsets_fallback", "lb_subsets_fallback_panic", "lb_subsets_single_host_per_subset_duplicate",
		"original_dst_host_invalid", "default.total_match_count", "init_fetch_timeout",
		"health_check.attempt", "health_check.success", "health_check.failure", "health_check.passive_failure",
		"health_check.network_failure", "health_check.verify_cluster", "health_check.healthy", "health_check.degraded",
		"outlier_detection.ejections_enforced_total", "outlier_detection.ejections_active",
		"outlier_detection.ejections_overflow", "outlier_detection.ejections_enforced_consecutive_5xx",
		"outlier_detection.ejections_detected_consecutive_5xx", "outlier_detection.ejections_enforced_success_rate",
		"outlier_detection.ejections_detected_success_rate", "outlier_detection.ejections_enforced_consecutive_gateway_failure",
		"outlier_detection.ejections_detected_consecutive_gateway_failure",
		"outlier_detection.ejections_enforced_consecutive_local_origin_failure",
		"outlier_detection.ejections_detected_consecutive_local_origin_failure",
		"outlier_detection.ejections_enforced_failure_percentage", "outlier_detection.ejections_detected_failure_percentage",
		"outlier_detection.ejections_total", "outlier_detection.ejections_consecutive_5xx",
	}
	for _, cb := range []string{"cx_open", "cx_pool_open", "rq_pending_open", "rq_open", "rq_retry_open",
		"remaining_cx", "remaining_pending", "remaining_rq", "remaining_retries", "remaining_cx_pools"} {
		s = append(s, "circuit_breakers.*."+cb)
	}
	s = append(s, requestStats...)
	for _, scope := range []string{"canary.", "internal.", "external.", "zone.*.*."} {
		for _, r := range requestStats {
			s = append(s, scope+r)
		}
	}
	return s
}

// Envoy maps flat Envoy StatsD names (`envoy.cluster.backend.upstream_rq_200`)
// and DogStatsD names (`envoy.cluster.upstream_rq` with tags) to the names
// and labels of Envoy's /stats/prometheus.
type Envoy struct {
	// Prefix is the StatsD prefix the proxy adds ("envoy").
	Prefix   string
	patterns [][]string
}

// NewEnvoy returns the preset with the default "envoy" prefix.
func NewEnvoy() *Envoy {
	e := &Envoy{Prefix: "envoy"}
	for _, p := range ClusterStats {
		e.patterns = append(e.patterns, strings.Split(p, "."))
	}
	return e
}

var (
	reCode      = regexp.MustCompile(`_rq(_(\d{3}))$`)
	reCodeClass = regexp.MustCompile(`_rq_((\d))xx$`)
	reListener  = regexp.MustCompile(`^listener\.(((?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+|[^.]+)\.)`)
	reWorker    = regexp.MustCompile(`^(?:listener\.(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+|[^.]+)|server|listener_manager|thread_local_cluster_manager)\.(worker_(\d+)\.)`)
	reListHTTP  = regexp.MustCompile(`^listener\..*?\.http\.(([^.]+)\.)`)
	reRDS       = regexp.MustCompile(`^http\.[^.]+\.rds\.(([\w\-./]+)\.)\w+?$`)
)

// span is a byte range of the stat name to cut out.
type span struct{ from, to int }

// Map returns the preset's result, or nil when name is not an Envoy stat.
func (e *Envoy) Map(name string, t statsd.Type) *Result {
	stat, ok := strings.CutPrefix(name, e.Prefix+".")
	if !ok || stat == "" {
		return nil
	}
	var cut []span
	var labels []Label
	add := func(tag, value string, from, to int) {
		labels = append(labels, Label{Name: tag, Value: value})
		cut = append(cut, span{from, to})
	}
	if m := reCode.FindStringSubmatchIndex(stat); m != nil {
		add(TagResponseCode, stat[m[4]:m[5]], m[2], m[3])
	} else if m := reCodeClass.FindStringSubmatchIndex(stat); m != nil {
		add(TagResponseCodeClass, stat[m[4]:m[5]], m[2], m[3])
	}
	first, _, _ := strings.Cut(stat, ".")
	switch first {
	case "cluster":
		if from, to, ok := e.clusterName(stat, cut); ok {
			add(TagClusterName, stat[from:to-1], from, to)
		}
	case "http":
		if v, from, ok := segment(stat, 1); ok {
			add(TagHTTPConnManager, v, from, from+len(v)+1)
			for _, sub := range []struct{ word, tag string }{{"user_agent", TagUserAgent}, {"fault", TagFaultCluster}} {
				if w, wf, ok := segment(stat, 2); ok && w == sub.word {
					if v, f, ok := segment(stat, 3); ok && strings.Count(stat[wf:], ".") >= 2 {
						add(sub.tag, v, f, f+len(v)+1)
					}
				}
			}
			if m := reRDS.FindStringSubmatchIndex(stat); m != nil {
				add(TagRDSRouteConfig, stat[m[4]:m[5]], m[2], m[3])
			}
		}
	case "listener":
		if m := reListHTTP.FindStringSubmatchIndex(stat); m != nil {
			add(TagHTTPConnManager, stat[m[4]:m[5]], m[2], m[3])
		}
		if m := reWorker.FindStringSubmatchIndex(stat); m != nil {
			add(TagWorkerID, stat[m[4]:m[5]], m[2], m[3])
		}
		if m := reListener.FindStringSubmatchIndex(stat); m != nil && stat[m[4]:m[5]] != "admin" && strings.Count(stat[m[3]:], ".") >= 0 && m[3] < len(stat) {
			add(TagListenerAddress, stat[m[4]:m[5]], m[2], m[3])
		}
	case "server", "listener_manager", "thread_local_cluster_manager":
		if m := reWorker.FindStringSubmatchIndex(stat); m != nil {
			add(TagWorkerID, stat[m[4]:m[5]], m[2], m[3])
		}
	case "vhost":
		if v, from, ok := segment(stat, 1); ok && strings.Count(stat, ".") >= 2 {
			add(TagVirtualHost, v, from, from+len(v)+1)
			if w, _, ok := segment(stat, 2); ok && (w == "vcluster" || w == "route") {
				if v, f, ok := segment(stat, 3); ok && strings.Count(stat, ".") >= 4 {
					tag := TagVirtualCluster
					if w == "route" {
						tag = TagRoute
					}
					add(tag, v, f, f+len(v)+1)
				}
			}
		}
	case "tcp", "udp", "ratelimit", "mongo", "thrift", "redis", "dns_filter", "connection_limit", "local_rate_limit":
		if v, from, ok := segment(stat, 1); ok && strings.Count(stat, ".") >= 2 {
			add("envoy_"+first+"_prefix", v, from, from+len(v)+1)
		}
	}
	// Cut the extracted values out of the name, in order.
	out := make([]byte, 0, len(stat)+6)
	out = append(out, "envoy_"...)
	sortSpans(cut)
	pos := 0
	for _, c := range cut {
		if c.from < pos {
			continue // overlapping extractors: the first one wins
		}
		out = appendSanitized(out, stat[pos:c.from])
		pos = c.to
	}
	out = appendSanitized(out, stat[pos:])
	r := &Result{
		Matched: true,
		Name:    string(out),
		Help:    DefaultHelp,
		Summary: SummaryOptions{Objectives: defaultObjectives},
	}
	sortLabels(labels)
	r.Labels = labels
	if t.IsObserver() {
		r.Observer = ObserverHistogram
		r.Buckets = EnvoyBuckets
		r.KeepMilliseconds = true
	}
	return r
}

// clusterName finds `<name>.` after "cluster.": the shortest name that leaves
// a known stat, else Envoy's rule (the first segment). No name is extracted
// when the whole rest is already a known stat (DogStatsD input, where the
// cluster name is a tag).
func (e *Envoy) clusterName(stat string, cut []span) (from, to int, ok bool) {
	rest := stat[len("cluster."):]
	// The stat as it reads after the response code is removed.
	end := len(rest)
	for _, c := range cut {
		if c.from-len("cluster.") < end {
			end = c.from - len("cluster.")
		}
	}
	segs := strings.Split(rest[:end], ".")
	if len(segs) < 2 {
		return 0, 0, false
	}
	if e.known(segs) {
		return 0, 0, false
	}
	offset := len("cluster.")
	for i := 1; i < len(segs); i++ {
		if e.known(segs[i:]) {
			n := len(strings.Join(segs[:i], "."))
			return offset, offset + n + 1, true
		}
	}
	return offset, offset + len(segs[0]) + 1, true
}

func (e *Envoy) known(segs []string) bool {
	for _, p := range e.patterns {
		if len(p) != len(segs) {
			continue
		}
		match := true
		for i := range p {
			if p[i] != "*" && p[i] != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// segment returns the i-th dot-separated segment and its offset, if the
// name has more segments after it.
func segment(s string, i int) (string, int, bool) {
	off := 0
	for ; i > 0; i-- {
		j := strings.IndexByte(s[off:], '.')
		if j < 0 {
			return "", 0, false
		}
		off += j + 1
	}
	j := strings.IndexByte(s[off:], '.')
	if j <= 0 {
		return "", 0, false
	}
	return s[off : off+j], off, true
}

func sortSpans(s []span) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].from < s[j-1].from; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func sortLabels(l []Label) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Name < l[j-1].Name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// appendSanitized applies Envoy's Prometheus name sanitising: every byte
// that is not [a-zA-Z0-9_] becomes '_'.
func appendSanitized(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if validByte(s[i]) {
			dst = append(dst, s[i])
		} else {
			dst = append(dst, '_')
		}
	}
	return dst
}
