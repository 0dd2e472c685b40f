package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

// A snapshot taken while a transaction is open holds what was committed, not the
// transaction's half-done work, and the writer is not held up.
func TestSnapshotIsConsistent(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	db, err := Open(src, "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)", 2, errors.New("corrupt"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy.db")
	if err := Snapshot(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	cp, _ := sql.Open("sqlite", "file:"+dst)
	defer cp.Close()
	var n int
	if err := cp.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Errorf("copy has %d rows (%v), want the 2 committed before it", n, err)
	}
	if err := Snapshot(context.Background(), src, dst); err == nil {
		t.Error("a snapshot over an existing file was allowed")
	}
}
