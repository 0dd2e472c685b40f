package main

// Browser tests of the policy pages and the audit trail: a technician changes what pupils
// may reach, the pupils' DNS answers follow, and the change is in the audit trail with who,
// why and a diff; the chain check notices an entry altered behind the firmware's back.

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"
	_ "modernc.org/sqlite"

	"github.com/schoolgate/schoolgate/firmware/audit"
)

// firstTechnician creates the first technician account of a fresh daemon through the setup
// link, enrols the authenticator and leaves the browser logged in on the start page. It
// returns what loginAs needs to log in again. (It would sit well in browser_test.go beside
// loginAs; TestBrowserFirstRunAndTOTPLogin walks the same flow with every check.)
func firstTechnician(t *testing.T, ctx context.Context, d *daemonProc) (name, password, totpSecret string) {
	t.Helper()
	name, password = "j.okafor", "Lantern pebble harbour quince 38"
	open(t, ctx, setupLink(t, d))
	step(t, ctx, "create the first account",
		fill("#name", name), fill("#password", password), fill("#password2", password),
		submit(`main button[type="submit"]`))
	wantPath(t, ctx, "/login")
	step(t, ctx, "first login", fill("#name", name), fill("#password", password), submit(`main button[type="submit"]`))
	wantText(t, ctx, "h1", "Set up your authenticator")
	totpSecret = textOf(t, ctx, "#totp-secret")
	step(t, ctx, "confirm the authenticator with its code",
		fill("#code", totpCode(t, totpSecret)), submit(`main button[type="submit"]`))
	wantText(t, ctx, "h1", "Your recovery codes")
	step(t, ctx, "continue to the start page", click(`main a[href="/"]`))
	wantPath(t, ctx, "/")
	wantText(t, ctx, "#account", name)
	return name, password, totpSecret
}

// evalOn evaluates a JavaScript expression on the page as one bounded step.
func evalOn[T any](t *testing.T, ctx context.Context, what, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		failf(t, ctx, "%s: %v", what, err)
	}
	return v
}

// isChecked reports whether the checkbox sel is ticked.
func isChecked(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	step(t, ctx, "waiting for "+sel, waitVisible(sel))
	return evalOn[bool](t, ctx, "reading the tick of "+sel,
		fmt.Sprintf(`document.querySelector(%s).checked`, jsString(sel)))
}

// wantChecked checks that the checkbox sel is ticked (want) or not.
func wantChecked(t *testing.T, ctx context.Context, sel string, want bool) {
	t.Helper()
	if got := isChecked(t, ctx, sel); got != want {
		failf(t, ctx, "%s ticked: %v, want %v", sel, got, want)
	}
}

// valueOf returns the value of the form field sel (the chosen option of a select).
func valueOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	step(t, ctx, "waiting for "+sel, waitVisible(sel))
	return evalOn[string](t, ctx, "reading the value of "+sel,
		fmt.Sprintf(`document.querySelector(%s).value`, jsString(sel)))
}

// choose selects the option value of the select sel, as picking it from the list does.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => {
		const s = document.querySelector(%s);
		if (!s || !Array.from(s.options).some(o => o.value === %s)) return false;
		s.value = %[2]s;
		s.dispatchEvent(new Event("input", {bubbles: true}));
		s.dispatchEvent(new Event("change", {bubbles: true}));
		return true })()`, jsString(sel), jsString(value))
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			ok, err := chromedp.Evaluate[bool](js)(ctx, t)
			if err == nil && !ok {
				err = fmt.Errorf("%s has no option %q", sel, value)
			}
			return err
		}),
	)
}

// tick clicks the checkbox sel (ticking or unticking it); no page loads.
func tick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
}

// submitForServerCheck clicks the submit button sel of a form that is meant to be checked
// by the server (errors shown next to the fields), after making sure the browser's own
// validation will not silently stop it: such a form would never be sent, and the step would
// only time out.
func submitForServerCheck(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	blocked := evalOn[string](t, ctx, "checking the form of "+sel, fmt.Sprintf(`(() => {
		const b = document.querySelector(%s);
		const f = b && b.form;
		if (!f || f.noValidate || f.checkValidity()) return "";
		const bad = Array.from(f.elements).filter(e => e.willValidate && !e.checkValidity());
		return bad.map(e => "#" + e.id + " (" + e.validationMessage + ")").join(", ");
	})()`, jsString(sel)))
	if blocked != "" {
		failf(t, ctx, "%s: the browser's own validation stops the form before it is sent (the form has no "+
			"novalidate), so the page's own error message never shows; invalid for the browser: %s", what, blocked)
	}
	step(t, ctx, what, submit(sel))
}

// answer is the pupil/staff/guest DNS answer for name, summarised.
func answer(t *testing.T, d *daemonProc, src, name string) string {
	t.Helper()
	r, err := ask(src, d.dnsAddr, "udp", name, dns.TypeA)
	if err != nil {
		t.Fatalf("asking %s from %s: %v", name, src, err)
	}
	return summarise(r)
}

// waitAnswer polls until the answer for name from src is want, for a few seconds.
func waitAnswer(t *testing.T, d *daemonProc, src, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := answer(t, d, src, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s asked from %s: answer %q, want %q within 5s of the change being saved", name, src, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newestEntry returns the CSS selector of the newest entry of the audit page with the
// action given (the page lists the newest first).
func newestEntry(t *testing.T, ctx context.Context, action string) string {
	t.Helper()
	step(t, ctx, "waiting for the audit entries", waitVisible("ol.audit > li"))
	id := evalOn[string](t, ctx, "finding the newest "+action+" entry", fmt.Sprintf(`(() => {
		const li = Array.from(document.querySelectorAll("ol.audit > li")).find(
			li => (li.querySelector("code.action") || {}).textContent === %s);
		return li ? li.id : "";
	})()`, jsString(action)))
	if id == "" {
		failf(t, ctx, "the audit page shows no %s entry", action)
	}
	return "#" + id
}

// TestBrowserPolicyCategoryUntick: a technician unticks Social networks for pupils in the
// profiles matrix. Without a reason the change is refused with the error by the field; with
// one it is saved, pupils' DNS answers follow at once, and the audit trail shows who, why and
// the removed line. Then one setting of the pupils' profile is changed on its own page.
func TestBrowserPolicyCategoryUntick(t *testing.T) {
	ctx := newBrowser(t)
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-demo")
	const (
		social  = "facebook.com" // in the demo's social list only
		games   = "roblox.com"   // games: still blocked for pupils afterwards
		reason  = "Year 9 media studies unit on social networks, agreed with the DSL"
		reason2 = "Pupils see the block page, so they know to ask a teacher"
		allowed = "NOERROR A " + upstreamDefaultA
	)

	// Before: pupils are told the name does not exist; staff get it.
	if got := answer(t, d, pupil, social); got != "NXDOMAIN" {
		t.Fatalf("before the change, a pupil asking %s gets %q, want NXDOMAIN", social, got)
	}
	if got := answer(t, d, staff, social); got != allowed {
		t.Fatalf("before the change, staff asking %s get %q, want %q", social, got, allowed)
	}

	name, _, _ := firstTechnician(t, ctx, d)

	// The matrix: social is ticked for pupils, not for staff.
	open(t, ctx, d.apiURL+"/profiles")
	wantText(t, ctx, "h1", "Profiles")
	const box = "#block-pupils-social"
	if got := evalOn[string](t, ctx, "the label of "+box,
		fmt.Sprintf(`document.querySelector(%s).getAttribute("aria-label")`, jsString(box))); got != "Block Social networks for pupils" {
		failf(t, ctx, "%s is labelled %q, want %q", box, got, "Block Social networks for pupils")
	}
	wantChecked(t, ctx, box, true)
	wantChecked(t, ctx, "#block-staff-social", false)

	// Unticked and saved without a reason: refused, with the message next to the field, and
	// the untick kept so that only the reason has to be added.
	step(t, ctx, "untick social for pupils", tick(box))
	wantChecked(t, ctx, box, false)
	if got := valueOf(t, ctx, "#reason"); got != "" {
		failf(t, ctx, "the reason field starts with %q, want it empty", got)
	}
	submitForServerCheck(t, ctx, "save without a reason", "#save")
	wantText(t, ctx, "#reason-error", "Say why")
	wantText(t, ctx, `main [role="alert"]`, "not saved")
	wantChecked(t, ctx, box, false)
	if got := answer(t, d, pupil, social); got != "NXDOMAIN" {
		t.Fatalf("a change refused for want of a reason changed the pupils' answer for %s: %q", social, got)
	}

	// With a reason it is saved.
	step(t, ctx, "save with a reason", fill("#reason", reason), submit("#save"))
	wantPath(t, ctx, "/profiles")
	wantText(t, ctx, `main [role="status"]`, "Saved as configuration version")
	wantChecked(t, ctx, box, false)
	wantChecked(t, ctx, "#block-pupils-games", true)
	shot(ctx, t, "profiles")

	// Pupils now get the upstream's address; the other categories and staff are unchanged.
	waitAnswer(t, d, pupil, social, allowed)
	waitAnswer(t, d, pupil, "www.instagram.com", allowed)
	if got := answer(t, d, pupil, games); got != "NXDOMAIN" {
		t.Errorf("games should stay blocked for pupils: %s gets %q", games, got)
	}
	if got := answer(t, d, staff, social); got != allowed {
		t.Errorf("staff asking %s get %q, want %q", social, got, allowed)
	}
	if got := answer(t, d, guest, "bet365.com"); got != "NOERROR A 0.0.0.0" {
		t.Errorf("guests asking bet365.com get %q, want the null address", got)
	}

	// The audit trail: the newest configuration change names the technician, the reason,
	// and under "What changed" the removed line.
	open(t, ctx, d.apiURL+"/audit")
	wantText(t, ctx, "h1", "Audit trail")
	e := newestEntry(t, ctx, "config.change")
	wantText(t, ctx, e+" .who", name, "technician")
	wantText(t, ctx, e+" .summary", "pupils", "social")
	wantText(t, ctx, e+" .reason", reason)
	wantText(t, ctx, e+" details > summary", "What changed")
	step(t, ctx, "open What changed", chromedp.Click(chromedp.CSS(e+" details > summary"), chromedp.NodeVisible),
		waitVisible(e+" pre.diff"))
	removed := textsOf(t, ctx, e+" pre.diff .del")
	found := false
	for _, l := range removed {
		found = found || strings.TrimSpace(strings.TrimPrefix(l, "-")) == "- social"
	}
	if !found {
		failf(t, ctx, "the diff's removed lines are %q, want one reading \"- social\"", removed)
	}
	if added := textsOfOptional(t, ctx, e+" pre.diff .add"); len(added) != 0 {
		failf(t, ctx, "unticking one box added lines to the configuration: %q", added)
	}
	shot(ctx, t, "audit")

	// One setting on the pupils' own page: the block response.
	open(t, ctx, d.apiURL+"/profiles/pupils")
	wantText(t, ctx, "h1", "Profile pupils")
	if got := valueOf(t, ctx, "#block_response"); got != "nxdomain" {
		failf(t, ctx, "pupils' block response shows %q, want nxdomain", got)
	}
	step(t, ctx, "choose the block page", choose("#block_response", "blockpage"))
	submitForServerCheck(t, ctx, "save the profile without a reason", "#save")
	wantText(t, ctx, "#reason-error", "Say why")
	if got := valueOf(t, ctx, "#block_response"); got != "blockpage" {
		failf(t, ctx, "after the refused save the block response shows %q, want the chosen blockpage kept", got)
	}
	step(t, ctx, "save the profile with a reason", fill("#reason", reason2), submit("#save"))
	wantPath(t, ctx, "/profiles/pupils")
	wantText(t, ctx, `main [role="status"]`, "Saved as configuration version")
	if got := valueOf(t, ctx, "#block_response"); got != "blockpage" {
		failf(t, ctx, "after saving, the block response shows %q, want blockpage", got)
	}
	shot(ctx, t, "profile-pupils")
	// A name still blocked for pupils now gets the block page's address (demo: 127.0.0.1).
	waitAnswer(t, d, pupil, games, "NOERROR A 127.0.0.1")
	if got := answer(t, d, staff, "bet365.com"); got != "NXDOMAIN" {
		t.Errorf("staff's block response changed with the pupils': bet365.com gets %q", got)
	}

	wantNoPageErrors(t, ctx)
}

// textsOfOptional is textsOf for elements that may be absent: no wait, maybe no texts.
func textsOfOptional(t *testing.T, ctx context.Context, sel string) []string {
	t.Helper()
	return evalOn[[]string](t, ctx, "reading the texts of "+sel,
		fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).map(e => e.innerText.trim())`, jsString(sel)))
}

// TestBrowserAuditVerify: "Check the chain" on the audit page says the trail is intact after
// a change; after someone with the file rewrites the reason of that change, it names the
// entry. The export link downloads the trail.
func TestBrowserAuditVerify(t *testing.T) {
	ctx := newBrowser(t)
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-demo")
	name, _, _ := firstTechnician(t, ctx, d)
	const reason = "Staff asked for strict YouTube in assemblies"

	// A change to audit.
	open(t, ctx, d.apiURL+"/profiles/staff")
	step(t, ctx, "choose strict YouTube", choose("#youtube", "strict"))
	step(t, ctx, "save", fill("#reason", reason), submit("#save"))
	wantText(t, ctx, `main [role="status"]`, "Saved as configuration version")

	// The chain is intact.
	open(t, ctx, d.apiURL+"/audit")
	e := newestEntry(t, ctx, "config.change")
	wantText(t, ctx, e+" .reason", reason)
	step(t, ctx, "check the chain", click("#verify"))
	wantText(t, ctx, "#verify-result", "intact")

	// The export link is there and downloads the trail for this session.
	if got := evalOn[string](t, ctx, "the export link", `(() => {
		const a = document.querySelector("#export");
		return a ? a.getAttribute("href") + (a.hasAttribute("download") ? " download" : "") : "";
	})()`); got != "/audit/export download" {
		failf(t, ctx, "#export is %q, want a download link to /audit/export", got)
	}
	type download struct {
		Status      int    `json:"status"`
		Disposition string `json:"disposition"`
		Body        string `json:"body"`
	}
	export := evalOn[download](t, ctx, "downloading /audit/export", `fetch("/audit/export").then(async r => ({
		status: r.status, disposition: r.headers.get("Content-Disposition") || "", body: await r.text()}))`,
		chromedp.EvalAwaitPromise)
	first, _, _ := strings.Cut(export.Body, "\n")
	if export.Status != 200 || !strings.Contains(first, `"schoolgate-audit"`) {
		failf(t, ctx, "GET /audit/export: status %d, first line %q; want 200 and the schoolgate-audit header", export.Status, first)
	}
	if !strings.Contains(export.Disposition, "attachment") || !strings.Contains(export.Disposition, ".jsonl") {
		failf(t, ctx, "GET /audit/export: Content-Disposition %q, want an attachment named *.jsonl", export.Disposition)
	}
	if !strings.Contains(export.Body, reason) {
		failf(t, ctx, "the export lacks the change's reason %q", reason)
	}

	// Someone with the file rewrites the reason of the change.
	seq := tamperAuditReason(t, d, name)

	open(t, ctx, d.apiURL+"/audit")
	wantText(t, ctx, fmt.Sprintf("#entry-%d .reason", seq), "nothing to see")
	step(t, ctx, "check the chain again", click("#verify"))
	wantText(t, ctx, "#verify-result", fmt.Sprintf("broken at entry %d:", seq))
	shot(ctx, t, "audit-broken")

	wantNoPageErrors(t, ctx)
}

// tamperAuditReason rewrites, as an attacker with the file would, the reason of actor's
// newest config.change entry in the daemon's audit trail, and returns that entry's seq.
func tamperAuditReason(t *testing.T, d *daemonProc, actor string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(d.dataDir, audit.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM entries WHERE action = 'config.change' AND actor = ? ORDER BY seq DESC LIMIT 1`,
		actor).Scan(&seq); err != nil {
		t.Fatalf("finding %s's config.change entry in the audit file: %v", actor, err)
	}
	if _, err := db.Exec(`DROP TRIGGER entries_no_update`); err != nil {
		t.Fatalf("dropping the trigger: %v", err)
	}
	res, err := db.Exec(`UPDATE entries SET reason = 'nothing to see' WHERE seq = ?`, seq)
	if err != nil {
		t.Fatalf("altering entry %d: %v", seq, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("altering entry %d changed %d rows", seq, n)
	}
	return seq
}
