package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"slices"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// metric is one panel of the chart.
type metric struct {
	title string
	value func(Summary) float64
}

var metrics = []metric{
	{"Requests/s (higher is better)", func(s Summary) float64 { return s.RPS }},
	{"p99 latency, ms (lower is better)", func(s Summary) float64 { return s.P99 / 1e3 }},
	{"Proxy CPU per request, us (lower is better)", func(s Summary) float64 { return s.CPU }},
}

// palette gives the usual targets fixed colours, so charts from different
// runs compare at a glance; any other target takes the next spare colour.
var palette = map[string]color.RGBA{
	"dlb":     {0x1f, 0x77, 0xb4, 0xff},
	"nginx":   {0x2c, 0xa0, 0x2c, 0xff},
	"haproxy": {0xff, 0x7f, 0x0e, 0xff},
	"direct":  {0x7f, 0x7f, 0x7f, 0xff},
}
var spare = []color.RGBA{{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}}

var (
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
	ink   = color.RGBA{0x22, 0x22, 0x22, 0xff}
	grey  = color.RGBA{0x88, 0x88, 0x88, 0xff}
	grid  = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	face  = basicfont.Face7x13 // ASCII only: write "us", not "µs"
)

const (
	panelW  = 420
	panelH  = 360
	marginL = 56 // room for the y-axis labels
	top     = 56 // title and subtitle
	legendH = 40
)

// chart is what render draws: the summary rows, the bar order, and the
// targets that were skipped (shown in the legend only).
type chart struct {
	title, subtitle string
	rows            []Summary
	targets         []string
	skipped         []string
}

func (c *chart) find(conns int, target string) (Summary, bool) {
	for _, r := range c.rows {
		if r.Conns == conns && r.Target == target {
			return r, true
		}
	}
	return Summary{}, false
}

func (c *chart) conns() []int {
	var out []int
	for _, r := range c.rows {
		if !slices.Contains(out, r.Conns) {
			out = append(out, r.Conns)
		}
	}
	return out
}

// render draws one panel per metric, each with a group of bars per
// concurrency level and one bar per target that has data.
func (c *chart) render() *image.RGBA {
	colours := map[string]color.RGBA{}
	next := 0
	for _, tg := range append(slices.Clone(c.targets), c.skipped...) {
		if col, ok := palette[tg]; ok {
			colours[tg] = col
		} else if _, ok := colours[tg]; !ok {
			colours[tg] = spare[next%len(spare)]
			next++
		}
	}

	width := len(metrics) * panelW
	height := top + panelH + legendH
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), white)
	text(img, width/2, 20, c.title, ink, 0)
	text(img, width/2, 38, c.subtitle, grey, 0)
	for i, m := range metrics {
		c.panel(img, image.Rect(i*panelW, top, (i+1)*panelW, top+panelH), colours, m)
	}

	// Legend: a swatch and a name per target, centred under the panels.
	const item = 130
	legend := append(slices.Clone(c.targets), c.skipped...)
	x := width/2 - len(legend)*item/2
	y := top + panelH + 24
	for _, tg := range legend {
		name := tg
		if slices.Contains(c.skipped, tg) {
			name += " (skipped)"
		}
		fill(img, image.Rect(x, y-10, x+14, y+2), colours[tg])
		text(img, x+20, y, name, ink, -1)
		x += item
	}
	return img
}

func (c *chart) panel(img *image.RGBA, r image.Rectangle, colours map[string]color.RGBA, m metric) {
	plot := image.Rect(r.Min.X+marginL, r.Min.Y+36, r.Max.X-16, r.Max.Y-30)
	text(img, (r.Min.X+r.Max.X)/2, r.Min.Y+16, m.title, ink, 0)

	maxV := 0.0
	for _, row := range c.rows {
		if v := m.value(row); v > maxV {
			maxV = v
		}
	}
	axisTop := niceCeil(maxV * 1.08) // leave room for the value labels
	const ticks = 5
	for k := 0; k <= ticks; k++ {
		y := plot.Max.Y - int(math.Round(float64(plot.Dy())*float64(k)/ticks))
		fill(img, image.Rect(plot.Min.X, y, plot.Max.X, y+1), grid)
		text(img, plot.Min.X-6, y+4, short(axisTop*float64(k)/ticks), grey, 1)
	}
	fill(img, image.Rect(plot.Min.X, plot.Max.Y, plot.Max.X, plot.Max.Y+1), ink)

	conns := c.conns()
	if len(conns) == 0 || len(c.targets) == 0 {
		return
	}
	groupW := plot.Dx() / len(conns)
	barW := min((groupW-24)/len(c.targets), 40)
	for g, cn := range conns {
		gx := plot.Min.X + g*groupW
		start := gx + (groupW-barW*len(c.targets))/2
		text(img, gx+groupW/2, plot.Max.Y+18, fmt.Sprintf("%d conns", cn), ink, 0)
		for b, tg := range c.targets {
			row, ok := c.find(cn, tg)
			if !ok {
				continue
			}
			x := start + b*barW
			v := m.value(row)
			if math.IsNaN(v) {
				text(img, x+barW/2, plot.Max.Y-4, "n/a", grey, 0)
				continue
			}
			h := int(math.Round(float64(plot.Dy()) * v / axisTop))
			fill(img, image.Rect(x+2, plot.Max.Y-h, x+barW-2, plot.Max.Y), colours[tg])
			text(img, x+barW/2, plot.Max.Y-h-4, short(v), ink, 0)
		}
	}
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// text draws s with its baseline at y; align is -1 (x is the left edge),
// 0 (x is the centre) or 1 (x is the right edge).
func text(img *image.RGBA, x, y int, s string, c color.Color, align int) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face}
	w := d.MeasureString(s).Round()
	switch align {
	case 0:
		x -= w / 2
	case 1:
		x -= w
	}
	d.Dot = fixed.P(x, y)
	d.DrawString(s)
}

// niceCeil rounds v up to a round multiple of a power of ten, for axis tops.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// short formats a value for a bar or axis label in about six characters.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimZeros(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case a >= 1e4:
		return trimZeros(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 1e3:
		return trimZeros(fmt.Sprintf("%.2f", v/1e3)) + "k"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return trimZeros(fmt.Sprintf("%.1f", v))
	default:
		return trimZeros(fmt.Sprintf("%.2f", v))
	}
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
