package render

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func f64(v float64) *float64 { return &v }

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// count returns how many pixels of img inside r are near c.
func count(img image.Image, r image.Rectangle, c color.RGBA) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			R, G, B, _ := img.At(x, y).RGBA()
			d := func(a uint32, b uint8) int { return abs(int(a>>8) - int(b)) }
			if d(R, c.R)+d(G, c.G)+d(B, c.B) < 30 {
				n++
			}
		}
	}
	return n
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestPNG(t *testing.T) {
	title, stat := "T", "S"
	p := func(typ string, tt *string, x, y, w, h uint32) dashboard.PanelOrRowPanel {
		return dashboard.PanelOrRowPanel{Panel: &dashboard.Panel{Type: typ, Title: tt, GridPos: &dashboard.GridPos{X: x, Y: y, W: w, H: h}}}
	}
	d := dashboard.Dashboard{ //nolint:staticcheck // SA1019: v1 on purpose
		Title: &title, Panels: []dashboard.PanelOrRowPanel{p("timeseries", &title, 0, 0, 12, 8), p("stat", &stat, 12, 0, 12, 10)}}
	// No recording: the frames only, each panel saying so.
	empty := decode(t, must(PNG(d, nil)))
	if got, want := empty.Bounds().Dy(), header+10*rowHeight+2*margin; got != want {
		t.Errorf("height %d, want %d", got, want)
	}
	if got, want := empty.Bounds().Dx(), 24*colWidth+2*margin; got != want {
		t.Errorf("width %d, want %d", got, want)
	}
	first := image.Rect(margin+4, header+margin+titleH+4, margin+12*colWidth-4, header+margin+8*rowHeight-4)
	if n := count(empty, first, warnColor); n < 50 {
		t.Errorf("a panel without recorded data does not say so: %d pixels of the warning colour", n)
	}
	// A recording: the first series' colour draws the line, in the first
	// panel; the stat is coloured by its thresholds.
	green := "green"
	red := "red"
	d.Panels[1].Panel.FieldConfig = &dashboard.FieldConfigSource{Defaults: dashboard.FieldConfig{Thresholds: &dashboard.ThresholdsConfig{
		Steps: []dashboard.Threshold{{Color: green}, {Value: f64(5), Color: red}}}}}
	rec := &Recording{Start: 1000, Step: 3, Panels: []PanelRecording{
		{Title: title, Targets: []TargetRecording{{RefID: "A", Series: []Series{{
			Metric: map[string]string{"a": "b"}, T: []int64{0, 3, 6, 9}, V: []*float64{f64(1), f64(2), nil, f64(4)}}}}}},
		{Title: stat, Targets: []TargetRecording{{RefID: "A", Series: []Series{{T: []int64{0, 3}, V: []*float64{f64(1), f64(7)}}}}}},
	}}
	img := decode(t, must(PNG(d, rec)))
	if n := count(img, first, palette[0]); n < 100 {
		t.Errorf("the series' line is missing: %d pixels of its colour in the panel", n)
	}
	if n := count(img, first, warnColor); n != 0 {
		t.Errorf("a panel with data still says it has none (%d pixels)", n)
	}
	second := image.Rect(margin+12*colWidth+4, header+margin+titleH+4, margin+24*colWidth-4, header+margin+10*rowHeight-4)
	if n := count(img, second, namedColors["red"]); n < 40 {
		t.Errorf("the stat's last value (7, over the threshold 5) is not red: %d pixels", n)
	}
	if _, err := PNG(dashboard.Dashboard{Title: &title}, nil); err == nil { //nolint:staticcheck // SA1019: v1 on purpose
		t.Error("a dashboard without panels rendered without error")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestLegend(t *testing.T) {
	m := map[string]string{"envoy_cluster_name": "catalog", "code": "200"}
	for format, want := range map[string]string{
		"{{envoy_cluster_name}}":       "catalog",
		"p99 {{ envoy_cluster_name }}": "p99 catalog",
		"{{missing}} {{code}}xx":       "200xx",
		"":                             "{code=200, envoy_cluster_name=catalog}",
		"plain":                        "plain",
	} {
		if got := legend(format, m); got != want {
			t.Errorf("legend(%q) = %q, want %q", format, got, want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		unit string
		v    float64
		want string
	}{
		{"percentunit", 0.9912, "99.1%"},
		{"ms", 12.5, "12.5 ms"},
		{"ms", 2500, "2.5 s"},
		{"reqps", 8.888, "8.89 req/s"},
		{"short", 12345, "12.3k"},
		{"ops", 0.0004, "0.0004 ops/s"},
		{"short", 0, "0"},
	} {
		if got := formatValue(c.unit, c.v); got != c.want {
			t.Errorf("formatValue(%q, %v) = %q, want %q", c.unit, c.v, got, c.want)
		}
	}
}
