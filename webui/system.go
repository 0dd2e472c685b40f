package webui

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/tlscert"
)

// The system page: configuration versions with their diffs and roll-back, the web UI's
// certificate (fingerprint, upload, back to self-signed), the clock, and restart. Backup and
// restore live in backup.go.

// Versions lists and reads the kept configuration versions. *config.Store is one.
type Versions interface {
	Versions() ([]config.Version, error)
	Load(version int) ([]byte, *config.Config, error)
}

// systemRoutes are the routes of the system page; all need SystemManage.
func (s *Server) systemRoutes() []route {
	return []route{
		{"GET /system", auth.SystemManage, s.handleSystem},
		{"GET /system/versions/{n}", auth.SystemManage, s.handleVersion},
		{"POST /system/versions/{n}/rollback", auth.SystemManage, s.handleRollback},
		{"POST /system/certificate", auth.SystemManage, s.handleCertificate},
		{"POST /system/certificate/regenerate", auth.SystemManage, s.handleRegenerate},
		{"POST /system/restart", auth.SystemManage, s.handleRestart},
		{"POST /system/backup", auth.SystemManage, s.handleBackup},
		{"POST /system/restore", auth.SystemManage, s.handleRestore},
	}
}

// systemPageFiles are the templates of the system page.
var systemPageFiles = []string{"system", "version"}

type systemData struct {
	Versions    []config.Version
	Current     int
	Cert        *tlscert.Info
	Now, UTC    string
	Zone        string
	Time        *Component // the clock's state, from the status
	Restarting  bool
	Done        string
	CanRestart  bool
	CanBackup   bool
	Status      Status
	VersionsErr string
}

func (s *Server) systemData(r *http.Request) systemData {
	loc := s.location()
	now := time.Now()
	d := systemData{Now: now.In(loc).Format("Monday 2 January 2006, 15:04:05 MST"), UTC: now.UTC().Format(time.RFC3339),
		Zone: loc.String(), CanRestart: s.cfg.Restart != nil, CanBackup: s.cfg.Backup != nil}
	if s.cfg.Versions != nil {
		vs, err := s.cfg.Versions.Versions()
		if err != nil {
			s.cfg.Logger.Error("listing configuration versions", "err", err)
			d.VersionsErr = "The configuration versions could not be read: " + err.Error()
		}
		d.Versions = vs
		if len(vs) > 0 {
			d.Current = vs[0].Number
		}
	}
	if s.cfg.Certificate != nil {
		info := s.cfg.Certificate.Info()
		d.Cert = &info
	}
	d.Status = s.cfg.Status(r.Context())
	for i, c := range d.Status.Components {
		if c.Name == "time" {
			d.Time = &d.Status.Components[i]
		}
	}
	return d
}

// systemDone are the notices after the system page's actions.
var systemDone = map[string]string{
	"certificate": "The new certificate is in use. Browsers will show its details from the next connection.",
	"regenerated": "A new self-signed certificate is in use. Check its fingerprint below when the browser warns.",
	"restart":     "schoolgate is restarting. This page reloads itself in a few seconds.",
	"restore":     "The backup was checked and is being restored: schoolgate restarts to apply it, and this page reloads itself. The files it replaced are kept in the data directory.",
}

func (s *Server) handleSystem(w http.ResponseWriter, r *http.Request) {
	d := s.systemData(r)
	d.Done = systemDone[r.URL.Query().Get("done")]
	s.render(w, r, http.StatusOK, "system", page{Title: "System", Data: d, fieldErrs: map[string]string{}, Form: map[string]string{}})
}

// versionData is what version.html shows: one version, its diffs to the one before and to
// the current one.
type versionData struct {
	Base                string // fingerprint of the current configuration, for the roll-back form
	Version             config.Version
	Current             int
	FromPrevious, ToNow []diffLine
	Previous            int
}

func (s *Server) versionNumber(w http.ResponseWriter, r *http.Request) (config.Version, []config.Version, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if s.cfg.Versions == nil || err != nil || n <= 0 {
		s.renderMessage(w, r, http.StatusNotFound, "No such version", "There is no configuration version with that number.")
		return config.Version{}, nil, false
	}
	vs, err := s.cfg.Versions.Versions()
	if err != nil {
		s.renderMessage(w, r, http.StatusInternalServerError, "Versions", "The configuration versions could not be read: "+err.Error())
		return config.Version{}, nil, false
	}
	i := slices.IndexFunc(vs, func(v config.Version) bool { return v.Number == n })
	if i < 0 {
		s.renderMessage(w, r, http.StatusNotFound, "No such version", fmt.Sprintf("Version %d is not kept (only the last %d are).", n, len(vs)))
		return config.Version{}, nil, false
	}
	return vs[i], vs, true
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	v, vs, ok := s.versionNumber(w, r)
	if !ok {
		return
	}
	s.renderVersion(w, r, http.StatusOK, v, vs, page{fieldErrs: map[string]string{}, Form: map[string]string{}})
}

func (s *Server) renderVersion(w http.ResponseWriter, r *http.Request, status int, v config.Version, vs []config.Version, p page) {
	d := versionData{Version: v, Current: vs[0].Number}
	if cur, err := s.cfg.Config.EditableConfig(); err == nil {
		d.Base = fingerprint(cur)
	}
	body, _, err := s.cfg.Versions.Load(v.Number)
	if err != nil {
		s.renderMessage(w, r, http.StatusInternalServerError, "Version", err.Error())
		return
	}
	name := func(n int) string { return fmt.Sprintf("version %d", n) }
	if i := slices.IndexFunc(vs, func(x config.Version) bool { return x.Number < v.Number }); i >= 0 {
		d.Previous = vs[i].Number
		if prev, _, err := s.cfg.Versions.Load(vs[i].Number); err == nil {
			d.FromPrevious = diffLines(config.Diff(name(vs[i].Number), name(v.Number), prev, body))
		}
	}
	if v.Number != d.Current {
		if cur, _, err := s.cfg.Versions.Load(d.Current); err == nil {
			d.ToNow = diffLines(config.Diff(name(d.Current)+" (current)", name(v.Number), cur, body))
		}
	}
	p.Title, p.Data = fmt.Sprintf("Configuration version %d", v.Number), d
	s.render(w, r, status, "version", p)
}

// handleRollback saves an old version as the new current one, through the daemon, so it is
// checked, applied and audited like any change.
func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	v, vs, ok := s.versionNumber(w, r)
	if !ok {
		return
	}
	p := page{fieldErrs: map[string]string{}, Form: map[string]string{"reason": r.PostFormValue("reason")}}
	body, _, err := s.cfg.Versions.Load(v.Number)
	if err == nil {
		var cfg *config.Config
		if cfg, err = config.Load(body); err == nil {
			cur, cerr := s.cfg.Config.EditableConfig()
			if cerr != nil {
				err = cerr
			} else {
				s.saveConfig(w, r, cfg, fingerprint(cur), "version", pageWithVersion(p, v, vs, fingerprint(cur)),
					fmt.Sprintf("rolled back to configuration version %d (%s, by %s)", v.Number, v.Time.In(s.location()).Format("2 Jan 15:04"), v.Author), "/system")
				return
			}
		}
	}
	p.Error = "This version cannot be restored: " + err.Error()
	s.renderVersion(w, r, http.StatusUnprocessableEntity, v, vs, p)
}

// pageWithVersion fills the page data saveConfig shows again if the roll-back is refused.
func pageWithVersion(p page, v config.Version, vs []config.Version, base string) page {
	d := versionData{Version: v, Current: vs[0].Number, Base: base}
	p.Title, p.Data = fmt.Sprintf("Configuration version %d", v.Number), d
	return p
}

// handleCertificate installs an uploaded certificate and key.
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Certificate == nil {
		s.renderMessage(w, r, http.StatusConflict, "Certificate", "The web UI is not served over HTTPS (http.tls is off), so there is no certificate to replace.")
		return
	}
	// The form was read, within maxFormBytes, for its CSRF token: a certificate chain and
	// its key are a few kilobytes.
	read := func(field string) ([]byte, error) {
		f, _, err := r.FormFile(field)
		if errors.Is(err, http.ErrMissingFile) {
			return []byte(r.PostFormValue(field + "_text")), nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, tlscert.MaxPEMSize+1))
	}
	p := page{fieldErrs: map[string]string{}, Form: map[string]string{}}
	certPEM, err := read("cert")
	var keyPEM []byte
	if err == nil {
		keyPEM, err = read("key")
	}
	if err != nil {
		p.Error = "The files could not be read: " + err.Error()
	} else {
		info, err := s.cfg.Certificate.Install(certPEM, keyPEM)
		if err == nil {
			sess := sessionFrom(r)
			s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "system.certificate",
				Object: "web certificate", Summary: fmt.Sprintf("certificate for %s installed (SHA-256 %s, valid until %s)",
					strings.Join(info.DNSNames, ", "), info.Fingerprint, info.NotAfter.Format("2 Jan 2006"))})
			http.Redirect(w, r, "/system?done=certificate", http.StatusSeeOther)
			return
		}
		field := "cert"
		if errors.Is(err, tlscert.ErrNoKey) || errors.Is(err, tlscert.ErrBadKey) || errors.Is(err, tlscert.ErrWeakKey) || errors.Is(err, tlscert.ErrKeyMismatch) {
			field = "key"
		}
		if errors.Is(err, tlscert.ErrRejected) {
			p.fieldErrs[field] = err.Error()
			p.Error = "The certificate was not installed; the one in use stays."
		} else {
			s.cfg.Logger.Error("installing the certificate", "err", err)
			p.Error = "The certificate could not be saved: " + err.Error()
		}
	}
	p.Title, p.Data = "System", s.systemData(r)
	s.render(w, r, http.StatusUnprocessableEntity, "system", p)
}

func (s *Server) handleRegenerate(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Certificate == nil {
		s.renderMessage(w, r, http.StatusConflict, "Certificate", "The web UI is not served over HTTPS (http.tls is off).")
		return
	}
	info, err := s.cfg.Certificate.Regenerate()
	if err != nil {
		s.cfg.Logger.Error("making a new certificate", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Certificate", "A new certificate could not be made: "+err.Error())
		return
	}
	sess := sessionFrom(r)
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "system.certificate",
		Object: "web certificate", Summary: "new self-signed certificate made (SHA-256 " + info.Fingerprint + ")"})
	http.Redirect(w, r, "/system?done=regenerated", http.StatusSeeOther)
}

// handleRestart restarts the daemon, after a reason: network changes (segments, the WAN)
// take effect then.
func (s *Server) handleRestart(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Restart == nil {
		s.renderMessage(w, r, http.StatusConflict, "Restart", "This schoolgate cannot restart itself.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if msg := checkReason(reason); msg != "" {
		p := page{Title: "System", Data: s.systemData(r), fieldErrs: map[string]string{"restart-reason": msg},
			Form: map[string]string{}, Error: "schoolgate was not restarted."}
		s.render(w, r, http.StatusUnprocessableEntity, "system", p)
		return
	}
	sess := sessionFrom(r)
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "system.restart",
		Summary: "restart requested", Reason: reason})
	s.renderRestarting(w, r, "restart")
}

// renderRestarting answers with the system page saying why schoolgate restarts, which
// reloads itself once it is back, and then restarts: a redirect would be followed after the
// server had gone.
func (s *Server) renderRestarting(w http.ResponseWriter, r *http.Request, done string) {
	d := s.systemData(r)
	d.Done = systemDone[done]
	s.render(w, r, http.StatusOK, "system", page{Title: "System", Data: d, Refresh: "10;url=/system",
		fieldErrs: map[string]string{}, Form: map[string]string{}})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.cfg.Restart()
}
