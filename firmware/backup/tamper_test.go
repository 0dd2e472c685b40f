package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// headerLen is the length of data's header line, "\n" included.
func headerLen(t testing.TB, data []byte) int {
	t.Helper()
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		t.Fatal("no header line")
	}
	return i + 1
}

// chunks splits a backup into its header line and its sealed chunks.
func chunks(t testing.TB, data []byte) (hdr []byte, cs [][]byte) {
	t.Helper()
	n := headerLen(t, data)
	hdr, rest := data[:n], data[n:]
	for len(rest) > 0 {
		k := min(len(rest), chunkSize+tagSize)
		cs = append(cs, rest[:k])
		rest = rest[k:]
	}
	return hdr, cs
}

func join(hdr []byte, cs ...[]byte) []byte {
	return bytes.Join(append([][]byte{hdr}, cs...), nil)
}

// threeChunks is a backup whose payload takes three chunks.
func threeChunks(t testing.TB, seed byte) []byte {
	t.Helper()
	data := makeBackup(t, []srcFile{{"db/events.sqlite", randomBytes(150<<10, uint64(seed))}}, seed)
	if _, cs := chunks(t, data); len(cs) != 3 {
		t.Fatalf("%d chunks, want 3", len(cs))
	}
	return data
}

// readFails reads data into dir, which must stay empty, and returns the error.
func readFails(t *testing.T, data []byte, dir string) error {
	t.Helper()
	_, err := Read(bytes.NewReader(data), testPassphrase, dir, testLimits())
	if err == nil {
		t.Fatal("Read accepted it")
	}
	mustBeEmpty(t, dir)
	return err
}

// TestFlipEveryByte flips one bit of every byte of a small backup in turn:
// each must be caught, as damage, never as a wrong passphrase.
func TestFlipEveryByte(t *testing.T) {
	data := makeBackup(t, []srcFile{{"config.yaml", []byte("a: 1\n")}, {"empty", nil}}, 1)
	hlen := headerLen(t, data)
	dir := t.TempDir()
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 1 << (i % 8)
		err := readFails(t, bad, dir)
		if !errors.Is(err, ErrCorrupt) && !(i < hlen && errors.Is(err, ErrFormat)) {
			t.Fatalf("byte %d of %d (header %d) flipped: got %v", i, len(data), hlen, err)
		}
	}
}

// TestFlipAroundChunkBoundaries does the same around the boundaries of a
// larger backup, where an off-by-one would hide.
func TestFlipAroundChunkBoundaries(t *testing.T) {
	data := threeChunks(t, 2)
	hlen := headerLen(t, data)
	var positions []int
	for k := 0; k <= 3; k++ {
		b := hlen + k*(chunkSize+tagSize)
		for _, d := range []int{-17, -16, -15, -2, -1, 0, 1, 2, chunkSize / 2} {
			if p := b + d; p >= 0 && p < len(data) {
				positions = append(positions, p)
			}
		}
	}
	positions = append(positions, len(data)-1)
	dir := t.TempDir()
	for _, i := range positions {
		bad := bytes.Clone(data)
		bad[i] ^= 0x80
		if err := readFails(t, bad, dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d of %d flipped: got %v, want ErrCorrupt", i, len(data), err)
		}
	}
}

func TestTruncation(t *testing.T) {
	data := threeChunks(t, 3)
	hlen := headerLen(t, data)
	cuts := []int{0, 1, len(magic), hlen / 2, hlen - 1, hlen, hlen + 1, hlen + tagSize - 1, hlen + tagSize}
	for k := 1; k <= 2; k++ {
		b := hlen + k*(chunkSize+tagSize)
		cuts = append(cuts, b-tagSize-1, b-tagSize, b-1, b, b+1, b+tagSize, b+chunkSize/2)
	}
	cuts = append(cuts, len(data)-tagSize-1, len(data)-tagSize, len(data)-1)
	dir := t.TempDir()
	for _, n := range cuts {
		err := readFails(t, data[:n], dir)
		want := ErrCorrupt
		if n < len(magic)+1 {
			want = ErrFormat
		}
		if !errors.Is(err, want) {
			t.Errorf("cut to %d of %d bytes: got %v, want %v", n, len(data), err, want)
		}
	}
	for _, extra := range []string{"\x00", "\n", strings.Repeat("x", tagSize), strings.Repeat("x", chunkSize+tagSize)} {
		if err := readFails(t, append(bytes.Clone(data), extra...), dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d bytes appended: got %v, want ErrCorrupt", len(extra), err)
		}
	}
}

func TestChunkOrder(t *testing.T) {
	data := threeChunks(t, 4)
	other := threeChunks(t, 5) // same passphrase, its own salt and key
	hdr, c := chunks(t, data)
	ohdr, oc := chunks(t, other)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"first dropped", join(hdr, c[1], c[2])},
		{"middle dropped", join(hdr, c[0], c[2])},
		{"last dropped", join(hdr, c[0], c[1])},
		{"first duplicated", join(hdr, c[0], c[0], c[1], c[2])},
		{"middle duplicated", join(hdr, c[0], c[1], c[1], c[2])},
		{"last duplicated", join(hdr, c[0], c[1], c[2], c[2])},
		{"first two swapped", join(hdr, c[1], c[0], c[2])},
		{"last two swapped", join(hdr, c[0], c[2], c[1])},
		{"reversed", join(hdr, c[2], c[1], c[0])},
		{"chunk from another backup", join(hdr, c[0], oc[1], c[2])},
		{"last chunk from another backup", join(hdr, c[0], c[1], oc[2])},
		{"header of another backup", join(ohdr, c[0], c[1], c[2])},
		{"no chunks", hdr},
	} {
		if err := readFails(t, tc.data, dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", tc.name, err)
		}
	}
	if _, _, err := restore(t, join(hdr, c...), testPassphrase, testLimits()); err != nil {
		t.Fatalf("reassembled unchanged: %v", err)
	}
}

// rewriteHeader edits data's header line field by field and, unless keepSum,
// recomputes the sum, as a deliberate forger would.
func rewriteHeader(t testing.TB, data []byte, edit func(fields []string) []string, keepSum bool) []byte {
	t.Helper()
	n := headerLen(t, data)
	line := strings.TrimSuffix(string(data[:n]), "\n")
	fields := strings.Split(line, " ")
	sum := fields[len(fields)-1]
	fields = edit(fields[:len(fields)-1])
	body := strings.Join(fields, " ")
	if !keepSum {
		s := sha256.Sum256([]byte(body))
		sum = "sum=" + hex.EncodeToString(s[:sumSize])
	}
	return append([]byte(body+" "+sum+"\n"), data[n:]...)
}

func setField(i int, v string) func([]string) []string {
	return func(f []string) []string { f[i] = v; return f }
}

func TestHeaderTampering(t *testing.T) {
	data := makeBackup(t, []srcFile{{"a", []byte("x")}}, 1)
	fields := strings.Fields(string(data[:headerLen(t, data)]))
	flipHex := func(i int) func([]string) []string {
		return func(f []string) []string {
			k, v, _ := strings.Cut(f[i], "=")
			b, _ := hex.DecodeString(v)
			b[0] ^= 1
			f[i] = k + "=" + hex.EncodeToString(b)
			return f
		}
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		want    error
		keepSum bool
	}{
		// The nonce prefix feeds no key: the chunks' tags catch it.
		{name: "nonce prefix", data: rewriteHeader(t, data, flipHex(7), false), want: ErrCorrupt},
		// A forged salt or check value gives other keys: indistinguishable
		// from a wrong passphrase, as doc.go says.
		{name: "salt", data: rewriteHeader(t, data, flipHex(6), false), want: ErrPassphrase},
		{name: "check value", data: rewriteHeader(t, data, flipHex(8), false), want: ErrPassphrase},
		{name: "argon2 time", data: rewriteHeader(t, data, setField(4, "t=2"), false), want: ErrPassphrase},
		// Accidents are caught by the sum.
		{name: "salt, sum kept", data: rewriteHeader(t, data, flipHex(6), true), want: ErrCorrupt},
		{name: "time, sum kept", data: rewriteHeader(t, data, setField(4, "t=2"), true), want: ErrCorrupt},
		// Non-canonical forms, even with a good sum.
		{name: "leading zero", data: rewriteHeader(t, data, setField(3, "m=08"), false), want: ErrCorrupt},
		{name: "plus sign", data: rewriteHeader(t, data, setField(3, "m=+8"), false), want: ErrCorrupt},
		{name: "upper-case hex", data: rewriteHeader(t, data, setField(6, strings.ToUpper(fields[6])), false), want: ErrCorrupt},
		{name: "short salt", data: rewriteHeader(t, data, setField(6, fields[6][:len(fields[6])-2]), false), want: ErrCorrupt},
		{name: "other kdf", data: rewriteHeader(t, data, setField(2, "kdf=scrypt"), false), want: ErrCorrupt},
		{name: "extra field", data: rewriteHeader(t, data, func(f []string) []string { return append(f, "x=1") }, false), want: ErrCorrupt},
		{name: "double space", data: rewriteHeader(t, data, setField(2, " kdf=argon2id"), false), want: ErrCorrupt},
		{name: "fields swapped", data: rewriteHeader(t, data, func(f []string) []string { f[3], f[4] = f[4], f[3]; return f }, false), want: ErrCorrupt},
		{name: "p=0", data: rewriteHeader(t, data, setField(5, "p=0"), false), want: ErrCorrupt},
		{name: "m below 8p", data: rewriteHeader(t, data, func(f []string) []string { f[3], f[5] = "m=8", "p=2"; return f }, false), want: ErrCorrupt},
		{name: "m overflows", data: rewriteHeader(t, data, setField(3, "m=4294967296"), false), want: ErrCorrupt},
		{name: "version 2", data: rewriteHeader(t, data, setField(1, "v2"), false), want: ErrFormat},
		{name: "no version", data: []byte("schoolgate-backup\n"), want: ErrFormat},
		{name: "CRLF", data: bytes.Replace(data, []byte("\n"), []byte("\r\n"), 1), want: ErrCorrupt},
		{name: "long line", data: []byte("schoolgate-backup v1 " + strings.Repeat("x", 600)), want: ErrCorrupt},
		{name: "cut in header", data: data[:40], want: ErrCorrupt},
		{name: "empty", data: nil, want: ErrFormat},
		{name: "zip", data: []byte("PK\x03\x04\x14\x00\x00\x00"), want: ErrFormat},
		{name: "other text", data: []byte("schoolgate-audit v1\n"), want: ErrFormat},
		{name: "leading space", data: append([]byte(" "), data...), want: ErrFormat},
		{name: "byte-order mark", data: append([]byte("\ufeff"), data...), want: ErrFormat},
	} {
		_, _, err := restore(t, tc.data, testPassphrase, testLimits())
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestKDFCaps(t *testing.T) {
	if err := defaultKDF().check(defaultCaps()); err != nil {
		t.Fatalf("the default parameters are refused: %v", err)
	}
	if d := defaultKDF(); d != (kdfParams{Memory: 64 << 10, Time: 3, Threads: 2}) {
		t.Errorf("default argon2id parameters %+v; update doc.go if this was meant", d)
	}
	for _, tc := range []struct {
		p    kdfParams
		want error
	}{
		{kdfParams{Memory: 256 << 10, Time: 4, Threads: 8}, nil},
		{kdfParams{Memory: 64 << 10, Time: 10, Threads: 1}, nil},
		{kdfParams{Memory: 256<<10 + 1, Time: 1, Threads: 1}, ErrTooLarge},
		{kdfParams{Memory: 1<<32 - 1, Time: 1, Threads: 1}, ErrTooLarge},
		{kdfParams{Memory: 64, Time: 11, Threads: 1}, ErrTooLarge},
		{kdfParams{Memory: 64, Time: 1<<32 - 1, Threads: 1}, ErrTooLarge},
		{kdfParams{Memory: 1024, Time: 1, Threads: 9}, ErrTooLarge},
		{kdfParams{Memory: 256 << 10, Time: 5, Threads: 1}, ErrTooLarge}, // m·t
		{kdfParams{Memory: 128 << 10, Time: 9, Threads: 1}, ErrTooLarge},
		{kdfParams{Memory: 8, Time: 0, Threads: 1}, ErrCorrupt},
		{kdfParams{Memory: 8, Time: 1, Threads: 0}, ErrCorrupt},
		{kdfParams{Memory: 15, Time: 1, Threads: 2}, ErrCorrupt},
	} {
		h := header{kdf: tc.p}
		_, err := parseHeader(h.marshal(), defaultCaps())
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%+v: got %v, want %v", tc.p, err, tc.want)
		}
	}
}

// TestKDFRefusedBeforeDeriving gives Read, with its default limits, headers
// that would take hours or gigabytes to derive: it must answer at once.
func TestKDFRefusedBeforeDeriving(t *testing.T) {
	data := makeBackup(t, []srcFile{{"a", []byte("x")}}, 1)
	for _, edit := range []func([]string) []string{
		setField(4, "t=4294967295"),
		func(f []string) []string { f[3], f[4] = "m=1048576", "t=100000"; return f },
	} {
		start := time.Now()
		_, _, err := restore(t, rewriteHeader(t, data, edit, false), testPassphrase, Limits{})
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v to refuse", d)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	data := threeChunks(t, 6)
	for _, tc := range []struct {
		max  int64
		want error
	}{
		{chunkSize - 1, ErrTooLarge}, // refused at the first chunk
		{150 << 10, ErrTooLarge},     // the file fits, the tar headers do not
		{200 << 10, nil},
	} {
		lim := testLimits()
		lim.MaxSize = tc.max
		_, _, err := restore(t, data, testPassphrase, lim)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("limit %d: got %v, want %v", tc.max, err, tc.want)
		}
	}
}

// TestStreamSizes seals and opens payloads of sizes around the chunk size,
// and checks the on-disk layout doc.go gives.
func TestStreamSizes(t *testing.T) {
	for _, n := range []int{0, 1, tagSize, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 2*chunkSize + 7, 3 * chunkSize} {
		payload := randomBytes(n, uint64(n))
		sealed := seal(t, payload, 1<<40)
		hdr, cs := chunks(t, sealed)
		wantChunks := max(1, (n+chunkSize-1)/chunkSize)
		if len(cs) != wantChunks {
			t.Errorf("%d bytes: %d chunks, want %d", n, len(cs), wantChunks)
		}
		if len(sealed) != len(hdr)+n+wantChunks*tagSize {
			t.Errorf("%d bytes: sealed into %d", n, len(sealed))
		}
		got, err := open(t, sealed, 1<<40)
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%d bytes: opened %d bytes, %v", n, len(got), err)
		}
		if n > 0 {
			if _, err := open(t, sealed, int64(n-1)); !errors.Is(err, ErrTooLarge) {
				t.Errorf("%d bytes with a limit of %d: got %v, want ErrTooLarge", n, n-1, err)
			}
		}
	}

	// An empty last chunk after full ones is not what Write produces.
	var buf bytes.Buffer
	s := newTestSealer(t, &buf)
	s.Write(randomBytes(chunkSize, 1))
	if err := s.seal(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, buf.Bytes(), 1<<40); !errors.Is(err, ErrCorrupt) {
		t.Errorf("empty last chunk: got %v, want ErrCorrupt", err)
	}

	// Writing over the limit fails and stays failed.
	s = newTestSealer(t, io.Discard)
	s.maxSize = 10
	if _, err := s.Write(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: got %v, want ErrTooLarge", err)
	}
	if err := s.Close(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("close after the limit: got %v, want ErrTooLarge", err)
	}
}

// TestStreamTruncation checks the last-chunk flag on its own: backups are
// also caught by their tar stream ending early, raw payloads only by it.
func TestStreamTruncation(t *testing.T) {
	for _, n := range []int{2 * chunkSize, 2*chunkSize + 1, 3 * chunkSize} {
		sealed := seal(t, randomBytes(n, 9), 1<<40)
		hdr, cs := chunks(t, sealed)
		for k := 1; k < len(cs); k++ {
			if _, err := open(t, join(hdr, cs[:k]...), 1<<40); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%d bytes cut to %d chunks: got %v, want ErrCorrupt", n, k, err)
			}
		}
		if _, err := open(t, join(hdr, cs[0], cs[0]), 1<<40); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d bytes, first chunk twice: got %v, want ErrCorrupt", n, err)
		}
	}
}

func newTestSealer(t testing.TB, w io.Writer) *sealer {
	t.Helper()
	s, err := newSealer(w, testPassphrase, testKDF, detRand(1), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seal encrypts payload as a backup's payload: how tests make backups
// that Write would refuse to.
func seal(t testing.TB, payload []byte, maxSize int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	s, err := newSealer(&buf, testPassphrase, testKDF, detRand(1), maxSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// open decrypts a sealed payload without looking inside.
func open(t testing.TB, data []byte, maxSize int64) ([]byte, error) {
	t.Helper()
	op, err := openHeader(bufio.NewReader(bytes.NewReader(data)), testPassphrase, testLimits().withDefaults().kdf, maxSize)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(op)
}

// TestErrorsHideThePassphrase collects errors from many failures and looks
// for the passphrase, or any long piece of it, in their text.
func TestErrorsHideThePassphrase(t *testing.T) {
	data := threeChunks(t, 8)
	var errs []error
	for _, n := range []int{0, 30, headerLen(t, data), len(data) / 2} {
		_, _, err := restore(t, data[:n], testPassphrase, testLimits())
		errs = append(errs, err)
	}
	_, _, err := restore(t, data, "not the right passphrase", testLimits())
	errs = append(errs, err)
	var buf bytes.Buffer
	errs = append(errs, write(&buf, "short", Manifest{}, nil, testOptions(1)))
	errs = append(errs, write(&buf, testPassphrase, Manifest{}, []File{{"../x", "/nonexistent"}}, testOptions(1)))
	errs = append(errs, write(&buf, testPassphrase, Manifest{}, []File{{"x", filepath.Join(t.TempDir(), "missing")}}, testOptions(1)))
	for _, err := range errs {
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, p := range []string{testPassphrase, "not the right", "horse battery"} {
			if strings.Contains(msg, p) {
				t.Errorf("error %q contains %q", msg, p)
			}
		}
	}
}
