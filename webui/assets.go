package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// The web UI's files are compiled into the daemon: the firmware has no web root on disk to
// get out of step with the binary, and building needs no Node toolchain (htmx is vendored).
//
//go:embed static/*.css static/*.js
var staticFiles embed.FS

//go:embed templates/*.html
var templateFiles embed.FS

// assets serves the embedded static files. Their URLs carry a hash of their content
// (?v=…), so browsers may keep them for a year and still fetch a new firmware's at once.
type assets struct {
	fsys    fs.FS
	version map[string]string // file name → content hash
}

func newAssets() (*assets, error) {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	a := &assets{fsys: sub, version: map[string]string{}}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(sub, e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		a.version[e.Name()] = hex.EncodeToString(sum[:6])
	}
	// The layout names these; a build without them must fail at start, not in a browser.
	for _, name := range []string{"app.css", "htmx.min.js"} {
		if _, err := a.url(name); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// url is the template function "asset": the versioned URL of a static file. An unknown
// name is a programming error and fails the template at New.
func (a *assets) url(name string) (string, error) {
	v, ok := a.version[name]
	if !ok {
		return "", fmt.Errorf("no static asset %q", name)
	}
	return "/static/" + name + "?v=" + v, nil
}

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	v, ok := a.version[name]
	if !ok || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(a.fsys, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", `"`+v+`"`)
	if match := r.Header.Get("If-None-Match"); match == `"`+v+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}
