// Package exceptions keeps the time-limited filtering exceptions made through
// the web UI, and the workflow that makes them: a request, a decision, a
// lifetime that ends by itself.
//
// # Workflow
//
// A teacher asks for an exception for a lesson (Request): a scope (a profile,
// a segment or one device), its target (the profile or segment name, or the
// device's MAC address), a domain (which covers its subdomains), an action
// (allow, usually, or block), a duration and a reason. The request waits as
// pending. A DSL or technician approves it (Approve; a note is optional, and
// the duration, scope and target may be changed) or denies it (Deny; a note is
// required, so that the teacher learns why). An approved exception starts at
// the moment of approval, not of the request, and ends by itself at
// Starts+Duration. A DSL or technician may also create an exception directly
// (Create): it is approved at once, with them as requester and approver.
//
// Someone on a pupil device, who has no account, may ask for a review from
// the block page (RequestReview). That becomes a pending request like any
// other, with source "blockpage", the client's address (and MAC address when
// known) as requester, and by default the scope "profile" of the profile the
// client was filtered by; the reviewer usually narrows or widens it when
// approving. Block-page requests are deduplicated and capped per client, so a
// pupil cannot bury the DSL's queue.
//
// An active exception can be revoked early (Revoke; a note is required); a
// pending request can be withdrawn by whoever asked for it (Withdraw).
//
//	pending ──Approve──▶ approved ──(Expires passes, Expire)──▶ expired
//	   │                    └──────Revoke──────▶ revoked
//	   ├──Deny──▶ denied
//	   └──Withdraw──▶ withdrawn
//
// Every transition checks the state inside one SQLite transaction that holds
// the write lock from its start, so two people deciding the same request at
// once cannot both succeed (the second gets ErrWrongState), also across
// processes sharing the file.
//
// # How exceptions take effect
//
// The daemon merges Active into the configuration it hands to policy.Compile,
// calls Expire when NextExpiry comes (auditing each exception it returns) and
// recompiles after every change. The policy engine judges the protected tier
// (illegal content) before exceptions, so no exception ever lifts a protected
// name, whatever is stored here. The store refuses to request, create or
// approve an exception whose domain, or a parent of it, Config.Protected
// reports. It cannot look for protected names below the domain (Protected
// answers about one name, and the lists are not to be enumerated), and need
// not: an allow of example.com is accepted while bad.example.com is
// protected, and the engine keeps bad.example.com blocked.
//
// # What this package does not decide
//
// Who may do what (request, create, approve, read one's own or everyone's) is
// decided by the web UI with firmware/auth permissions before it calls the
// store; names of who acted are recorded here as given. Audit entries are
// written by the caller, which knows the actor's role and address. Every field
// that comes from a form is validated here as hostile input; problems are
// returned as a *ValidationError whose FieldErrors name the form field.
package exceptions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

// FileName is the store's file in the daemon's data directory.
const FileName = "exceptions.db"

// Status is where an exception is in its workflow.
type Status string

// Statuses. Only Pending and Approved can change; the others are final.
const (
	Pending   Status = "pending"   // waiting for a DSL or technician
	Approved  Status = "approved"  // in force from Starts until Expires
	Denied    Status = "denied"    // refused; Note says why
	Revoked   Status = "revoked"   // ended early; EndNote says why
	Expired   Status = "expired"   // ran its course
	Withdrawn Status = "withdrawn" // taken back by its requester before a decision
)

// Sources of a request.
const (
	SourceUI        = "ui"        // an account in the web UI
	SourceBlockPage = "blockpage" // someone without an account, from the block page
)

// Limits.
const (
	// DefaultMaxDuration is the longest exception unless Config.MaxDuration says otherwise.
	DefaultMaxDuration = 30 * 24 * time.Hour
	// DefaultReviewDuration is what a block-page request asks for unless
	// Config.ReviewDuration says otherwise; the reviewer may change it.
	DefaultReviewDuration = time.Hour
	// MinDuration is the shortest exception. Anything shorter is a mistake
	// (seconds typed for minutes), and DNS caches would outlive it anyway.
	MinDuration = time.Minute
	// DefaultListLimit is what List returns when Filter.Limit is 0.
	DefaultListLimit = 200

	minText             = 3   // characters of a reason, or of a required note
	maxText             = 500 // characters of a reason or note
	maxName             = 100 // characters of a profile or segment name
	maxActor            = 200 // bytes of a requester's or decider's name
	maxShown            = 64  // characters of hostile input quoted back in a message
	maxPendingPerClient = 5   // pending block-page requests from one client address
	maxPendingReviews   = 200 // pending block-page requests in all
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalid is matched by every *ValidationError and *FieldError.
	ErrInvalid = errors.New("invalid exception")
	// ErrProtected is matched by the FieldError refusing a protected domain.
	ErrProtected = errors.New("domain is on a protected list")
	// ErrNotFound: no exception has that ID.
	ErrNotFound = errors.New("no such exception")
	// ErrWrongState: the exception is not in a state that allows this
	// (approve and deny need pending, revoke needs approved and not yet
	// expired, withdraw needs pending).
	ErrWrongState = errors.New("exception is not in a state that allows this")
	// ErrNotRequester: only the account that asked may withdraw a request;
	// block-page requests cannot be withdrawn.
	ErrNotRequester = errors.New("only the requester may withdraw a request")
	// ErrTooManyRequests: too many block-page requests are waiting, from this
	// client or in all.
	ErrTooManyRequests = errors.New("too many review requests are waiting")
	// ErrCorrupt: the file is not a readable SQLite database.
	ErrCorrupt = errors.New("exceptions database is corrupt or not a database")
	// ErrSchemaVersion: the file was written by a newer firmware.
	ErrSchemaVersion = errors.New("exceptions database schema version not supported")
)

// Exception is one request or exception, as stored.
type Exception struct {
	ID       int64
	Scope    string // "profile", "segment" or "device"
	Target   string // profile or segment name, or MAC address aa:bb:cc:dd:ee:ff
	Domain   string // normalised (lists.Normalize); covers its subdomains
	Action   string // "allow" or "block"
	Reason   string
	Duration time.Duration // asked for while pending; granted once approved
	Status   Status

	RequestedBy string // account name, or "block page (10.0.20.31)"
	Source      string // SourceUI or SourceBlockPage
	ClientAddr  string // block-page requests: the client's IP address
	ClientMAC   string // block-page requests: its MAC address, when known
	Requested   time.Time

	// The decision: approval (with an optional note) or denial (with one).
	DecidedBy string
	Note      string
	Decided   time.Time

	// What the request asked for, set only when the approval changed it: the
	// DSL may grant a shorter time, or one device rather than a whole profile.
	AskedScope    string
	AskedTarget   string
	AskedDuration time.Duration

	// Set on approval: in force for Starts <= now < Expires. Expires stays
	// what was granted when the exception is revoked.
	Starts  time.Time
	Expires time.Time

	// The end of an exception or request other than a decision: revoked
	// (EndedBy, EndNote), withdrawn (EndedBy) or expired (Ended = Expires).
	EndedBy string
	EndNote string
	Ended   time.Time
}

// Config configures a Store. Zero values select the defaults.
type Config struct {
	Path   string // SQLite file, usually DATA-DIR/exceptions.db; created if missing
	Logger *slog.Logger
	Now    func() time.Time // nil → time.Now

	// Protected reports whether a normalised domain is on a protected
	// (illegal content) list, matching the name itself; the store also asks
	// about each parent. Required: pass the same lists the policy engine uses.
	Protected func(domain string) bool
	// Bypass, if set, names what a domain would switch off when excepted ("" for most): the
	// resolver-bypass canaries (iCloud Private Relay, Firefox's DNS over HTTPS) must stay
	// answered for everyone, so an exception for them is refused like a protected name.
	Bypass func(domain string) string
	// KnownTarget, if set, reports whether a profile or segment of that name
	// exists ("profile" or "segment" as scope), so that a typo is refused
	// rather than stored as an exception that never applies. Devices are not
	// asked about: a device need not be in the inventory to be excepted.
	KnownTarget func(scope, name string) bool

	// OnChange, if set, is called after a change to what Active returns (an
	// exception created, approved or revoked), so that the caller recompiles
	// the policy at once. Expiry is the caller's own doing, through Expire.
	OnChange func()

	MaxDuration    time.Duration // longest exception; default DefaultMaxDuration
	ReviewDuration time.Duration // what a block-page request asks for; default DefaultReviewDuration
}

// Store is the exceptions database. All methods are safe for concurrent use.
type Store struct {
	cfg Config
	log *slog.Logger
	db  *sql.DB
}

// New opens (creating and migrating if needed) the database at cfg.Path.
func New(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("opening exceptions database: empty path")
	}
	if cfg.Protected == nil {
		return nil, errors.New("opening exceptions database: no protected-list check (Config.Protected)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.ReviewDuration == 0 {
		cfg.ReviewDuration = DefaultReviewDuration
	}
	if cfg.MaxDuration < MinDuration {
		return nil, fmt.Errorf("opening exceptions database: maximum duration %v is shorter than %v", cfg.MaxDuration, MinDuration)
	}
	if cfg.ReviewDuration < MinDuration || cfg.ReviewDuration > cfg.MaxDuration {
		return nil, fmt.Errorf("opening exceptions database: review duration %v is not between %v and the maximum %v",
			cfg.ReviewDuration, MinDuration, cfg.MaxDuration)
	}

	// Create the file owner-only before SQLite does: the -wal and -shm files
	// take their mode from it, and requests name pupils' devices.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening exceptions database: %w", err)
	}
	f.Close()
	// synchronous=FULL: an approval or revocation must survive a power cut;
	// these writes are a few a day. _txlock=immediate takes the write lock at
	// BEGIN, so the state read at the start of a transition cannot change
	// before its write, even from another process (the CLI).
	params := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=temp_store(MEMORY)&_txlock=immediate"
	// One connection: a few queries per page and per recompile.
	db, err := sqlitedb.Open(cfg.Path, params, 1, ErrCorrupt)
	if err != nil {
		return nil, fmt.Errorf("opening exceptions database %s: %w", cfg.Path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening exceptions database %s: %w", cfg.Path, sqlitedb.Classify(err, ErrCorrupt))
	}
	return &Store{cfg: cfg, log: cfg.Logger, db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing exceptions database: %w", err)
	}
	return nil
}

// now is the injected clock at the millisecond precision the file keeps, so
// that what a method returns equals what Get reads back later.
func (s *Store) now() time.Time {
	return time.UnixMilli(s.cfg.Now().UnixMilli()).UTC()
}

// changed tells the owner that the active exceptions changed.
func (s *Store) changed() {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// Snapshot writes a consistent copy of the database to path, for a backup, while it stays
// in use.
func (s *Store) Snapshot(ctx context.Context, path string) error {
	return sqlitedb.Snapshot(ctx, s.cfg.Path, path)
}
