// Package auth keeps the web UI's accounts, roles, passwords, TOTP second
// factors, recovery codes, sessions and login throttling in a SQLite file of
// its own. It has no HTTP handlers: the web UI calls it, enforces Can on every
// route, and records what it is told here in the audit trail.
//
// Security choices, and why:
//
//   - Roles and permissions are one table (grants in roles.go) so the whole
//     policy can be read, reviewed and tested as a matrix.
//   - Passwords are hashed with argon2id, OWASP's m=19 MiB, t=2, p=1, a 16-byte
//     random salt and a 32-byte key, stored as a PHC string so that the
//     parameters travel with the hash: raising them later rehashes each
//     account at its next successful login. Comparison is constant-time. At
//     most HashConcurrency hashes run at once, bounding memory on a 1 GB board.
//     New passwords need MinPasswordLength characters, must not contain the
//     account name and must not be one of a short list of the commonest
//     passwords (also after trimming digits and symbols and undoing leetspeak).
//   - An unknown account name costs the same argon2id work as a wrong password
//     (a dummy hash made at New is checked), and both give ErrBadCredentials.
//     ErrDisabled is only said to someone who knew the password.
//   - TOTP is RFC 6238 with SHA-1, 6 digits and 30-second steps, because that
//     is what every authenticator app supports; secrets are 20 random bytes.
//     Codes are accepted one step either side of now, and a step once used by
//     an account is never accepted again for it (RFC 6238 §5.2), so a code
//     seen over a shoulder cannot be replayed. TOTP secrets must be readable to
//     be checked and are stored as they are; the database file is created
//     0600 and backups of it are encrypted by their own feature.
//   - Ten recovery codes of 80 random bits are shown once at enrolment. Their
//     entropy makes a salted SHA-256 enough to store them; each works once and
//     its use is recorded and reported to the caller.
//   - TOTP is required for technician and DSL accounts by default; a
//     technician may turn the requirement off per account (the caller audits).
//     An account that has enrolled always needs its code.
//   - Login is two steps when TOTP applies: Login checks the password and
//     returns a short-lived Pending along with ErrTOTPRequired (or
//     ErrTOTPEnrolRequired), and CompleteTOTP finishes it. Because the first
//     step returns an error, a caller that treats every error as failure
//     cannot hand out a session without the second factor.
//   - Throttling counts failures per account name and per client address (/64
//     for IPv6): five are free, then each attempt must wait 1 s, 2 s, 4 s … up
//     to 15 minutes after the last failure. Attempts still being checked count
//     too, so parallel requests cannot slip past the count. The counters live
//     in SQLite and survive restarts. A full login resets its account's
//     counter; an address's counter only fades after a day without failures,
//     so logging in to one's own account does not wash it. Wrong second
//     factors count, and a correct password alone counts against the account
//     until the code is given, so knowing the password does not buy unlimited
//     code guesses.
//   - Sessions are server-side. The cookie value is 32 random bytes; only their
//     SHA-256 is stored, so a copy of the database opens no session. Sessions
//     end after IdleTimeout without use and AbsoluteTimeout after login, on
//     logout, and all at once on a password, role, TOTP or disabled change.
//     The CSRF token is an HMAC of the session token, so it is per session,
//     needs no storage, and cannot be computed from the database.
//   - Account management takes the acting technician's Session and checks it
//     again inside the transaction (live token, enabled account, current
//     role), so a stale or mistaken Session in the web UI grants nothing.
//     Changes that skip the password (role, disable, reset) are refused on
//     one's own account, and the last enabled technician is kept.
//   - First start has no default password: SetupToken issues a one-time token
//     (stored hashed, valid SetupTTL, replaced at each call while no account
//     exists) and CreateFirst spends it on the first technician.
package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrBadCredentials: unknown account or wrong password; deliberately the same.
	ErrBadCredentials = errors.New("wrong account name or password")
	// ErrThrottled: too many failures; errors.As gives a *ThrottledError with RetryAfter.
	ErrThrottled = errors.New("too many failed attempts")
	// ErrTOTPRequired comes with a LoginResult holding a Pending: ask for a code.
	ErrTOTPRequired = errors.New("authenticator code required")
	// ErrTOTPEnrolRequired comes with a LoginResult holding a Pending with an
	// Enrolment: show the QR code, then ask for a code.
	ErrTOTPEnrolRequired = errors.New("authenticator enrolment required")
	// ErrBadCode: the TOTP or recovery code is wrong, malformed or already used.
	ErrBadCode = errors.New("wrong or already used code")
	// ErrPendingExpired: the second login step came too late or after too many
	// wrong codes, or its token is unknown; start again with the password.
	ErrPendingExpired = errors.New("login expired, enter the password again")
	// ErrDisabled: the account is disabled (said only after a correct password).
	ErrDisabled = errors.New("account disabled")

	// ErrNoSession: the session token is unknown, malformed or revoked.
	ErrNoSession = errors.New("no such session")
	// ErrSessionExpired: the session timed out (idle or absolute).
	ErrSessionExpired = errors.New("session expired")

	// ErrForbidden: the acting Session is not a live session of an enabled
	// account whose current role holds AccountsManage.
	ErrForbidden = errors.New("not allowed")
	// ErrSelf: this change may not be made to one's own account (use
	// ChangePassword or BeginTOTP, which ask for the password).
	ErrSelf = errors.New("not allowed on one's own account")
	// ErrLastTechnician: the change would leave no enabled technician.
	ErrLastTechnician = errors.New("the last enabled technician cannot be demoted or disabled")
	// ErrNoAccount: no account has that name.
	ErrNoAccount = errors.New("no such account")
	// ErrAccountExists: the name is taken.
	ErrAccountExists = errors.New("account name already taken")
	// ErrBadName: account names are 1–64 of a–z, 0–9, '.', '_', '-', '@', starting with a letter or digit.
	ErrBadName = errors.New("account name must be 1-64 lowercase letters, digits, '.', '_', '-' or '@', starting with a letter or digit")
	// ErrBadRole: not one of the four roles.
	ErrBadRole = errors.New("unknown role")
	// ErrNotEnrolled: the account has no TOTP (or no enrolment under way).
	ErrNotEnrolled = errors.New("no authenticator enrolled")

	// ErrWeakPassword is wrapped by every password rule's error.
	ErrWeakPassword     = errors.New("password not accepted")
	ErrPasswordTooShort = fmt.Errorf("%w: it must have at least %d characters", ErrWeakPassword, MinPasswordLength)
	ErrPasswordTooLong  = fmt.Errorf("%w: it must be at most %d bytes", ErrWeakPassword, MaxPasswordBytes)
	ErrPasswordInvalid  = fmt.Errorf("%w: it must be valid text without control characters", ErrWeakPassword)
	ErrPasswordCommon   = fmt.Errorf("%w: it is too common or too simple to guess", ErrWeakPassword)
	ErrPasswordHasName  = fmt.Errorf("%w: it must not contain the account name", ErrWeakPassword)
	ErrPasswordReused   = fmt.Errorf("%w: it must differ from the current password", ErrWeakPassword)

	// ErrSetupDone: an account exists, so there is no first-start setup.
	ErrSetupDone = errors.New("setup already done")
	// ErrSetupToken: the setup token is wrong or expired.
	ErrSetupToken = errors.New("invalid or expired setup token")

	// ErrBadHash: a stored password hash is not a PHC string this package accepts.
	ErrBadHash = errors.New("invalid password hash")
	// ErrBadSecret: a TOTP secret is not base32 of 16–64 bytes.
	ErrBadSecret = errors.New("invalid TOTP secret")
	// ErrCorrupt: the file is not a readable SQLite database.
	ErrCorrupt = errors.New("accounts database is corrupt or not a database")
	// ErrSchemaVersion: the file was written by a newer firmware.
	ErrSchemaVersion = errors.New("accounts database schema version not supported")
)

// ThrottledError is returned while an account or address must wait. It
// matches ErrThrottled with errors.Is.
type ThrottledError struct {
	RetryAfter time.Duration // at least one second
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v: try again in %v", ErrThrottled, e.RetryAfter)
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Throttle sets the growing delays after failed logins.
type Throttle struct {
	Free   int           // failures without delay; default 5
	Base   time.Duration // delay after the first counted failure; default 1s, doubling
	Max    time.Duration // default 15m
	Forget time.Duration // a counter is forgotten this long after its last failure; default 24h
}

// Config configures a Store. Zero values select the defaults.
type Config struct {
	Path   string // SQLite file, created 0600; WAL mode
	Logger *slog.Logger
	Now    func() time.Time // nil → time.Now

	// Issuer names the appliance in authenticator apps; default "schoolgate".
	// No ':' (it separates issuer and account in the otpauth URI).
	Issuer string

	IdleTimeout     time.Duration // default 30m
	AbsoluteTimeout time.Duration // default 12h
	PendingTimeout  time.Duration // time to give the second factor; default 5m
	SetupTTL        time.Duration // lifetime of a setup token; default 24h

	Argon2          Params // zero → DefaultParams()
	HashConcurrency int    // argon2 computations at once; default 2
	Throttle        Throttle
}

const (
	defaultIssuer          = "schoolgate"
	defaultIdleTimeout     = 30 * time.Minute
	defaultAbsoluteTimeout = 12 * time.Hour
	defaultPendingTimeout  = 5 * time.Minute
	defaultSetupTTL        = 24 * time.Hour
	defaultHashConcurrency = 2

	// slideEvery limits the writes Lookup makes to slide the idle timer: the
	// UI polls, and the SD card should not take a write per request. Idle
	// timeouts are therefore exact to within this.
	slideEvery = time.Minute
	// maxPendingAttempts wrong codes end a Pending.
	maxPendingAttempts = 5
	// pruneEvery limits how often expired rows are deleted.
	pruneEvery = 10 * time.Minute
)

// Store is the accounts database. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	db     *sql.DB
	hasher *hasher
	// dummy is checked for unknown account names, so that they cost the same
	// argon2id work as a wrong password.
	dummy string

	throttle throttle

	pruneMu   sync.Mutex
	lastPrune time.Time
}

// New opens (creating and migrating if needed) the database at cfg.Path.
func New(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("opening accounts database: empty path")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Issuer == "" {
		cfg.Issuer = defaultIssuer
	}
	if strings.Contains(cfg.Issuer, ":") || len(cfg.Issuer) > 64 {
		return nil, fmt.Errorf("opening accounts database: issuer %q: at most 64 bytes, no ':'", cfg.Issuer)
	}
	setDefault(&cfg.IdleTimeout, defaultIdleTimeout)
	setDefault(&cfg.AbsoluteTimeout, defaultAbsoluteTimeout)
	setDefault(&cfg.PendingTimeout, defaultPendingTimeout)
	setDefault(&cfg.SetupTTL, defaultSetupTTL)
	if cfg.Argon2 == (Params{}) {
		cfg.Argon2 = DefaultParams()
	}
	if err := cfg.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("opening accounts database: %w", err)
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = defaultHashConcurrency
	}
	if cfg.Throttle.Free <= 0 {
		cfg.Throttle.Free = 5
	}
	setDefault(&cfg.Throttle.Base, time.Second)
	setDefault(&cfg.Throttle.Max, 15*time.Minute)
	setDefault(&cfg.Throttle.Forget, 24*time.Hour)

	// Create the file owner-only before SQLite does: the -wal and -shm files
	// take their mode from it.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening accounts database: %w", err)
	}
	f.Close()
	if err := os.Chmod(cfg.Path, 0o600); err != nil {
		return nil, fmt.Errorf("opening accounts database: %w", err)
	}
	// synchronous=FULL: a login, a password change or a used recovery code
	// must survive a power cut; these writes are rare.
	params := "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_pragma=temp_store(MEMORY)"
	// One connection: the load is a handful of queries per page, and a single
	// writer makes every check-then-write transaction race-free.
	db, err := sqlitedb.Open(cfg.Path, params, 1, ErrCorrupt)
	if err != nil {
		return nil, fmt.Errorf("opening accounts database %s: %w", cfg.Path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, classify(cfg.Path, err)
	}
	s := &Store{cfg: cfg, log: cfg.Logger, now: cfg.Now, db: db, hasher: newHasher(cfg.Argon2, cfg.HashConcurrency)}
	s.dummy, err = s.hasher.hash(context.Background(), newTokenString())
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prune(context.Background(), true); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing accounts database: %w", err)
	}
	return nil
}

func classify(path string, err error) error {
	return fmt.Errorf("opening accounts database %s: %w", path, sqlitedb.Classify(err, ErrCorrupt))
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// schemaVersion is stored in PRAGMA user_version. Each entry of migrations
// takes the schema from version i to i+1; append, never edit.
const schemaVersion = 1

var migrations = []string{
	// 0 → 1
	`
-- Times are Unix milliseconds. Accounts are never deleted, only disabled:
-- the audit trail names them.
CREATE TABLE accounts (
	id               INTEGER PRIMARY KEY,
	name             TEXT NOT NULL UNIQUE,     -- lowercase, see validName
	role             TEXT NOT NULL,
	password         TEXT NOT NULL,            -- argon2id PHC string
	password_changed INTEGER NOT NULL,
	totp_secret      TEXT,                     -- base32; NULL until enrolled
	totp_pending     TEXT,                     -- base32 secret being enrolled
	totp_last_step   INTEGER NOT NULL DEFAULT 0, -- last accepted 30 s step: replay protection
	totp_required    INTEGER NOT NULL,
	created          INTEGER NOT NULL,
	last_login       INTEGER,
	disabled         INTEGER NOT NULL DEFAULT 0
);

-- SHA-256 of each recovery code; used is set once.
CREATE TABLE recovery_codes (
	account_id INTEGER NOT NULL REFERENCES accounts(id),
	hash       BLOB NOT NULL,
	used       INTEGER,
	PRIMARY KEY (account_id, hash)
) WITHOUT ROWID;

-- token_hash is the SHA-256 of the cookie value.
CREATE TABLE sessions (
	id         INTEGER PRIMARY KEY,
	token_hash BLOB NOT NULL UNIQUE,
	account_id INTEGER NOT NULL REFERENCES accounts(id),
	addr       TEXT NOT NULL,
	created    INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);

-- Logins waiting for their second factor.
CREATE TABLE pending (
	token_hash BLOB PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id),
	enrol      INTEGER NOT NULL,
	expires    INTEGER NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Failure counters; kind 1 = account name, 2 = client address.
CREATE TABLE throttle (
	kind         INTEGER NOT NULL,
	key          TEXT NOT NULL,
	failures     INTEGER NOT NULL,
	last_failure INTEGER NOT NULL,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- The one first-start setup token, while no account exists.
CREATE TABLE setup (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	token_hash BLOB NOT NULL,
	expires    INTEGER NOT NULL
);
`,
}

func migrate(db *sql.DB) error {
	return sqlitedb.Migrate(db, migrations[:schemaVersion], ErrSchemaVersion)
}

// prune deletes expired sessions, pending logins and forgotten throttle
// counters, at most every pruneEvery unless forced.
func (s *Store) prune(ctx context.Context, force bool) error {
	now := s.now()
	s.pruneMu.Lock()
	if !force && now.Sub(s.lastPrune) < pruneEvery {
		s.pruneMu.Unlock()
		return nil
	}
	s.lastPrune = now
	s.pruneMu.Unlock()
	ms := now.UnixMilli()
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`DELETE FROM sessions WHERE last_seen < ?`, ms - s.cfg.IdleTimeout.Milliseconds()},
		{`DELETE FROM sessions WHERE created < ?`, ms - s.cfg.AbsoluteTimeout.Milliseconds()},
		{`DELETE FROM pending WHERE expires < ?`, ms},
		{`DELETE FROM throttle WHERE last_failure < ?`, ms - s.cfg.Throttle.Forget.Milliseconds()},
	} {
		if _, err := s.db.ExecContext(ctx, q.sql, q.arg); err != nil {
			return fmt.Errorf("pruning accounts database: %w", err)
		}
	}
	return nil
}

// tx runs f in a transaction, committing if it returns nil.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

// Snapshot writes a consistent copy of the database to path, for a backup, while it stays
// in use. The copy keeps the accounts and leaves out who is logged in (see ForgetSessions).
func (s *Store) Snapshot(ctx context.Context, path string) error {
	if err := sqlitedb.Snapshot(ctx, s.cfg.Path, path); err != nil {
		return err
	}
	return ForgetSessions(ctx, path)
}

// ForgetSessions removes from the database file at path, which no Store has open, what
// belongs to the moment rather than to the accounts: sessions, logins waiting for their
// second factor, login throttling and the first-start setup token; VACUUM then leaves none
// of their bytes in the file. A backup made this way, or restored through it, logs nobody
// in: whoever held a session when it was made must log in again, with the accounts as the
// backup has them.
func ForgetSessions(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{"DELETE FROM sessions", "DELETE FROM pending", "DELETE FROM throttle", "DELETE FROM setup", "VACUUM"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("forgetting the sessions in %s: %s: %w", path, q, err)
		}
	}
	return nil
}
