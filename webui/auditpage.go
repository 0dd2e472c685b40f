package webui

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
)

// The audit trail page: every change with who, when, what (a diff for configuration
// changes) and why; filters; "verify" walks the hash chain and names the first broken
// entry; "export" downloads the file `schoolgate audit verify` checks offline.

// auditActions are the filter's choices: prefixes of the actions recorded.
var auditActions = []struct{ Value, Label string }{
	{"", "all changes"},
	{"config.", "configuration"},
	{"exception.", "exceptions"},
	{"account.", "accounts"},
	{"list.", "lists"},
	{"audit.", "audit trail"},
	{"logs.", "log downloads"},
	{"system.", "backups, restores, restarts, certificate"},
	{"daemon.", "start and stop"},
}

type auditData struct {
	Entries []auditRow
	Actions []struct{ Value, Label string }
	Older   string // link to the next page, "" at the end
	Verify  *audit.Result
	Problem string // the verification's problem, without the entry number the page names
	Zone    string
}

type auditRow struct {
	audit.Entry
	Local string // time in the appliance's zone
	Diff  []diffLine
}

// diffLine is one line of a unified diff, with its kind for colour and screen readers.
type diffLine struct {
	Kind string // "add", "del", "hunk" or ""
	Text string
}

func diffLines(detail string) []diffLine {
	if !strings.HasPrefix(detail, "--- ") {
		return nil
	}
	var out []diffLine
	for line := range strings.Lines(detail) {
		line = strings.TrimSuffix(line, "\n")
		k := ""
		switch {
		case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
		case strings.HasPrefix(line, "+"):
			k = "add"
		case strings.HasPrefix(line, "-"):
			k = "del"
		case strings.HasPrefix(line, "@@"):
			k = "hunk"
		}
		out = append(out, diffLine{k, line})
	}
	return out
}

// location is the appliance's time zone for showing times; UTC if it cannot be read.
func (s *Server) location() *time.Location {
	cfg, err := s.cfg.Config.EditableConfig()
	if err == nil {
		if loc, err := time.LoadLocation(cfg.Appliance.Timezone); err == nil {
			return loc
		}
	}
	return time.UTC
}

// auditFilter reads the filter fields; a bad date is reported next to its field.
func auditFilter(q url.Values, loc *time.Location, errs map[string]string) audit.Filter {
	f := audit.Filter{Actor: strings.TrimSpace(q.Get("actor")), Action: q.Get("action"), Limit: 50}
	if o := strings.TrimSpace(q.Get("object")); o != "" {
		f.Object = o
	}
	for _, k := range []string{"from", "to"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		d, err := time.ParseInLocation("2006-01-02", v, loc)
		if err != nil {
			errs[k] = "Enter a date like 2026-11-23."
			continue
		}
		if k == "from" {
			f.From = d
		} else {
			f.To = d.AddDate(0, 0, 1) // the whole day
		}
	}
	if b, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && b > 0 {
		f.Before = b
	}
	valid := false
	for _, a := range auditActions {
		valid = valid || a.Value == f.Action
	}
	if !valid {
		errs["action"] = "Choose one of the listed kinds of change."
		f.Action = ""
	}
	return f
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	loc := s.location()
	q := r.URL.Query()
	p := page{Title: "Audit trail", fieldErrs: map[string]string{}, Form: map[string]string{}}
	for _, k := range []string{"from", "to", "actor", "action", "object"} {
		p.Form[k] = q.Get(k)
	}
	f := auditFilter(q, loc, p.fieldErrs)
	d := auditData{Actions: auditActions, Zone: loc.String()}
	entries, err := s.cfg.Audit.List(r.Context(), f)
	if err != nil {
		s.cfg.Logger.Error("listing the audit trail", "err", err)
		p.Error = "The audit trail could not be read: " + err.Error()
	}
	for _, e := range entries {
		d.Entries = append(d.Entries, auditRow{Entry: e, Local: e.Time.In(loc).Format("2 Jan 2006 15:04:05"), Diff: diffLines(e.Detail)})
	}
	if len(entries) == f.Limit && entries[len(entries)-1].Seq > 1 {
		q.Set("before", strconv.FormatInt(entries[len(entries)-1].Seq, 10))
		d.Older = "/audit?" + q.Encode()
	}
	if q.Has("verify") {
		res, err := s.cfg.Audit.Verify(r.Context())
		if err != nil {
			s.cfg.Logger.Error("verifying the audit trail", "err", err)
			p.Error = "The audit trail could not be checked: " + err.Error()
		} else {
			d.Verify = &res
			d.Problem = strings.TrimPrefix(res.Problem, fmt.Sprintf("entry %d: ", res.FirstBroken))
			if !res.OK {
				s.cfg.Logger.Error("audit trail verification failed", "first_broken", res.FirstBroken, "problem", res.Problem)
			}
		}
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "audit", p)
}

// handleAuditExport downloads the whole trail. The download is itself recorded: who took a
// copy of the record of changes is part of the record.
func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request) {
	longResponse(w)
	var b bytes.Buffer
	if err := s.cfg.Audit.Export(r.Context(), &b); err != nil {
		s.cfg.Logger.Error("exporting the audit trail", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Export failed", "The audit trail could not be exported: "+err.Error())
		return
	}
	sess := sessionFrom(r)
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "audit.export",
		Summary: fmt.Sprintf("audit trail exported (%d bytes)", b.Len())})
	name := "schoolgate-audit-" + time.Now().In(s.location()).Format("2006-01-02-1504") + ".jsonl"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Write(b.Bytes())
}
