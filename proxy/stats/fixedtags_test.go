package stats

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

var nodeTag = []Tag{{Name: "node_id", Value: "front-proxy"}}

// TestFixedTagsOnEveryStat: with a fixed tag, every series of
// /stats/prometheus has it as a label (after the extracted ones, with the
// same values as without it), and flat names (/stats) do not change.
func TestFixedTagsOnEveryStat(t *testing.T) {
	plain, tagged := newTestStore(t, Config{}), newTestStore(t, Config{FixedTags: nodeTag})
	scriptedTraffic(plain)
	scriptedTraffic(tagged)

	_, pb := get(t, plain.PrometheusHandler(), "/stats/prometheus")
	_, tb := get(t, tagged.PrometheusHandler(), "/stats/prometheus")
	pf, tf := parseProm(t, pb), parseProm(t, tb)
	if len(pf) != len(tf) {
		t.Fatalf("%d families with the fixed tag, %d without", len(tf), len(pf))
	}
	series := 0
	for name, f := range tf {
		for _, m := range f.Metric {
			want := map[string]string{}
			node := ""
			for _, l := range m.Label {
				if l.GetName() == "node_id" {
					node = l.GetValue()
					continue
				}
				want[l.GetName()] = l.GetValue()
			}
			if node != "front-proxy" {
				t.Errorf("%s%v: node_id %q, want front-proxy", name, m.Label, node)
				continue
			}
			// The same series without the tag, with the same value.
			w := promValue(t, pf, name, want)
			if m.GetCounter().GetValue() != w.GetCounter().GetValue() || m.GetGauge().GetValue() != w.GetGauge().GetValue() ||
				m.GetHistogram().GetSampleCount() != w.GetHistogram().GetSampleCount() || m.GetHistogram().GetSampleSum() != w.GetHistogram().GetSampleSum() {
				t.Errorf("%s%v: value differs from the untagged store's", name, want)
			}
			series++
		}
	}
	if series < 50 {
		t.Fatalf("only %d series checked", series)
	}
	if !strings.Contains(tb, `envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="backend",node_id="front-proxy"} `) {
		t.Errorf("the fixed tag is not the last label of envoy_cluster_upstream_rq:\n%s", tb)
	}

	_, ps := get(t, plain.StatsHandler(), "/stats")
	_, ts := get(t, tagged.StatsHandler(), "/stats")
	if ps != ts {
		t.Errorf("/stats changed with a fixed tag: flat names must not")
	}
}

// TestFixedTagsDogStatsD: a DogStatsD sink appends the fixed tags to each
// line's tags (a stat without extracted tags gets them alone); a plain
// StatsD sink sends exactly what it sends without them, and the flusher
// warns that it cannot carry them.
func TestFixedTagsDogStatsD(t *testing.T) {
	s := newTestStore(t, Config{FixedTags: append(nodeTag, Tag{Name: "service.cluster", Value: "edge"})})
	scriptedTraffic(s)
	dog, flat := newUDPServer(t), newUDPServer(t)
	var logs bytes.Buffer
	f, err := NewFlusher(s, FlusherConfig{Sinks: []SinkConfig{
		{Type: SinkDogStatsD, Address: dog.addr(), Histograms: HistogramsCompact},
		{Type: SinkStatsD, Address: flat.addr(), Histograms: HistogramsCompact},
	}}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if !strings.Contains(logs.String(), "a plain statsd sink cannot carry stats_config.stats_tags") || !strings.Contains(logs.String(), "stats_sinks[1]") {
		t.Errorf("no warning about the plain statsd sink: %s", logs.String())
	}
	if strings.Contains(logs.String(), "stats_sinks[0]") {
		t.Errorf("the DogStatsD sink was warned about: %s", logs.String())
	}
	f.Flush(t.Context())
	dl, fl := lines(dog.read(t)), lines(flat.read(t))
	if len(dl) < 20 || len(dl) != len(fl) {
		t.Fatalf("%d DogStatsD lines, %d StatsD lines", len(dl), len(fl))
	}
	const suffix = "node_id:front-proxy,service.cluster:edge"
	for _, l := range dl {
		_, tags, ok := strings.Cut(l, "|#")
		if !ok || !strings.HasSuffix(tags, suffix) || (tags != suffix && !strings.HasSuffix(tags, ","+suffix)) {
			t.Errorf("DogStatsD line %q does not end with the fixed tags %s", l, suffix)
		}
	}
	for _, want := range []string{
		"envoy.cluster.upstream_rq:7|c|#envoy.response_code:200,envoy.cluster_name:backend," + suffix,
		"envoy.cluster.upstream_rq_total:11|c|#envoy.cluster_name:backend," + suffix,
	} {
		if !slices.Contains(dl, want) {
			t.Errorf("no DogStatsD line %q in\n%s", want, strings.Join(dl, "\n"))
		}
	}
	for _, l := range fl {
		if strings.Contains(l, "#") || strings.Contains(l, "front-proxy") {
			t.Errorf("plain StatsD line %q carries a tag", l)
		}
	}
}

func TestFixedTagsValidation(t *testing.T) {
	for _, tc := range []struct {
		tags []Tag
		want string
	}{
		{[]Tag{{"", "x"}}, "stats_config.stats_tags[0].tag_name: required"},
		{[]Tag{{"1node", "x"}}, "tag_name: \"1node\": want letters"},
		{[]Tag{{"node id", "x"}}, "tag_name: \"node id\": want letters"},
		{[]Tag{{"__name", "x"}}, "reserved by Prometheus"},
		{[]Tag{{"le", "x"}}, "le is a label Prometheus reserves"},
		{[]Tag{{"envoy.cluster_name", "x"}}, "belong to Envoy's default tag extractors"},
		{[]Tag{{"node_id", ""}}, "stats_config.stats_tags[0].fixed_value: required"},
		{[]Tag{{"node_id", "a,b"}}, "would break DogStatsD lines"},
		{[]Tag{{"node_id", "a|b"}}, "would break DogStatsD lines"},
		{[]Tag{{"node_id", "a"}, {"node.id", "b"}}, "stats_config.stats_tags[1].tag_name: \"node.id\" is the label node_id, as \"node_id\" is"},
	} {
		_, err := NewStore(Config{FixedTags: tc.tags})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.tags, err, tc.want)
		}
	}
	if _, err := NewStore(Config{FixedTags: []Tag{{"node_id", "front-proxy"}, {"service.cluster", "edge:1"}}}); err != nil {
		t.Errorf("valid fixed tags refused: %v", err)
	}
}
