// Command dashgen writes hopwatch's Grafana dashboards (built in Go by
// package dashboards) to dashboards/generated/*.json, their previews, drawn
// from the data the live proof recorded in dashboards/preview/data, to
// dashboards/preview/*.png, Grafana's provisioning files (a dashboard
// provider, and the Prometheus and Jaeger datasources) to deploy/grafana/provisioning/, and
// the recording and alerting rules (package dashboards, rules.go) to
// deploy/rules/hopwatch.rules.yml and, as a PrometheusRule, to
// deploy/k8s/components/prometheusrule/.
// `make dashboards` runs it from the repository root.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/hopwatch/hopwatch/dashboards"
	"github.com/hopwatch/hopwatch/dashboards/render"
)

func main() {
	out := flag.String("out", "dashboards/generated", "directory for the dashboard JSON files")
	preview := flag.String("preview", "dashboards/preview", "directory for the preview PNGs (empty: none)")
	previewData := flag.String("preview-data", "dashboards/preview/data", "directory of the panel data the live proof recorded (e2e/dashboards with UPDATE_PREVIEW_DATA=1), which the previews draw")
	prov := flag.String("provisioning", "deploy/grafana/provisioning", "Grafana provisioning directory to write the provider and datasource into (empty: none)")
	dashPath := flag.String("provider-path", "/var/lib/grafana/dashboards/hopwatch", "where Grafana reads the dashboard JSON, as Grafana sees it (the provider's options.path)")
	promURL := flag.String("prometheus-url", "http://127.0.0.1:9090", "URL of the provisioned Prometheus datasource")
	jaeger := flag.String("jaeger-url", "http://127.0.0.1:16686", "Jaeger query service: the UI latency panels link to, and the provisioned Jaeger datasource that exemplars open")
	rulesPath := flag.String("rules", "deploy/rules/hopwatch.rules.yml", "Prometheus rule file to write (empty: none)")
	promRule := flag.String("prometheus-rule", "deploy/k8s/components/prometheusrule/prometheusrule.yaml", "PrometheusRule manifest to write (empty: none)")
	var ro dashboards.RuleOptions
	flag.Float64Var(&ro.Availability, "availability", 0, "availability objective: the share of requests without a 5xx, per upstream cluster and connection manager (default 0.999)")
	flag.Float64Var(&ro.LatencyThresholdMs, "latency-threshold-ms", 0, "latency objective's threshold in ms, a bucket bound of Envoy's default histogram buckets (default 250)")
	flag.Float64Var(&ro.LatencyObjective, "latency-objective", 0, "share of requests that must be within --latency-threshold-ms (default 0.99)")
	flag.StringVar(&ro.GrafanaURL, "grafana-url", "", "Grafana that the alerts' dashboard_url annotations open (default http://127.0.0.1:3000)")
	flag.Parse()
	if err := run(*out, *preview, *previewData, *prov, *dashPath, *promURL, *jaeger); err != nil {
		slog.Error("dashgen failed", "err", err)
		os.Exit(1)
	}
	if err := writeRules(ro, *rulesPath, *promRule); err != nil {
		slog.Error("dashgen failed", "err", err)
		os.Exit(1)
	}
}

func run(out, preview, previewData, prov, dashPath, promURL, jaeger string) error {
	ds, err := dashboards.All(dashboards.Options{JaegerURL: jaeger})
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, d := range ds {
		b, err := d.JSON()
		if err != nil {
			return err
		}
		files[filepath.Join(out, d.File)] = b
		if preview != "" {
			rec, err := render.LoadRecording(filepath.Join(previewData, d.File))
			if err != nil {
				return err
			}
			img, err := render.PNG(d.Model, rec)
			if err != nil {
				return err
			}
			files[filepath.Join(preview, strings.TrimSuffix(d.File, ".json")+".png")] = img
		}
	}
	if prov != "" {
		p, err := dashboards.Provisioning(dashboards.ProvisioningOptions{DashboardsPath: dashPath, PrometheusURL: promURL, JaegerURL: jaeger})
		if err != nil {
			return err
		}
		for name, b := range p {
			files[filepath.Join(prov, name)] = b
		}
	}
	for path, b := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // G301: committed source directories, readable by all
			return fmt.Errorf("dashgen: %w", err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil { //nolint:gosec // G306: committed files that Grafana must be able to read
			return fmt.Errorf("dashgen: %w", err)
		}
	}
	fmt.Printf("dashgen: wrote %d dashboards to %s\n", len(ds), out)
	return nil
}

// writeRules writes the rule file and the PrometheusRule built with opt.
func writeRules(opt dashboards.RuleOptions, rulesPath, promRule string) error {
	rf, err := dashboards.Rules(opt)
	if err != nil {
		return err
	}
	n := 0
	for _, out := range []struct {
		path   string
		render func() ([]byte, error)
	}{{rulesPath, rf.YAML}, {promRule, rf.PrometheusRule}} {
		if out.path == "" {
			continue
		}
		b, err := out.render()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(out.path), 0o755); err != nil { //nolint:gosec // G301: committed source directories, readable by all
			return fmt.Errorf("dashgen: %w", err)
		}
		if err := os.WriteFile(out.path, b, 0o644); err != nil { //nolint:gosec // G306: committed files that Prometheus must be able to read
			return fmt.Errorf("dashgen: %w", err)
		}
		n++
	}
	fmt.Printf("dashgen: wrote %d rule files\n", n)
	return nil
}
