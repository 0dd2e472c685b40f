package webui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/category"
)

func TestSchedulesAndScheduledBlocks(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/schedules")
	base := hidden(t, page, "base")
	form := url.Values{"csrf": {csrf}, "base": {base}, "name": {"lessons"}, "days": {"mon", "tue", "wed", "thu", "fri"},
		"from": {"8:30"}, "to": {"15:30"}, "terms": {"2026-09-03 to 2026-10-23\n2026-11-02 to 2026-12-18"}, "closed": {"2026-11-27"},
		"reason": {"lesson times for pupils"}}
	resp, page := b.post("/schedules/new", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="from-error"`) || !strings.Contains(page, "2026-11-02 to 2026-12-18") {
		t.Fatalf("bad time: %d\n%s", resp.StatusCode, page)
	}
	form.Set("from", "08:30")
	if resp, page := b.post("/schedules/new", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", resp.StatusCode, page)
	}
	cfg, _ := e.config.EditableConfig()
	if len(cfg.Schedules) != 1 || cfg.Schedules[0].From != "08:30" || len(cfg.Schedules[0].Terms) != 2 || cfg.Schedules[0].Closed[0].From != "2026-11-27" {
		t.Fatalf("saved schedules: %+v", cfg.Schedules)
	}
	_, page = b.get("/schedules")
	if !strings.Contains(page, "weekdays, 08:30 to 15:30, in 2 term date range(s), except 1 closed day(s)") {
		t.Errorf("schedule summary missing:\n%s", page)
	}

	// Block social for staff in lesson time only.
	_, page = b.get("/profiles/staff")
	if !strings.Contains(page, `name="sched:lessons" value="social"`) {
		t.Fatalf("profile page lacks the schedule's categories")
	}
	pf := url.Values{"csrf": {csrf}, "base": {hidden(t, page, "base")}, "block_response": {"nxdomain"}, "safe_search": {"on"},
		"youtube": {"moderate"}, "quic": {"inspect"}, "no_sni": {"block"}, "canaries": {"on"}, "strip_ech": {"on"}, "block_dot": {"on"},
		"sched:lessons": {"social", "games"}, "reason": {"no social media in lessons"}}
	if resp, page := b.post("/profiles/staff", pf); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("profile save: %d\n%s", resp.StatusCode, page)
	}
	cfg, _ = e.config.EditableConfig()
	var got []category.ID
	for _, p := range cfg.Profiles {
		if p.Name == "staff" && len(p.ScheduledBlocks) == 1 && p.ScheduledBlocks[0].Schedule == "lessons" {
			got = p.ScheduledBlocks[0].Categories
		}
	}
	if !slices.Equal(got, []category.ID{"social", "games"}) {
		t.Errorf("staff's scheduled blocks: %v", got)
	}
	if s := e.config.changes[len(e.config.changes)-1].Summary; !strings.Contains(s, "scheduled blocks") {
		t.Errorf("summary %q", s)
	}
	// A schedule in use cannot be deleted.
	_, page = b.get("/schedules")
	resp, page = b.post("/schedules/lessons", url.Values{"csrf": {csrf}, "base": {hidden(t, page, "base")}, "delete": {"1"}, "reason": {"x y z"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "used by profile staff") {
		t.Errorf("deleting a used schedule: %d", resp.StatusCode)
	}
	d := e.browser()
	d.login("dsl1")
	if _, page := d.get("/schedules"); strings.Contains(page, "Add schedule") {
		t.Error("the DSL can add schedules")
	}
}
