package audit

import (
	"database/sql"
	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

// schemaVersion is stored in PRAGMA user_version. Each entry of migrations
// takes the schema from version i to i+1; append, never edit: the hashes of
// existing entries depend on what the columns held when they were written.
const schemaVersion = 1

var migrations = []string{
	// 0 → 1
	`
-- seq is the rowid: newest first is a backward walk of the table b-tree.
-- Seq values are given by Append (head.seq + 1), never by SQLite, so a gap
-- left by a deleted row is never filled by a later entry.
-- time_ms is Unix milliseconds, UTC; the hash covers its text form.
CREATE TABLE entries (
	seq       INTEGER PRIMARY KEY,
	time_ms   INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	role      TEXT NOT NULL,
	address   TEXT NOT NULL,
	action    TEXT NOT NULL,
	object    TEXT NOT NULL,
	summary   TEXT NOT NULL,
	detail    TEXT NOT NULL,
	reason    TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
CREATE INDEX entries_time   ON entries(time_ms);
CREATE INDEX entries_actor  ON entries(actor);
CREATE INDEX entries_action ON entries(action);
CREATE INDEX entries_object ON entries(object);

-- The trail is append-only. These triggers do not stop anyone who can
-- write the file (they can drop them); they stop a future code path or a
-- hand-typed statement from changing history by mistake.
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;

-- The newest entry as Append last wrote it, updated in the same
-- transaction. Append chains from here rather than from the newest row, so
-- rows removed from the tail leave a gap that Verify reports, and Verify
-- compares it with the newest row. It lives in the same file, so it only
-- catches someone who does not know about it; docs/audit.md says so.
CREATE TABLE head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO head (id, seq, hash) VALUES (1, 0, '` + Genesis + `');
`,
}

func migrate(db *sql.DB) error {
	return sqlitedb.Migrate(db, migrations[:schemaVersion], ErrSchemaVersion)
}
