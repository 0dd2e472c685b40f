package exceptions

import (
	"database/sql"

	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

// schemaVersion is stored in PRAGMA user_version. Each entry of migrations
// takes the schema from version i to i+1; append, never edit: files written
// by earlier firmware have already run the earlier entries.
const schemaVersion = 2

var migrations = []string{
	// 0 → 1
	`
-- One row per request, kept for good: the history of who asked for what,
-- who decided and why is what the DSL shows to governors and inspectors.
-- AUTOINCREMENT so that an ID, which audit entries name, is never reused.
-- Times are Unix milliseconds, UTC; NULL when not (yet) set. Durations are
-- milliseconds. The CHECKs repeat the package's validation, so a hand-edited
-- row cannot become something the policy engine misreads.
CREATE TABLE exceptions (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	scope        TEXT NOT NULL CHECK (scope IN ('profile', 'segment', 'device')),
	target       TEXT NOT NULL CHECK (target <> ''),
	domain       TEXT NOT NULL CHECK (domain <> ''),
	action       TEXT NOT NULL CHECK (action IN ('allow', 'block')),
	reason       TEXT NOT NULL,
	duration_ms  INTEGER NOT NULL CHECK (duration_ms > 0),
	status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'revoked', 'expired', 'withdrawn')),
	requested_by TEXT NOT NULL,
	source       TEXT NOT NULL CHECK (source IN ('ui', 'blockpage')),
	client_addr  TEXT NOT NULL DEFAULT '',
	client_mac   TEXT NOT NULL DEFAULT '',
	requested_ms INTEGER NOT NULL,
	decided_by   TEXT NOT NULL DEFAULT '',
	note         TEXT NOT NULL DEFAULT '',
	decided_ms   INTEGER,
	starts_ms    INTEGER,
	expires_ms   INTEGER,
	ended_by     TEXT NOT NULL DEFAULT '',
	end_note     TEXT NOT NULL DEFAULT '',
	ended_ms     INTEGER,
	CHECK (status NOT IN ('approved', 'revoked', 'expired') OR (starts_ms IS NOT NULL AND expires_ms > starts_ms))
);
-- Active, Expire and NextExpiry: the approved rows by expiry.
CREATE INDEX exceptions_status_expires ON exceptions(status, expires_ms);
-- List: newest first, optionally one requester's.
CREATE INDEX exceptions_requested ON exceptions(requested_ms);
CREATE INDEX exceptions_requested_by ON exceptions(requested_by, requested_ms);
-- RequestReview's deduplication and per-client cap.
CREATE INDEX exceptions_pending_reviews ON exceptions(client_addr, domain)
	WHERE source = 'blockpage' AND status = 'pending';
`,
	// 1 → 2
	`
-- What was asked, kept when an approval changes it (a shorter time, one device rather
-- than the whole profile): '' and NULL when the approval granted what was asked, or the
-- row was decided before this column existed.
ALTER TABLE exceptions ADD COLUMN asked_scope TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN asked_target TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN asked_duration_ms INTEGER;
`,
}

func migrate(db *sql.DB) error {
	return sqlitedb.Migrate(db, migrations[:schemaVersion], ErrSchemaVersion)
}
