package dashboards

import "strconv"

func canary(c *catalog, opts Options) board {
	s := scope{vars: []string{VarCluster}}
	st := func(rel string) metric { return c.stat("cluster.{envoy.cluster_name}." + rel) }
	allXX := st("upstream_rq_{envoy.response_code_class}xx")
	canXX := st("canary.upstream_rq_{envoy.response_code_class}xx")
	allDone := st("upstream_rq_completed")
	canDone := st("canary.upstream_rq_completed")
	allTime := st("upstream_rq_time")
	canTime := st("canary.upstream_rq_time")
	cl := []string{lblCluster}
	leg := "{{" + lblCluster + "}}"

	// The cluster-wide stats count canary hosts too (as Envoy's do), so
	// the primary is the cluster minus its canary.
	canaryErr := "1 - (" + c.rate(s, canXX, cl, classNot5xx) + " / " + c.rate(s, canXX, cl) + ")"
	primaryErr := "1 - ((" + c.rate(s, allXX, cl, classNot5xx) + " - " + c.rate(s, canXX, cl, classNot5xx) + ") / (" +
		c.rate(s, allXX, cl) + " - " + c.rate(s, canXX, cl) + "))"
	canaryQ := func(q float64) string { return c.quantile(s, q, canTime, cl) }
	primaryQ := func(q float64) string {
		byLe := []string{"le", lblCluster}
		return "histogram_quantile(" + strconv.FormatFloat(q, 'f', -1, 64) + ", " +
			c.rateBuckets(s, allTime, byLe) + " - " + c.rateBuckets(s, canTime, byLe) + ")"
	}
	return board{
		uid: UIDCanary, file: "canary.json", title: "hopwatch / Canary and blue-green",
		description: "Canary hosts (endpoints marked canary: true) against the rest of their cluster: error rate, latency quantiles and traffic share, with the differences highlighted.",
		tags:        []string{"proxy", "envoy", "canary"},
		vars:        []string{VarCluster},
		anchor:      allDone,
		panels: []panel{
			{title: "Error rate: canary vs primary", unit: unitPercent, w: 12, thresholds: errorSteps, min: ptr(0.0), links: []link{clusterLink()},
				description: "Share of 5xx responses from the canary hosts (canary.upstream_rq_<class>xx) and from the other hosts of the cluster (cluster minus canary). Amber from 1 %, red from 5 %.",
				targets:     []target{{canaryErr, "canary " + leg}, {primaryErr, "primary " + leg}}},
			{title: "Error rate difference (canary − primary)", unit: unitPercent, w: 6, h: 8, viz: vizStat, thresholds: []step{{0, "green"}, {0.005, "orange"}, {0.02, "red"}},
				description: "How many percentage points more 5xx the canary returns than the primary. Red from 2 points: stop the rollout.",
				targets:     []target{{"(" + canaryErr + ") - (" + primaryErr + ")", leg}}},
			{title: "Traffic share of the canary", unit: unitPercent, w: 6, h: 8, viz: vizStat, min: ptr(0.0), max: ptr(1.0),
				description: "Share of the cluster's completed requests that went to canary hosts (canary.upstream_rq_completed / upstream_rq_completed). Compare with the configured weight.",
				targets:     []target{{c.rate(s, canDone, cl) + " / " + c.rate(s, allDone, cl), leg}}},
			{title: "Latency: canary vs primary (p50 / p99)", unit: unitMillis, w: 12, thresholds: latencySteps,
				description: "Quantiles of upstream_rq_time for canary hosts (canary.upstream_rq_time) and for the rest of the cluster (bucket rates of the cluster minus the canary). Points are traced requests of the cluster (exemplars: the latest per latency bucket): click one for its trace in Jaeger. A series' link searches Jaeger for the cluster's spans.",
				links:       []link{jaegerClusterLink(opts)},
				targets: []target{
					{canaryQ(0.5), "canary p50 " + leg}, {canaryQ(0.99), "canary p99 " + leg},
					{primaryQ(0.5), "primary p50 " + leg}, {primaryQ(0.99), "primary p99 " + leg},
				},
				exemplars: c.exemplarsOf(s, allTime)},
			{title: "p99 latency difference (canary − primary)", unit: unitMillis, w: 12, viz: vizStat, thresholds: []step{{0, "green"}, {50, "orange"}, {200, "red"}},
				description: "How much slower the canary's p99 is than the primary's. Red from 200 ms.",
				targets:     []target{{"(" + canaryQ(0.99) + ") - (" + primaryQ(0.99) + ")", leg}}},
		},
	}
}

// rateBuckets is sum by (labels) (rate(histogram_bucket[$__rate_interval])).
func (c *catalog) rateBuckets(s scope, m metric, groupBy []string) string {
	return "sum" + by(groupBy) + " (rate(" + s.selector(m, "_bucket") + "[" + RateInterval + "]))"
}
