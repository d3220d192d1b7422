package dashboards

// lblZonePair is the label the zone panels put "<from>_<to>" in: Envoy
// keeps zone names inside the metric name, and since '-' and '.' in zone
// names become '_' there, the pair cannot be split reliably into two.
const lblZonePair = "zone_pair"

func zones(c *catalog, _ Options) board {
	s := scope{vars: []string{VarCluster}}
	st := func(rel string) metric { return c.stat("cluster.{envoy.cluster_name}." + rel) }
	zoneDone := st("zone.{from_zone}.{to_zone}.upstream_rq_completed")
	cl := []string{lblCluster}
	leg := "{{" + lblCluster + "}}"
	pattern := namePattern(zoneDone.name)
	// rate() drops __name__, so the pair is copied into a label first and
	// rated through a subquery.
	pairRate := func(groupBy []string) string {
		if zoneDone.kind.String() != "counter" {
			c.errs = append(c.errs, errNotCounter(zoneDone))
		}
		return "sum" + by(groupBy) + " (rate(label_replace(" + s.selector(zoneDone, "") +
			`, "` + lblZonePair + `", "$1_$2", "__name__", "` + pattern + `")[` + RateInterval + ":]))"
	}
	directly := st("lb_zone_routing_all_directly")
	sampled := st("lb_zone_routing_sampled")
	cross := st("lb_zone_routing_cross_zone")
	// A cluster has series only for the decisions it made: one that always
	// routes directly has no cross_zone series, one in residual mode no
	// all_directly. "a or b*0 or c*0" fills a missing term with 0 wherever
	// another term exists, so the share is 0 rather than absent, and one
	// missing counter does not hide the others.
	anyOf := func(first, second, third metric) string {
		return "(" + c.rate(s, first, cl) + " or " + c.rate(s, second, cl) + " * 0 or " + c.rate(s, third, cl) + " * 0)"
	}
	crossShare := anyOf(cross, directly, sampled) + " / (" + anyOf(directly, sampled, cross) + " + " +
		anyOf(sampled, directly, cross) + " + " + anyOf(cross, directly, sampled) + ")"
	return board{
		uid: UIDZones, file: "zones.json", title: "hopwatch / Zones",
		description: "Zone-aware routing: the request matrix from the proxy's zone to the upstream's zone, the share that crosses zones, and Envoy's zone-routing counters.",
		tags:        []string{"proxy", "envoy", "zones"},
		vars:        []string{VarCluster},
		anchor:      st("upstream_rq_total"),
		panels: []panel{
			{title: "Request matrix, zone to zone", unit: unitReqPerSec, w: 12, viz: vizStat,
				description: "Requests per second for each (from zone, to zone) pair per cluster (cluster.<c>.zone.<from>.<to>.upstream_rq_completed). The pair is shown as <from>_<to>.",
				targets:     []target{{pairRate([]string{lblCluster, lblZonePair}), "{{" + lblZonePair + "}} " + leg}}},
			{title: "Cross-zone share", unit: unitPercent, w: 12, min: ptr(0.0), max: ptr(1.0), thresholds: []step{{0, "green"}, {0.2, "orange"}, {0.5, "red"}},
				description: "Share of zone-routing decisions that sent the request to another zone (lb_zone_routing_cross_zone over all_directly + sampled + cross_zone). Cross-zone traffic costs latency and money; red from 50 %.",
				targets:     []target{{crossShare, leg}}},
			{title: "Zone pair request rate", unit: unitReqPerSec, w: 12,
				description: "The zone matrix over time, one series per pair.",
				targets:     []target{{pairRate([]string{lblCluster, lblZonePair}), "{{" + lblZonePair + "}} " + leg}}},
			{title: "Zone routing counters", unit: unitOpsPerSec, w: 12,
				description: "Envoy's zone-aware routing decisions per second: all directly to the local zone, sampled, cross zone; and why it was off: cluster too small, no capacity left, local cluster not ok.",
				targets: []target{
					{c.rate(s, directly, cl), "all directly " + leg},
					{c.rate(s, sampled, cl), "sampled " + leg},
					{c.rate(s, cross, cl), "cross zone " + leg},
					{c.rate(s, st("lb_zone_cluster_too_small"), cl), "cluster too small " + leg},
					{c.rate(s, st("lb_zone_no_capacity_left"), cl), "no capacity left " + leg},
					{c.rate(s, st("lb_local_cluster_not_ok"), cl), "local cluster not ok " + leg},
				}},
		},
	}
}
