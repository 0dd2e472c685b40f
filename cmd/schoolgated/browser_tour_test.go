package main

// Browser tests that walk the whole web UI: TestBrowserTour visits every page of the
// navigation as the technician, with real traffic in the logs, and checks on each what any
// page must have (a title, one h1, the navigation marking where you are), accessibility
// basics in the page itself (names of fields, buttons, links and images; unique ids; heading
// levels), that a phone's width never scrolls the page sideways, and that the keyboard
// reaches the fields of a form in order with a visible focus. TestBrowserRestart restarts
// the daemon from the system page.
//
// The accessibility rules (a11yJS, run in the page) and what they tolerate:
//   - every form field other than hidden fields and buttons has an accessible name: a
//     <label for>, a wrapping <label>, aria-label or aria-labelledby naming elements with
//     text. A title or placeholder alone does not count. Fields inside a closed <details>
//     are checked too: they are on the page as soon as it is opened.
//   - every button (and input type=submit/button, role=button) has text, a value or
//     aria-label/aria-labelledby; every link has text, aria-label/-labelledby or an image
//     with alt text.
//   - every <img> has an alt attribute (alt="" for decoration is fine); every role=img
//     element (the charts' SVGs) has aria-label, aria-labelledby or a <title>; an <svg> that
//     is not role=img must be hidden from assistive technology (aria-hidden on it or an
//     ancestor), else a screen reader reads its parts.
//   - ids are unique, and aria-labelledby, aria-describedby and <label for> point at ids
//     that exist.
//   - exactly one h1, the first heading; a heading is at most one level deeper than the
//     heading before it (h1 then h3 skips h2; going back up any number of levels is fine).
//     No tolerance for cards or fragments: a screen reader's list of headings is the whole
//     page's, and a card's h3 under an h1 looks like a missing section to it. Hidden
//     headings (class visually-hidden) count, as screen readers read them.
//   - one <main>, <html lang>, and the navigation is a labelled <nav> in which exactly the
//     link of the page (or its parent in the navigation) has aria-current="page"; a page
//     that is not in the navigation has no link marked.
//
// At a phone's width (390×844, mobile emulation) the document must not scroll sideways
// (scrollWidth <= clientWidth + 1); a wide table or <pre> that scrolls inside its own
// .table-wrap is fine and only noted in the log.
//
// Defects are reported with t.Errorf, the page and the element, and the tour goes on, so one
// run lists them all. Before the tour, checkTheChecks runs the same checks on a sample page
// with one of each defect, so that a clean tour means the checks found nothing, not that
// they cannot.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/miekg/dns"
)

// tourPage is one page of the tour.
type tourPage struct {
	path string // what to open
	h1   string // what the h1 says (contains)
	nav  string // the navigation link marked aria-current, "" for none
	shot string // the screenshot's name at desktop width, "" for none
}

// loggedOut is whether the page is one before login, without the navigation.
func (p tourPage) loggedOut() bool { return strings.HasPrefix(p.path, "/login") }

// tourTraffic sends DNS queries from staff, a pupil and a guest, for allowed, blocked and
// rewritten names of the demo configuration, so that the dashboard, the logs and the device
// summaries have something to show. It returns how many were sent.
func tourTraffic(t *testing.T, d *daemonProc) int {
	t.Helper()
	names := []string{
		"example.org", "wikipedia.org", "www.bbc.co.uk", "www.gov.uk", // allowed for all
		"facebook.com", "www.instagram.com", "roblox.com", // social and games: pupils blocked
		"bet365.com", "pornhub.com", "nordvpn.com", // blocked for everyone
		"www.google.com", "www.youtube.com", // safe search rewrites
		"example-blocked.test", // the pupils' own block list
	}
	n := 0
	for _, src := range []string{staff, pupil, guest} {
		for i, name := range names {
			qtype := dns.TypeA
			if i%4 == 3 {
				qtype = dns.TypeAAAA
			}
			if _, err := ask(src, d.dnsAddr, "udp", name, qtype); err != nil {
				t.Fatalf("asking %s from %s: %v", name, src, err)
			}
			n++
		}
	}
	// Repeats, so that the counts and top lists are not all ones.
	for range 3 {
		for _, name := range []string{"facebook.com", "roblox.com"} {
			if _, err := ask(pupil, d.dnsAddr, "udp", name, dns.TypeA); err != nil {
				t.Fatalf("asking %s from %s: %v", name, pupil, err)
			}
			n++
		}
	}
	return n
}

// jsDesc is JavaScript that defines desc(e), a short CSS-like name of an element for
// reports, and text(e), its text with the spaces squeezed.
const jsDesc = `
const text = e => ((e && e.textContent) || "").replace(/\s+/g, " ").trim();
const desc = e => {
	if (!e) return "(none)";
	let s = e.tagName.toLowerCase();
	if (e.id) return s + "#" + e.id;
	for (const a of ["name", "type", "href", "for", "role"]) {
		if (e.getAttribute(a)) { s += "[" + a + "=" + JSON.stringify(e.getAttribute(a)) + "]"; break; }
	}
	if (typeof e.className === "string" && e.className.trim()) s += "." + e.className.trim().split(/\s+/).join(".");
	const p = e.parentElement && e.parentElement.closest("[id]");
	if (p) s = "#" + p.id + " " + s;
	return s;
};
const refsText = (e, attr) => (e.getAttribute(attr) || "").split(/\s+/).filter(Boolean)
	.map(id => document.getElementById(id)).filter(Boolean).map(text).join(" ").trim();
const ariaName = e => refsText(e, "aria-labelledby") || (e.getAttribute("aria-label") || "").trim();
`

// a11yJS returns the list of problems the rules at the top of this file find on the page.
const a11yJS = `(() => {` + jsDesc + `
const out = [];
const say = s => { if (out.length < 60) out.push(s); };

// Form fields.
for (const e of document.querySelectorAll("input, select, textarea")) {
	const type = (e.getAttribute("type") || "text").toLowerCase();
	if (e.tagName === "INPUT" && ["hidden", "submit", "button", "reset", "image"].includes(type)) continue;
	let name = ariaName(e);
	if (!name && e.labels) name = Array.from(e.labels).map(text).join(" ").trim();
	if (!name) {
		let why = "no <label for>, wrapping <label>, aria-label or aria-labelledby";
		if (e.title) why += "; only a title " + JSON.stringify(e.title);
		if (e.placeholder) why += "; only a placeholder " + JSON.stringify(e.placeholder);
		say("form field " + desc(e) + " (" + e.tagName.toLowerCase() + (e.tagName === "INPUT" ? " type=" + type : "") + ") has no accessible name: " + why);
	}
}

// Buttons.
for (const e of document.querySelectorAll("button, input[type=submit], input[type=button], input[type=reset], [role=button]")) {
	let name = ariaName(e);
	if (!name) name = e.tagName === "INPUT" ? (e.value || (e.type === "submit" ? "Submit" : e.type === "reset" ? "Reset" : "")).trim() : text(e);
	if (!name) name = Array.from(e.querySelectorAll("img[alt]")).map(i => i.alt.trim()).join(" ").trim();
	if (!name) say("button " + desc(e) + " has no text and no aria-label");
}

// Links.
for (const e of document.querySelectorAll("a[href]")) {
	let name = ariaName(e) || text(e);
	if (!name) name = Array.from(e.querySelectorAll("img[alt], [role=img][aria-label]")).map(i => (i.alt || i.getAttribute("aria-label") || "").trim()).join(" ").trim();
	if (!name) say("link " + desc(e) + " has no text and no aria-label");
}

// Images.
for (const e of document.querySelectorAll("img")) {
	if (!e.hasAttribute("alt") && !ariaName(e)) say("image " + desc(e) + " (" + e.getAttribute("src") + ") has no alt attribute");
}
for (const e of document.querySelectorAll("[role=img]")) {
	const title = e.querySelector(":scope > title");
	if (!ariaName(e) && !text(title)) say("image " + desc(e) + " (role=img) has no aria-label, aria-labelledby or <title>");
}
for (const e of document.querySelectorAll("svg")) {
	if (e.closest("[aria-hidden=true]") || e.getAttribute("role") === "img" || e.parentElement.closest("svg")) continue;
	say(desc(e) + " is neither role=img with a name nor aria-hidden=true: screen readers read its parts");
}

// Ids and references.
const seen = new Map();
for (const e of document.querySelectorAll("[id]")) seen.set(e.id, (seen.get(e.id) || 0) + 1);
for (const [id, n] of seen) if (n > 1) {
	const els = Array.from(document.querySelectorAll("[id]")).filter(e => e.id === id).map(e => e.tagName.toLowerCase());
	say("id " + JSON.stringify(id) + " is used " + n + " times (" + els.join(", ") + ")");
}
for (const attr of ["aria-labelledby", "aria-describedby", "aria-controls"]) {
	for (const e of document.querySelectorAll("[" + attr + "]")) {
		for (const id of e.getAttribute(attr).split(/\s+/).filter(Boolean)) {
			if (!document.getElementById(id)) say(desc(e) + " has " + attr + "=" + JSON.stringify(id) + ", but no element has that id");
		}
	}
}
for (const e of document.querySelectorAll("label[for]")) {
	const target = document.getElementById(e.htmlFor);
	if (!target) say("label " + JSON.stringify(text(e)) + " is for " + JSON.stringify(e.htmlFor) + ", but no element has that id");
	else if (!["INPUT", "SELECT", "TEXTAREA", "BUTTON", "METER", "OUTPUT", "PROGRESS"].includes(target.tagName))
		say("label " + JSON.stringify(text(e)) + " is for " + desc(target) + ", which is not a form field");
}

// Headings.
const h1s = document.querySelectorAll("h1");
if (h1s.length !== 1) say(h1s.length + " h1 elements, want exactly one: " + Array.from(h1s).map(h => JSON.stringify(text(h))).join(", "));
let prev = 0, prevText = "";
for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
	const level = +h.tagName[1];
	if (prev === 0 && level !== 1) say("the first heading is " + desc(h) + " h" + level + " " + JSON.stringify(text(h)) + ", not the h1");
	else if (prev > 0 && level > prev + 1) say("heading " + desc(h) + " " + JSON.stringify(text(h)) + " comes after h" + prev + " " + JSON.stringify(prevText) + ": skips h" + (prev + 1));
	prev = level; prevText = text(h);
}

// Landmarks and language.
const mains = document.querySelectorAll("main");
if (mains.length !== 1) say(mains.length + " <main> elements, want one");
if (!document.documentElement.lang) say("<html> has no lang");
return out;
})()`

// navState is what the page's navigation says.
type navState struct {
	Navs    int      `json:"navs"`    // nav.pages elements
	Label   string   `json:"label"`   // its aria-label
	Current []string `json:"current"` // the hrefs marked aria-current="page"
	Other   []string `json:"other"`   // aria-current with another value
	Title   string   `json:"title"`
	H1      string   `json:"h1"`
}

const navJS = `(() => {
	const nav = document.querySelector("nav.pages");
	const links = nav ? Array.from(nav.querySelectorAll("a")) : [];
	const h1 = document.querySelector("h1");
	return {
		navs: document.querySelectorAll("nav.pages").length,
		label: nav ? (nav.getAttribute("aria-label") || "") : "",
		current: links.filter(a => a.getAttribute("aria-current") === "page").map(a => a.getAttribute("href")),
		other: links.filter(a => a.hasAttribute("aria-current") && a.getAttribute("aria-current") !== "page").map(a => a.getAttribute("href") + "=" + a.getAttribute("aria-current")),
		title: document.title,
		h1: h1 ? h1.textContent.replace(/\s+/g, " ").trim() : "",
	};
})()`

// overflow is what overflowJS finds: the document's widths and what sticks out.
type overflow struct {
	Scroll   int      `json:"scroll"`
	Client   int      `json:"client"`
	Culprits []string `json:"culprits"`
	Wraps    []string `json:"wraps"` // scrolling containers whose content is wider than they are
}

// overflowJS measures whether the document scrolls sideways, and if so names the outermost
// elements that stick out of the viewport other than inside a scrolling container (such as
// .table-wrap, whose tables may be wide).
const overflowJS = `(() => {` + jsDesc + `
const de = document.documentElement, vw = de.clientWidth;
const res = {scroll: de.scrollWidth, client: vw, culprits: [], wraps: []};
for (const w of document.querySelectorAll(".table-wrap, pre")) {
	if (w.scrollWidth > w.clientWidth + 1 && w.getClientRects().length) res.wraps.push(desc(w.querySelector("table") || w) + " (" + w.scrollWidth + "px in " + w.clientWidth + "px)");
}
if (de.scrollWidth <= vw + 1) return res;
const clipped = e => {
	for (let p = e.parentElement; p && p !== document.body && p !== de; p = p.parentElement) {
		if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(p).overflowX)) return true;
	}
	return false;
};
for (const e of document.body.querySelectorAll("*")) {
	const r = e.getBoundingClientRect();
	if ((r.width === 0 && r.height === 0) || r.right <= vw + 1 || clipped(e)) continue;
	const p = e.parentElement;
	if (p && p !== document.body && p.getBoundingClientRect().right > vw + 1) continue; // its parent is named
	res.culprits.push(desc(e) + " (" + Math.round(r.left) + "px to " + Math.round(r.right) + "px) " + JSON.stringify(text(e).slice(0, 60)));
	if (res.culprits.length >= 8) break;
}
return res;
})()`

// focused describes the focused element.
type focused struct {
	Is      bool    `json:"is"` // it is the element wanted
	Desc    string  `json:"desc"`
	Width   float64 `json:"width"` // outline width in CSS px
	Style   string  `json:"style"` // outline style
	Visible bool    `json:"visible"`
}

// outlined is whether the focused element shows an outline. (outline: none leaves the
// computed width at 3px: only the style says there is none.)
func (f focused) outlined() bool { return f.Width > 0 && f.Style != "none" && f.Style != "" }

func focusedJS(want string) string {
	return `(() => {` + jsDesc + `
	const e = document.activeElement;
	const cs = e ? getComputedStyle(e) : null;
	const r = e ? e.getBoundingClientRect() : null;
	return {
		is: !!e && e === document.querySelector(` + jsString(want) + `),
		desc: (!e || e === document.body) ? "nothing (the body)" : desc(e) + " " + JSON.stringify(text(e).slice(0, 40)),
		width: cs ? (parseFloat(cs.outlineWidth) || 0) : 0,
		style: cs ? cs.outlineStyle : "",
		visible: !!r && r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && r.left < innerWidth && r.top < innerHeight,
	};
})()`
}

// phone and desktop are the viewports of the tour.
var (
	phoneViewport   = chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateScale(2))
	desktopViewport = chromedp.EmulateViewport(1280, 900)
)

// checkPage runs the checks every page must pass on the page open in ctx; problems are
// reported with t.Errorf under the page's name. It returns the number of problems.
func checkPage(t *testing.T, ctx context.Context, p tourPage) int {
	t.Helper()
	bad := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		bad++
		t.Errorf("%s: %s", p.path, fmt.Sprintf(format, args...))
	}

	nav := evalOn[navState](t, ctx, "reading the navigation of "+p.path, navJS)
	if !strings.HasSuffix(nav.Title, " · schoolgate") || strings.HasPrefix(strings.TrimSpace(nav.Title), "·") {
		errorf("the <title> is %q, want \"<page> · schoolgate\"", nav.Title)
	}
	if !strings.Contains(nav.H1, p.h1) {
		errorf("the h1 reads %q, want it to contain %q", nav.H1, p.h1)
	}
	if page, _, _ := strings.Cut(nav.Title, " · "); !strings.EqualFold(page, nav.H1) {
		t.Logf("%s: note: the title %q and the h1 %q differ", p.path, nav.Title, nav.H1)
	}
	switch {
	case p.loggedOut():
		if nav.Navs != 0 {
			errorf("the page before login shows the navigation")
		}
	case nav.Navs != 1:
		errorf("%d nav.pages elements, want one navigation", nav.Navs)
	case nav.Label == "":
		errorf("the navigation has no aria-label")
	}
	want := []string{}
	if p.nav != "" {
		want = []string{p.nav}
	}
	if !p.loggedOut() && strings.Join(nav.Current, " ") != strings.Join(want, " ") {
		errorf("the navigation marks %q as the current page (aria-current=page), want %q", nav.Current, want)
	}
	if len(nav.Other) > 0 {
		errorf("navigation links with aria-current other than page: %q", nav.Other)
	}

	for _, problem := range evalOn[[]string](t, ctx, "accessibility checks of "+p.path, a11yJS) {
		errorf("%s", problem)
	}
	return bad
}

// checkPhoneWidth shows the page at a phone's width and checks the document does not scroll
// sideways; then back to the desktop width.
func checkPhoneWidth(t *testing.T, ctx context.Context, p tourPage, shotName string) int {
	t.Helper()
	step(t, ctx, "phone width for "+p.path, phoneViewport)
	// Let the layout settle (media queries, fonts) before measuring.
	step(t, ctx, "layout at phone width", chromedp.Sleep(100*time.Millisecond))
	o := evalOn[overflow](t, ctx, "measuring "+p.path+" at phone width", overflowJS)
	if o.Client > 400 {
		t.Errorf("%s: the phone viewport is %dpx wide, want 390: the emulation did not apply", p.path, o.Client)
	}
	bad := 0
	if o.Scroll > o.Client+1 {
		bad++
		t.Errorf("%s: at 390px wide the page scrolls sideways: document %dpx wide in a %dpx viewport; sticking out: %s",
			p.path, o.Scroll, o.Client, strings.Join(o.Culprits, "; "))
	}
	if len(o.Wraps) > 0 {
		t.Logf("%s: note: at 390px these scroll sideways in their own box (allowed): %s", p.path, strings.Join(o.Wraps, "; "))
	}
	if shotName != "" {
		shot(ctx, t, shotName)
	}
	step(t, ctx, "desktop width again", desktopViewport)
	return bad
}

// tabThrough presses Tab until the element first of sels has the focus (at most maxPresses
// times; none when it has the focus already), then once for each of the others, checking
// each gets the focus in that order and shows it with an outline. Problems are reported
// with t.Errorf under page.
func tabThrough(t *testing.T, ctx context.Context, page string, maxPresses int, sels ...string) {
	t.Helper()
	press := func() { step(t, ctx, "press Tab on "+page, chromedp.KeyEvent(kb.Tab)) }
	f := evalOn[focused](t, ctx, "the focus on "+page, focusedJS(sels[0]))
	var path []string
	for presses := 0; !f.Is; presses++ {
		if presses == maxPresses {
			t.Errorf("%s: after %d presses of Tab the keyboard has not reached %s; it went through: %s",
				page, maxPresses, sels[0], strings.Join(path, " → "))
			return
		}
		press()
		f = evalOn[focused](t, ctx, "the focus on "+page, focusedJS(sels[0]))
		path = append(path, f.Desc)
	}
	for i, sel := range sels {
		if i > 0 {
			press()
			f = evalOn[focused](t, ctx, "the focus on "+page, focusedJS(sel))
			path = append(path, f.Desc)
			if !f.Is {
				t.Errorf("%s: Tab after %s moves the focus to %s, want %s", page, sels[i-1], f.Desc, sel)
				return
			}
		}
		if !f.outlined() {
			t.Errorf("%s: %s has the keyboard focus but no visible focus outline (outline %vpx %s)", page, f.Desc, f.Width, f.Style)
		}
		if !f.Visible {
			t.Errorf("%s: %s has the keyboard focus but is not on the screen", page, f.Desc)
		}
	}
	t.Logf("%s: Tab went through %s", page, strings.Join(path, " → "))
}

// checkerSample is a page with one of each defect the tour's checks look for, and a wide
// table inside a scrolling wrapper that they must accept.
const checkerSample = `<!doctype html><html><head><title>sample</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>
.wide { width: 800px; } .table-wrap { overflow-x: auto; } #plain:focus { outline: none; }
</style></head><body><main><h1>Sample</h1><h3>Skipped</h3>
<input id="nolabel" type="text" placeholder="Name"><label for="ghost">Ghost</label>
<button id="empty"></button><img src="x.png"><svg width="10" height="10"></svg>
<p id="twice">a</p><p id="twice">b</p><a href="/x"></a>
<div class="table-wrap"><table class="wide"><tr><td>wide but scrolls</td></tr></table></div>
<div class="wide" id="toowide">too wide</div><button id="plain">Plain</button>
</main></body></html>`

// checkTheChecks runs the tour's checks on checkerSample: each defect must be found, so that
// a tour without reports means something.
func checkTheChecks(t *testing.T, ctx context.Context) {
	t.Helper()
	open(t, ctx, "data:text/html,"+url.PathEscape(checkerSample))
	got := strings.Join(evalOn[[]string](t, ctx, "the checks on the sample", a11yJS), "\n")
	for _, want := range []string{
		"form field input#nolabel (input type=text) has no accessible name",
		`label "Ghost" is for "ghost", but no element has that id`,
		"button button#empty has no text",
		"image img (x.png) has no alt attribute",
		"svg is neither role=img",
		`id "twice" is used 2 times`,
		`link a[href="/x"] has no text`,
		`heading h3 "Skipped" comes after h1 "Sample": skips h2`,
		"<html> has no lang",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the accessibility checks miss %q on the sample; they found:\n%s", want, got)
		}
	}
	step(t, ctx, "phone width for the sample", phoneViewport)
	o := evalOn[overflow](t, ctx, "measuring the sample", overflowJS)
	step(t, ctx, "desktop width again", desktopViewport)
	if o.Scroll <= o.Client || len(o.Culprits) != 1 || !strings.HasPrefix(o.Culprits[0], "div#toowide ") {
		t.Errorf("the width check on the sample found %+v, want div#toowide alone sticking out", o)
	}
	evalOn[bool](t, ctx, "focus on the sample's last link", `(document.querySelector('a[href="/x"]').focus(), true)`)
	step(t, ctx, "press Tab on the sample", chromedp.KeyEvent(kb.Tab))
	if f := evalOn[focused](t, ctx, "the focus on the sample", focusedJS("#plain")); !f.Is || f.outlined() {
		t.Errorf("the focus check on the sample: %+v, want #plain focused without an outline", f)
	}
}

// TestBrowserTour visits every page of the navigation as the technician, after some DNS
// traffic, and checks each as described at the top of this file; it takes the screenshots
// of the main pages for the documentation.
func TestBrowserTour(t *testing.T) {
	ctx := newBrowser(t)
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-demo")

	// Traffic first, so that the dashboard, the logs and the device summaries have content.
	sent := tourTraffic(t, d)
	for _, c := range []string{staff, pupil, guest} {
		d.waitEvents(t, "/api/events?client="+c, func(evs []apiEvent) bool { return len(evs) > 0 })
	}
	d.waitEvents(t, "/api/events?client="+pupil+"&action=block", func(evs []apiEvent) bool { return len(evs) >= 5 })
	t.Logf("%d queries sent; the events are in the log", sent)

	checkTheChecks(t, ctx)

	firstTechnician(t, ctx, d)
	// Keyboard focus in a headless browser: the page behaves as the focused window.
	step(t, ctx, "focus emulation", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	}))

	pages := []tourPage{
		{"/", "Dashboard", "/", "dashboard"},
		{"/logs", "Logs", "/logs", "logs"},
		{"/logs?device=" + pupil, "Logs", "/logs", ""}, // a device's logs and summary
		{"/exceptions", "Exceptions", "/exceptions", ""},
		{"/profiles", "Profiles", "/profiles", ""}, // "profiles": TestBrowserPolicyCategoryUntick
		{"/profiles/pupils", "Profile pupils", "/profiles", ""},
		{"/schedules", "Schedules", "", "schedules"}, // not in the navigation
		{"/segments", "Segments", "/segments", "segments"},
		{"/segments/pupils", "Segment pupils", "/segments", ""},
		{"/lists", "Lists", "/lists", "lists"},
		{"/devices", "Devices", "/devices", "devices"},
		{"/audit", "Audit trail", "/audit", ""}, // "audit": TestBrowserPolicyCategoryUntick
		{"/accounts", "Accounts", "/accounts", ""},
		{"/account", "My account", "/account", "account"},
		{"/system", "System", "/system", "system"},
		{"/explain?client=" + pupil + "&name=facebook.com", "Explain a decision", "", "explain"}, // not in the navigation
	}
	problems := 0
	for _, p := range pages {
		start := time.Now()
		open(t, ctx, d.apiURL+p.path)
		wantPath(t, ctx, p.path) // not sent to the login page or elsewhere
		step(t, ctx, "the h1 of "+p.path, waitVisible("h1"))
		problems += checkPage(t, ctx, p)
		switch p.path {
		case "/logs":
			if rows := textsOfOptional(t, ctx, "#events tbody tr"); len(rows) < 10 {
				failf(t, ctx, "the logs show %d rows after %d queries", len(rows), sent)
			}
		case "/logs?device=" + pupil:
			wantText(t, ctx, "#device-heading", pupil)
			for _, sel := range []string{"#device-total", "#device-blocked"} {
				if n, err := strconv.Atoi(strings.ReplaceAll(textOf(t, ctx, sel), ",", "")); err != nil || n == 0 {
					failf(t, ctx, "the pupil's device summary: %s reads %q, want a number above 0", sel, textOf(t, ctx, sel))
				}
			}
		case "/":
			// The explain box answers in place (htmx): the page with the answer passes too.
			step(t, ctx, "explain a decision on the dashboard",
				fill("#explain-name", "roblox.com"), fill("#explain-client", pupil),
				chromedp.Click(chromedp.CSS(`#explain-box button[type="submit"]`), chromedp.NodeVisible),
				waitVisible("#explain-result"))
			wantText(t, ctx, "#explain-result", "roblox.com", "Blocked")
			wantPath(t, ctx, "/")
			problems += checkPage(t, ctx, tourPage{path: "/ (with an explanation)", h1: p.h1, nav: p.nav})
			open(t, ctx, d.apiURL+p.path)
		case "/explain?client=" + pupil + "&name=facebook.com":
			wantText(t, ctx, "#explain-result", "facebook.com", "Blocked")
		}
		if p.shot != "" {
			shot(ctx, t, p.shot)
		}
		phoneShot := ""
		if p.path == "/" {
			phoneShot = "dashboard-phone"
		}
		problems += checkPhoneWidth(t, ctx, p, phoneShot)
		t.Logf("%s checked in %v", p.path, time.Since(start).Round(time.Millisecond))
	}

	// Pages reached from the ones above rather than from the navigation: a device's own page
	// and a configuration version, when there are any.
	open(t, ctx, d.apiURL+"/devices")
	more := evalOn[[]string](t, ctx, "links to devices", `Array.from(document.querySelectorAll('main a[href^="/devices/"]')).map(a => a.getAttribute("href")).slice(0, 1)`)
	open(t, ctx, d.apiURL+"/system")
	more = append(more, evalOn[[]string](t, ctx, "links to versions", `Array.from(document.querySelectorAll('main a[href^="/system/versions/"]')).map(a => a.getAttribute("href")).slice(0, 1)`)...)
	for _, path := range more {
		p := tourPage{path: path, nav: "/devices"}
		if strings.HasPrefix(path, "/system/") {
			p = tourPage{path: path, h1: "Configuration version", nav: "/system"}
		}
		open(t, ctx, d.apiURL+path)
		problems += checkPage(t, ctx, p)
		problems += checkPhoneWidth(t, ctx, p, "")
	}
	if len(more) == 0 {
		t.Logf("no device or configuration version pages to visit (no devices on loopback, no version saved)")
	}

	// The keyboard on a form page: the first Tab shows the skip link, then the fields of the
	// new account form in order, each with a visible focus.
	open(t, ctx, d.apiURL+"/accounts")
	tabThrough(t, ctx, "/accounts", 1, "a.skip")
	tabThrough(t, ctx, "/accounts", 40, "#name", "#role", "#password", "#password2", "#create-account")

	// The login page: its checks, and the keyboard from the name (focused on arrival) through
	// the password to the button.
	logOut(t, ctx)
	problems += checkPage(t, ctx, tourPage{path: "/login?out=1", h1: "Log in"})
	tabThrough(t, ctx, "/login", 0, "#name", "#password", `main button[type="submit"]`)
	problems += checkPhoneWidth(t, ctx, tourPage{path: "/login?out=1"}, "")

	t.Logf("%d page problems found", problems)
	wantNoPageErrors(t, ctx)
}

// health asks /api/health once.
func health(d *daemonProc) error {
	resp, err := d.client.Get(d.apiURL + "/api/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// processState reads the state letter of pid from /proc (R, S, Z…), or "" when it is gone.
func processState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

var entrySeq = regexp.MustCompile(`^#entry-(\d+)$`)

// seqOf is the sequence number of the audit entry whose selector newestEntry returned.
func seqOf(t *testing.T, sel string) int {
	t.Helper()
	m := entrySeq.FindStringSubmatch(sel)
	if m == nil {
		t.Fatalf("audit entry %s has no sequence number in its id", sel)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// clickLoad clicks sel and waits for the page it loads, within stepTimeout, returning the
// error rather than failing the test.
func clickLoad(ctx context.Context, sel string) error {
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return chromedp.Do(sctx, click(sel))
}

// TestBrowserRestart: the technician restarts schoolgate from the system page. Without a
// reason it is refused with the error by the field and the daemon keeps running; with one
// the page says it is restarting, the same process (a service manager sees no exit) comes
// back, the browser's session is still valid, logging in again works, and the audit trail
// has the restart with its reason and the daemon's new start after it.
func TestBrowserRestart(t *testing.T) {
	ctx := newBrowser(t)
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-demo")
	const reason = "Segments changed for the new Year 7 network; they take effect at a restart"
	name, password, secret := firstTechnician(t, ctx, d)
	pid := d.cmd.Process.Pid

	// Without a reason: refused, the message next to the field, nothing restarted.
	open(t, ctx, d.apiURL+"/system")
	wantText(t, ctx, "#restart-heading", "Restart")
	if got := valueOf(t, ctx, "#restart-reason"); got != "" {
		failf(t, ctx, "the restart reason starts with %q, want it empty", got)
	}
	submitForServerCheck(t, ctx, "restart without a reason", "#restart")
	wantPath(t, ctx, "/system/restart")
	wantText(t, ctx, "#restart-reason-error", "Say why")
	wantText(t, ctx, `main [role="alert"]`, "not restarted")
	if got := evalOn[string](t, ctx, "the reason field's error", `(() => {
		const f = document.querySelector("#restart-reason"), e = document.querySelector("#restart-reason-error");
		if (!f || !e) return "missing";
		if (f.getAttribute("aria-invalid") !== "true") return "the field is not aria-invalid";
		if (!(f.getAttribute("aria-describedby") || "").split(/\s+/).includes("restart-reason-error")) return "the field is not described by its error";
		if (!f.parentElement.contains(e)) return "the error is not beside the field";
		return "";
	})()`); got != "" {
		failf(t, ctx, "the refused restart's error: %s", got)
	}
	time.Sleep(500 * time.Millisecond)
	if err := health(d); err != nil {
		t.Fatalf("after the refused restart the daemon does not answer: %v", err)
	}
	if strings.Contains(d.logs.String(), "restarting") {
		t.Fatalf("a restart without a reason restarted the daemon:\n%s", d.logs.String())
	}

	// With a reason: the page says it is restarting.
	logLen := len(d.logs.String())
	asked := time.Now()
	step(t, ctx, "the reason", fill("#restart-reason", reason))
	// The click's page must load and say so. A failure here is reported and the test goes
	// on, to check the restart itself.
	if err := clickLoad(ctx, "#restart"); err != nil {
		u := evalOn[string](t, ctx, "the address after the restart", "location.href")
		t.Errorf("restart with a reason: the browser shows an error page instead of the restarting notice: %v (address %s). "+
			"The answer redirects to /system?done=restart, and the browser's request for that page meets the web UI "+
			"already shut down for the restart", err, u)
	} else {
		// The notice, on the page the redirect leads to or (should the answer become the
		// page itself, which no second request can miss) on the form's answer.
		if u := pageURL(t, ctx); u.RequestURI() != "/system?done=restart" && u.Path != "/system/restart" {
			failf(t, ctx, "after the restart the address is %s, want /system?done=restart", u)
		}
		wantText(t, ctx, "#done", "schoolgate is restarting")
	}

	// The same process comes back.
	deadline := time.Now().Add(30 * time.Second)
	var down time.Duration
	for {
		if st := processState(pid); st == "" || st == "Z" {
			t.Fatalf("the daemon (pid %d) exited at the restart instead of restarting in place (state %q)\n%s", pid, st, d.logs.String())
		}
		restarted := strings.Contains(d.logs.String()[logLen:], "web UI listening")
		if err := health(d); err == nil && restarted {
			break
		} else if err != nil && down == 0 {
			down = time.Since(asked)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not come back within 30s of the restart\n%s", d.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("restarted in %v (pid %d throughout; the health check first failed %v after the click)",
		time.Since(asked).Round(time.Millisecond), pid, down.Round(time.Millisecond))
	if d.cmd.Process.Pid != pid || syscall.Kill(pid, 0) != nil {
		t.Fatalf("the daemon's process changed at the restart")
	}
	if d.cmd.ProcessState != nil {
		t.Fatalf("the daemon exited: %v", d.cmd.ProcessState)
	}
	// DNS works again too.
	waitAnswer(t, d, pupil, "facebook.com", "NXDOMAIN")
	waitAnswer(t, d, staff, "facebook.com", "NOERROR A "+upstreamDefaultA)

	// Sessions are kept in auth.db: the browser is still logged in after the restart.
	open(t, ctx, d.apiURL+"/system")
	wantPath(t, ctx, "/system")
	wantText(t, ctx, "h1", "System")
	wantText(t, ctx, "header .who", name)
	if got := textsOfOptional(t, ctx, "#done"); len(got) != 0 {
		failf(t, ctx, "the restarting notice is still shown on a fresh /system: %q", got)
	}
	// And logging in again works.
	logOut(t, ctx)
	loginAs(t, ctx, d, name, password, secret)

	// The audit trail: the restart by the technician with the reason, then the new start.
	open(t, ctx, d.apiURL+"/audit")
	restart := newestEntry(t, ctx, "system.restart")
	wantText(t, ctx, restart+" .who", name, "technician")
	wantText(t, ctx, restart+" .reason", reason)
	start := newestEntry(t, ctx, "daemon.start")
	if seqOf(t, start) <= seqOf(t, restart) {
		failf(t, ctx, "the newest daemon.start (%s) is not after the system.restart (%s)", start, restart)
	}
	actions := evalOn[[]string](t, ctx, "the audit actions", `Array.from(document.querySelectorAll("ol.audit > li")).reverse().map(
		li => li.id.replace("entry-", "") + " " + ((li.querySelector("code.action") || {}).textContent || ""))`)
	t.Logf("the audit trail, oldest first: %s", strings.Join(actions, ", "))
	restarts := evalOn[int](t, ctx, "counting the restarts", `Array.from(document.querySelectorAll("ol.audit code.action")).filter(c => c.textContent === "system.restart").length`)
	if restarts != 1 {
		failf(t, ctx, "%d system.restart entries, want 1 (the refused one must not be recorded)", restarts)
	}
	starts := evalOn[int](t, ctx, "counting the starts", `Array.from(document.querySelectorAll("ol.audit code.action")).filter(c => c.textContent === "daemon.start").length`)
	if starts != 2 {
		failf(t, ctx, "%d daemon.start entries, want 2 (the first start and the restart)", starts)
	}

	wantNoPageErrors(t, ctx)
}
