package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

var t0 = time.Date(2026, 3, 2, 10, 15, 30, 0, time.UTC)

func newClock() *fakeClock { return &fakeClock{t: t0} }

// open creates a started Log in a temp dir, closed at the end of the test.
func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "events.db")
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 10 * time.Millisecond
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := l.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func flush(t *testing.T, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func query(t *testing.T, l *Log, f Filter) Page {
	t.Helper()
	p, err := l.Query(context.Background(), f)
	if err != nil {
		t.Fatalf("Query(%+v): %v", f, err)
	}
	return p
}

func names(p Page) []string {
	var out []string
	for _, e := range p.Events {
		out = append(out, e.Name)
	}
	return out
}

func TestRoundTripFilters(t *testing.T) {
	l := open(t, Config{DedupeWindow: -1})
	c1 := netip.MustParseAddr("10.20.0.5")
	c2 := netip.MustParseAddr("fd00::7")
	full := Event{
		Time: t0, Client: c1, MAC: "AA:BB:CC:00:00:01", Device: "ipad-7", Segment: "pupils", Profile: "pupil",
		Source: "dns", Name: "Www.Example.COM.", QType: "A", Action: "block", Tier: "profile",
		Category: "gambling", List: "ut1-gambling", Rule: "example.com", Count: 3,
	}
	evs := []Event{
		full,
		{Time: t0.Add(1 * time.Second), Client: c2, Segment: "staff", Profile: "staff", Source: "sni", Name: "mail.school.uk", Action: "allow", Tier: "default"},
		{Time: t0.Add(2 * time.Second), Client: c1, MAC: "aa:bb:cc:00:00:01", Segment: "pupils", Profile: "pupil", Source: "quic", Name: "video.example.net", Action: "block", Category: "streaming", Tier: "profile"},
		{Time: t0.Add(3 * time.Second), Client: netip.MustParseAddr("::ffff:10.30.0.9"), Segment: "guest", Profile: "guest", Source: "dns", Name: "www.google.com", QType: "AAAA", Action: "rewrite", Tier: "safesearch"},
		{Time: t0.Add(3600 * time.Second), Client: c2, Segment: "staff", Profile: "pupil", Source: "http", Name: "old.example.org", Action: "allow"},
	}
	for _, e := range evs {
		l.Record(e)
	}
	flush(t, l)

	// Every field survives, normalised.
	p := query(t, l, Filter{Name: "www.example.com"})
	if len(p.Events) != 1 {
		t.Fatalf("got %d events, want 1", len(p.Events))
	}
	got := p.Events[0]
	want := full
	want.ID = got.ID
	want.Name = "www.example.com"
	want.MAC = "aa:bb:cc:00:00:01"
	if !got.Time.Equal(want.Time) {
		t.Errorf("Time: got %v, want %v", got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("round trip:\n got  %+v\n want %+v", got, want)
	}
	if got.ID == 0 {
		t.Errorf("ID: got 0, want non-zero")
	}

	tests := []struct {
		name string
		f    Filter
		want []string // newest first
	}{
		{"all", Filter{}, []string{"old.example.org", "www.google.com", "video.example.net", "mail.school.uk", "www.example.com"}},
		{"segment", Filter{Segment: "pupils"}, []string{"video.example.net", "www.example.com"}},
		{"profile", Filter{Profile: "pupil"}, []string{"old.example.org", "video.example.net", "www.example.com"}},
		{"source", Filter{Source: "dns"}, []string{"www.google.com", "www.example.com"}},
		{"action block", Filter{Action: "block"}, []string{"video.example.net", "www.example.com"}},
		{"action allow", Filter{Action: "allow"}, []string{"old.example.org", "mail.school.uk"}},
		{"action rewrite", Filter{Action: "rewrite"}, []string{"www.google.com"}},
		{"category", Filter{Category: "streaming"}, []string{"video.example.net"}},
		{"client v4", Filter{Client: c1}, []string{"video.example.net", "www.example.com"}},
		{"client v6", Filter{Client: c2}, []string{"old.example.org", "mail.school.uk"}},
		{"client v4-mapped", Filter{Client: netip.MustParseAddr("10.30.0.9")}, []string{"www.google.com"}},
		{"mac any case", Filter{MAC: "AA:bb:cc:00:00:01"}, []string{"video.example.net", "www.example.com"}},
		{"name substring", Filter{Name: "EXAMPLE"}, []string{"old.example.org", "video.example.net", "www.example.com"}},
		{"from", Filter{From: t0.Add(2 * time.Second)}, []string{"old.example.org", "www.google.com", "video.example.net"}},
		{"to exclusive", Filter{To: t0.Add(2 * time.Second)}, []string{"mail.school.uk", "www.example.com"}},
		{"range", Filter{From: t0.Add(time.Second), To: t0.Add(3 * time.Second)}, []string{"video.example.net", "mail.school.uk"}},
		{"combined", Filter{Segment: "staff", Profile: "pupil", Action: "allow", Source: "http"}, []string{"old.example.org"}},
		{"unknown segment", Filter{Segment: "nope"}, nil},
		{"unknown action", Filter{Action: "nope"}, nil},
		{"no match combo", Filter{Segment: "guest", Action: "block"}, nil},
		{"limit", Filter{Limit: 2}, []string{"old.example.org", "www.google.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(query(t, l, tt.f))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	l := open(t, Config{DedupeWindow: -1})
	const n = 257
	for i := range n {
		// Most share a second: the cursor must not lose ties.
		l.Record(Event{Time: t0.Add(time.Duration(i/100) * time.Second), Name: fmt.Sprintf("n%03d.example", i), Segment: []string{"a", "b"}[i%2], Action: "allow"})
	}
	flush(t, l)

	tests := []struct {
		name  string
		f     Filter
		limit int
		want  int
	}{
		{"all", Filter{}, 10, n},
		{"one page", Filter{}, 1000, n},
		{"filtered", Filter{Segment: "b"}, 7, n / 2},
		{"limit one", Filter{Segment: "a"}, 1, n/2 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.Limit = tt.limit
			seen := map[int64]bool{}
			var prev int64
			pages := 0
			for {
				p := query(t, l, f)
				pages++
				if len(p.Events) > tt.limit {
					t.Fatalf("page has %d events, limit %d", len(p.Events), tt.limit)
				}
				for _, e := range p.Events {
					if seen[e.ID] {
						t.Fatalf("duplicate id %d", e.ID)
					}
					if prev != 0 && e.ID >= prev {
						t.Fatalf("not newest first: %d after %d", e.ID, prev)
					}
					seen[e.ID], prev = true, e.ID
				}
				if p.Next == "" {
					break
				}
				f.Cursor = p.Next
			}
			if got := len(seen); got != tt.want {
				t.Errorf("got %d events over %d pages, want %d", got, pages, tt.want)
			}
		})
	}
}

func TestBadCursor(t *testing.T) {
	l := open(t, Config{})
	for _, c := range []string{"garbage", "c1", "c1!!!!", "c1AAAAAAAAAAA", "c1" + "AAAAAAAAAAA=", encodeCursor(0)[:5]} {
		_, err := l.Query(context.Background(), Filter{Cursor: c})
		if !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: got %v, want ErrBadCursor", c, err)
		}
	}
}

func TestNameEscaping(t *testing.T) {
	l := open(t, Config{})
	all := []string{"a%b.example", "a_b.example", "axb.example", `it's"quoted".example`, `back\slash.example`, "plain.example"}
	for _, n := range all {
		l.Record(Event{Time: t0, Name: n, Action: "allow"})
	}
	flush(t, l)
	tests := []struct {
		sub  string
		want []string
	}{
		{"%", []string{"a%b.example"}},
		{"_", []string{"a_b.example"}},
		{"a_b", []string{"a_b.example"}},
		{"'s\"", []string{`it's"quoted".example`}},
		{`\`, []string{`back\slash.example`}},
		{`\s`, []string{`back\slash.example`}},
		{"AXB", []string{"axb.example"}},
		{"example", all},
		{"%%", nil},
	}
	for _, tt := range tests {
		t.Run(tt.sub, func(t *testing.T) {
			got := names(query(t, l, Filter{Name: tt.sub}))
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestDedupe(t *testing.T) {
	base := Event{Client: netip.MustParseAddr("10.0.0.1"), Segment: "s", Source: "dns", Name: "x.example", QType: "A", Action: "block"}
	at := func(sec int, mod func(*Event)) Event {
		e := base
		e.Time = t0.Add(time.Duration(sec) * time.Second)
		if mod != nil {
			mod(&e)
		}
		return e
	}
	tests := []struct {
		name string
		// batches are flushed one after another; folding must work across flushes.
		batches [][]Event
		want    []int // counts, newest first
	}{
		{"within window", [][]Event{{at(0, nil), at(10, nil), at(59, nil)}}, []int{3}},
		{"across flushes", [][]Event{{at(0, nil)}, {at(5, nil)}, {at(30, nil)}}, []int{3}},
		{"across windows", [][]Event{{at(0, nil), at(60, nil), at(61, nil)}}, []int{2, 1}},
		{"different qtype", [][]Event{{at(0, nil), at(1, func(e *Event) { e.QType = "AAAA" })}}, []int{1, 1}},
		{"different client", [][]Event{{at(0, nil), at(1, func(e *Event) { e.Client = netip.MustParseAddr("10.0.0.2") })}}, []int{1, 1}},
		{"preset counts add", [][]Event{{at(0, func(e *Event) { e.Count = 4 }), at(1, func(e *Event) { e.Count = 2 })}}, []int{6}},
		{"name case folds", [][]Event{{at(0, nil), at(1, func(e *Event) { e.Name = "X.Example." })}}, []int{2}},
		// Fields are digested with their lengths: moving a letter from one to the next
		// is a different decision.
		{"fields do not run together", [][]Event{{at(0, func(e *Event) { e.MAC, e.Device = "ab", "" }), at(1, func(e *Event) { e.MAC, e.Device = "a", "b" })}}, []int{1, 1}},
		{"no client and ::", [][]Event{{at(0, func(e *Event) { e.Client = netip.Addr{} }), at(1, func(e *Event) { e.Client = netip.IPv6Unspecified() })}}, []int{1, 1}},
	}
	// Any field but the time and count makes a decision of its own.
	for _, f := range []struct {
		name string
		set  func(*Event)
	}{
		{"mac", func(e *Event) { e.MAC = "dc:a6:32:01:02:03" }}, {"device", func(e *Event) { e.Device = "kiosk" }},
		{"segment", func(e *Event) { e.Segment = "t" }}, {"profile", func(e *Event) { e.Profile = "staff" }},
		{"source", func(e *Event) { e.Source = "sni" }}, {"name", func(e *Event) { e.Name = "y.example" }},
		{"action", func(e *Event) { e.Action = "allow" }}, {"tier", func(e *Event) { e.Tier = "exception" }},
		{"category", func(e *Event) { e.Category = "social" }}, {"list", func(e *Event) { e.List = "ut1" }},
		{"rule", func(e *Event) { e.Rule = "x.example" }}, {"schedule", func(e *Event) { e.Schedule = "lesson time" }},
	} {
		tests = append(tests, struct {
			name    string
			batches [][]Event
			want    []int
		}{"different " + f.name, [][]Event{{at(0, nil), at(1, f.set)}}, []int{1, 1}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := open(t, Config{DedupeWindow: time.Minute})
			total := 0
			for _, b := range tt.batches {
				for _, e := range b {
					l.Record(e)
					total++
				}
				flush(t, l)
			}
			p := query(t, l, Filter{})
			var got []int
			for _, e := range p.Events {
				got = append(got, e.Count)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("counts: got %v, want %v", got, tt.want)
			}
			s := l.Stats()
			if s.Written+s.Folded != uint64(total) {
				t.Errorf("Written %d + Folded %d, want %d", s.Written, s.Folded, total)
			}
			if got, want := s.Written, uint64(len(tt.want)); got != want {
				t.Errorf("Written: got %d, want %d", got, want)
			}
		})
	}
}

func TestQueueOverflowNeverBlocks(t *testing.T) {
	// Not started: the writer is "blocked" forever, so the queue only fills.
	l, err := New(Config{Path: filepath.Join(t.TempDir(), "e.db"), QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		for range 100 {
			l.Record(Event{Name: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	s := l.Stats()
	if s.Queued != 4 || s.Dropped != 96 || s.Pending != 4 {
		t.Errorf("got Queued %d Dropped %d Pending %d, want 4 96 4", s.Queued, s.Dropped, s.Pending)
	}
	if err := l.Flush(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Flush before Start: got %v, want ErrNotRunning", err)
	}
	l.Close()
	l.Record(Event{Name: "after close"})
	if got := l.Stats().Dropped; got != 97 {
		t.Errorf("Dropped after Close: got %d, want 97", got)
	}
}

func TestCloseDrainsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	l := open(t, Config{Path: path, FlushInterval: time.Hour, DedupeWindow: -1})
	for i := range 1000 {
		l.Record(Event{Time: t0, Name: fmt.Sprintf("n%d", i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := open(t, Config{Path: path})
	p := query(t, l2, Filter{Limit: 1000})
	if got := len(p.Events); got != 1000 {
		t.Errorf("after Close and reopen: got %d events, want 1000", got)
	}
}

func TestReopenKeepsDataAndIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	clk := newClock()
	l := open(t, Config{Path: path, Now: clk.Now, DedupeWindow: -1})
	for range 3 {
		l.Record(Event{Time: t0, Name: "before.example"})
	}
	flush(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := open(t, Config{Path: path, Now: clk.Now, DedupeWindow: -1})
	// Same second as the stored rows: ids must continue, not collide.
	for range 2 {
		l2.Record(Event{Time: t0, Name: "after.example"})
	}
	flush(t, l2)
	if s := l2.Stats(); s.LastError != "" {
		t.Fatalf("LastError: %s", s.LastError)
	}
	got := names(query(t, l2, Filter{}))
	want := []string{"after.example", "after.example", "before.example", "before.example", "before.example"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRetentionPurge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	clk := newClock()
	l := open(t, Config{Path: path, Now: clk.Now})
	l.Record(Event{Time: t0.Add(-48 * time.Hour), Name: "old.example", Segment: "s"})
	l.Record(Event{Time: t0.Add(-47 * time.Hour), Name: "old2.example", Segment: "s"})
	l.Record(Event{Time: t0.Add(-time.Hour), Name: "new.example", Segment: "s"})
	flush(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := open(t, Config{Path: path, Now: clk.Now, Retention: 24 * time.Hour})
	deadline := time.Now().Add(10 * time.Second)
	for l2.Stats().Purged < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := l2.Stats().Purged; got != 2 {
		t.Fatalf("Purged: got %d, want 2", got)
	}
	if got, want := names(query(t, l2, Filter{})), []string{"new.example"}; !slices.Equal(got, want) {
		t.Errorf("after purge: got %q, want %q", got, want)
	}
	c, err := l2.Counts(context.Background(), t0.Add(-72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := c["s"].Queries; got != 1 {
		t.Errorf("rollup after purge: got %d queries, want 1", got)
	}
}

func TestCounts(t *testing.T) {
	l := open(t, Config{DedupeWindow: -1})
	hour := t0.Truncate(time.Hour) // 10:00
	evs := []struct {
		at     time.Duration
		seg    string
		action string
		count  int
	}{
		{-2 * time.Hour, "pupils", "block", 1}, // before since
		{10 * time.Minute, "pupils", "allow", 1},
		{20 * time.Minute, "pupils", "block", 2}, // partial hour, counted from events
		{70 * time.Minute, "pupils", "block", 1}, // whole hour, from rollup
		{80 * time.Minute, "staff", "allow", 5},
		{90 * time.Minute, "", "rewrite", 1},
	}
	for _, e := range evs {
		l.Record(Event{Time: hour.Add(e.at), Segment: e.seg, Action: e.action, Name: "n", Count: e.count})
	}
	flush(t, l)
	got, err := l.Counts(context.Background(), hour.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]SegmentCounts{
		"pupils": {Queries: 4, Blocked: 3},
		"staff":  {Queries: 5},
		"":       {Queries: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestConcurrentRecord(t *testing.T) {
	l := open(t, Config{QueueSize: 1 << 16})
	const workers, per = 16, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				l.Record(Event{Name: fmt.Sprintf("w%d-%d.example", w, i%100), Segment: "s", Action: "allow",
					Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(w)})})
			}
		}()
	}
	// Query and Stats while writing: readers must not disturb the writer.
	go func() {
		for range 20 {
			l.Query(context.Background(), Filter{Name: "w1"})
			l.Stats()
		}
	}()
	wg.Wait()
	flush(t, l)
	s := l.Stats()
	if s.Dropped != 0 || s.Queued != workers*per || s.Written+s.Folded != workers*per {
		t.Errorf("stats: %+v", s)
	}
	if s.Written != workers*100 {
		t.Errorf("Written: got %d, want %d (one row per distinct name)", s.Written, workers*100)
	}
	c, err := l.Counts(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c["s"].Queries; got != workers*per {
		t.Errorf("Counts queries: got %d, want %d", got, workers*per)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	l, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := l.rdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != schemaVersion {
		t.Errorf("user_version: got %d, want %d", v, schemaVersion)
	}
	l.Close()

	// Reopening at the current version is a no-op migration.
	l, err = New(Config{Path: path})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	l.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = New(Config{Path: path})
	if !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("newer schema: got %v, want ErrSchemaVersion", err)
	}
}

// A scheduled block keeps the schedule's name, for the DSL asking why social media was
// blocked at ten but not at four.
func TestSchedule(t *testing.T) {
	l := open(t, Config{})
	l.Record(Event{Time: t0, Client: netip.MustParseAddr("10.20.0.5"), Segment: "pupils", Source: "dns", Name: "tiktok.com",
		Action: "block", Tier: "profile", Category: "social", List: "ut1", Rule: "tiktok.com", Schedule: "lesson time"})
	l.Record(Event{Time: t0.Add(time.Second), Client: netip.MustParseAddr("10.20.0.5"), Segment: "pupils", Source: "dns", Name: "bbc.co.uk"})
	flush(t, l)
	got := map[string]string{}
	for _, e := range query(t, l, Filter{}).Events {
		got[e.Name] = e.Schedule
	}
	if got["tiktok.com"] != "lesson time" || got["bbc.co.uk"] != "" {
		t.Errorf("schedules read back: %q", got)
	}
}

// A log written before schedules were recorded (schema 2) opens, keeps its events and
// records schedules from then on.
func TestUpgradeFromSchema2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(db, migrations[:2], ErrSchemaVersion); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO names (id, name) VALUES (1, 'old.example')`,
		`INSERT INTO atoms (id, kind, value) VALUES (1, 3, 'pupils')`,
		fmt.Sprintf(`INSERT INTO events (id, name_id, segment_id, count) VALUES (%d, 1, 1, 2)`, idOf(t0.Unix(), 0)),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	l := open(t, Config{Path: path})
	l.Record(Event{Time: t0.Add(time.Second), Segment: "pupils", Name: "new.example", Action: "block", Schedule: "lesson time"})
	flush(t, l)
	evs := query(t, l, Filter{}).Events
	if len(evs) != 2 || evs[1].Name != "old.example" || evs[1].Segment != "pupils" || evs[1].Count != 2 || evs[1].Schedule != "" ||
		evs[0].Name != "new.example" || evs[0].Schedule != "lesson time" {
		t.Errorf("after the upgrade: %+v", evs)
	}
}

func TestCorruptFile(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"text", []byte("this is not a database, just some text that is long enough to have a header........" + string(make([]byte, 8192)))},
		{"bad header", append([]byte("SQLite format 3\x00"), make([]byte, 4096)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "e.db")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := New(Config{Path: path})
			if err == nil {
				l.Close()
				t.Fatal("New on a garbage file: got nil error")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestStartCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	path := filepath.Join(t.TempDir(), "e.db")
	l, err := New(Config{Path: path, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l.Record(Event{Name: "x"})
	cancel()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := l.Stats().Written; got != 1 {
		t.Errorf("Written after cancel and Close: got %d, want 1", got)
	}
}
