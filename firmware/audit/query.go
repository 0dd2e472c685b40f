package audit

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Filter selects entries for List. Zero fields match everything.
type Filter struct {
	From, To time.Time // From inclusive, To exclusive; zero = unbounded
	Actor    string    // exact
	// Action matches exactly, or as a prefix when it ends with ".":
	// "exception." selects every exception action.
	Action string
	Object string // exact
	Limit  int    // default 100, at most 1000
	// Before pages backwards: only entries with Seq < Before. Pass the
	// last Seq of one page to get the next; 0 starts at the newest.
	Before int64
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// List returns entries matching f, newest first. It does not verify them;
// a row altered in the file is shown as it now is, and Verify names it.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)

	var (
		conds []string
		args  []any
	)
	if f.Before > 0 {
		conds, args = append(conds, "seq < ?"), append(args, f.Before)
	}
	if !f.From.IsZero() {
		conds, args = append(conds, "time_ms >= ?"), append(args, ceilMilli(f.From))
	}
	if !f.To.IsZero() {
		conds, args = append(conds, "time_ms < ?"), append(args, ceilMilli(f.To))
	}
	if f.Actor != "" {
		conds, args = append(conds, "actor = ?"), append(args, f.Actor)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok && prefix != "" {
		// Action names are ASCII (Append refuses anything else), so
		// substr counts bytes here.
		conds, args = append(conds, "substr(action, 1, ?) = ?"), append(args, len(f.Action), f.Action)
	} else if f.Action != "" {
		conds, args = append(conds, "action = ?"), append(args, f.Action)
	}
	if f.Object != "" {
		conds, args = append(conds, "object = ?"), append(args, f.Object)
	}
	q := "SELECT " + entryColumns + " FROM entries"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit)

	rows, err := l.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, _, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("listing audit entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing audit entries: %w", err)
	}
	return out, nil
}

// ceilMilli rounds t up to a whole millisecond, the precision entries are
// stored with, so that "time_ms >= From" keeps exactly the entries at or
// after From and "time_ms < To" exactly those before To.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
