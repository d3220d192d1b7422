// Package dashboards builds hopwatch's Grafana dashboards as code with the
// grafana-foundation-sdk: proxy overview, upstream clusters, canary and
// blue/green, zones, and the statsd-sink. Every query is built from a
// catalogue family (proxy/stats.Catalogue, sink.SelfMetrics) by the helpers
// in query.go, never from a typed metric name, so a renamed stat breaks the
// build of the dashboards instead of silently emptying a panel.
//
// cmd/dashgen writes the result to dashboards/generated/*.json; tests check
// the committed JSON against the builders, lint it with the rules of
// grafana/dashboard-linter (package dashboards/lint), and e2e/dashboards runs
// every query against a real Prometheus scraping the real pipeline.
package dashboards
