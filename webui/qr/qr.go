// Package qr renders a QR code as an inline SVG image for the web UI's pages, so that an
// authenticator app can scan the otpauth:// link at enrolment. rsc.io/qr encodes; this
// package only draws the modules.
//
// The SVG is returned as template.HTML so that html/template inserts it as markup. It is
// safe to do so because every byte of it is either a constant of this file or a number this
// package computed: the encoded text never appears in the output, and neither does any
// other input. It needs no inline style (the CSP forbids it): colours and rendering hints are
// SVG presentation attributes, and the size comes from the page's style sheet (class "qr").
package qr

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"

	"rsc.io/qr"
)

// QuietZone is the light margin around the code, in modules: the four the QR standard asks
// for, without which phones struggle to find the code on a busy page.
const QuietZone = 4

// Label is the SVG's accessible name.
const Label = "QR code of the authenticator link: scan it with the app"

// Matrix is a QR code's modules: Dark[y][x] is true for a dark module in row y, column x.
type Matrix struct {
	Size int
	Dark [][]bool
}

// Encode encodes text at error correction level M (15% of the code may be damaged), the
// level authenticator apps' own examples use.
func Encode(text string) (Matrix, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return Matrix{}, fmt.Errorf("qr: encoding %d bytes: %w", len(text), err)
	}
	m := Matrix{Size: c.Size, Dark: make([][]bool, c.Size)}
	for y := range c.Size {
		m.Dark[y] = make([]bool, c.Size)
		for x := range c.Size {
			m.Dark[y][x] = c.Black(x, y)
		}
	}
	return m, nil
}

// SVG renders the matrix: a light square with the quiet zone, and one path of unit squares,
// one square per dark module. The viewBox is in modules; the page sizes the image.
func (m Matrix) SVG() template.HTML {
	n := strconv.Itoa(m.Size + 2*QuietZone)
	var b strings.Builder
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" class="qr" role="img" aria-label="` + Label + `" viewBox="0 0 ` + n + ` ` + n +
		`" width="` + strconv.Itoa(4*(m.Size+2*QuietZone)) + `" height="` + strconv.Itoa(4*(m.Size+2*QuietZone)) +
		`" shape-rendering="crispEdges"><rect width="` + n + `" height="` + n + `" fill="#ffffff"/><path fill="#000000" d="`)
	for y, row := range m.Dark {
		for x, dark := range row {
			if dark {
				b.WriteString("M" + strconv.Itoa(x+QuietZone) + " " + strconv.Itoa(y+QuietZone) + "h1v1h-1z")
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String())
}

// SVG encodes text and renders it; see Matrix.SVG.
func SVG(text string) (template.HTML, error) {
	m, err := Encode(text)
	if err != nil {
		return "", err
	}
	return m.SVG(), nil
}
