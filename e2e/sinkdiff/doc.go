// Package sinkdiff is the differential test of hopwatch's statsd-sink against
// the real prometheus/statsd_exporter v0.31.0: both binaries get the same
// mapping file and the same StatsD line stream over real UDP (and TCP), and
// every exported series must match, except for the deliberate differences
// listed in Deliberates (and in README.md) with their reasons.
//
// The corpus lives in testdata/cases/<case>/ as mapping.yml (optional) and
// lines.txt; see README.md for the format. The package also exports the
// comparison itself (Flatten, Compare) so that it is tested on its own.
package sinkdiff
