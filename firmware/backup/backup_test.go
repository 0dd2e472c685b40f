package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/v1.backup and the committed fuzz seed corpora")

// testPassphrase is only ever used by these tests.
const testPassphrase = "correct horse battery staple"

// testKDF keeps tests fast; argon2 allows nothing cheaper.
var testKDF = kdfParams{Memory: 8, Time: 1, Threads: 1}

// testLimits are the default limits with caps that still admit testKDF but
// keep a mutated header from asking for much.
func testLimits() Limits {
	return Limits{kdf: kdfCaps{Memory: 1024, Time: 4, Threads: 4, Work: 4096}}
}

func testOptions(seed byte) writeOptions {
	return writeOptions{kdf: testKDF, rand: detRand(seed), maxSize: DefaultMaxSize, maxFiles: DefaultMaxFiles}
}

// detRand makes salts and nonces reproducible, for the golden file.
func detRand(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

var testCreated = time.Date(2026, 3, 2, 10, 15, 30, 0, time.UTC)

// srcFile is a file to back up in a test.
type srcFile struct {
	name string
	data []byte
}

// writeSources puts files on disk and returns them as Write's input.
func writeSources(t testing.TB, files []srcFile) []File {
	t.Helper()
	src := t.TempDir()
	out := make([]File, len(files))
	for i, f := range files {
		p := filepath.Join(src, "f"+string(rune('a'+i)))
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		out[i] = File{Name: f.name, Path: p}
	}
	return out
}

func makeBackup(t testing.TB, files []srcFile, seed byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	m := Manifest{Created: testCreated, Appliance: "St Mary's Primary", FirmwareVersion: "1.4.0"}
	if err := write(&buf, testPassphrase, m, writeSources(t, files), testOptions(seed)); err != nil {
		t.Fatalf("write: %v", err)
	}
	return buf.Bytes()
}

// restore reads data into a fresh directory and checks that Read wrote
// nothing beside it and, on error, nothing in it.
func restore(t testing.TB, data []byte, passphrase string, lim Limits) (Manifest, string, error) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "restore")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := Read(bytes.NewReader(data), passphrase, dir, lim)
	if names := dirNames(t, parent); !slices.Equal(names, []string{"restore"}) {
		t.Fatalf("Read left %q beside the target directory", names)
	}
	if err != nil {
		mustBeEmpty(t, dir)
		if !reflect.DeepEqual(m, Manifest{}) {
			t.Errorf("Read returned %+v with its error", m)
		}
	}
	return m, dir, err
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func mustBeEmpty(t testing.TB, dir string) {
	t.Helper()
	if names := dirNames(t, dir); len(names) > 0 {
		t.Fatalf("Read failed but left %q in the directory", names)
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// checkRestored checks that dir holds exactly files, as private files.
func checkRestored(t *testing.T, dir string, m Manifest, files []srcFile) {
	t.Helper()
	if len(m.Files) != len(files) {
		t.Fatalf("manifest lists %d files, want %d", len(m.Files), len(files))
	}
	for i, f := range files {
		want := FileInfo{Name: f.name, Size: int64(len(f.data)), SHA256: hexSum(f.data)}
		if m.Files[i] != want {
			t.Errorf("manifest file %d = %+v, want %+v", i, m.Files[i], want)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s: restored %d bytes differ from the %d backed up", f.name, len(got), len(f.data))
		}
		info, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != 0o600 {
			t.Errorf("%s: mode %v, want -rw-------", f.name, info.Mode())
		}
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".restore-") {
			t.Errorf("temporary directory %s left behind", p)
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("%d files in the directory, want %d", n, len(files))
	}
}

func TestRoundTrip(t *testing.T) {
	files := []srcFile{
		{"config.yaml", []byte("appliance:\n  name: St Mary's Primary\n")},
		{"empty", nil},
		{"db/events.sqlite", randomBytes(1<<20, 1)},
		{"db/audit.db", []byte("SQLite format 3\x00")},
		{"tls/keys/ca-key.pem", []byte("-----BEGIN PRIVATE KEY-----\n")},
	}
	data := makeBackup(t, files, 1)
	m, dir, err := restore(t, data, testPassphrase, testLimits())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if m.Format != FormatName || m.Version != FormatVersion || !m.Created.Equal(testCreated) ||
		m.Appliance != "St Mary's Primary" || m.FirmwareVersion != "1.4.0" {
		t.Errorf("manifest = %+v", m)
	}
	checkRestored(t, dir, m, files)
	for _, d := range []string{"db", "tls", "tls/keys"} {
		info, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want drwx------", d, info.Mode())
		}
	}
}

func TestRoundTripNoFiles(t *testing.T) {
	data := makeBackup(t, nil, 1)
	m, dir, err := restore(t, data, testPassphrase, testLimits())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	checkRestored(t, dir, m, nil)
}

// TestRoundTripDefaults goes through the exported functions with the real
// argon2id parameters, once.
func TestRoundTripDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("derives two 64 MiB argon2id keys")
	}
	files := []srcFile{{"config.yaml", []byte("a: 1\n")}}
	var buf bytes.Buffer
	if err := Write(&buf, testPassphrase, Manifest{Appliance: "x"}, writeSources(t, files)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("schoolgate-backup v1 kdf=argon2id m=65536 t=3 p=2 salt=")) {
		t.Errorf("header %q", bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0])
	}
	m, dir, err := restore(t, buf.Bytes(), testPassphrase, Limits{})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if time.Since(m.Created) > time.Minute || m.Created.Location() != time.UTC {
		t.Errorf("created %v, want about now in UTC", m.Created)
	}
	checkRestored(t, dir, m, files)
}

func TestWrongPassphrase(t *testing.T) {
	data := makeBackup(t, []srcFile{{"a", []byte("x")}}, 1)
	for _, pass := range []string{"correct horse battery stapl", "Correct horse battery staple", testPassphrase + " ", "", "short", strings.Repeat("x", 1025)} {
		_, _, err := restore(t, data, pass, testLimits())
		if !errors.Is(err, ErrPassphrase) {
			t.Errorf("passphrase %q: got %v, want ErrPassphrase", pass, err)
		}
		if err != nil && pass != "" && strings.Contains(err.Error(), pass) {
			t.Errorf("the error %q contains the passphrase", err)
		}
	}
}

func TestWeakPassphrase(t *testing.T) {
	files := writeSources(t, []srcFile{{"a", []byte("x")}})
	for _, tc := range []struct {
		pass string
		ok   bool
	}{
		{"", false},
		{"eleven char", false},
		{"ééééééééééé", false}, // 11 characters in 22 bytes
		{"éééééééééééé", true},
		{"twelve chars", true},
		{strings.Repeat("x", 1024), true},
		{strings.Repeat("x", 1025), false},
	} {
		var buf bytes.Buffer
		err := write(&buf, tc.pass, Manifest{}, files, testOptions(1))
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrWeakPassphrase)) {
			t.Errorf("passphrase of %d bytes: got %v, want ok %v", len(tc.pass), err, tc.ok)
		}
		if err != nil {
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before refusing", buf.Len())
			}
			if tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
				t.Errorf("the error %q contains the passphrase", err)
			}
			continue
		}
		if _, _, err := restore(t, buf.Bytes(), tc.pass, testLimits()); err != nil {
			t.Errorf("passphrase of %d bytes: Read: %v", len(tc.pass), err)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	src := t.TempDir()
	good := filepath.Join(src, "good")
	if err := os.WriteFile(good, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(good, filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []File
		m     Manifest
	}{
		{"dot-dot", []File{{"../a", good}}, Manifest{}},
		{"absolute", []File{{"/etc/a", good}}, Manifest{}},
		{"inner dot-dot", []File{{"a/../b", good}}, Manifest{}},
		{"dot", []File{{"./a", good}}, Manifest{}},
		{"double slash", []File{{"a//b", good}}, Manifest{}},
		{"trailing slash", []File{{"a/", good}}, Manifest{}},
		{"backslash", []File{{`a\b`, good}}, Manifest{}},
		{"space", []File{{"a b", good}}, Manifest{}},
		{"non-ASCII", []File{{"café", good}}, Manifest{}},
		{"empty", []File{{"", good}}, Manifest{}},
		{"too long", []File{{strings.Repeat("a", 256), good}}, Manifest{}},
		{"reserved", []File{{"manifest.json", good}}, Manifest{}},
		{"duplicate", []File{{"a", good}, {"a", good}}, Manifest{}},
		{"file and directory", []File{{"a", good}, {"a/b", good}}, Manifest{}},
		{"directory and file", []File{{"a/b/c", good}, {"a/b", good}}, Manifest{}},
		{"missing", []File{{"a", filepath.Join(src, "missing")}}, Manifest{}},
		{"directory", []File{{"a", src}}, Manifest{}},
		{"control character", []File{{"a", good}}, Manifest{Appliance: "a\x1b[31m"}},
		{"long appliance", []File{{"a", good}}, Manifest{Appliance: strings.Repeat("a", 257)}},
		{"invalid UTF-8", []File{{"a", good}}, Manifest{FirmwareVersion: "\xff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := write(&buf, testPassphrase, tc.m, tc.files, testOptions(1))
			if err == nil {
				t.Fatal("no error")
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before refusing: %v", buf.Len(), err)
			}
		})
	}

	// A symlink is read through: the file it names is what gets backed up.
	var buf bytes.Buffer
	if err := write(&buf, testPassphrase, Manifest{}, []File{{"a", filepath.Join(src, "link")}}, testOptions(1)); err != nil {
		t.Errorf("through a symlink: %v", err)
	}

	o := testOptions(1)
	o.maxFiles = 1
	if err := write(io.Discard, testPassphrase, Manifest{}, []File{{"a", good}, {"b", good}}, o); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many files: got %v, want ErrTooLarge", err)
	}
	o = testOptions(1)
	o.maxSize = 4096
	big := filepath.Join(src, "big")
	if err := os.WriteFile(big, make([]byte, 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := write(io.Discard, testPassphrase, Manifest{}, []File{{"a", big}}, o); !errors.Is(err, ErrTooLarge) {
		t.Errorf("files over the size limit: got %v, want ErrTooLarge", err)
	}
	// 3000 bytes of file fit, but not with the manifest and tar headers.
	if err := os.WriteFile(big, make([]byte, 3000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := write(io.Discard, testPassphrase, Manifest{}, []File{{"a", big}}, o); !errors.Is(err, ErrTooLarge) {
		t.Errorf("payload over the size limit: got %v, want ErrTooLarge", err)
	}
}

func TestReadDirectory(t *testing.T) {
	data := makeBackup(t, []srcFile{{"a", []byte("x")}}, 1)

	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bytes.NewReader(data), testPassphrase, dir, testLimits()); err == nil {
		t.Error("restored into a directory that is not empty")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"keep"}) {
		t.Errorf("directory holds %q, want only keep", names)
	}
	if b, _ := os.ReadFile(keep); string(b) != "mine" {
		t.Errorf("keep now holds %q", b)
	}

	// A hidden file counts too.
	hidden := t.TempDir()
	if err := os.WriteFile(filepath.Join(hidden, ".x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bytes.NewReader(data), testPassphrase, hidden, testLimits()); err == nil {
		t.Error("restored into a directory holding a hidden file")
	}

	if _, err := Read(bytes.NewReader(data), testPassphrase, filepath.Join(dir, "missing"), testLimits()); err == nil {
		t.Error("restored into a directory that does not exist")
	}
	if _, err := Read(bytes.NewReader(data), testPassphrase, keep, testLimits()); err == nil {
		t.Error("restored into a file")
	}
}

// errReader fails after its data, like a dropped upload.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestReadError(t *testing.T) {
	data := makeBackup(t, []srcFile{{"a", randomBytes(200<<10, 2)}}, 1)
	boom := errors.New("connection reset")
	for _, n := range []int{10, 300, len(data) / 2, len(data) - 1, len(data)} {
		dir := t.TempDir()
		_, err := Read(&errReader{bytes.NewReader(data[:n]), boom}, testPassphrase, dir, testLimits())
		if !errors.Is(err, boom) {
			t.Errorf("failing after %d bytes: got %v, want the reader's error", n, err)
		}
		mustBeEmpty(t, dir)
	}
}

// goldenFiles are what testdata/v1.backup holds.
var goldenFiles = []srcFile{
	{"config.yaml", []byte("appliance:\n  name: St Mary's Primary\nprofiles:\n  pupils:\n    blocked_categories: [adult, gambling]\n")},
	{"db/audit.db", []byte("SQLite format 3\x00not really\n")},
	{"empty", nil},
}

// TestGolden reads a backup written by an earlier build: a change that
// makes it unreadable breaks every backup technicians have kept. Rewrite
// it with -update only when the format's version changes (and keep reading
// the old one).
func TestGolden(t *testing.T) {
	golden := filepath.Join("testdata", "v1.backup")
	data := makeBackup(t, goldenFiles, 7)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("Write no longer writes %s byte for byte", golden)
	}
	m, dir, err := restore(t, want, testPassphrase, testLimits())
	if err != nil {
		t.Fatalf("Read %s: %v", golden, err)
	}
	checkRestored(t, dir, m, goldenFiles)
}

// BenchmarkDefaultKDF measures the argon2id derivation Write and Read pay.
func BenchmarkDefaultKDF(b *testing.B) {
	h := header{kdf: defaultKDF()}
	for b.Loop() {
		deriveKeys(testPassphrase, &h)
	}
}
