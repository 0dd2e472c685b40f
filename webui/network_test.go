package webui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/lists"
)

// fakeUpdater records the lists it is asked to update; block, when set, holds each update
// until it is closed.
type fakeUpdater struct {
	mu    sync.Mutex
	calls []string
	err   error
	block chan struct{}
}

func (f *fakeUpdater) UpdateList(ctx context.Context, name string) error {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	block, err := f.block, f.err
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeUpdater) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// networkEnv is newEnv with a richer status: the demo's lists (the protected one with
// protectedEntries entries, adult with skipped lines, social failing) and segment counters.
func networkEnv(t *testing.T, protectedEntries int) (*env, *fakeUpdater) {
	t.Helper()
	up := &fakeUpdater{}
	now := time.Now()
	e := newEnvWith(t, func(c *Config) {
		c.Lists = up
		c.Status = func(context.Context) Status {
			return Status{
				Components: []Component{{Name: "lists", State: "degraded", Detail: "the protected tier is empty"}},
				Lists: []ListStatus{
					{SourceStatus: lists.SourceStatus{Name: "protected-test", Format: "domains", Origin: "lists/protected.txt", Protected: true,
						Entries: protectedEntries, Updated: now.Add(-time.Hour), Checked: now.Add(-time.Hour)}},
					{SourceStatus: lists.SourceStatus{Name: "adult", Format: "domains", Origin: "lists/adult.txt",
						Entries: 12345, Skipped: 3, Categories: map[category.ID]int{"adult": 12345},
						Errors: []lists.LineError{
							{Line: 7, Text: `<script>alert("x")</script>`, Err: "not a domain name"},
							{Line: 9, Text: "evil\u202egnp.exe", Err: "not a domain name"},
							{Line: 12, Text: strings.Repeat("a", 300), Err: "label too long"},
						},
						Updated: now.Add(-3 * time.Hour), Checked: now.Add(-10 * time.Minute)}},
					{SourceStatus: lists.SourceStatus{Name: "social", Format: "domains", Origin: "lists/social.txt",
						Entries: 40, Categories: map[category.ID]int{"social": 40}, LastError: "open lists/social.txt: permission denied",
						Updated: now.Add(-49 * time.Hour), Checked: now.Add(-2 * time.Minute)}},
				},
				Segments: []SegmentStatus{
					{Segment: "pupils", Profile: "pupils", Queries: 1234567, Blocked: 4321, Rewritten: 12},
					{Segment: "unknown", Queries: 5},
				},
			}
		}
	})
	e.withAccounts()
	return e, up
}

func TestListsPage(t *testing.T) {
	e, _ := networkEnv(t, 0)
	b := e.browser()
	b.login("tech")
	resp, page := b.get("/lists")
	if resp.StatusCode != 200 {
		t.Fatalf("lists: %d", resp.StatusCode)
	}
	for _, want := range []string{
		// The protected tier, empty: a red alert.
		`class="notice error alarm" role="alert" id="protected-empty"`,
		"The protected tier is empty: illegal-content lists are not being blocked.",
		"Load the IWF/CTIRU feed",
		// Entries, categories with counts, skipped lines with their line numbers.
		"12,345", "Pornography (12,345)", "lists/adult.txt", "<td>7</td>", "<td>12</td>", "not a domain name",
		"The first 3 skipped lines",
		// Ages in words, in the appliance's zone.
		"3 hours ago", "10 minutes ago", "2 days ago", "Europe/London",
		// The failing list says so.
		`<p class="notice warn" id="list-4-error"><strong>The last update failed:</strong> <span class="mono">open lists/social.txt: permission denied</span>`,
		// Lists not loaded yet, and the technician's buttons.
		"not loaded yet", `action="/lists/adult/update"`, `aria-label="Update now: adult"`, `id="add-list"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("lists page lacks %q", want)
		}
	}
	// What came from the list file is escaped, stripped of direction overrides and cut.
	if strings.Contains(page, `<script>alert`) || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Error("a hostile line is not escaped")
	}
	if strings.Contains(page, "\u202e") || !strings.Contains(page, "evil\ufffdgnp.exe") {
		t.Error("a right-to-left override reached the page")
	}
	if strings.Contains(page, strings.Repeat("a", 121)) || !strings.Contains(page, strings.Repeat("a", 120)+"…") {
		t.Error("a long line is not cut")
	}
	if strings.Contains(page, "style=") || strings.Contains(page, "<script>") {
		t.Error("inline style or script")
	}

	// The DSL reads the lists but has no buttons.
	d := e.browser()
	csrf := d.login("dsl1")
	_, page = d.get("/lists")
	if !strings.Contains(page, "The protected tier is empty") || !strings.Contains(page, "12,345") {
		t.Error("the DSL does not see the lists")
	}
	if strings.Contains(page, "Update now") || strings.Contains(page, `id="add-list"`) || strings.Contains(page, "/remove") {
		t.Error("the DSL sees buttons that change the lists")
	}
	if resp, _ := d.post("/lists/adult/update", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("DSL update now: %d", resp.StatusCode)
	}
}

func TestListsProtectedLoaded(t *testing.T) {
	e, _ := networkEnv(t, 1500)
	b := e.browser()
	b.login("dsl1")
	_, page := b.get("/lists")
	if strings.Contains(page, "The protected tier is empty") || strings.Contains(page, `id="protected-empty"`) {
		t.Error("the empty-tier warning shows although the protected list has entries")
	}
	if !strings.Contains(page, "The protected tier holds 1,500 entries") || !strings.Contains(page, `<a href="#list-0">protected-test</a>`) {
		t.Errorf("the protected tier's content is not shown:\n%s", page)
	}
}

func TestListUpdateNow(t *testing.T) {
	e, up := networkEnv(t, 10)
	b := e.browser()
	csrf := b.login("tech")
	resp, _ := b.post("/lists/adult/update", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/lists?done=updated&list=adult#list-1" {
		t.Fatalf("update now: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := up.called(); !slices.Equal(got, []string{"adult"}) {
		t.Errorf("updater called with %v", got)
	}
	entries := e.auditEntries()
	last := entries[len(entries)-1]
	if last.Action != "list.update.request" || last.Actor != "tech" || last.Role != "technician" || last.Object != "adult" || last.Address == "" {
		t.Errorf("audit entry: %+v", last)
	}
	_, page := b.get("/lists?done=updated&list=adult")
	if !strings.Contains(page, "List adult was updated just now.") {
		t.Error("no notice after the update")
	}
	// A crafted link cannot put a made-up name in the notice.
	if _, page := b.get("/lists?done=updated&list=evil.example"); strings.Contains(page, "evil.example") {
		t.Error("the notice repeats a name that is not a list")
	}

	// A failed update says why, on the page.
	up.mu.Lock()
	up.err = errors.New("fetching https://lists.example/adult: 503 Service Unavailable")
	up.mu.Unlock()
	resp, page = b.post("/lists/adult/update", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "Updating list adult failed: fetching https://lists.example/adult: 503 Service Unavailable") {
		t.Errorf("failed update: %d\n%s", resp.StatusCode, page)
	}

	// A long download goes on after the answer; a second click does not start another.
	up.mu.Lock()
	up.err, up.block = nil, make(chan struct{})
	up.mu.Unlock()
	defer func(w time.Duration) { listUpdateWait = w }(listUpdateWait)
	listUpdateWait = 20 * time.Millisecond
	resp, _ = b.post("/lists/social/update", url.Values{"csrf": {csrf}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/lists?done=started&list=social") {
		t.Errorf("slow update: %d %q", resp.StatusCode, loc)
	}
	resp, _ = b.post("/lists/social/update", url.Values{"csrf": {csrf}})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/lists?done=busy") {
		t.Errorf("second click: %q", loc)
	}
	if _, page := b.get("/lists?done=started&list=social"); !strings.Contains(page, "List social is still updating") {
		t.Error("no notice for an update under way")
	}
	close(up.block)
	if n := len(up.called()); n != 3 {
		t.Errorf("updater called %d times, want 3", n)
	}

	// A list that is not (any more) in the configuration.
	resp, _ = b.post("/lists/nope/update", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/lists?done=missing" {
		t.Errorf("unknown list: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Without an updater (newEnv's server) "update now" says it is not available.
func TestListUpdateUnavailable(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	resp, _ := b.post("/lists/adult/update", url.Values{"csrf": {csrf}})
	if resp.Header.Get("Location") != "/lists?done=unavailable&list=adult#list-1" {
		t.Fatalf("no updater: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := b.get("/lists?done=unavailable"); !strings.Contains(page, "not available on this appliance") {
		t.Error("no notice")
	}
}

func TestListAddRemove(t *testing.T) {
	e, _ := networkEnv(t, 10)
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/lists")
	base := hidden(t, page, "base")

	form := url.Values{"csrf": {csrf}, "base": {base}, "name": {"iwf"}, "url": {"ftp://iwf.example/list"}, "format": {"domains"},
		"protected": {"on"}, "update_interval": {"soon"}}
	resp, page := b.post("/lists", form)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid list: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="url-error"`, "is not an http or https URL", `id="update_interval-error"`, `id="reason-error"`,
		`aria-invalid="true"`, `value="ftp://iwf.example/list"`, `<details class="add" open>`} {
		if !strings.Contains(page, want) {
			t.Errorf("invalid list: page lacks %q", want)
		}
	}
	form.Set("file", "../../etc/shadow")
	form.Set("url", "")
	_, page = b.post("/lists", form)
	if !strings.Contains(page, `id="file-error"`) || !strings.Contains(page, "no absolute path") {
		t.Error("a file outside the configuration's directory is not refused")
	}
	if len(e.config.changes) != 0 {
		t.Fatal("an invalid list was saved")
	}

	form.Set("file", "")
	form.Set("url", "https://iwf.example/list")
	form.Set("update_interval", "12h")
	form.Set("reason", "IWF licence arrived")
	resp, _ = b.post("/lists", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/lists?added=iwf&saved=1" {
		t.Fatalf("add: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cfg, _ := e.config.EditableConfig()
	l := cfg.Lists[len(cfg.Lists)-1]
	if l.Name != "iwf" || l.URL != "https://iwf.example/list" || !l.Protected || time.Duration(l.UpdateInterval) != 12*time.Hour {
		t.Errorf("added list: %+v", l)
	}
	if ch := e.config.changes[0]; ch.Reason != "IWF licence arrived" || !strings.Contains(ch.Summary, "list iwf added: https://iwf.example/list") {
		t.Errorf("change: %+v", ch)
	}
	_, page = b.get("/lists?added=iwf&saved=1")
	if !strings.Contains(page, "List iwf was added.") || !strings.Contains(page, "Saved as configuration version 1") {
		t.Error("no notice after adding")
	}

	// An address list a profile blocks cannot be removed from under it.
	base = hidden(t, page, "base")
	resp, page = b.post("/lists/doh-resolvers/remove", url.Values{"csrf": {csrf}, "base": {base}, "reason": {"tidy"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "profile pupils, guest blocks its addresses") {
		t.Errorf("removing a used list: %d\n%s", resp.StatusCode, page)
	}
	// Removing needs a reason, shown next to that list's field.
	resp, page = b.post("/lists/chat/remove", url.Values{"csrf": {csrf}, "base": {base}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="remove-11-reason-error"`) ||
		!strings.Contains(page, `aria-describedby="remove-11-reason-error"`) {
		t.Errorf("removing without a reason: %d", resp.StatusCode)
	}
	resp, _ = b.post("/lists/chat/remove", url.Values{"csrf": {csrf}, "base": {base}, "reason": {"chat is no longer filtered"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	cfg, _ = e.config.EditableConfig()
	if slices.ContainsFunc(cfg.Lists, func(l config.List) bool { return l.Name == "chat" }) {
		t.Error("chat is still configured")
	}
	if ch := e.config.changes[1]; ch.Summary != "list chat removed (lists/chat.txt)" || ch.Reason != "chat is no longer filtered" {
		t.Errorf("change: %+v", ch)
	}
}

func TestSegmentsPage(t *testing.T) {
	e, _ := networkEnv(t, 10)
	b := e.browser()
	csrf := b.login("dsl1")
	_, page := b.get("/segments")
	for _, want := range []string{`<a href="/segments/pupils">pupils</a>`, "127.0.0.2/32", "matched by address only",
		`<a href="/profiles/guest">guest</a>`, "1,234,567", "4,321", "clients in no segment", "filters DNS only here"} {
		if !strings.Contains(page, want) {
			t.Errorf("segments page lacks %q", want)
		}
	}
	// Staff is the admin segment (the default), guest the guest one.
	staff := page[strings.Index(page, `<a href="/segments/staff">`):]
	staff = staff[:strings.Index(staff, "</tr>")]
	if !strings.Contains(staff, `<td data-label="Admin">yes</td>`) || !strings.Contains(staff, `<td data-label="Guest">no</td>`) {
		t.Errorf("staff row: %s", staff)
	}
	// The DSL sees a segment read-only and cannot save it.
	_, page = b.get("/segments/pupils")
	if !strings.Contains(page, "<fieldset disabled>") || strings.Contains(page, `id="save"`) || !strings.Contains(page, "1,234,567") ||
		strings.Contains(page, "You are connected from this segment") {
		t.Errorf("DSL segment page not read-only:\n%s", page)
	}
	if resp, _ := b.post("/segments/pupils", url.Values{"csrf": {csrf}, "profile": {"staff"}, "reason": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("DSL save: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/segments/nobody"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown segment: %d", resp.StatusCode)
	}
}

// segmentForm is the segment form as the browser sends it, from the page.
func segmentFormOf(t *testing.T, e *env, page, csrf, name string) url.Values {
	t.Helper()
	cfg, _ := e.config.EditableConfig()
	for _, s := range cfg.Segments {
		if s.Name != name {
			continue
		}
		f := url.Values{"csrf": {csrf}, "base": {hidden(t, page, "base")}}
		for k, v := range segmentForm(s, cfg) {
			if v != "" {
				f.Set(k, v)
			}
		}
		return f
	}
	t.Fatalf("no segment %s", name)
	return nil
}

func TestSegmentEdit(t *testing.T) {
	e, _ := networkEnv(t, 10)
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/segments/pupils")
	if !strings.Contains(page, `<option value="pupils" selected>`) || strings.Contains(page, "<fieldset disabled>") {
		t.Fatalf("segment page:\n%s", page)
	}
	form := segmentFormOf(t, e, page, csrf, "pupils")
	form.Set("profile", "staff")

	resp, page := b.post("/segments/pupils", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="reason-error"`) || !strings.Contains(page, `<option value="staff" selected>`) {
		t.Fatalf("no reason: %d", resp.StatusCode)
	}
	form.Set("reason", "Year 13 study room uses staff filtering")
	resp, _ = b.post("/segments/pupils", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/segments/pupils?saved=1" {
		t.Fatalf("save: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cfg, _ := e.config.EditableConfig()
	if cfg.Segments[1].Profile != "staff" {
		t.Errorf("profile not saved: %+v", cfg.Segments[1])
	}
	if ch := e.config.changes[0]; ch.Summary != "segment pupils: profile pupils → staff" || ch.Actor != "tech" {
		t.Errorf("change: %+v", ch)
	}
	_, page = b.get("/segments/pupils?saved=1")
	if !strings.Contains(page, "Saved as configuration version 1") || strings.Contains(page, `id="restart-notice"`) {
		t.Errorf("saved notice:\n%s", page)
	}

	// Validation errors are shown next to their fields.
	_, page = b.get("/segments/pupils")
	form = segmentFormOf(t, e, page, csrf, "pupils")
	form.Set("reason", "move")
	form.Set("subnets", "127.0.0.2/32\n127.0.0.1/32")
	form.Set("vlan", "20")
	resp, page = b.post("/segments/pupils", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="subnets-error"`) || !strings.Contains(page, "overlaps 127.0.0.1/32 of segment") ||
		!strings.Contains(page, `id="vlan-error"`) || !strings.Contains(page, "Needs trunk") {
		t.Errorf("invalid segment: %d\n%s", resp.StatusCode, page)
	}
	form.Set("subnets", "10.20.0.0/33")
	form.Set("vlan", "")
	_, page = b.post("/segments/pupils", form)
	if !strings.Contains(page, `id="subnets-error"`) || !strings.Contains(page, "&#34;10.20.0.0/33&#34; is not a subnet") {
		t.Error("a bad subnet is not named next to the field")
	}
	// A guest segment cannot be an admin segment; the last admin segment cannot go.
	_, page = b.get("/segments/guest")
	form = segmentFormOf(t, e, page, csrf, "guest")
	form.Set("admin_segments", "on")
	form.Set("reason", "x")
	if _, page = b.post("/segments/guest", form); !strings.Contains(page, `id="admin_segments-error"`) || !strings.Contains(page, "guests never reach the web UI") {
		t.Errorf("guest admin segment:\n%s", page)
	}
	_, page = b.get("/segments/staff")
	if !strings.Contains(page, "You are connected from this segment") {
		t.Error("the staff page does not warn that the browser is in it")
	}
	form = segmentFormOf(t, e, page, csrf, "staff")
	form.Del("admin_segments")
	form.Set("reason", "x")
	if _, page = b.post("/segments/staff", form); !strings.Contains(page, "At least one segment must reach the web UI") {
		t.Error("the last admin segment was given up")
	}
	if len(e.config.changes) != 1 {
		t.Fatalf("invalid changes were saved: %d", len(e.config.changes))
	}
}

// On a gateway, network settings wait for a restart, and the saved notice says so.
func TestSegmentRestartNotice(t *testing.T) {
	e, _ := networkEnv(t, 10)
	e.config.mu.Lock()
	e.config.cfg.Appliance.WAN = "eth0"
	e.config.mu.Unlock()
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/segments/pupils")
	form := segmentFormOf(t, e, page, csrf, "pupils")
	form.Set("subnets", "127.0.0.2/32\n10.20.0.0/16")
	form.Set("gateway", "10.20.0.1")
	form.Set("admin_segments", "on")
	form.Set("reason", "pupils' new VLAN addresses")
	resp, _ := b.post("/segments/pupils", form)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc != "/segments/pupils?restart=subnets,gateway,admin_segments&saved=1" {
		t.Fatalf("save: %d %q", resp.StatusCode, loc)
	}
	cfg, _ := e.config.EditableConfig()
	if len(cfg.Segments[1].Subnets) != 2 || !slices.Contains(cfg.HTTP.AdminSegments, "pupils") {
		t.Errorf("saved: %+v %v", cfg.Segments[1], cfg.HTTP.AdminSegments)
	}
	_, page = b.get(loc)
	if !strings.Contains(page, "The change to subnets, gateway addresses, web UI access takes effect at the next restart") {
		t.Errorf("no restart notice:\n%s", page)
	}
	if s := e.config.changes[0].Summary; s != "segment pupils: subnets, gateway, admin segments changed" {
		t.Errorf("summary %q", s)
	}
}

func TestSegmentAdd(t *testing.T) {
	e, _ := networkEnv(t, 10)
	e.config.mu.Lock()
	e.config.cfg.Appliance.WAN = "eth0"
	e.config.mu.Unlock()
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/segments")
	form := url.Values{"csrf": {csrf}, "base": {hidden(t, page, "base")}, "name": {"Sixth Form"}, "profile": {"staff"},
		"subnets": {"10.40.0.0/16"}, "gateway": {"10.50.0.1"}, "vlan": {"40"}, "trunk": {"eth1"}, "reason": {"new sixth-form block"}}
	resp, page := b.post("/segments", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="name-error"`) || !strings.Contains(page, `<details class="add" open>`) {
		t.Fatalf("bad name: %d\n%s", resp.StatusCode, page)
	}
	form.Set("name", "sixth-form")
	resp, page = b.post("/segments", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="gateway-error"`) || !strings.Contains(page, "is not inside any subnet") {
		t.Fatalf("gateway outside the subnet: %d\n%s", resp.StatusCode, page)
	}
	form.Set("gateway", "10.40.0.1")
	resp, _ = b.post("/segments", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/segments?added=sixth-form&saved=1" {
		t.Fatalf("add: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cfg, _ := e.config.EditableConfig()
	s := cfg.Segments[len(cfg.Segments)-1]
	if s.Name != "sixth-form" || s.VLAN != 40 || s.Trunk != "eth1" || s.Profile != "staff" || s.Gateway[0].String() != "10.40.0.1" {
		t.Errorf("added: %+v", s)
	}
	if ch := e.config.changes[0]; ch.Summary != "segment sixth-form added: VLAN 40 on eth1, 10.40.0.0/16, profile staff" {
		t.Errorf("summary %q", ch.Summary)
	}
	_, page = b.get("/segments?added=sixth-form&saved=1")
	if !strings.Contains(page, "Segment sixth-form is set up at the next restart") {
		t.Errorf("no restart notice:\n%s", page)
	}
}
