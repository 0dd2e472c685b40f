// Package eventlog records every filtering decision (DNS, TLS SNI, QUIC,
// HTTP Host) in a local SQLite database and answers the queries of the
// safeguarding lead and the technician.
//
// Producers call Record, which never blocks: events go into a bounded queue
// and a single writer goroutine batches them into one transaction about once
// a second, folding repeats so that a chatty device does not fill the disk.
// Strings are interned into dictionary tables and the row id encodes the
// event's second, so rows stay small and "newest first" is a walk of the
// primary key.
package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrBadCursor is returned by Query when Filter.Cursor was not produced by Query.
	ErrBadCursor = errors.New("invalid cursor")
	// ErrCorrupt is returned by New when the file is not a readable SQLite database.
	ErrCorrupt = errors.New("event log database is corrupt or not a database")
	// ErrSchemaVersion is returned by New when the file was written by a newer firmware.
	ErrSchemaVersion = errors.New("event log schema version not supported")
	// ErrNotRunning is returned by Flush when the writer is not started or already closed.
	ErrNotRunning = errors.New("event log writer not running")
)

// Event is one filtering decision.
type Event struct {
	// ID is set on query results; it is unique and orders events by time.
	ID      int64
	Time    time.Time
	Client  netip.Addr
	MAC     string // "" when unknown
	Device  string // device name, "" when unknown
	Segment string
	Profile string
	// Source is "dns", "sni", "quic", "http", or "ip" for the packet path's drops by
	// address and port (DoT, VPN ports, listed addresses, QUIC, guest isolation).
	Source   string
	Name     string // domain asked / seen; for source ip the server's address and port
	QType    string // "A", "AAAA", "HTTPS"... ("" for non-DNS)
	Action   string // "allow", "block", "rewrite"
	Tier     string // "protected", "exception", "profile", "safesearch", "canary", "default", "noname", "guest"
	Category string
	List     string
	Rule     string // the matching list entry or rule
	Schedule string // the schedule under which the profile blocked the category, if any
	Count    int    // ≥1; repeats folded into one row
}

// Config configures a Log. Zero values select the defaults.
type Config struct {
	Path          string // SQLite file; WAL mode
	Logger        *slog.Logger
	QueueSize     int              // bounded queue; default 32768
	FlushInterval time.Duration    // default 1s: about one commit a second
	DedupeWindow  time.Duration    // default 60s; negative disables folding
	Retention     time.Duration    // default 365 days
	Now           func() time.Time // nil → time.Now
}

// Stats are cumulative counters since New, for metrics and the status page.
type Stats struct {
	Queued    uint64 // events accepted by Record
	Written   uint64 // rows inserted
	Folded    uint64 // events folded into an existing row
	Dropped   uint64 // events lost: queue full, log closed, or a failed commit
	Purged    uint64 // rows removed by retention
	Pending   int    // events waiting in the queue right now
	LastFlush time.Time
	LastError string
}

// SegmentCounts are totals for one segment.
type SegmentCounts struct{ Queries, Blocked uint64 }

const (
	// 32768 events of 256 bytes: 8 MB held for good, and more than half a second of the
	// 50k events/s the writer takes while a commit waits for the disk.
	defaultQueueSize     = 32768
	defaultFlushInterval = time.Second
	defaultDedupeWindow  = 60 * time.Second
	defaultRetention     = 365 * 24 * time.Hour
)

// Log is the event log. Record is safe for concurrent use from any number of
// goroutines; Query, Counts and Stats are safe at any time.
type Log struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	wdb    *sql.DB // one connection, used only by the writer
	rdb    *sql.DB // readers; WAL lets them run beside the writer
	queue  chan Event
	flushc chan flushReq
	stop   chan struct{}
	done   chan struct{}

	started   atomic.Bool
	closed    atomic.Bool
	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error

	queued, written, folded, dropped, purged atomic.Uint64

	mu        sync.Mutex
	lastFlush time.Time
	lastErr   string

	w *writer // owned by the writer goroutine after Start
}

type flushReq struct {
	target uint64
	done   chan error
}

// New opens (creating and migrating if needed) the database at cfg.Path.
// It does not start the writer; call Start.
func New(cfg Config) (*Log, error) {
	if cfg.Path == "" {
		return nil, errors.New("opening event log: empty path")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = defaultQueueSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = defaultFlushInterval
	}
	if cfg.DedupeWindow == 0 {
		cfg.DedupeWindow = defaultDedupeWindow
	}
	if cfg.Retention <= 0 {
		cfg.Retention = defaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	pinAllocator()
	wdb, err := openDB(cfg.Path, false)
	if err != nil {
		return nil, err
	}
	if err := migrate(wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("opening event log %s: %w", cfg.Path, sqlitedb.Classify(err, ErrCorrupt))
	}
	rdb, err := openDB(cfg.Path, true)
	if err != nil {
		wdb.Close()
		return nil, err
	}
	l := &Log{
		cfg:    cfg,
		log:    cfg.Logger,
		now:    cfg.Now,
		wdb:    wdb,
		rdb:    rdb,
		queue:  make(chan Event, cfg.QueueSize),
		flushc: make(chan flushReq),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	return l, nil
}

func openDB(path string, readOnly bool) (*sql.DB, error) {
	// synchronous=NORMAL in WAL loses at most the last commits on power cut,
	// never consistency, and saves an fsync per commit on SD cards.
	params := "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	// Page caches are memory the daemon keeps for good (a 1 GB board's budget is 200 MB):
	// the writer's 8 MB holds the hot index pages (4 MB cost a fifth of the ingest rate,
	// 16 MB gained nothing measurable); the UI's scans of a file of a gigabyte or more
	// depend on the kernel's page cache, which the kernel can reclaim, far more than on
	// the readers' own.
	if readOnly {
		params += "&_pragma=query_only(1)&_pragma=cache_size(-4000)"
	} else {
		// temp_store(MEMORY): a statement journal, should a statement ever
		// need one, stays off the SD card.
		params += "&_pragma=cache_size(-8000)&_pragma=foreign_keys(0)&_pragma=temp_store(MEMORY)"
	}
	maxOpen := 1
	if readOnly {
		maxOpen = 4
	}
	db, err := sqlitedb.Open(path, params, maxOpen, ErrCorrupt)
	if err != nil {
		return nil, fmt.Errorf("opening event log %s: %w", path, err)
	}
	return db, nil
}

// Start starts the single writer goroutine. Cancelling ctx stops it like Close
// does (queued events are still written), but Close must still be called.
func (l *Log) Start(ctx context.Context) error {
	if l.closed.Load() {
		return ErrNotRunning
	}
	var err error
	l.startOnce.Do(func() {
		l.w, err = newWriter(l)
		if err != nil {
			close(l.done)
			return
		}
		l.started.Store(true)
		go l.run(ctx)
	})
	return err
}

// Close drains the queue, commits, and closes the database. Events recorded
// after Close are dropped.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		if l.started.Load() {
			<-l.done
		}
		var errs []error
		if l.w != nil {
			errs = append(errs, l.w.close())
		}
		// Keeps the planner's statistics fresh for the next boot; cheap when
		// nothing changed.
		for _, q := range []string{"PRAGMA analysis_limit=400", "PRAGMA optimize"} {
			if _, err := l.wdb.Exec(q); err != nil {
				l.log.Warn("optimizing event log", "err", err)
			}
		}
		errs = append(errs, l.rdb.Close(), l.wdb.Close())
		if err := errors.Join(errs...); err != nil {
			l.closeErr = fmt.Errorf("closing event log: %w", err)
		}
	})
	return l.closeErr
}

// Record hands an event over without blocking: if the queue is full the
// event is dropped and counted.
func (l *Log) Record(e Event) {
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	select {
	case l.queue <- e:
		// Counted after the send so that Flush, which waits for the writer to
		// have taken this many events, never waits for an event not yet queued.
		l.queued.Add(1)
	default:
		l.dropped.Add(1)
	}
}

// Flush waits until everything recorded before the call is committed.
func (l *Log) Flush(ctx context.Context) error {
	if !l.started.Load() || l.closed.Load() {
		return ErrNotRunning
	}
	req := flushReq{target: l.queued.Load(), done: make(chan error, 1)}
	select {
	case l.flushc <- req:
	case <-l.done:
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("flushing event log: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flushing event log: %w", ctx.Err())
	}
}

// Stats returns a snapshot of the counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	s := Stats{LastFlush: l.lastFlush, LastError: l.lastErr}
	l.mu.Unlock()
	s.Queued = l.queued.Load()
	s.Written = l.written.Load()
	s.Folded = l.folded.Load()
	s.Dropped = l.dropped.Load()
	s.Purged = l.purged.Load()
	s.Pending = len(l.queue)
	return s
}

func (l *Log) setFlushed(t time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.lastErr = err.Error()
		return
	}
	l.lastFlush = t
}

// Snapshot writes a consistent copy of the database to path, for a backup, while it stays
// in use.
func (l *Log) Snapshot(ctx context.Context, path string) error {
	return sqlitedb.Snapshot(ctx, l.cfg.Path, path)
}
