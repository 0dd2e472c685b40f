package webui

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
)

const preExpired = "This form has expired. It has been loaded again: please try once more."

// parsePreForm reads a pre-session form and checks its CSRF field. On failure it renders
// the form's page again with a fresh token and returns false.
func (s *Server) parsePreForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return false
	}
	if !s.checkPre(r) {
		s.cfg.Logger.Warn("pre-session csrf token missing or wrong", "path", r.URL.Path, "addr", clientAddr(r).String())
		return false
	}
	return true
}

func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	if _, err := s.lookup(r); err == nil {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	p := page{Title: "Log in", Narrow: true, PreCSRF: s.preToken(w, r)}
	switch {
	case r.URL.Query().Get("expired") != "":
		p.Notice = "Your session expired. Please log in again."
	case r.URL.Query().Get("created") != "":
		p.Notice = "The account was created. Log in with it now."
	case r.URL.Query().Get("out") != "":
		p.Notice = "You have logged out."
	}
	s.render(w, r, http.StatusOK, "login", p)
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Log in", Narrow: true, fieldErrs: map[string]string{}}
	if !s.parsePreForm(w, r) {
		p.PreCSRF, p.Error = s.preToken(w, r), preExpired
		s.render(w, r, http.StatusForbidden, "login", p)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	password := r.PostFormValue("password")
	p.Form = map[string]string{"name": name}
	if name == "" {
		p.fieldErrs["name"] = "Enter your account name."
	}
	if password == "" {
		p.fieldErrs["password"] = "Enter your password."
	}
	if len(p.fieldErrs) > 0 {
		p.PreCSRF = s.preToken(w, r)
		s.render(w, r, http.StatusUnprocessableEntity, "login", p)
		return
	}
	addr := clientAddr(r)
	res, err := s.cfg.Auth.Login(r.Context(), name, password, addr)
	switch {
	case err == nil:
		s.startSession(w, r, *res.Session, nil)
		return
	case errors.Is(err, auth.ErrTOTPRequired), errors.Is(err, auth.ErrTOTPEnrolRequired):
		s.renderTOTP(w, r, http.StatusOK, res.Pending, false, "")
		return
	}
	// Failures: the auth store has logged them with the account and address; the web UI
	// adds nothing that could hold a password (an unknown "name" often is one).
	status := http.StatusUnauthorized
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", fmt.Sprint(int(te.RetryAfter.Round(time.Second)/time.Second)))
		p.Error = "Too many failed attempts. Wait " + waitText(te.RetryAfter) + " and try again."
	case errors.Is(err, auth.ErrBadCredentials):
		p.Error = "Wrong account name or password."
	case errors.Is(err, auth.ErrDisabled):
		status = http.StatusForbidden
		p.Error = "This account is disabled. Ask a technician."
	default:
		s.cfg.Logger.Error("login", "err", err)
		status = http.StatusInternalServerError
		p.Error = "Logging in failed because of an internal error. Try again; if it persists, check the system log."
	}
	p.PreCSRF = s.preToken(w, r)
	s.render(w, r, status, "login", p)
}

// totpData is what totp.html shows.
type totpData struct {
	Pending   string
	Account   string
	Enrol     bool            // the code step of an enrolment
	Enrolment *auth.Enrolment // shown at the first step only
	QR        template.HTML   // the enrolment's URI as an SVG QR code; see package qr
}

func (s *Server) renderTOTP(w http.ResponseWriter, r *http.Request, status int, pend *auth.Pending, enrol bool, fieldErr string) {
	d := totpData{Pending: pend.Token, Account: pend.Account, Enrolment: pend.Enrolment, Enrol: enrol || pend.Enrolment != nil}
	if pend.Enrolment != nil {
		d.QR = s.qrCode(pend.Enrolment.URI)
	}
	p := page{Title: "Authenticator code", Narrow: true, PreCSRF: s.preToken(w, r), fieldErrs: map[string]string{}, Data: d}
	if pend.Enrolment != nil {
		p.Title = "Set up your authenticator"
	}
	if fieldErr != "" {
		p.fieldErrs["code"] = fieldErr
	}
	s.render(w, r, status, "totp", p)
}

func (s *Server) handleTOTP(w http.ResponseWriter, r *http.Request) {
	if !s.parsePreForm(w, r) {
		p := page{Title: "Log in", Narrow: true, PreCSRF: s.preToken(w, r), Error: preExpired}
		s.render(w, r, http.StatusForbidden, "login", p)
		return
	}
	pendTok := r.PostFormValue("pending")
	code := strings.TrimSpace(r.PostFormValue("code"))
	// A wrong code shows the page again with the same pending token. The account name and
	// the enrolment flag ride along in the form for display only; the secret is not sent
	// again (it is in the app by now, or "start again" shows it anew).
	pend := &auth.Pending{Token: pendTok, Account: r.PostFormValue("account")}
	enrol := r.PostFormValue("enrol") != ""
	if code == "" {
		s.renderTOTP(w, r, http.StatusUnprocessableEntity, pend, enrol, "Enter the code.")
		return
	}
	res, err := s.cfg.Auth.CompleteTOTP(r.Context(), pendTok, code, clientAddr(r))
	if err == nil {
		if res.UsedRecoveryCode {
			s.recordAudit(r, audit.Entry{Actor: res.Session.Account, Role: string(res.Session.Role), Action: "account.recovery.used",
				Object: res.Session.Account, Summary: recoveryUsedSummary(res.RecoveryCodesLeft)})
		}
		s.startSession(w, r, *res.Session, res.RecoveryCodes)
		return
	}
	var te *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrBadCode):
		s.renderTOTP(w, r, http.StatusUnauthorized, pend, enrol, "That code is wrong or was already used. Try the next code.")
	case errors.As(err, &te):
		w.Header().Set("Retry-After", fmt.Sprint(int(te.RetryAfter.Round(time.Second)/time.Second)))
		s.renderTOTP(w, r, http.StatusTooManyRequests, pend, enrol, "Too many wrong codes. Wait "+waitText(te.RetryAfter)+" and try again.")
	case errors.Is(err, auth.ErrPendingExpired):
		s.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Narrow: true, PreCSRF: s.preToken(w, r),
			Error: "The login took too long or had too many wrong codes. Enter your password again."})
	case errors.Is(err, auth.ErrDisabled):
		s.render(w, r, http.StatusForbidden, "login", page{Title: "Log in", Narrow: true, PreCSRF: s.preToken(w, r),
			Error: "This account is disabled. Ask a technician."})
	default:
		s.cfg.Logger.Error("completing login", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Login failed", "Logging in failed because of an internal error.")
	}
}

// startSession sets the session cookie and goes to the start page, or first shows the
// recovery codes an enrolment just made (they exist nowhere else in readable form).
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, sess auth.Session, recovery []string) {
	setCookie(w, r, sessionCookie, sess.Token, 0)
	clearCookie(w, r, preCookie)
	if len(recovery) > 0 {
		s.render(w, r, http.StatusOK, "recovery", page{Title: "Your recovery codes", Narrow: true, Session: &sess, Data: recovery})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.cfg.Auth.Logout(r.Context(), c.Value); err != nil {
			s.cfg.Logger.Error("logging out", "err", err)
		}
	}
	clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}

func (s *Server) handleSetupForm(w http.ResponseWriter, r *http.Request) {
	if !s.setupOpen(w, r) {
		return
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		s.renderMessage(w, r, http.StatusBadRequest, "Setup link needed",
			"Open the setup link schoolgate printed in its log when it started.")
		return
	}
	s.render(w, r, http.StatusOK, "setup", page{Title: "First account", Narrow: true, PreCSRF: s.preToken(w, r), Data: token})
}

// setupOpen answers for /setup once an account exists: the page is gone for good.
func (s *Server) setupOpen(w http.ResponseWriter, r *http.Request) bool {
	need, err := s.cfg.Auth.NeedsSetup(r.Context())
	if err != nil {
		s.cfg.Logger.Error("checking for first-start setup", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Setup", "Could not read the accounts database.")
		return false
	}
	if !need {
		s.render(w, r, http.StatusGone, "message", page{Title: "Setup done", Narrow: true,
			Notice: "The first account exists already. Log in, or ask a technician for an account."})
		return false
	}
	return true
}

func (s *Server) handleSetup(w http.ResponseWriter, r *http.Request) {
	if !s.setupOpen(w, r) {
		return
	}
	p := page{Title: "First account", Narrow: true, fieldErrs: map[string]string{}}
	if !s.parsePreForm(w, r) {
		p.PreCSRF, p.Error, p.Data = s.preToken(w, r), preExpired, r.PostFormValue("token")
		s.render(w, r, http.StatusForbidden, "setup", p)
		return
	}
	token := r.PostFormValue("token")
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("name")))
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	p.Data, p.Form = token, map[string]string{"name": name}
	if name == "" {
		p.fieldErrs["name"] = "Enter a name for the account."
	}
	if pw == "" {
		p.fieldErrs["password"] = "Enter a password."
	} else if err := auth.CheckPassword(name, pw); err != nil {
		p.fieldErrs["password"] = sentence(err)
	}
	if pw2 != pw {
		p.fieldErrs["password2"] = "The two passwords differ."
	}
	if len(p.fieldErrs) == 0 {
		a, err := s.cfg.Auth.CreateFirst(r.Context(), token, name, pw)
		switch {
		case err == nil:
			s.cfg.Logger.Info("first technician account created", "account", a.Name, "addr", clientAddr(r).String())
			s.recordAudit(r, audit.Entry{Actor: a.Name, Role: string(a.Role), Action: "account.create", Object: a.Name,
				Summary: fmt.Sprintf("first account %q created as %s through the setup link", a.Name, a.Role)})
			http.Redirect(w, r, "/login?created=1", http.StatusSeeOther)
			return
		case errors.Is(err, auth.ErrBadName):
			p.fieldErrs["name"] = sentence(err)
		case errors.Is(err, auth.ErrWeakPassword):
			p.fieldErrs["password"] = sentence(err)
		case errors.Is(err, auth.ErrSetupToken):
			s.renderMessage(w, r, http.StatusForbidden, "Setup link expired",
				"This setup link is wrong, used or expired. Restart schoolgate and open the new link it prints.")
			return
		case errors.Is(err, auth.ErrSetupDone):
			s.setupOpen(w, r)
			return
		default:
			s.cfg.Logger.Error("creating the first account", "err", err)
			p.Error = "Creating the account failed because of an internal error."
		}
	}
	p.PreCSRF = s.preToken(w, r)
	status := http.StatusUnprocessableEntity
	if p.Error != "" {
		status = http.StatusInternalServerError
	}
	s.render(w, r, status, "setup", p)
}

// recordAudit appends a change made through the UI. The change is done by then; a failure
// to record it is logged loudly rather than undoing it.
func (s *Server) recordAudit(r *http.Request, e audit.Entry) {
	if s.cfg.Audit == nil {
		return
	}
	if a := clientAddr(r); a.IsValid() {
		e.Address = a.String()
	}
	if _, err := s.cfg.Audit.Append(r.Context(), e); err != nil {
		s.cfg.Logger.Error("recording in the audit trail", "action", e.Action, "err", err)
	}
}

// sentence makes an auth error read as a sentence next to a field.
func sentence(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, auth.ErrWeakPassword.Error()+": ")
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

func waitText(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		d = time.Second
	}
	if d < time.Minute {
		if d == time.Second {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", int(d/time.Second))
	}
	m := int((d + time.Minute - 1) / time.Minute)
	if m == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", m)
}
