package lists

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ErrTooLarge is returned when a source exceeds its size limit.
var ErrTooLarge = errors.New("too large")

// ParseUT1 reads a UT1 blacklist archive (tar.gz, or plain tar) and calls add with each
// entry of every <category>/domains file, the category being the folder name. Folder
// prefixes such as "blacklists/", "./blacklists/" or none at all are accepted; other files
// (urls, expressions, usage) and links are ignored. Reading stops with an error wrapping
// ErrTooLarge once more than maxUncompressed bytes have been decompressed, so a hostile
// archive costs bounded time and no memory. Other errors are I/O or archive damage; the
// stats up to that point are returned with them.
func ParseUT1(r io.Reader, maxUncompressed int64, add func(providerCategory, name string)) (ParseStats, error) {
	var stats ParseStats
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return stats, fmt.Errorf("opening gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	}
	lim := &capReader{r: src, left: maxUncompressed}
	tr := tar.NewReader(lim)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return stats, nil
		}
		if err != nil {
			if lim.hit {
				return stats, fmt.Errorf("reading archive: more than %d bytes uncompressed: %w", maxUncompressed, ErrTooLarge)
			}
			return stats, fmt.Errorf("reading archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		cat, ok := ut1Category(h.Name)
		if !ok {
			continue
		}
		fs, err := Parse(tr, FormatDomains, func(name string) { add(cat, name) })
		for i := range fs.Errors {
			fs.Errors[i].Err = cat + "/domains: " + fs.Errors[i].Err
		}
		stats.merge(fs)
		if err != nil {
			if lim.hit {
				return stats, fmt.Errorf("reading %s: more than %d bytes uncompressed: %w", h.Name, maxUncompressed, ErrTooLarge)
			}
			return stats, fmt.Errorf("reading %s: %w", h.Name, err)
		}
	}
}

// ut1Category returns the category of an archive member ".../<category>/domains".
func ut1Category(name string) (string, bool) {
	name = path.Clean("/" + name)
	dir, file := path.Split(name)
	if file != "domains" {
		return "", false
	}
	cat := path.Base(strings.TrimSuffix(dir, "/"))
	if cat == "" || cat == "/" || cat == "." || cat == "blacklists" {
		return "", false
	}
	for i := 0; i < len(cat); i++ {
		c := cat[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", false
		}
	}
	return strings.ToLower(cat), true
}

// capReader fails once more than left bytes have been read.
type capReader struct {
	r    io.Reader
	left int64
	hit  bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Only an error if there is really more.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.hit = true
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
