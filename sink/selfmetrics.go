package sink

// SelfMetric names one of the sink's own metrics, as served on /metrics.
// Dashboards and alerts build their queries from SelfMetrics rather than
// from typed strings, and a test keeps the list equal to what the sink
// really exports.
type SelfMetric struct {
	// Name is the Prometheus metric name (counters end in _total).
	Name string
	// Counter is true for counters, false for gauges.
	Counter bool
	// Labels are the metric's label names (none for most).
	Labels []string
}

// SelfMetrics returns the sink's self-metrics in exposition order, without
// the relay metrics (they exist only with --statsd.relay.address). The
// caller owns the returned slice.
func SelfMetrics() []SelfMetric {
	c := func(name string, labels ...string) SelfMetric {
		return SelfMetric{Name: name, Counter: true, Labels: labels}
	}
	g := func(name string, labels ...string) SelfMetric { return SelfMetric{Name: name, Labels: labels} }
	return []SelfMetric{
		c("statsd_exporter_lines_total"),
		c("statsd_exporter_samples_total"),
		c("statsd_exporter_tags_total"),
		c("statsd_exporter_tag_errors_total"),
		c("statsd_exporter_sample_errors_total", "reason"),
		c("statsd_exporter_udp_packets_total"),
		c("statsd_exporter_udp_packet_drops_total"),
		c("statsd_exporter_unixgram_packets_total"),
		c("statsd_exporter_tcp_connections_total"),
		c("statsd_exporter_tcp_connection_errors_total"),
		c("statsd_exporter_tcp_too_long_lines_total"),
		c("statsd_exporter_events_total", "type"),
		c("statsd_exporter_events_actions_total", "action"),
		c("statsd_exporter_events_unmapped_total"),
		c("statsd_exporter_events_error_total", "reason"),
		c("statsd_exporter_events_conflict_total", "type", "metric_name"),
		c("statsd_exporter_config_reloads_total", "outcome"),
		g("statsd_exporter_loaded_mappings"),
		c("statsd_sink_udp_kernel_drops_total"),
		c("statsd_sink_udp_truncated_total"),
		c("statsd_sink_dropped_samples_total", "stage"),
		g("statsd_sink_series"),
		g("statsd_sink_metric_families"),
		c("statsd_sink_cardinality_overflow_total", "limit", "metric_name"),
		c("statsd_sink_scrapes_total"),
		c("statsd_sink_scrape_duration_seconds_total"),
		g("statsd_sink_last_scrape_duration_seconds"),
	}
}

// LookupSelfMetric returns the self-metric called name.
func LookupSelfMetric(name string) (SelfMetric, bool) {
	for _, m := range SelfMetrics() {
		if m.Name == name {
			return m, true
		}
	}
	return SelfMetric{}, false
}
