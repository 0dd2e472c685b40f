package main

// Browser tests of exceptions: a teacher asks for a site for a lesson, the DSL grants it for
// a while, pupils' DNS answers follow and go back when it ends; and a pupil asks for a review
// from the block page, which the DSL approves. Each person has a browser context of their own
// (their own cookies, as on their own computer) in the test's one chromium.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// newTab opens a tab in a new browser context of the browser of ctx (see newBrowser): another
// person's browser, with cookies of its own, whose console messages join the test's failure
// reports. opts set up the context, e.g. a proxy (pupilBrowser). The context is closed at the
// end of the test. (newTab would sit well in browser_test.go beside newBrowser, whose console
// loop it repeats.)
func newTab(t *testing.T, ctx context.Context, opts ...chromedp.CreateBrowserContextOption) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext(opts...))
	t.Cleanup(cancel)
	// As in newBrowser, the first action creates the tab and must run on the context
	// NewContext made: the tab lives as long as that context.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tctx) }()
	select {
	case err := <-started:
		if err != nil {
			failf(t, ctx, "opening a tab in a new browser context: %v", err)
		}
	case <-time.After(stepTimeout):
		cancel()
		failf(t, ctx, "opening a tab in a new browser context: no tab after %v", stepTimeout)
	}
	if st := stateOf(ctx); st != nil {
		recordConsole(tctx, st)
	}
	return tctx
}

// pupilBrowser opens a tab that browses as a pupil's computer on the pupils' network: every
// http:// address it opens (other than loopback, which chromium never proxies) goes, through
// a proxy in the test, to the daemon's block page server from the pupil's address 127.0.0.2,
// as the DNS answer of a blockpage profile would send it. Chromium cannot choose its source
// address, and from 127.0.0.1 it would be staff.
func pupilBrowser(t *testing.T, ctx context.Context, d *daemonProc) context.Context {
	t.Helper()
	toBlockPage := clientFrom(pupil, d.blockURL).Transport
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// A proxied request has the absolute address; it and the Host header go on as they are.
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		},
		Transport: toBlockPage,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			// HTTPS: the appliance has no block page on port 443, so the connection ends at
			// once, as the real one's would. (Chromium first tries https:// for an http://
			// address, and on such an error goes back to http://.)
			w.WriteHeader(http.StatusOK)
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		if r.URL.Scheme != "http" || r.URL.Host == "" {
			http.Error(w, "the pupil's proxy takes proxied http:// addresses only", http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return newTab(t, ctx, func(p *target.CreateBrowserContextParams) {
		p.ProxyServer = srv.URL
	})
}

// byID is the CSS selector of the element with the id given, which may hold dots (account
// names such as m.hughes do).
func byID(id string) string { return fmt.Sprintf("[id=%s]", jsString(id)) }

// enrolAtFirstLogin logs in for the first time an account that must set up an authenticator:
// password, the key the page shows, its code, the recovery codes, the start page. It returns
// the key. (firstTechnician walks the same steps after its setup link and could use it.)
func enrolAtFirstLogin(t *testing.T, ctx context.Context, d *daemonProc, name, password string) string {
	t.Helper()
	open(t, ctx, d.apiURL+"/login")
	step(t, ctx, "first login of "+name,
		fill("#name", name), fill("#password", password), submit(`main button[type="submit"]`))
	wantText(t, ctx, "h1", "Set up your authenticator")
	secret := textOf(t, ctx, "#totp-secret")
	step(t, ctx, "confirm "+name+"'s authenticator with its code",
		fill("#code", totpCode(t, secret)), submit(`main button[type="submit"]`))
	wantText(t, ctx, "h1", "Your recovery codes")
	step(t, ctx, "continue to the start page", click(`main a[href="/"]`))
	wantPath(t, ctx, "/")
	wantText(t, ctx, "#account", name)
	return secret
}

// createAccount creates an account on the Accounts page as the technician logged in on ctx,
// and checks the notice and the accounts table. It returns the notice.
func createAccount(t *testing.T, ctx context.Context, d *daemonProc, name, role, password string) string {
	t.Helper()
	open(t, ctx, d.apiURL+"/accounts")
	wantText(t, ctx, "h1", "Accounts")
	step(t, ctx, "fill in the new account "+name,
		fill("#name", name), choose("#role", role), fill("#password", password), fill("#password2", password))
	submitForServerCheck(t, ctx, "create the account "+name, "#create-account")
	wantPath(t, ctx, "/accounts")
	wantText(t, ctx, "#done", "Account "+name+" created as "+role)
	wantText(t, ctx, byID("acct-"+name), name, role)
	return textOf(t, ctx, "#done")
}

// openExceptions goes to the exceptions page through the navigation, as a user would.
func openExceptions(t *testing.T, ctx context.Context) {
	t.Helper()
	step(t, ctx, "open Exceptions from the navigation", click(`nav.pages a[href="/exceptions"]`))
	wantPath(t, ctx, "/exceptions")
	wantText(t, ctx, "h1", "Exceptions")
}

// pollAnswer asks for name from src until the answer is want, for up to within, and returns
// when it was first seen.
func pollAnswer(t *testing.T, d *daemonProc, src, name, want string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := answer(t, d, src, name)
		if got == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s asked from %s: answer %q, want %q within %v", name, src, got, want, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// reopenUntil opens url again and again until the JavaScript expression cond is true on the
// page, for up to within; what says what is awaited.
func reopenUntil(t *testing.T, ctx context.Context, url, cond, what string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		open(t, ctx, url)
		if evalOn[bool](t, ctx, "checking for "+what, cond) {
			return
		}
		if time.Now().After(deadline) {
			failf(t, ctx, "%s: not seen within %v", what, within)
		}
		time.Sleep(time.Second)
	}
}

// pastRow is a JavaScript expression: the text of the row of exception id in the Past table,
// or "".
func pastRow(id int64) string {
	return fmt.Sprintf(`(Array.from(document.querySelectorAll("#past tbody tr")).find(
		tr => tr.cells.length > 1 && tr.cells[0].innerText.trim() === %q) || {innerText: ""}).innerText`,
		strconv.FormatInt(id, 10))
}

var requestSent = regexp.MustCompile(`Request (\d+) sent`)

// TestBrowserExceptionWorkflow: the technician makes a DSL and a teacher account. The teacher
// asks for facebook.com for the pupils for a lesson; pupils stay blocked until the DSL, on
// another computer, grants it for a minute with a note. Pupils then reach it, the teacher
// sees it approved, and after the minute it ends by itself: pupils are blocked again, the
// DSL's page lists it as expired, and the audit trail has the request, the approval and the
// expiry.
func TestBrowserExceptionWorkflow(t *testing.T) {
	ctx := newBrowser(t)
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-demo")
	const (
		site       = "facebook.com"
		allowed    = "NOERROR A " + upstreamDefaultA
		dsl        = "m.hughes"
		dslPass    = "Copper walrus lighthouse sorbet 52"
		teacher    = "a.nowak"
		teachPass  = "Bramble sextant tangerine ocean 19"
		reason     = "Year 9 media studies: how Facebook pages are made to target teenagers"
		note       = "One lesson only; ask again for the next one"
		askFor     = "2h"
		grantFor   = "1m"
		expiryWait = 100 * time.Second
	)

	// The technician makes the two accounts, then logs out.
	firstTechnician(t, ctx, d)
	if n := createAccount(t, ctx, d, dsl, "dsl", dslPass); !strings.Contains(n, "set up an authenticator") {
		failf(t, ctx, "the notice for a new DSL account does not say they set up an authenticator: %q", n)
	}
	if n := createAccount(t, ctx, d, teacher, "teacher", teachPass); strings.Contains(n, "authenticator") {
		failf(t, ctx, "the notice for a new teacher account speaks of an authenticator: %q", n)
	}
	wantText(t, ctx, byID("acct-"+dsl), "not set up; required")
	wantText(t, ctx, byID("acct-"+teacher), "not set up; not required")
	shot(ctx, t, "accounts")
	logOut(t, ctx)

	// The teacher, on their own computer, logs in with the password alone and asks.
	tctx := newTab(t, ctx)
	loginAs(t, tctx, d, teacher, teachPass, "")
	wantText(t, tctx, "#role", "teacher")
	openExceptions(t, tctx)
	wantText(t, tctx, "#new-heading", "Ask for an exception")
	if got := valueOf(t, tctx, "#applies"); got != "profile:pupils" {
		failf(t, tctx, "the For list starts on %q, want profile:pupils", got)
	}
	step(t, tctx, "fill in the request",
		fill("#domain", site), choose("#action", "allow"), choose("#applies", "profile:pupils"),
		fill("#duration", askFor), fill("#reason", reason))
	wantText(t, tctx, "#submit-exception", "Send request")
	submitForServerCheck(t, tctx, "send the request", "#submit-exception")
	wantPath(t, tctx, "/exceptions")
	done := textOf(t, tctx, "#done")
	m := requestSent.FindStringSubmatch(done)
	if m == nil {
		failf(t, tctx, "after sending, #done reads %q, want \"Request N sent\"", done)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	card := fmt.Sprintf("#x%d", id)
	wantText(t, tctx, card, site, "everyone on the pupils profile", "2 hours", reason)
	step(t, tctx, "the request can be withdrawn", waitVisible(fmt.Sprintf("#withdraw-%d", id)))
	shot(tctx, t, "exceptions-teacher")

	// Asking changes nothing for pupils.
	if got := answer(t, d, pupil, site); got != "NXDOMAIN" {
		t.Fatalf("while the request waits, a pupil asking %s gets %q, want NXDOMAIN", site, got)
	}

	// The DSL, on another computer, sets up the authenticator at the first login, sees the
	// request with the teacher's reason, and grants it for a minute with a note.
	xctx := newTab(t, ctx)
	enrolAtFirstLogin(t, xctx, d, dsl, dslPass)
	wantText(t, xctx, "#role", "dsl")
	openExceptions(t, xctx)
	wantText(t, xctx, "#pending-heading", "Waiting for a decision")
	wantText(t, xctx, card, fmt.Sprintf("#%d", id), "allow", site, "everyone on the pupils profile", "2 hours",
		"Asked by "+teacher, "Why: "+reason)
	if got := textOf(t, xctx, card+" .meta"); strings.Contains(got, "block page") {
		failf(t, xctx, "the teacher's request is said to come from the block page: %q", got)
	}
	wantText(t, xctx, byID(fmt.Sprintf("grant-%d-hint", id)), "2 hours as asked")
	step(t, xctx, "grant it for a minute with a note",
		fill(fmt.Sprintf("#note-%d", id), note), fill(fmt.Sprintf("#grant-%d", id), grantFor))
	shot(xctx, t, "exceptions-dsl")
	approved := time.Now()
	step(t, xctx, "approve", submit(fmt.Sprintf("#approve-%d", id)))
	wantPath(t, xctx, "/exceptions")
	wantText(t, xctx, "#done", fmt.Sprintf("Exception %d approved: in force until", id))
	active := card + ".active"
	wantText(t, xctx, active, site, "everyone on the pupils profile", "asked by "+teacher, "approved by "+dsl,
		"Why: "+reason, "Note: "+note)
	if n := len(textsOfOptional(t, xctx, "#pending-heading ~ article.card:not(.active)")); n != 0 {
		failf(t, xctx, "%d requests still wait after the approval", n)
	}

	// Pupils now reach it; staff always could.
	waitAnswer(t, d, pupil, site, allowed)
	waitAnswer(t, d, pupil, "www."+site, allowed)
	if got := answer(t, d, pupil, "instagram.com"); got != "NXDOMAIN" {
		t.Errorf("the exception for %s let pupils reach instagram.com: %q", site, got)
	}

	// The teacher sees it approved, with the note, and no longer waiting.
	open(t, tctx, d.apiURL+"/exceptions")
	wantText(t, tctx, active, site, "approved by "+dsl, "Note: "+note)
	if got := textsOfOptional(t, tctx, fmt.Sprintf("#withdraw-%d", id)); len(got) != 0 {
		failf(t, tctx, "the approved request can still be withdrawn")
	}

	// After the minute it ends by itself: pupils are blocked again.
	blockedAgain := pollAnswer(t, d, pupil, site, "NXDOMAIN", expiryWait)
	if took := blockedAgain.Sub(approved); took < 58*time.Second {
		t.Errorf("the exception granted for %s ended after %v", grantFor, took.Round(time.Second))
	} else {
		t.Logf("the exception granted for %s ended %v after the approval was clicked", grantFor, took.Round(100*time.Millisecond))
	}
	if got := answer(t, d, staff, site); got != allowed {
		t.Errorf("after the exception ended, staff asking %s get %q, want %q", site, got, allowed)
	}

	// The DSL's page lists it under Past as expired, no longer in force.
	reopenUntil(t, xctx, d.apiURL+"/exceptions", pastRow(id)+`.includes("expired")`,
		fmt.Sprintf("exception %d listed as expired under Past", id), 15*time.Second)
	row := evalOn[string](t, xctx, "the Past row", pastRow(id))
	for _, want := range []string{site, "everyone on the pupils profile", teacher, "expired"} {
		if !strings.Contains(row, want) {
			failf(t, xctx, "the Past row of exception %d reads %q, want it to contain %q", id, row, want)
		}
	}
	if got := textsOfOptional(t, xctx, active); len(got) != 0 {
		failf(t, xctx, "the expired exception is still under In force now: %q", got)
	}

	// The audit trail: the request, the approval with the note, the expiry.
	reopenUntil(t, xctx, d.apiURL+"/audit", `Array.from(document.querySelectorAll("ol.audit code.action")).some(
		c => c.textContent === "exception.expire")`, "the exception.expire entry in the audit trail", 15*time.Second)
	wantText(t, xctx, "h1", "Audit trail")
	obj := fmt.Sprintf("exception %d", id)
	e := newestEntry(t, xctx, "exception.request")
	wantText(t, xctx, e+" .who", teacher, "teacher")
	wantText(t, xctx, e+" .summary", obj, site, "2 hours")
	wantText(t, xctx, e+" .reason", reason)
	e = newestEntry(t, xctx, "exception.approve")
	wantText(t, xctx, e+" .who", dsl, "dsl")
	wantText(t, xctx, e+" .summary", obj, "approved", site, "1 minute", "asked by "+teacher)
	wantText(t, xctx, e+" .reason", note)
	e = newestEntry(t, xctx, "exception.expire")
	wantText(t, xctx, e+" .summary", obj, "expired", site)

	wantNoPageErrors(t, ctx)
}

// TestBrowserBlockPageReview: a pupil's browser lands on the block page of a social network,
// sees the category and the profile, and asks for a review. The DSL (who logs in with a
// password alone: the technician turned the authenticator requirement off for them) sees the
// request marked as from the block page, with the pupil's address and reason, and approves
// it; the pupil's page then says the site is not blocked.
//
// The site is one added to the demo's social list under the reserved .example name, not
// facebook.com: facebook.com (like instagram.com, twitter.com, reddit.com…) is on chromium's
// HSTS preload list, so chromium only ever asks for https://facebook.com and never shows an
// http:// block page for it. A reserved name can never be on that list. TestBlockPage covers
// facebook.com's block page with a plain HTTP client.
func TestBrowserBlockPageReview(t *testing.T) {
	ctx := newBrowser(t)
	upstream := startUpstream(t)
	const (
		site    = "friendface.example" // a social network, in the social list below
		dsl     = "s.bello"
		dslPass = "Quartz meadow trombone biscuit 64"
		reason  = "I need the school's own Friendface page for my history homework"
		note    = "Allowed for the homework; the school page only"
	)
	dir := t.TempDir()
	cfgPath := writeDemoConfig(t, dir)
	social := filepath.Join(dir, "lists", "social.txt")
	list, err := os.ReadFile(social)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(social, append(list, []byte("\n"+site+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, upstream, "-config", cfgPath)
	if got := answer(t, d, pupil, site); got != "NXDOMAIN" {
		t.Fatalf("a pupil asking %s gets %q, want NXDOMAIN (blocked as social)", site, got)
	}

	// The technician makes the DSL account and lets it log in without an authenticator.
	firstTechnician(t, ctx, d)
	createAccount(t, ctx, d, dsl, "dsl", dslPass)
	wantText(t, ctx, byID("acct-"+dsl), "not set up; required")
	step(t, ctx, "open "+dsl+"'s actions", chromedp.Click(chromedp.CSS(byID("manage-"+dsl)+" > summary"), chromedp.NodeVisible),
		waitVisible(byID("totp-required-"+dsl)))
	wantText(t, ctx, byID("totp-required-"+dsl), "Stop requiring an authenticator")
	step(t, ctx, "stop requiring an authenticator for "+dsl, submit(byID("totp-required-"+dsl)))
	wantText(t, ctx, "#done", dsl+" no longer has to use an authenticator")
	wantText(t, ctx, byID("acct-"+dsl), "not set up; not required")
	logOut(t, ctx)

	// The pupil's browser gets the block page, and asks for a review.
	pctx := pupilBrowser(t, ctx, d)
	const blockedURL = "http://" + site + "/groups/school-history"
	open(t, pctx, blockedURL)
	wantText(t, pctx, "h1", "This site is blocked")
	wantText(t, pctx, "#host", site)
	wantText(t, pctx, "#category", "Social networks")
	wantText(t, pctx, "#profile", "pupils")
	wantText(t, pctx, "#why", site, "Social networks")
	step(t, pctx, "the review form", waitVisible("#reason"), waitVisible("#request-review"))
	shot(pctx, t, "block-page")
	step(t, pctx, "ask for a review", fill("#reason", reason), submit("#request-review"))
	if body := evalOn[string](t, pctx, "reading the answer to the review form", `document.body ? document.body.innerText : ""`); !strings.Contains(body, "Your request was sent") {
		failf(t, pctx, "the block page's own review form, sent by the browser, is answered with %q, not the confirmation", body)
	}
	wantText(t, pctx, "#sent", "Your request was sent")
	ref := regexp.MustCompile(`reference (\d+)`).FindStringSubmatch(textOf(t, pctx, "#sent"))
	if ref == nil {
		failf(t, pctx, "the confirmation gives no reference: %q", textOf(t, pctx, "#sent"))
	}
	id, _ := strconv.ParseInt(ref[1], 10, 64)
	if n := len(textsOfOptional(t, pctx, "#request-review")); n != 0 {
		failf(t, pctx, "the review form is still offered after the request was sent")
	}

	// The DSL sees it, marked as from the block page with the pupil's address and reason.
	loginAs(t, ctx, d, dsl, dslPass, "")
	openExceptions(t, ctx)
	card := fmt.Sprintf("#x%d", id)
	wantText(t, ctx, card, "allow", site, "everyone on the pupils profile", "Why: "+reason)
	wantText(t, ctx, card+" .meta", "from the block page", pupil)
	step(t, ctx, "approve it with a note", fill(fmt.Sprintf("#note-%d", id), note), submit(fmt.Sprintf("#approve-%d", id)))
	wantText(t, ctx, "#done", fmt.Sprintf("Exception %d approved: in force until", id))
	wantText(t, ctx, card+".active", site, "approved by "+dsl, "Why: "+reason, "Note: "+note)

	// The pupil's browser, reloaded, is told the site is not blocked, and DNS agrees.
	open(t, pctx, blockedURL)
	wantText(t, pctx, "h1", "This site is not blocked")
	wantText(t, pctx, "main", site+" is allowed for you now")
	waitAnswer(t, d, pupil, site, "NOERROR A "+upstreamDefaultA)

	// The audit trail has the pupil's request, from their address, and the approval.
	open(t, ctx, d.apiURL+"/audit")
	e := newestEntry(t, ctx, "exception.request")
	wantText(t, ctx, e+" .who", "from "+pupil)
	wantText(t, ctx, e+" .summary", fmt.Sprintf("exception %d", id), "block page", site)
	wantText(t, ctx, e+" .reason", reason)
	e = newestEntry(t, ctx, "exception.approve")
	wantText(t, ctx, e+" .who", dsl)
	wantText(t, ctx, e+" .reason", note)

	wantNoPageErrors(t, ctx)
}
