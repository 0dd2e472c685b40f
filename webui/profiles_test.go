package webui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/category"
)

// matrixForm is the profiles form as a browser would send it for the current configuration.
func (e *env) matrixForm(t *testing.T, page, csrf string) url.Values {
	t.Helper()
	f := url.Values{"csrf": {csrf}, "base": {hidden(t, page, "base")}}
	cfg, _ := e.config.EditableConfig()
	for _, p := range cfg.Profiles {
		for _, c := range p.BlockCategories {
			f.Add("block:"+p.Name, string(c))
		}
	}
	return f
}

func TestProfilesMatrix(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/profiles")
	if !strings.Contains(page, `aria-label="Block Social networks for pupils" checked`) {
		t.Fatalf("matrix does not show social blocked for pupils:\n%s", page)
	}
	form := e.matrixForm(t, page, csrf)
	form["block:pupils"] = slices.DeleteFunc(form["block:pupils"], func(c string) bool { return c == "social" })

	// Without a reason nothing is saved and the ticks stay as sent.
	resp, page := b.post("/profiles", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="reason-error"`) {
		t.Fatalf("no reason: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, `aria-label="Block Social networks for pupils" checked`) {
		t.Error("the untick was lost when the form came back")
	}
	if len(e.config.changes) != 0 {
		t.Fatal("saved without a reason")
	}

	form.Set("reason", "Year 9 media studies project")
	resp, _ = b.post("/profiles", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profiles?saved=1" {
		t.Fatalf("save: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	cfg, _ := e.config.EditableConfig()
	if slices.Contains(cfg.Profiles[0].BlockCategories, category.ID("social")) {
		t.Error("social still blocked for pupils")
	}
	ch := e.config.changes[0]
	if ch.Actor != "tech" || ch.Reason != "Year 9 media studies project" || !strings.Contains(ch.Summary, "pupils: unblocked social") {
		t.Errorf("change recorded as %+v", ch)
	}
	_, page = b.get("/profiles?saved=1")
	if !strings.Contains(page, "Saved as configuration version 1") {
		t.Error("no saved notice")
	}

	// A form made before that save is shown again rather than undoing it.
	stale := url.Values{"csrf": {csrf}, "base": {form.Get("base")}, "reason": {"stale"}, "block:pupils": {"adult"}}
	resp, page = b.post("/profiles", stale)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "Someone else changed the configuration") || len(e.config.changes) != 1 {
		t.Errorf("stale form: %d, %d changes\n%s", resp.StatusCode, len(e.config.changes), page)
	}

	// The DSL reads the policy but cannot change it.
	d := e.browser()
	d.login("dsl1")
	_, page = d.get("/profiles")
	if !strings.Contains(page, `aria-label="Block Pornography for pupils" checked disabled>`) {
		t.Errorf("DSL matrix not read-only")
	}
	if strings.Contains(page, `id="save"`) {
		t.Error("DSL sees a save button")
	}
}

func TestProfileSettings(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/profiles/pupils")
	if !strings.Contains(page, "bbc.co.uk") || !strings.Contains(page, `<option value="strict" selected>`) {
		t.Fatalf("profile page lacks the current settings:\n%s", page)
	}
	form := url.Values{"csrf": {csrf}, "base": {hidden(t, page, "base")}, "allow": {"bbc.co.uk\nscratch.mit.edu # coding club"},
		"block": {""}, "block_response": {"blockpage"}, "safe_search": {"strict"}, "youtube": {"strict"}, "quic": {"inspect"},
		"no_sni": {"block"}, "canaries": {"on"}, "strip_ech": {"on"}, "block_dot": {"on"}, "vpn_ports": {"udp/51820 tcp/99999"},
		"reason": {"coding club"}}
	resp, page := b.post("/profiles/pupils", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="vpn_ports-error"`) {
		t.Fatalf("bad port accepted or error not next to the field: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, "scratch.mit.edu # coding club") {
		t.Error("the allow list typed was lost")
	}
	form.Set("vpn_ports", "udp/51820")
	resp, _ = b.post("/profiles/pupils", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	cfg, _ := e.config.EditableConfig()
	p := cfg.Profiles[0]
	if !slices.Equal(p.Allow, []string{"bbc.co.uk", "scratch.mit.edu"}) || p.BlockResponse != "blockpage" || len(p.Block) != 0 {
		t.Errorf("saved profile: %+v", p)
	}
	if s := e.config.changes[0].Summary; !strings.Contains(s, "allow") || !strings.Contains(s, "block response") {
		t.Errorf("summary %q", s)
	}
	if resp, _ := b.get("/profiles/nobody"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown profile: %d", resp.StatusCode)
	}
}
