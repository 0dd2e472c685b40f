package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	old := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n"
	for _, tc := range []struct {
		name, new, want string
	}{
		{"equal", old, ""},
		{"one changed", strings.Replace(old, "f\n", "F\n", 1),
			"--- old\n+++ new\n@@ -3,7 +3,7 @@\n c\n d\n e\n-f\n+F\n g\n h\n i\n"},
		{"added at the end", old + "l\n",
			"--- old\n+++ new\n@@ -9,3 +9,4 @@\n i\n j\n k\n+l\n"},
		{"removed at the start", strings.TrimPrefix(old, "a\n"),
			"--- old\n+++ new\n@@ -1,4 +1,3 @@\n-a\n b\n c\n d\n"},
		{"two hunks", strings.Replace(strings.Replace(old, "a\n", "A\n", 1), "k\n", "K\n", 1),
			"--- old\n+++ new\n@@ -1,4 +1,4 @@\n-a\n+A\n b\n c\n d\n@@ -8,4 +8,4 @@\n h\n i\n j\n-k\n+K\n"},
		{"from nothing", "x\n", "--- old\n+++ new\n@@ -0,0 +1,1 @@\n+x\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff("old", "new", []byte(old), []byte(tc.new))
			if tc.name == "from nothing" {
				got = Diff("old", "new", nil, []byte(tc.new))
			}
			if got != tc.want {
				t.Errorf("Diff =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// The diff applies: GNU patch turns old into new with it, for an edit of the example config.
func TestDiffApplies(t *testing.T) {
	patch, err := exec.LookPath("patch")
	if err != nil {
		t.Skip("no patch(1)")
	}
	old, err := os.ReadFile("../../docs/examples/school.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(old), "\n")
	lines[10] = "# changed"
	lines = append(lines[:40], lines[45:]...)
	lines = append(lines[:70], append([]string{"  # added 1", "  # added 2"}, lines[70:]...)...)
	new := strings.Join(lines, "\n")
	dir := t.TempDir()
	f := filepath.Join(dir, "school.yaml")
	os.WriteFile(f, old, 0o644)
	cmd := exec.Command(patch, "-s", f)
	cmd.Stdin = strings.NewReader(Diff("a/school.yaml", "b/school.yaml", old, []byte(new)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(f); string(got) != new {
		t.Errorf("patched file differs from the new version")
	}
}

func FuzzDiff(f *testing.F) {
	f.Add("a\nb\n", "a\nc\n")
	f.Add("", "x")
	f.Add("x\r\ny\n", "x\ny")
	f.Fuzz(func(t *testing.T, a, b string) {
		d := Diff("a", "b", []byte(a), []byte(b))
		if (d == "") != slicesEqual(splitLines(a), splitLines(b)) {
			t.Fatalf("Diff(%q, %q) = %q", a, b, d)
		}
	})
}
