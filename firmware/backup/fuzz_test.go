package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// fuzzLimits keep an iteration quick whatever the input asks for.
func fuzzLimits() Limits {
	return Limits{MaxSize: 1 << 20, MaxFiles: 16, kdf: kdfCaps{Memory: 64, Time: 2, Threads: 2, Work: 128}, noSync: true}
}

// FuzzRead feeds Read arbitrary files with a fixed passphrase. Backups
// arrive from anywhere (a USB stick, an upload), so whatever the input, Read
// must not panic, must write nothing outside its directory, and must leave
// the directory empty when it fails.
func FuzzRead(f *testing.F) {
	parent, dir := fuzzDir(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, parent, dir, data)
	})
}

// FuzzPayload encrypts arbitrary payloads with the right passphrase, so
// that the tar and manifest checks behind the tags, which FuzzRead's
// mutations seldom get through, are fuzzed too.
func FuzzPayload(f *testing.F) {
	parent, dir := fuzzDir(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		fuzzOne(t, parent, dir, seal(t, payload, 1<<40))
	})
}

// fuzzDir makes the directory that every iteration restores into: one per
// process, since iterations run one after another and a failed Read leaves
// it empty, so that iterations do not spend their time making directories.
func fuzzDir(tb testing.TB) (parent, dir string) {
	parent = tb.TempDir()
	dir = filepath.Join(parent, "out")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	return parent, dir
}

// fuzzOne restores data into dir, an empty directory alone in parent, checks
// the outcome and leaves dir empty again.
func fuzzOne(t testing.TB, parent, dir string, data []byte) {
	m, err := Read(bytes.NewReader(data), testPassphrase, dir, fuzzLimits())
	if names := dirNames(t, parent); !slices.Equal(names, []string{"out"}) {
		t.Fatalf("Read wrote %q beside its directory", names)
	}
	if err != nil {
		if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrPassphrase) {
			t.Fatalf("error from an in-memory file is none of the package's: %v", err)
		}
		mustBeEmpty(t, dir)
		return
	}
	// Success: the directory holds exactly the manifest's files.
	want := make(map[string]FileInfo)
	for _, fi := range m.Files {
		want[fi.Name] = fi
	}
	seen := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", rel)
		}
		fi, ok := want[rel]
		if !ok {
			return fmt.Errorf("%s is not in the manifest", rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(b); int64(len(b)) != fi.Size || hex.EncodeToString(sum[:]) != fi.SHA256 {
			return fmt.Errorf("%s does not match the manifest", rel)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(m.Files) {
		t.Fatalf("%d files restored, the manifest lists %d", seen, len(m.Files))
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// fuzzSeeds are the committed corpora. They are made with testPassphrase
// from the golden backup and from hand-made payloads: no secrets.
func fuzzSeeds(t testing.TB) map[string][][]byte {
	golden := makeBackup(t, goldenFiles, 7)
	hlen := headerLen(t, golden)
	flipped := bytes.Clone(golden)
	flipped[hlen+100] ^= 1
	plain, err := open(t, golden, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	// Few and small: each costs the fuzzer time and the repository bytes.
	tooCostly := rewriteHeader(t, golden, setField(3, "m=4194304"), false)
	read := [][]byte{
		golden,
		golden[:hlen],
		golden[:hlen+tagSize],
		golden[:len(golden)/2],
		flipped,
		rewriteHeader(t, golden, setField(4, "t=2"), false), // other keys: a wrong passphrase
		tooCostly[:headerLen(t, tooCostly)+20],
		seal(t, makeTar(t, manifestOf(reg("../a", nil)), reg("../a", nil)), 1<<40),
		[]byte("schoolgate-backup v1\n"),
		[]byte("PK\x03\x04"),
		{},
	}
	payload := [][]byte{plain, {}}
	for _, h := range hostilePayloads(t) {
		switch h.name {
		case "cut short", "dot-dot", "symlink", "GNU sparse", "PAX path outside", "extra file", "data after the archive", "entry longer than the archive":
			payload = append(payload, h.payload)
		}
	}
	return map[string][][]byte{"FuzzRead": read, "FuzzPayload": payload}
}

func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds {
				data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) < len(seeds) {
			t.Errorf("%s: %d seeds on disk, want %d (run with -update): %v", target, len(entries), len(seeds), err)
		}
	}
}

// TestFuzzSeedsRead runs the seeds' expectations that matter most: the
// golden backup restores through fuzzOne's checks, the rest fail cleanly.
func TestFuzzSeedsRead(t *testing.T) {
	seeds := fuzzSeeds(t)
	parent, dir := fuzzDir(t)
	for i, s := range seeds["FuzzRead"] {
		fuzzOne(t, parent, dir, s)
		_, _, err := restore(t, s, testPassphrase, fuzzLimits())
		if (i == 0) != (err == nil) {
			t.Errorf("seed %d: got %v", i, err)
		}
	}
	for _, s := range seeds["FuzzPayload"] {
		fuzzOne(t, parent, dir, seal(t, s, 1<<40))
	}
}
