package audit

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the current time and moves on by 90 s, so entries get
// distinct, predictable times.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(90 * time.Second)
	return t
}

// t0 has nanoseconds, and is in another zone, to show that stored times are UTC milliseconds.
var t0 = time.Date(2026, 3, 2, 11, 15, 30, 123456789, time.FixedZone("CET", 3600))

func newClock() *fakeClock { return &fakeClock{t: t0} }

// open creates a Log in a temp dir, closed at the end of the test.
func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), FileName)
	}
	if cfg.Now == nil {
		cfg.Now = newClock().Now
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t *testing.T, l *Log, e Entry) Entry {
	t.Helper()
	got, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatalf("Append(%+v): %v", e, err)
	}
	return got
}

// fill appends n ordinary entries and returns them as stored.
func fill(t *testing.T, l *Log, n int) []Entry {
	t.Helper()
	actors := []string{"alice", "bob", ActorSystem}
	actions := []string{"config.save", "exception.approve", "account.create", "list.update"}
	var out []Entry
	for i := range n {
		out = append(out, mustAppend(t, l, Entry{
			Actor:   actors[i%len(actors)],
			Role:    "technician",
			Address: "10.10.0.5",
			Action:  actions[i%len(actions)],
			Object:  fmt.Sprintf("object-%d", i%5),
			Summary: fmt.Sprintf("change number %d", i+1),
			Detail:  fmt.Sprintf("--- a\n+++ b\n@@ -1 +1 @@\n-old %d\n+new %d\n", i, i+1),
			Reason:  "because",
		}))
	}
	return out
}

func verify(t *testing.T, l *Log, anchors ...Anchor) Result {
	t.Helper()
	res, err := l.Verify(context.Background(), anchors...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

func TestAppendAssigns(t *testing.T) {
	l := open(t, Config{})
	in := Entry{
		Seq: 99, Time: time.Unix(1, 0), PrevHash: "x", Hash: "y", // ignored
		Actor: "  alice ", Role: "technician", Address: "10.10.0.5:51234",
		Action: "config.save", Object: "config v12",
		Summary: "pupils: social\nnetworks unblocked\x00", Detail: "--- v11\n+++ v12\n\tline\n", Reason: "bad\xffbyte",
	}
	e1 := mustAppend(t, l, in)
	want := Entry{
		Seq: 1, Time: time.Date(2026, 3, 2, 10, 15, 30, 123000000, time.UTC),
		Actor: "alice", Role: "technician", Address: "10.10.0.5",
		Action: "config.save", Object: "config v12",
		Summary: "pupils: social networks unblocked\uFFFD", Detail: "--- v11\n+++ v12\n\tline\n", Reason: "bad\uFFFDbyte",
		PrevHash: Genesis,
	}
	want.Hash = Hash(want)
	if e1 != want {
		t.Errorf("Append returned\n got  %+v\n want %+v", e1, want)
	}
	if e1.Time.Location() != time.UTC {
		t.Errorf("Time zone %v, want UTC", e1.Time.Location())
	}
	e2 := mustAppend(t, l, Entry{Actor: ActorSystem, Action: "exception.expire", Object: "exception 4"})
	if e2.Seq != 2 || e2.PrevHash != e1.Hash || e2.Hash != Hash(e2) {
		t.Errorf("second entry: seq %d prev %s hash %s; want 2, %s, %s", e2.Seq, e2.PrevHash, e2.Hash, e1.Hash, Hash(e2))
	}

	// What List reads back is exactly what Append returned.
	got, err := l.List(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []Entry{e2, e1}) {
		t.Errorf("List:\n got  %+v\n want %+v", got, []Entry{e2, e1})
	}
}

func TestAppendRefuses(t *testing.T) {
	l := open(t, Config{})
	for _, e := range []Entry{
		{Action: "config.save"},
		{Actor: "  ", Action: "config.save"},
		{Actor: "alice"},
		{Actor: "alice", Action: "Config.Save"},
		{Actor: "alice", Action: "config save"},
		{Actor: "alice", Action: strings.Repeat("a", maxAction+1)},
	} {
		if _, err := l.Append(context.Background(), e); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%+v): got %v, want ErrInvalid", e, err)
		}
	}
	if res := verify(t, l); !res.OK || res.Entries != 0 {
		t.Errorf("refused entries left a trace: %+v", res)
	}
}

func TestAppendCutsLongFields(t *testing.T) {
	l := open(t, Config{})
	e := mustAppend(t, l, Entry{
		Actor:   "alice",
		Action:  "config.save",
		Summary: strings.Repeat("é", maxLineField), // 2 bytes each
		Detail:  strings.Repeat("x", maxDetail+10),
		Reason:  strings.Repeat("€", maxReason),
	})
	for name, f := range map[string]struct {
		s   string
		max int
	}{"summary": {e.Summary, maxLineField}, "detail": {e.Detail, maxDetail}, "reason": {e.Reason, maxReason}} {
		if len(f.s) > f.max || !utf8.ValidString(f.s) || !strings.Contains(f.s, "[cut from ") {
			t.Errorf("%s: %d bytes (max %d), valid UTF-8 %v, ends %q", name, len(f.s), f.max, utf8.ValidString(f.s), f.s[max(0, len(f.s)-40):])
		}
	}
	if res := verify(t, l); !res.OK {
		t.Errorf("Verify: %+v", res)
	}
}

func TestListFilterCursor(t *testing.T) {
	l := open(t, Config{})
	all := fill(t, l, 12) // times t0, t0+90s, …
	seqs := func(es []Entry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all", Filter{}, []int64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"limit", Filter{Limit: 3}, []int64{12, 11, 10}},
		{"before", Filter{Before: 10, Limit: 3}, []int64{9, 8, 7}},
		{"before end", Filter{Before: 3, Limit: 3}, []int64{2, 1}},
		{"actor", Filter{Actor: "bob"}, []int64{11, 8, 5, 2}},
		{"action", Filter{Action: "exception.approve"}, []int64{10, 6, 2}},
		{"action prefix", Filter{Action: "exception."}, []int64{10, 6, 2}},
		{"action prefix matches no partial word", Filter{Action: "exception.app"}, nil},
		{"object", Filter{Object: "object-0"}, []int64{11, 6, 1}},
		{"actor and action", Filter{Actor: "alice", Action: "config.save"}, []int64{1}},
		// From is inclusive and To exclusive, to the millisecond entries keep.
		{"from", Filter{From: all[9].Time}, []int64{12, 11, 10}},
		{"from sub-ms", Filter{From: all[9].Time.Add(time.Microsecond)}, []int64{12, 11}},
		{"to", Filter{To: all[2].Time}, []int64{2, 1}},
		{"to sub-ms", Filter{To: all[2].Time.Add(time.Microsecond)}, []int64{3, 2, 1}},
		{"range", Filter{From: all[3].Time, To: all[6].Time}, []int64{6, 5, 4}},
		{"range and cursor", Filter{From: all[3].Time, To: all[6].Time, Before: 6}, []int64{5, 4}},
		{"nothing", Filter{Actor: "nobody"}, nil},
	} {
		got, err := l.List(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(seqs(got), tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, seqs(got), tc.want)
		}
	}

	// Paging with Before visits every entry once.
	var paged []int64
	for before := int64(0); ; {
		page, err := l.List(ctx, Filter{Limit: 5, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, seqs(page)...)
		before = page[len(page)-1].Seq
	}
	if want := []int64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}; !slices.Equal(paged, want) {
		t.Errorf("paged: got %v, want %v", paged, want)
	}
	if got, _ := l.List(ctx, Filter{Limit: 5000}); len(got) != 12 {
		t.Errorf("large limit: got %d entries", len(got))
	}
}

func TestVerifyOK(t *testing.T) {
	l := open(t, Config{})
	res := verify(t, l)
	want := Result{OK: true, Head: Genesis}
	if res != want {
		t.Errorf("empty trail: got %+v, want %+v", res, want)
	}
	all := fill(t, l, 20)
	res = verify(t, l)
	last := all[len(all)-1]
	want = Result{Entries: 20, OK: true, HeadSeq: 20, Head: last.Hash}
	if res != want {
		t.Errorf("got %+v, want %+v", res, want)
	}
	head, err := l.Head(context.Background())
	if err != nil || head != (Anchor{20, last.Hash}) {
		t.Errorf("Head: got %v, %v; want 20:%s", head, err, last.Hash)
	}
	// An anchor from earlier still holds.
	if res := verify(t, l, Anchor{7, all[6].Hash}, Anchor{20, last.Hash}); !res.OK {
		t.Errorf("with anchors: %+v", res)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	clock := newClock()
	l, err := New(Config{Path: path, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	first := fill(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), Entry{Actor: "a", Action: "b"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	if _, err := l.Verify(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Verify after Close: got %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l = open(t, Config{Path: path, Now: clock.Now})
	e := mustAppend(t, l, Entry{Actor: "alice", Action: "config.save"})
	if e.Seq != 4 || e.PrevHash != first[2].Hash {
		t.Errorf("after reopening: seq %d prev %s, want 4 and %s", e.Seq, e.PrevHash, first[2].Hash)
	}
	if res := verify(t, l); !res.OK || res.Entries != 4 {
		t.Errorf("Verify: %+v", res)
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 500)), 0o600)
	if _, err := New(Config{Path: garbage}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: got %v, want ErrCorrupt", err)
	}

	newer := filepath.Join(dir, "newer.db")
	db, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := New(Config{Path: newer}); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("newer schema: got %v, want ErrSchemaVersion", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("empty path accepted")
	}
}

func TestSchemaRefusesUpdateAndDelete(t *testing.T) {
	l := open(t, Config{})
	fill(t, l, 2)
	db := rawDB(t, l.cfg.Path)
	for _, q := range []string{
		"UPDATE entries SET summary = 'x' WHERE seq = 1",
		"DELETE FROM entries WHERE seq = 2",
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want refused as append-only", q, err)
		}
	}
	if res := verify(t, l); !res.OK {
		t.Errorf("Verify: %+v", res)
	}
}

// rawDB opens the trail's file directly, the way someone with a shell on
// the appliance could, with the append-only triggers dropped.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func dropTriggers(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, q := range []string{"DROP TRIGGER entries_no_update", "DROP TRIGGER entries_no_delete"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// forge builds the row a careful forger would write: the right seq, linked
// to prev, with its hash computed by the published rule.
func forge(seq int64, prev string) Entry {
	e := Entry{
		Seq: seq, Time: t0.UTC().Truncate(time.Millisecond), Actor: "mallory", Role: "technician",
		Action: "config.save", Object: "config", Summary: "nothing to see", PrevHash: prev,
	}
	e.Hash = Hash(e)
	return e
}

func insert(t *testing.T, db *sql.DB, e Entry) {
	t.Helper()
	exec(t, db, `INSERT INTO entries (seq, time_ms, actor, role, address, action, object, summary, detail, reason, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixMilli(), e.Actor, e.Role, e.Address, e.Action, e.Object, e.Summary, e.Detail, e.Reason, e.PrevHash, e.Hash)
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, db *sql.DB, all []Entry)
		seq     int64
		problem string
		// after is where the break shows once another entry is appended,
		// when not at seq: Append chains from the head record, so a forged
		// or rewritten newest entry becomes a broken link to the next one.
		after  int64
		healed bool // the head record is rebuilt by the next append
	}{
		{
			name: "summary changed",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "UPDATE entries SET summary = 'nothing happened' WHERE seq = 5")
			},
			seq: 5, problem: "entry 5: hash does not match its contents",
		},
		{
			name: "detail emptied",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "UPDATE entries SET detail = '' WHERE seq = 1")
			},
			seq: 1, problem: "entry 1: hash does not match its contents",
		},
		{
			name: "time moved",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "UPDATE entries SET time_ms = time_ms - 3600000 WHERE seq = 3")
			},
			seq: 3, problem: "entry 3: hash does not match its contents",
		},
		{
			name: "time made text",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "UPDATE entries SET time_ms = 'yesterday' WHERE seq = 3")
			},
			seq: 3, problem: `entry 3: time "yesterday" is not a number of milliseconds`,
		},
		{
			name: "middle row deleted",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "DELETE FROM entries WHERE seq = 5")
			},
			seq: 5, problem: "entry 5 missing (seq jumps 4 → 6)",
		},
		{
			name: "first rows deleted",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "DELETE FROM entries WHERE seq <= 2")
			},
			seq: 1, problem: "entries 1–2 missing (the trail starts at entry 3)",
		},
		{
			name: "forged row inserted in the middle, later rows renumbered",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				for seq := n; seq >= 5; seq-- {
					exec(t, db, "UPDATE entries SET seq = seq + 1 WHERE seq = ?", seq)
				}
				insert(t, db, forge(5, all[3].Hash))
				exec(t, db, "UPDATE head SET seq = ?", n+1)
			},
			seq: 6, problem: "entry 6: hash does not match its contents",
		},
		{
			name: "forged row inserted at the end",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				insert(t, db, forge(n+1, all[n-1].Hash))
			},
			seq: n + 1, problem: "entry 11 beyond the head record, which ends at entry 10 (added outside schoolgate)",
			after: n + 2,
		},
		{
			name: "row inserted with a made-up hash",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				e := forge(n+1, all[n-1].Hash)
				e.Hash = strings.Repeat("ab", 32)
				insert(t, db, e)
				exec(t, db, "UPDATE head SET seq = ?, hash = ?", e.Seq, e.Hash)
			},
			seq: n + 1, problem: "entry 11: hash does not match its contents",
		},
		{
			name: "change hidden by recomputing its hash",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				e := all[4]
				e.Summary = "nothing happened"
				exec(t, db, "UPDATE entries SET summary = ?, hash = ? WHERE seq = 5", e.Summary, Hash(e))
			},
			seq: 6, problem: "entry 6: previous hash does not match entry 5",
		},
		{
			name: "link rewritten",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "UPDATE entries SET prev_hash = ? WHERE seq = 7", Genesis)
			},
			seq: 7, problem: "entry 7: hash does not match its contents",
		},
		{
			name: "first entry's link rewritten with its hash",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				e := all[0]
				e.PrevHash = strings.Repeat("1", 64)
				exec(t, db, "UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = 1", e.PrevHash, Hash(e))
			},
			seq: 1, problem: "entry 1: previous hash is not the genesis value",
		},
		{
			name: "newest entry rewritten with its hash",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				e := all[n-1]
				e.Reason = "approved by the head"
				exec(t, db, "UPDATE entries SET reason = ?, hash = ? WHERE seq = ?", e.Reason, Hash(e), e.Seq)
			},
			seq: n, problem: "entry 10: hash does not match the head record (rewritten, hash included)",
			after: n + 1,
		},
		{
			name: "newest entries deleted",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "DELETE FROM entries WHERE seq >= 9")
			},
			seq: 9, problem: "entries 9–10 missing at the end (the head record names entry 10 as the newest)",
		},
		{
			name: "head record deleted",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "DELETE FROM head")
			},
			seq: n, problem: "the head record is missing (the file was changed outside schoolgate)",
			healed: true,
		},
		{
			name: "summary made a number",
			tamper: func(t *testing.T, db *sql.DB, all []Entry) {
				exec(t, db, "UPDATE entries SET summary = 42 WHERE seq = 2")
			},
			seq: 2, problem: "entry 2: hash does not match its contents",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t, Config{})
			all := fill(t, l, n)
			// Tampered while the Log is open, as on a running appliance.
			db := rawDB(t, l.cfg.Path)
			dropTriggers(t, db)
			tc.tamper(t, db, all)
			res := verify(t, l)
			if res.OK || res.FirstBroken != tc.seq || res.Problem != tc.problem {
				t.Errorf("got OK %v at %d: %q\nwant broken at %d: %q", res.OK, res.FirstBroken, res.Problem, tc.seq, tc.problem)
			}
			// Later appends neither fail nor hide the damage.
			mustAppend(t, l, Entry{Actor: "alice", Action: "config.save", Summary: "after"})
			after := verify(t, l)
			switch want := cmp.Or(tc.after, tc.seq); {
			case tc.healed:
				if !after.OK {
					t.Errorf("after another append: got %+v, want OK", after)
				}
			case after.OK || after.FirstBroken != want:
				t.Errorf("after another append: got OK %v at %d: %q; want broken at %d",
					after.OK, after.FirstBroken, after.Problem, want)
			}
		})
	}
}

// What the chain cannot show without an anchor: someone who knows the format
// removes the newest entries and rewrites the head record. Verify passes;
// an anchor written down before (e.g. from an export) catches it.
func TestVerifyTruncationNeedsAnchor(t *testing.T) {
	l := open(t, Config{})
	all := fill(t, l, 10)
	anchor := Anchor{10, all[9].Hash}
	db := rawDB(t, l.cfg.Path)
	dropTriggers(t, db)
	exec(t, db, "DELETE FROM entries WHERE seq > 7")
	exec(t, db, "UPDATE head SET seq = 7, hash = ?", all[6].Hash)

	if res := verify(t, l); !res.OK || res.Entries != 7 || res.HeadSeq != 7 {
		t.Errorf("without an anchor: got %+v; want OK with 7 entries (undetectable)", res)
	}
	res := verify(t, l, anchor)
	want := "entries 8–10 missing: the anchor 10:" + all[9].Hash + " is newer than the newest entry 7 (the newest entries were removed)"
	if res.OK || res.FirstBroken != 8 || res.Problem != want {
		t.Errorf("with anchor: got OK %v at %d: %q\nwant broken at 8: %q", res.OK, res.FirstBroken, res.Problem, want)
	}
	// An anchor whose hash differs means history was rewritten up to it.
	res = verify(t, l, Anchor{5, all[6].Hash})
	if res.OK || res.FirstBroken != 5 || !strings.Contains(res.Problem, "differs from the anchor") {
		t.Errorf("wrong anchor: got %+v", res)
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	// Two Logs on one file stand for the daemon and the CLI: appends are
	// serialised across them by SQLite's write lock.
	l1 := open(t, Config{Path: path, Now: time.Now})
	l2 := open(t, Config{Path: path, Now: time.Now})
	const workers, each = 8, 20
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		l := l1
		if w%4 == 3 {
			l = l2
		}
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(ctx, Entry{Actor: fmt.Sprintf("w%d", w), Action: "config.save", Summary: fmt.Sprint(i)}); err != nil {
					errs <- err
				}
			}
		})
	}
	// Readers beside the writers.
	wg.Go(func() {
		for range 20 {
			if _, err := l1.List(ctx, Filter{Limit: 10}); err != nil {
				errs <- err
			}
			if res, err := l1.Verify(ctx); err != nil || !res.OK {
				errs <- fmt.Errorf("Verify during appends: %+v, %v", res, err)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res := verify(t, l2)
	if !res.OK || res.Entries != workers*each || res.HeadSeq != workers*each {
		t.Errorf("after concurrent appends: %+v", res)
	}
}

func TestAppendContextCancelled(t *testing.T) {
	l := open(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, Entry{Actor: "a", Action: "b"}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if res := verify(t, l); !res.OK || res.Entries != 0 {
		t.Errorf("cancelled append left a trace: %+v", res)
	}
}

// The durability promise rests on these settings; make sure the DSN applied them.
func TestPragmas(t *testing.T) {
	l := open(t, Config{})
	for _, tc := range []struct {
		db    *sql.DB
		q     string
		want  string
		label string
	}{
		{l.wdb, "PRAGMA journal_mode", "wal", "journal_mode"},
		{l.wdb, "PRAGMA synchronous", "2", "writer synchronous (2 = FULL)"},
		{l.rdb, "PRAGMA synchronous", "2", "reader synchronous (2 = FULL)"},
		{l.wdb, "PRAGMA user_version", fmt.Sprint(schemaVersion), "user_version"},
	} {
		var got string
		if err := tc.db.QueryRow(tc.q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.label, got, tc.want)
		}
	}
}
