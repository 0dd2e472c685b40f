package webui

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// The profiles pages: the categories × profiles matrix and one page per profile with its
// custom lists, safe-search, YouTube, block-response, bypass and QUIC settings. The DSL sees
// them read-only; a technician saves them with a reason, which goes into the audit trail
// with a diff of the configuration.

// matrixRow is one category of the matrix.
type matrixRow struct {
	category.Info
	Blocked []bool // per profile, in the order of profilesData.Profiles
}

type profilesData struct {
	CanEdit  bool
	Profiles []string
	Rows     []matrixRow
	Base     string // fingerprint of the configuration the form was made from
	Saved    string // version just saved, for the notice
}

// fingerprint identifies a configuration, so that a form made from an older one is noticed
// when it is sent back.
func fingerprint(cfg *config.Config) string {
	data, err := config.Marshal(cfg)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// editableConfig fetches the configuration, or answers with an error page.
func (s *Server) editableConfig(w http.ResponseWriter, r *http.Request) (*config.Config, bool) {
	cfg, err := s.cfg.Config.EditableConfig()
	if err != nil {
		s.cfg.Logger.Error("reading the configuration", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Configuration", "The configuration could not be read.")
		return nil, false
	}
	return cfg, true
}

// editForm opens a form that changes the configuration: the configuration as saved, the
// posted form parsed, and the fingerprint of what the form is applied to, so that a save
// can tell whether someone else changed it since. title names the page of a failure.
func (s *Server) editForm(w http.ResponseWriter, r *http.Request, title string) (*config.Config, string, bool) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return nil, "", false
	}
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, title, "The form could not be read.")
		return nil, "", false
	}
	return cfg, fingerprint(cfg), true
}

func (s *Server) handleProfiles(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	d := matrixData(cfg, nil)
	d.CanEdit = auth.Can(sessionFrom(r).Role, auth.PolicyEdit)
	d.Saved = r.URL.Query().Get("saved")
	s.render(w, r, http.StatusOK, "profiles", page{Title: "Profiles", Data: d})
}

// matrixData builds the matrix from cfg, or from the ticks of a submitted form.
func matrixData(cfg *config.Config, ticked func(profile string, c category.ID) bool) profilesData {
	d := profilesData{Base: fingerprint(cfg)}
	for _, p := range cfg.Profiles {
		d.Profiles = append(d.Profiles, p.Name)
	}
	for _, info := range category.All() {
		row := matrixRow{Info: info}
		for _, p := range cfg.Profiles {
			b := slices.Contains(p.BlockCategories, info.ID)
			if ticked != nil {
				b = ticked(p.Name, info.ID)
			}
			row.Blocked = append(row.Blocked, b)
		}
		d.Rows = append(d.Rows, row)
	}
	return d
}

// handleProfilesSave saves the matrix: every profile's blocked categories at once.
func (s *Server) handleProfilesSave(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Profiles")
	if !ok {
		return
	}
	ticked := func(profile string, c category.ID) bool {
		return slices.Contains(r.PostForm["block:"+profile], string(c))
	}
	var changes []string
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		var now []category.ID
		var added, removed []string
		for _, info := range category.All() {
			was, is := slices.Contains(p.BlockCategories, info.ID), ticked(p.Name, info.ID)
			if is {
				now = append(now, info.ID)
			}
			switch {
			case is && !was:
				added = append(added, string(info.ID))
			case was && !is:
				removed = append(removed, string(info.ID))
			}
		}
		if len(added)+len(removed) == 0 {
			continue
		}
		p.BlockCategories = now
		c := p.Name + ":"
		if len(added) > 0 {
			c += " blocked " + strings.Join(added, ", ")
		}
		if len(removed) > 0 {
			if len(added) > 0 {
				c += ";"
			}
			c += " unblocked " + strings.Join(removed, ", ")
		}
		changes = append(changes, c)
	}
	d := matrixData(cfg, ticked)
	d.CanEdit, d.Base = true, fp
	p := page{Title: "Profiles", Data: d, fieldErrs: map[string]string{}, Form: map[string]string{"reason": r.PostFormValue("reason")}}
	if len(changes) == 0 {
		p.Notice = "Nothing changed: no tick was added or removed."
		s.render(w, r, http.StatusOK, "profiles", p)
		return
	}
	s.saveConfig(w, r, cfg, fp, "profiles", p, "categories: "+strings.Join(changes, "; "), "/profiles")
}

// saveConfig checks the reason, saves cfg through the daemon and redirects to next on
// success; otherwise it shows the page again with what is wrong, keeping what was entered.
// fp is the fingerprint of the configuration cfg was changed from: a form made from an
// older configuration (someone else saved in between) is shown again to be checked rather
// than silently undoing the other change.
func (s *Server) saveConfig(w http.ResponseWriter, r *http.Request, cfg *config.Config, fp, pageName string, p page, summary, next string) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if msg := checkReason(reason); msg != "" {
		p.fieldErrs["reason"] = msg
	}
	if r.PostFormValue("base") != fp {
		p.Error = "Someone else changed the configuration since you opened this page. Your changes are shown below on top of theirs: check them and save again."
	}
	if len(p.fieldErrs) == 0 && p.Error == "" {
		sess := sessionFrom(r)
		ch := Change{Actor: sess.Account, Role: string(sess.Role), Summary: summary, Reason: reason}
		if a := clientAddr(r); a.IsValid() {
			ch.Address = a.String()
		}
		v, err := s.cfg.Config.SaveConfig(r.Context(), cfg, ch)
		if err == nil {
			sep := "?"
			if strings.Contains(next, "?") {
				sep = "&"
			}
			http.Redirect(w, r, next+sep+"saved="+strconv.Itoa(v.Number), http.StatusSeeOther)
			return
		}
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				p.fieldErrs[formField(fe.Field)] = fe.Msg
			}
			p.Error = "The change was not saved: " + ve.Errors[0].Error()
		} else {
			s.cfg.Logger.Error("saving the configuration", "err", err)
			p.Error = "The change was not saved: " + err.Error()
		}
	}
	if p.Error == "" {
		p.Error = "The change was not saved. Correct what is marked below."
	}
	s.render(w, r, http.StatusUnprocessableEntity, pageName, p)
}

// checkReason says what is wrong with the reason for a change, or "".
func checkReason(reason string) string {
	switch {
	case reason == "":
		return "Say why you are making this change; the audit trail keeps it."
	case len(reason) > 500:
		return "Keep the reason under 500 characters."
	case strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }):
		return "The reason contains control characters."
	}
	return ""
}

// formField maps a configuration field path to the name of the form field that edits it,
// so that the error shows next to it: the item of the top-level list is dropped, then the
// first list below it names the field ("profiles[1].allow[3]" → "allow",
// "profiles[0].bypass.vpn_ports[1]" → "vpn_ports", "schedules[2].terms[0].to" → "terms"),
// or else the last name ("schedules[2].from" → "from").
func formField(path string) string {
	if i := strings.Index(path, "]."); i >= 0 {
		path = path[i+2:]
	}
	parts := strings.Split(path, ".")
	for _, p := range parts {
		if i := strings.IndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	return parts[len(parts)-1]
}

// profileData is what profile.html shows and edits.
type profileData struct {
	CanEdit      bool
	Name         string
	Base         string
	Saved        string
	Blocked      []category.Info
	AddressLists []addressList
	Schedules    []profileSchedule
}

// profileSchedule is one schedule's checkboxes on the profile page.
type profileSchedule struct {
	Name, Summary string
	Cats          []scheduleCat
}

type scheduleCat struct {
	ID              category.ID
	Name            string
	Checked, Always bool
}

type addressList struct {
	Name    string
	Checked bool
}

func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	i := slices.IndexFunc(cfg.Profiles, func(p config.Profile) bool { return p.Name == r.PathValue("name") })
	if i < 0 {
		s.renderMessage(w, r, http.StatusNotFound, "No such profile", "There is no profile called "+strconv.Quote(r.PathValue("name"))+".")
		return
	}
	d := profileFormData(cfg, cfg.Profiles[i])
	d.CanEdit = auth.Can(sessionFrom(r).Role, auth.PolicyEdit)
	d.Saved = r.URL.Query().Get("saved")
	s.render(w, r, http.StatusOK, "profile", page{Title: "Profile " + d.Name, Data: d, Form: profileForm(cfg.Profiles[i])})
}

func profileFormData(cfg *config.Config, p config.Profile) profileData {
	d := profileData{Name: p.Name, Base: fingerprint(cfg)}
	for _, id := range p.BlockCategories {
		if info, ok := category.Lookup(id); ok {
			d.Blocked = append(d.Blocked, info)
		}
	}
	for _, l := range cfg.Lists {
		if l.Format == config.FormatIPs {
			d.AddressLists = append(d.AddressLists, addressList{Name: l.Name, Checked: slices.Contains(p.Bypass.AddressLists, l.Name)})
		}
	}
	for _, sc := range cfg.Schedules {
		ps := profileSchedule{Name: sc.Name, Summary: scheduleSummary(sc)}
		var on []category.ID
		for _, sb := range p.ScheduledBlocks {
			if sb.Schedule == sc.Name {
				on = append(on, sb.Categories...)
			}
		}
		for _, info := range category.All() {
			ps.Cats = append(ps.Cats, scheduleCat{ID: info.ID, Name: info.Name, Checked: slices.Contains(on, info.ID),
				Always: slices.Contains(p.BlockCategories, info.ID)})
		}
		d.Schedules = append(d.Schedules, ps)
	}
	return d
}

// readScheduledBlocks reads the profile page's schedule checkboxes ("sched:<schedule>").
func readScheduledBlocks(cfg *config.Config, form map[string][]string) []config.ScheduledBlock {
	var out []config.ScheduledBlock
	for _, sc := range cfg.Schedules {
		var cats []category.ID
		for _, info := range category.All() {
			if slices.Contains(form["sched:"+sc.Name], string(info.ID)) {
				cats = append(cats, info.ID)
			}
		}
		if len(cats) > 0 {
			out = append(out, config.ScheduledBlock{Schedule: sc.Name, Categories: cats})
		}
	}
	return out
}

// profileForm is a profile as the form's field values.
func profileForm(p config.Profile) map[string]string {
	on := func(b *bool) string {
		if b == nil || *b {
			return "on"
		}
		return ""
	}
	return map[string]string{
		"allow":          strings.Join(p.Allow, "\n"),
		"block":          strings.Join(p.Block, "\n"),
		"block_response": p.BlockResponse,
		"safe_search":    p.SafeSearch,
		"unsafe_engines": p.UnsafeEngines,
		"youtube":        p.YouTube,
		"quic":           p.QUIC,
		"no_sni":         p.NoSNI,
		"canaries":       on(p.Bypass.Canaries),
		"strip_ech":      on(p.Bypass.StripECH),
		"block_dot":      on(p.Bypass.BlockDoT),
		"vpn_ports":      strings.Join(p.Bypass.VPNPorts, " "),
	}
}

// handleProfileSave saves one profile's settings.
func (s *Server) handleProfileSave(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Profile")
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(cfg.Profiles, func(p config.Profile) bool { return p.Name == name })
	if i < 0 {
		s.renderMessage(w, r, http.StatusNotFound, "No such profile", "There is no profile called "+strconv.Quote(name)+".")
		return
	}
	before := cfg.Profiles[i]
	p := &cfg.Profiles[i]
	f := r.PostForm
	p.Allow, p.Block = entries(f.Get("allow")), entries(f.Get("block"))
	p.BlockResponse, p.SafeSearch, p.UnsafeEngines = f.Get("block_response"), f.Get("safe_search"), f.Get("unsafe_engines")
	p.YouTube, p.QUIC, p.NoSNI = f.Get("youtube"), f.Get("quic"), f.Get("no_sni")
	flag := func(k string) *bool { b := f.Get(k) == "on"; return &b }
	p.Bypass.Canaries, p.Bypass.StripECH, p.Bypass.BlockDoT = flag("canaries"), flag("strip_ech"), flag("block_dot")
	p.Bypass.VPNPorts = strings.Fields(strings.ReplaceAll(f.Get("vpn_ports"), ",", " "))
	p.ScheduledBlocks = readScheduledBlocks(cfg, f)
	p.Bypass.AddressLists = nil
	for _, l := range cfg.Lists {
		if l.Format == config.FormatIPs && slices.Contains(f["address_lists"], l.Name) {
			p.Bypass.AddressLists = append(p.Bypass.AddressLists, l.Name)
		}
	}
	form := profileForm(*p)
	form["allow"], form["block"], form["reason"] = f.Get("allow"), f.Get("block"), f.Get("reason")
	d := profileFormData(cfg, *p)
	d.CanEdit, d.Base = true, fp
	pg := page{Title: "Profile " + name, Data: d, Form: form, fieldErrs: map[string]string{}}
	changed := profileChanges(before, *p)
	if len(changed) == 0 {
		pg.Notice = "Nothing changed."
		s.render(w, r, http.StatusOK, "profile", pg)
		return
	}
	s.saveConfig(w, r, cfg, fp, "profile", pg, fmt.Sprintf("profile %s: %s changed", name, strings.Join(changed, ", ")), "/profiles/"+name)
}

// entries splits a text area into list entries: one per line (or separated by spaces or
// commas), "#" comments and blank lines dropped.
func entries(text string) []string {
	var out []string
	for line := range strings.Lines(text) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		out = append(out, strings.Fields(strings.ReplaceAll(line, ",", " "))...)
	}
	return out
}

// profileChanges names the settings that differ, for the audit summary.
func profileChanges(a, b config.Profile) []string {
	fa, fb := profileForm(a), profileForm(b)
	var out []string
	for _, k := range []string{"allow", "block", "block_response", "safe_search", "unsafe_engines", "youtube", "quic", "no_sni", "canaries", "strip_ech", "block_dot", "vpn_ports"} {
		if fa[k] != fb[k] {
			out = append(out, strings.ReplaceAll(k, "_", " "))
		}
	}
	if !slices.Equal(a.Bypass.AddressLists, b.Bypass.AddressLists) {
		out = append(out, "address lists")
	}
	if !slices.EqualFunc(a.ScheduledBlocks, b.ScheduledBlocks, func(x, y config.ScheduledBlock) bool {
		return x.Schedule == y.Schedule && slices.Equal(x.Categories, y.Categories)
	}) {
		out = append(out, "scheduled blocks")
	}
	return out
}
