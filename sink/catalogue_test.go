package sink

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// fillTemplate replaces {placeholders} in a catalogue template; with
// sanitize, values get Envoy's Prometheus name sanitising (zones in
// Prometheus names).
func fillTemplate(tmpl string, values map[string]string, sanitize bool) string {
	return stats.FillPlaceholders(tmpl, func(name string) string {
		v := values[name]
		if sanitize {
			v = strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
					return r
				}
				return '_'
			}, v)
		}
		return v
	})
}

// TestEnvoyPresetMapsCatalogue renders, for every family of the proxy's
// stats catalogue, the plain StatsD line and the DogStatsD line the proxy's
// flusher sends (prefix "envoy"; see proxy/stats/flusher.go: flat name, or
// tag-extracted name plus |#tag:value,… in the catalogue's tag order), runs
// both through the sink with --preset=envoy, and requires exactly the
// catalogue's Prometheus name and labels; a DogStatsD line with a fixed
// tag (node_id) must keep it as one more label.
func TestEnvoyPresetMapsCatalogue(t *testing.T) {
	// The second set has an IPv6 listener address: the proxy keeps its
	// brackets ([__1]_8443), which SignalFX tag parsing (on by default, as
	// in statsd_exporter) would take for tags, so it runs with SignalFX
	// parsing off, as the sink must be run for IPv6 listeners.
	noSignalFX := statsd.NewParser()
	noSignalFX.SignalFX = false
	parsers := []statsd.Parser{statsd.NewParser(), noSignalFX}
	valueSets := []map[string]string{
		{
			stats.TagClusterName: "backend", stats.TagResponseCode: "200", stats.TagResponseCodeClass: "2",
			stats.TagHTTPConnManager: "ingress_http", stats.TagListenerAddress: "0.0.0.0_10000",
			stats.TagVirtualHost: "vh", stats.TagRoute: "api", stats.ParamFromZone: "a", stats.ParamToZone: "b",
			stats.TagLocalHTTPRateLimitPrefix: "http_local_rate_limiter", stats.TagTLSCertificate: "front-proxy",
		},
		{
			// Dotted names are kept whole; zones are sanitised in the name.
			stats.TagClusterName: "svc.ns.svc.cluster.local", stats.TagResponseCode: "503", stats.TagResponseCodeClass: "5",
			stats.TagHTTPConnManager: "egress-http", stats.TagListenerAddress: "[__1]_8443",
			stats.TagVirtualHost: "my.vhost", stats.TagRoute: "api.v1", stats.ParamFromZone: "us-east-1a", stats.ParamToZone: "us-east-1b",
			stats.TagLocalHTTPRateLimitPrefix: "cluster", stats.TagTLSCertificate: "/var/run/hopwatch/front-proxy.crt",
		},
	}
	m, err := mapping.Load(mapping.Options{Preset: "envoy"})
	if err != nil {
		t.Fatal(err)
	}
	fams := stats.Catalogue()
	if len(fams) < 100 {
		t.Fatalf("catalogue has %d families; expected the proxy's full set", len(fams))
	}
	for vi, vals := range valueSets {
		for _, f := range fams {
			typ := map[stats.Kind]string{stats.KindCounter: "c", stats.KindGauge: "g", stats.KindHistogram: "ms"}[f.Kind]
			wantName := fillTemplate(f.PrometheusName, vals, true)
			var wantLabels []aggregate.Label
			var dogTags []string
			for i, tag := range f.Tags {
				wantLabels = append(wantLabels, aggregate.Label{Name: f.PrometheusLabels[i], Value: vals[tag]})
				dogTags = append(dogTags, tag+":"+vals[tag])
			}
			slices.SortFunc(wantLabels, func(a, b aggregate.Label) int { return strings.Compare(a.Name, b.Name) })
			flat := "envoy." + fillTemplate(f.Name, vals, false) + ":7|" + typ
			dog := "envoy." + fillTemplate(f.TagExtractedName, vals, false) + ":7|" + typ
			if len(dogTags) > 0 {
				dog += "|#" + strings.Join(dogTags, ",")
			}
			// A proxy with a fixed tag (stats_config.stats_tags) appends
			// it to the DogStatsD tags; the preset keeps it as a label.
			sep := ","
			if len(dogTags) == 0 {
				sep = "|#"
			}
			tagged := dog + sep + "node_id:front-proxy"
			withNode := append(slices.Clone(wantLabels), aggregate.Label{Name: "node_id", Value: "front-proxy"})
			slices.SortFunc(withNode, func(a, b aggregate.Label) int { return strings.Compare(a.Name, b.Name) })
			for _, c := range []struct {
				line   string
				labels []aggregate.Label
			}{{flat, wantLabels}, {dog, wantLabels}, {tagged, withNode}} {
				name, labels, err := mapLine(parsers[vi], m, c.line)
				if err != nil {
					t.Errorf("%s (family %s): %v", c.line, f.Name, err)
					continue
				}
				if name != wantName || fmt.Sprint(labels) != fmt.Sprint(c.labels) {
					t.Errorf("%s (family %s)\n got %s%v\nwant %s%v", c.line, f.Name, name, labels, wantName, c.labels)
				}
			}
		}
	}
}

// mapLine ingests one line into a fresh store and returns the one series
// its sample went to (the others the line created are its entity's
// families at 0, see TestEntityFamiliesAtZero).
func mapLine(parser statsd.Parser, m *mapping.Mapper, line string) (string, []aggregate.Label, error) {
	store := aggregate.New(aggregate.Options{Shards: 1})
	p := NewPipeline(parser, m, store, NewMetrics(nil), nil, 16)
	p.NewWorker().HandleLine([]byte(line))
	var name string
	var labels []aggregate.Label
	n := 0
	for _, f := range store.Snapshot() {
		for _, se := range f.Series {
			if se.Value != 0 || se.Count != 0 {
				name, labels = f.Name, se.Labels
				n++
			}
		}
	}
	if n != 1 {
		return "", nil, fmt.Errorf("want one series with the sample, got %d", n)
	}
	return name, labels, nil
}

// TestEntityFamiliesAtZero: the first series of a cluster (here a
// per-code counter from a DogStatsD line with a node_id tag) brings every
// counter and histogram family the catalogue defines for a cluster, at 0,
// with the cluster's and node's labels and without the code; within the
// zero limit, and not again for the next series of the same cluster.
func TestEntityFamiliesAtZero(t *testing.T) {
	m, err := mapping.Load(mapping.Options{Preset: "envoy"})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, f := range stats.Catalogue() {
		if f.Kind != stats.KindGauge && slices.Equal(f.Tags, []string{stats.TagClusterName}) && !strings.Contains(f.PrometheusName, "{") {
			want++
		}
	}
	if want < 50 {
		t.Fatalf("the catalogue has %d cluster counter and histogram families; expected the proxy's full set", want)
	}
	node := aggregate.Label{Name: "node_id", Value: "p"}
	cl := aggregate.Label{Name: "envoy_cluster_name", Value: "b"}

	store := aggregate.New(aggregate.Options{Shards: 1})
	p := NewPipeline(statsd.NewParser(), m, store, NewMetrics(nil), nil, 16)
	w := p.NewWorker()
	w.HandleLine([]byte("envoy.cluster.upstream_rq:1|c|#envoy.response_code:503,envoy.cluster_name:b,node_id:p"))
	if got := store.Len(); got != 1+want {
		t.Errorf("%d series after one line, want it and %d families at 0", got, want)
	}
	byName := map[string]aggregate.FamilySnapshot{}
	for _, f := range store.Snapshot() {
		byName[f.Name] = f
	}
	for _, name := range []string{"envoy_cluster_upstream_cx_connect_fail", "envoy_cluster_upstream_rq_retry", "envoy_cluster_upstream_rq_timeout", "envoy_cluster_upstream_rq_time", "envoy_cluster_upstream_cx_connect_ms"} {
		f, ok := byName[name]
		if !ok || len(f.Series) != 1 {
			t.Errorf("%s: not created at 0 (%+v)", name, f)
			continue
		}
		se := f.Series[0]
		if fmt.Sprint(se.Labels) != fmt.Sprint([]aggregate.Label{cl, node}) || se.Value != 0 || se.Count != 0 {
			t.Errorf("%s = %+v, want 0 with labels %v", name, se, []aggregate.Label{cl, node})
		}
	}
	if f := byName["envoy_cluster_upstream_rq_time"]; f.Kind != aggregate.KindHistogram || !slices.Equal(f.Buckets, mapping.EnvoyBuckets) {
		t.Errorf("envoy_cluster_upstream_rq_time is a %v with buckets %v, want a histogram with Envoy's", f.Kind, f.Buckets)
	}
	if _, ok := byName["envoy_cluster_membership_healthy"]; ok {
		t.Error("a gauge was created at 0: a gauge's 0 would be a false reading")
	}

	// The next series of the cluster adds only itself.
	w.HandleLine([]byte("envoy.cluster.upstream_rq:1|c|#envoy.response_code:200,envoy.cluster_name:b,node_id:p"))
	if got := store.Len(); got != 2+want {
		t.Errorf("%d series after a second code, want %d", got, 2+want)
	}

	// The zero limit bounds them: by default half the global budget.
	small := aggregate.New(aggregate.Options{Shards: 1, MaxSeries: 20})
	p = NewPipeline(statsd.NewParser(), m, small, NewMetrics(nil), nil, 16)
	w = p.NewWorker()
	w.HandleLine([]byte("envoy.cluster.upstream_rq:1|c|#envoy.response_code:503,envoy.cluster_name:b"))
	w.HandleLine([]byte("envoy.cluster.upstream_rq:1|c|#envoy.response_code:503,envoy.cluster_name:c"))
	if got := small.Len(); got != 11 {
		t.Errorf("with a global budget of 20, %d series; want 10 (half) and then only the second line's", got)
	}
	p.SetZeroSeriesLimit(0)
	w.HandleLine([]byte("envoy.cluster.upstream_rq:1|c|#envoy.response_code:503,envoy.cluster_name:d"))
	if got := small.Len(); got != 12 {
		t.Errorf("with zeros off, %d series; want one more", got)
	}
}
