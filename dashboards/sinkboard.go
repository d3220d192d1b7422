package dashboards

import "fmt"

func errNotCounter(m metric) error {
	return fmt.Errorf("dashboards: rate over %s, which is a %s, not a counter", m.name, m.kind)
}

func statsdSink(c *catalog) board {
	s := scope{}
	lines := c.self("statsd_exporter_lines_total")
	return board{
		uid: UIDSink, file: "statsd-sink.json", title: "hopwatch / statsd-sink",
		description: "The statsd-sink itself: what it receives, what it drops and why, how many series it holds, and how it serves scrapes and reloads.",
		tags:        []string{"statsd-sink"},
		anchor:      lines,
		panels: []panel{
			{title: "Lines per second", unit: unitOpsPerSec, w: 8,
				description: "StatsD lines received per second (statsd_exporter_lines_total), all transports.",
				targets:     []target{{c.rate(s, lines, []string{VarInstance}), "{{" + VarInstance + "}}"}}},
			{title: "Packets per second", unit: unitOpsPerSec, w: 8,
				description: "UDP datagrams (statsd_exporter_udp_packets_total) and unixgram datagrams received per second, and TCP connections accepted per second.",
				targets: []target{
					{c.rate(s, c.self("statsd_exporter_udp_packets_total"), []string{VarInstance}), "udp {{" + VarInstance + "}}"},
					{c.rate(s, c.self("statsd_exporter_unixgram_packets_total"), []string{VarInstance}), "unixgram {{" + VarInstance + "}}"},
					{c.rate(s, c.self("statsd_exporter_tcp_connections_total"), []string{VarInstance}), "tcp connections {{" + VarInstance + "}}"},
				}},
			{title: "Series", unit: unitCount, w: 8,
				description: "Live series (statsd_sink_series, overflow series included) and metric names (statsd_sink_metric_families).",
				targets: []target{
					{c.gauge(s, c.self("statsd_sink_series"), []string{VarInstance}), "series {{" + VarInstance + "}}"},
					{c.gauge(s, c.self("statsd_sink_metric_families"), []string{VarInstance}), "metric names {{" + VarInstance + "}}"},
				}},
			{title: "Drops by stage", unit: unitOpsPerSec, w: 12, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Samples dropped per second by pipeline stage (statsd_sink_dropped_samples_total: parse, mapping, conflict, budget, invalid) and datagrams the kernel dropped (statsd_sink_udp_kernel_drops_total).",
				targets: []target{
					{c.rate(s, c.self("statsd_sink_dropped_samples_total"), []string{"stage"}), "{{stage}}"},
					{c.rate(s, c.self("statsd_sink_udp_kernel_drops_total"), nil), "kernel"},
				}},
			{title: "Sample errors by reason", unit: unitOpsPerSec, w: 12,
				description: "Lines that failed to parse, per second, by reason (statsd_exporter_sample_errors_total). Look here first when a metric is missing.",
				targets:     []target{{c.rate(s, c.self("statsd_exporter_sample_errors_total"), []string{"reason"}), "{{reason}}"}}},
			{title: "Cardinality overflows", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Samples per second beyond a cardinality budget, by limit (global or per family) and metric name (statsd_sink_cardinality_overflow_total).",
				targets:     []target{{c.rate(s, c.self("statsd_sink_cardinality_overflow_total"), []string{"limit", "metric_name"}), "{{limit}} {{metric_name}}"}}},
			{title: "Scrape duration", unit: unitSeconds, w: 8,
				description: "Average time to serve /metrics (rate of statsd_sink_scrape_duration_seconds_total over rate of statsd_sink_scrapes_total) and the previous scrape's duration.",
				targets: []target{
					{c.rate(s, c.self("statsd_sink_scrape_duration_seconds_total"), []string{VarInstance}) + " / " + c.rate(s, c.self("statsd_sink_scrapes_total"), []string{VarInstance}), "average {{" + VarInstance + "}}"},
					{c.gauge(s, c.self("statsd_sink_last_scrape_duration_seconds"), []string{VarInstance}), "last {{" + VarInstance + "}}"},
				}},
			{title: "Config reloads", unit: unitCount, w: 8, thresholds: []step{{0, "green"}, {1, "red"}},
				description: "Mapping reloads by outcome over the interval (statsd_exporter_config_reloads_total). A failure keeps the old mapping; the sink's log says why.",
				targets:     []target{{c.increase(s, c.self("statsd_exporter_config_reloads_total"), []string{"outcome"}), "{{outcome}}"}}},
		},
	}
}
