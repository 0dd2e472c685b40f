package webui

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/webui/qr"
)

// between returns the text of page after start up to end.
func between(t *testing.T, page, start, end string) string {
	t.Helper()
	i := strings.Index(page, start)
	if i < 0 {
		t.Fatalf("no %q in page:\n%s", start, page)
	}
	rest := page[i+len(start):]
	j := strings.Index(rest, end)
	if j < 0 {
		t.Fatalf("no %q after %q", end, start)
	}
	return rest[:j]
}

var liRE = regexp.MustCompile(`<li>([^<]*)</li>`)

// recoveryCodes returns the codes of a recovery codes list in page.
func recoveryCodes(t *testing.T, page string) []string {
	t.Helper()
	var out []string
	for _, m := range liRE.FindAllStringSubmatch(between(t, page, `id="recovery-codes"`, "</ol>"), -1) {
		out = append(out, m[1])
	}
	return out
}

// loginWith logs in through the login form with a password and returns the answer.
func (b *browser) loginWith(name, password string) (*http.Response, string) {
	b.e.t.Helper()
	_, page := b.get("/login")
	return b.post("/login", url.Values{"csrf": {hidden(b.e.t, page, "csrf")}, "name": {name}, "password": {password}})
}

// lastAudit returns the newest audit entry with action, failing if there is none.
func (e *env) lastAudit(action string) audit.Entry {
	e.t.Helper()
	entries := e.auditEntries()
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Action == action {
			return entries[i]
		}
	}
	e.t.Fatalf("no %s in the audit trail: %+v", action, entries)
	return audit.Entry{}
}

// noSecretsAudited fails if any audit entry contains one of the secrets.
func (e *env) noSecretsAudited(secrets ...string) {
	e.t.Helper()
	raw, _ := json.Marshal(e.auditEntries())
	for _, s := range secrets {
		if s != "" && strings.Contains(string(raw), s) {
			e.t.Errorf("the audit trail contains the secret %q", s)
		}
	}
}

func wantIn(t *testing.T, what, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, page)
		}
	}
	if strings.Contains(page, "style=") {
		t.Errorf("%s has an inline style, which the CSP forbids", what)
	}
}

const newPassword = "river-candle-orchard-17"

func TestAccountsCreate(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	resp, page := b.get("/accounts")
	if resp.StatusCode != 200 {
		t.Fatalf("/accounts: %d", resp.StatusCode)
	}
	wantIn(t, "accounts page", page, `id="acct-dsl1"`, `id="acct-teach1"`, `id="acct-view1"`, "tech</a> (you)",
		`id="manage-teach1"`, `action="/accounts/teach1/disable"`, `<select id="role" name="role"`)

	// Every problem is named next to its field; the name and role typed are kept.
	resp, page = b.post("/accounts", url.Values{"csrf": {csrf}, "name": {"Bad Name!"}, "role": {"dsl"},
		"password": {"short"}, "password2": {"other"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("invalid account: %d", resp.StatusCode)
	}
	wantIn(t, "invalid account", page, `id="name-error"`, "Account name must be", `id="password-error"`, "at least 12 characters",
		`id="password2-error"`, "The two passwords differ", `aria-invalid="true"`, `value="bad name!"`,
		`<option value="dsl" selected>`, "The account was not created")
	if strings.Contains(page, `value="short"`) || strings.Contains(page, `value="other"`) {
		t.Error("a password is shown again")
	}
	// A weak password alone, and a taken name.
	_, page = b.post("/accounts", url.Values{"csrf": {csrf}, "name": {"j.smith"}, "role": {"teacher"},
		"password": {"j.smith-is-my-password"}, "password2": {"j.smith-is-my-password"}})
	wantIn(t, "weak password", page, `id="password-error"`, "must not contain the account name", `value="j.smith"`)
	_, page = b.post("/accounts", url.Values{"csrf": {csrf}, "name": {"teach1"}, "role": {"teacher"},
		"password": {newPassword}, "password2": {newPassword}})
	wantIn(t, "taken name", page, `id="name-error"`, "There is an account called teach1 already")

	resp, _ = b.post("/accounts", url.Values{"csrf": {csrf}, "name": {" J.Smith "}, "role": {"teacher"},
		"password": {newPassword}, "password2": {newPassword}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/accounts?done=created&name=j.smith" {
		t.Fatalf("create: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = b.get(resp.Header.Get("Location"))
	wantIn(t, "after create", page, "Account j.smith created as teacher", `id="acct-j.smith"`)
	a, err := e.store.Account(t.Context(), "j.smith")
	if err != nil || a.Role != auth.Teacher || a.TOTPRequired {
		t.Fatalf("created: %+v %v", a, err)
	}
	got := e.lastAudit("account.create")
	if got.Actor != "tech" || got.Role != "technician" || got.Object != "j.smith" || !strings.Contains(got.Summary, "teacher") {
		t.Errorf("audit: %+v", got)
	}
	e.noSecretsAudited(newPassword, "j.smith-is-my-password")

	// The new teacher logs in with the temporary password.
	tb := e.browser()
	resp, _ = tb.loginWith("j.smith", newPassword)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login of the new teacher: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = tb.get("/account")
	wantIn(t, "new teacher's account", page, `id="account-name">j.smith<`, `id="account-role">teacher<`, `id="totp-status">not set up<`)

	// A DSL made here must enrol at first login.
	b.post("/accounts", url.Values{"csrf": {csrf}, "name": {"dsl2"}, "role": {"dsl"}, "password": {newPassword}, "password2": {newPassword}})
	resp, page = e.browser().loginWith("dsl2", newPassword)
	if resp.StatusCode != 200 || !strings.Contains(page, "Set up your authenticator") {
		t.Errorf("new DSL's first login: %d\n%s", resp.StatusCode, page)
	}
}

func TestAccountsForbiddenToOthers(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	for _, name := range []string{"teach1", "dsl1", "view1"} {
		b := e.browser()
		csrf := b.login(name)
		resp, page := b.get("/accounts")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "does not allow") {
			t.Errorf("%s on /accounts: %d", name, resp.StatusCode)
		}
		resp, _ = b.post("/accounts", url.Values{"csrf": {csrf}, "name": {"sneaky"}, "role": {"technician"},
			"password": {newPassword}, "password2": {newPassword}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s creating an account: %d", name, resp.StatusCode)
		}
		if resp, _ := b.post("/accounts/tech/disable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s disabling tech: %d", name, resp.StatusCode)
		}
		// The navigation does not offer the page either.
		if _, page := b.get("/"); strings.Contains(page, `href="/accounts"`) || !strings.Contains(page, `href="/account"`) {
			t.Errorf("%s's navigation:\n%s", name, page)
		}
	}
	if _, err := e.store.Account(t.Context(), "sneaky"); err == nil {
		t.Error("an account was created by a non-technician")
	}
	if a, _ := e.store.Account(t.Context(), "tech"); a.Disabled {
		t.Error("tech was disabled by a non-technician")
	}
}

func TestAccountsTOTPRequired(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	// dsl1's requirement is off (withAccounts); turn it on, then off again.
	resp, _ := b.post("/accounts/dsl1/totp-required", url.Values{"csrf": {csrf}, "required": {"on"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("requiring TOTP: %d", resp.StatusCode)
	}
	_, page := b.get(resp.Header.Get("Location"))
	wantIn(t, "after requiring", page, "dsl1 must use an authenticator now", `action="/accounts/dsl1/totp-required"`,
		`name="required" value="off"`)
	if got := e.lastAudit("account.totp.required"); got.Object != "dsl1" || !strings.Contains(got.Summary, "turned on") {
		t.Errorf("audit of turning on: %+v", got)
	}
	resp, page = e.browser().loginWith("dsl1", testPassword)
	if resp.StatusCode != 200 || !strings.Contains(page, "Set up your authenticator") {
		t.Fatalf("dsl1 must enrol now: %d", resp.StatusCode)
	}

	resp, _ = b.post("/accounts/dsl1/totp-required", url.Values{"csrf": {csrf}, "required": {"off"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("not requiring TOTP: %d", resp.StatusCode)
	}
	_, page = b.get(resp.Header.Get("Location"))
	wantIn(t, "after not requiring", page, "dsl1 no longer has to use an authenticator")
	got := e.lastAudit("account.totp.required")
	if got.Actor != "tech" || got.Object != "dsl1" || !strings.Contains(got.Summary, "turned off") {
		t.Errorf("audit of turning off: %+v", got)
	}
	if resp, _ := e.browser().loginWith("dsl1", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("dsl1 without TOTP: %d", resp.StatusCode)
	}
	// The same again changes nothing and records nothing; a missing choice is named.
	n := len(e.auditEntries())
	resp, _ = b.post("/accounts/dsl1/totp-required", url.Values{"csrf": {csrf}, "required": {"off"}})
	if _, page := b.get(resp.Header.Get("Location")); !strings.Contains(page, "Nothing changed for dsl1") {
		t.Error("no 'nothing changed' notice")
	}
	resp, page = b.post("/accounts/dsl1/totp-required", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="required-dsl1-error"`) ||
		!strings.Contains(page, `id="manage-dsl1" open`) {
		t.Errorf("no choice: %d\n%s", resp.StatusCode, page)
	}
	if len(e.auditEntries()) != n {
		t.Error("a change that changed nothing was audited")
	}
}

func TestAccountsDisable(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	teacher := e.browser()
	teacher.login("teach1")
	b := e.browser()
	csrf := b.login("tech")
	resp, _ := b.post("/accounts/teach1/disable", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	_, page := b.get(resp.Header.Get("Location"))
	wantIn(t, "after disabling", page, "teach1 is disabled and was logged out everywhere", `action="/accounts/teach1/enable"`)
	if got := e.lastAudit("account.disable"); got.Object != "teach1" || got.Actor != "tech" {
		t.Errorf("audit: %+v", got)
	}
	// The teacher's session is over, and logging in is refused.
	if resp, _ := teacher.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("disabled teacher's session: %d", resp.StatusCode)
	}
	resp, page = e.browser().loginWith("teach1", testPassword)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "This account is disabled") {
		t.Errorf("disabled login: %d", resp.StatusCode)
	}
	// One's own account cannot be disabled; the page offers no button for it either.
	if _, page := b.get("/accounts"); strings.Contains(page, `action="/accounts/tech/disable"`) || !strings.Contains(page, `id="manage-tech"`) {
		t.Error("the page offers to disable oneself")
	}
	resp, page = b.post("/accounts/tech/disable", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "cannot disable or enable your own account") {
		t.Errorf("disabling oneself: %d\n%s", resp.StatusCode, page)
	}
	// No such account.
	resp, page = b.post("/accounts/nobody/disable", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "There is no account called &#34;nobody&#34;") {
		t.Errorf("unknown account: %d\n%s", resp.StatusCode, page)
	}
	// Enabled again, the teacher logs in.
	if resp, _ := b.post("/accounts/teach1/enable", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", resp.StatusCode)
	}
	if got := e.lastAudit("account.enable"); got.Object != "teach1" {
		t.Errorf("audit: %+v", got)
	}
	if resp, _ := e.browser().loginWith("teach1", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("enabled login: %d", resp.StatusCode)
	}
}

func TestAccountsRoleChange(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	viewer := e.browser()
	viewer.login("view1")
	b := e.browser()
	csrf := b.login("tech")
	// An unknown role is named next to the row's field, which keeps the choice.
	resp, page := b.post("/accounts/view1/role", url.Values{"csrf": {csrf}, "role": {"headteacher"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="role-view1-error"`) ||
		!strings.Contains(page, `id="manage-view1" open`) || !strings.Contains(page, `aria-describedby="role-view1-error"`) {
		t.Errorf("bad role: %d\n%s", resp.StatusCode, page)
	}
	resp, _ = b.post("/accounts/view1/role", url.Values{"csrf": {csrf}, "role": {"dsl"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("role change: %d", resp.StatusCode)
	}
	_, page = b.get(resp.Header.Get("Location"))
	wantIn(t, "after role change", page, "view1 is now dsl", `<option value="dsl" selected>DSL`)
	got := e.lastAudit("account.role")
	if got.Object != "view1" || !strings.Contains(got.Summary, "from viewer to dsl") || !strings.Contains(got.Summary, "authenticator is now required") {
		t.Errorf("audit: %+v", got)
	}
	if resp, _ := viewer.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("session after role change: %d", resp.StatusCode)
	}
	// As a DSL the account must enrol now.
	if resp, page := e.browser().loginWith("view1", testPassword); resp.StatusCode != 200 || !strings.Contains(page, "Set up your authenticator") {
		t.Errorf("login after becoming DSL: %d", resp.StatusCode)
	}
	// One's own role cannot be changed here.
	resp, page = b.post("/accounts/tech/role", url.Values{"csrf": {csrf}, "role": {"viewer"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "You cannot change your own role") ||
		!strings.Contains(page, `id="row-tech-error"`) {
		t.Errorf("own role: %d\n%s", resp.StatusCode, page)
	}
	if a, _ := e.store.Account(t.Context(), "tech"); a.Role != auth.Technician {
		t.Error("tech demoted themselves")
	}
}

func TestAccountsResetTOTPAndPassword(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	// dsl1 enrols: require it, then dsl1 logs in and answers with a code from the key shown.
	b.post("/accounts/dsl1/totp-required", url.Values{"csrf": {csrf}, "required": {"on"}})
	d := e.browser()
	_, page := d.loginWith("dsl1", testPassword)
	secret := between(t, page, `id="totp-secret">`, "<")
	resp, _ := d.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")}, "pending": {hidden(t, page, "pending")},
		"code": {totp(t, secret, e.clk.Now())}})
	if resp.StatusCode != 200 {
		t.Fatalf("dsl1 enrolment: %d", resp.StatusCode)
	}
	_, page = b.get("/accounts")
	wantIn(t, "accounts with dsl1 enrolled", page, `action="/accounts/dsl1/totp-reset"`, `id="totp-reset-dsl1"`)

	// A lost phone: the technician removes the authenticator; dsl1 must enrol again.
	resp, _ = b.post("/accounts/dsl1/totp-reset", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("TOTP reset: %d", resp.StatusCode)
	}
	_, page = b.get(resp.Header.Get("Location"))
	wantIn(t, "after TOTP reset", page, "The authenticator of dsl1 was removed. They set up a new one at their next login.")
	if got := e.lastAudit("account.totp.reset"); got.Object != "dsl1" || got.Actor != "tech" {
		t.Errorf("audit: %+v", got)
	}
	if resp, _ := d.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("dsl1's session after the reset: %d", resp.StatusCode)
	}
	resp, page = e.browser().loginWith("dsl1", testPassword)
	if resp.StatusCode != 200 || !strings.Contains(page, "Set up your authenticator") || strings.Contains(page, secret) {
		t.Errorf("login after TOTP reset: %d", resp.StatusCode)
	}

	// A forgotten password: the technician sets a temporary one.
	teacher := e.browser()
	teacher.login("teach1")
	resp, page = b.post("/accounts/teach1/password", url.Values{"csrf": {csrf}, "password": {newPassword}, "password2": {"typo" + newPassword}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="password2-teach1-error"`) {
		t.Errorf("mismatch: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.post("/accounts/teach1/password", url.Values{"csrf": {csrf}, "password": {"password1234"}, "password2": {"password1234"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="password-teach1-error"`) || !strings.Contains(page, "too common") {
		t.Errorf("weak: %d\n%s", resp.StatusCode, page)
	}
	resp, _ = b.post("/accounts/teach1/password", url.Values{"csrf": {csrf}, "password": {newPassword}, "password2": {newPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("password reset: %d", resp.StatusCode)
	}
	if got := e.lastAudit("account.password.reset"); got.Object != "teach1" {
		t.Errorf("audit: %+v", got)
	}
	if resp, _ := teacher.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("teacher's session after the reset: %d", resp.StatusCode)
	}
	if resp, _ := e.browser().loginWith("teach1", newPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login with the temporary password: %d", resp.StatusCode)
	}
	e.noSecretsAudited(newPassword, "password1234", secret)

	// Logging another account out everywhere.
	teacher = e.browser()
	teacher.loginWith("teach1", newPassword)
	resp, _ = b.post("/accounts/teach1/logout", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if got := e.lastAudit("account.logout"); got.Object != "teach1" || !strings.Contains(got.Summary, "2 sessions ended") {
		t.Errorf("audit: %+v", got)
	}
	if resp, _ := teacher.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("teacher's session after logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/accounts"); resp.StatusCode != 200 {
		t.Errorf("the technician was logged out too: %d", resp.StatusCode)
	}
}

func TestMyAccountPassword(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	other := e.browser()
	other.login("view1")
	b := e.browser()
	csrf := b.login("view1")
	_, page := b.get("/account")
	wantIn(t, "my account", page, `id="account-name">view1<`, `id="account-role">viewer<`, `id="totp-status">not set up<`,
		`id="last-login">Mon 23 Nov 2026 09:00<`, `action="/account/password"`, `action="/account/totp"`, `action="/account/logout-everywhere"`,
		`aria-current="page">My account`)

	// A wrong current password is named next to its field.
	resp, page := b.post("/account/password", url.Values{"csrf": {csrf}, "current": {"not-my-password"}, "new": {newPassword}, "new2": {newPassword}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("wrong current password: %d", resp.StatusCode)
	}
	wantIn(t, "wrong current password", page, `id="current-error"`, "That password is wrong", `aria-describedby="current-error"`)
	if strings.Contains(page, newPassword) || strings.Contains(page, "not-my-password") {
		t.Error("a password is shown again")
	}
	_, page = b.post("/account/password", url.Values{"csrf": {csrf}, "current": {testPassword}, "new": {newPassword}, "new2": {"x"}})
	wantIn(t, "mismatch", page, `id="new2-error"`, "The two new passwords differ")
	_, page = b.post("/account/password", url.Values{"csrf": {csrf}, "current": {testPassword}, "new": {testPassword}, "new2": {testPassword}})
	wantIn(t, "same password", page, `id="new-error"`, "must differ from the current one")

	resp, _ = b.post("/account/password", url.Values{"csrf": {csrf}, "current": {testPassword}, "new": {newPassword}, "new2": {newPassword}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account?done=password" || sessionCookieOf(resp) == nil {
		t.Fatalf("password change: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// This browser carries on with the new session; the other one is logged out.
	resp, page = b.get("/account?done=password")
	if resp.StatusCode != 200 || !strings.Contains(page, "Your password was changed") {
		t.Fatalf("after the change: %d", resp.StatusCode)
	}
	if hidden(t, page, "csrf") == csrf {
		t.Error("the CSRF token did not change with the session")
	}
	if resp, _ := other.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("other session after the change: %d", resp.StatusCode)
	}
	if got := e.lastAudit("account.password.change"); got.Actor != "view1" || got.Object != "view1" {
		t.Errorf("audit: %+v", got)
	}
	// The old password no longer works; the new one does.
	if resp, _ := e.browser().loginWith("view1", testPassword); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old password: %d", resp.StatusCode)
	}
	if resp, _ := e.browser().loginWith("view1", newPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("new password: %d", resp.StatusCode)
	}
	e.noSecretsAudited(newPassword, testPassword)
}

func TestMyAccountReenrolAndRecovery(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/account")
	wantIn(t, "technician's account", page, `id="totp-status">set up<`, `id="recovery-left">10 of 10<`, "Set up a new authenticator",
		`action="/account/recovery"`)

	// Wrong password: nothing starts.
	resp, page := b.post("/account/totp", url.Values{"csrf": {csrf}, "totp_password": {"not-my-password"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="totp_password-error"`) || strings.Contains(page, "<svg") {
		t.Errorf("wrong password: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.post("/account/totp", url.Values{"csrf": {csrf}, "totp_password": {testPassword}})
	if resp.StatusCode != 200 {
		t.Fatalf("begin: %d", resp.StatusCode)
	}
	wantIn(t, "enrolment", page, `<svg xmlns="http://www.w3.org/2000/svg" class="qr" role="img"`, `id="totp-secret"`,
		"otpauth://totp/schoolgate:tech", `action="/account/totp/confirm"`, "Your current authenticator keeps")
	secret := between(t, page, `id="totp-secret">`, "<")
	checkQR(t, page)

	// A wrong code is named next to the field; the key is not sent again.
	resp, page = b.post("/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {"000000"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="code-error"`) || strings.Contains(page, secret) {
		t.Errorf("wrong code: %d\n%s", resp.StatusCode, page)
	}
	// The old authenticator still works meanwhile; it is only replaced by the first code.
	e.clk.Add(31 * time.Second)
	resp, page = b.post("/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {totp(t, secret, e.clk.Now())}})
	if resp.StatusCode != 200 {
		t.Fatalf("confirm: %d\n%s", resp.StatusCode, page)
	}
	codes := recoveryCodes(t, page)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes after enrolment", len(codes))
	}
	wantIn(t, "enrolment done", page, "Your authenticator is set up", "shown only once")
	if got := e.lastAudit("account.totp.enrol"); got.Object != "tech" || !strings.Contains(got.Summary, "replaced") {
		t.Errorf("audit: %+v", got)
	}
	e.secrets["tech"] = secret
	// The new authenticator logs in (the helper answers with a code from the new key).
	b2 := e.browser()
	b2.login("tech")

	// New recovery codes: ten, shown once; the old ones stop working.
	resp, page = b.post("/account/recovery", url.Values{"csrf": {csrf}, "recovery_password": {testPassword}})
	if resp.StatusCode != 200 {
		t.Fatalf("renew: %d", resp.StatusCode)
	}
	renewed := recoveryCodes(t, page)
	if len(renewed) != 10 || renewed[0] == codes[0] {
		t.Fatalf("renewed codes: %v", renewed)
	}
	wantIn(t, "renewed", page, "Your old codes no longer work")
	if got := e.lastAudit("account.recovery.renew"); got.Object != "tech" || got.Actor != "tech" {
		t.Errorf("audit: %+v", got)
	}
	e.noSecretsAudited(append(append([]string{secret}, codes...), renewed...)...)

	// A login with a recovery code is audited, with how many are left.
	lb := e.browser()
	resp, page = lb.loginWith("tech", testPassword)
	if resp.StatusCode != 200 {
		t.Fatalf("code step: %d", resp.StatusCode)
	}
	if resp, _ := lb.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")}, "pending": {hidden(t, page, "pending")}, "code": {codes[1]}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an old recovery code: %d", resp.StatusCode)
	}
	resp, _ = lb.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")}, "pending": {hidden(t, page, "pending")}, "code": {renewed[3]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("recovery code login: %d", resp.StatusCode)
	}
	if got := e.lastAudit("account.recovery.used"); got.Actor != "tech" || got.Object != "tech" || !strings.Contains(got.Summary, "9 are left") {
		t.Errorf("audit: %+v", got)
	}
	if _, page := lb.get("/account"); !strings.Contains(page, `id="recovery-left">9 of 10<`) {
		t.Error("the account page does not show 9 codes left")
	}
}

func TestMyAccountRecoveryNeedsAuthenticator(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("teach1")
	_, page := b.get("/account")
	if strings.Contains(page, `action="/account/recovery"`) {
		t.Error("recovery codes offered without an authenticator")
	}
	resp, page := b.post("/account/recovery", url.Values{"csrf": {csrf}, "recovery_password": {testPassword}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "You have no authenticator yet") {
		t.Errorf("recovery without authenticator: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.post("/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {"123456"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "No authenticator set-up is under way") {
		t.Errorf("confirm without begin: %d\n%s", resp.StatusCode, page)
	}
	// A teacher may set one up of their own accord.
	_, page = b.post("/account/totp", url.Values{"csrf": {csrf}, "totp_password": {testPassword}})
	secret := between(t, page, `id="totp-secret">`, "<")
	e.clk.Add(31 * time.Second)
	_, page = b.post("/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {totp(t, secret, e.clk.Now())}})
	if len(recoveryCodes(t, page)) != 10 {
		t.Fatalf("no recovery codes:\n%s", page)
	}
	if got := e.lastAudit("account.totp.enrol"); got.Object != "teach1" || strings.Contains(got.Summary, "replaced") {
		t.Errorf("audit: %+v", got)
	}
	e.secrets["teach1"] = secret
	e.browser().login("teach1") // now with a code
}

func TestMyAccountLogoutEverywhere(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	other := e.browser()
	other.login("dsl1")
	b := e.browser()
	csrf := b.login("dsl1")
	resp, _ := b.post("/account/logout-everywhere", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?out=1" {
		t.Fatalf("logout everywhere: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, br := range []*browser{b, other} {
		if resp, _ := br.get("/account"); resp.StatusCode != http.StatusFound {
			t.Errorf("a session survived: %d", resp.StatusCode)
		}
	}
	if got := e.lastAudit("account.logout"); got.Actor != "dsl1" || got.Object != "dsl1" || !strings.Contains(got.Summary, "2 sessions ended") {
		t.Errorf("audit: %+v", got)
	}
}

// The enrolment page at a technician's first login shows the otpauth URI as a QR code.
func TestEnrolmentQRCode(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.store.SetupToken(t.Context())
	if _, err := e.store.CreateFirst(t.Context(), tok, "tech", testPassword); err != nil {
		t.Fatal(err)
	}
	resp, page := e.browser().loginWith("tech", testPassword)
	if resp.StatusCode != 200 {
		t.Fatalf("enrolment page: %d", resp.StatusCode)
	}
	wantIn(t, "enrolment page", page, `<figure class="qr"><svg`, `role="img"`, `aria-label="`+qr.Label+`"`, `id="totp-secret"`)
	checkQR(t, page)
}

var squareRE = regexp.MustCompile(`M(\d+) (\d+)h1v1h-1z`)

// checkQR finds the SVG QR code in page and checks that its squares are exactly the dark
// modules of the page's otpauth URI, encoded afresh.
func checkQR(t *testing.T, page string) {
	t.Helper()
	uri := html.UnescapeString(between(t, page, `id="totp-uri">`, "<"))
	secret := between(t, page, `id="totp-secret">`, "<")
	if !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "secret="+secret+"&") {
		t.Fatalf("URI %q", uri)
	}
	svg := "<svg" + between(t, page, "<svg", "</svg>")
	if !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, "aria-label=") || strings.Contains(svg, secret) {
		t.Errorf("SVG: %.300s", svg)
	}
	m, err := qr.Encode(uri)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(svg, `viewBox="0 0 `+strconv.Itoa(m.Size+2*qr.QuietZone)+` `) {
		t.Errorf("viewBox is not the code's size %d with its quiet zone", m.Size)
	}
	squares := squareRE.FindAllStringSubmatch(svg, -1)
	dark := 0
	for _, row := range m.Dark {
		for _, d := range row {
			if d {
				dark++
			}
		}
	}
	if len(squares) != dark {
		t.Fatalf("%d squares for %d dark modules", len(squares), dark)
	}
	for _, sq := range squares {
		x, _ := strconv.Atoi(sq[1])
		y, _ := strconv.Atoi(sq[2])
		if !m.Dark[y-qr.QuietZone][x-qr.QuietZone] {
			t.Fatalf("square at %d,%d on a light module", x, y)
		}
	}
}
