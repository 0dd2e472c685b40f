package exceptions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/config"
)

// Request records a teacher's request, pending until a DSL or technician
// decides. Only Scope, Target, Domain, Action, Reason, Duration and
// RequestedBy (the account asking) are read from e; it returns the request
// as stored, cleaned and with its ID.
func (s *Store) Request(ctx context.Context, e Exception) (Exception, error) {
	v := validator{s: s}
	c := v.request(e)
	c.RequestedBy = v.actor(FieldRequestedBy, e.RequestedBy)
	if err := v.err(); err != nil {
		return Exception{}, fmt.Errorf("requesting an exception: %w", err)
	}
	c.Status, c.Source = Pending, SourceUI
	out, err := s.insert(ctx, c, nil)
	if err != nil {
		return Exception{}, fmt.Errorf("requesting an exception: %w", err)
	}
	s.log.Info("exception requested", "id", out.ID, "by", out.RequestedBy, "domain", out.Domain, "scope", out.Scope, "target", out.Target)
	return out, nil
}

// Create makes an exception that is approved at once, by someone allowed to
// approve: by is both requester and approver. Fields of e are read as by
// Request, except RequestedBy.
func (s *Store) Create(ctx context.Context, e Exception, by string) (Exception, error) {
	v := validator{s: s}
	c := v.request(e)
	by = v.actor(FieldBy, by)
	if err := v.err(); err != nil {
		return Exception{}, fmt.Errorf("creating an exception: %w", err)
	}
	out, err := s.insert(ctx, c, func(c *Exception, now time.Time) {
		c.Status, c.Source = Approved, SourceUI
		c.RequestedBy, c.DecidedBy = by, by
		c.Decided, c.Starts, c.Expires = now, now, now.Add(c.Duration)
	})
	if err != nil {
		return Exception{}, fmt.Errorf("creating an exception: %w", err)
	}
	s.changed()
	s.log.Info("exception created", "id", out.ID, "by", by, "domain", out.Domain, "scope", out.Scope, "target", out.Target,
		"expires", out.Expires)
	return out, nil
}

// Review is a request for review sent from the block page by someone
// without an account. The block page fills it from the decision it shows.
type Review struct {
	Domain     string // the name that was blocked
	Profile    string // the profile the client was filtered by: the default target
	ClientAddr string // the client's IP address; "address:port" is accepted
	ClientMAC  string // the client's MAC address, "" when unknown
	Reason     string // what the person wrote
}

// RequestReview records a block-page request as pending: an allow of
// r.Domain for the profile r.Profile, asking for Config.ReviewDuration.
// Asking again from the same address for the same domain while the first
// request is pending returns the first one. It returns ErrTooManyRequests
// when too many block-page requests are waiting from that address, or in
// all, so a pupil cannot flood the DSL's queue.
func (s *Store) RequestReview(ctx context.Context, r Review) (Exception, error) {
	v := validator{s: s}
	var c Exception
	c.Scope, c.Target = v.scopeTarget(config.ScopeProfile, r.Profile)
	c.Domain = v.domain(r.Domain)
	c.Action = config.ActionAllow
	c.Reason = v.text(FieldReason, "reason", r.Reason, true)
	c.Duration = v.duration(s.cfg.ReviewDuration)
	c.ClientAddr = v.clientAddr(r.ClientAddr)
	if m := strings.TrimSpace(r.ClientMAC); m != "" {
		var ok bool
		if c.ClientMAC, ok = parseMAC(m); !ok {
			v.add(FieldClientMAC, "client_mac %s is not a MAC address like aa:bb:cc:dd:ee:ff", quote(m))
		}
	}
	if err := v.err(); err != nil {
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	c.Status, c.Source = Pending, SourceBlockPage
	c.RequestedBy = "block page (" + c.ClientAddr + ")"

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	defer tx.Rollback()
	const pending = ` FROM exceptions WHERE source = 'blockpage' AND status = 'pending'`
	prev, err := scan(tx.QueryRowContext(ctx, `SELECT `+columns+pending+` AND client_addr = ? AND domain = ? ORDER BY id LIMIT 1`,
		c.ClientAddr, c.Domain))
	switch {
	case err == nil:
		return prev, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	var fromClient, all int
	if err := tx.QueryRowContext(ctx, `SELECT count(*)`+pending+` AND client_addr = ?`, c.ClientAddr).Scan(&fromClient); err != nil {
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*)`+pending).Scan(&all); err != nil {
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	if fromClient >= maxPendingPerClient || all >= maxPendingReviews {
		s.log.Warn("block page review refused: too many waiting", "client", c.ClientAddr, "from_client", fromClient, "all", all)
		return Exception{}, fmt.Errorf("requesting a review from %s: %w", c.ClientAddr, ErrTooManyRequests)
	}
	c.Requested = s.now()
	out, err := insertTx(ctx, tx, c)
	if err != nil {
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Exception{}, fmt.Errorf("requesting a review: %w", err)
	}
	s.log.Info("exception review requested from block page", "id", out.ID, "client", out.ClientAddr, "mac", out.ClientMAC,
		"domain", out.Domain, "profile", out.Target)
	return out, nil
}

// Grant is what an approver may change about a pending request. The zero
// Grant approves it as asked.
type Grant struct {
	// Scope and Target: "" keeps what was asked. A new Scope needs a Target;
	// a Target alone changes the target within the same scope.
	Scope, Target string
	// Duration: 0 keeps what was asked. It may be shorter or longer, up to
	// Config.MaxDuration.
	Duration time.Duration
}

// Approve approves a pending request: it is in force from now until now plus
// the granted duration. The note is optional. The domain is checked against
// the protected lists again, since they may have changed since the request.
func (s *Store) Approve(ctx context.Context, id int64, by, note string, g Grant) (Exception, error) {
	out, err := s.transition(ctx, id, func(tx *sql.Tx, e Exception, now time.Time) error {
		if e.Status != Pending {
			return fmt.Errorf("%w: it is %s, and only a pending request can be approved", ErrWrongState, e.Status)
		}
		scope, target, dur := e.Scope, e.Target, e.Duration
		if g.Scope != "" {
			scope, target = g.Scope, g.Target
		} else if g.Target != "" {
			target = g.Target
		}
		if g.Duration != 0 {
			dur = g.Duration
		}
		v := validator{s: s}
		c := v.request(Exception{Scope: scope, Target: target, Domain: e.Domain, Action: e.Action, Reason: e.Reason, Duration: dur})
		by = v.actor(FieldBy, by)
		note = v.text(FieldNote, "note", note, false)
		if err := v.err(); err != nil {
			return err
		}
		// What was asked is kept where the grant differs from it.
		var askedScope, askedTarget string
		var askedMS any
		if c.Scope != e.Scope || c.Target != e.Target {
			askedScope, askedTarget = e.Scope, e.Target
		}
		if c.Duration != e.Duration {
			askedMS = e.Duration.Milliseconds()
		}
		return setState(ctx, tx, e.ID, Pending,
			`status = 'approved', scope = ?, target = ?, duration_ms = ?, decided_by = ?, note = ?, decided_ms = ?, starts_ms = ?, expires_ms = ?,
			asked_scope = ?, asked_target = ?, asked_duration_ms = ?`,
			c.Scope, c.Target, c.Duration.Milliseconds(), by, note, now.UnixMilli(), now.UnixMilli(), now.Add(c.Duration).UnixMilli(),
			askedScope, askedTarget, askedMS)
	})
	if err != nil {
		return Exception{}, fmt.Errorf("approving exception %d: %w", id, err)
	}
	s.changed()
	s.log.Info("exception approved", "id", id, "by", by, "domain", out.Domain, "scope", out.Scope, "target", out.Target,
		"expires", out.Expires)
	return out, nil
}

// Deny refuses a pending request. The note, which the requester sees, is required.
func (s *Store) Deny(ctx context.Context, id int64, by, note string) (Exception, error) {
	out, err := s.transition(ctx, id, func(tx *sql.Tx, e Exception, now time.Time) error {
		if e.Status != Pending {
			return fmt.Errorf("%w: it is %s, and only a pending request can be denied", ErrWrongState, e.Status)
		}
		v := validator{s: s}
		by = v.actor(FieldBy, by)
		note = v.text(FieldNote, "a note saying why the request is denied", note, true)
		if err := v.err(); err != nil {
			return err
		}
		return setState(ctx, tx, e.ID, Pending, `status = 'denied', decided_by = ?, note = ?, decided_ms = ?`,
			by, note, now.UnixMilli())
	})
	if err != nil {
		return Exception{}, fmt.Errorf("denying exception %d: %w", id, err)
	}
	s.log.Info("exception denied", "id", id, "by", by, "domain", out.Domain)
	return out, nil
}

// Revoke ends an approved exception before it expires. The note is required.
func (s *Store) Revoke(ctx context.Context, id int64, by, note string) (Exception, error) {
	out, err := s.transition(ctx, id, func(tx *sql.Tx, e Exception, now time.Time) error {
		switch {
		case e.Status != Approved:
			return fmt.Errorf("%w: it is %s, and only an approved exception can be revoked", ErrWrongState, e.Status)
		case !now.Before(e.Expires):
			return fmt.Errorf("%w: it expired at %s", ErrWrongState, e.Expires.Format(time.RFC3339))
		}
		v := validator{s: s}
		by = v.actor(FieldBy, by)
		note = v.text(FieldNote, "a note saying why the exception is revoked", note, true)
		if err := v.err(); err != nil {
			return err
		}
		return setState(ctx, tx, e.ID, Approved, `status = 'revoked', ended_by = ?, end_note = ?, ended_ms = ?`,
			by, note, now.UnixMilli())
	})
	if err != nil {
		return Exception{}, fmt.Errorf("revoking exception %d: %w", id, err)
	}
	s.changed()
	s.log.Info("exception revoked", "id", id, "by", by, "domain", out.Domain)
	return out, nil
}

// Withdraw takes back a pending request; only its requester may, and
// block-page requests cannot be withdrawn (they have no account).
func (s *Store) Withdraw(ctx context.Context, id int64, by string) (Exception, error) {
	out, err := s.transition(ctx, id, func(tx *sql.Tx, e Exception, now time.Time) error {
		v := validator{s: s}
		by = v.actor(FieldBy, by)
		if err := v.err(); err != nil {
			return err
		}
		if e.Source != SourceUI || e.RequestedBy != by {
			return ErrNotRequester
		}
		if e.Status != Pending {
			return fmt.Errorf("%w: it is %s, and only a pending request can be withdrawn", ErrWrongState, e.Status)
		}
		return setState(ctx, tx, e.ID, Pending, `status = 'withdrawn', ended_by = ?, ended_ms = ?`, by, now.UnixMilli())
	})
	if err != nil {
		return Exception{}, fmt.Errorf("withdrawing exception %d: %w", id, err)
	}
	s.log.Info("exception request withdrawn", "id", id, "by", by, "domain", out.Domain)
	return out, nil
}

// Get returns one exception, or an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, id int64) (Exception, error) {
	e, err := get(ctx, s.db, id)
	if err != nil {
		return Exception{}, fmt.Errorf("reading exception %d: %w", id, err)
	}
	return e, nil
}

// Filter selects exceptions for List. Zero fields select everything.
type Filter struct {
	Status      []Status  // any of these
	RequestedBy string    // exactly this requester
	Since       time.Time // requested at or after
	Limit       int       // at most this many; 0 → DefaultListLimit
}

// List returns the exceptions matching f, newest request first.
func (s *Store) List(ctx context.Context, f Filter) ([]Exception, error) {
	var (
		where []string
		args  []any
	)
	if len(f.Status) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Status)-1)+")")
		for _, st := range f.Status {
			args = append(args, string(st))
		}
	}
	if f.RequestedBy != "" {
		where = append(where, "requested_by = ?")
		args = append(args, f.RequestedBy)
	}
	if !f.Since.IsZero() {
		where = append(where, "requested_ms >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	q := `SELECT ` + columns + ` FROM exceptions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	q += ` ORDER BY requested_ms DESC, id DESC LIMIT ?`
	args = append(args, limit)
	out, err := query(ctx, s.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing exceptions: %w", err)
	}
	return out, nil
}

// Active returns the exceptions in force now, oldest first, in the form
// policy.Compile reads from the configuration: ID "x" and the store's ID,
// Created the start, ApprovedBy the approver.
func (s *Store) Active(ctx context.Context) ([]config.Exception, error) {
	now := s.now().UnixMilli()
	list, err := query(ctx, s.db, `SELECT `+columns+` FROM exceptions
		WHERE status = 'approved' AND starts_ms <= ? AND expires_ms > ? ORDER BY id`, now, now)
	if err != nil {
		return nil, fmt.Errorf("reading active exceptions: %w", err)
	}
	out := make([]config.Exception, len(list))
	for i, e := range list {
		out[i] = e.Config()
	}
	return out, nil
}

// Config returns e in the form of the configuration's exceptions.
func (e Exception) Config() config.Exception {
	return config.Exception{
		ID:          "x" + strconv.FormatInt(e.ID, 10),
		Scope:       e.Scope,
		Target:      e.Target,
		Domain:      e.Domain,
		Action:      e.Action,
		Reason:      e.Reason,
		RequestedBy: e.RequestedBy,
		ApprovedBy:  e.DecidedBy,
		Created:     e.Starts,
		Expires:     e.Expires,
	}
}

// Expire marks the approved exceptions whose time is up as expired and
// returns them, each once, so the daemon can audit them and recompile.
func (s *Store) Expire(ctx context.Context) ([]Exception, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("expiring exceptions: %w", err)
	}
	defer tx.Rollback()
	now := s.now().UnixMilli()
	list, err := query(ctx, tx, `SELECT `+columns+` FROM exceptions
		WHERE status = 'approved' AND expires_ms <= ? ORDER BY expires_ms, id`, now)
	if err != nil {
		return nil, fmt.Errorf("expiring exceptions: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE exceptions SET status = 'expired', ended_ms = expires_ms
		WHERE status = 'approved' AND expires_ms <= ?`, now); err != nil {
		return nil, fmt.Errorf("expiring exceptions: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("expiring exceptions: %w", err)
	}
	for i := range list {
		list[i].Status, list[i].Ended = Expired, list[i].Expires
		s.log.Info("exception expired", "id", list[i].ID, "domain", list[i].Domain, "expires", list[i].Expires)
	}
	return list, nil
}

// NextExpiry returns the earliest Expires among approved exceptions, and
// false when none is approved. It may be in the past when Expire has not run
// since: the daemon then calls Expire at once.
func (s *Store) NextExpiry(ctx context.Context) (time.Time, bool, error) {
	var ms sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT min(expires_ms) FROM exceptions WHERE status = 'approved'`).Scan(&ms); err != nil {
		return time.Time{}, false, fmt.Errorf("reading next expiry: %w", err)
	}
	if !ms.Valid {
		return time.Time{}, false, nil
	}
	return msTime(ms.Int64), true, nil
}

// transition runs change on exception id inside one write transaction
// (BEGIN IMMEDIATE: nobody else can change the row between the read and the
// write) and returns the row as stored afterwards.
func (s *Store) transition(ctx context.Context, id int64, change func(tx *sql.Tx, e Exception, now time.Time) error) (Exception, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Exception{}, err
	}
	defer tx.Rollback()
	e, err := get(ctx, tx, id)
	if err != nil {
		return Exception{}, err
	}
	if err := change(tx, e, s.now()); err != nil {
		return Exception{}, err
	}
	out, err := get(ctx, tx, id)
	if err != nil {
		return Exception{}, err
	}
	if err := tx.Commit(); err != nil {
		return Exception{}, err
	}
	return out, nil
}

// setState sets the columns of row id if it is still in state from; the
// transaction already guarantees it, the condition keeps it true if that changes.
func setState(ctx context.Context, tx *sql.Tx, id int64, from Status, set string, args ...any) error {
	res, err := tx.ExecContext(ctx, `UPDATE exceptions SET `+set+` WHERE id = ? AND status = ?`, append(args, id, string(from))...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("%w: it is no longer %s", ErrWrongState, from)
	}
	return nil
}

// insert stores c as a new row, stamping it with the time of the
// transaction; stamp, if set, fills in what depends on that time.
func (s *Store) insert(ctx context.Context, c Exception, stamp func(c *Exception, now time.Time)) (Exception, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Exception{}, err
	}
	defer tx.Rollback()
	c.Requested = s.now()
	if stamp != nil {
		stamp(&c, c.Requested)
	}
	out, err := insertTx(ctx, tx, c)
	if err != nil {
		return Exception{}, err
	}
	return out, tx.Commit()
}

func insertTx(ctx context.Context, tx *sql.Tx, c Exception) (Exception, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO exceptions (scope, target, domain, action, reason, duration_ms, status,
		requested_by, source, client_addr, client_mac, requested_ms, decided_by, decided_ms, starts_ms, expires_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Scope, c.Target, c.Domain, c.Action, c.Reason, c.Duration.Milliseconds(), string(c.Status),
		c.RequestedBy, c.Source, c.ClientAddr, c.ClientMAC, c.Requested.UnixMilli(),
		c.DecidedBy, nullMS(c.Decided), nullMS(c.Starts), nullMS(c.Expires))
	if err != nil {
		return Exception{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Exception{}, err
	}
	// Read it back, so the caller gets exactly what Get will return.
	return get(ctx, tx, id)
}

const columns = `id, scope, target, domain, action, reason, duration_ms, status,
	requested_by, source, client_addr, client_mac, requested_ms,
	decided_by, note, decided_ms, starts_ms, expires_ms, ended_by, end_note, ended_ms,
	asked_scope, asked_target, asked_duration_ms`

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func get(ctx context.Context, q querier, id int64) (Exception, error) {
	e, err := scan(q.QueryRowContext(ctx, `SELECT `+columns+` FROM exceptions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Exception{}, ErrNotFound
	}
	return e, err
}

func query(ctx context.Context, q querier, stmt string, args ...any) ([]Exception, error) {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Exception
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func scan(r interface{ Scan(...any) error }) (Exception, error) {
	var (
		e                               Exception
		status                          string
		durMS, reqMS                    int64
		decided, starts, expires, ended sql.NullInt64
		askedMS                         sql.NullInt64
	)
	err := r.Scan(&e.ID, &e.Scope, &e.Target, &e.Domain, &e.Action, &e.Reason, &durMS, &status,
		&e.RequestedBy, &e.Source, &e.ClientAddr, &e.ClientMAC, &reqMS,
		&e.DecidedBy, &e.Note, &decided, &starts, &expires, &e.EndedBy, &e.EndNote, &ended,
		&e.AskedScope, &e.AskedTarget, &askedMS)
	if err != nil {
		return Exception{}, err
	}
	e.Status = Status(status)
	e.Duration = time.Duration(durMS) * time.Millisecond
	e.Requested = msTime(reqMS)
	e.Decided, e.Starts, e.Expires, e.Ended = nullTime(decided), nullTime(starts), nullTime(expires), nullTime(ended)
	if askedMS.Valid {
		e.AskedDuration = time.Duration(askedMS.Int64) * time.Millisecond
	}
	return e, nil
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nullTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return msTime(n.Int64)
}

func nullMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}
