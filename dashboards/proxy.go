package dashboards

import "github.com/hopwatch/hopwatch/proxy/stats"

// Stable dashboard uids: links and bookmarks use them, so they never change.
const (
	UIDOverview = "hopwatch-proxy-overview"
	UIDUpstream = "hopwatch-upstream-clusters"
	UIDCanary   = "hopwatch-canary"
	UIDZones    = "hopwatch-zones"
	UIDSink     = "hopwatch-statsd-sink"
)

// Label names, rendered from the catalogue's tag names.
var (
	lblCluster  = promIdent(stats.TagClusterName)
	lblConnMgr  = promIdent(stats.TagHTTPConnManager)
	lblListener = promIdent(stats.TagListenerAddress)
	lblClass    = promIdent(stats.TagResponseCodeClass)
	lblCode     = promIdent(stats.TagResponseCode)
)

// LabelNode is the label that names the emitting proxy: the fixed tag
// node_id (stats_config.stats_tags), which DogStatsD carries to the sink
// and /stats/prometheus shows. Panels that must tell proxies apart group
// by it: gauges, which the sink would otherwise overwrite proxy by proxy
// if they shared a name, and the per-instance panels, where the scrape
// target (instance) is the sink, not the proxy. Series from proxies
// without the tag group under an empty node_id.
const LabelNode = "node_id"

// perNode prefixes groupBy with LabelNode, and a legend with its value.
func perNode(groupBy []string, legend string) ([]string, string) {
	return append([]string{LabelNode}, groupBy...), "{{" + LabelNode + "}} " + legend
}

// Response class matchers: "success" excluding 4xx counts 4xx as success
// (the client's fault); including 4xx counts them as failures.
var (
	classNot5xx  = lblClass + `=~"[1-4]"`
	classNot4or5 = lblClass + `=~"[1-3]"`
)

func proxyOverview(c *catalog, opts Options) board {
	s := scope{vars: []string{VarConnManager}}
	rqTotal := c.stat("http.{envoy.http_conn_manager_prefix}.downstream_rq_total")
	rqXX := c.stat("http.{envoy.http_conn_manager_prefix}.downstream_rq_{envoy.response_code_class}xx")
	// Rate, 5xx success and latency read what the rules record, so the
	// panels and the alerts see the same numbers.
	recCompleted := c.recorded("envoy_http", "_completed", "rate")
	rec5xx := c.recorded("envoy_http", "_5xx", "rate")
	recTime := c.recorded("envoy_http", "_time", "quantile_rate")
	rqTime := c.stat("http.{envoy.http_conn_manager_prefix}.downstream_rq_time")
	cxActive := c.stat("http.{envoy.http_conn_manager_prefix}.downstream_cx_active")
	rqActive := c.stat("http.{envoy.http_conn_manager_prefix}.downstream_rq_active")
	lsnXX := c.stat("listener.{envoy.listener_address}.http.{envoy.http_conn_manager_prefix}.downstream_rq_{envoy.response_code_class}xx")
	lsnCx := c.stat("listener.{envoy.listener_address}.downstream_cx_active")
	lsnOverflow := c.stat("listener.{envoy.listener_address}.downstream_cx_overflow")
	cm := []string{lblConnMgr}
	nodeCM, nodeCMLeg := perNode(cm, "{{"+lblConnMgr+"}}")
	nodeLsn, nodeLsnLeg := perNode([]string{lblListener}, "{{"+lblListener+"}}")
	ratio := func(num, den string) string { return num + " / " + den }
	return board{
		uid: UIDOverview, file: "proxy-overview.json", title: "hopwatch / Proxy overview",
		description: "Downstream traffic through every hopwatch proxy: rate, success, latency, concurrency and response classes, per listener, connection manager prefix and instance.",
		tags:        []string{"proxy", "envoy"},
		vars:        []string{VarConnManager},
		anchor:      rqTotal,
		panels: []panel{
			{title: "Downstream request rate", unit: unitReqPerSec, w: 8,
				description: "Requests per second completed by each HTTP connection manager over 5 minutes (http.<prefix>.downstream_rq_completed). Reads the recorded " + recCompleted.name + ", the series the burn-rate alerts read: needs hopwatch's rules.",
				targets:     []target{{c.gauge(s, recCompleted, cm), "{{" + lblConnMgr + "}}"}}},
			{title: "Success rate (4xx count as success)", unit: unitPercent, w: 8, thresholds: successSteps, min: ptr(0.0), max: ptr(1.0),
				description: "Share of requests over 5 minutes that did not end in a 5xx: the proxy's and upstreams' own failures. 1 − the error ratio the burn-rate alerts read (" + rec5xx.name + " / " + recCompleted.name + ", needs hopwatch's rules). Below 99 % is amber, below 95 % red.",
				targets:     []target{{c.recordedSuccess(s, rec5xx, recCompleted, cm), "{{" + lblConnMgr + "}}"}}},
			{title: "Success rate (4xx count as failure)", unit: unitPercent, w: 8, thresholds: successSteps, min: ptr(0.0), max: ptr(1.0),
				description: "Share of responses that are 1xx–3xx, over the dashboard's rate interval (no rule records 4xx). A gap to the panel on the left is client errors (4xx): bad requests, missing routes, rate limits.",
				targets:     []target{{ratio(c.rate(s, rqXX, cm, classNot4or5), c.rate(s, rqXX, cm)), "{{" + lblConnMgr + "}}"}}},
			{title: "Downstream latency p50 / p90 / p99", unit: unitMillis, w: 12, thresholds: latencySteps,
				description: "Quantiles of downstream_rq_time over 5 minutes, from the first byte received to the last byte sent, per connection manager. Amber from 250 ms, red from 1 s. Reads the recorded " + recTime.name + " (needs hopwatch's rules), one series per sink instance. Points are traced requests (exemplars: the latest per latency bucket): click one for its trace in Jaeger.",
				targets: []target{
					{c.recordedQuantile(s, recTime, 0.5), "p50 {{" + lblConnMgr + "}}"},
					{c.recordedQuantile(s, recTime, 0.9), "p90 {{" + lblConnMgr + "}}"},
					{c.recordedQuantile(s, recTime, 0.99), "p99 {{" + lblConnMgr + "}}"},
				},
				exemplars: c.exemplarsOf(s, rqTime)},
			{title: "Responses by code class", unit: unitReqPerSec, w: 12,
				description: "Responses per second by status class (downstream_rq_1xx … 5xx). 5xx are the proxy's or upstreams' failures, 4xx the clients'.",
				targets:     []target{{c.rate(s, rqXX, []string{lblConnMgr, lblClass}), "{{" + lblClass + "}}xx {{" + lblConnMgr + "}}"}}},
			{title: "Active downstream connections", unit: unitCount, w: 8,
				description: "Open downstream connections per proxy (node_id) and connection manager (downstream_cx_active).",
				targets:     []target{{c.gauge(s, cxActive, nodeCM), nodeCMLeg}}},
			{title: "Active downstream requests", unit: unitCount, w: 8,
				description: "Requests in flight per proxy (node_id) and connection manager (downstream_rq_active). Growth without more traffic means a slow upstream.",
				targets:     []target{{c.gauge(s, rqActive, nodeCM), nodeCMLeg}}},
			{title: "Requests per instance", unit: unitReqPerSec, w: 8,
				description: "Requests per second by emitting proxy (node_id, its stats_tags fixed tag) and connection manager, to spot one proxy taking more than its share. Behind statsd-sink the scrape target (instance) is the sink, so node_id is what names the proxy.",
				targets:     []target{{c.rate(s, rqTotal, nodeCM), nodeCMLeg}}},
			{title: "Responses per listener", unit: unitReqPerSec, w: 8,
				description: "Responses per second by listener address and status class (listener.<address>.http.<prefix>.downstream_rq_<class>xx).",
				targets:     []target{{c.rate(s, lsnXX, []string{lblListener, lblClass}), "{{" + lblListener + "}} {{" + lblClass + "}}xx"}}},
			{title: "Active connections per listener", unit: unitCount, w: 8,
				description: "Open connections per proxy (node_id) and listener address (listener.<address>.downstream_cx_active).",
				targets:     []target{{c.gauge(s, lsnCx, nodeLsn), nodeLsnLeg}}},
			{title: "Listener connection overflow", unit: unitOpsPerSec, w: 8, thresholds: []step{{0, "green"}, {0.001, "red"}},
				description: "Connections refused per second because the listener reached max_connections (downstream_cx_overflow). Anything above zero means clients are being turned away.",
				targets:     []target{{c.rate(s, lsnOverflow, []string{lblListener}), "{{" + lblListener + "}}"}}},
		},
	}
}
