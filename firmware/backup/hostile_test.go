package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// entry is one tar entry of a hand-made payload.
type entry struct {
	hdr  tar.Header
	body []byte
}

func reg(name string, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o600}, body: body}
}

// manifestOf is a manifest.json listing files as the given entries hold them.
func manifestOf(files ...entry) entry {
	m := Manifest{Format: FormatName, Version: FormatVersion, Created: testCreated, Files: []FileInfo{}}
	for _, f := range files {
		m.Files = append(m.Files, FileInfo{Name: f.hdr.Name, Size: int64(len(f.body)), SHA256: hexSum(f.body)})
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return reg(manifestName, b)
}

// rawManifest is a manifest.json with the given text.
func rawManifest(s string) entry { return reg(manifestName, []byte(s)) }

// manifestJSONWith is a good manifest's JSON with one file whose fields
// are given as raw JSON.
func manifestJSONWith(name, size, sum string) string {
	return `{"format":"schoolgate-backup","version":1,"created":"2026-03-02T10:15:30Z","appliance":"","firmware_version":"",` +
		`"files":[{"name":` + name + `,"size":` + size + `,"sha256":` + sum + `}]}`
}

// makeTar writes entries as a tar stream; a header's Size is kept as given,
// so an entry may claim more than its body.
func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("writing tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// setTypeflag rewrites the type of the tar entry whose header starts at
// off, fixing the header's checksum, for types archive/tar will not write.
func setTypeflag(b []byte, off int, typ byte) []byte {
	b = bytes.Clone(b)
	h := b[off : off+512]
	h[156] = typ
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// hostilePayloads are payloads that a backup's tags would vouch for but
// Read must refuse: what someone who knows the passphrase could craft.
func hostilePayloads(t testing.TB) []struct {
	name    string
	payload []byte
	want    error
} {
	a := reg("a", []byte("hello"))
	manifestA := manifestOf(a)
	end := makeTar(t) // the end-of-archive blocks alone
	withTrailer := func(extra string) []byte { return append(makeTar(t, manifestA, a), extra...) }
	badName := func(name string) []byte {
		f := reg(name, []byte("x"))
		return makeTar(t, manifestOf(f), f)
	}
	typed := func(typ byte, linkname string) []byte {
		e := entry{hdr: tar.Header{Typeflag: typ, Name: "a", Linkname: linkname, Mode: 0o777}}
		return makeTar(t, manifestOf(reg("a", nil)), e)
	}
	ms := manifestOf(a)
	sparse := setTypeflag(makeTar(t, ms, a), 512+((len(ms.body)+511)/512)*512, 'S')
	var tooMany []entry
	for i := range 4 {
		tooMany = append(tooMany, reg("f"+strconv.Itoa(i), nil))
	}
	// archive/tar writes a PAX path only from Name: make a PAX header as a
	// file, then retype it, so that the ustar name a becomes ../a.
	pax := makeTar(t, manifestA, reg("PaxHeader", []byte("13 path=../a\n")), a)
	pax = setTypeflag(pax, 512+((len(manifestA.body)+511)/512)*512, tar.TypeXHeader)
	short := a
	short.hdr.Size = 100 // claims more than its body
	return []struct {
		name    string
		payload []byte
		want    error
	}{
		{"empty payload", nil, ErrCorrupt},
		{"not tar", bytes.Repeat([]byte("x"), 2000), ErrCorrupt},
		{"end of archive only", end, ErrCorrupt},
		{"zeros", make([]byte, 4096), ErrCorrupt},
		{"cut short", makeTar(t, manifestA, a)[:700], ErrCorrupt},
		{"no manifest", makeTar(t, a), ErrCorrupt},
		{"manifest second", makeTar(t, a, manifestA), ErrCorrupt},
		{"manifest directory", makeTar(t, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: manifestName}}), ErrCorrupt},
		{"manifest symlink", makeTar(t, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: manifestName, Linkname: "/etc/passwd"}}), ErrCorrupt},
		{"manifest over 1 MiB", makeTar(t, reg(manifestName, bytes.Repeat([]byte(" "), maxManifestSize+1))), ErrTooLarge},
		{"manifest not JSON", makeTar(t, rawManifest("schoolgate")), ErrCorrupt},
		{"manifest empty", makeTar(t, rawManifest("")), ErrCorrupt},
		{"manifest null", makeTar(t, rawManifest("null")), ErrFormat},
		{"manifest array", makeTar(t, rawManifest("[]")), ErrCorrupt},
		{"manifest unknown key", makeTar(t, rawManifest(strings.Replace(manifestJSONWith(`"a"`, "5", `"`+hexSum([]byte("hello"))+`"`), `{"format"`, `{"extra":1,"format"`, 1)), a), ErrCorrupt},
		{"manifest trailing data", makeTar(t, reg(manifestName, append(bytes.Clone(manifestA.body), "{}"...)), a), ErrCorrupt},
		{"manifest other format", makeTar(t, rawManifest(`{"format":"schoolgate-audit","version":1}`)), ErrFormat},
		{"manifest version 2", makeTar(t, rawManifest(`{"format":"schoolgate-backup","version":2}`)), ErrFormat},
		{"manifest without files", makeTar(t, rawManifest(`{"format":"schoolgate-backup","version":1,"created":"2026-03-02T10:15:30Z","appliance":"","firmware_version":""}`)), ErrCorrupt},
		{"manifest files null", makeTar(t, rawManifest(`{"format":"schoolgate-backup","version":1,"created":"2026-03-02T10:15:30Z","appliance":"","firmware_version":"","files":null}`)), ErrCorrupt},
		{"manifest bad time", makeTar(t, rawManifest(strings.Replace(manifestJSONWith(`"a"`, "1", `"`+hexSum(nil)+`"`), "2026-03-02T10:15:30Z", "yesterday", 1))), ErrCorrupt},
		{"manifest control character", makeTar(t, rawManifest(strings.Replace(manifestJSONWith(`"a"`, "0", `"`+hexSum(nil)+`"`), `"appliance":""`, `"appliance":"\u001b[2J"`, 1)), reg("a", nil)), ErrCorrupt},
		{"file without sha256", makeTar(t, rawManifest(strings.Replace(manifestJSONWith(`"a"`, "0", `""`), `,"sha256":""`, "", 1)), reg("a", nil)), ErrCorrupt},
		{"negative size", makeTar(t, rawManifest(manifestJSONWith(`"a"`, "-1", `"`+hexSum(nil)+`"`))), ErrCorrupt},
		{"huge size", makeTar(t, rawManifest(manifestJSONWith(`"a"`, "9223372036854775807", `"`+hexSum(nil)+`"`))), ErrTooLarge},
		{"size overflows", makeTar(t, rawManifest(manifestJSONWith(`"a"`, "9223372036854775808", `"`+hexSum(nil)+`"`))), ErrCorrupt},
		{"fractional size", makeTar(t, rawManifest(manifestJSONWith(`"a"`, "1.5", `"`+hexSum(nil)+`"`))), ErrCorrupt},
		{"upper-case sha256", makeTar(t, rawManifest(manifestJSONWith(`"a"`, "0", `"`+strings.ToUpper(hexSum(nil))+`"`)), reg("a", nil)), ErrCorrupt},
		{"short sha256", makeTar(t, rawManifest(manifestJSONWith(`"a"`, "0", `"abcd"`)), reg("a", nil)), ErrCorrupt},
		{"name not a string", makeTar(t, rawManifest(manifestJSONWith(`7`, "0", `"`+hexSum(nil)+`"`))), ErrCorrupt},
		{"dot-dot", badName("../a"), ErrCorrupt},
		{"deep dot-dot", badName("a/../../../../etc/cron.d/x"), ErrCorrupt},
		{"absolute", badName("/etc/passwd"), ErrCorrupt},
		{"dot", badName("./a"), ErrCorrupt},
		{"double slash", badName("a//b"), ErrCorrupt},
		{"backslash", badName(`..\a`), ErrCorrupt},
		{"NUL", makeTar(t, manifestOf(reg("a\x00b", nil)), reg("a", nil)), ErrCorrupt}, // tar cannot hold it
		{"newline", badName("a\nb"), ErrCorrupt},
		{"non-ASCII", badName("caf\u00e9"), ErrCorrupt},
		{"name too long", badName(strings.Repeat("a", 256)), ErrCorrupt},
		{"reserved name", func() []byte {
			f := reg(manifestName, []byte("x"))
			return makeTar(t, manifestOf(f), f)
		}(), ErrCorrupt},
		{"duplicate", makeTar(t, manifestOf(a, a), a, a), ErrCorrupt},
		{"file and directory", func() []byte {
			b := reg("a/b", []byte("x"))
			return makeTar(t, manifestOf(a, b), a, b)
		}(), ErrCorrupt},
		{"symlink", typed(tar.TypeSymlink, "/etc/passwd"), ErrCorrupt},
		{"relative symlink", typed(tar.TypeSymlink, "../../x"), ErrCorrupt},
		{"hard link", typed(tar.TypeLink, "manifest.json"), ErrCorrupt},
		{"directory", typed(tar.TypeDir, ""), ErrCorrupt},
		{"fifo", typed(tar.TypeFifo, ""), ErrCorrupt},
		{"character device", typed(tar.TypeChar, ""), ErrCorrupt},
		{"GNU sparse", sparse, ErrCorrupt},
		{"PAX path outside", pax, ErrCorrupt},
		{"other name", makeTar(t, manifestA, reg("b", []byte("hello"))), ErrCorrupt},
		{"other content", makeTar(t, manifestA, reg("a", []byte("HELLO"))), ErrCorrupt},
		{"longer", makeTar(t, manifestA, reg("a", []byte("hello!"))), ErrCorrupt},
		{"entry longer than the archive", func() []byte {
			m := makeTar(t, rawManifest(manifestJSONWith(`"a"`, "100", `"`+hexSum(nil)+`"`)))
			return append(m[:len(m)-1024], makeTarNoEnd(t, short)...)
		}(), ErrCorrupt},
		{"missing file", makeTar(t, manifestOf(a, reg("b", nil)), a), ErrCorrupt},
		{"extra file", makeTar(t, manifestA, a, reg("b", nil)), ErrCorrupt},
		{"extra manifest", makeTar(t, manifestA, a, manifestA), ErrCorrupt},
		{"data after the archive", withTrailer("x"), ErrCorrupt},
		{"zeros after the archive", withTrailer(string(make([]byte, 512))), ErrCorrupt},
		{"too many files", makeTar(t, append([]entry{manifestOf(tooMany...)}, tooMany...)...), ErrTooLarge},
		{"files too large", makeTar(t, rawManifest(manifestJSONWith(`"a"`, strconv.Itoa(2<<20), `"`+hexSum(nil)+`"`))), ErrTooLarge},
	}
}

// makeTarNoEnd writes entries without the end-of-archive blocks, the last
// entry's body possibly shorter than its header claims.
func makeTarNoEnd(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Flush() // fails for a short body, which is the point
	return buf.Bytes()
}

// hostileLimits are testLimits with room for 3 files and 1 MiB.
func hostileLimits() Limits {
	lim := testLimits()
	lim.MaxFiles = 3
	lim.MaxSize = 1 << 20
	lim.MaxSize += 64 << 10 // room for the manifest over 1 MiB to be refused as such
	return lim
}

func TestHostilePayloads(t *testing.T) {
	for _, tc := range hostilePayloads(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := restore(t, seal(t, tc.payload, 1<<40), testPassphrase, hostileLimits())
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestHandMadePayload checks that the hand-made payloads differ from good
// ones only where they mean to: a hand-made good one restores.
func TestHandMadePayload(t *testing.T) {
	a, b := reg("a", []byte("hello")), reg("d/b", nil)
	m, dir, err := restore(t, seal(t, makeTar(t, manifestOf(a, b), a, b), 1<<40), testPassphrase, hostileLimits())
	if err != nil {
		t.Fatal(err)
	}
	checkRestored(t, dir, m, []srcFile{{"a", []byte("hello")}, {"d/b", nil}})
}
