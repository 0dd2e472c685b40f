package qr

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"rsc.io/qr"
)

// A URI as auth.TOTPURI makes it.
const sampleURI = "otpauth://totp/schoolgate:j.smith%40school.example?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=schoolgate&algorithm=SHA1&digits=6&period=30"

var squareRE = regexp.MustCompile(`M(\d+) (\d+)h1v1h-1z`)

// parseSVG reads the modules back from the SVG: the size from the viewBox and a dark module
// for every unit square of the path. It fails on anything else in the path's data.
func parseSVG(t *testing.T, svg string) [][]bool {
	t.Helper()
	vb := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindStringSubmatch(svg)
	if vb == nil || vb[1] != vb[2] {
		t.Fatalf("no square viewBox in %.200s", svg)
	}
	n, _ := strconv.Atoi(vb[1])
	size := n - 2*QuietZone
	if strings.Count(svg, "<path") != 1 {
		t.Fatalf("want one path, got %d", strings.Count(svg, "<path"))
	}
	d := regexp.MustCompile(`<path [^>]*d="([^"]*)"`).FindStringSubmatch(svg)
	if d == nil {
		t.Fatal("no path data")
	}
	if rest := squareRE.ReplaceAllString(d[1], ""); rest != "" {
		t.Fatalf("path data has more than unit squares: %.100q", rest)
	}
	dark := make([][]bool, size)
	for i := range dark {
		dark[i] = make([]bool, size)
	}
	for _, m := range squareRE.FindAllStringSubmatch(d[1], -1) {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		x, y = x-QuietZone, y-QuietZone
		if x < 0 || y < 0 || x >= size || y >= size {
			t.Fatalf("square at %s,%s is in the quiet zone or outside", m[1], m[2])
		}
		if dark[y][x] {
			t.Fatalf("two squares at %d,%d", x, y)
		}
		dark[y][x] = true
	}
	return dark
}

func TestMatrixIsTheLibrarysCode(t *testing.T) {
	for _, text := range []string{sampleURI, "schoolgate", "x"} {
		m, err := Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		c, err := qr.Encode(text, qr.M)
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != c.Size || m.Size < 21 || (m.Size-17)%4 != 0 || len(m.Dark) != m.Size {
			t.Fatalf("%q: size %d, library's %d", text, m.Size, c.Size)
		}
		for y := range m.Size {
			for x := range m.Size {
				if m.Dark[y][x] != c.Black(x, y) {
					t.Fatalf("%q: module x=%d y=%d is %v, library says %v", text, x, y, m.Dark[y][x], c.Black(x, y))
				}
			}
		}
	}
}

func TestSVG(t *testing.T) {
	m, err := Encode(sampleURI)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(m.SVG())
	for _, want := range []string{`<svg xmlns="http://www.w3.org/2000/svg"`, `role="img"`, `aria-label="` + Label + `"`,
		fmt.Sprintf(`viewBox="0 0 %d %d"`, m.Size+8, m.Size+8), `fill="#ffffff"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
	// Nothing of the input is in the markup, and nothing needs inline style.
	for _, bad := range []string{"otpauth", "JBSWY3DP", "style", "<script"} {
		if strings.Contains(svg, bad) {
			t.Errorf("SVG contains %q", bad)
		}
	}
	// One square per dark module, each where the module is.
	dark := parseSVG(t, svg)
	squares, modules := len(squareRE.FindAllString(svg, -1)), 0
	for y := range m.Size {
		for x := range m.Size {
			if m.Dark[y][x] {
				modules++
			}
			if dark[y][x] != m.Dark[y][x] {
				t.Fatalf("SVG module x=%d y=%d is %v, want %v", x, y, dark[y][x], m.Dark[y][x])
			}
		}
	}
	if squares != modules || modules == 0 {
		t.Errorf("%d squares for %d dark modules", squares, modules)
	}
	// The three finder patterns, their light separators and the timing patterns are where
	// the standard puts them: a reader finds the code and its orientation.
	finder := func(x0, y0 int) {
		for dy := -1; dy <= 7; dy++ {
			for dx := -1; dx <= 7; dx++ {
				x, y := x0+dx, y0+dy
				if x < 0 || y < 0 || x >= m.Size || y >= m.Size {
					continue
				}
				ring := max(abs(dx-3), abs(dy-3)) // 0 centre … 3 outer ring, 4 separator
				want := ring != 2 && ring != 4
				if dark[y][x] != want {
					t.Fatalf("finder at %d,%d: module %d,%d is %v", x0, y0, x, y, dark[y][x])
				}
			}
		}
	}
	finder(0, 0)
	finder(m.Size-7, 0)
	finder(0, m.Size-7)
	for i := 8; i < m.Size-8; i++ {
		if dark[6][i] != (i%2 == 0) || dark[i][6] != (i%2 == 0) {
			t.Fatalf("timing pattern wrong at %d", i)
		}
	}
	if _, err := SVG(strings.Repeat("x", 5000)); err == nil {
		t.Error("5000 bytes encoded")
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// TestDecodeVersion1 reads a version 1 code back from the SVG with a small decoder written
// here from the standard (format information, mask, data placement, byte mode), so that the
// image is checked against the text and not only against the library that drew it.
func TestDecodeVersion1(t *testing.T) {
	const text = "schoolgate 2fa" // 14 bytes: the most byte mode fits in version 1 at level M
	svg, err := SVG(text)
	if err != nil {
		t.Fatal(err)
	}
	dark := parseSVG(t, string(svg))
	if len(dark) != 21 {
		t.Fatalf("size %d, want version 1 (21)", len(dark))
	}
	got, level := decodeV1(t, dark)
	if level != "M" || got != text {
		t.Errorf("decoded %q at level %s, want %q at M", got, level, text)
	}
}

func decodeV1(t *testing.T, dark [][]bool) (string, string) {
	const size = 21
	bit := func(row, col int) uint { // dark is 1
		if dark[row][col] {
			return 1
		}
		return 0
	}
	// Format information beside the top-left finder: row 8, columns 0-5, 7, 8 carry bits
	// 14-7; column 8, rows 7, 5-0 carry bits 6-0.
	var format uint
	for _, c := range []int{0, 1, 2, 3, 4, 5, 7, 8} {
		format = format<<1 | bit(8, c)
	}
	for _, r := range []int{7, 5, 4, 3, 2, 1, 0} {
		format = format<<1 | bit(r, 8)
	}
	format ^= 0x5412
	data := format >> 10
	// The BCH(15,5) check bits must match, which also proves the orientation.
	rem := data << 10
	for i := 14; i >= 10; i-- {
		if rem&(1<<i) != 0 {
			rem ^= 0x537 << (i - 10)
		}
	}
	if format != data<<10|rem {
		t.Fatalf("format information %015b fails its check", format)
	}
	level := [4]string{"M", "L", "H", "Q"}[data>>3]
	mask := int(data & 7)
	masked := func(i, j int) bool {
		switch mask {
		case 0:
			return (i+j)%2 == 0
		case 1:
			return i%2 == 0
		case 2:
			return j%3 == 0
		case 3:
			return (i+j)%3 == 0
		case 4:
			return (i/2+j/3)%2 == 0
		case 5:
			return i*j%2+i*j%3 == 0
		case 6:
			return (i*j%2+i*j%3)%2 == 0
		}
		return ((i+j)%2+i*j%3)%2 == 0
	}
	function := func(r, c int) bool {
		return r == 6 || c == 6 || (r <= 8 && c <= 8) || (r <= 8 && c >= size-8) || (r >= size-8 && c <= 8)
	}
	// Data runs in two-module columns from the bottom right, up then down, skipping the
	// vertical timing pattern.
	var bits []uint
	up := true
	for j := size - 1; j > 0; j -= 2 {
		if j == 6 {
			j--
		}
		for k := range size {
			r := k
			if up {
				r = size - 1 - k
			}
			for _, c := range []int{j, j - 1} {
				if function(r, c) {
					continue
				}
				b := bit(r, c)
				if masked(r, c) {
					b ^= 1
				}
				bits = append(bits, b)
			}
		}
		up = !up
	}
	if len(bits) != 26*8 {
		t.Fatalf("%d data modules, want 208", len(bits))
	}
	pos := 0
	read := func(n int) int {
		v := 0
		for range n {
			v = v<<1 | int(bits[pos])
			pos++
		}
		return v
	}
	if mode := read(4); mode != 4 {
		t.Fatalf("mode %04b, want byte mode 0100", mode)
	}
	n := read(8)
	if n > 14 {
		t.Fatalf("length %d", n)
	}
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(read(8))
	}
	return string(out), level
}
