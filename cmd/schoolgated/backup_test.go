package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/backup"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
	"github.com/schoolgate/schoolgate/webui"
)

// runDaemon starts a demo daemon in this process on free loopback ports.
func runDaemon(t *testing.T, dataDir string) *daemon {
	t.Helper()
	o := options{demo: true, dataDir: dataDir, listenDNS: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		listenHTTP: fmt.Sprintf("127.0.0.1:%d", freePort(t)), listenBlock: fmt.Sprintf("127.0.0.1:%d", freePort(t)), upstream: "127.0.0.1:9"}
	d, err := newDaemon(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(context.Background()); err != nil {
		d.close()
		t.Fatal(err)
	}
	return d
}

// TestBackupRestore: a backup taken on one box, restored onto a fresh one, brings back the
// configuration, the accounts, the exceptions and the audit trail, which still verifies and
// records the restore; a wrong passphrase changes nothing.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	d1 := runDaemon(t, t.TempDir())
	tok, err := d1.auth.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d1.auth.CreateFirst(ctx, tok, "r.patel", "purple-kettle-meadow-42"); err != nil {
		t.Fatal(err)
	}
	cfg, _ := d1.EditableConfig()
	cfg.Profiles[0].Allow = append(cfg.Profiles[0].Allow, "scratch.mit.edu")
	if _, err := d1.SaveConfig(ctx, cfg, webui.Change{Actor: "r.patel", Role: "technician", Summary: "allow scratch", Reason: "coding club"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.exceptions.Create(ctx, exceptions.Exception{Scope: "profile", Target: "pupils", Domain: "youtube.com",
		Action: "allow", Reason: "history lesson", Duration: 2 * time.Hour}, "r.patel"); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if err := d1.Backup(ctx, &file, "correct horse battery staple", false); err != nil {
		t.Fatal(err)
	}
	if err := d1.close(); err != nil {
		t.Fatal(err)
	}

	dir2 := t.TempDir()
	d2 := runDaemon(t, dir2)
	if _, err := d2.Restore(ctx, bytes.NewReader(file.Bytes()), "wrong horse battery staple"); !errors.Is(err, backup.ErrPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, restorePending)); err == nil {
		t.Fatal("a refused restore was staged")
	}
	m, err := d2.Restore(ctx, bytes.NewReader(file.Bytes()), "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if m.Appliance != "Demo School" {
		t.Errorf("manifest: %+v", m)
	}
	if err := d2.close(); err != nil {
		t.Fatal(err)
	}

	d3 := runDaemon(t, dir2) // the restart applies it
	defer d3.close()
	if accts, err := d3.auth.Accounts(ctx); err != nil || len(accts) != 1 || accts[0].Name != "r.patel" {
		t.Errorf("accounts after restore: %+v, %v", accts, err)
	}
	if active, _ := d3.exceptions.Active(ctx); len(active) != 1 || active[0].Domain != "youtube.com" {
		t.Errorf("exceptions after restore: %+v", active)
	}
	if got, _ := d3.EditableConfig(); !strings.Contains(strings.Join(got.Profiles[0].Allow, " "), "scratch.mit.edu") {
		t.Errorf("configuration after restore: %v", got.Profiles[0].Allow)
	}
	res, err := d3.audit.Verify(ctx)
	if err != nil || !res.OK {
		t.Errorf("the restored audit trail does not verify: %+v %v", res, err)
	}
	entries, _ := d3.audit.List(ctx, audit.Filter{Action: "system.restore.applied"})
	if len(entries) != 1 {
		t.Errorf("the restore is not in the audit trail: %+v", entries)
	}
	changes, _ := d3.audit.List(ctx, audit.Filter{Action: "config.change", Actor: "r.patel"})
	if len(changes) != 1 || changes[0].Reason != "coding club" {
		t.Errorf("the backed-up audit entries are not there: %+v", changes)
	}
	aside, _ := filepath.Glob(filepath.Join(dir2, "before-restore-*", "audit.db"))
	if len(aside) != 1 {
		t.Errorf("the replaced audit trail was not kept: %v", aside)
	}
}

// A restore that cannot be applied puts everything back and the appliance still starts.
func TestRestoreFailureLeavesThingsAsTheyWere(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d1 := runDaemon(t, dir)
	var file bytes.Buffer
	if err := d1.Backup(ctx, &file, "correct horse battery staple", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Restore(ctx, bytes.NewReader(file.Bytes()), "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	d1.close()
	before, _ := os.ReadFile(filepath.Join(dir, "audit.db"))
	// One staged file goes missing (a full disk, a pulled card): the apply fails half-way.
	if err := os.Remove(filepath.Join(dir, restorePending, "state", "exceptions.db")); err != nil {
		t.Fatal(err)
	}
	d2 := runDaemon(t, dir)
	defer d2.close()
	after, _ := os.ReadFile(filepath.Join(dir, "audit.db"))
	if len(before) == 0 || len(after) == 0 {
		t.Fatal("the audit trail is gone")
	}
	if failed, _ := filepath.Glob(filepath.Join(dir, "restore-failed-*")); len(failed) != 1 {
		t.Errorf("the failed restore was not put aside: %v", failed)
	}
	if res, err := d2.audit.Verify(ctx); err != nil || !res.OK {
		t.Errorf("the audit trail after a failed restore: %+v %v", res, err)
	}
}

// A crafted backup whose configuration reads a file outside its folder is refused.
func TestRestoreRefusesOutsideFiles(t *testing.T) {
	ctx := context.Background()
	d := runDaemon(t, t.TempDir())
	defer d.close()
	dir := t.TempDir()
	cfg := strings.Replace(string(demoYAMLForTest(t)), "file: lists/adult.txt", "file: /etc/shadow", 1)
	p := filepath.Join(dir, "config.yaml")
	os.WriteFile(p, []byte(cfg), 0o600)
	var file bytes.Buffer
	if err := backup.Write(&file, "correct horse battery staple", backup.Manifest{}, []backup.File{{Name: "config/config.yaml", Path: p}}); err != nil {
		t.Fatal(err)
	}
	_, err := d.Restore(ctx, bytes.NewReader(file.Bytes()), "correct horse battery staple")
	if err == nil || !strings.Contains(err.Error(), "outside the configuration's folder") {
		t.Errorf("restore of a config reading /etc/shadow: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.opts.dataDir, restorePending)); err == nil {
		t.Error("the refused backup was staged")
	}
}

func demoYAMLForTest(t *testing.T) []byte {
	t.Helper()
	b := config.DemoYAML()
	if !strings.Contains(string(b), "file: lists/adult.txt") {
		t.Fatal("the demo no longer has lists/adult.txt")
	}
	return b
}
