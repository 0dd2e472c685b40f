// Package audit keeps the appliance's audit trail: every change of
// configuration, account, exception and list, with who made it, when, what
// changed and why, for the safeguarding lead to show to governors and
// inspectors.
//
// The trail is an append-only SQLite file (audit.db in the data directory,
// WAL, synchronous=FULL: an entry is on disk when Append returns) with no
// retention. Each entry carries the SHA-256 hash of its own contents and the
// hash of the entry before it, so that Verify, or anyone holding an export
// (VerifyExport, `schoolgate audit verify`), can name the first entry that
// was altered, removed or inserted behind the firmware's back. The encoding
// that is hashed is specified in chain.go and docs/audit.md precisely enough
// to write an independent verifier.
//
// A hash chain kept on the same disk cannot prove that its newest entries
// were not cut off, or that the whole chain was not recomputed by someone who
// rewrote history on purpose: for that, the head (newest sequence number and
// hash) must be written down somewhere else. Verify and exports return the
// head so the web UI can show it and a later export can be checked against an
// earlier one (Anchor).
//
// The package has no update or delete functions, and the schema refuses
// UPDATE and DELETE on entries with triggers. Tests that simulate tampering
// drop the triggers first (DROP TRIGGER entries_no_update; DROP TRIGGER
// entries_no_delete), as an attacker with the file would.
package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// FileName is the audit trail's file in the daemon's data directory.
const FileName = "audit.db"

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalid is returned by Append for an entry without an actor or with a malformed action.
	ErrInvalid = errors.New("invalid audit entry")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("audit log closed")
	// ErrCorrupt is returned by New when the file is not a readable SQLite database.
	ErrCorrupt = errors.New("audit database is corrupt or not a database")
	// ErrSchemaVersion is returned by New when the file was written by a newer firmware.
	ErrSchemaVersion = errors.New("audit schema version not supported")
	// ErrNotExport is returned by VerifyExport when its input is not an audit export at all.
	ErrNotExport = errors.New("not a schoolgate audit export")
)

// Actors that are not accounts.
const (
	// ActorSystem is the firmware itself: expiries, scheduled list updates, migrations.
	ActorSystem = "system"
)

// Entry is one audited change.
type Entry struct {
	Seq      int64     // assigned by Append: 1, 2, 3, … without gaps
	Time     time.Time // assigned by Append: UTC, millisecond precision
	Actor    string    // account name, or ActorSystem; required
	Role     string    // the actor's role at the time ("technician", "dsl", …); may be empty
	Address  string    // client IP of the web request; empty for the system
	Action   string    // what kind of change, e.g. "config.save", "exception.approve"; required
	Object   string    // what it acted on: a profile, an account, a list, a config version
	Summary  string    // one readable line
	Detail   string    // anything longer, e.g. a unified diff of config versions
	Reason   string    // why; callers require it for exceptions
	PrevHash string    // hash of the entry before, Genesis for the first; assigned
	Hash     string    // this entry's hash (see chain.go); assigned
}

// Limits on the fields of an entry, in bytes. Longer values are cut at a
// character boundary and marked, rather than refused: losing the record of
// a change would be worse than shortening it.
const (
	maxLineField = 1 << 10 // Actor, Role, Address, Object, Summary
	maxReason    = 4 << 10
	maxDetail    = 1 << 20
	maxAction    = 64
)

// Config configures a Log.
type Config struct {
	Path      string // SQLite file, usually DATA-DIR/audit.db; created if missing
	Logger    *slog.Logger
	Now       func() time.Time // nil → time.Now
	Appliance string           // the appliance's name, written in export headers; may be empty
}

// Log is the audit trail. All methods are safe for concurrent use; appends
// are serialised, within this process by a semaphore and across processes
// (the daemon and the CLI) by SQLite's write lock.
type Log struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	wdb *sql.DB // one connection, BEGIN IMMEDIATE
	rdb *sql.DB // readers; WAL lets them run beside an append

	sem    chan struct{} // held by Append and Close
	mu     sync.Mutex
	closed bool
}

// New opens (creating and migrating if needed) the audit database at cfg.Path.
func New(cfg Config) (*Log, error) {
	if cfg.Path == "" {
		return nil, errors.New("opening audit log: empty path")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	wdb, err := openDB(cfg.Path, false)
	if err != nil {
		return nil, err
	}
	if err := migrate(wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("opening audit log %s: %w", cfg.Path, sqlitedb.Classify(err, ErrCorrupt))
	}
	rdb, err := openDB(cfg.Path, true)
	if err != nil {
		wdb.Close()
		return nil, err
	}
	return &Log{
		cfg: cfg,
		log: cfg.Logger,
		now: cfg.Now,
		wdb: wdb,
		rdb: rdb,
		sem: make(chan struct{}, 1),
	}, nil
}

func openDB(path string, readOnly bool) (*sql.DB, error) {
	// synchronous=FULL: in WAL mode every commit fsyncs the WAL, so an entry
	// survives a power cut once Append has returned. Appends are rare (people
	// changing settings), so the fsync costs nothing that matters.
	params := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	if readOnly {
		params += "&_pragma=query_only(1)"
	} else {
		// IMMEDIATE takes the write lock at BEGIN, so two processes reading
		// the head at once cannot both append the same seq.
		params += "&_txlock=immediate&_pragma=temp_store(MEMORY)"
	}
	maxOpen := 1
	if readOnly {
		maxOpen = 4
	}
	db, err := sqlitedb.Open(path, params, maxOpen, ErrCorrupt)
	if err != nil {
		return nil, fmt.Errorf("opening audit log %s: %w", path, err)
	}
	return db, nil
}

// Close waits for an append in progress and closes the database.
func (l *Log) Close() error {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := errors.Join(l.rdb.Close(), l.wdb.Close()); err != nil {
		return fmt.Errorf("closing audit log: %w", err)
	}
	return nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Append records e and returns it as stored, with Seq, Time, PrevHash and
// Hash assigned (values given for them are ignored). When Append returns
// without error the entry is durable. Fields are cleaned rather than
// refused: invalid UTF-8 is replaced, control characters in one-line fields
// become spaces, over-long values are cut and marked.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	e, err := clean(e)
	if err != nil {
		return Entry{}, err
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("appending audit entry: %w", ctx.Err())
	}
	defer func() { <-l.sem }()
	if l.isClosed() {
		return Entry{}, ErrClosed
	}

	tx, err := l.wdb.BeginTx(ctx, nil)
	if err != nil {
		return Entry{}, fmt.Errorf("appending audit entry: %w", err)
	}
	defer tx.Rollback()

	var (
		headSeq  int64
		headHash string
		lastSeq  int64
	)
	err = tx.QueryRowContext(ctx, "SELECT seq, hash FROM head WHERE id = 1").Scan(&headSeq, &headHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("appending audit entry: reading head: %w", err)
	}
	headMissing := errors.Is(err, sql.ErrNoRows)
	var lastHash sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").Scan(&lastSeq, &lastHash); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("appending audit entry: reading newest entry: %w", err)
	}
	switch {
	case headMissing:
		// Only someone editing the file removes the head row. Chain from
		// the newest row; Verify reports the missing head.
		l.log.Error("audit log head record missing; the file was changed outside schoolgate")
		headSeq, headHash = lastSeq, lastHash.String
		if lastSeq == 0 {
			headHash = Genesis
		}
	case headSeq != lastSeq || (lastSeq > 0 && headHash != lastHash.String):
		// Keep chaining from the head, not the newest row: removed rows
		// stay a visible gap, an inserted row a visible broken link.
		l.log.Error("audit log head record does not match the newest entry; the file was changed outside schoolgate",
			"head_seq", headSeq, "newest_seq", lastSeq)
	}

	e.Seq = max(headSeq, lastSeq) + 1
	e.Time = time.UnixMilli(l.now().UnixMilli()).UTC()
	e.PrevHash = headHash
	e.Hash = Hash(e)

	_, err = tx.ExecContext(ctx, `INSERT INTO entries
		(seq, time_ms, actor, role, address, action, object, summary, detail, reason, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixMilli(), e.Actor, e.Role, e.Address, e.Action, e.Object,
		e.Summary, e.Detail, e.Reason, e.PrevHash, e.Hash)
	if err != nil {
		return Entry{}, fmt.Errorf("appending audit entry %d: %w", e.Seq, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO head (id, seq, hash) VALUES (1, ?, ?)", e.Seq, e.Hash); err != nil {
		return Entry{}, fmt.Errorf("appending audit entry %d: updating head: %w", e.Seq, err)
	}
	if err := tx.Commit(); err != nil {
		return Entry{}, fmt.Errorf("appending audit entry %d: %w", e.Seq, err)
	}
	return e, nil
}

// clean validates the caller's fields and brings them into the form that is
// stored and hashed, so that what Append returns is exactly what Verify and
// an export will see.
func clean(e Entry) (Entry, error) {
	out := Entry{
		Actor:   oneLine(strings.TrimSpace(e.Actor), maxLineField),
		Role:    oneLine(strings.TrimSpace(e.Role), maxLineField),
		Address: oneLine(cleanAddress(e.Address), maxLineField),
		Action:  strings.TrimSpace(e.Action),
		Object:  oneLine(e.Object, maxLineField),
		Summary: oneLine(e.Summary, maxLineField),
		Detail:  cut(text(e.Detail), maxDetail),
		Reason:  cut(text(e.Reason), maxReason),
	}
	if out.Actor == "" {
		return Entry{}, fmt.Errorf("%w: no actor", ErrInvalid)
	}
	if !validAction(out.Action) {
		return Entry{}, fmt.Errorf("%w: action %q: want 1 to %d of a-z, 0-9, '.', '_', '-'", ErrInvalid, e.Action, maxAction)
	}
	return out, nil
}

func validAction(s string) bool {
	if s == "" || len(s) > maxAction {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// cleanAddress drops the port of a "host:port" remote address, so callers
// can pass http.Request.RemoteAddr as it is.
func cleanAddress(s string) string {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String()
	}
	return s
}

// text makes s valid UTF-8 without NUL bytes, keeping newlines and tabs.
func text(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// oneLine is text with every control character turned into a space, cut to max bytes.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, text(s))
	return cut(s, max)
}

// cut shortens s to at most max bytes at a character boundary, saying so.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	mark := fmt.Sprintf(" … [cut from %d bytes]", len(s))
	n := max - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}

// Snapshot writes a consistent copy of the database to path, for a backup, while it stays
// in use.
func (l *Log) Snapshot(ctx context.Context, path string) error {
	return sqlitedb.Snapshot(ctx, l.cfg.Path, path)
}
