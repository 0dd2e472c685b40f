// Package sqlitedb holds what schoolgate's SQLite stores (event log, audit trail, accounts)
// share: opening a file with its pragmas, telling a corrupt file from other failures, and
// schema migrations numbered by PRAGMA user_version. Each store keeps its own pragmas,
// schema and error values.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Open opens the SQLite file at path with params (a DSN query such as
// "_pragma=journal_mode(WAL)&…"), allows maxOpen connections and touches the file at once,
// since Open is lazy: a garbage file fails here, not at the first query. A file that is not a
// database, or is corrupt, gives an error wrapping corrupt (the caller's sentinel), so the
// daemon can tell the operator to move it aside.
func Open(path, params string, maxOpen int, corrupt error) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+params)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, Classify(err, corrupt)
	}
	return db, nil
}

// Classify wraps corrupt around SQLite's "not a database" and corruption errors.
func Classify(err, corrupt error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %v", corrupt, err)
		}
	}
	return err
}

// Migrate brings the schema to version len(migrations): migrations[i] takes it from i to
// i+1, each in its own transaction with the new PRAGMA user_version. A file from newer
// firmware gives an error wrapping tooNew and is left as it is.
func Migrate(db *sql.DB, migrations []string, tooNew error) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: file has %d, this firmware knows up to %d", tooNew, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if err := migrateOne(db, migrations[v], v+1); err != nil {
			return fmt.Errorf("migrating schema to %d: %w", v+1, err)
		}
	}
	return nil
}

func migrateOne(db *sql.DB, stmts string, to int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(stmts); err != nil {
		return err
	}
	// PRAGMA takes no parameters; to is our own integer.
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", to)); err != nil {
		return err
	}
	return tx.Commit()
}

// Snapshot writes a consistent copy of the database file src to dst (which must not exist)
// while it stays in use. It reads through a connection of its own, so the owner's writer is
// not held up, and SQLite's VACUUM INTO reads one snapshot of the file (WAL readers run
// beside the writer), so the copy holds either all of a transaction or none of it.
func Snapshot(ctx context.Context, src, dst string) error {
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}
