package stats

import (
	"fmt"
	"regexp"
	"strings"
)

// Fixed tags are Envoy's stats_config.stats_tags entries with fixed_value:
// a tag every stat of the proxy carries, typically to say which proxy
// emitted it (Envoy's own example is identifying instances). They come
// after the tags the default extractors take from a stat's name, as in
// Envoy, and leave every name alone: the flat name (plain StatsD, /stats)
// and the tag-extracted name are unchanged, DogStatsD sinks add them to
// each line's |#tags, and /stats/prometheus adds them as labels. Plain
// StatsD has no tags, so a statsd sink cannot carry them.

// fixedTagNameRE keeps a fixed tag's name a valid DogStatsD tag key and,
// with '.' turned into '_', a valid Prometheus label name.
var fixedTagNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// reservedLabels are label names Prometheus or the exposition use: a tag
// of that name would clash with histogram buckets or summaries.
var reservedLabels = []string{"le", "quantile"}

// CheckFixedTagName reports what is wrong with name as a fixed tag's name,
// or nil.
func CheckFixedTagName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("required")
	case !fixedTagNameRE.MatchString(name):
		return fmt.Errorf("%q: want letters, digits, '_' and '.', not starting with a digit (it becomes a DogStatsD tag and a Prometheus label)", name)
	case strings.HasPrefix(name, "__"):
		return fmt.Errorf("%q: names starting with __ are reserved by Prometheus", name)
	}
	label := prometheusLabel(name)
	for _, r := range reservedLabels {
		if label == r {
			return fmt.Errorf("%q: %s is a label Prometheus reserves for histograms and summaries", name, r)
		}
	}
	if strings.HasPrefix(label, "envoy_") {
		return fmt.Errorf("%q: names in envoy. (envoy_ as a label) belong to Envoy's default tag extractors, which every stat already uses; pick another, such as node_id", name)
	}
	return nil
}

// CheckFixedTagValue reports what is wrong with v as a fixed tag's value,
// or nil.
func CheckFixedTagValue(v string) error {
	if v == "" {
		return fmt.Errorf("required: a tag with an empty value says nothing")
	}
	if i := strings.IndexAny(v, ",|#\n\r\t "); i >= 0 {
		return fmt.Errorf("%q contains %q, which would break DogStatsD lines", v, v[i])
	}
	return nil
}

// checkFixedTags checks a store's fixed tags: each name and value, and no
// two tags whose Prometheus labels would be the same.
func checkFixedTags(tags []Tag) error {
	seen := map[string]string{}
	for i, t := range tags {
		p := fmt.Sprintf("stats_config.stats_tags[%d]", i)
		if err := CheckFixedTagName(t.Name); err != nil {
			return fmt.Errorf("%s.tag_name: %w", p, err)
		}
		if err := CheckFixedTagValue(t.Value); err != nil {
			return fmt.Errorf("%s.fixed_value: %w", p, err)
		}
		label := prometheusLabel(t.Name)
		if first, dup := seen[label]; dup {
			return fmt.Errorf("%s.tag_name: %q is the label %s, as %q is", p, t.Name, label, first)
		}
		seen[label] = t.Name
	}
	return nil
}

// FixedTags returns the tags the store adds to every stat. Do not modify.
func (s *Store) FixedTags() []Tag { return s.fixed }
