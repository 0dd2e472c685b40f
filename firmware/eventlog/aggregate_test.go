package eventlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// aggEvents records a day of varied events around t0 and returns them as recorded.
func aggEvents(t *testing.T, l *Log) []Event {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	segs := []string{"pupils", "staff", "guest", ""}
	cats := []string{"adult", "gambling", "social", ""}
	start := t0.Add(-12 * time.Hour)
	var evs []Event
	for i := range 3000 {
		e := Event{
			Time:    start.Add(time.Duration(r.Int64N(int64(24 * time.Hour)))),
			Client:  netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i%5)}),
			Segment: segs[r.IntN(len(segs))],
			Source:  "dns",
			Name:    fmt.Sprintf("n%d.example", r.IntN(12)),
			Action:  []string{"allow", "allow", "block", "rewrite"}[r.IntN(4)],
			Count:   1 + r.IntN(3),
		}
		if e.Action == "block" {
			e.Category = cats[r.IntN(len(cats))]
		}
		if i%7 == 0 {
			e.MAC = "aa:bb:cc:00:00:0" + fmt.Sprint(i%3)
		}
		l.Record(e)
		evs = append(evs, e)
	}
	flush(t, l)
	return evs
}

// want counts evs per bucket of edges, in Go, the slow obvious way.
func wantHistogram(evs []Event, edges []time.Time) []map[string]SegmentCounts {
	out := make([]map[string]SegmentCounts, len(edges)-1)
	for i := range out {
		out[i] = map[string]SegmentCounts{}
	}
	for _, e := range evs {
		for i := range out {
			if !e.Time.Before(edges[i]) && e.Time.Before(edges[i+1]) {
				c := out[i][e.Segment]
				c.Queries += uint64(e.Count)
				if e.Action == "block" {
					c.Blocked += uint64(e.Count)
				}
				out[i][e.Segment] = c
			}
		}
	}
	return out
}

func TestHistogram(t *testing.T) {
	// No folding: the rollup and the rows then count every event in its own second.
	l := open(t, Config{DedupeWindow: -1})
	evs := aggEvents(t, l)
	ctx := context.Background()
	kolkata := time.FixedZone("IST", 5*3600+1800)
	day := func(t time.Time, loc *time.Location) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	hourly := func(from time.Time, n int, step time.Duration) []time.Time {
		var out []time.Time
		for i := range n + 1 {
			out = append(out, from.Add(time.Duration(i)*step))
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		edges []time.Time
	}{
		{"hours on the hour", hourly(t0.Truncate(time.Hour).Add(-14*time.Hour), 26, time.Hour)},
		{"hours on the half hour", hourly(day(t0, kolkata).Add(-6*time.Hour), 30, time.Hour)},
		{"odd seconds", hourly(t0.Add(-13*time.Hour+17*time.Second+time.Millisecond), 5, 317*time.Minute)},
		{"minutes", hourly(t0.Add(-time.Hour), 90, time.Minute)},
		{"days", []time.Time{day(t0, time.UTC).AddDate(0, 0, -1), day(t0, time.UTC), day(t0, time.UTC).AddDate(0, 0, 1)}},
		{"one bucket", []time.Time{t0.Add(-48 * time.Hour), t0.Add(48 * time.Hour)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.HistogramEdges(ctx, tt.edges)
			if err != nil {
				t.Fatal(err)
			}
			want := wantHistogram(evs, tt.edges)
			if len(got) != len(want) {
				t.Fatalf("got %d buckets, want %d", len(got), len(want))
			}
			for i := range got {
				if !got[i].Start.Equal(tt.edges[i]) || !got[i].End.Equal(tt.edges[i+1]) {
					t.Errorf("bucket %d: %v–%v", i, got[i].Start, got[i].End)
				}
				if fmt.Sprint(got[i].Segments) != fmt.Sprint(want[i]) {
					t.Errorf("bucket %d (%v): got %v, want %v", i, tt.edges[i], got[i].Segments, want[i])
				}
			}
		})
	}
	// The whole day, in any bucketing, adds up to every event recorded.
	var total, blocked uint64
	for _, e := range evs {
		total += uint64(e.Count)
		if e.Action == "block" {
			blocked += uint64(e.Count)
		}
	}
	got, err := l.Histogram(ctx, t0.Add(-13*time.Hour), t0.Add(13*time.Hour), 45*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sum SegmentCounts
	for _, b := range got {
		sum.Queries += b.Total().Queries
		sum.Blocked += b.Total().Blocked
	}
	if sum.Queries != total || sum.Blocked != blocked {
		t.Errorf("sum of buckets %+v, want %d queries, %d blocked", sum, total, blocked)
	}
	if last := got[len(got)-1]; !last.End.Equal(t0.Add(13 * time.Hour)) {
		t.Errorf("last bucket ends %v", last.End)
	}
	for _, bad := range [][]time.Time{nil, {t0}, {t0, t0}, {t0, t0.Add(-time.Hour)}} {
		if _, err := l.HistogramEdges(ctx, bad); err == nil {
			t.Errorf("edges %v accepted", bad)
		}
	}
	if _, err := l.Histogram(ctx, t0, t0.Add(time.Hour), 0); err == nil {
		t.Error("a zero bucket accepted")
	}
}

// A day in Europe/London with the clocks going forward has 23 hours; its bucket holds them.
func TestHistogramSummerTime(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	l := open(t, Config{DedupeWindow: -1})
	d0 := time.Date(2026, 3, 29, 0, 0, 0, 0, london) // clocks go forward at 01:00 GMT
	d1 := time.Date(2026, 3, 30, 0, 0, 0, 0, london)
	for h := range 30 {
		l.Record(Event{Time: d0.Add(time.Duration(h)*time.Hour + time.Minute), Segment: "s", Name: "x.example", Action: "allow"})
	}
	flush(t, l)
	got, err := l.HistogramEdges(context.Background(), []time.Time{d0, d1, d1.AddDate(0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Total().Queries != 23 || got[1].Total().Queries != 7 {
		t.Errorf("got %d and %d, want 23 and 7", got[0].Total().Queries, got[1].Total().Queries)
	}
}

func TestTopAndTally(t *testing.T) {
	l := open(t, Config{DedupeWindow: -1})
	evs := aggEvents(t, l)
	ctx := context.Background()
	from, to := t0.Add(-6*time.Hour), t0.Add(3*time.Hour)
	c3 := netip.MustParseAddr("10.0.0.3")
	match := func(e Event, f Filter) bool {
		return !e.Time.Before(from) && e.Time.Before(to) && (f.Action == "" || e.Action == f.Action) &&
			(!f.Client.IsValid() || e.Client == f.Client) && (f.MAC == "" || e.MAC == f.MAC) &&
			(f.Segment == "" || e.Segment == f.Segment)
	}
	for _, tt := range []struct {
		field string
		f     Filter
	}{
		{"category", Filter{Action: "block"}},
		{"name", Filter{Action: "block"}},
		{"name", Filter{Action: "allow"}},
		{"name", Filter{}},
		{"name", Filter{Client: c3, Action: "block"}},
		{"name", Filter{MAC: "AA:BB:CC:00:00:01"}},
		{"client", Filter{Action: "block"}},
		{"segment", Filter{}},
		{"mac", Filter{Segment: "pupils"}},
	} {
		t.Run(tt.field+fmt.Sprint(tt.f.Action, tt.f.Client, tt.f.MAC, tt.f.Segment), func(t *testing.T) {
			f := tt.f
			f.From, f.To = from, to
			got, err := l.Top(ctx, f, tt.field, 5)
			if err != nil {
				t.Fatal(err)
			}
			f.MAC = lower(f.MAC)
			counts := map[string]uint64{}
			for _, e := range evs {
				if !match(e, f) {
					continue
				}
				v := map[string]string{"category": e.Category, "name": e.Name, "client": e.Client.String(),
					"segment": e.Segment, "mac": e.MAC}[tt.field]
				if v != "" {
					counts[v] += uint64(e.Count)
				}
			}
			var want []TopEntry
			for v, c := range counts {
				want = append(want, TopEntry{v, c})
			}
			slices.SortFunc(want, func(a, b TopEntry) int { return int(b.Count) - int(a.Count) })
			if len(got) != min(5, len(want)) {
				t.Fatalf("got %v, want the first 5 of %v", got, want)
			}
			for i, g := range got {
				// Ties may come in either order; the counts must match place by place.
				if g.Count != want[i].Count || counts[g.Value] != g.Count {
					t.Errorf("entry %d: got %v, want %v (all: %v)", i, g, want[i], want)
				}
			}
			tally, err := l.Tally(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var wt Tally
			for _, e := range evs {
				if match(e, f) {
					switch e.Action {
					case "allow":
						wt.Allowed += uint64(e.Count)
					case "block":
						wt.Blocked += uint64(e.Count)
					case "rewrite":
						wt.Rewritten += uint64(e.Count)
					}
				}
			}
			if tally != wt {
				t.Errorf("tally: got %+v, want %+v", tally, wt)
			}
		})
	}
	if got, err := l.Top(ctx, Filter{Segment: "nope"}, "name", 5); err != nil || got != nil {
		t.Errorf("unknown segment: %v %v", got, err)
	}
	if got, err := l.Top(ctx, Filter{Name: "no-such"}, "name", 5); err != nil || got != nil {
		t.Errorf("unknown name: %v %v", got, err)
	}
	if got, _ := l.Top(ctx, Filter{Name: "n1"}, "name", 50); len(got) != 3 { // n1, n10, n11
		t.Errorf("name substring: %v", got)
	}
	if _, err := l.Top(ctx, Filter{}, "colour", 5); err == nil {
		t.Error("unknown field accepted")
	}
	if got, err := l.Tally(ctx, Filter{From: to, To: from}); err != nil || got.Total() != 0 {
		t.Errorf("empty range: %v %v", got, err)
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// BenchmarkAggregates runs the dashboard's queries (and the device summary's) over the
// database BenchmarkQuery uses: SCHOOLGATE_BENCH_EVENTS events over 30 days (default 200k;
// set it to 1000000 for the million-event figure, or 4300000 for a million in the last
// week). Each must stay well under 100 ms.
func BenchmarkAggregates(b *testing.B) {
	n := benchEvents(b)
	end := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	path := benchDB(b, n, end)
	l, err := New(Config{Path: path, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	now := end.Add(-17 * time.Minute) // mid-hour, as a real dashboard is
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		b.Fatal(err)
	}
	hourEdges := func(loc *time.Location) []time.Time {
		t := now.In(loc)
		h := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc).Add(-23 * time.Hour)
		var out []time.Time
		for i := range 25 {
			out = append(out, h.Add(time.Duration(i)*time.Hour))
		}
		return out
	}
	var dayEdges []time.Time
	{
		t := now.In(london)
		for i := range 8 {
			dayEdges = append(dayEdges, time.Date(t.Year(), t.Month(), t.Day()-6+i, 0, 0, 0, 0, london))
		}
	}
	day, week := Filter{From: now.Add(-24 * time.Hour), To: now}, Filter{From: now.Add(-7 * 24 * time.Hour), To: now}
	blocked := func(f Filter) Filter { f.Action = "block"; return f }
	client := netip.MustParseAddr("10.1.0.42")
	withClient := func(f Filter) Filter { f.Client = client; return f }
	cases := []struct {
		name string
		run  func() (int, error)
	}{
		{"histogram_24h_hourly", func() (int, error) { b, err := l.HistogramEdges(ctx, hourEdges(london)); return len(b), err }},
		{"histogram_24h_hourly_halfhour_zone", func() (int, error) {
			b, err := l.HistogramEdges(ctx, hourEdges(time.FixedZone("IST", 5*3600+1800)))
			return len(b), err
		}},
		{"histogram_7d_daily", func() (int, error) { b, err := l.HistogramEdges(ctx, dayEdges); return len(b), err }},
		{"top_category_blocked_24h", func() (int, error) { r, err := l.Top(ctx, blocked(day), "category", 10); return len(r), err }},
		{"top_category_blocked_7d", func() (int, error) { r, err := l.Top(ctx, blocked(week), "category", 10); return len(r), err }},
		{"top_name_blocked_24h", func() (int, error) { r, err := l.Top(ctx, blocked(day), "name", 10); return len(r), err }},
		{"top_name_blocked_7d", func() (int, error) { r, err := l.Top(ctx, blocked(week), "name", 10); return len(r), err }},
		{"device_tally_24h", func() (int, error) { r, err := l.Tally(ctx, withClient(day)); return int(r.Total()), err }},
		{"device_top_blocked_7d", func() (int, error) { r, err := l.Top(ctx, blocked(withClient(week)), "name", 10); return len(r), err }},
	}
	dashboard := func() (int, error) {
		total := 0
		for _, c := range cases[:7] {
			if c.name == "histogram_24h_hourly_halfhour_zone" {
				continue
			}
			n, err := c.run()
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	cases = append(cases, struct {
		name string
		run  func() (int, error)
	}{"dashboard_all", dashboard})
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var got int
			for b.Loop() {
				n, err := c.run()
				if err != nil {
					b.Fatal(err)
				}
				got = n
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64(got), "results")
		})
	}
}
