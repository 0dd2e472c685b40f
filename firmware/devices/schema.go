package devices

import (
	"database/sql"

	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

// schemaVersion is stored in PRAGMA user_version. Each entry of migrations takes the schema
// from version i to i+1; append, never edit: files written by earlier firmware have already
// run the earlier entries.
const schemaVersion = 1

var migrations = []string{
	// 0 → 1
	`
-- One row per device. Times are Unix milliseconds, UTC. Addresses are netip text, ''
-- when none was seen; each has the time it was last seen, so a late sighting (an older
-- neighbour entry read after a newer one) does not replace a newer address.
-- ipv6_ll says ipv6 is link-local: kept only until a global or unique local one is seen.
-- The CHECKs repeat the package's validation, so a hand-edited row cannot be misread.
CREATE TABLE devices (
	mac      TEXT PRIMARY KEY CHECK (length(mac) = 17 AND mac = lower(mac)),
	vendor   TEXT NOT NULL DEFAULT '',
	segment  TEXT NOT NULL DEFAULT '',
	ipv4     TEXT NOT NULL DEFAULT '',
	ipv4_ms  INTEGER NOT NULL DEFAULT 0,
	ipv6     TEXT NOT NULL DEFAULT '',
	ipv6_ms  INTEGER NOT NULL DEFAULT 0,
	ipv6_ll  INTEGER NOT NULL DEFAULT 0 CHECK (ipv6_ll IN (0, 1)),
	first_ms INTEGER NOT NULL,
	last_ms  INTEGER NOT NULL CHECK (last_ms >= first_ms)
) WITHOUT ROWID;
-- List: newest first, optionally one segment's; Prune: the oldest.
CREATE INDEX devices_last ON devices(last_ms);
CREATE INDEX devices_segment_last ON devices(segment, last_ms);
`,
}

func migrate(db *sql.DB) error {
	return sqlitedb.Migrate(db, migrations[:schemaVersion], ErrSchemaVersion)
}
