package render

import (
	"image/color"
	"math"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// palette is Grafana's classic series palette, in its order.
var palette = []color.RGBA{
	{0x7e, 0xb2, 0x6d, 0xff}, {0xea, 0xb8, 0x39, 0xff}, {0x6e, 0xd0, 0xe0, 0xff}, {0xef, 0x84, 0x3c, 0xff},
	{0xe2, 0x4d, 0x42, 0xff}, {0x1f, 0x78, 0xc1, 0xff}, {0xba, 0x43, 0xa9, 0xff}, {0x70, 0x5d, 0xa0, 0xff},
	{0x50, 0x86, 0x42, 0xff}, {0xcc, 0xa3, 0x00, 0xff}, {0x44, 0x7e, 0xbc, 0xff}, {0xc1, 0x5c, 0x17, 0xff},
}

// namedColors are the Grafana colour names that thresholds use.
var namedColors = map[string]color.RGBA{
	"green": {0x73, 0xbf, 0x69, 0xff}, "red": {0xf2, 0x49, 0x5c, 0xff}, "orange": {0xff, 0x98, 0x30, 0xff},
	"yellow": {0xfa, 0xde, 0x2a, 0xff}, "blue": {0x57, 0x94, 0xf2, 0xff}, "purple": {0xb8, 0x77, 0xd9, 0xff},
	"dark-red": {0xc4, 0x16, 0x2a, 0xff}, "dark-green": {0x37, 0x87, 0x2d, 0xff}, "dark-orange": {0xfa, 0x64, 0x00, 0xff},
	"dark-yellow": {0xe0, 0xb4, 0x00, 0xff}, "text": titleColor,
}

func parseColor(s string) color.RGBA {
	if c, ok := namedColors[s]; ok {
		return c
	}
	if len(s) == 7 && s[0] == '#' {
		if v, err := strconv.ParseUint(s[1:], 16, 32); err == nil {
			return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 0xff}
		}
	}
	return titleColor
}

// thresholdColor is the colour Grafana gives v: that of the last step whose
// value is at most v (the first step, without a value, is the base).
func thresholdColor(p *dashboard.Panel, v float64) color.RGBA {
	fc := p.FieldConfig
	if fc == nil || fc.Defaults.Thresholds == nil || len(fc.Defaults.Thresholds.Steps) == 0 {
		return titleColor
	}
	col := titleColor
	for _, st := range fc.Defaults.Thresholds.Steps {
		if st.Value == nil || v >= *st.Value {
			col = parseColor(st.Color)
		}
	}
	return col
}

func unitOf(p *dashboard.Panel) string {
	if p.FieldConfig == nil || p.FieldConfig.Defaults.Unit == nil {
		return ""
	}
	return *p.FieldConfig.Defaults.Unit
}

// number writes v with at most 3 significant digits and an SI suffix from
// 1000 up, as Grafana's "short" unit does.
func number(v float64) string {
	if v == 0 {
		return "0"
	}
	suffix := ""
	for _, s := range []string{"k", "M", "G", "T"} {
		if math.Abs(v) < 1000 {
			break
		}
		v /= 1000
		suffix = s
	}
	return trim(strconv.FormatFloat(v, 'g', 3, 64)) + suffix
}

// trim turns the 'g' format's exponents back into plain decimals for the
// small values panels show (rates of 0.001/s and below).
func trim(s string) string {
	if !strings.Contains(s, "e") {
		return s
	}
	v, _ := strconv.ParseFloat(s, 64)
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// formatValue writes v in Grafana's unit unit.
func formatValue(unit string, v float64) string {
	switch unit {
	case "percentunit":
		return number(v*100) + "%"
	case "percent":
		return number(v) + "%"
	case "ms":
		if math.Abs(v) >= 1000 {
			return number(v/1000) + " s"
		}
		return number(v) + " ms"
	case "s":
		if v != 0 && math.Abs(v) < 1 {
			return number(v*1000) + " ms"
		}
		return number(v) + " s"
	case "reqps":
		return number(v) + " req/s"
	case "ops":
		return number(v) + " ops/s"
	case "", "short", "none":
		return number(v)
	default:
		return number(v) + " " + unit
	}
}

// unitTicks labels the default ticks in the panel's unit.
type unitTicks struct{ unit string }

func (u unitTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = formatValue(u.unit, ticks[i].Value)
		}
	}
	return ticks
}

func darkAxis(a *plot.Axis) {
	a.Color = panelEdge
	a.Tick.Color = panelEdge
	a.Tick.Label.Color = metaColor
	a.Tick.Label.Font = face(10, false)
	a.Padding = 2
}

// drawTimeSeries draws every series as a line, in the palette's order, and
// a legend under the plot.
func drawTimeSeries(c draw.Canvas, p *dashboard.Panel, rec *Recording, pr *PanelRecording) {
	series := seriesOf(p, pr)
	legendH := drawLegend(c, series)
	pc := draw.Crop(c, 0, 0, legendH, 0)

	plt := plot.New()
	plt.BackgroundColor = color.Transparent
	darkAxis(&plt.X)
	darkAxis(&plt.Y)
	plt.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05"}
	plt.Y.Tick.Marker = unitTicks{unit: unitOf(p)}
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = gridColor, gridColor
	plt.Add(grid)

	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range series {
		col := palette[i%len(palette)]
		for _, seg := range segments(rec, s.series) {
			l, err := plotter.NewLine(seg)
			if err != nil {
				continue
			}
			l.Color, l.Width = col, 1.5
			plt.Add(l)
			for _, pt := range seg {
				lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
			}
		}
	}
	// Grafana's axis: the panel's min and max where set, otherwise from 0
	// for data that never goes below it.
	if lo >= 0 {
		plt.Y.Min = 0
	}
	if fc := p.FieldConfig; fc != nil {
		if fc.Defaults.Min != nil {
			plt.Y.Min = *fc.Defaults.Min
		}
		if fc.Defaults.Max != nil {
			plt.Y.Max = *fc.Defaults.Max
		}
	}
	if plt.Y.Max <= plt.Y.Min {
		plt.Y.Max = plt.Y.Min + 1
	}
	// Every panel shows the whole recorded range, as every Grafana panel
	// shows the dashboard's time range, also where a series starts late.
	if lo, hi, ok := rec.span(); ok {
		plt.X.Min, plt.X.Max = float64(rec.Start+lo), float64(rec.Start+hi)
	}
	plt.Draw(pc)
}

// segments splits s into runs of consecutive samples: Grafana breaks a line
// where a series has no value.
func segments(rec *Recording, s Series) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i, v := range s.V {
		gap := i > 0 && s.T[i]-s.T[i-1] > rec.Step
		if v == nil || gap {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
		}
		if v != nil {
			cur = append(cur, plotter.XY{X: float64(rec.Start + s.T[i]), Y: *v})
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	// A single point would not show as a line: widen it to one step.
	for i, seg := range out {
		if len(seg) == 1 {
			out[i] = append(seg, plotter.XY{X: seg[0].X + float64(rec.Step), Y: seg[0].Y})
		}
	}
	return out
}

const (
	legendRow    = 15
	legendSwatch = 14
)

// drawLegend lays the series' names out in rows under the plot, as
// Grafana's list legend does, at most three rows (two in short panels);
// what does not fit is counted as "+N more". It returns its height.
func drawLegend(c draw.Canvas, series []named) vg.Length {
	if len(series) == 0 {
		return 0
	}
	f := face(10, false)
	width := c.Rectangle.Size().X
	maxRows := 3
	if c.Rectangle.Size().Y < 180 {
		maxRows = 2
	}
	type entry struct {
		x, y  vg.Length
		label string
		col   color.RGBA
	}
	var entries []entry
	moreW := textWidth(f, "+999 more")
	x, row := vg.Length(0), 0
	for i, s := range series {
		label := fit(f, s.name, width/2)
		w := legendSwatch + 4 + textWidth(f, label) + 12
		if x > 0 && x+w > width {
			x, row = 0, row+1
		}
		// On the last row, an entry that is not the last series must leave
		// room for the count of those that do not fit.
		if row == maxRows || (row == maxRows-1 && i < len(series)-1 && x+w+moreW > width) {
			if row == maxRows {
				row, x = maxRows-1, entries[len(entries)-1].x+legendSwatch+4+textWidth(f, entries[len(entries)-1].label)+12
			}
			entries = append(entries, entry{x: x, y: vg.Length(row), label: "+" + strconv.Itoa(len(series)-i) + " more"})
			break
		}
		entries = append(entries, entry{x: x, y: vg.Length(row), label: label, col: palette[i%len(palette)]})
		x += w
	}
	rows := int(entries[len(entries)-1].y) + 1
	h := vg.Length(rows*legendRow + 4)
	top := c.Rectangle.Min.Y + h
	for _, e := range entries {
		y := top - e.y*legendRow - legendRow/2
		x := c.Rectangle.Min.X + e.x
		if e.col.A == 0 {
			c.FillText(style(f, metaColor, text.XLeft, text.YCenter), vg.Point{X: x, Y: y}, e.label)
			continue
		}
		c.StrokeLine2(draw.LineStyle{Color: e.col, Width: 3}, x, y, x+legendSwatch, y)
		c.FillText(style(f, titleColor, text.XLeft, text.YCenter), vg.Point{X: x + legendSwatch + 4, Y: y}, e.label)
	}
	return h
}

// drawStat shows each series' last value, large and coloured by the
// panel's thresholds, with its legend name under it, in a grid of cells.
func drawStat(c draw.Canvas, p *dashboard.Panel, pr *PanelRecording) {
	type cell struct {
		name  string
		value float64
	}
	var cells []cell
	for _, s := range seriesOf(p, pr) {
		for i := len(s.series.V) - 1; i >= 0; i-- {
			if v := s.series.V[i]; v != nil {
				cells = append(cells, cell{s.name, *v})
				break
			}
		}
	}
	if len(cells) == 0 {
		message(c, "No data", metaColor)
		return
	}
	size := c.Rectangle.Size()
	cols := max(1, min(len(cells), int(size.X/110)))
	rows := (len(cells) + cols - 1) / cols
	const minCellH = 44
	if maxRows := max(1, int(size.Y/minCellH)); rows > maxRows {
		rows = maxRows
		cols = max(1, (len(cells)+rows-1)/rows)
	}
	cw, ch := size.X/vg.Length(cols), size.Y/vg.Length(rows)
	labelFont := face(10, false)
	for i, cl := range cells {
		if i >= rows*cols {
			break
		}
		cx := c.Rectangle.Min.X + cw*vg.Length(i%cols) + cw/2
		cy := c.Rectangle.Max.Y - ch*vg.Length(i/cols) - ch/2
		s := formatValue(unitOf(p), cl.value)
		fs := math.Min(float64(ch)*0.45, 30)
		for fs > 9 && textWidth(face(fs, true), s) > cw*0.85 {
			fs--
		}
		c.FillText(style(face(fs, true), thresholdColor(p, cl.value), text.XCenter, text.YCenter), vg.Point{X: cx, Y: cy + 6}, s)
		c.FillText(style(labelFont, metaColor, text.XCenter, text.YTop), vg.Point{X: cx, Y: cy + 6 - vg.Length(fs)/2 - 2}, fit(labelFont, cl.name, cw-6))
	}
}
