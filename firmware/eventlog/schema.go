package eventlog

import (
	"database/sql"
	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
	"time"
)

// schemaVersion is stored in PRAGMA user_version. Each entry of migrations
// takes the schema from version i to i+1; append, never edit.
const schemaVersion = 3

var migrations = []string{
	// 0 → 1
	`
-- id = unix_seconds << idShift | sequence within that second: the primary key
-- is the time order, so newest-first pages, time ranges and retention are
-- range walks of the table b-tree, and no separate time index (or time
-- column) is stored. Every secondary index holds the id, so each one is also
-- ordered by time within a key.
--
-- String columns hold ids from the dictionary tables; NULL means "" and costs
-- one header byte. action_id is NULL for "allow", the common case, so the
-- partial index on it only holds the decisions the DSL usually asks about.
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	client      BLOB,
	mac_id      INTEGER,
	device_id   INTEGER,
	segment_id  INTEGER,
	profile_id  INTEGER,
	source_id   INTEGER,
	name_id     INTEGER,
	qtype_id    INTEGER,
	action_id   INTEGER,
	tier_id     INTEGER,
	category_id INTEGER,
	list_id     INTEGER,
	rule_id     INTEGER,
	count       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX events_segment  ON events(segment_id);
CREATE INDEX events_profile  ON events(profile_id);
CREATE INDEX events_client   ON events(client);
CREATE INDEX events_mac      ON events(mac_id)      WHERE mac_id IS NOT NULL;
CREATE INDEX events_name     ON events(name_id);
CREATE INDEX events_category ON events(category_id) WHERE category_id IS NOT NULL;
CREATE INDEX events_action   ON events(action_id)   WHERE action_id IS NOT NULL;

-- Names get their own table: there are many, and substring search scans the
-- distinct names (far fewer than events) before touching events.
CREATE TABLE names (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
);

-- Every other string (segment, profile, MAC, device, category, ...) is an atom.
CREATE TABLE atoms (
	id    INTEGER PRIMARY KEY,
	kind  INTEGER NOT NULL,
	value TEXT NOT NULL,
	UNIQUE (kind, value)
);

-- Hourly per-segment totals kept by the writer, so dashboards never count
-- millions of rows.
CREATE TABLE rollup (
	hour       INTEGER NOT NULL,
	segment_id INTEGER NOT NULL,
	queries    INTEGER NOT NULL,
	blocked    INTEGER NOT NULL,
	PRIMARY KEY (hour, segment_id)
) WITHOUT ROWID;
`,
	// 1 → 2
	`
-- The dashboard's top blocked names and categories over a week read only this
-- index (partial: blocked and rewritten decisions, a small share of events),
-- in time order within each action, never the table.
CREATE INDEX events_action_agg ON events(action_id, id, category_id, name_id, count) WHERE action_id IS NOT NULL;
`,
	// 2 → 3
	`
-- The schedule under which a profile blocked a category (social networks in lesson
-- time): NULL for every other decision, so it costs nothing there.
ALTER TABLE events ADD COLUMN schedule_id INTEGER;
`,
}

// idShift leaves 2^20 (about a million) ids per second. Ids stay below 2^53,
// so JavaScript in the web UI can hold them exactly, until the year 2255.
const idShift = 20

const idSeqMask = 1<<idShift - 1

func idOf(sec int64, seq int64) int64 { return sec<<idShift | seq }

func secOf(id int64) int64 { return id >> idShift }

func timeOf(id int64) time.Time { return time.Unix(secOf(id), 0) }

// Atom kinds. Stored in the database: never renumber.
const (
	kindMAC = iota + 1
	kindDevice
	kindSegment
	kindProfile
	kindSource
	kindQType
	kindAction
	kindTier
	kindCategory
	kindList
	kindRule
	kindSchedule
)

func migrate(db *sql.DB) error {
	return sqlitedb.Migrate(db, migrations[:schemaVersion], ErrSchemaVersion)
}
