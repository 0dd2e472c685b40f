package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/backup"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// Backup and restore of the configuration and state.
//
// A backup holds the configuration file and its kept versions, consistent copies of the
// accounts, audit trail and exceptions databases (and, if asked, the event log), and the web
// UI's certificate, encrypted with a passphrase (firmware/backup). A restore is checked in full
// and staged in DATA-DIR/restore-pending; the daemon then restarts, and before it opens
// anything it moves the files it would replace to DATA-DIR/before-restore-<time> and the
// staged ones into place. Nothing is half-restored: a bad file or a wrong passphrase changes
// nothing, and the files replaced are kept.

const (
	restorePending = "restore-pending"
	restoreInfo    = "restored-from.json" // written when a restore is applied, read at start
)

// stateDBs are the databases a backup holds, in the data directory.
var stateDBs = []string{"auth.db", "audit.db", "exceptions.db", "devices.db"}

// backupTargets maps names inside a backup to where they live.
func (o options) backupTargets(name string) (string, bool) {
	switch {
	case name == "config/config.yaml":
		return o.configFile(), true
	case strings.HasPrefix(name, "config/versions/") && !strings.Contains(name[len("config/versions/"):], "/"):
		return filepath.Join(o.dataDir, "config-versions", filepath.Base(name)), true
	case strings.HasPrefix(name, "state/") && (slices.Contains(stateDBs, filepath.Base(name)) || filepath.Base(name) == "events.db"):
		return filepath.Join(o.dataDir, filepath.Base(name)), true
	case name == "tls/web.crt" || name == "tls/web.key":
		return filepath.Join(o.dataDir, name), true
	}
	return "", false
}

// Backup writes an encrypted backup to w. withEvents adds the event log, which can be large.
func (d *daemon) Backup(ctx context.Context, w io.Writer, passphrase string, withEvents bool) error {
	tmp, err := os.MkdirTemp(d.opts.dataDir, ".backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfgPath := d.store.Path()
	if _, err := os.Stat(cfgPath); errors.Is(err, fs.ErrNotExist) {
		// The demo before its first save runs the embedded configuration: back that up.
		d.mu.Lock()
		data, err := config.Marshal(d.base)
		d.mu.Unlock()
		if err != nil {
			return err
		}
		cfgPath = filepath.Join(tmp, "config.yaml")
		if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
			return err
		}
	}
	files := []backup.File{{Name: "config/config.yaml", Path: cfgPath}}
	vs, err := d.store.Versions()
	if err != nil {
		return err
	}
	for _, v := range vs {
		name := fmt.Sprintf("%06d.yaml", v.Number)
		files = append(files, backup.File{Name: "config/versions/" + name, Path: filepath.Join(d.opts.dataDir, "config-versions", name)})
	}
	type snapshotter interface {
		Snapshot(context.Context, string) error
	}
	dbs := []struct {
		name string
		s    snapshotter
	}{{"auth.db", d.auth}, {"audit.db", d.audit}, {"exceptions.db", d.exceptions}, {"devices.db", d.devices}}
	if withEvents {
		dbs = append(dbs, struct {
			name string
			s    snapshotter
		}{"events.db", d.events})
	}
	for _, db := range dbs {
		p := filepath.Join(tmp, db.name)
		if err := db.s.Snapshot(ctx, p); err != nil {
			return err
		}
		files = append(files, backup.File{Name: "state/" + db.name, Path: p})
	}
	for _, f := range []string{"web.crt", "web.key"} {
		p := filepath.Join(d.opts.dataDir, "tls", f)
		if _, err := os.Stat(p); err == nil {
			files = append(files, backup.File{Name: "tls/" + f, Path: p})
		}
	}
	d.mu.Lock()
	name := d.cfg.Appliance.Name
	d.mu.Unlock()
	return backup.Write(w, passphrase, backup.Manifest{Appliance: name, FirmwareVersion: version}, files)
}

// Restore checks a backup and stages it; it is applied at the next start (the caller
// restarts). It returns the backup's manifest.
func (d *daemon) Restore(ctx context.Context, r io.Reader, passphrase string) (backup.Manifest, error) {
	staging, err := os.MkdirTemp(d.opts.dataDir, ".restore-")
	if err != nil {
		return backup.Manifest{}, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
		}
	}()
	m, err := backup.Read(r, passphrase, staging, backup.Limits{})
	if err != nil {
		return m, err
	}
	if !slices.ContainsFunc(m.Files, func(f backup.FileInfo) bool { return f.Name == "config/config.yaml" }) {
		return m, errors.New("the backup holds no configuration")
	}
	for _, f := range m.Files {
		if _, known := d.opts.backupTargets(f.Name); !known {
			return m, fmt.Errorf("the backup holds %q, which this version of schoolgate does not know where to put", f.Name)
		}
	}
	raw, err := os.ReadFile(filepath.Join(staging, "config", "config.yaml"))
	if err != nil {
		return m, err
	}
	cfg, err := config.Load(raw)
	if err != nil {
		return m, fmt.Errorf("the backup's configuration is not valid for this version of schoolgate:\n%w", err)
	}
	// A backup is a file from elsewhere: its configuration may not read files outside the
	// configuration's folder, whose lines the lists page would show.
	for _, l := range cfg.Lists {
		if l.File != "" && !filepath.IsLocal(l.File) {
			return m, fmt.Errorf("the backup's list %q reads %q, outside the configuration's folder: restore refused", l.Name, l.File)
		}
	}
	for _, u := range cfg.DNS.Upstreams {
		if u.TLSCA != "" && !filepath.IsLocal(u.TLSCA) {
			return m, fmt.Errorf("the backup's upstream %s reads %q, outside the configuration's folder: restore refused", u.Address, u.TLSCA)
		}
	}
	info, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(staging, restoreInfo), info, 0o600); err != nil {
		return m, err
	}
	pending := filepath.Join(d.opts.dataDir, restorePending)
	if err := os.RemoveAll(pending); err != nil {
		return m, err
	}
	if err := os.Rename(staging, pending); err != nil {
		return m, err
	}
	ok = true
	return m, nil
}

// applyPendingRestore moves a staged restore into place before the daemon opens anything.
// The files it replaces (and their SQLite journals) go to before-restore-<time>.
func applyPendingRestore(o options, logger *slog.Logger) (*backup.Manifest, error) {
	pending := filepath.Join(o.dataDir, restorePending)
	raw, err := os.ReadFile(filepath.Join(pending, restoreInfo))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m backup.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading the pending restore: %w", err)
	}
	aside := filepath.Join(o.dataDir, "before-restore-"+time.Now().UTC().Format("20060102-150405"))
	move := func(from, to string) error {
		if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
			return err
		}
		err := os.Rename(from, to)
		if errors.Is(err, syscall.EXDEV) { // the config file on another file system
			err = copyFile(from, to)
			if err == nil {
				err = os.RemoveAll(from)
			}
		}
		return err
	}
	// Every move is remembered, so that a failure half-way puts everything back as it was.
	type moved struct{ from, to string }
	var done []moved
	undo := func(err error) (*backup.Manifest, error) {
		for i := len(done) - 1; i >= 0; i-- {
			if uerr := move(done[i].to, done[i].from); uerr != nil {
				logger.Error("undoing the restore", "file", done[i].from, "err", uerr)
			}
		}
		return nil, err
	}
	// The whole set is replaced: versions and databases the backup does not hold go aside
	// too, so the restored state is exactly the backup's.
	var current []string
	current = append(current, o.configFile(), filepath.Join(o.dataDir, "config-versions"), filepath.Join(o.dataDir, "tls"))
	for _, db := range append(slices.Clone(stateDBs), "events.db") {
		if slices.ContainsFunc(m.Files, func(f backup.FileInfo) bool { return f.Name == "state/"+db }) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				current = append(current, filepath.Join(o.dataDir, db+suffix))
			}
		}
	}
	for _, p := range current {
		if _, err := os.Lstat(p); err == nil {
			to := filepath.Join(aside, filepath.Base(p))
			if err := move(p, to); err != nil {
				return undo(fmt.Errorf("moving %s aside: %w", p, err))
			}
			done = append(done, moved{p, to})
		}
	}
	for _, f := range m.Files {
		to, _ := o.backupTargets(f.Name)
		from := filepath.Join(pending, filepath.FromSlash(f.Name))
		if err := move(from, to); err != nil {
			return undo(fmt.Errorf("restoring %s: %w", f.Name, err))
		}
		done = append(done, moved{from, to})
	}
	// Backups made before sessions were left out of them still hold some.
	if slices.ContainsFunc(m.Files, func(f backup.FileInfo) bool { return f.Name == "state/auth.db" }) {
		if err := auth.ForgetSessions(context.Background(), filepath.Join(o.dataDir, "auth.db")); err != nil {
			return undo(err)
		}
	}
	if err := os.RemoveAll(pending); err != nil {
		return nil, err
	}
	logger.Warn("restored a backup", "made", m.Created, "appliance", m.Appliance, "firmware", m.FirmwareVersion,
		"files", len(m.Files), "replaced_files_kept_in", aside)
	return &m, nil
}

// copyFile copies a regular file, or a directory of them, keeping modes.
func copyFile(from, to string) error {
	fi, err := os.Stat(from)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if err := os.MkdirAll(to, fi.Mode().Perm()); err != nil {
			return err
		}
		entries, err := os.ReadDir(from)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, fi.Mode().Perm())
}
