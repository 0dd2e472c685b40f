package webui

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
)

// The exceptions page: a teacher asks for an exception for a lesson and follows their
// requests; a DSL or technician decides the waiting ones, creates exceptions directly, and
// revokes active ones. Every action is recorded in the audit trail with its reason or note.
// The store (firmware/exceptions) validates every field and refuses protected names; the
// daemon recompiles the policy after each change and expires exceptions on time.

type exceptionsData struct {
	CanRead, CanCreate, CanApprove, CanRequest bool
	Pending, Active, Past                      []exceptionRow
	Applies                                    []selectOption // who an exception can apply to
	Done                                       string
	Zone                                       string
}

type exceptionRow struct {
	exceptions.Exception
	AppliesTo                     string
	Requested, Starts, Expires    string
	Decided, Ended, DurationText  string
	Asked                         string // what was asked, when the approval changed it
	Own                           bool
	NoteErr                       string // an error about this row's form
	NoteValue, GrantDur, GrantErr string
	// Grants are who approving may apply it to, and GrantFor the choice made: a review from
	// the block page is offered for the one device that asked first, not its whole profile.
	Grants   []selectOption
	GrantFor string
}

// durationText writes a duration the way people say it: "45 minutes", "2 hours", "3 days".
func durationText(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	switch {
	case d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	return d.String()
}

func appliesTo(scope, target string) string {
	switch scope {
	case config.ScopeProfile:
		return "everyone on the " + target + " profile"
	case config.ScopeSegment:
		return "the " + target + " network"
	case config.ScopeDevice:
		return "the device " + target
	}
	return scope + " " + target
}

// askedText says what a request asked for where its approval granted something else: "2
// hours", "everyone on the pupils profile" or both; "" when it got what it asked.
func askedText(e exceptions.Exception) string {
	var parts []string
	if e.AskedDuration != 0 {
		parts = append(parts, durationText(e.AskedDuration))
	}
	if e.AskedScope != "" {
		parts = append(parts, "for "+appliesTo(e.AskedScope, e.AskedTarget))
	}
	return strings.Join(parts, " ")
}

// appliesOptions lists the profiles and segments of the configuration, and "one device".
func appliesOptions(cfg *config.Config) []selectOption {
	var out []selectOption
	for _, p := range cfg.Profiles {
		out = append(out, selectOption{"profile:" + p.Name, "Profile " + p.Name + " (everyone filtered as " + p.Name + ")"})
	}
	for _, s := range cfg.Segments {
		out = append(out, selectOption{"segment:" + s.Name, "Network " + s.Name})
	}
	return append(out, selectOption{"device", "One device (MAC address below)"})
}

// grantOptions are who approving e may apply it to: as asked, the device that asked (for a
// review from the block page, the default), or any profile or network.
func grantOptions(e exceptions.Exception, applies []selectOption) ([]selectOption, string) {
	asked := e.Scope + ":" + e.Target
	opts := []selectOption{{asked, "as asked: " + appliesTo(e.Scope, e.Target)}}
	choice := asked
	if e.ClientMAC != "" {
		dev := config.ScopeDevice + ":" + e.ClientMAC
		opts = append(opts, selectOption{dev, "only the device that asked (" + e.ClientMAC + ")"})
		if e.Source == exceptions.SourceBlockPage {
			choice = dev
		}
	}
	for _, o := range applies {
		if o.Value != "device" && o.Value != asked {
			opts = append(opts, o)
		}
	}
	return opts, choice
}

// readApplies splits the form's "applies" choice (and MAC address) into scope and target.
func readApplies(applies, mac string) (string, string) {
	if applies == "device" {
		return config.ScopeDevice, strings.TrimSpace(mac)
	}
	scope, target, _ := strings.Cut(applies, ":")
	return scope, target
}

// readDuration reads "45m", "2h", "3d" or a bare number of minutes.
func readDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Minute, nil
	}
	d, err := config.ParseDuration(s)
	return time.Duration(d), err
}

func (s *Server) handleExceptions(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Exceptions", Form: map[string]string{"duration": "1h", "action": "allow"}, fieldErrs: map[string]string{}}
	p.Notice = s.doneNotice(r)
	s.renderExceptions(w, r, http.StatusOK, p, nil)
}

// renderExceptions shows the page; rowErr, if set, puts an error (and what was typed) on one
// row's form.
func (s *Server) renderExceptions(w http.ResponseWriter, r *http.Request, status int, p page, rowErr func(*exceptionRow)) {
	sess := sessionFrom(r)
	loc := s.location()
	d := exceptionsData{
		CanRead: auth.Can(sess.Role, auth.ExceptionRead), CanCreate: auth.Can(sess.Role, auth.ExceptionCreate),
		CanApprove: auth.Can(sess.Role, auth.ExceptionApprove), CanRequest: auth.Can(sess.Role, auth.ExceptionRequest),
		Zone: loc.String(),
	}
	if cfg, err := s.cfg.Config.EditableConfig(); err == nil {
		d.Applies = appliesOptions(cfg)
	}
	if p.Form["applies"] == "" && len(d.Applies) > 0 {
		p.Form["applies"] = d.Applies[0].Value
		for _, o := range d.Applies {
			if o.Value == "profile:pupils" {
				p.Form["applies"] = o.Value
			}
		}
	}
	f := exceptions.Filter{Limit: 300}
	if !d.CanRead {
		f.RequestedBy = sess.Account
	}
	list, err := s.cfg.Exceptions.List(r.Context(), f)
	if err != nil {
		s.cfg.Logger.Error("listing exceptions", "err", err)
		p.Error = "The exceptions could not be read: " + err.Error()
	}
	now := time.Now()
	when := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(loc).Format("Mon 2 Jan 15:04")
	}
	for _, e := range list {
		row := exceptionRow{Exception: e, AppliesTo: appliesTo(e.Scope, e.Target), Requested: when(e.Requested),
			Starts: when(e.Starts), Expires: when(e.Expires), Decided: when(e.Decided), Ended: when(e.Ended),
			DurationText: durationText(e.Duration), Own: e.RequestedBy == sess.Account}
		row.Asked = askedText(e)
		if e.Status == exceptions.Pending && d.CanApprove {
			row.Grants, row.GrantFor = grantOptions(e, d.Applies)
		}
		if rowErr != nil {
			rowErr(&row)
		}
		switch {
		case e.Status == exceptions.Pending:
			d.Pending = append(d.Pending, row)
		case e.Status == exceptions.Approved && now.Before(e.Expires):
			d.Active = append(d.Active, row)
		case len(d.Past) < 50:
			if e.Status == exceptions.Approved { // past its time, not yet swept
				row.Status = exceptions.Expired
			}
			d.Past = append(d.Past, row)
		}
	}
	p.Title, p.Data = "Exceptions", d
	s.render(w, r, status, "exceptions", p)
}

// handleExceptionNew takes the form: a request to approve (teachers) or, with create, an
// exception in force at once (DSL, technician).
func (s *Server) handleExceptionNew(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := sessionFrom(r)
		if err := r.ParseForm(); err != nil {
			s.renderMessage(w, r, http.StatusBadRequest, "Exceptions", "The form could not be read.")
			return
		}
		f := r.PostForm
		p := page{fieldErrs: map[string]string{}, Form: map[string]string{}}
		for _, k := range []string{"applies", "mac", "domain", "action", "duration", "reason"} {
			p.Form[k] = f.Get(k)
		}
		scope, target := readApplies(f.Get("applies"), f.Get("mac"))
		e := exceptions.Exception{Scope: scope, Target: target, Domain: f.Get("domain"), Action: f.Get("action"), Reason: f.Get("reason")}
		dur, derr := readDuration(f.Get("duration"))
		e.Duration = dur
		var (
			out exceptions.Exception
			err error
		)
		if derr != nil {
			err = &exceptions.ValidationError{Errors: []*exceptions.FieldError{{Field: exceptions.FieldDuration,
				Message: "Enter how long, like 45m, 2h or 3d."}}}
		} else if create {
			out, err = s.cfg.Exceptions.Create(r.Context(), e, sess.Account)
		} else {
			e.RequestedBy = sess.Account
			out, err = s.cfg.Exceptions.Request(r.Context(), e)
		}
		if err != nil {
			s.exceptionFormError(w, r, p, err)
			return
		}
		verb, action := "requested", "exception.request"
		if create {
			verb, action = "created", "exception.create"
		}
		s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: action,
			Object: fmt.Sprintf("exception %d", out.ID), Reason: out.Reason,
			Summary: fmt.Sprintf("exception %d %s: %s %s for %s, %s", out.ID, verb, out.Action, out.Domain,
				appliesTo(out.Scope, out.Target), durationText(out.Duration))})
		http.Redirect(w, r, fmt.Sprintf("/exceptions?done=%s&id=%d", verb, out.ID), http.StatusSeeOther)
	}
}

// exceptionFormError shows the new-exception form again with each problem next to its field.
func (s *Server) exceptionFormError(w http.ResponseWriter, r *http.Request, p page, err error) {
	var ve *exceptions.ValidationError
	switch {
	case errors.As(err, &ve):
		for _, fe := range ve.Errors {
			field := fe.Field
			switch field {
			case exceptions.FieldScope:
				field = "applies"
			case exceptions.FieldTarget:
				field = "applies"
				if readScope(p.Form["applies"]) == config.ScopeDevice {
					field = "mac"
				}
			}
			if _, dup := p.fieldErrs[field]; !dup {
				p.fieldErrs[field] = fe.Message
			}
		}
		p.Error = "The exception was not saved. Correct what is marked below."
	default:
		s.cfg.Logger.Error("saving an exception", "err", err)
		p.Error = "The exception was not saved: " + err.Error()
	}
	s.renderExceptions(w, r, http.StatusUnprocessableEntity, p, nil)
}

func readScope(applies string) string {
	scope, _ := readApplies(applies, "")
	return scope
}

// doneNotice says what the last action did, from the redirect's done and id: the text is
// made here, never taken from the address.
func (s *Server) doneNotice(r *http.Request) string {
	q := r.URL.Query()
	id, err := strconv.ParseInt(q.Get("id"), 10, 64)
	if err != nil || q.Get("done") == "" {
		return ""
	}
	e, err := s.cfg.Exceptions.Get(r.Context(), id)
	if err != nil {
		return ""
	}
	until := e.Expires.In(s.location()).Format("Mon 2 Jan 15:04")
	switch q.Get("done") {
	case "requested":
		return fmt.Sprintf("Request %d sent: a DSL or technician will approve or deny it.", id)
	case "created":
		return fmt.Sprintf("Exception %d is in force until %s.", id, until)
	case "approved":
		return fmt.Sprintf("Exception %d approved: in force until %s.", id, until)
	case "denied", "revoked", "withdrawn":
		return fmt.Sprintf("Exception %d %s.", id, q.Get("done"))
	}
	return ""
}

// handleExceptionDecision approves, denies, revokes or withdraws one exception.
func (s *Server) handleExceptionDecision(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.decideException(w, r, verb) }
}

func (s *Server) decideException(w http.ResponseWriter, r *http.Request, verb string) {
	sess := sessionFrom(r)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.renderMessage(w, r, http.StatusNotFound, "No such exception", "There is no exception with that number.")
		return
	}
	note := r.PostFormValue("note")
	var out exceptions.Exception
	var grant exceptions.Grant
	if verb == "approve" {
		if scope, target, ok := strings.Cut(r.PostFormValue("grant_for"), ":"); ok {
			grant.Scope, grant.Target = scope, target
		}
		if v := strings.TrimSpace(r.PostFormValue("duration")); v != "" {
			d, derr := readDuration(v)
			if derr != nil {
				s.rowError(w, r, id, note, v, "Enter how long, like 45m, 2h or 3d, or leave it empty to grant what was asked.")
				return
			}
			grant.Duration = d
		}
	}
	switch verb {
	case "approve":
		out, err = s.cfg.Exceptions.Approve(r.Context(), id, sess.Account, note, grant)
	case "deny":
		out, err = s.cfg.Exceptions.Deny(r.Context(), id, sess.Account, note)
	case "revoke":
		out, err = s.cfg.Exceptions.Revoke(r.Context(), id, sess.Account, note)
	case "withdraw":
		out, err = s.cfg.Exceptions.Withdraw(r.Context(), id, sess.Account)
	}
	if err != nil {
		msg := err.Error()
		var fe *exceptions.FieldError
		switch {
		case errors.As(err, &fe):
			msg = fe.Message
		case errors.Is(err, exceptions.ErrNotFound):
			msg = "There is no exception with that number."
		case errors.Is(err, exceptions.ErrWrongState):
			if cur, gerr := s.cfg.Exceptions.Get(r.Context(), id); gerr == nil {
				msg = fmt.Sprintf("Nothing done: it is %s already.", cur.Status)
			}
		case errors.Is(err, exceptions.ErrNotRequester):
			msg = "Only the person who asked can withdraw a request."
		default:
			s.cfg.Logger.Error("deciding an exception", "id", id, "verb", verb, "err", err)
		}
		s.rowError(w, r, id, note, r.PostFormValue("duration"), msg)
		return
	}
	past := map[string]string{"approve": "approved", "deny": "denied", "revoke": "revoked", "withdraw": "withdrawn"}[verb]
	summary := fmt.Sprintf("exception %d %s: %s %s for %s", out.ID, past, out.Action, out.Domain, appliesTo(out.Scope, out.Target))
	if verb == "approve" {
		summary += fmt.Sprintf(", %s, until %s (asked by %s)", durationText(out.Duration),
			out.Expires.In(s.location()).Format("2 Jan 15:04"), out.RequestedBy)
	}
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "exception." + verb,
		Object: fmt.Sprintf("exception %d", out.ID), Summary: summary, Reason: strings.TrimSpace(note)})
	http.Redirect(w, r, fmt.Sprintf("/exceptions?done=%s&id=%d", past, out.ID), http.StatusSeeOther)
}

// rowError shows the page with an error on one exception's form, keeping the note typed.
func (s *Server) rowError(w http.ResponseWriter, r *http.Request, id int64, note, dur, msg string) {
	p := page{Form: map[string]string{"duration": "1h", "action": "allow"}, fieldErrs: map[string]string{},
		Error: fmt.Sprintf("Exception %d: %s", id, msg)}
	s.renderExceptions(w, r, http.StatusUnprocessableEntity, p, func(row *exceptionRow) {
		if row.ID == id {
			row.NoteErr, row.NoteValue, row.GrantDur = msg, note, dur
		}
	})
}

// exceptionRoutes are the exceptions page's routes. Withdrawing is for requesters, and the
// store lets only the one who asked withdraw.
func (s *Server) exceptionRoutes() []route {
	return []route{
		{"GET /exceptions", auth.ExceptionReadOwn, s.handleExceptions},
		{"POST /exceptions/request", auth.ExceptionRequest, s.handleExceptionNew(false)},
		{"POST /exceptions/create", auth.ExceptionCreate, s.handleExceptionNew(true)},
		{"POST /exceptions/{id}/approve", auth.ExceptionApprove, s.handleExceptionDecision("approve")},
		{"POST /exceptions/{id}/deny", auth.ExceptionApprove, s.handleExceptionDecision("deny")},
		{"POST /exceptions/{id}/revoke", auth.ExceptionApprove, s.handleExceptionDecision("revoke")},
		{"POST /exceptions/{id}/withdraw", auth.ExceptionRequest, s.handleExceptionDecision("withdraw")},
	}
}
