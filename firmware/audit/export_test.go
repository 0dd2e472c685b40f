package audit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/export-v1.jsonl and the committed fuzz seed corpora")

func export(t *testing.T, l *Log) string {
	t.Helper()
	var b bytes.Buffer
	if err := l.Export(context.Background(), &b); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return b.String()
}

func verifyExport(t *testing.T, s string, anchors ...Anchor) Result {
	t.Helper()
	res, err := VerifyExport(strings.NewReader(s), anchors...)
	if err != nil {
		t.Fatalf("VerifyExport: %v", err)
	}
	return res
}

// goldenLog builds the trail behind testdata/export-v1.jsonl: fixed clock,
// characters JSON must escape, HTML, non-ASCII, empty fields.
func goldenLog(t *testing.T) *Log {
	l := open(t, Config{Appliance: "St Mary's Primary"})
	for _, e := range []Entry{
		{Actor: "alice", Role: "technician", Address: "10.10.0.5", Action: "account.create", Object: "account bob",
			Summary: "created account bob (dsl)"},
		{Actor: "alice", Role: "technician", Address: "fd00::5", Action: "config.save", Object: "config v2",
			Summary: "pupils: category social unblocked <after 3pm> & gaming blocked",
			Detail:  "--- v1\n+++ v2\n@@ -4,3 +4,3 @@\n   - name: pupils\n-    block: [social]\n+    block: [gaming]\n\t\"quoted\"\n",
			Reason:  "head's request, email 12/3"},
		{Actor: "bob", Role: "dsl", Address: "10.10.0.7", Action: "exception.approve", Object: "exception 1: allow youtube.com for pupils",
			Summary: "approved a 2 h allow of youtube.com for year 9 history", Reason: "Lesson on the Élysée treaty — 🇫🇷 video"},
		{Actor: ActorSystem, Action: "exception.expire", Object: "exception 1: allow youtube.com for pupils",
			Summary: "exception expired"},
		{Actor: ActorSystem, Action: "list.update", Object: "list ut1-adult", Summary: "1,204,331 entries (+412 −17)"},
	} {
		mustAppend(t, l, e)
	}
	return l
}

func TestExportGolden(t *testing.T) {
	got := export(t, goldenLog(t))
	path := filepath.Join("testdata", "export-v1.jsonl")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Exports made by this firmware must stay readable by every later one:
	// a change here is a new format version, not an edit.
	if got != string(want) {
		t.Errorf("export differs from %s (run with -update only for a deliberate format change):\ngot\n%s", path, got)
	}
	res := verifyExport(t, string(want))
	if !res.OK || res.Entries != 5 || res.HeadSeq != 5 {
		t.Fatalf("golden export: %+v", res)
	}
	h := res.Header
	if h == nil || h.Appliance != "St Mary's Primary" || h.Entries != 5 || h.Head != res.Head ||
		!h.ExportedAt.Equal(time.Date(2026, 3, 2, 10, 23, 0, 123000000, time.UTC)) {
		t.Errorf("header: %+v", h)
	}
}

func TestExportVerifyRoundTrip(t *testing.T) {
	l := open(t, Config{})
	res := verifyExport(t, export(t, l))
	if !res.OK || res.Entries != 0 || res.Head != Genesis {
		t.Errorf("empty trail: %+v", res)
	}
	all := fill(t, l, 30)
	res = verifyExport(t, export(t, l))
	db := verify(t, l)
	if !res.OK || res.Entries != 30 || res.Head != all[29].Hash || res.HeadSeq != db.HeadSeq || res.Head != db.Head {
		t.Errorf("export: %+v\ndatabase: %+v", res, db)
	}
	if res := verifyExport(t, export(t, l), Anchor{12, all[11].Hash}); !res.OK {
		t.Errorf("with anchor: %+v", res)
	}
}

// An export of a tampered database shows what Verify shows.
func TestExportOfTamperedDatabase(t *testing.T) {
	l := open(t, Config{})
	fill(t, l, 8)
	db := rawDB(t, l.cfg.Path)
	dropTriggers(t, db)
	exec(t, db, "UPDATE entries SET actor = 'carol' WHERE seq = 4")
	exec(t, db, "DELETE FROM entries WHERE seq = 6")
	res := verifyExport(t, export(t, l))
	if res.OK || res.FirstBroken != 4 || res.Problem != "entry 4: hash does not match its contents" {
		t.Errorf("got %+v", res)
	}
}

func TestVerifyExportDetectsTampering(t *testing.T) {
	l := open(t, Config{})
	all := fill(t, l, 6)
	good := export(t, l)
	lines := strings.SplitAfter(good, "\n") // lines[0] is the header, lines[i] entry i; the last is ""
	join := func(ls ...string) string { return strings.Join(ls, "") }
	without := func(i ...int) string {
		var out []string
		for j, s := range lines {
			if !containsInt(i, j) {
				out = append(out, s)
			}
		}
		return join(out...)
	}
	edit := func(i int, old, new string) string {
		if !strings.Contains(lines[i], old) {
			t.Fatalf("line %d has no %q: %s", i, old, lines[i])
		}
		out := append([]string(nil), lines...)
		out[i] = strings.Replace(out[i], old, new, 1)
		return join(out...)
	}
	// The header as it would read after the last two entries.
	cutHeader := strings.NewReplacer(`"entries":6`, `"entries":4`, `"head_seq":6`, `"head_seq":4`, all[5].Hash, all[3].Hash).Replace(lines[0])

	for _, tc := range []struct {
		name    string
		file    string
		anchors []Anchor
		seq     int64
		problem string
	}{
		{"summary changed", edit(3, "change number 3", "change number 9"), nil,
			3, "entry 3: hash does not match its contents"},
		{"escaped the same", edit(3, "change number 3", `change number \u0033`), nil, 0, ""},
		{"line removed", without(4), nil,
			4, "entry 4 missing (seq jumps 3 → 5)"},
		{"lines swapped", join(lines[0], lines[1], lines[2], lines[4], lines[3], lines[5], lines[6]), nil,
			3, "entry 3 missing (seq jumps 2 → 4)"},
		{"line repeated", join(lines[0], lines[1], lines[2], lines[3], lines[3], lines[4], lines[5], lines[6]), nil,
			3, "entry 3 out of order or repeated (it follows entry 3)"},
		{"tail cut", without(5, 6), nil,
			5, "entries 5–6 missing at the end (the header names entry 6 as the newest)"},
		{"tail cut, header fixed: only an anchor shows it", join(cutHeader, lines[1], lines[2], lines[3], lines[4]), nil, 0, ""},
		{"tail cut, header fixed, anchored", join(cutHeader, lines[1], lines[2], lines[3], lines[4]), []Anchor{{6, all[5].Hash}},
			5, "entries 5–6 missing: the anchor 6:" + all[5].Hash + " is newer than the newest entry 4 (the newest entries were removed)"},
		{"header count wrong", edit(0, `"entries":6`, `"entries":7`), nil,
			7, "the header counts 7 entries, the file holds 6"},
		{"header head wrong", edit(0, all[5].Hash, all[4].Hash), nil,
			6, "entry 6: hash does not match the header (rewritten, hash included)"},
		{"unknown key", edit(2, `"seq":2,`, `"seq":2,"note":"added later",`), nil,
			2, `line 3: entry 2: unknown key "note", not covered by the hash`},
		{"key in other case", edit(2, `"summary":`, `"Summary":"x","summary":`), nil,
			2, `line 3: entry 2: unknown key "Summary", not covered by the hash`},
		{"missing key", edit(2, `"reason":"because",`, ``), nil,
			2, `line 3: entry 2: no "reason"`},
		{"time not canonical", edit(2, all[1].Time.Format(TimeLayout), all[1].Time.Format(offsetLayout)), nil,
			2, `line 3: entry 2: time "` + all[1].Time.Format(offsetLayout) + `" is not in the form 2006-01-02T15:04:05.000Z`},
		{"time without milliseconds", edit(2, `.123Z"`, `Z"`), nil,
			2, `line 3: entry 2: time "` + all[1].Time.Format(time.RFC3339) + `" is not in the form 2006-01-02T15:04:05.000Z`},
		{"seq not a number", edit(2, `"seq":2`, `"seq":"2"`), nil,
			2, `line 3: seq "\"2\"" is not a whole number`},
		{"seq fractional", edit(2, `"seq":2`, `"seq":2.5`), nil,
			2, `line 3: seq "2.5" is not a whole number`},
		{"not JSON", edit(4, `{"seq"`, `{seq`), nil,
			4, "line 5: not a valid entry: invalid character 's' looking for beginning of object key string"},
		{"wrong type", edit(4, `"actor":"alice"`, `"actor":7`), nil,
			4, "line 5: entry 4: json: cannot unmarshal number into Go struct field exportEntry.actor of type string"},
		{"seq zero", edit(1, `"seq":1`, `"seq":0`), nil,
			1, "entry 1: seq 0 is not a positive number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := verifyExport(t, tc.file, tc.anchors...)
			if tc.problem == "" {
				if !res.OK {
					t.Errorf("got broken at %d: %q; want OK", res.FirstBroken, res.Problem)
				}
				return
			}
			if res.OK || res.FirstBroken != tc.seq || res.Problem != tc.problem {
				t.Errorf("got OK %v at %d: %q\nwant broken at %d: %q", res.OK, res.FirstBroken, res.Problem, tc.seq, tc.problem)
			}
		})
	}
}

const offsetLayout = "2006-01-02T15:04:05.000-07:00"

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestVerifyExportTolerates(t *testing.T) {
	l := open(t, Config{})
	fill(t, l, 3)
	good := export(t, l)
	for name, f := range map[string]string{
		"CRLF line ends":        strings.ReplaceAll(good, "\n", "\r\n"),
		"no final newline":      strings.TrimSuffix(good, "\n"),
		"blank lines":           "\n" + strings.ReplaceAll(good, "\n", "\n\n") + "  \n",
		"header keys reordered": reorderHeader(t, good),
	} {
		if res := verifyExport(t, f); !res.OK || res.Entries != 3 {
			t.Errorf("%s: %+v", name, res)
		}
	}
}

func reorderHeader(t *testing.T, s string) string {
	hdr, rest, _ := strings.Cut(s, "\n")
	hdr = strings.Replace(hdr, `{"format":"schoolgate-audit",`, `{`, 1)
	hdr = strings.TrimSuffix(hdr, "}") + `,"format":"schoolgate-audit","comment":"ignored"}`
	return hdr + "\n" + rest
}

func TestVerifyExportRefuses(t *testing.T) {
	for name, f := range map[string]string{
		"empty":          "",
		"blank":          "\n\n  \n",
		"not JSON":       "hello\n",
		"JSON array":     "[1,2]\n",
		"other format":   `{"format":"something-else","version":1,"entries":0,"head_seq":0,"head":"` + Genesis + `"}` + "\n",
		"newer version":  `{"format":"schoolgate-audit","version":2,"entries":0,"head_seq":0,"head":"` + Genesis + `"}` + "\n",
		"no count":       `{"format":"schoolgate-audit","version":1,"head_seq":0,"head":"` + Genesis + `"}` + "\n",
		"negative count": `{"format":"schoolgate-audit","version":1,"entries":-1,"head_seq":0,"head":"` + Genesis + `"}` + "\n",
		"entry first":    `{"seq":1}` + "\n",
	} {
		res, err := VerifyExport(strings.NewReader(f))
		if !errors.Is(err, ErrNotExport) || res != (Result{}) {
			t.Errorf("%s: got %+v, %v; want ErrNotExport", name, res, err)
		}
	}
}

func TestVerifyExportLongLine(t *testing.T) {
	l := open(t, Config{})
	fill(t, l, 2)
	good := export(t, l)
	long := good + `{"seq":3,"detail":"` + strings.Repeat("x", maxExportLine) + `"}` + "\n" + good
	res := verifyExport(t, long)
	if res.OK || res.FirstBroken != 3 || res.Problem != "line 4: longer than 16777216 bytes, not an entry" {
		t.Errorf("got %+v", res)
	}
	if _, err := VerifyExport(strings.NewReader(strings.Repeat("{", maxExportLine+10))); !errors.Is(err, ErrNotExport) {
		t.Errorf("long header: got %v, want ErrNotExport", err)
	}
}

type failingReader struct{ data []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestVerifyExportReadError(t *testing.T) {
	l := open(t, Config{})
	fill(t, l, 2)
	_, err := VerifyExport(&failingReader{data: []byte(export(t, l))})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("got %v, want the read error", err)
	}
}

// TestHashVector pins the hash rule to values computed independently (a
// few lines of Python following docs/audit.md), and checks that the page
// still shows them.
func TestHashVector(t *testing.T) {
	e1 := Entry{
		Seq: 1, Time: time.Date(2026, 3, 2, 10, 15, 30, 123000000, time.UTC),
		Actor: "alice", Role: "technician", Address: "10.10.0.5", Action: "config.save", Object: "config v12",
		Summary: "pupils: social networks unblocked", Detail: "--- v11\n+++ v12\n", PrevHash: Genesis,
	}
	const want1 = "62ddb9fcf7353c7ce33cd5e118e380cb09591f47f2ff6943c06db596ea83ec4f"
	e2 := Entry{
		Seq: 2, Time: time.Date(2026, 3, 2, 10, 17, 0, 0, time.UTC),
		Actor: "system", Action: "exception.expire", Object: "exception 4",
		Summary: "exception for youtube.com (pupils) expired", PrevHash: want1,
	}
	const want2 = "d5ad00bfa106dac49464fa185ced98d384a53a34026daf41ee7325bf3d45aae0"
	if got := Hash(e1); got != want1 {
		t.Errorf("entry 1: got %s, want %s", got, want1)
	}
	if got := Hash(e2); got != want2 {
		t.Errorf("entry 2: got %s, want %s", got, want2)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{want1, want2, Domain, Genesis, "2026-03-02T10:15:30.123Z"} {
		if !bytes.Contains(doc, []byte(s)) {
			t.Errorf("docs/audit.md does not show %s", s)
		}
	}
}

func TestParseAnchor(t *testing.T) {
	h := strings.Repeat("ab", 32)
	a, err := ParseAnchor(" 17:" + h + "\n")
	if err != nil || a != (Anchor{17, h}) || a.String() != "17:"+h {
		t.Errorf("got %v, %v", a, err)
	}
	for _, s := range []string{"", "17", ":" + h, "0:" + h, "-1:" + h, "x:" + h, "17:" + h[:63], "17:" + strings.ToUpper(h)} {
		if _, err := ParseAnchor(s); err == nil {
			t.Errorf("ParseAnchor(%q) accepted", s)
		}
	}
}
