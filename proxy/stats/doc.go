// Package stats is hopwatch's Envoy-compatible stats store: counters,
// gauges and histograms with Envoy's names, types and tag extraction; the
// metric catalogue; a StatsD/DogStatsD flusher; and the admin /stats and
// /stats/prometheus handlers.
//
// # Hot path
//
// Stats are created from configuration only, by typed constructors
// (Store.ClusterStats, HTTPConnManagerStats, ListenerStats,
// ListenerHTTPStats, ZoneStats, RouteStats, ServerStats) that return structs
// of *Counter, *Gauge and *Histogram. Calling a constructor again with the
// same names returns the same struct, so stats survive reloads. The request
// path then only does atomic adds: no map lookup, no formatting, no regex,
// no allocation. Response codes index a fixed array of counters
// preallocated for every IANA-registered status code (CodeStats.Record);
// any other code is counted in its class (upstream_rq_<N>xx) and in the
// hopwatch-specific counter cluster.<name>.upstream_rq_code_collapsed
// (vhost.<vh>.route.<r>.upstream_rq_code_collapsed for routes), so a flood of
// odd codes cannot grow memory. Preallocated per-code counters are listed
// (in /stats, /stats/prometheus) only once they are non-zero, as Envoy,
// which creates them lazily, would show them.
//
// # Names and tags
//
// Each stat carries three renderings, computed once at creation: the flat
// name (cluster.backend.upstream_rq_200, plain StatsD), the tag-extracted
// name (cluster.upstream_rq, DogStatsD) with its tags in Envoy's extraction
// order (envoy.response_code=200, envoy.cluster_name=backend), and the
// Prometheus name and labels (envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="backend"}).
// They follow Envoy's default tag extractors (well_known_names.cc); since the
// store knows the structure, no regex runs, and names that contain dots keep
// their full value as the tag (Envoy's extractor would take the first
// segment). Like Envoy, ':' in names becomes '_' (listener.127.0.0.1_8080.);
// hopwatch also replaces bytes that would break a StatsD line or label
// (whitespace, | # , @ = " \ and control bytes). Envoy has no extractor for
// zones, so cluster.<c>.zone.<from>.<to>.upstream_rq_200 renders as
// cluster.zone.<from>.<to>.upstream_rq with the cluster and code as tags,
// and envoy_cluster_zone_<from>_<to>_upstream_rq in Prometheus, exactly as
// Envoy does. Catalogue lists every family.
//
// # Cardinality cap
//
// A store holds at most Config.MaxStats stats (default 100 000). Past the
// cap, constructors hand out shared overflow stats that count but are never
// exported, and each refused stat increments stats.overflow.
//
// # Flusher
//
// Every flush interval (default 5s) the Flusher sends counters as deltas
// since the previous flush ("name:delta|c"; zero deltas are skipped) and
// every gauge that was ever set, absolute ("name:value|g"), to each sink.
// Plain StatsD lines use the flat name after the prefix (default "envoy"),
// exactly as Envoy's statsd sink; DogStatsD lines use the tag-extracted name
// and append "|#envoy.cluster_name:backend,…", as Envoy's DogStatsD sink.
// Lines are batched into datagrams of at most max_bytes_per_datagram,
// separated by '\n'; a line is never split (one longer than the limit is
// dropped and counted). UDP is the default; TCP sends newline-terminated
// lines and reconnects with backoff. Send failures never reach the caller:
// they are counted in statsd.send_errors and statsd.lines_dropped and logged
// at most every 30s per sink.
//
// # Histograms: timer and compact
//
// In timer mode (Envoy's behaviour) every sample becomes one "name:v|ms"
// line. Record pushes the sample into a bounded lock-free queue that the
// flusher drains every timer_drain_interval (default 250ms); when the queue
// is full the sample is dropped and statsd.timer_samples_dropped counts it.
//
// In compact mode (a hopwatch improvement) the flusher instead sends, for
// every histogram bucket that received c > 0 samples with value sum s since
// the previous flush, one line
//
//	name:<s/c>|ms|@<rate>
//
// where rate is 1/c truncated (not rounded) to 9 significant digits, so
// that c <= 1/rate < c+1 (for c = 1 the rate is omitted). The mean of
// samples that all lie in one bucket lies in that bucket, so a receiver that
// replays a sampled timer int(1/rate) times (statsd_exporter) or weights it
// by 1/rate and rounds down (hopwatch's statsd-sink) reconstructs, provided
// it uses the same bucket bounds:
//
//   - every bucket's count exactly, hence the total count and every
//     cumulative bucket;
//   - the sum, as c times the mean, exact up to float64 rounding of the
//     mean (relative error below 1e-15).
//
// Truncating matters: rounding 1/3 up to 0.333333334 would make 1/rate
// 2.99999999, and int(1/rate) would lose one sample. For the same reason,
// when 1/c is a short decimal that float64 cannot hold exactly and parses
// a hair high (c = 3125: 0.00032), the rate is written one unit lower in
// the ninth digit (0.000319999999); the rate is verified by parsing it back. A receiver that weights
// by 1/rate without rounding counts c within a relative 1e-8. Quantiles
// within a bucket are not preserved (the receiver sees one value per
// bucket), which is all a bucketed histogram keeps anyway. A flush sends at
// most one line per non-empty bucket, instead of one per sample. DogStatsD
// compact lines are the same with "|#tags" appended.
//
// # Exemplars
//
// Histogram.RecordTraced records a sample of a sampled request with its
// trace ID: the sample becomes its bucket's exemplar (the latest one wins;
// one per bucket), and a timer sink with exemplars appends the ID as the
// line's last section, "name:v|ms[|#tags]|trace_id:<32 hex>". Compact
// lines carry none: each stands for many samples.
//
// # Admin
//
// Store.StatsHandler serves /stats (text, ?format=json, ?filter=<regex>,
// ?usedonly) and Store.PrometheusHandler serves /stats/prometheus, which
// reproduces Envoy's exposition (envoy_ prefix, tag labels, no _total on
// counters, histograms in ms with le buckets, _sum and _count), or
// OpenMetrics with the exemplars for a scraper that asks for it.
//
// # Self stats (hopwatch)
//
// stats.overflow, statsd.timer_samples_dropped, statsd.send_errors,
// statsd.lines_dropped and statsd.lines_sent.
package stats
