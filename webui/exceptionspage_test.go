package webui

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
)

func TestExceptionsWorkflow(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	ctx := context.Background()
	if _, err := e.store.CreateAccount(ctx, e.tech, "teach2", auth.Teacher, testPassword); err != nil {
		t.Fatal(err)
	}
	teacher := e.browser()
	tcsrf := teacher.login("teach1")
	_, page := teacher.get("/exceptions")
	if !strings.Contains(page, "Ask for an exception") || strings.Contains(page, `id="approve-`) {
		t.Fatalf("teacher's page:\n%s", page)
	}

	// Hostile and wrong input is reported next to each field, and what was typed stays.
	resp, page := teacher.post("/exceptions/request", url.Values{"csrf": {tcsrf}, "domain": {"https://protected.example/page"},
		"action": {"allow"}, "applies": {"profile:pupils"}, "duration": {"soon"}, "reason": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad request accepted: %d", resp.StatusCode)
	}
	for _, id := range []string{`id="duration-error"`, `value="soon"`} {
		if !strings.Contains(page, id) {
			t.Errorf("bad form: page lacks %s", id)
		}
	}
	resp, page = teacher.post("/exceptions/request", url.Values{"csrf": {tcsrf}, "domain": {"protected.example"},
		"action": {"allow"}, "applies": {"profile:pupils"}, "duration": {"1h"}, "reason": {""}})
	if !strings.Contains(page, `id="domain-error"`) || !strings.Contains(page, `id="reason-error"`) {
		t.Errorf("protected domain and missing reason not reported next to their fields:\n%s", page)
	}

	resp, _ = teacher.post("/exceptions/request", url.Values{"csrf": {tcsrf}, "domain": {"www.YouTube.com"},
		"action": {"allow"}, "applies": {"profile:pupils"}, "duration": {"50m"}, "reason": {"Year 8 history: propaganda films"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("request: %d", resp.StatusCode)
	}
	_, page = teacher.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "Request 1 sent") || !strings.Contains(page, "www.youtube.com") {
		t.Errorf("after request:\n%s", page)
	}
	// A teacher cannot approve, even their own request, and another teacher cannot withdraw it.
	if resp, _ := teacher.post("/exceptions/1/approve", url.Values{"csrf": {tcsrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("teacher approved: %d", resp.StatusCode)
	}
	other := e.browser()
	ocsrf := other.login("teach2")
	if _, page := other.get("/exceptions"); strings.Contains(page, "youtube") {
		t.Error("a teacher sees another teacher's request")
	}
	if resp, page := other.post("/exceptions/1/withdraw", url.Values{"csrf": {ocsrf}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "Only the person who asked") {
		t.Errorf("withdraw by another teacher: %d", resp.StatusCode)
	}

	// The DSL sees it waiting; denying needs a note, and the note typed is kept.
	dsl := e.browser()
	dcsrf := dsl.login("dsl1")
	_, page = dsl.get("/exceptions")
	if !strings.Contains(page, `id="approve-1"`) || !strings.Contains(page, "Year 8 history: propaganda films") {
		t.Fatalf("DSL's page lacks the request:\n%s", page)
	}
	resp, page = dsl.post("/exceptions/1/approve", url.Values{"csrf": {dcsrf}, "note": {"ok for this lesson"}, "duration": {"ages"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `value="ok for this lesson"`) {
		t.Errorf("bad grant: %d", resp.StatusCode)
	}
	resp, _ = dsl.post("/exceptions/1/approve", url.Values{"csrf": {dcsrf}, "note": {"ok for this lesson"}, "duration": {"45m"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	x, err := e.exceptions.Get(ctx, 1)
	if err != nil || x.Status != exceptions.Approved || x.DecidedBy != "dsl1" || x.Duration.Minutes() != 45 {
		t.Errorf("after approval: %+v, %v", x, err)
	}
	if active, _ := e.exceptions.Active(ctx); len(active) != 1 || active[0].Domain != "www.youtube.com" {
		t.Errorf("active: %+v", active)
	}
	_, page = teacher.get("/exceptions")
	if !strings.Contains(page, "In force now") || !strings.Contains(page, "approved by dsl1") {
		t.Errorf("teacher does not see the approval")
	}
	// The teacher asked for 50 minutes and got 45: the card says so.
	if !strings.Contains(page, "the request asked for 50 minutes") {
		t.Errorf("the shortened grant is not shown against what was asked")
	}
	// Deciding twice is refused with the reason.
	if _, page := dsl.post("/exceptions/1/deny", url.Values{"csrf": {dcsrf}, "note": {"no"}}); !strings.Contains(page, "it is approved already") {
		t.Errorf("second decision:\n%s", page)
	}
	if _, page := dsl.post("/exceptions/1/revoke", url.Values{"csrf": {dcsrf}}); !strings.Contains(page, "Exception 1:") {
		t.Errorf("revoke without a note was not refused")
	}
	resp, _ = dsl.post("/exceptions/1/revoke", url.Values{"csrf": {dcsrf}, "note": {"lesson over"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	var actions []string
	for _, a := range e.auditEntries() {
		if strings.HasPrefix(a.Action, "exception.") {
			actions = append(actions, a.Actor+" "+a.Action+" "+a.Reason)
		}
	}
	want := []string{"teach1 exception.request Year 8 history: propaganda films", "dsl1 exception.approve ok for this lesson", "dsl1 exception.revoke lesson over"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Errorf("audit trail:\n%s\nwant\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
}

// A pupil's review from the block page is approved, by default, for the device that asked,
// not the whole profile.
func TestBlockPageReviewGrantedToTheDevice(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	ctx := context.Background()
	x, err := e.exceptions.RequestReview(ctx, exceptions.Review{Domain: "tiktok.com", Profile: "pupils",
		ClientAddr: "10.20.0.31", ClientMAC: "dc:a6:32:01:02:03", Reason: "dance project"})
	if err != nil {
		t.Fatal(err)
	}
	dsl := e.browser()
	csrf := dsl.login("dsl1")
	_, page := dsl.get("/exceptions")
	if !strings.Contains(page, `<option value="device:dc:a6:32:01:02:03" selected>`) {
		t.Fatalf("the device is not the default grant:\n%s", page)
	}
	resp, _ := dsl.post("/exceptions/"+strconv.FormatInt(x.ID, 10)+"/approve", url.Values{"csrf": {csrf}, "grant_for": {"device:dc:a6:32:01:02:03"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	got, _ := e.exceptions.Get(ctx, x.ID)
	if got.Scope != "device" || got.Target != "dc:a6:32:01:02:03" {
		t.Errorf("granted for %s %s", got.Scope, got.Target)
	}
}
