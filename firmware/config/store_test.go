package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestStore(t *testing.T, keep int) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewStore(filepath.Join(dir, "config.yaml"), filepath.Join(dir, "versions"), keep)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func demoWithName(t *testing.T, name string) *Config {
	t.Helper()
	cfg, _ := Demo()
	cfg.Appliance.Name = name
	return cfg
}

func TestStoreSaveCurrent(t *testing.T) {
	s, dir := newTestStore(t, 0)
	if _, _, err := s.Current(); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("Current() on an empty store = %v, want ErrNoConfig", err)
	}
	when := time.Date(2026, 3, 2, 8, 30, 0, 0, time.UTC)
	v, err := s.Save(demoWithName(t, "First"), VersionMeta{Time: when, Author: "alice", Comment: "initial\nsetup"})
	if err != nil {
		t.Fatal(err)
	}
	want := Version{Number: 1, VersionMeta: VersionMeta{Time: when, Author: "alice", Comment: "initial\nsetup"}}
	if v != want {
		t.Errorf("Save() = %+v, want %+v", v, want)
	}
	cfg, cur, err := s.Current()
	if err != nil {
		t.Fatal(err)
	}
	if cur != want {
		t.Errorf("Current() version = %+v, want %+v", cur, want)
	}
	if cfg.Appliance.Name != "First" {
		t.Errorf("got name %q, want First", cfg.Appliance.Name)
	}
	// Relative list files resolve inside the store directory.
	if got, want := cfg.Lists[0].File, filepath.Join(dir, "lists", "protected.txt"); got != want {
		t.Errorf("got list file %q, want %q", got, want)
	}
	// The stored files are plain configs too.
	for _, p := range []string{filepath.Join(dir, "config.yaml"), filepath.Join(dir, "versions", "000001.yaml")} {
		if _, err := LoadFile(p); err != nil {
			t.Errorf("LoadFile(%s): %v", p, err)
		}
	}
	assertNoTemp(t, dir)
}

func TestStoreRefusesInvalid(t *testing.T) {
	s, dir := newTestStore(t, 0)
	if _, err := s.Save(demoWithName(t, "Good"), VersionMeta{Author: "a"}); err != nil {
		t.Fatal(err)
	}
	bad := demoWithName(t, "Bad")
	bad.Profiles[0].SafeSearch = "sometimes"
	if _, err := s.Save(bad, VersionMeta{Author: "a"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Save(invalid) = %v, want ErrInvalid", err)
	}
	if _, err := s.SaveYAML([]byte("colour: red\n"), VersionMeta{Author: "a"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SaveYAML(invalid) = %v, want ErrInvalid", err)
	}
	cfg, v, err := s.Current()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Appliance.Name != "Good" || v.Number != 1 {
		t.Errorf("after refused saves: got %q version %d, want Good version 1", cfg.Appliance.Name, v.Number)
	}
	vs, _ := s.Versions()
	if len(vs) != 1 {
		t.Errorf("got %d versions, want 1", len(vs))
	}
	assertNoTemp(t, dir)
}

func TestStoreRotation(t *testing.T) {
	s, dir := newTestStore(t, 3)
	for i := 1; i <= 5; i++ {
		v, err := s.Save(demoWithName(t, "v"+string(rune('0'+i))), VersionMeta{Author: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Number != i {
			t.Fatalf("save %d got version %d", i, v.Number)
		}
	}
	vs, err := s.Versions()
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, v := range vs {
		got = append(got, v.Number)
	}
	if want := []int{5, 4, 3}; !equalInts(got, want) {
		t.Errorf("Versions() = %v, want %v", got, want)
	}
	if _, _, err := s.Load(2); !errors.Is(err, ErrNoVersion) {
		t.Errorf("Load(2) = %v, want ErrNoVersion", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "versions"))
	if len(entries) != 3 {
		t.Errorf("got %d files in versions/, want 3", len(entries))
	}
	// Numbers keep growing after a reopen, even with leftovers of a crashed save.
	if err := os.WriteFile(filepath.Join(dir, "versions", ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := NewStore(filepath.Join(dir, "config.yaml"), filepath.Join(dir, "versions"), 3)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s2.Save(demoWithName(t, "v6"), VersionMeta{Author: "a"})
	if err != nil || v.Number != 6 {
		t.Errorf("Save after reopen = %d, %v; want 6", v.Number, err)
	}
}

func TestStoreRollback(t *testing.T) {
	s, _ := newTestStore(t, 0)
	raw := append([]byte("# hand-written comment survives\n"), DemoYAML()...)
	if _, err := s.SaveYAML(raw, VersionMeta{Author: "tech"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(demoWithName(t, "Changed"), VersionMeta{Author: "tech"}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Rollback(1, VersionMeta{Author: "dsl"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 3 || v.Author != "dsl" || v.Comment != "rollback to version 1" {
		t.Errorf("Rollback() = %+v, want version 3 by dsl with a rollback comment", v)
	}
	cfg, cur, err := s.Current()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Appliance.Name != "Demo School" || cur.Number != 3 {
		t.Errorf("after rollback: got %q version %d", cfg.Appliance.Name, cur.Number)
	}
	body, _, err := s.Load(3)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != string(raw) {
		t.Errorf("rolled-back content differs from version 1:\n%s", body)
	}
	vs, _ := s.Versions()
	if len(vs) != 3 {
		t.Errorf("got %d versions, want 3: history stays linear", len(vs))
	}
	if _, err := s.Rollback(42, VersionMeta{}); !errors.Is(err, ErrNoVersion) {
		t.Errorf("Rollback(42) = %v, want ErrNoVersion", err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The daemon's config file may be edited by hand between saves from the web UI: it is read
// without a header as version 0, and saving it again does not stack headers.
func TestStoreHandEditedFile(t *testing.T) {
	s, dir := newTestStore(t, 0)
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, DemoYAML(), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, v, err := s.Current()
	if err != nil || v.Number != 0 || cfg.Appliance.Name != "Demo School" {
		t.Fatalf("Current() of a hand-written file = %v, %+v, %v", cfg != nil, v, err)
	}
	for i := 1; i <= 2; i++ {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.SaveYAML(raw, VersionMeta{Author: "tech"}); err != nil || v.Number != i {
			t.Fatalf("save %d: %+v, %v", i, v, err)
		}
	}
	raw, _ := os.ReadFile(file)
	if n := strings.Count(string(raw), headerPrefix); n != 1 {
		t.Errorf("the file has %d version headers, want 1:\n%s", n, raw[:200])
	}
}
