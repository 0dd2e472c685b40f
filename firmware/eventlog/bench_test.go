package eventlog

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// synth makes plausible school traffic: 1,000 devices on four segments,
// Zipf-distributed names (a few sites get most queries), ~3% blocked.
type synth struct {
	r       *rand.Rand
	zipf    *rand.Zipf
	names   []string
	clients []netip.Addr
}

var (
	benchSegments   = []string{"pupils", "pupils", "pupils", "staff", "staff", "guest", "admin"}
	benchProfiles   = map[string]string{"pupils": "pupil", "staff": "staff", "guest": "guest", "admin": "staff"}
	benchSources    = []string{"dns", "dns", "dns", "dns", "dns", "dns", "dns", "sni", "sni", "quic"}
	benchQTypes     = []string{"A", "AAAA", "HTTPS"}
	benchCategories = []string{"adult", "gambling", "games", "social_networks", "streaming", "malware", "phishing", "dating", "proxy", "warez"}
	benchBases      = []string{"google.com", "youtube.com", "microsoft.com", "apple.com", "tiktok.com", "bbc.co.uk", "instagram.com", "roblox.com", "wikipedia.org", "office.com"}
)

func newSynth(seed uint64, distinctNames int) *synth {
	r := rand.New(rand.NewPCG(seed, 1))
	s := &synth{r: r, zipf: rand.NewZipf(r, 1.1, 1, uint64(distinctNames-1))}
	for i := range distinctNames {
		var base string
		if i%20 == 0 {
			base = benchBases[(i/20)%len(benchBases)]
		} else {
			base = fmt.Sprintf("site%d.%s", i%40000, []string{"com", "net", "org", "co.uk", "io"}[i%5])
		}
		s.names = append(s.names, fmt.Sprintf("h%d.%s", i, base))
	}
	for i := range 1000 {
		s.clients = append(s.clients, netip.AddrFrom4([4]byte{10, byte(i % 4), byte(i / 250), byte(i%250 + 1)}))
	}
	return s
}

func (s *synth) event(t time.Time) Event {
	ci := s.r.IntN(len(s.clients))
	seg := benchSegments[ci%len(benchSegments)]
	e := Event{
		Time:    t,
		Client:  s.clients[ci],
		MAC:     fmt.Sprintf("02:00:00:00:%02x:%02x", ci>>8, ci&0xff),
		Device:  "dev-" + strconv.Itoa(ci),
		Segment: seg,
		Profile: benchProfiles[seg],
		Source:  benchSources[s.r.IntN(len(benchSources))],
		Name:    s.names[s.zipf.Uint64()],
		Action:  "allow",
		Tier:    "default",
	}
	if e.Source == "dns" {
		e.QType = benchQTypes[s.r.IntN(len(benchQTypes))]
	}
	switch p := s.r.IntN(100); {
	case p < 3:
		e.Action, e.Tier = "block", "profile"
		e.Category = benchCategories[s.r.IntN(len(benchCategories))]
		e.List, e.Rule = "ut1-"+e.Category, e.Name
	case p < 4:
		e.Action, e.Tier = "rewrite", "safesearch"
	case p < 14:
		e.Category = benchCategories[s.r.IntN(len(benchCategories))]
	}
	return e
}

// BenchmarkIngest measures sustained events/s through Record up to commit.
// The producer backs off when the queue is half full so the figure is the
// writer's throughput, not the drop rate.
func BenchmarkIngest(b *testing.B) {
	for _, bc := range []struct {
		name    string
		names   int
		dedupe  time.Duration
		advance time.Duration // event time step
	}{
		{"unique", 2_000_000, -1, 0},
		{"realistic", 300_000, time.Minute, 20 * time.Microsecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := New(Config{Path: filepath.Join(b.TempDir(), "e.db"), DedupeWindow: bc.dedupe})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if err := l.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			s := newSynth(1, bc.names)
			evs := make([]Event, 100_000)
			start := time.Now()
			for i := range evs {
				evs[i] = s.event(start)
			}
			b.ResetTimer()
			begin := time.Now()
			for i := range b.N {
				e := evs[i%len(evs)]
				e.Time = start.Add(time.Duration(i) * bc.advance)
				if bc.dedupe < 0 {
					e.Name = s.names[i%len(s.names)]
				}
				for len(l.queue) > cap(l.queue)/2 {
					time.Sleep(50 * time.Microsecond)
				}
				l.Record(e)
			}
			if err := l.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			el := time.Since(begin)
			b.StopTimer()
			st := l.Stats()
			if st.Dropped != 0 || st.LastError != "" {
				b.Fatalf("stats: %+v", st)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(st.Written), "rows")
		})
	}
}

// benchEvents is how many rows BenchmarkQuery generates; `make bench` sets
// SCHOOLGATE_BENCH_EVENTS=10000000 for the real target.
func benchEvents(b *testing.B) int {
	if v := os.Getenv("SCHOOLGATE_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("SCHOOLGATE_BENCH_EVENTS=%q: want a positive integer", v)
		}
		return n
	}
	return 200_000
}

// benchDB generates (or reuses, from the temp dir) a database of n events
// spread over 30 days ending at end. It bypasses Record: the rows go straight
// in through SQL in large transactions, which is what makes 10M rows
// practical.
func benchDB(b *testing.B, n int, end time.Time) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("schoolgate-eventlog-bench-v%d-%d.db", schemaVersion, n))
	if _, err := os.Stat(path + ".ok"); err == nil {
		return path
	}
	os.Remove(path)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	l, err := New(Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	l.Close()

	begin := time.Now()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-200000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	must := func(_ any, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	// Building the indexes after the rows is several times faster than
	// maintaining them row by row.
	var indexes []string
	{
		rows, err := db.Query(`SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL`)
		if err != nil {
			b.Fatal(err)
		}
		var drop []string
		for rows.Next() {
			var name, q string
			if err := rows.Scan(&name, &q); err != nil {
				b.Fatal(err)
			}
			drop, indexes = append(drop, name), append(indexes, q)
		}
		rows.Close()
		for _, name := range drop {
			must(db.Exec(`DROP INDEX ` + name))
		}
	}
	distinct := min(300_000, max(n/30, 1000))
	s := newSynth(2, distinct)

	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i, nm := range s.names {
		must(tx.Exec(`INSERT INTO names (id, name) VALUES (?, ?)`, i+1, nm))
	}
	atoms := map[atomKey]int64{}
	atom := func(kind int, v string) any {
		if v == "" {
			return nil
		}
		k := atomKey{kind, v}
		id, ok := atoms[k]
		if !ok {
			id = int64(len(atoms) + 1)
			atoms[k] = id
			must(tx.Exec(`INSERT INTO atoms (id, kind, value) VALUES (?, ?, ?)`, id, kind, v))
		}
		return id
	}
	nameIDs := make(map[string]int64, len(s.names))
	for i, nm := range s.names {
		nameIDs[nm] = int64(i + 1)
	}
	const span = 30 * 24 * time.Hour
	startSec := end.Add(-span).Unix()
	step := float64(span/time.Second) / float64(n)
	var prevSec, seq int64 = -1, 0
	roll := map[rollKey]SegmentCounts{}
	ins, err := tx.Prepare(`INSERT INTO events (id, client, mac_id, device_id, segment_id, profile_id, source_id, name_id, qtype_id, action_id, tier_id, category_id, list_id, rule_id, count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		sec := startSec + int64(float64(i)*step)
		if sec != prevSec {
			prevSec, seq = sec, 0
		}
		e := s.event(time.Unix(sec, 0))
		var action any
		if e.Action != "allow" {
			action = atom(kindAction, e.Action)
		}
		count := 1
		if s.r.IntN(4) == 0 {
			count = 1 + s.r.IntN(20)
		}
		must(ins.Exec(idOf(sec, seq), e.Client.AsSlice(), atom(kindMAC, e.MAC), atom(kindDevice, e.Device),
			atom(kindSegment, e.Segment), atom(kindProfile, e.Profile), atom(kindSource, e.Source), nameIDs[e.Name],
			atom(kindQType, e.QType), action, atom(kindTier, e.Tier), atom(kindCategory, e.Category),
			atom(kindList, e.List), atom(kindRule, e.Rule), count))
		seq++
		rc := roll[rollKey{sec / 3600, e.Segment}]
		rc.Queries += uint64(count)
		if e.Action == "block" {
			rc.Blocked += uint64(count)
		}
		roll[rollKey{sec / 3600, e.Segment}] = rc
		if i%200_000 == 199_999 {
			ins.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if tx, err = db.Begin(); err != nil {
				b.Fatal(err)
			}
			if ins, err = tx.Prepare(`INSERT INTO events (id, client, mac_id, device_id, segment_id, profile_id, source_id, name_id, qtype_id, action_id, tier_id, category_id, list_id, rule_id, count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`); err != nil {
				b.Fatal(err)
			}
		}
	}
	ins.Close()
	for k, c := range roll {
		must(tx.Exec(`INSERT INTO rollup (hour, segment_id, queries, blocked) VALUES (?,?,?,?)`, k.hour, atom(kindSegment, k.segment), c.Queries, c.Blocked))
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	for _, q := range indexes {
		must(db.Exec(q))
	}
	must(db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`))
	db.Close()
	fi, _ := os.Stat(path)
	b.Logf("generated %d events (%d names) in %v: %d bytes, %.0f bytes/event", n, distinct, time.Since(begin).Round(time.Millisecond), fi.Size(), float64(fi.Size())/float64(n))
	if err := os.WriteFile(path+".ok", nil, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkQuery runs the UI's typical filters over a large database and
// reports ms per query; the target is ≤500 ms at 10M events.
func BenchmarkQuery(b *testing.B) {
	n := benchEvents(b)
	end := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	path := benchDB(b, n, end)
	l, err := New(Config{Path: path, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	client := netip.MustParseAddr("10.1.0.42")
	day := 24 * time.Hour
	mid := end.Add(-15 * day)
	cases := []struct {
		name string
		f    Filter
	}{
		{"newest", Filter{}},
		{"segment", Filter{Segment: "staff"}},
		{"profile", Filter{Profile: "guest"}},
		{"client", Filter{Client: client}},
		{"mac", Filter{MAC: "02:00:00:00:01:2c"}},
		{"blocked", Filter{Action: "block"}},
		{"category", Filter{Category: "gambling"}},
		{"source_quic", Filter{Source: "quic"}},
		{"segment_blocked", Filter{Segment: "guest", Action: "block"}},
		{"segment_category", Filter{Segment: "staff", Category: "dating"}},
		{"client_blocked", Filter{Client: client, Action: "block"}},
		{"client_day", Filter{Client: client, From: mid, To: mid.Add(day)}},
		{"blocked_day", Filter{Action: "block", From: mid, To: mid.Add(day)}},
		{"segment_hour_mid", Filter{Segment: "pupils", From: mid, To: mid.Add(time.Hour)}},
		{"name_common", Filter{Name: "google"}},
		{"name_rare", Filter{Name: "h777.site"}},
		{"name_absent", Filter{Name: "no-such-name"}},
		{"name_short", Filter{Name: "io"}},
		{"name_segment_blocked", Filter{Name: "tiktok", Segment: "pupils", Action: "block"}},
		{"name_client", Filter{Name: "youtube", Client: client}},
		{"limit1000", Filter{Limit: 1000}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var got int
			for b.Loop() {
				p, err := l.Query(ctx, c.f)
				if err != nil {
					b.Fatal(err)
				}
				got = len(p.Events)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64(got), "rows")
		})
	}
	b.Run("counts_24h", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Counts(ctx, end.Add(-day+17*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
	})
}
