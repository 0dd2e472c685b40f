// Package chart draws the web UI's charts on the server as inline SVG: no script, no style
// attribute (the UI's content security policy allows neither), colours as SVG presentation
// attributes. Every chart is an image with a name and a description for screen readers,
// and comes with a data table that says the same in rows and columns.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Palette colours the series in order (then again from the start). Each has at least 3:1
// contrast on white, as WCAG asks of the parts of a graphic, and the set stays apart for the
// common colour-vision deficiencies (after Okabe and Ito, darkened).
var Palette = []string{"#0072b2", "#b84f00", "#007a59", "#a8457f", "#5c5c5c", "#6a3d9a", "#8c6d00", "#1a1a1a"}

// Series is one layer of a stacked bar chart: one value per bar.
type Series struct {
	Name   string
	Values []uint64
}

// Bars is a stacked bar chart: one bar per label, one layer per series.
type Bars struct {
	// ID is unique in the page; the chart's elements' ids start with it.
	ID string
	// Title names the chart ("Queries per hour, last 24 hours").
	Title string
	// XTitle and YTitle name the axes ("Hour (Europe/London)", "Queries").
	XTitle, YTitle string
	// Labels label the bars on the axis (short: "09", "Mon 23"); LongLabels, when set, in
	// the data table and tool tips ("Mon 23 Nov 09:00 to 10:00").
	Labels, LongLabels []string
	Series             []Series
	// Unit names what is counted, singular and plural ("query", "queries").
	Unit, Units string
}

// Geometry of the drawing, in the SVG's user units. The view box is narrow enough that the
// text stays readable when a phone shrinks the chart to its width.
const (
	width, height                      = 480, 260
	left, right, top, bottom           = 60, 24, 14, 56
	plotW, plotH                       = width - left - right, height - top - bottom
	fontSize, smallFont                = 16, 15
	axisColour, gridColour, textColour = "#4a4a4a", "#c8c8c8", "#1a1a1a"
	maxXLabels                         = 8
)

// Totals returns the sum of every series per bar.
func (c Bars) Totals() []uint64 {
	out := make([]uint64, len(c.Labels))
	for _, s := range c.Series {
		for i := range out {
			if i < len(s.Values) {
				out[i] += s.Values[i]
			}
		}
	}
	return out
}

// Total is every value of the chart.
func (c Bars) Total() uint64 {
	var t uint64
	for _, v := range c.Totals() {
		t += v
	}
	return t
}

// SeriesTotal is one series' sum.
func (s Series) Total() uint64 {
	var t uint64
	for _, v := range s.Values {
		t += v
	}
	return t
}

func (c Bars) long(i int) string {
	if i < len(c.LongLabels) && c.LongLabels[i] != "" {
		return c.LongLabels[i]
	}
	return c.Labels[i]
}

func (c Bars) units(n uint64) string {
	if n == 1 && c.Unit != "" {
		return c.Unit
	}
	if c.Units != "" {
		return c.Units
	}
	return ""
}

// Summary says in a sentence what the chart shows: the total, the highest bar and the share
// of each series. It is the SVG's description.
func (c Bars) Summary() string {
	total := c.Total()
	if total == 0 {
		return "None in this period."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s in all", Count(total), c.units(total))
	totals := c.Totals()
	peak := 0
	for i, v := range totals {
		if v > totals[peak] {
			peak = i
		}
	}
	fmt.Fprintf(&b, "; the most, %s, in %s", Count(totals[peak]), c.long(peak))
	if len(c.Series) > 1 {
		b.WriteString(". By segment: ")
		for i, s := range c.Series {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %s", name(s.Name), Count(s.Total()))
		}
	}
	b.WriteString(".")
	return b.String()
}

// name shows a series without a name (events of no segment) as such.
func name(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// id keeps an element id to letters, digits and hyphens.
func id(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// SVG draws the chart. The image is named by its title and described by Summary; its bars
// carry tool tips for mouse users, and Table is the same data for everyone else.
func (c Bars) SVG() template.HTML {
	var b strings.Builder
	cid := id(c.ID)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" aria-describedby="%s-desc" focusable="false">`,
		width, height, esc(c.Title), cid)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, cid, esc(c.Title), cid, esc(c.Summary()))

	totals := c.Totals()
	var peak uint64
	for _, v := range totals {
		peak = max(peak, v)
	}
	step, ticks := niceScale(peak)
	topValue := step * uint64(ticks)
	yOf := func(v uint64) float64 { return top + plotH - float64(v)/float64(topValue)*plotH }

	// Grid and y axis labels.
	fmt.Fprintf(&b, `<g font-size="%d" fill="%s" text-anchor="end">`, smallFont, textColour)
	for i := 0; i <= ticks; i++ {
		v := step * uint64(i)
		y := yOf(v)
		colour := gridColour
		if i == 0 {
			colour = axisColour
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="%s" stroke-width="1"/>`, left, width-right, f(y), f(y), colour)
		fmt.Fprintf(&b, `<text x="%d" y="%s">%s</text>`, left-6, f(y+4.5), Compact(v))
	}
	b.WriteString(`</g>`)

	// Bars, bottom series first.
	n := len(c.Labels)
	if n > 0 {
		bw := float64(plotW) / float64(n)
		barW := math.Max(bw*0.72, 1)
		for i := range n {
			x := left + float64(i)*bw + (bw-barW)/2
			var base uint64
			for si, s := range c.Series {
				if i >= len(s.Values) || s.Values[i] == 0 {
					continue
				}
				v := s.Values[i]
				y0, y1 := yOf(base), yOf(base+v)
				base += v
				fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" stroke="#ffffff" stroke-width="0.75"><title>%s, %s: %s %s</title></rect>`,
					f(x), f(y1), f(barW), f(math.Max(y0-y1, 0.5)), Palette[si%len(Palette)],
					esc(c.long(i)), esc(name(s.Name)), Count(v), esc(c.units(v)))
			}
		}
		// X labels: at most maxXLabels, evenly spaced, always including the last bar.
		every := (n + maxXLabels - 1) / maxXLabels
		fmt.Fprintf(&b, `<g font-size="%d" fill="%s" text-anchor="middle">`, smallFont, textColour)
		for i := n - 1; i >= 0; i -= every {
			x := left + (float64(i)+0.5)*bw
			fmt.Fprintf(&b, `<line x1="%s" x2="%s" y1="%d" y2="%d" stroke="%s" stroke-width="1"/>`, f(x), f(x), top+plotH, top+plotH+4, axisColour)
			fmt.Fprintf(&b, `<text x="%s" y="%d">%s</text>`, f(x), top+plotH+18, esc(c.Labels[i]))
		}
		b.WriteString(`</g>`)
	}
	if peak == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" fill="%s" text-anchor="middle">None in this period</text>`,
			left+plotW/2, top+plotH/2, fontSize, textColour)
	}
	// Axis titles.
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" fill="%s" text-anchor="middle">%s</text>`,
		left+plotW/2, height-8, fontSize, textColour, esc(c.XTitle))
	fmt.Fprintf(&b, `<text transform="translate(16 %d) rotate(-90)" font-size="%d" fill="%s" text-anchor="middle">%s</text>`,
		top+plotH/2, fontSize, textColour, esc(c.YTitle))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Legend lists the series with their colours. It is for sighted readers: the image's
// description and the table name the series for screen readers, so the swatches are hidden
// from them and the names are plain text.
func (c Bars) Legend() template.HTML {
	if len(c.Series) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<ul class="legend">`)
	for i, s := range c.Series {
		fmt.Fprintf(&b, `<li><svg xmlns="http://www.w3.org/2000/svg" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false"><rect width="14" height="14" fill="%s"/></svg> %s</li>`,
			Palette[i%len(Palette)], esc(name(s.Name)))
	}
	b.WriteString(`</ul>`)
	return template.HTML(b.String())
}

// Table is the chart's data as a table: a row per bar, a column per series and one for the
// total, and a row of totals. It has the class visually-hidden: screen readers read it, the
// page does not show it.
func (c Bars) Table(xHeading string) template.HTML {
	var b strings.Builder
	// The class is on a wrapper: a table does not shrink to the class's 1px and would
	// widen the page on a phone.
	fmt.Fprintf(&b, `<div class="visually-hidden"><table id="%s-data"><caption>%s</caption><thead><tr><th scope="col">%s</th>`,
		id(c.ID), esc(c.Title), esc(xHeading))
	for _, s := range c.Series {
		fmt.Fprintf(&b, `<th scope="col">%s</th>`, esc(name(s.Name)))
	}
	b.WriteString(`<th scope="col">Total</th></tr></thead><tbody>`)
	totals := c.Totals()
	for i := range c.Labels {
		fmt.Fprintf(&b, `<tr><th scope="row">%s</th>`, esc(c.long(i)))
		for _, s := range c.Series {
			var v uint64
			if i < len(s.Values) {
				v = s.Values[i]
			}
			fmt.Fprintf(&b, `<td>%s</td>`, Count(v))
		}
		fmt.Fprintf(&b, `<td>%s</td></tr>`, Count(totals[i]))
	}
	b.WriteString(`</tbody><tfoot><tr><th scope="row">Total</th>`)
	for _, s := range c.Series {
		fmt.Fprintf(&b, `<td>%s</td>`, Count(s.Total()))
	}
	fmt.Fprintf(&b, `<td>%s</td></tr></tfoot></table></div>`, Count(c.Total()))
	return template.HTML(b.String())
}

// niceScale picks a step of 1, 2 or 5 times a power of ten and the number of steps (at most
// five) that reach at least peak.
func niceScale(peak uint64) (step uint64, ticks int) {
	if peak == 0 {
		return 1, 4
	}
	for mag := uint64(1); ; mag *= 10 {
		for _, m := range []uint64{1, 2, 5} {
			s := m * mag
			if t := (peak + s - 1) / s; t <= 5 {
				return s, int(max(t, 1))
			}
		}
	}
}

// f formats a coordinate with at most one decimal.
func f(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// Count formats n with thousands separators: 12,345.
func Count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// Compact formats an axis value short: 950, 1.5k, 20k, 3M.
func Compact(n uint64) string {
	switch {
	case n < 1000:
		return strconv.FormatUint(n, 10)
	case n < 1_000_000:
		return trimZero(float64(n)/1000) + "k"
	default:
		return trimZero(float64(n)/1_000_000) + "M"
	}
}

func trimZero(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
