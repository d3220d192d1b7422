// Package render draws a preview of a dashboard's layout, the panel grid
// with titles, as a PNG, so that reviewers see a dashboard's shape without
// a Grafana. It draws boxes and text only: no data.
package render

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Grid geometry: Grafana's grid is 24 columns wide and panels are measured
// in rows of about 30 px; the preview keeps that ratio at a smaller scale.
const (
	colWidth  = 40
	rowHeight = 20
	margin    = 8
	header    = 32
)

var (
	background = color.RGBA{0x11, 0x12, 0x17, 0xff}
	panelFill  = color.RGBA{0x18, 0x1b, 0x1f, 0xff}
	panelEdge  = color.RGBA{0x3d, 0x41, 0x4a, 0xff}
	titleColor = color.RGBA{0xd8, 0xd9, 0xda, 0xff}
	metaColor  = color.RGBA{0x8e, 0x8e, 0x8e, 0xff}
)

// PNG renders d's panel grid with each panel's title, type and unit.
func PNG(d dashboard.Dashboard) ([]byte, error) { //nolint:staticcheck // SA1019: hopwatch generates v1 (classic) dashboards
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
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{background}, image.Point{}, draw.Src)
	text(img, margin, 20, title(d), titleColor, w-2*margin)
	for _, p := range d.Panels {
		if p.Panel == nil || p.Panel.GridPos == nil {
			continue
		}
		gp := p.Panel.GridPos
		r := image.Rect(margin+int(gp.X)*colWidth, header+margin+int(gp.Y)*rowHeight,
			margin+int(gp.X+gp.W)*colWidth, header+margin+int(gp.Y+gp.H)*rowHeight).Inset(2)
		draw.Draw(img, r, &image.Uniform{panelFill}, image.Point{}, draw.Src)
		outline(img, r, panelEdge)
		t := ""
		if p.Panel.Title != nil {
			t = *p.Panel.Title
		}
		text(img, r.Min.X+6, r.Min.Y+16, t, titleColor, r.Dx()-12)
		meta := p.Panel.Type
		if u := p.Panel.FieldConfig; u != nil && u.Defaults.Unit != nil {
			meta += " · " + *u.Defaults.Unit
		}
		meta += fmt.Sprintf(" · %d queries", len(p.Panel.Targets))
		text(img, r.Min.X+6, r.Min.Y+32, meta, metaColor, r.Dx()-12)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("render: encode %q: %w", title(d), err)
	}
	return buf.Bytes(), nil
}

func title(d dashboard.Dashboard) string { //nolint:staticcheck // SA1019: v1 on purpose
	if d.Title == nil {
		return ""
	}
	return *d.Title
}

// ascii replaces the punctuation the titles use that the 7x13 font lacks.
var ascii = strings.NewReplacer("\u2212", "-", "\u2013", "-", "\u2014", "-", "\u00b7", "|", "\u2026", "...")

func outline(img *image.RGBA, r image.Rectangle, c color.Color) {
	for x := r.Min.X; x < r.Max.X; x++ {
		img.Set(x, r.Min.Y, c)
		img.Set(x, r.Max.Y-1, c)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		img.Set(r.Min.X, y, c)
		img.Set(r.Max.X-1, y, c)
	}
}

// text draws s at (x, baseline y), cut with "…" to fit width pixels.
func text(img *image.RGBA, x, y int, s string, c color.Color, width int) {
	face := basicfont.Face7x13
	s = ascii.Replace(s)
	maxRunes := width / 7
	if rs := []rune(s); maxRunes > 1 && len(rs) > maxRunes {
		s = string(rs[:maxRunes-1]) + "~"
	}
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
