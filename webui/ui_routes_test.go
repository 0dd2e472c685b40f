package webui

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/auth"
)

// TestRouteRoleTable tries every page route with no session and with every role.
func TestRouteRoleTable(t *testing.T) {
	e, _, _, _ := newSystemEnv(t) // every optional part configured, so every route is live
	e.withAccounts()
	accounts := map[auth.Role]string{auth.Technician: "tech", auth.DSL: "dsl1", auth.Teacher: "teach1", auth.Viewer: "view1"}
	for _, rt := range e.srv.pageRoutes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.NewReplacer("{$}", "", "{name}", "pupils", "{id}", "1", "{n}", "1", "{mac}", "dc:a6:32:01:02:03").Replace(path)
		t.Run(rt.pattern+"/none", func(t *testing.T) {
			resp, _ := e.browser().do(method, path, url.Values{})
			if strings.HasPrefix(path, "/api/") {
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("no session: got %d, want 401", resp.StatusCode)
				}
			} else if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
				t.Errorf("no session: got %d %q, want 302 to /login", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
		for _, role := range auth.Roles() {
			t.Run(rt.pattern+"/"+string(role), func(t *testing.T) {
				b := e.browser()
				csrf := b.login(accounts[role])
				resp, page := b.do(method, path, url.Values{"csrf": {csrf}})
				// An allowed empty POST is answered by its handler: done (303), or the form
				// again saying what is missing (200, 422).
				allowed := []int{http.StatusOK}
				if method == http.MethodPost {
					allowed = []int{http.StatusSeeOther, http.StatusOK, http.StatusUnprocessableEntity}
				}
				if strings.HasPrefix(path, "/api/") { // without its parameters, an API call is a bad request
					allowed = append(allowed, http.StatusBadRequest)
				}
				if !auth.Can(role, rt.perm) {
					allowed = []int{http.StatusForbidden}
				}
				if !slices.Contains(allowed, resp.StatusCode) {
					t.Errorf("%s: got %d, want one of %v:\n%s", role, resp.StatusCode, allowed, page)
				}
				want := allowed[0]
				if want == http.StatusForbidden && !strings.Contains(page, "does not allow") {
					t.Errorf("403 page does not say why:\n%s", page)
				}
			})
		}
	}
	// The JSON API opens with the API token alone, and only with the right one; health is
	// open to all.
	for tok, want := range map[string]int{"": http.StatusUnauthorized, "Bearer wrong": http.StatusUnauthorized, "Bearer " + testAPIToken: http.StatusOK} {
		var hdr []string
		if tok != "" {
			hdr = []string{"Authorization", tok}
		}
		if resp, _ := e.browser().do("GET", "/api/status", nil, hdr...); resp.StatusCode != want {
			t.Errorf("/api/status with %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
	if resp, body := e.browser().get("/api/health"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "ok") {
		t.Errorf("/api/health: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.browser().get("/api/nothing"); resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("/api/nothing: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// An htmx request without a session is sent to the login page as a whole.
	resp, _ := e.browser().do("GET", "/fragments/components", nil, "HX-Request", "true")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/login" {
		t.Errorf("htmx without session: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
}

func TestDashboard(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	b.login("view1")
	_, page := b.get("/")
	for _, want := range []string{"view1", "viewer", "dns", "listening on 127.0.0.1:5353", "state-degraded", `hx-get="/fragments/components"`} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	resp, frag := b.get("/fragments/components")
	if resp.StatusCode != 200 || !strings.Contains(frag, "one list failed") || strings.Contains(frag, "<html") {
		t.Errorf("fragment: %d\n%s", resp.StatusCode, frag)
	}
	b = e.browser()
	b.login("teach1")
	if _, page := b.get("/"); !strings.Contains(page, "teacher") || strings.Contains(page, "listening on") {
		t.Errorf("teacher's start page shows components or no role:\n%s", page)
	}
}

func TestSetupFlow(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tok, err := e.store.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	if resp, _ := b.get("/setup"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("setup without token: %d", resp.StatusCode)
	}
	resp, page := b.get("/setup?token=" + url.QueryEscape(tok))
	if resp.StatusCode != 200 {
		t.Fatalf("setup form: %d", resp.StatusCode)
	}
	csrf := hidden(t, page, "csrf")
	form := func(token, name, pw, pw2 string) url.Values {
		return url.Values{"csrf": {csrf}, "token": {token}, "name": {name}, "password": {pw}, "password2": {pw2}}
	}
	// No CSRF field, or one from another browser: refused.
	if resp, _ := b.post("/setup", url.Values{"token": {tok}, "name": {"admin"}, "password": {testPassword}, "password2": {testPassword}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("setup without csrf: %d", resp.StatusCode)
	}
	other := e.browser()
	other.get("/login")
	if resp, _ := other.post("/setup", form(tok, "admin", testPassword, testPassword)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("setup with another browser's csrf: %d", resp.StatusCode)
	}
	// Field errors are shown next to their fields, and the name is kept.
	resp, page = b.post("/setup", form(tok, "Bad Name!", "short", "different"))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("invalid setup: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="password-error"`, "at least 12 characters", `id="password2-error"`, "The two passwords differ", `aria-invalid="true"`} {
		if !strings.Contains(page, want) {
			t.Errorf("invalid setup page lacks %q:\n%s", want, page)
		}
	}
	resp, page = b.post("/setup", form(tok, "bad name!", testPassword, testPassword))
	if !strings.Contains(page, `id="name-error"`) || resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad name: %d\n%s", resp.StatusCode, page)
	}
	// A wrong token is refused and creates nothing.
	if resp, _ := b.post("/setup", form("wrong-token", "admin", testPassword, testPassword)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	if need, _ := e.store.NeedsSetup(ctx); !need {
		t.Fatal("an account was created with a wrong token")
	}
	resp, _ = b.post("/setup", form(tok, "admin", testPassword, testPassword))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?created=1" {
		t.Fatalf("setup: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	a, err := e.store.Account(ctx, "admin")
	if err != nil || a.Role != auth.Technician {
		t.Fatalf("created account: %+v %v", a, err)
	}
	if entries := e.auditEntries(); len(entries) != 1 {
		t.Fatalf("audit entries: %+v", entries)
	}
	if got := e.auditEntries()[0]; got.Action != "account.create" || got.Actor != "admin" || got.Role != "technician" ||
		got.Object != "admin" || got.Address != "127.0.0.1" {
		t.Errorf("audit entry: %+v", got)
	}
	// The token is spent and the page is gone.
	if resp, _ := b.get("/setup?token=" + url.QueryEscape(tok)); resp.StatusCode != http.StatusGone {
		t.Errorf("setup after the first account: %d", resp.StatusCode)
	}
	if resp, _ := b.post("/setup", form(tok, "second", testPassword, testPassword)); resp.StatusCode != http.StatusGone {
		t.Errorf("second setup: %d", resp.StatusCode)
	}
	if _, err := e.store.Account(ctx, "second"); err == nil {
		t.Error("a second account was created through setup")
	}
}

func TestLoginWrongPasswordAndThrottle(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	_, page := b.get("/login")
	csrf := hidden(t, page, "csrf")
	resp, page := b.post("/login", url.Values{"csrf": {csrf}, "name": {"view1"}, "password": {"not-the-password"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Wrong account name or password") {
		t.Fatalf("wrong password: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "not-the-password") {
		t.Error("the page shows the password again")
	}
	if !strings.Contains(page, `value="view1"`) {
		t.Error("the account name is not kept")
	}
	// Empty fields are named next to the field.
	resp, page = b.post("/login", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="name-error"`) || !strings.Contains(page, `id="password-error"`) {
		t.Errorf("empty login: %d\n%s", resp.StatusCode, page)
	}
	var last *http.Response
	for range 8 {
		last, page = b.post("/login", url.Values{"csrf": {csrf}, "name": {"view1"}, "password": {"not-the-password"}})
	}
	if last.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "Too many failed attempts") || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after many failures: %d %q\n%s", last.StatusCode, last.Header.Get("Retry-After"), page)
	}
	// Without the pre-session token the login is refused before the password is checked.
	if resp, _ := e.browser().post("/login", url.Values{"name": {"view1"}, "password": {testPassword}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without csrf: %d", resp.StatusCode)
	}
}

func TestLoginTOTP(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tok, _ := e.store.SetupToken(ctx)
	if _, err := e.store.CreateFirst(ctx, tok, "tech", testPassword); err != nil {
		t.Fatal(err)
	}
	// First login: the technician must enrol; the page shows the otpauth URI and key.
	b := e.browser()
	_, page := b.get("/login")
	resp, page := b.post("/login", url.Values{"csrf": {hidden(t, page, "csrf")}, "name": {"tech"}, "password": {testPassword}})
	if resp.StatusCode != 200 || !strings.Contains(page, "otpauth://totp/") || !strings.Contains(page, "Set up your authenticator") {
		t.Fatalf("enrolment page: %d\n%s", resp.StatusCode, page)
	}
	secret := page[strings.Index(page, `id="totp-secret">`)+len(`id="totp-secret">`):]
	secret = secret[:strings.Index(secret, "<")]
	pending := hidden(t, page, "pending")
	resp, page = b.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")}, "pending": {pending}, "enrol": {"1"}, "account": {"tech"}, "code": {"000000"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `id="code-error"`) || !strings.Contains(page, "tech") {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, page)
	}
	if c := sessionCookieOf(resp); c != nil {
		t.Fatal("a wrong code set a session cookie")
	}
	resp, page = b.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")}, "pending": {pending}, "code": {totp(t, secret, e.clk.Now())}})
	if resp.StatusCode != 200 || !strings.Contains(page, `id="recovery-codes"`) {
		t.Fatalf("after enrolment: %d\n%s", resp.StatusCode, page)
	}
	recovery := page[strings.Index(page, `id="recovery-codes"`):]
	recovery = recovery[strings.Index(recovery, "<li>")+4:]
	recovery = recovery[:strings.Index(recovery, "</li>")]
	if _, page := b.get("/"); !strings.Contains(page, "technician") {
		t.Fatalf("not logged in after enrolment:\n%s", page)
	}
	// Second login, with a recovery code instead of the authenticator.
	b = e.browser()
	e.clk.Add(time.Minute)
	_, page = b.get("/login")
	resp, page = b.post("/login", url.Values{"csrf": {hidden(t, page, "csrf")}, "name": {"tech"}, "password": {testPassword}})
	if resp.StatusCode != 200 || !strings.Contains(page, "Authenticator code") || strings.Contains(page, "otpauth://") {
		t.Fatalf("code step: %d\n%s", resp.StatusCode, page)
	}
	// The pending token alone, from another browser, gets nowhere: login CSRF is refused.
	other := e.browser()
	_, opage := other.get("/login")
	if resp, _ := other.post("/login/totp", url.Values{"csrf": {hidden(t, opage, "csrf")}, "pending": {"x" + hidden(t, page, "pending")}, "code": {recovery}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("made-up pending token: %d", resp.StatusCode)
	}
	resp, _ = b.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")}, "pending": {hidden(t, page, "pending")}, "code": {recovery}})
	if resp.StatusCode != http.StatusSeeOther || sessionCookieOf(resp) == nil {
		t.Fatalf("recovery code login: %d", resp.StatusCode)
	}
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c
		}
	}
	return nil
}

func TestCSRFAndLogout(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("view1")
	for _, form := range []url.Values{{}, {"csrf": {"wrong"}}, {"csrf": {csrf + "x"}}} {
		if resp, _ := b.post("/logout", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("logout with %v: %d", form, resp.StatusCode)
		}
	}
	// A cross-site POST is refused even with the right token.
	if resp, _ := b.do("POST", "/logout", url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/"); resp.StatusCode != 200 {
		t.Fatalf("refused logouts logged out: %d", resp.StatusCode)
	}
	// The header form, as htmx sends it, is accepted like the field.
	resp, _ := b.do("POST", "/logout", url.Values{}, csrfHeader, csrf)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?out=1" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusFound {
		t.Errorf("after logout: %d", resp.StatusCode)
	}

	// An idle session expires: back to the login page, which says why.
	b = e.browser()
	b.login("view1")
	e.clk.Add(31 * time.Minute)
	resp, _ = b.get("/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login?expired=1" {
		t.Errorf("expired session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := b.get("/login?expired=1"); !strings.Contains(page, "Your session expired") {
		t.Error("login page does not say the session expired")
	}
}

func TestCookieAttributes(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	_, page := b.get("/login")
	resp, _ := b.post("/login", url.Values{"csrf": {hidden(t, page, "csrf")}, "name": {"view1"}, "password": {testPassword}})
	var raw string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, sessionCookie+"=") {
			raw = v
		}
	}
	for _, want := range []string{"Path=/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(raw, want) {
			t.Errorf("session cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Secure") {
		t.Errorf("session cookie over plain HTTP is Secure (would never come back): %q", raw)
	}
	// Over TLS every cookie is Secure.
	req := httptest.NewRequest("GET", "/login", nil)
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if c := rec.Header().Get("Set-Cookie"); !strings.Contains(c, preCookie+"=") || !strings.Contains(c, "Secure") {
		t.Errorf("cookie over TLS: %q", c)
	}
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
}

func TestStaticAndHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp, page := b.get("/login")
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP: %q", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" ||
		h.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("security headers: %v", h)
	}
	if strings.Contains(page, "style=") || strings.Contains(page, "<style") || strings.Contains(page, "<script>") {
		t.Error("the page has inline style or script, which the CSP forbids")
	}
	for _, tt := range []struct{ name, ctype string }{{"app.css", "text/css; charset=utf-8"}, {"htmx.min.js", "text/javascript; charset=utf-8"}} {
		u, _ := e.srv.assets.url(tt.name)
		if !strings.Contains(page, u) {
			t.Errorf("page does not link %s", u)
		}
		resp, body := b.get(u)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype || len(body) < 100 {
			t.Errorf("%s: %d %q", u, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("%s: Cache-Control %q", u, cc)
		}
		resp, _ = b.do("GET", u, nil, "If-None-Match", resp.Header.Get("ETag"))
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidated: %d", u, resp.StatusCode)
		}
	}
	for _, p := range []string{"/static/", "/static/README.md", "/static/htmx.LICENSE", "/static/nope.css"} {
		if resp, _ := b.get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	if resp, page := b.get("/no-such-page"); resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "Not found") {
		t.Errorf("unknown page: %d", resp.StatusCode)
	}
}

// Without an accounts store the server is the JSON API alone, as before.
func TestAPIOnlyWithoutAuth(t *testing.T) {
	s, err := New(Config{Explainer: fakeExplainer{}, Events: fakeEvents{}, Status: func(context.Context) Status { return Status{} }})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/api/status": 200, "/login": 404, "/": 404, "/static/app.css": 404} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
	if _, err := New(Config{Explainer: fakeExplainer{}, Events: fakeEvents{}, Status: func(context.Context) Status { return Status{} },
		Auth: &auth.Store{}}); err == nil {
		t.Error("New accepted an accounts store without an audit log")
	}
}

// While the appliance is still starting, or already stopping, health says so: monitoring
// and service managers must not take a listening UI for a filtering gateway.
func TestHealthWhileStarting(t *testing.T) {
	var state atomic.Value
	state.Store("starting")
	e := newEnvWith(t, func(c *Config) { c.Health = func() string { return state.Load().(string) } })
	for _, tc := range []struct {
		state string
		code  int
	}{{"starting", http.StatusServiceUnavailable}, {"ok", http.StatusOK}, {"stopping", http.StatusServiceUnavailable}} {
		state.Store(tc.state)
		if resp, body := e.browser().get("/api/health"); resp.StatusCode != tc.code || !strings.Contains(body, `"`+tc.state+`"`) {
			t.Errorf("/api/health while %s: %d %s", tc.state, resp.StatusCode, body)
		}
	}
}
