package dashboards_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/dashboards/lint"
	"github.com/hopwatch/hopwatch/dashboards/render"
	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// previewStep is the resolution of the recorded range queries, in seconds:
// fine enough for a preview's lines, coarse enough for small files.
// previewSpan is how much history the previews show: the live proof itself
// is done within seconds of the first scrape, which would draw dots.
const (
	previewStep = 3
	previewSpan = 150 * time.Second
)

// recordPreviewData writes, when UPDATE_PREVIEW_DATA=1, every panel's
// range-query result since the test started to
// dashboards/preview/data/<dashboard>.json, from which dashgen draws the
// previews (`make dashboards`). It first lets the demo's load run until
// previewSpan of history exists, calling again (once, halfway) to repeat the
// probe's conditions, so that the lines show more than one burst. Without
// the variable it does nothing.
func recordPreviewData(ctx context.Context, t *testing.T, root, promURL string, values map[string]string, since time.Time, again func()) {
	t.Helper()
	if os.Getenv("UPDATE_PREVIEW_DATA") != "1" {
		return
	}
	sleep := func(until time.Time) {
		select {
		case <-ctx.Done():
			t.Fatalf("recording preview data: %v", ctx.Err())
		case <-time.After(time.Until(until)):
		}
	}
	sleep(since.Add(previewSpan / 2))
	again()
	sleep(since.Add(previewSpan))
	end := time.Now()
	for _, d := range e2etest.GeneratedDashboards(t) {
		rec := render.Recording{Dashboard: d.UID, Start: since.Unix(), Step: previewStep}
		for _, p := range d.Panels {
			pr := render.PanelRecording{Title: p.Title}
			for _, tg := range p.Targets {
				expr := lint.Substitute(tg.Expr, values)
				series, err := rangeSeries(ctx, promURL, expr, since, end)
				if err != nil {
					t.Fatalf("%s/%s/%s: %v", d.UID, p.Title, tg.RefID, err)
				}
				pr.Targets = append(pr.Targets, render.TargetRecording{RefID: tg.RefID, Expr: expr, Series: series})
			}
			rec.Panels = append(rec.Panels, pr)
		}
		b, err := rec.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(root, "dashboards", "preview", "data", filepath.Base(d.File))
		if err := os.WriteFile(out, b, 0o644); err != nil { //nolint:gosec // G306: a committed file
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes); run `make dashboards` to draw the previews", strings.TrimPrefix(out, root+"/"), len(b))
	}
}

// rangeSeries runs expr over [since, end] and returns its series with
// times relative to since.
func rangeSeries(ctx context.Context, promURL, expr string, since, end time.Time) ([]render.Series, error) {
	q := url.Values{"query": {expr}, "start": {strconv.FormatInt(since.Unix(), 10)},
		"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {strconv.Itoa(previewStep)}}
	data, err := promGet(ctx, promURL+"/api/v1/query_range?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var m struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	out := make([]render.Series, 0, len(m.Result))
	for _, r := range m.Result {
		s := render.Series{Metric: r.Metric}
		for _, sv := range r.Values {
			ts, _ := sv[0].(float64)
			str, _ := sv[1].(string)
			v, err := render.Value(str)
			if err != nil {
				return nil, err
			}
			s.T = append(s.T, int64(ts)-since.Unix())
			s.V = append(s.V, v)
		}
		out = append(out, s)
	}
	return out, nil
}
