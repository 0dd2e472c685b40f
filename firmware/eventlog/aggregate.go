package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Aggregates for dashboards and summaries. They are answered by SQLite, never by reading
// rows into Go: histograms from the hourly rollup table (the events table only for the
// parts of a bucket that are not whole hours), top lists and tallies by grouping within an
// id range, which is a time range because the id encodes the event's second.
//
// Counts are of events, not rows: a row's folded repeats (Count) all count. The rollup
// counts each event in the hour it happened, the events table in the second of its row
// (folded repeats count at the first); the two agree except for repeats folded across an
// hour boundary.

// Bucket is one bar of a histogram: the events of [Start, End) per segment ("" for events
// of no segment).
type Bucket struct {
	Start, End time.Time
	Segments   map[string]SegmentCounts
}

// Total sums the bucket's segments.
func (b Bucket) Total() SegmentCounts {
	var t SegmentCounts
	for _, c := range b.Segments {
		t.Queries += c.Queries
		t.Blocked += c.Blocked
	}
	return t
}

// TopEntry is one value of a top list and how many events had it.
type TopEntry struct {
	Value string
	Count uint64
}

// Tally counts the events of a filter by action.
type Tally struct {
	Allowed, Blocked, Rewritten uint64
}

// Total is every event of the tally.
func (t Tally) Total() uint64 { return t.Allowed + t.Blocked + t.Rewritten }

// Histogram counts events per segment in buckets of a fixed length from from; the last
// bucket ends at to and may be shorter.
func (l *Log) Histogram(ctx context.Context, from, to time.Time, bucket time.Duration) ([]Bucket, error) {
	if bucket <= 0 || !to.After(from) {
		return nil, errors.New("histogram: want from before to and a positive bucket length")
	}
	if to.Sub(from)/bucket > maxBuckets {
		return nil, fmt.Errorf("histogram: more than %d buckets", maxBuckets)
	}
	edges := []time.Time{from}
	for t := from.Add(bucket); t.Before(to); t = t.Add(bucket) {
		edges = append(edges, t)
	}
	return l.HistogramEdges(ctx, append(edges, to))
}

// maxBuckets bounds a histogram: no chart has more bars than a screen has pixels.
const maxBuckets = 4096

// HistogramEdges counts events per segment in the buckets between consecutive edges, which
// must be increasing: calendar days in a zone with summer time are not all 24 hours long.
// Whole hours inside a bucket come from the hourly rollup; only edges that do not fall on
// the hour cost a look at the events themselves.
func (l *Log) HistogramEdges(ctx context.Context, edges []time.Time) ([]Bucket, error) {
	if len(edges) < 2 || len(edges) > maxBuckets+1 {
		return nil, errors.New("histogram: want from 2 to 4097 edges")
	}
	secs := make([]int64, len(edges))
	for i, t := range edges {
		secs[i] = ceilSec(t)
		if i > 0 && secs[i] <= secs[i-1] {
			return nil, errors.New("histogram: edges must increase by at least a second")
		}
	}
	out := make([]Bucket, len(edges)-1)
	for i := range out {
		out[i] = Bucket{Start: edges[i], End: edges[i+1], Segments: map[string]SegmentCounts{}}
	}
	add := func(b *Bucket, seg string, q, bl int64) {
		c := b.Segments[seg]
		c.Queries += uint64(q)
		c.Blocked += uint64(bl)
		b.Segments[seg] = c
	}

	// The whole hours: one range walk of the rollup's primary key.
	firstHour := (secs[0] + 3599) / 3600
	endHour := secs[len(secs)-1] / 3600 // exclusive
	if firstHour < endHour {
		rows, err := l.rdb.QueryContext(ctx, `SELECT r.hour, a.value, r.queries, r.blocked FROM rollup r
			LEFT JOIN atoms a ON a.id = r.segment_id WHERE r.hour >= ? AND r.hour < ?`, firstHour, endHour)
		if err != nil {
			return nil, fmt.Errorf("histogram: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				hour, q, bl int64
				seg         sql.NullString
			)
			if err := rows.Scan(&hour, &seg, &q, &bl); err != nil {
				return nil, fmt.Errorf("histogram: %w", err)
			}
			// The bucket holding the hour's start; the hour counts only if it ends inside too.
			i, _ := slices.BinarySearch(secs, hour*3600+1)
			i--
			if i >= 0 && i < len(out) && (hour+1)*3600 <= secs[i+1] {
				add(&out[i], seg.String, q, bl)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("histogram: %w", err)
		}
		rows.Close()
	}

	// The rest: for each bucket, the seconds before its first whole hour and after its last
	// (all of it, for a bucket within one hour).
	blockID, ok, err := l.lookupAtom(ctx, kindAction, "block")
	if err != nil {
		return nil, err
	}
	if !ok {
		blockID = -1
	}
	var segNames map[int64]string
	for i := range out {
		lo, hi := secs[i], secs[i+1]
		h0, h1 := (lo+3599)/3600*3600, hi/3600*3600
		parts := [][2]int64{{lo, hi}}
		if h0 < h1 {
			parts = [][2]int64{{lo, h0}, {h1, hi}}
		}
		for _, p := range parts {
			if p[0] >= p[1] {
				continue
			}
			if segNames == nil {
				if segNames, err = l.atomsOfKind(ctx, kindSegment); err != nil {
					return nil, err
				}
			}
			rows, err := l.rdb.QueryContext(ctx, `SELECT segment_id, sum(count), coalesce(sum(CASE WHEN action_id = ? THEN count END), 0)
				FROM events WHERE id >= ? AND id < ? GROUP BY segment_id`, blockID, idOf(p[0], 0), idOf(p[1], 0))
			if err != nil {
				return nil, fmt.Errorf("histogram: %w", err)
			}
			for rows.Next() {
				var (
					seg   sql.NullInt64
					q, bl int64
				)
				if err := rows.Scan(&seg, &q, &bl); err != nil {
					rows.Close()
					return nil, fmt.Errorf("histogram: %w", err)
				}
				add(&out[i], segNames[seg.Int64], q, bl)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, fmt.Errorf("histogram: %w", err)
			}
		}
	}
	return out, nil
}

// ceilSec is the first whole second at or after t: rows know only their second.
func ceilSec(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return max(sec, 0)
}

func (l *Log) atomsOfKind(ctx context.Context, kind int) (map[int64]string, error) {
	rows, err := l.rdb.QueryContext(ctx, `SELECT id, value FROM atoms WHERE kind = ?`, kind)
	if err != nil {
		return nil, fmt.Errorf("reading atoms: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var (
			id int64
			v  string
		)
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("reading atoms: %w", err)
		}
		out[id] = v
	}
	return out, rows.Err()
}

// topFields are the fields Top groups by: the column and the dictionary it refers to.
var topFields = map[string]struct {
	col, dict string // dict is "" for client, which is stored as is
}{
	"name":     {"name_id", "names"},
	"category": {"category_id", "atoms"},
	"segment":  {"segment_id", "atoms"},
	"profile":  {"profile_id", "atoms"},
	"mac":      {"mac_id", "atoms"},
	"device":   {"device_id", "atoms"},
	"source":   {"source_id", "atoms"},
	"client":   {"client", ""},
}

// Top returns the n values of field with the most events matching f, most first (ties in
// the order of the value's dictionary id). field is "name", "category", "segment",
// "profile", "mac", "device", "source" or "client" (an address, as text). Events without a
// value for the field are left out; f.Limit and f.Cursor are ignored. A typical dashboard
// call: the blocked names of the last week, Filter{From: ..., Action: "block"}.
func (l *Log) Top(ctx context.Context, f Filter, field string, n int) ([]TopEntry, error) {
	tf, ok := topFields[field]
	if !ok {
		return nil, fmt.Errorf("top: unknown field %q", field)
	}
	if n <= 0 {
		return nil, nil
	}
	n = min(n, maxLimit)
	where, args, none, err := l.where(ctx, f)
	if err != nil || none {
		return nil, err
	}
	inner := `SELECT ` + tf.col + ` AS k, sum(count) AS c FROM events ` + where + ` AND ` + tf.col + ` IS NOT NULL
		GROUP BY k ORDER BY c DESC, k LIMIT ?`
	// The dictionary join runs for the n rows kept only.
	q := inner
	switch tf.dict {
	case "names":
		q = `SELECT d.name, t.c FROM (` + inner + `) t JOIN names d ON d.id = t.k ORDER BY t.c DESC, t.k`
	case "atoms":
		q = `SELECT d.value, t.c FROM (` + inner + `) t JOIN atoms d ON d.id = t.k ORDER BY t.c DESC, t.k`
	}
	rows, err := l.rdb.QueryContext(ctx, q, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", field, err)
	}
	defer rows.Close()
	var out []TopEntry
	for rows.Next() {
		var (
			v []byte
			c int64
		)
		if err := rows.Scan(&v, &c); err != nil {
			return nil, fmt.Errorf("top %s: %w", field, err)
		}
		e := TopEntry{Value: string(v), Count: uint64(c)}
		if field == "client" {
			a, ok := netip.AddrFromSlice(v)
			if !ok {
				continue
			}
			e.Value = a.String()
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("top %s: %w", field, err)
	}
	return out, nil
}

// Tally counts the events matching f by action (f.Action narrows it to one); f.Limit and
// f.Cursor are ignored. Meant for narrow filters such as one device's day: it reads every
// matching row's action and count through the filter's index.
func (l *Log) Tally(ctx context.Context, f Filter) (Tally, error) {
	var t Tally
	where, args, none, err := l.where(ctx, f)
	if err != nil || none {
		return t, err
	}
	rows, err := l.rdb.QueryContext(ctx, `SELECT a.value, t.c FROM (SELECT action_id, sum(count) AS c FROM events `+where+
		` GROUP BY action_id) t LEFT JOIN atoms a ON a.id = t.action_id`, args...)
	if err != nil {
		return t, fmt.Errorf("tallying events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			action sql.NullString
			c      int64
		)
		if err := rows.Scan(&action, &c); err != nil {
			return t, fmt.Errorf("tallying events: %w", err)
		}
		switch action.String {
		case "":
			t.Allowed += uint64(c)
		case "block":
			t.Blocked += uint64(c)
		case "rewrite":
			t.Rewritten += uint64(c)
		}
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("tallying events: %w", err)
	}
	return t, nil
}

// where turns f (less its limit and cursor) into a WHERE clause ending with the id range;
// none reports a dictionary value never stored, which matches nothing.
func (l *Log) where(ctx context.Context, f Filter) (where string, args []any, none bool, err error) {
	lo, hi := int64(0), int64(1)<<62
	if !f.From.IsZero() {
		lo = idOf(ceilSec(f.From), 0)
	}
	if !f.To.IsZero() {
		hi = idOf(ceilSec(f.To), 0)
	}
	if hi <= lo {
		return "", nil, true, nil
	}
	conds, args, none, err := l.conditions(ctx, f)
	if none || err != nil {
		return "", nil, true, err
	}
	conds, args = append(conds, "id >= ?", "id < ?"), append(args, lo, hi)
	return "WHERE " + strings.Join(conds, " AND "), args, false, nil
}
