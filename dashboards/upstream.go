package dashboards

func upstreamClusters(c *catalog, opts Options) board {
	s := scope{vars: []string{VarCluster}}
	st := func(rel string) metric { return c.stat("cluster.{envoy.cluster_name}." + rel) }
	rqTotal := st("upstream_rq_total")
	rqXX := st("upstream_rq_{envoy.response_code_class}xx")
	rqCode := st("upstream_rq_{envoy.response_code}")
	// Rate, success and latency read what the rules record, so the panels
	// and the alerts see the same numbers.
	recCompleted := c.recorded("envoy_cluster", "_completed", "rate")
	rec5xx := c.recorded("envoy_cluster", "_5xx", "rate")
	recTime := c.recorded("envoy_cluster", "_time", "quantile_rate")
	rqTime := st("upstream_rq_time")
	cl := []string{lblCluster}
	leg := "{{" + lblCluster + "}}"
	withLeg := func(prefix string) string { return prefix + " " + leg }
	// Gauges are per proxy: each proxy's view of a cluster is its own.
	nodeCl, nodeLeg := perNode(cl, leg)
	withNodeLeg := func(prefix string) string { return prefix + " " + nodeLeg }
	return board{
		uid: UIDUpstream, file: "upstream-clusters.json", title: "hopwatch / Upstream clusters",
		description: "Service-to-service traffic per upstream cluster: rate, success, latency, response codes, connections, pending requests, retries, timeouts, membership, health checks, outlier ejections and circuit breakers.",
		tags:        []string{"proxy", "envoy", "upstream"},
		vars:        []string{VarCluster},
		anchor:      rqTotal,
		panels: []panel{
			{title: "Upstream request rate", unit: unitReqPerSec, w: 8, links: []link{clusterLink()},
				description: "Requests per second completed by each cluster over 5 minutes (upstream_rq_completed), retries included. Reads the recorded " + recCompleted.name + ", the series the burn-rate alerts read: needs hopwatch's rules.",
				targets:     []target{{c.gauge(s, recCompleted, cl), leg}}},
			{title: "Upstream success rate", unit: unitPercent, w: 8, thresholds: successSteps, min: ptr(0.0), max: ptr(1.0),
				description: "Share of upstream requests over 5 minutes that did not end in a 5xx, per cluster: 1 − the error ratio the burn-rate alerts read (" + rec5xx.name + " / " + recCompleted.name + ", needs hopwatch's rules). Below 99 % is amber, below 95 % red. Retries hide some failures from clients: compare with the retry panel.",
				targets:     []target{{c.recordedSuccess(s, rec5xx, recCompleted, cl), leg}}},
			{title: "Upstream latency p50 / p90 / p99", unit: unitMillis, w: 8, thresholds: latencySteps,
				description: "Quantiles of upstream_rq_time per cluster over 5 minutes: from the request sent upstream to the response's last byte. Amber from 250 ms, red from 1 s. Reads the recorded " + recTime.name + " (needs hopwatch's rules), one series per sink instance. Points are traced requests (exemplars: the latest per latency bucket): click one for its trace in Jaeger. A series' link searches Jaeger for the cluster's spans.",
				links:       []link{jaegerClusterLink(opts)},
				targets: []target{
					{c.recordedQuantile(s, recTime, 0.5), withLeg("p50")},
					{c.recordedQuantile(s, recTime, 0.9), withLeg("p90")},
					{c.recordedQuantile(s, recTime, 0.99), withLeg("p99")},
				},
				exemplars: c.exemplarsOf(s, rqTime)},
			{title: "Responses by code", unit: unitReqPerSec, w: 12,
				description: "Upstream responses per second by exact status code (upstream_rq_<code>).",
				targets:     []target{{c.rate(s, rqCode, []string{lblCluster, lblCode}), "{{" + lblCode + "}} " + leg}}},
			{title: "Responses by class", unit: unitReqPerSec, w: 12,
				description: "Upstream responses per second by status class (upstream_rq_<class>xx).",
				targets:     []target{{c.rate(s, rqXX, []string{lblCluster, lblClass}), "{{" + lblClass + "}}xx " + leg}}},
			{title: "Upstream connections", unit: unitCount, w: 8,
				description: "Open upstream connections (upstream_cx_active) and new connections per second (upstream_cx_total).",
				targets: []target{
					{c.gauge(s, st("upstream_cx_active"), nodeCl), withNodeLeg("active")},
					{c.rate(s, st("upstream_cx_total"), cl), withLeg("new/s")},
				}},
			{title: "Connection failures", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Upstream connection attempts per second that failed (upstream_cx_connect_fail) or timed out (upstream_cx_connect_timeout). Non-zero means the upstream is down or unreachable.",
				targets: []target{
					{c.rate(s, st("upstream_cx_connect_fail"), cl), withLeg("connect fail")},
					{c.rate(s, st("upstream_cx_connect_timeout"), cl), withLeg("connect timeout")},
				}},
			{title: "Connection overflow", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Connections refused per second by the max_connections circuit breaker (upstream_cx_overflow) and by the connection pool (upstream_cx_pool_overflow).",
				targets: []target{
					{c.rate(s, st("upstream_cx_overflow"), cl), withLeg("cx overflow")},
					{c.rate(s, st("upstream_cx_pool_overflow"), cl), withLeg("pool overflow")},
				}},
			{title: "Pending requests", unit: unitCount, w: 8,
				description: "Requests waiting for an upstream connection (upstream_rq_pending_active).",
				targets:     []target{{c.gauge(s, st("upstream_rq_pending_active"), nodeCl), nodeLeg}}},
			{title: "Pending overflow", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Requests failed per second because the pending queue was full (upstream_rq_pending_overflow).",
				targets:     []target{{c.rate(s, st("upstream_rq_pending_overflow"), cl), leg}}},
			{title: "Retries", unit: unitOpsPerSec, w: 8,
				description: "Retries per second (upstream_rq_retry), retries that succeeded (upstream_rq_retry_success) and retries refused by the retry budget or circuit breaker (upstream_rq_retry_overflow).",
				targets: []target{
					{c.rate(s, st("upstream_rq_retry"), cl), withLeg("retry")},
					{c.rate(s, st("upstream_rq_retry_success"), cl), withLeg("retry success")},
					{c.rate(s, st("upstream_rq_retry_overflow"), cl), withLeg("retry overflow")},
				}},
			{title: "Timeouts", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Requests per second that hit the route timeout (upstream_rq_timeout) or a per-try timeout (upstream_rq_per_try_timeout).",
				targets: []target{
					{c.rate(s, st("upstream_rq_timeout"), cl), withLeg("route timeout")},
					{c.rate(s, st("upstream_rq_per_try_timeout"), cl), withLeg("per-try timeout")},
				}},
			{title: "Healthy members", unit: unitPercent, w: 8, thresholds: successSteps, min: ptr(0.0), max: ptr(1.0),
				description: "Share of the cluster's hosts that are healthy (membership_healthy / membership_total). Below 95 % is red: load concentrates on fewer hosts.",
				targets:     []target{{c.gauge(s, st("membership_healthy"), nodeCl) + " / " + c.gauge(s, st("membership_total"), nodeCl), nodeLeg}}},
			{title: "Health check failures", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Active health checks per second that failed (health_check.failure) or failed on the network (health_check.network_failure).",
				targets: []target{
					{c.rate(s, st("health_check.failure"), cl), withLeg("failure")},
					{c.rate(s, st("health_check.network_failure"), cl), withLeg("network failure")},
				}},
			{title: "Outlier ejections", unit: unitCount, w: 8, thresholds: []step{{0, "green"}, {1, "red"}},
				description: "Hosts ejected now by outlier detection (outlier_detection.ejections_active) and ejections enforced per interval (ejections_enforced_total).",
				targets: []target{
					{c.gauge(s, st("outlier_detection.ejections_active"), nodeCl), withNodeLeg("ejected now")},
					{c.increase(s, st("outlier_detection.ejections_enforced_total"), cl), withLeg("enforced")},
				}},
			{title: "Open circuit breakers", unit: unitCount, w: 8, thresholds: []step{{0, "green"}, {1, "red"}},
				description: "Circuit breakers open now at the default priority (circuit_breakers.default.*_open is 1 while open): connections, pending requests, requests, retries.",
				targets: []target{
					{c.gauge(s, st("circuit_breakers.default.cx_open"), nodeCl), withNodeLeg("cx")},
					{c.gauge(s, st("circuit_breakers.default.rq_pending_open"), nodeCl), withNodeLeg("pending")},
					{c.gauge(s, st("circuit_breakers.default.rq_open"), nodeCl), withNodeLeg("rq")},
					{c.gauge(s, st("circuit_breakers.default.rq_retry_open"), nodeCl), withNodeLeg("retry")},
				}},
		},
	}
}
