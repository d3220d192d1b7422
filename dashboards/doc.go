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
//
// Rules (rules.go) builds the recording and alerting rules from the same
// catalogue with the same checks: SLO burn-rate alerts per upstream cluster
// and connection manager, cause alerts, and the pipeline's self-alerts.
// cmd/dashgen writes them to deploy/rules and, as a PrometheusRule, to
// deploy/k8s/components/prometheusrule; promtool unit-tests them and
// e2e/alerts proves them live through Alertmanager.
package dashboards
