package chart

import (
	"encoding/xml"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func sample() Bars {
	return Bars{
		ID: "q24", Title: "Queries per hour", XTitle: "Hour (Europe/London)", YTitle: "Queries",
		Labels:     []string{"09", "10", "11", "12"},
		LongLabels: []string{"09:00 to 10:00", "10:00 to 11:00", "11:00 to 12:00", "12:00 to 13:00 (so far)"},
		Series: []Series{
			{Name: "pupils", Values: []uint64{10, 0, 1234, 7}},
			{Name: `<script>alert("x")</script>`, Values: []uint64{5, 0, 66, 0}},
			{Name: "", Values: []uint64{1, 0, 0, 0}},
		},
		Unit: "query", Units: "queries",
	}
}

func TestSVGIsAccessibleAndSafe(t *testing.T) {
	c := sample()
	svg := string(c.SVG())
	for _, want := range []string{`role="img"`, `aria-label="Queries per hour"`, `<title id="q24-title">Queries per hour</title>`,
		`<desc id="q24-desc">1,323 queries in all; the most, 1,300, in 11:00 to 12:00. By segment: pupils 1,251, &lt;script&gt;`,
		`aria-describedby="q24-desc"`, "Hour (Europe/London)", ">Queries</text>", `focusable="false"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "<script") || strings.Contains(svg, "style=") {
		t.Errorf("SVG has script or a style attribute:\n%s", svg)
	}
	// It is well-formed XML.
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed: %v\n%s", err, svg)
			}
			break
		}
	}
}

var rectRE = regexp.MustCompile(`<rect x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)" fill="[^"]+"[^>]*><title>[^<]*: ([0-9,]+) quer`)

func TestBarsAddUp(t *testing.T) {
	c := sample()
	svg := string(c.SVG())
	var sum uint64
	var heights []float64
	for _, m := range rectRE.FindAllStringSubmatch(svg, -1) {
		v, _ := strconv.ParseUint(strings.ReplaceAll(m[3], ",", ""), 10, 64)
		sum += v
		h, _ := strconv.ParseFloat(m[2], 64)
		heights = append(heights, h)
	}
	if sum != c.Total() || sum != 1323 {
		t.Errorf("bars add up to %d, want %d", sum, c.Total())
	}
	if len(heights) != 6 { // zero values draw nothing
		t.Errorf("%d bars drawn, want 6", len(heights))
	}
	// 1234 on a scale to 1500 over 194 units.
	if got, want := heights[3], 1234.0/1500*plotH; got < want-0.1 || got > want+0.1 {
		t.Errorf("height of 1234: %v, want %v", got, want)
	}
}

func TestTable(t *testing.T) {
	c := sample()
	tab := string(c.Table("Hour"))
	for _, want := range []string{`class="visually-hidden"`, `<caption>Queries per hour</caption>`, `<th scope="col">Hour</th>`,
		`<th scope="col">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</th>`, `<th scope="col">(none)</th>`,
		`<th scope="row">11:00 to 12:00</th><td>1,234</td><td>66</td><td>0</td><td>1,300</td>`,
		`<tfoot><tr><th scope="row">Total</th><td>1,251</td><td>71</td><td>1</td><td>1,323</td></tr></tfoot>`} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if l := string(c.Legend()); !strings.Contains(l, `aria-hidden="true"`) || strings.Contains(l, "<script") || !strings.Contains(l, "pupils") {
		t.Errorf("legend: %s", l)
	}
}

func TestEmpty(t *testing.T) {
	c := Bars{ID: "e", Title: "Blocks", Labels: []string{"a", "b"}, Series: []Series{{Name: "s", Values: []uint64{0, 0}}}}
	if svg := string(c.SVG()); !strings.Contains(svg, "None in this period") || strings.Contains(svg, "<rect") {
		t.Errorf("empty chart:\n%s", svg)
	}
	if c.Summary() != "None in this period." {
		t.Errorf("summary %q", c.Summary())
	}
	// No labels at all still draws an image.
	if svg := string((Bars{ID: "x", Title: "t"}).SVG()); !strings.Contains(svg, "</svg>") {
		t.Error(svg)
	}
}

func TestScaleAndFormats(t *testing.T) {
	for _, tt := range []struct {
		peak  uint64
		step  uint64
		ticks int
	}{{0, 1, 4}, {1, 1, 1}, {4, 1, 4}, {7, 2, 4}, {10, 2, 5}, {11, 5, 3}, {1234, 500, 3}, {99999, 20000, 5}} {
		s, n := niceScale(tt.peak)
		if s != tt.step || n != tt.ticks || s*uint64(n) < tt.peak {
			t.Errorf("niceScale(%d) = %d×%d, want %d×%d", tt.peak, s, n, tt.step, tt.ticks)
		}
	}
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", 100000: "100,000"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q", n, got)
		}
	}
	for n, want := range map[uint64]string{500: "500", 1500: "1.5k", 20000: "20k", 3_000_000: "3M"} {
		if got := Compact(n); got != want {
			t.Errorf("Compact(%d) = %q", n, got)
		}
	}
}
