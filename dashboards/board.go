package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Options are the few things that differ between installations.
type Options struct {
	// JaegerURL is the Jaeger UI that latency panels link to
	// (default http://127.0.0.1:16686, the local pipeline's).
	JaegerURL string
}

func (o Options) jaeger() string {
	if o.JaegerURL == "" {
		return "http://127.0.0.1:16686"
	}
	return strings.TrimRight(o.JaegerURL, "/")
}

// Tag is on every hopwatch dashboard; the dashboards' link menu lists the
// dashboards that carry it.
const Tag = "hopwatch"

// Dashboard is one generated dashboard.
type Dashboard struct {
	// File is the base name under dashboards/generated (proxy-overview.json).
	File string
	// Model is the SDK's dashboard.
	Model dashboard.Dashboard //nolint:staticcheck // SA1019: the issue asks for the v1 (classic) JSON, which Grafana imports and provisions
}

// JSON renders d as indented JSON with a trailing newline, the form that
// is committed.
func (d Dashboard) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep <prefix> and & readable in the committed files
	enc.SetIndent("", "  ")
	if err := enc.Encode(d.Model); err != nil {
		return nil, fmt.Errorf("dashboards: marshal %s: %w", d.File, err)
	}
	return buf.Bytes(), nil
}

// board collects one dashboard's definition.
type board struct {
	uid, title, description, file string
	tags                          []string
	vars                          []string // label variables besides job and instance
	anchor                        metric   // a metric every target of the dashboard has, for job/instance values
	panels                        []panel
}

// All builds every hopwatch dashboard, in menu order.
func All(opts Options) ([]Dashboard, error) {
	c := newCatalog()
	boards := []board{
		proxyOverview(c, opts),
		upstreamClusters(c, opts),
		canary(c, opts),
		zones(c, opts),
		statsdSink(c),
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	var out []Dashboard
	for _, b := range boards {
		m, err := b.build(c)
		if err != nil {
			return nil, fmt.Errorf("dashboards: build %s: %w", b.uid, err)
		}
		out = append(out, Dashboard{File: b.file, Model: m})
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return out, nil
}

//nolint:staticcheck // SA1019: v1 on purpose, see Dashboard.Model
func (b board) build(c *catalog) (dashboard.Dashboard, error) {
	d := dashboard.NewDashboardBuilder(b.title). //nolint:staticcheck // SA1019: v1 on purpose
							Uid(b.uid).
							Description(b.description).
							Tags(append([]string{Tag}, b.tags...)).
							Readonly().
							Refresh("30s").
							Time("now-30m", "now").
							Timezone("browser").
							Tooltip(dashboard.DashboardCursorSyncCrosshair).
							Link(dashboard.NewDashboardLinkBuilder("hopwatch dashboards").
								Type(dashboard.DashboardLinkTypeDashboards).
								Tags([]string{Tag}).
								AsDropdown(true).
								IncludeVars(true).
								KeepTime(true))
	for _, v := range b.variables(c) {
		d = d.WithVariable(v)
	}
	for i, p := range b.panels {
		d = d.WithPanel(p.build(uint32(i + 1)))
	}
	return d.Build()
}

// variables are the datasource, job and instance variables, then one per
// label variable. Each label variable's values are taken from the anchor
// metric filtered by the variables before it, so choosing a job narrows
// the instances and both narrow the clusters.
func (b board) variables(c *catalog) []cog.Builder[dashboard.VariableModel] {
	out := []cog.Builder[dashboard.VariableModel]{
		dashboard.NewDatasourceVariableBuilder(VarDatasource).
			Label("Data source").
			Type("prometheus").
			Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: ptr("Prometheus")}, Value: dashboard.StringOrArrayOfString{String: ptr(DatasourceUID)}}),
	}
	sel := []string{}
	add := func(name, label string, m metric) {
		q := "label_values(" + m.name
		if len(sel) > 0 {
			q += "{" + strings.Join(sel, ", ") + "}"
		}
		q += ", " + name + ")"
		out = append(out, dashboard.NewQueryVariableBuilder(name).
			Label(label).
			Datasource(datasourceRef()).
			Query(dashboard.StringOrMap{String: ptr(q)}).
			Definition(q).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*").
			Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}}, Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}}}))
		sel = append(sel, name+`=~"$`+name+`"`)
	}
	add(VarJob, "job", b.anchor)
	add(VarInstance, "instance", b.anchor)
	for _, v := range b.vars {
		add(v, v, b.anchor)
	}
	return out
}

// jaegerClusterLink is a data link to Jaeger's search for the proxies'
// spans to a series' upstream cluster (their upstream_cluster attribute),
// over the dashboard's time range (Jaeger wants microseconds). It names no
// service: a cluster name is not one (spans are under the proxy's
// service_name, its node.id), so Jaeger asks which proxy. The exemplars
// drawn on the panel lead to one trace each, without that step.
func jaegerClusterLink(opts Options) link {
	return link{
		title:    "Traces to ${__field.labels." + lblCluster + "} in Jaeger",
		url:      opts.jaeger() + "/search?tags=" + url.QueryEscape(`{"upstream_cluster":"`) + "${__field.labels." + lblCluster + "}" + url.QueryEscape(`"}`) + "&start=${__from}000&end=${__to}000&limit=20",
		external: true,
	}
}

// clusterLink opens the upstream-cluster dashboard on the series' cluster.
func clusterLink() link {
	return link{
		title: "Upstream cluster ${__field.labels." + VarCluster + "}",
		url:   "/d/" + UIDUpstream + "?var-" + VarCluster + "=${__field.labels." + VarCluster + "}&${" + VarJob + ":queryparam}&${" + VarInstance + ":queryparam}&${__url_time_range}",
	}
}
