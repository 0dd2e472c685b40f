package eventlog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Filter selects events. Zero fields match everything.
type Filter struct {
	From, To                                   time.Time // From inclusive, To exclusive; zero = unbounded
	Segment, Profile, Source, Action, Category string
	Client                                     netip.Addr // zero = any
	MAC                                        string
	Name                                       string // substring, case-insensitive
	Limit                                      int    // default 100, max 1000
	Cursor                                     string // opaque, from Page.Next
}

// Page is one page of events, newest first.
type Page struct {
	Events []Event
	Next   string // "" when no more
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Query returns events matching f, newest first, one page at a time.
func (l *Log) Query(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)

	var (
		lo int64           // inclusive
		hi int64 = 1 << 62 // exclusive
	)
	if f.Cursor != "" {
		id, err := decodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		hi = id
	}
	if !f.From.IsZero() {
		lo = idOf(max(f.From.Unix(), 0), 0)
	}
	if !f.To.IsZero() {
		sec := f.To.Unix()
		if f.To.Nanosecond() > 0 {
			sec++ // rows only know their second: keep the second To falls in
		}
		hi = min(hi, idOf(max(sec, 0), 0))
	}
	conds, args, none, err := l.conditions(ctx, f)
	if err != nil || none {
		return Page{}, err
	}
	conds = append(conds, "id >= ?", "id < ?")
	where := "WHERE " + strings.Join(conds, " AND ")
	// The inner query picks the page from events alone; the dictionary
	// joins then run for at most limit+1 rows.
	q := `SELECT e.id, e.client, e.count, n.name, mac.value, dev.value, seg.value, prof.value,
		src.value, qt.value, act.value, tier.value, cat.value, lst.value, rule.value, sched.value
	FROM (SELECT * FROM events ` + where + ` ORDER BY id DESC LIMIT ?) AS e
	LEFT JOIN names n    ON n.id = e.name_id
	LEFT JOIN atoms mac  ON mac.id = e.mac_id
	LEFT JOIN atoms dev  ON dev.id = e.device_id
	LEFT JOIN atoms seg  ON seg.id = e.segment_id
	LEFT JOIN atoms prof ON prof.id = e.profile_id
	LEFT JOIN atoms src  ON src.id = e.source_id
	LEFT JOIN atoms qt   ON qt.id = e.qtype_id
	LEFT JOIN atoms act  ON act.id = e.action_id
	LEFT JOIN atoms tier ON tier.id = e.tier_id
	LEFT JOIN atoms cat  ON cat.id = e.category_id
	LEFT JOIN atoms lst  ON lst.id = e.list_id
	LEFT JOIN atoms rule ON rule.id = e.rule_id
	LEFT JOIN atoms sched ON sched.id = e.schedule_id
	ORDER BY e.id DESC`
	if hi == 1<<62 {
		if err := l.rdb.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM events`).Scan(&hi); err != nil {
			return Page{}, fmt.Errorf("querying events: %w", err)
		}
	}

	// Walk back in time windows that grow eightfold, starting with an hour.
	// With several filters, or a name matching many names, no single index
	// yields rows newest first, and SQLite would otherwise gather and sort
	// every match over the whole history. Within a window each index is a
	// (key, id) range, so the sort stays small; sparse matches cost a few
	// more windows.
	var p Page
	width := int64(3600) << idShift
	for hi > lo && len(p.Events) <= limit {
		wlo := max(lo, hi-width)
		wargs := append(slices.Clone(args), wlo, hi, limit+1-len(p.Events))
		if err := l.scan(ctx, q, wargs, &p); err != nil {
			return Page{}, err
		}
		hi, width = wlo, width*8
	}
	if len(p.Events) > limit {
		p.Events = p.Events[:limit]
		p.Next = encodeCursor(p.Events[limit-1].ID)
	}
	return p, nil
}

// conditions turns f's client, dictionary, action and name filters into SQL conditions.
// Dictionary values are resolved to ids first: a value never stored gives none (nothing can
// match) without touching events, and the planner sees plain integer equalities it can match
// to the indexes.
func (l *Log) conditions(ctx context.Context, f Filter) (conds []string, args []any, none bool, err error) {
	if f.Client.IsValid() {
		conds, args = append(conds, "client = ?"), append(args, f.Client.Unmap().WithZone("").AsSlice())
	}
	for _, a := range []struct {
		kind int
		col  string
		v    string
	}{
		{kindSegment, "segment_id", f.Segment},
		{kindProfile, "profile_id", f.Profile},
		{kindSource, "source_id", f.Source},
		{kindCategory, "category_id", f.Category},
		{kindMAC, "mac_id", strings.ToLower(f.MAC)},
	} {
		if a.v == "" {
			continue
		}
		id, ok, err := l.lookupAtom(ctx, a.kind, a.v)
		if err != nil || !ok {
			return nil, nil, true, err
		}
		conds, args = append(conds, a.col+" = ?"), append(args, id)
	}
	// One device's events are few: with a client or MAC address, keep the planner on that
	// index (a unary + takes a term off every index) rather than the blocked events'.
	action := "action_id"
	if f.Client.IsValid() || f.MAC != "" {
		action = "+action_id"
	}
	switch f.Action {
	case "":
	case "allow":
		conds = append(conds, action+" IS NULL")
	default:
		id, ok, err := l.lookupAtom(ctx, kindAction, f.Action)
		if err != nil || !ok {
			return nil, nil, true, err
		}
		conds, args = append(conds, action+" = ?"), append(args, id)
	}
	if f.Name != "" {
		pat := "%" + escapeLike(strings.ToLower(f.Name)) + "%"
		// A name never seen would otherwise cost every time window a scan.
		var found bool
		if err := l.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM names WHERE name LIKE ? ESCAPE '\')`, pat).Scan(&found); err != nil {
			return nil, nil, true, fmt.Errorf("searching names: %w", err)
		}
		if !found {
			return nil, nil, true, nil
		}
		conds = append(conds, `name_id IN (SELECT id FROM names WHERE name LIKE ? ESCAPE '\')`)
		args = append(args, pat)
	}
	return conds, args, false, nil
}

func (l *Log) scan(ctx context.Context, q string, args []any, p *Page) error {
	rows, err := l.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("querying events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e      Event
			client []byte
			s      [13]sql.NullString
		)
		dst := []any{&e.ID, &client, &e.Count}
		for i := range s {
			dst = append(dst, &s[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return fmt.Errorf("reading event: %w", err)
		}
		e.Time = timeOf(e.ID)
		if a, ok := netip.AddrFromSlice(client); ok {
			e.Client = a
		}
		e.Name, e.MAC, e.Device, e.Segment, e.Profile = s[0].String, s[1].String, s[2].String, s[3].String, s[4].String
		e.Source, e.QType, e.Action, e.Tier = s[5].String, s[6].String, s[7].String, s[8].String
		e.Category, e.List, e.Rule, e.Schedule = s[9].String, s[10].String, s[11].String, s[12].String
		if !s[7].Valid {
			e.Action = "allow"
		}
		p.Events = append(p.Events, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	return nil
}

func (l *Log) lookupAtom(ctx context.Context, kind int, v string) (int64, bool, error) {
	var id int64
	err := l.rdb.QueryRowContext(ctx, `SELECT id FROM atoms WHERE kind = ? AND value = ?`, kind, v).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("looking up %q: %w", v, err)
	}
	return id, true, nil
}

// escapeLike makes every character of s literal in a LIKE pattern using
// ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// A cursor is the id of the last event of the previous page: ids are unique
// and in time order, so "id < cursor" neither skips nor repeats rows that
// share a second.
const cursorPrefix = "c1"

func encodeCursor(id int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (int64, error) {
	rest, ok := strings.CutPrefix(s, cursorPrefix)
	if !ok {
		return 0, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != 8 {
		return 0, ErrBadCursor
	}
	id := int64(binary.BigEndian.Uint64(b))
	if id <= 0 {
		return 0, ErrBadCursor
	}
	return id, nil
}

// Counts returns per-segment totals (queries and blocks) since a time, for
// dashboards. Whole hours come from the rollup table; the part of the first
// hour after since is counted from the events themselves. Folded repeats
// count at the time of their row.
func (l *Log) Counts(ctx context.Context, since time.Time) (map[string]SegmentCounts, error) {
	sec := max(since.Unix(), 0)
	if since.Nanosecond() > 0 {
		sec++
	}
	hour := (sec + 3599) / 3600 // first whole hour at or after since
	out := make(map[string]SegmentCounts)
	add := func(q string, args ...any) error {
		rows, err := l.rdb.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("counting events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				seg              sql.NullString
				queries, blocked int64
			)
			if err := rows.Scan(&seg, &queries, &blocked); err != nil {
				return fmt.Errorf("counting events: %w", err)
			}
			c := out[seg.String]
			c.Queries += uint64(queries)
			c.Blocked += uint64(blocked)
			out[seg.String] = c
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("counting events: %w", err)
		}
		return nil
	}
	err := add(`SELECT a.value, sum(r.queries), sum(r.blocked) FROM rollup r
		LEFT JOIN atoms a ON a.id = r.segment_id WHERE r.hour >= ? GROUP BY r.segment_id`, hour)
	if err != nil {
		return nil, err
	}
	if sec < hour*3600 {
		blockID, ok, err := l.lookupAtom(ctx, kindAction, "block")
		if err != nil {
			return nil, err
		}
		if !ok {
			blockID = -1
		}
		err = add(`SELECT a.value, sum(e.count), coalesce(sum(CASE WHEN e.action_id = ? THEN e.count END), 0)
			FROM events e LEFT JOIN atoms a ON a.id = e.segment_id
			WHERE e.id >= ? AND e.id < ? GROUP BY e.segment_id`,
			blockID, idOf(sec, 0), idOf(hour*3600, 0))
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
