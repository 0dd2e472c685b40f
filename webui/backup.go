package webui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/backup"
)

// Backup and restore on the system page. A backup holds the configuration, accounts, audit
// trail, exceptions and certificate (and the event log if asked), encrypted with a
// passphrase; it holds personal data, so taking one is recorded. A restore is checked in
// full, staged, and applied by a restart.

// Backuper makes and restores backups; the daemon is one.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, passphrase string, withEvents bool) error
	Restore(ctx context.Context, r io.Reader, passphrase string) (backup.Manifest, error)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	longResponse(w)
	pass, again := r.PostFormValue("passphrase"), r.PostFormValue("passphrase2")
	errs := map[string]string{}
	switch {
	case len([]rune(pass)) < backup.MinPassphraseLength:
		errs["passphrase"] = fmt.Sprintf("Use at least %d characters: a few unrelated words. Keep it apart from the file: without it the backup cannot be opened.", backup.MinPassphraseLength)
	case pass != again:
		errs["passphrase2"] = "The two passphrases differ."
	}
	if msg := checkReason(strings.TrimSpace(r.PostFormValue("reason"))); msg != "" {
		errs["backup-reason"] = msg
	}
	if len(errs) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, "system", page{Title: "System", Data: s.systemData(r), fieldErrs: errs,
			Form: map[string]string{"backup-reason": r.PostFormValue("reason")}, Error: "No backup was made."})
		return
	}
	sess := sessionFrom(r)
	events := r.PostFormValue("events") == "on"
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "system.backup",
		Summary: fmt.Sprintf("backup downloaded (event log included: %v)", events), Reason: strings.TrimSpace(r.PostFormValue("reason"))})
	name := "schoolgate"
	if cfg, err := s.cfg.Config.EditableConfig(); err == nil && cfg.Appliance.Name != "" {
		name = strings.Trim(unsafeName.ReplaceAllString(cfg.Appliance.Name, "-"), "-")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.sgbackup"`, name, time.Now().In(s.location()).Format("2006-01-02-1504")))
	if err := s.cfg.Backup.Backup(r.Context(), w, pass, events); err != nil {
		// The headers are gone; the truncated file fails to open, and the log says why.
		s.cfg.Logger.Error("making a backup", "err", err)
	}
}

func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) {
	errs := map[string]string{}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if msg := checkReason(reason); msg != "" {
		errs["restore-reason"] = msg
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		errs["file"] = "Choose the backup file."
	}
	if len(errs) == 0 {
		defer f.Close()
		m, err := s.cfg.Backup.Restore(r.Context(), f, r.PostFormValue("restore-passphrase"))
		if err == nil {
			sess := sessionFrom(r)
			s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "system.restore", Reason: reason,
				Summary: fmt.Sprintf("restore of the backup of %s made on %s (%d files) staged; schoolgate restarts to apply it",
					m.Appliance, m.Created.In(s.location()).Format("2 Jan 2006 15:04"), len(m.Files))})
			if s.cfg.Restart == nil {
				http.Redirect(w, r, "/system?done=restore", http.StatusSeeOther)
				return
			}
			s.renderRestarting(w, r, "restore")
			return
		}
		switch {
		case errors.Is(err, backup.ErrPassphrase):
			errs["restore-passphrase"] = "The passphrase does not open this backup."
		case errors.Is(err, backup.ErrFormat), errors.Is(err, backup.ErrCorrupt), errors.Is(err, backup.ErrTooLarge):
			errs["file"] = "This file is not a usable schoolgate backup: " + err.Error()
		default:
			errs["file"] = err.Error()
		}
	}
	s.render(w, r, http.StatusUnprocessableEntity, "system", page{Title: "System", Data: s.systemData(r), fieldErrs: errs,
		Form: map[string]string{"restore-reason": r.PostFormValue("reason")}, Error: "Nothing was restored."})
}
