package webui

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/webui/qr"
)

// The account pages. "My account" (every role): one's own password, authenticator, recovery
// codes, and logging out everywhere; the sensitive ones ask for the password again (the auth
// store checks it, throttled like a login). "Accounts" (technicians): every account, creating
// one, and changing another's role, state, password, authenticator and TOTP requirement.
// The auth store enforces the rules (nothing that skips a password on one's own account, the
// last technician kept) and checks the acting session again; these handlers turn its errors
// into sentences next to the fields and record every change in the audit trail. Passwords,
// TOTP secrets and codes are never put into the audit trail, the log, or a form value.

// accountRoutes are the routes of the account pages: one's own account, and the managing of
// everyone's.
func (s *Server) accountRoutes() []route {
	return []route{
		{"GET /account", auth.OwnAccount, s.handleMyAccount},
		{"POST /account/password", auth.OwnAccount, s.handlePasswordChange},
		{"POST /account/totp", auth.OwnAccount, s.handleTOTPBegin},
		{"POST /account/totp/confirm", auth.OwnAccount, s.handleTOTPConfirm},
		{"POST /account/recovery", auth.OwnAccount, s.handleRecoveryRenew},
		{"POST /account/logout-everywhere", auth.OwnAccount, s.handleLogoutEverywhere},

		{"GET /accounts", auth.AccountsManage, s.handleAccounts},
		{"POST /accounts", auth.AccountsManage, s.handleAccountCreate},
		{"POST /accounts/{name}/role", auth.AccountsManage, s.manageAccount(s.setRole)},
		{"POST /accounts/{name}/disable", auth.AccountsManage, s.manageAccount(s.setDisabled(true))},
		{"POST /accounts/{name}/enable", auth.AccountsManage, s.manageAccount(s.setDisabled(false))},
		{"POST /accounts/{name}/password", auth.AccountsManage, s.manageAccount(s.resetPassword)},
		{"POST /accounts/{name}/totp-reset", auth.AccountsManage, s.manageAccount(s.resetTOTP)},
		{"POST /accounts/{name}/totp-required", auth.AccountsManage, s.manageAccount(s.setTOTPRequired)},
		{"POST /accounts/{name}/logout", auth.AccountsManage, s.manageAccount(s.logoutAccount)},
	}
}

// accountPageFiles are the templates of the account pages.
var accountPageFiles = []string{"account", "accounts"}

// qrCode renders an otpauth URI as an inline SVG QR code, or nothing if it cannot (the page
// still shows the key and the link, so enrolment goes on).
func (s *Server) qrCode(uri string) template.HTML {
	svg, err := qr.SVG(uri)
	if err != nil {
		s.cfg.Logger.Error("drawing the QR code of an enrolment", "err", err)
		return ""
	}
	return svg
}

// recoveryUsedSummary is the audit summary of a login with a recovery code.
func recoveryUsedSummary(left int) string {
	switch left {
	case 0:
		return "logged in with a recovery code; none is left: make new ones on My account"
	case 1:
		return "logged in with a recovery code; 1 is left"
	}
	return fmt.Sprintf("logged in with a recovery code; %d are left", left)
}

// accountView is an account as the pages show it.
type accountView struct {
	auth.Account
	LastLoginText, CreatedText, PasswordChangedText string
	Self                                            bool
}

func (s *Server) viewOf(a auth.Account, me string, loc *time.Location) accountView {
	when := func(t time.Time, never string) string {
		if t.IsZero() {
			return never
		}
		return t.In(loc).Format("Mon 2 Jan 2006 15:04")
	}
	return accountView{Account: a, Self: a.Name == me, LastLoginText: when(a.LastLogin, "never"),
		CreatedText: when(a.Created, ""), PasswordChangedText: when(a.PasswordChanged, "")}
}

// writeRetryAfter sets Retry-After from a throttling error and returns the sentence to show.
func writeRetryAfter(w http.ResponseWriter, te *auth.ThrottledError) string {
	w.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Round(time.Second)/time.Second)))
	return "Too many wrong passwords or codes. Wait " + waitText(te.RetryAfter) + " and try again."
}

// My account.

// myAccountData is what account.html shows.
type myAccountData struct {
	Account accountView
	// An enrolment under way: the key and link, and its QR code.
	Enrolment *auth.Enrolment
	QR        template.HTML
	// Confirming shows the code field of an enrolment again without the key, after a wrong
	// code (the key is not sent again: it is in the app by now, or "start again" shows a new one).
	Confirming bool
	// Codes are new recovery codes, shown once; Enrolled says they came with a new authenticator.
	Codes    []string
	Enrolled bool
}

func (s *Server) handleMyAccount(w http.ResponseWriter, r *http.Request) {
	p := page{fieldErrs: map[string]string{}}
	switch r.URL.Query().Get("done") {
	case "password":
		p.Notice = "Your password was changed. Every other session of your account was logged out."
	}
	s.renderMyAccount(w, r, http.StatusOK, p, myAccountData{})
}

func (s *Server) renderMyAccount(w http.ResponseWriter, r *http.Request, status int, p page, d myAccountData) {
	sess := sessionFrom(r)
	a, err := s.cfg.Auth.Account(r.Context(), sess.Account)
	if err != nil {
		s.cfg.Logger.Error("reading own account", "account", sess.Account, "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "My account", "Your account could not be read.")
		return
	}
	d.Account = s.viewOf(a, sess.Account, s.location())
	p.Title, p.Narrow, p.Data = "My account", true, d
	if len(d.Codes) > 0 {
		p.Title = "Your new recovery codes"
	}
	if p.Error == "" && len(p.fieldErrs) > 0 {
		p.Error = "Nothing was changed. Correct what is marked below."
	}
	s.render(w, r, status, "account", p)
}

// ownAccountErr puts an auth error of a password-checked change next to the password field,
// or says what else went wrong. It returns the status to answer with.
func (s *Server) ownAccountErr(w http.ResponseWriter, p *page, field string, err error, what string) int {
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		p.fieldErrs[field] = writeRetryAfter(w, te)
		return http.StatusTooManyRequests
	case errors.Is(err, auth.ErrBadCredentials):
		p.fieldErrs[field] = "That password is wrong."
		return http.StatusUnprocessableEntity
	case errors.Is(err, auth.ErrDisabled):
		p.Error = "Your account has been disabled."
		return http.StatusForbidden
	}
	s.cfg.Logger.Error(what, "err", err)
	p.Error = "Nothing was changed because of an internal error. Try again; if it persists, check the system log."
	return http.StatusInternalServerError
}

func (s *Server) handlePasswordChange(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	cur, pw, pw2 := r.PostFormValue("current"), r.PostFormValue("new"), r.PostFormValue("new2")
	p := page{fieldErrs: map[string]string{}}
	if cur == "" {
		p.fieldErrs["current"] = "Enter your current password."
	}
	if pw == "" {
		p.fieldErrs["new"] = "Enter a new password."
	} else if err := auth.CheckPassword(sess.Account, pw); err != nil {
		p.fieldErrs["new"] = sentence(err)
	}
	if pw2 != pw {
		p.fieldErrs["new2"] = "The two new passwords differ."
	}
	if len(p.fieldErrs) > 0 {
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, myAccountData{})
		return
	}
	ns, err := s.cfg.Auth.ChangePassword(r.Context(), *sess, cur, pw)
	if err != nil {
		status := http.StatusUnprocessableEntity
		if errors.Is(err, auth.ErrPasswordReused) {
			p.fieldErrs["new"] = "The new password must differ from the current one."
		} else if errors.Is(err, auth.ErrWeakPassword) {
			p.fieldErrs["new"] = sentence(err)
		} else {
			status = s.ownAccountErr(w, &p, "current", err, "changing own password")
		}
		s.renderMyAccount(w, r, status, p, myAccountData{})
		return
	}
	// Every session of the account ended, this one included; the new one replaces it, as at
	// login (startSession).
	setCookie(w, r, sessionCookie, ns.Token, 0)
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "account.password.change",
		Object: sess.Account, Summary: "own password changed; every other session of the account was logged out"})
	http.Redirect(w, r, "/account?done=password", http.StatusSeeOther)
}

func (s *Server) handleTOTPBegin(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	p := page{fieldErrs: map[string]string{}}
	pw := r.PostFormValue("totp_password")
	if pw == "" {
		p.fieldErrs["totp_password"] = "Enter your password."
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, myAccountData{})
		return
	}
	enr, err := s.cfg.Auth.BeginTOTP(r.Context(), *sess, pw)
	if err != nil {
		status := s.ownAccountErr(w, &p, "totp_password", err, "starting an authenticator enrolment")
		s.renderMyAccount(w, r, status, p, myAccountData{})
		return
	}
	s.renderMyAccount(w, r, http.StatusOK, p, myAccountData{Enrolment: &enr, QR: s.qrCode(enr.URI)})
}

func (s *Server) handleTOTPConfirm(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	p := page{fieldErrs: map[string]string{}}
	code := strings.TrimSpace(r.PostFormValue("code"))
	again := myAccountData{Confirming: true}
	if code == "" {
		p.fieldErrs["code"] = "Enter the code the app shows."
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, again)
		return
	}
	before, _ := s.cfg.Auth.Account(r.Context(), sess.Account)
	codes, err := s.cfg.Auth.ConfirmTOTP(r.Context(), *sess, code)
	var te *auth.ThrottledError
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrBadCode):
		p.fieldErrs["code"] = "That code is wrong or was already used. Try the next code."
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, again)
		return
	case errors.As(err, &te):
		p.fieldErrs["code"] = writeRetryAfter(w, te)
		s.renderMyAccount(w, r, http.StatusTooManyRequests, p, again)
		return
	case errors.Is(err, auth.ErrNotEnrolled):
		p.Error = "No authenticator set-up is under way. Enter your password under “Authenticator” to start one."
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, myAccountData{})
		return
	default:
		s.cfg.Logger.Error("confirming an authenticator", "err", err)
		p.Error = "The authenticator was not set up because of an internal error."
		s.renderMyAccount(w, r, http.StatusInternalServerError, p, myAccountData{})
		return
	}
	summary := "authenticator set up; 10 recovery codes made"
	if before.TOTPEnrolled {
		summary = "authenticator replaced by a new one; the old one and the old recovery codes no longer work; 10 new recovery codes made"
	}
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "account.totp.enrol",
		Object: sess.Account, Summary: summary})
	p.Notice = "Your authenticator is set up. From now on, logging in asks for its code."
	s.renderMyAccount(w, r, http.StatusOK, p, myAccountData{Codes: codes, Enrolled: true})
}

func (s *Server) handleRecoveryRenew(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	p := page{fieldErrs: map[string]string{}}
	pw := r.PostFormValue("recovery_password")
	if pw == "" {
		p.fieldErrs["recovery_password"] = "Enter your password."
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, myAccountData{})
		return
	}
	codes, err := s.cfg.Auth.NewRecoveryCodes(r.Context(), *sess, pw)
	if errors.Is(err, auth.ErrNotEnrolled) {
		p.Error = "You have no authenticator yet. Set one up first: its recovery codes come with it."
		s.renderMyAccount(w, r, http.StatusUnprocessableEntity, p, myAccountData{})
		return
	}
	if err != nil {
		status := s.ownAccountErr(w, &p, "recovery_password", err, "renewing recovery codes")
		s.renderMyAccount(w, r, status, p, myAccountData{})
		return
	}
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "account.recovery.renew",
		Object: sess.Account, Summary: fmt.Sprintf("%d new recovery codes made; the old ones no longer work", len(codes))})
	s.renderMyAccount(w, r, http.StatusOK, p, myAccountData{Codes: codes})
}

func (s *Server) handleLogoutEverywhere(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	n, err := s.cfg.Auth.RevokeAll(r.Context(), sess.Account)
	if err != nil {
		s.cfg.Logger.Error("logging out everywhere", "account", sess.Account, "err", err)
		s.renderMyAccount(w, r, http.StatusInternalServerError, page{fieldErrs: map[string]string{},
			Error: "Logging out everywhere failed because of an internal error."}, myAccountData{})
		return
	}
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "account.logout",
		Object: sess.Account, Summary: "logged out everywhere by themselves: " + sessionsText(n) + " ended"})
	clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}

func sessionsText(n int) string {
	if n == 1 {
		return "1 session"
	}
	return strconv.Itoa(n) + " sessions"
}

// Accounts.

// accountsData is what accounts.html shows.
type accountsData struct {
	Accounts []accountView
	Roles    []selectOption
	Open     string // the account whose actions are shown open: the one an error is about
}

var roleOptions = []selectOption{
	{string(auth.Technician), "Technician: everything, including accounts"},
	{string(auth.DSL), "DSL: safeguarding, logs, exceptions; policy read-only"},
	{string(auth.Teacher), "Teacher: asks for exceptions for lessons"},
	{string(auth.Viewer), "Viewer: dashboard, reports and audit trail, read-only"},
}

// accountsDone are the notices after a change, by the redirect's done; the account named
// in the address is looked up, and only its stored name goes into the sentence.
var accountsDone = map[string]func(a auth.Account) string{
	"created": func(a auth.Account) string {
		msg := fmt.Sprintf("Account %s created as %s. Give them the temporary password; they can change it on My account.", a.Name, a.Role)
		if a.TOTPRequired {
			msg += " At their first login they set up an authenticator."
		}
		return msg
	},
	"role": func(a auth.Account) string {
		return fmt.Sprintf("%s is now %s and was logged out everywhere.", a.Name, a.Role)
	},
	"disabled": func(a auth.Account) string {
		return fmt.Sprintf("%s is disabled and was logged out everywhere.", a.Name)
	},
	"enabled": func(a auth.Account) string { return fmt.Sprintf("%s is enabled again.", a.Name) },
	"password": func(a auth.Account) string {
		return fmt.Sprintf("The password of %s was reset and they were logged out everywhere. Give them the new temporary password.", a.Name)
	},
	"totp-reset": func(a auth.Account) string {
		if a.TOTPRequired {
			return fmt.Sprintf("The authenticator of %s was removed. They set up a new one at their next login.", a.Name)
		}
		return fmt.Sprintf("The authenticator of %s was removed. An authenticator is not required for them, so they log in with the password alone until they set one up.", a.Name)
	},
	"totp-required": func(a auth.Account) string {
		if a.TOTPRequired {
			return fmt.Sprintf("%s must use an authenticator now.", a.Name)
		}
		if a.TOTPEnrolled {
			return fmt.Sprintf("%s no longer has to use an authenticator (the one already set up still asks for its code).", a.Name)
		}
		return fmt.Sprintf("%s no longer has to use an authenticator.", a.Name)
	},
	"logout":    func(a auth.Account) string { return fmt.Sprintf("%s was logged out everywhere.", a.Name) },
	"unchanged": func(a auth.Account) string { return fmt.Sprintf("Nothing changed for %s.", a.Name) },
}

func (s *Server) handleAccounts(w http.ResponseWriter, r *http.Request) {
	p := page{fieldErrs: map[string]string{}, Form: map[string]string{"role": string(auth.Teacher)}}
	q := r.URL.Query()
	if f, ok := accountsDone[q.Get("done")]; ok {
		if a, err := s.cfg.Auth.Account(r.Context(), q.Get("name")); err == nil {
			p.Notice = f(a)
		}
	}
	s.renderAccounts(w, r, http.StatusOK, p, "")
}

func (s *Server) renderAccounts(w http.ResponseWriter, r *http.Request, status int, p page, open string) {
	sess := sessionFrom(r)
	list, err := s.cfg.Auth.Accounts(r.Context())
	if err != nil {
		s.cfg.Logger.Error("listing accounts", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Accounts", "The accounts could not be read.")
		return
	}
	if p.Form == nil {
		p.Form = map[string]string{}
	}
	if p.fieldErrs == nil {
		p.fieldErrs = map[string]string{}
	}
	loc := s.location()
	d := accountsData{Roles: roleOptions, Open: open}
	for _, a := range list {
		d.Accounts = append(d.Accounts, s.viewOf(a, sess.Account, loc))
		if _, ok := p.Form["role-"+a.Name]; !ok {
			p.Form["role-"+a.Name] = string(a.Role)
		}
	}
	p.Title, p.Data = "Accounts", d
	s.render(w, r, status, "accounts", p)
}

func (s *Server) handleAccountCreate(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("name")))
	roleText := r.PostFormValue("role")
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	p := page{fieldErrs: map[string]string{}, Form: map[string]string{"name": name, "role": roleText}}
	switch {
	case name == "":
		p.fieldErrs["name"] = "Enter a name for the account."
	case !auth.ValidName(name):
		p.fieldErrs["name"] = sentence(auth.ErrBadName)
	}
	role, rerr := auth.ParseRole(roleText)
	if rerr != nil {
		p.fieldErrs["role"] = "Choose one of the four roles."
	}
	if pw == "" {
		p.fieldErrs["password"] = "Enter a temporary password."
	} else if err := auth.CheckPassword(name, pw); err != nil {
		p.fieldErrs["password"] = sentence(err)
	}
	if pw2 != pw {
		p.fieldErrs["password2"] = "The two passwords differ."
	}
	if len(p.fieldErrs) == 0 {
		a, err := s.cfg.Auth.CreateAccount(r.Context(), *sess, name, role, pw)
		switch {
		case err == nil:
			summary := fmt.Sprintf("account %s created as %s", a.Name, a.Role)
			if a.TOTPRequired {
				summary += "; an authenticator is required from the first login"
			}
			s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "account.create",
				Object: a.Name, Summary: summary})
			http.Redirect(w, r, "/accounts?done=created&name="+a.Name, http.StatusSeeOther)
			return
		case errors.Is(err, auth.ErrAccountExists):
			p.fieldErrs["name"] = "There is an account called " + name + " already. Choose another name."
		case errors.Is(err, auth.ErrBadName):
			p.fieldErrs["name"] = sentence(auth.ErrBadName)
		case errors.Is(err, auth.ErrBadRole):
			p.fieldErrs["role"] = "Choose one of the four roles."
		case errors.Is(err, auth.ErrWeakPassword):
			p.fieldErrs["password"] = sentence(err)
		case errors.Is(err, auth.ErrForbidden):
			s.renderMessage(w, r, http.StatusForbidden, "Not allowed", "Your session may no longer manage accounts. Log in again.")
			return
		default:
			s.cfg.Logger.Error("creating an account", "err", err)
			p.Error = "The account was not created because of an internal error."
			s.renderAccounts(w, r, http.StatusInternalServerError, p, "")
			return
		}
	}
	p.Error = "The account was not created. Correct what is marked below."
	s.renderAccounts(w, r, http.StatusUnprocessableEntity, p, "")
}

// manageResult is what one action on an account did: done names the notice (accountsDone)
// and entry is recorded in the audit trail (no entry: nothing changed). A failure sets
// field (the form field of the account's row the message belongs to; "" for the row as a
// whole) and msg, or status for an error that is not about the form.
type manageResult struct {
	done   string
	entry  *audit.Entry
	field  string
	msg    string
	status int
	// loggedOut: the technician logged themselves out; go to the login page.
	loggedOut bool
}

func failed(field, msg string) manageResult { return manageResult{field: field, msg: msg} }

// manageAccount looks up the account of the address and runs one action on it for the
// technician of the session; then it records, redirects with a notice, or shows the page
// again with the error on the account's row and what was chosen kept.
func (s *Server) manageAccount(action func(r *http.Request, by auth.Session, a auth.Account) manageResult) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := sessionFrom(r)
		name := r.PathValue("name")
		a, err := s.cfg.Auth.Account(r.Context(), name)
		if err != nil {
			p := page{fieldErrs: map[string]string{}, Form: map[string]string{"role": string(auth.Teacher)}}
			if errors.Is(err, auth.ErrNoAccount) {
				p.Error = "There is no account called " + strconv.Quote(name) + "."
			} else {
				s.cfg.Logger.Error("reading an account", "err", err)
				p.Error = "The account could not be read."
			}
			s.renderAccounts(w, r, http.StatusUnprocessableEntity, p, "")
			return
		}
		res := action(r, *sess, a)
		if res.entry != nil {
			res.entry.Actor, res.entry.Role, res.entry.Object = sess.Account, string(sess.Role), a.Name
			s.recordAudit(r, *res.entry)
		}
		switch {
		case res.loggedOut:
			clearCookie(w, r, sessionCookie)
			http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
			return
		case res.done != "":
			http.Redirect(w, r, "/accounts?done="+res.done+"&name="+a.Name, http.StatusSeeOther)
			return
		case res.status == http.StatusForbidden:
			s.renderMessage(w, r, http.StatusForbidden, "Not allowed", "Your session may no longer manage accounts. Log in again.")
			return
		}
		status := http.StatusUnprocessableEntity
		p := page{fieldErrs: map[string]string{}, Form: map[string]string{"role": string(auth.Teacher)}}
		if v := r.PostFormValue("role"); v != "" {
			p.Form["role-"+a.Name] = v
		}
		if res.status != 0 {
			status = res.status
			p.Error = res.msg
		} else {
			p.Error = "Nothing was changed for " + a.Name + ". " + res.msg
			key := "row-" + a.Name
			if res.field != "" {
				key = res.field + "-" + a.Name
				p.Error = "Nothing was changed for " + a.Name + ". Correct what is marked below."
			}
			p.fieldErrs[key] = res.msg
		}
		s.renderAccounts(w, r, status, p, a.Name)
	}
}

// manageErr turns an auth store error of a change to another account into a result.
func (s *Server) manageErr(err error, self string) manageResult {
	switch {
	case errors.Is(err, auth.ErrSelf):
		return failed("", self)
	case errors.Is(err, auth.ErrLastTechnician):
		return failed("", sentence(auth.ErrLastTechnician))
	case errors.Is(err, auth.ErrNoAccount):
		return failed("", "The account no longer exists.")
	case errors.Is(err, auth.ErrForbidden):
		return manageResult{status: http.StatusForbidden}
	}
	s.cfg.Logger.Error("changing an account", "err", err)
	return manageResult{status: http.StatusInternalServerError, msg: "Nothing was changed because of an internal error."}
}

func (s *Server) setRole(r *http.Request, by auth.Session, a auth.Account) manageResult {
	role, err := auth.ParseRole(r.PostFormValue("role"))
	if err != nil {
		return failed("role", "Choose one of the four roles.")
	}
	if role == a.Role {
		return manageResult{done: "unchanged"}
	}
	if err := s.cfg.Auth.SetRole(r.Context(), by, a.Name, role); err != nil {
		return s.manageErr(err, "You cannot change your own role; another technician can.")
	}
	summary := fmt.Sprintf("role of %s changed from %s to %s; they were logged out everywhere", a.Name, a.Role, role)
	if (role == auth.Technician || role == auth.DSL) && !a.TOTPRequired {
		summary += "; an authenticator is now required for them"
	}
	return manageResult{done: "role", entry: &audit.Entry{Action: "account.role", Summary: summary}}
}

func (s *Server) setDisabled(disable bool) func(r *http.Request, by auth.Session, a auth.Account) manageResult {
	return func(r *http.Request, by auth.Session, a auth.Account) manageResult {
		if a.Disabled == disable {
			return manageResult{done: "unchanged"}
		}
		if err := s.cfg.Auth.SetDisabled(r.Context(), by, a.Name, disable); err != nil {
			return s.manageErr(err, "You cannot disable or enable your own account; another technician can.")
		}
		if disable {
			return manageResult{done: "disabled", entry: &audit.Entry{Action: "account.disable",
				Summary: fmt.Sprintf("account %s disabled; they were logged out everywhere and cannot log in", a.Name)}}
		}
		return manageResult{done: "enabled", entry: &audit.Entry{Action: "account.enable",
			Summary: fmt.Sprintf("account %s enabled again", a.Name)}}
	}
}

func (s *Server) resetPassword(r *http.Request, by auth.Session, a auth.Account) manageResult {
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	switch {
	case a.Name == by.Account:
		return failed("", "Change your own password on My account.")
	case pw == "":
		return failed("password", "Enter a new temporary password.")
	}
	if err := auth.CheckPassword(a.Name, pw); err != nil {
		return failed("password", sentence(err))
	}
	if pw2 != pw {
		return failed("password2", "The two passwords differ.")
	}
	if err := s.cfg.Auth.ResetPassword(r.Context(), by, a.Name, pw); err != nil {
		if errors.Is(err, auth.ErrWeakPassword) {
			return failed("password", sentence(err))
		}
		return s.manageErr(err, "Change your own password on My account.")
	}
	return manageResult{done: "password", entry: &audit.Entry{Action: "account.password.reset",
		Summary: fmt.Sprintf("password of %s reset to a new temporary one; they were logged out everywhere", a.Name)}}
}

func (s *Server) resetTOTP(r *http.Request, by auth.Session, a auth.Account) manageResult {
	if err := s.cfg.Auth.ResetTOTP(r.Context(), by, a.Name); err != nil {
		return s.manageErr(err, "Set up your own authenticator again on My account.")
	}
	summary := fmt.Sprintf("authenticator and recovery codes of %s removed; they were logged out everywhere", a.Name)
	if a.TOTPRequired {
		summary += "; they set up a new authenticator at their next login"
	} else {
		summary += "; an authenticator is not required for them, so they log in with the password alone until they set one up"
	}
	return manageResult{done: "totp-reset", entry: &audit.Entry{Action: "account.totp.reset", Summary: summary}}
}

func (s *Server) setTOTPRequired(r *http.Request, by auth.Session, a auth.Account) manageResult {
	var on bool
	switch r.PostFormValue("required") {
	case "on":
		on = true
	case "off":
	default:
		return failed("required", "Choose whether an authenticator is required.")
	}
	if on == a.TOTPRequired {
		return manageResult{done: "unchanged"}
	}
	if err := s.cfg.Auth.SetTOTPRequired(r.Context(), by, a.Name, on); err != nil {
		return s.manageErr(err, "")
	}
	summary := fmt.Sprintf("TOTP requirement of %s turned on: they must use an authenticator", a.Name)
	if !a.TOTPEnrolled {
		summary += " and set one up at their next login"
	}
	if !on {
		summary = fmt.Sprintf("TOTP requirement of %s turned off: they may log in with the password alone", a.Name)
		if a.TOTPEnrolled {
			summary += " once their authenticator is reset; the one set up still asks for its code"
		}
	}
	return manageResult{done: "totp-required", entry: &audit.Entry{Action: "account.totp.required", Summary: summary}}
}

func (s *Server) logoutAccount(r *http.Request, by auth.Session, a auth.Account) manageResult {
	n, err := s.cfg.Auth.RevokeAll(r.Context(), a.Name)
	if err != nil {
		return s.manageErr(err, "")
	}
	entry := &audit.Entry{Action: "account.logout", Summary: fmt.Sprintf("%s logged out everywhere: %s ended", a.Name, sessionsText(n))}
	if a.Name == by.Account {
		return manageResult{entry: entry, loggedOut: true}
	}
	return manageResult{done: "logout", entry: entry}
}
