package render

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func TestPNG(t *testing.T) {
	title := "T"
	p := func(x, y, w, h uint32) dashboard.PanelOrRowPanel {
		return dashboard.PanelOrRowPanel{Panel: &dashboard.Panel{Type: "timeseries", Title: &title, GridPos: &dashboard.GridPos{X: x, Y: y, W: w, H: h}}}
	}
	d := dashboard.Dashboard{ //nolint:staticcheck // SA1019: v1 on purpose
		Title: &title, Panels: []dashboard.PanelOrRowPanel{p(0, 0, 12, 8), p(12, 0, 12, 10)}}
	b, err := PNG(d)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// The image is as tall as the lowest panel's bottom edge (row 10).
	if got, want := img.Bounds().Dy(), header+10*rowHeight+2*margin; got != want {
		t.Errorf("height %d, want %d", got, want)
	}
	if got, want := img.Bounds().Dx(), 24*colWidth+2*margin; got != want {
		t.Errorf("width %d, want %d", got, want)
	}
	// Inside the first panel the fill colour shows; outside, the background.
	if c := img.At(margin+100, header+margin+100); c != panelFill {
		t.Errorf("inside a panel: %v, want %v", c, panelFill)
	}
	if _, err := PNG(dashboard.Dashboard{Title: &title}); err == nil { //nolint:staticcheck // SA1019: v1 on purpose
		t.Error("a dashboard without panels rendered without error")
	}
}
