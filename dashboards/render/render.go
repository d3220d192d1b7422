// Package render draws a preview of a dashboard as a PNG: the panel grid
// with titles, each panel drawn from data the live proof recorded from the
// real pipeline (see Recording), so that a reader sees what the dashboard
// shows without a Grafana. Time series are lines per series with a legend,
// stat panels their last values coloured by the panel's thresholds. The
// drawing is gonum.org/v1/plot's.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	stdfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Grid geometry in pixels: Grafana's grid is 24 columns wide and panels are
// measured in rows of about 30 px; the preview keeps about that ratio, at a
// size where a panel's axes and legend stay readable.
const (
	colWidth  = 60
	rowHeight = 34
	margin    = 10
	header    = 40
	titleH    = 24 // a panel's title bar
)

var (
	background = color.RGBA{0x11, 0x12, 0x17, 0xff}
	panelFill  = color.RGBA{0x18, 0x1b, 0x1f, 0xff}
	panelEdge  = color.RGBA{0x3d, 0x41, 0x4a, 0xff}
	titleColor = color.RGBA{0xd8, 0xd9, 0xda, 0xff}
	metaColor  = color.RGBA{0x8e, 0x8e, 0x8e, 0xff}
	gridColor  = color.RGBA{0x2c, 0x2f, 0x35, 0xff}
	warnColor  = color.RGBA{0xff, 0x98, 0x30, 0xff}
)

func face(size float64, bold bool) font.Font {
	f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Length(size)}
	if bold {
		f.Weight = stdfont.WeightBold
	}
	return f
}

func style(f font.Font, c color.Color, x text.XAlignment, y text.YAlignment) text.Style {
	return text.Style{Color: c, Font: f, XAlign: x, YAlign: y, Handler: plot.DefaultTextHandler}
}

// textWidth is s's width in f, in pixels.
func textWidth(f font.Font, s string) vg.Length {
	w, _, _ := plot.DefaultTextHandler.Box(s, f)
	return w
}

// fit cuts s with "…" to at most width pixels in f.
func fit(f font.Font, s string, width vg.Length) string {
	if textWidth(f, s) <= width {
		return s
	}
	rs := []rune(s)
	for len(rs) > 1 && textWidth(f, string(rs)+"…") > width {
		rs = rs[:len(rs)-1]
	}
	return string(rs) + "…"
}

// PNG draws d's panel grid, each panel from its entry in rec (nil: no data
// was recorded, and each panel says so).
func PNG(d dashboard.Dashboard, rec *Recording) ([]byte, error) { //nolint:staticcheck // SA1019: hopwatch generates v1 (classic) dashboards
	bottom := uint32(0)
	for _, p := range d.Panels {
		if p.Panel == nil || p.Panel.GridPos == nil {
			continue
		}
		bottom = max(bottom, p.Panel.GridPos.Y+p.Panel.GridPos.H)
	}
	if bottom == 0 {
		return nil, fmt.Errorf("render: dashboard %q has no positioned panels", title(d))
	}
	w := 24*colWidth + 2*margin
	h := header + int(bottom)*rowHeight + 2*margin
	// At 72 dpi a vg point is a pixel, so the grid maths stays in pixels.
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(w), vg.Length(h)), vgimg.UseDPI(72), vgimg.UseBackgroundColor(background))
	c := draw.New(img)
	sub := "preview from the live proof's recorded data (dashboards/preview/data)"
	if rec == nil {
		sub = "no recorded data: run the live proof with UPDATE_PREVIEW_DATA=1"
	}
	c.FillText(style(face(18, true), titleColor, text.XLeft, text.YCenter), vg.Point{X: margin, Y: vg.Length(h) - header/2}, title(d))
	c.FillText(style(face(12, false), metaColor, text.XRight, text.YCenter), vg.Point{X: vg.Length(w - margin), Y: vg.Length(h) - header/2}, sub)
	for _, p := range d.Panels {
		if p.Panel == nil || p.Panel.GridPos == nil {
			continue
		}
		gp := p.Panel.GridPos
		// Pixel rectangle from the top left, then as a vg canvas (origin
		// bottom left), inset by 2 px for the gutter.
		x0, y0 := margin+int(gp.X)*colWidth+2, header+margin+int(gp.Y)*rowHeight+2
		x1, y1 := margin+int(gp.X+gp.W)*colWidth-2, header+margin+int(gp.Y+gp.H)*rowHeight-2
		pc := draw.Crop(c, vg.Length(x0), vg.Length(x1-w), vg.Length(h-y1), vg.Length(-y0))
		drawPanel(pc, p.Panel, rec)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img.Image()); err != nil {
		return nil, fmt.Errorf("render: encode %q: %w", title(d), err)
	}
	return buf.Bytes(), nil
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func title(d dashboard.Dashboard) string { //nolint:staticcheck // SA1019: v1 on purpose
	return ptr(d.Title)
}

func rect(c draw.Canvas) []vg.Point {
	r := c.Rectangle
	return []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}, r.Min}
}

// drawPanel draws one panel's frame and title, then its body from the
// panel's entry in rec.
func drawPanel(c draw.Canvas, p *dashboard.Panel, rec *Recording) {
	pr := rec.Panel(ptr(p.Title))
	c.FillPolygon(panelFill, rect(c))
	c.StrokeLines(draw.LineStyle{Color: panelEdge, Width: 1}, rect(c))
	r := c.Rectangle
	titleFont := face(13, true)
	c.FillText(style(titleFont, titleColor, text.XLeft, text.YCenter), vg.Point{X: r.Min.X + 8, Y: r.Max.Y - titleH/2},
		fit(titleFont, ptr(p.Title), r.Size().X-16))
	body := draw.Crop(c, 6, -8, 6, -titleH)
	switch {
	case pr == nil:
		message(body, "no recorded data for this panel", warnColor)
	case !hasValues(pr):
		message(body, "No data", metaColor)
	case p.Type == "stat":
		drawStat(body, p, pr)
	default:
		drawTimeSeries(body, p, rec, pr)
	}
}

func message(c draw.Canvas, s string, col color.Color) {
	c.FillText(style(face(14, false), col, text.XCenter, text.YCenter), c.Center(), s)
}

func hasValues(pr *PanelRecording) bool {
	for _, tg := range pr.Targets {
		for _, s := range tg.Series {
			for _, v := range s.V {
				if v != nil {
					return true
				}
			}
		}
	}
	return false
}

// named is one series with the name Grafana's legend gives it.
type named struct {
	name   string
	series Series
}

// seriesOf pairs every recorded series with its legend name, by the
// target's legendFormat (matched to the recording by refId).
func seriesOf(p *dashboard.Panel, pr *PanelRecording) []named {
	var out []named
	for _, tg := range pr.Targets {
		format := ""
		for _, t := range p.Targets {
			if q := queryOf(t); q.RefID == tg.RefID {
				format = q.LegendFormat
			}
		}
		for _, s := range tg.Series {
			out = append(out, named{name: legend(format, s.Metric), series: s})
		}
	}
	return out
}

// legend expands Grafana's {{label}} placeholders; without a format it
// names the series by its labels, as Grafana does.
func legend(format string, metric map[string]string) string {
	if format == "" {
		var parts []string
		for k, v := range metric {
			parts = append(parts, k+"="+v)
		}
		slices.Sort(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	var b strings.Builder
	for {
		i := strings.Index(format, "{{")
		j := strings.Index(format, "}}")
		if i < 0 || j < i {
			b.WriteString(format)
			break
		}
		b.WriteString(format[:i])
		b.WriteString(metric[strings.TrimSpace(format[i+2:j])])
		format = format[j+2:]
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// query is the part of a panel's target that the preview needs. It is read
// through JSON so that any datasource's query type works.
type query struct {
	RefID        string `json:"refId"`
	LegendFormat string `json:"legendFormat"`
}

func queryOf(t variants.Dataquery) query {
	var q query
	if b, err := json.Marshal(t); err == nil {
		_ = json.Unmarshal(b, &q)
	}
	return q
}
