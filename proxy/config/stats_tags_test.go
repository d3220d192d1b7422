package config

import (
	"reflect"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/stats"
)

func TestStatsTags(t *testing.T) {
	c := mustParse(t, minimal+`stats_config:
  use_all_default_tags: true
  stats_tags:
    - tag_name: node_id
      fixed_value: front-proxy
    - tag_name: service.cluster
      fixed_value: edge
`)
	want := []stats.Tag{{Name: "node_id", Value: "front-proxy"}, {Name: "service.cluster", Value: "edge"}}
	if got := c.StatsConfig.FixedTags(); !reflect.DeepEqual(got, want) {
		t.Errorf("FixedTags() = %v, want %v", got, want)
	}
	if got := mustParse(t, minimal).StatsConfig.FixedTags(); got != nil {
		t.Errorf("FixedTags() without stats_tags = %v, want none", got)
	}

	checkErrs(t, minimal+`stats_config:
  use_all_default_tags: false
  stats_tags:
    - tag_name: node_id
      regex: '^cluster\.((.+?)\.)'
    - tag_name: envoy.cluster_name
      fixed_value: x
    - tag_name: node id
      fixed_value: a,b
    - tag_name: node.id
      fixed_value: y
    - tag_name: node_id
      fixed_value: z
    - fixed_value: z
`, []string{
		"test.yaml:15:25: stats_config.use_all_default_tags: false is not supported: hopwatch always applies Envoy's default tag extractors, which its metric names, the sink's Envoy preset and the dashboards rely on; remove the key or set it to true",
		"test.yaml:18:14: stats_config.stats_tags[0].regex: custom tag extraction is not supported: hopwatch applies Envoy's default extractors only; use fixed_value to add a tag to every stat",
		`test.yaml:19:17: stats_config.stats_tags[1].tag_name: "envoy.cluster_name": names in envoy. (envoy_ as a label) belong to Envoy's default tag extractors, which every stat already uses; pick another, such as node_id`,
		`test.yaml:21:17: stats_config.stats_tags[2].tag_name: "node id": want letters, digits, '_' and '.', not starting with a digit (it becomes a DogStatsD tag and a Prometheus label)`,
		`test.yaml:22:20: stats_config.stats_tags[2].fixed_value: "a,b" contains ',', which would break DogStatsD lines`,
		`test.yaml:25:17: stats_config.stats_tags[4].tag_name: duplicate tag (as a Prometheus label) "node_id" (also used by stats_config.stats_tags[3])`,
		"test.yaml:27:7: stats_config.stats_tags[5].tag_name: required",
	})
}
