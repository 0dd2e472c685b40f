package webui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/lists"
)

// The network pages: the list sources (what each holds, how fresh it is, what could not be
// read, "update now", adding and removing a source) with the protected tier on top, and the
// segments (where each lives, its addresses, profile, guest and admin flags, and its DNS
// counters) with an edit page per segment. The DSL sees both read-only; a technician saves
// changes with a reason, like the profiles.

// networkRoutes are the routes of the network pages.
func (s *Server) networkRoutes() []route {
	return []route{
		{"GET /lists", auth.PolicyRead, s.handleLists},
		{"POST /lists", auth.PolicyEdit, s.handleListAdd},
		{"POST /lists/{name}/update", auth.PolicyEdit, s.handleListUpdate},
		{"POST /lists/{name}/remove", auth.PolicyEdit, s.handleListRemove},
		{"GET /segments", auth.PolicyRead, s.handleSegments},
		{"POST /segments", auth.PolicyEdit, s.handleSegmentAdd},
		{"GET /segments/{name}", auth.PolicyRead, s.handleSegment},
		{"POST /segments/{name}", auth.PolicyEdit, s.handleSegmentSave},
	}
}

// networkPageFiles are the templates of the network pages.
var networkPageFiles = []string{"lists", "segments", "segment"}

// ---------------------------------------------------------------------------------------
// Lists

// listRow is one list source as lists.html shows it: its configuration and, once the
// daemon has read it, its status.
type listRow struct {
	Index                int
	Name, Origin, Format string
	IsURL                bool
	Protected            bool
	InConfig             bool // false: still loaded, but no longer in the saved configuration
	Loaded               bool // the daemon reports a status for it
	Entries              int
	EntriesText          string
	Skipped              int
	SkippedText          string
	Errors               []listLineError
	MoreErrors           int // skipped lines not shown
	Categories           []listCount
	Unmapped             []listCount
	UnmappedText         string
	Updated, Checked     listTime
	Interval             string
	LastError            string
	Stale                string   // a warning when a URL source has not been checked for long
	UsedBy               []string // profiles that block this address list
}

// listLineError is one line that could not be used, made safe to show: the text comes
// from a downloaded file and can be anything.
type listLineError struct {
	Line      int
	Text, Err string
}

type listCount struct {
	Name  string
	Count string
}

// listTime is a time as words ("3 hours ago") and as a date in the appliance's zone.
type listTime struct {
	Never    bool
	Ago, At  string
	Datetime string // RFC 3339, for <time datetime>
}

// protectedTier is what the protected tier holds now.
type protectedTier struct {
	Lists       []*listRow
	Entries     int
	EntriesText string
	Empty       bool
}

type listsData struct {
	CanEdit    bool
	Base       string
	Rows       []*listRow
	Protected  protectedTier
	Saved      string
	Notice     string // what the last action did
	NoticeKind string // "ok", "warn" or "" for the notice's colour
	Failed     string // the form shown again: "add" or "remove:<name>"
	Formats    []selectOption
	Categories []selectOption
	Zone       string
}

// Limits on what is shown of a source's own text.
const (
	listTextMax  = 120 // a skipped line
	listErrorMax = 300 // an error message
)

// listsData builds the lists page from the saved configuration and the daemon's status.
func (s *Server) listsData(r *http.Request, cfg *config.Config) listsData {
	loc := s.location()
	now := time.Now()
	st := s.cfg.Status(r.Context())
	d := listsData{Base: fingerprint(cfg), Zone: loc.String()}
	d.CanEdit = auth.Can(sessionFrom(r).Role, auth.PolicyEdit)
	byName := map[string]ListStatus{}
	for _, ls := range st.Lists {
		byName[ls.Name] = ls
	}
	for i, l := range cfg.Lists {
		row := &listRow{Index: i, Name: l.Name, Format: cmp.Or(l.Format, config.FormatDomains), Protected: l.Protected, InConfig: true,
			IsURL: l.URL != "", Origin: cmp.Or(l.URL, l.File)}
		iv := time.Duration(l.UpdateInterval)
		if iv <= 0 {
			iv = 24 * time.Hour
		}
		if row.IsURL {
			row.Interval = durationText(iv)
		}
		for _, p := range cfg.Profiles {
			if slices.Contains(p.Bypass.AddressLists, l.Name) {
				row.UsedBy = append(row.UsedBy, p.Name)
			}
		}
		if ls, ok := byName[l.Name]; ok {
			fillListStatus(row, ls.SourceStatus, loc, now)
			delete(byName, l.Name)
			if row.IsURL && !ls.Checked.IsZero() && now.Sub(ls.Checked) > 2*iv {
				row.Stale = fmt.Sprintf("Not checked for %s although it is due every %s: check the error below and the appliance's internet connection.",
					strings.TrimSuffix(listAgo(ls.Checked, now), " ago"), durationText(iv))
			}
		}
		d.Rows = append(d.Rows, row)
	}
	// Sources the daemon still has that the saved configuration no longer names (removed,
	// and the reload not done yet), in the daemon's order.
	for _, ls := range st.Lists {
		if _, ok := byName[ls.Name]; !ok {
			continue
		}
		row := &listRow{Index: len(d.Rows), Name: ls.Name, Format: ls.Format, Protected: ls.Protected, Origin: ls.Origin,
			IsURL: strings.HasPrefix(ls.Origin, "http://") || strings.HasPrefix(ls.Origin, "https://")}
		fillListStatus(row, ls.SourceStatus, loc, now)
		d.Rows = append(d.Rows, row)
	}
	for _, row := range d.Rows {
		if row.Protected {
			d.Protected.Lists = append(d.Protected.Lists, row)
			d.Protected.Entries += row.Entries
		}
	}
	d.Protected.EntriesText = listsCount(d.Protected.Entries)
	d.Protected.Empty = d.Protected.Entries == 0
	for _, f := range []string{config.FormatDomains, config.FormatHosts, config.FormatAdblock, config.FormatUT1, config.FormatIPs} {
		d.Formats = append(d.Formats, selectOption{f, formatLabel(f)})
	}
	d.Categories = []selectOption{{"", "none (protected, ut1 or ips lists)"}}
	for _, c := range category.All() {
		d.Categories = append(d.Categories, selectOption{string(c.ID), c.Name})
	}
	return d
}

func formatLabel(f string) string {
	switch f {
	case config.FormatDomains:
		return "domains: one name per line"
	case config.FormatHosts:
		return "hosts: 0.0.0.0 name"
	case config.FormatAdblock:
		return "adblock: ||name^"
	case config.FormatUT1:
		return "ut1: tar.gz archive with a folder per category"
	case config.FormatIPs:
		return "ips: addresses and prefixes, for the packet path"
	}
	return f
}

func fillListStatus(row *listRow, ls lists.SourceStatus, loc *time.Location, now time.Time) {
	row.Loaded = true
	row.Entries, row.EntriesText = ls.Entries, listsCount(ls.Entries)
	row.Skipped, row.SkippedText = ls.Skipped, listsCount(ls.Skipped)
	for _, e := range ls.Errors {
		row.Errors = append(row.Errors, listLineError{Line: e.Line, Text: cleanText(e.Text, listTextMax), Err: cleanText(e.Err, listTextMax)})
	}
	row.MoreErrors = max(ls.Skipped-len(row.Errors), 0)
	for id, n := range ls.Categories {
		name := string(id)
		if info, ok := category.Lookup(id); ok {
			name = info.Name
		}
		row.Categories = append(row.Categories, listCount{Name: name, Count: listsCount(n)})
	}
	sortCounts(row.Categories, ls.Categories)
	unmapped := 0
	for c, n := range ls.Unmapped {
		row.Unmapped = append(row.Unmapped, listCount{Name: cleanText(c, 60), Count: listsCount(n)})
		unmapped += n
	}
	slices.SortFunc(row.Unmapped, func(a, b listCount) int { return cmp.Compare(a.Name, b.Name) })
	if len(row.Unmapped) > 20 {
		row.Unmapped = row.Unmapped[:20]
	}
	row.UnmappedText = listsCount(unmapped)
	row.Updated, row.Checked = listWhen(ls.Updated, loc, now), listWhen(ls.Checked, loc, now)
	row.LastError = cleanText(ls.LastError, listErrorMax)
}

// sortCounts orders category counts largest first, then by name.
func sortCounts(cs []listCount, counts map[category.ID]int) {
	n := map[string]int{}
	for id, c := range counts {
		name := string(id)
		if info, ok := category.Lookup(id); ok {
			name = info.Name
		}
		n[name] = c
	}
	slices.SortFunc(cs, func(a, b listCount) int {
		if c := cmp.Compare(n[b.Name], n[a.Name]); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// cleanText makes text from outside (a list's lines, a server's error) safe to show and
// short: invalid UTF-8, control and formatting characters (such as the right-to-left
// override) become �, and it is cut to max characters. html/template escapes the rest.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			r = '\uFFFD'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// listsCount writes a count with thousands separators: 1,234,567.
func listsCount(n int) string {
	if n < 0 {
		return "-" + groupThousands(strconv.Itoa(-n))
	}
	return groupThousands(strconv.Itoa(n))
}

func groupThousands(digits string) string {
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func listWhen(t time.Time, loc *time.Location, now time.Time) listTime {
	if t.IsZero() {
		return listTime{Never: true}
	}
	return listTime{Ago: listAgo(t, now), At: t.In(loc).Format("Mon 2 Jan 2006, 15:04 MST"), Datetime: t.UTC().Format(time.RFC3339)}
}

// listAgo says how long ago t was, in words.
func listAgo(t, now time.Time) string {
	d := now.Sub(t)
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s ago"
	}
	switch {
	case d < -time.Minute:
		return "in the future (check the clock)"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int64(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int64(d/time.Hour), "hour")
	}
	return plural(int64(d/(24*time.Hour)), "day")
}

// listNotice is what the page says after an action, from the query string of the
// redirect; only the names of configured lists are repeated.
func listNotice(q url.Values, cfg *config.Config) (msg, kind string) {
	name := q.Get("list")
	if !slices.ContainsFunc(cfg.Lists, func(l config.List) bool { return l.Name == name }) {
		name = ""
	}
	the := "The list"
	if name != "" {
		the = "List " + name
	}
	switch q.Get("done") {
	case "updated":
		return the + " was updated just now. Its entries and times are below.", "ok"
	case "started":
		return the + " is still updating (a large download takes a while). Reload this page in a minute to see the result.", ""
	case "busy":
		return the + " is already being updated. Reload this page in a minute to see the result.", ""
	case "missing":
		return "That list is not in the configuration (any more): someone may have removed it. The lists below are the current ones.", "warn"
	case "unavailable":
		return "Updating a list now is not available on this appliance; lists are updated on their own schedule.", "warn"
	}
	if n := q.Get("added"); n != "" && slices.ContainsFunc(cfg.Lists, func(l config.List) bool { return l.Name == n }) {
		return "List " + n + " was added. It is read now; a URL list shows its entries once its download is done.", "ok"
	}
	if q.Get("removed") != "" {
		return "The list was removed. Its entries stop being blocked now.", "ok"
	}
	return "", ""
}

func (s *Server) handleLists(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	d := s.listsData(r, cfg)
	d.Saved = r.URL.Query().Get("saved")
	d.Notice, d.NoticeKind = listNotice(r.URL.Query(), cfg)
	s.render(w, r, http.StatusOK, "lists", page{Title: "Lists", Data: d, Form: map[string]string{"format": config.FormatDomains}})
}

// How long "update now" waits for the update before answering that it is still going,
// and how long the update may take in all. The server's write timeout is 30 seconds.
var (
	listUpdateWait    = 20 * time.Second
	listUpdateTimeout = 15 * time.Minute
)

// listUpdates holds the updates under way, so that a second click does not start another.
var listUpdates sync.Map // listUpdateKey → struct{}

type listUpdateKey struct {
	s    *Server
	name string
}

// handleListUpdate fetches one list source again now. A quick update is answered with its
// result; a long download goes on in the background and the page says so.
func (s *Server) handleListUpdate(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(cfg.Lists, func(l config.List) bool { return l.Name == name })
	back := func(done string) {
		q := url.Values{"done": {done}}
		if i >= 0 {
			q.Set("list", name)
		}
		to := "/lists?" + q.Encode()
		if i >= 0 {
			to += "#list-" + strconv.Itoa(i)
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	}
	switch {
	case i < 0:
		back("missing")
		return
	case s.cfg.Lists == nil:
		back("unavailable")
		return
	}
	key := listUpdateKey{s, name}
	if _, busy := listUpdates.LoadOrStore(key, struct{}{}); busy {
		back("busy")
		return
	}
	sess := sessionFrom(r)
	s.recordAudit(r, audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "list.update.request", Object: name,
		Summary: "update of list " + name + " requested"})
	result := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), listUpdateTimeout)
	go func() {
		defer cancel()
		defer listUpdates.Delete(key)
		err := s.cfg.Lists.UpdateList(ctx, name)
		if err != nil {
			s.cfg.Logger.Warn("updating a list on request", "list", name, "err", err)
		}
		result <- err
	}()
	timer := time.NewTimer(listUpdateWait)
	defer timer.Stop()
	select {
	case err := <-result:
		if err == nil {
			back("updated")
			return
		}
		d := s.listsData(r, cfg)
		msg := err.Error()
		if errors.Is(err, lists.ErrUnknownList) {
			msg = "the list is not loaded yet; the configuration is being applied, try again in a minute"
		}
		p := page{Title: "Lists", Data: d, Error: "Updating list " + name + " failed: " + cleanText(msg, listErrorMax),
			Form: map[string]string{"format": config.FormatDomains}}
		s.render(w, r, http.StatusBadGateway, "lists", p)
	case <-timer.C:
		back("started")
	case <-r.Context().Done():
	}
}

// listFormFields are the add form's fields that configuration errors are shown next to.
var listFormFields = []string{"name", "url", "file", "format", "category", "update_interval"}

// handleListAdd adds a list source to the configuration.
func (s *Server) handleListAdd(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Lists")
	if !ok {
		return
	}
	d := s.listsData(r, cfg)
	d.Base, d.Failed = fp, "add"
	f := r.PostForm
	form := map[string]string{"reason": f.Get("reason")}
	for _, k := range append(slices.Clone(listFormFields), "protected") {
		form[k] = strings.TrimSpace(f.Get(k))
	}
	errs := map[string]string{}
	l := config.List{Name: form["name"], URL: form["url"], File: form["file"], Format: form["format"],
		Category: category.ID(form["category"]), Protected: form["protected"] == "on"}
	if v := form["update_interval"]; v != "" {
		iv, err := config.ParseDuration(v)
		if err != nil || iv <= 0 {
			errs["update_interval"] = "Write a duration like 24h, 12h or 7d."
		} else {
			l.UpdateInterval = iv
		}
	}
	if l.File != "" && !filepath.IsLocal(l.File) {
		errs["file"] = "Give a file in the configuration's directory, like lists/extra.txt: no absolute path and no “..”."
	}
	if l.Format == config.FormatUT1 {
		if l.Category != "" {
			errs["category"] = "A ut1 archive brings its own categories: leave this empty."
		}
		l.Mapping = "ut1"
	}
	if l.Format == config.FormatIPs && l.Protected {
		errs["protected"] = "An address list cannot be in the protected tier, which holds names."
	}
	cfg.Lists = append(cfg.Lists, l)
	p := page{Title: "Lists", Data: d, Form: form, fieldErrs: errs}
	p.Error = configErrors(cfg.Validate(), errs, func(path string) string {
		prefix := fmt.Sprintf("lists[%d]", len(cfg.Lists)-1)
		switch {
		case path == prefix:
			return "url"
		case strings.HasPrefix(path, prefix+"."):
			if f := formField(path); slices.Contains(listFormFields, f) {
				return f
			}
		}
		return ""
	})
	origin := cmp.Or(l.URL, l.File)
	summary := fmt.Sprintf("list %s added: %s, format %s", l.Name, origin, l.Format)
	if l.Protected {
		summary += ", protected tier"
	} else if l.Category != "" {
		summary += ", category " + string(l.Category)
	}
	s.saveConfig(w, r, cfg, fp, "lists", p, summary, "/lists?added="+url.QueryEscape(l.Name))
}

// configErrors checks a changed configuration before it is saved: each error whose field
// field maps to a form field is put next to it, and the others are returned as one
// sentence for the top of the page ("" when there are none).
func configErrors(err error, errs map[string]string, field func(path string) string) string {
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		if err != nil {
			return "The change was not saved: " + err.Error()
		}
		return ""
	}
	var others []string
	for _, fe := range ve.Errors {
		if f := field(fe.Field); f != "" {
			if _, taken := errs[f]; !taken {
				errs[f] = upperFirst(fe.Msg) + "."
			}
			continue
		}
		others = append(others, fe.Error())
	}
	if len(others) == 0 {
		return ""
	}
	return "The change was not saved: " + strings.Join(others, "; ")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// handleListRemove removes a list source from the configuration.
func (s *Server) handleListRemove(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Lists")
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(cfg.Lists, func(l config.List) bool { return l.Name == name })
	if i < 0 {
		// Already gone (someone else removed it): what was asked for is done.
		http.Redirect(w, r, "/lists?done=missing", http.StatusSeeOther)
		return
	}
	d := s.listsData(r, cfg)
	d.Base, d.Failed = fp, "remove:"+name
	p := page{Title: "Lists", Data: d, Form: map[string]string{"reason": r.PostFormValue("reason"), "format": config.FormatDomains},
		fieldErrs: map[string]string{}}
	if row := d.Rows[i]; len(row.UsedBy) > 0 {
		p.Error = fmt.Sprintf("List %s was not removed: profile %s blocks its addresses. Untick it on the profile's page first.",
			name, strings.Join(row.UsedBy, ", "))
		s.render(w, r, http.StatusUnprocessableEntity, "lists", p)
		return
	}
	removed := cfg.Lists[i]
	cfg.Lists = slices.Delete(cfg.Lists, i, i+1)
	summary := "list " + name + " removed (" + cmp.Or(removed.URL, removed.File) + ")"
	if removed.Protected {
		summary = "protected list " + name + " removed (" + cmp.Or(removed.URL, removed.File) + ")"
	}
	s.saveConfig(w, r, cfg, fp, "lists", p, summary, "/lists?removed=1")
}

// ---------------------------------------------------------------------------------------
// Segments

// segmentRow is one segment as segments.html shows it.
type segmentRow struct {
	Name, Location   string
	Subnets, Gateway []string
	Profile          string
	InConfig         bool
	Guest, Admin     bool
	Counted          bool // the daemon reports DNS counters for it
	Queries, Blocked string
	Rewritten        string
	Malformed        string
}

type segmentsData struct {
	CanEdit bool
	Gateway bool   // schoolgate is the gateway (appliance.wan set)
	Restart string // why the daemon needs a restart, from its status; "" when it does not
	Rows    []segmentRow
	Others  []segmentRow // counters of segments not in the configuration ("unknown": no segment)
	// For the new segment form.
	Base     string
	Profiles []selectOption
	Failed   bool   // the form is shown again with what is wrong
	Saved    string // version just saved
	Added    string // name of the segment just added
}

func segmentLocation(s config.Segment) string {
	switch {
	case s.VLAN != 0:
		return fmt.Sprintf("VLAN %d on %s", s.VLAN, s.Trunk)
	case s.Interface != "":
		return "interface " + s.Interface
	}
	return "matched by address only"
}

func segmentBase(s config.Segment, cfg *config.Config) segmentRow {
	row := segmentRow{Name: s.Name, Location: segmentLocation(s), Profile: s.Profile, Guest: s.Guest, InConfig: true,
		Admin: slices.Contains(cfg.HTTP.AdminSegments, s.Name)}
	for _, p := range s.Subnets {
		row.Subnets = append(row.Subnets, p.String())
	}
	for _, a := range s.Gateway {
		row.Gateway = append(row.Gateway, a.String())
	}
	return row
}

func (row *segmentRow) count(c SegmentStatus) {
	row.Counted = true
	n := func(v uint64) string { return groupThousands(strconv.FormatUint(v, 10)) }
	row.Queries, row.Blocked, row.Rewritten, row.Malformed = n(c.Queries), n(c.Blocked), n(c.Rewritten), n(c.Malformed)
}

// restartNeeded returns why the daemon says it needs a restart, or "".
func restartNeeded(st Status) string {
	for _, c := range st.Components {
		if d, ok := strings.CutPrefix(c.Detail, "restart needed: "); ok {
			return d
		}
	}
	return ""
}

func (s *Server) handleSegments(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	d := s.segmentsData(r, cfg)
	q := r.URL.Query()
	d.Saved = q.Get("saved")
	if n := q.Get("added"); n != "" && slices.ContainsFunc(cfg.Segments, func(s config.Segment) bool { return s.Name == n }) {
		d.Added = n
	}
	s.render(w, r, http.StatusOK, "segments", page{Title: "Segments", Data: d, Form: map[string]string{}})
}

// segmentsData builds the segments page from the saved configuration and the daemon's
// counters.
func (s *Server) segmentsData(r *http.Request, cfg *config.Config) segmentsData {
	st := s.cfg.Status(r.Context())
	d := segmentsData{CanEdit: auth.Can(sessionFrom(r).Role, auth.PolicyEdit), Gateway: cfg.Appliance.WAN != "", Restart: restartNeeded(st),
		Base: fingerprint(cfg)}
	for _, p := range cfg.Profiles {
		d.Profiles = append(d.Profiles, selectOption{p.Name, p.Name})
	}
	counters := map[string]SegmentStatus{}
	for _, c := range st.Segments {
		counters[c.Segment] = c
	}
	for _, seg := range cfg.Segments {
		row := segmentBase(seg, cfg)
		if c, ok := counters[seg.Name]; ok {
			row.count(c)
			delete(counters, seg.Name)
		}
		d.Rows = append(d.Rows, row)
	}
	for _, c := range st.Segments {
		if _, ok := counters[c.Segment]; !ok {
			continue
		}
		row := segmentRow{Name: c.Segment, Profile: c.Profile}
		if c.Segment == "unknown" {
			row.Name = "clients in no segment (refused)"
		}
		row.count(c)
		d.Others = append(d.Others, row)
	}
	return d
}

// segmentNameOK says whether a new segment's name is one the pages and the audit trail
// can show plainly.
func segmentNameOK(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// handleSegmentAdd adds a segment.
func (s *Server) handleSegmentAdd(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Segments")
	if !ok {
		return
	}
	d := s.segmentsData(r, cfg)
	d.Base, d.Failed = fp, true
	f := r.PostForm
	errs := map[string]string{}
	seg := config.Segment{Name: strings.TrimSpace(f.Get("name"))}
	if !segmentNameOK(seg.Name) {
		errs["name"] = "Use up to 32 lowercase letters, digits, “-” and “_”, starting with a letter or digit, e.g. sixth-form."
	}
	readSegmentForm(f, &seg, errs)
	cfg.Segments = append(cfg.Segments, seg)
	admin := f.Get("admin_segments") == "on"
	if admin {
		cfg.HTTP.AdminSegments = append(cfg.HTTP.AdminSegments, seg.Name)
	}
	form := map[string]string{"reason": f.Get("reason")}
	for _, k := range []string{"name", "profile", "vlan", "trunk", "interface", "subnets", "gateway", "guest", "admin_segments"} {
		form[k] = f.Get(k)
	}
	pg := page{Title: "Segments", Data: d, Form: form, fieldErrs: errs}
	if len(errs) == 0 {
		pg.Error = configErrors(cfg.Validate(), errs, segmentErrorField(cfg, len(cfg.Segments)-1))
	}
	var subnets []string
	for _, p := range seg.Subnets {
		subnets = append(subnets, p.String())
	}
	summary := fmt.Sprintf("segment %s added: %s, %s, profile %s", seg.Name, segmentLocation(seg), strings.Join(subnets, " "), seg.Profile)
	if seg.Guest {
		summary += ", guest"
	}
	if admin {
		summary += ", admin"
	}
	s.saveConfig(w, r, cfg, fp, "segments", pg, summary, "/segments?added="+url.QueryEscape(seg.Name))
}

// segmentData is what segment.html shows and edits.
type segmentData struct {
	CanEdit  bool
	Name     string
	Base     string
	Saved    string
	Gateway  bool
	Restart  []string // the network settings just saved that wait for a restart
	Here     bool     // the browser is in this segment
	Profiles []selectOption
	Row      segmentRow
}

// segmentNetFields are the settings of a segment that the gateway sets up at start, with
// how the notice names them.
var segmentNetFields = []struct{ key, label string }{
	{"vlan", "VLAN"}, {"trunk", "trunk"}, {"interface", "interface"}, {"subnets", "subnets"},
	{"gateway", "gateway addresses"}, {"guest", "guest flag"}, {"admin_segments", "web UI access"},
}

// segmentFormFields are the form fields that configuration errors are shown next to.
var segmentFormFields = []string{"profile", "vlan", "trunk", "interface", "subnets", "gateway", "guest", "admin_segments"}

func segmentForm(s config.Segment, cfg *config.Config) map[string]string {
	on := func(b bool) string {
		if b {
			return "on"
		}
		return ""
	}
	row := segmentBase(s, cfg)
	vlan := ""
	if s.VLAN != 0 {
		vlan = strconv.Itoa(s.VLAN)
	}
	return map[string]string{
		"profile": s.Profile, "vlan": vlan, "trunk": s.Trunk, "interface": s.Interface,
		"subnets": strings.Join(row.Subnets, "\n"), "gateway": strings.Join(row.Gateway, "\n"),
		"guest": on(s.Guest), "admin_segments": on(row.Admin),
	}
}

func (s *Server) segmentFormData(r *http.Request, cfg *config.Config, seg config.Segment) segmentData {
	d := segmentData{Name: seg.Name, Base: fingerprint(cfg), Gateway: cfg.Appliance.WAN != "", Row: segmentBase(seg, cfg)}
	for _, p := range cfg.Profiles {
		d.Profiles = append(d.Profiles, selectOption{p.Name, p.Name})
	}
	if a := clientAddr(r); a.IsValid() {
		d.Here = slices.ContainsFunc(seg.Subnets, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) })
	}
	for _, c := range s.cfg.Status(r.Context()).Segments {
		if c.Segment == seg.Name {
			d.Row.count(c)
		}
	}
	return d
}

func (s *Server) findSegment(w http.ResponseWriter, r *http.Request, cfg *config.Config) int {
	name := r.PathValue("name")
	i := slices.IndexFunc(cfg.Segments, func(s config.Segment) bool { return s.Name == name })
	if i < 0 {
		s.renderMessage(w, r, http.StatusNotFound, "No such segment", "There is no segment called "+strconv.Quote(name)+".")
	}
	return i
}

func (s *Server) handleSegment(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	i := s.findSegment(w, r, cfg)
	if i < 0 {
		return
	}
	seg := cfg.Segments[i]
	d := s.segmentFormData(r, cfg, seg)
	d.CanEdit = auth.Can(sessionFrom(r).Role, auth.PolicyEdit)
	q := r.URL.Query()
	d.Saved = q.Get("saved")
	if d.Saved != "" {
		changed := strings.Split(q.Get("restart"), ",")
		for _, f := range segmentNetFields {
			if slices.Contains(changed, f.key) {
				d.Restart = append(d.Restart, f.label)
			}
		}
	}
	s.render(w, r, http.StatusOK, "segment", page{Title: "Segment " + seg.Name, Data: d, Form: segmentForm(seg, cfg)})
}

// readSegmentForm sets seg from the segment form; what cannot be read is put in errs.
func readSegmentForm(f url.Values, seg *config.Segment, errs map[string]string) {
	seg.Profile = f.Get("profile")
	seg.Guest = f.Get("guest") == "on"
	seg.Trunk, seg.Interface = strings.TrimSpace(f.Get("trunk")), strings.TrimSpace(f.Get("interface"))
	seg.VLAN = 0
	if v := strings.TrimSpace(f.Get("vlan")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4094 {
			errs["vlan"] = "Write a VLAN number from 1 to 4094, or leave it empty."
		} else {
			seg.VLAN = n
		}
	}
	seg.Subnets = nil
	for _, e := range entries(f.Get("subnets")) {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			errs["subnets"] = fmt.Sprintf("%s is not a subnet like 10.20.0.0/16 or 2001:db8:20::/64.", strconv.Quote(cleanText(e, 60)))
			break
		}
		seg.Subnets = append(seg.Subnets, p)
	}
	seg.Gateway = nil
	for _, e := range entries(f.Get("gateway")) {
		a, err := netip.ParseAddr(e)
		if err != nil {
			errs["gateway"] = fmt.Sprintf("%s is not an address like 10.20.0.1.", strconv.Quote(cleanText(e, 60)))
			break
		}
		seg.Gateway = append(seg.Gateway, a)
	}
}

// segmentErrorField maps a configuration error of segment i to the form field it is shown
// next to, or "" for the top of the page.
func segmentErrorField(cfg *config.Config, i int) func(string) string {
	seg := cfg.Segments[i]
	return func(path string) string {
		prefix := fmt.Sprintf("segments[%d].", i)
		switch {
		case strings.HasPrefix(path, prefix):
			if f := formField(path); f == "name" || slices.Contains(segmentFormFields, f) {
				return f
			}
		case strings.HasPrefix(path, "http.admin_segments"):
			return "admin_segments"
		case path == "appliance.wan" && seg.Interface != "" && seg.Interface == cfg.Appliance.WAN:
			return "interface"
		case path == "appliance.wan" && seg.Trunk != "" && seg.Trunk == cfg.Appliance.WAN:
			return "trunk"
		}
		return ""
	}
}

// handleSegmentSave saves one segment's profile, guest flag, web UI access and network
// settings.
func (s *Server) handleSegmentSave(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Segment")
	if !ok {
		return
	}
	i := s.findSegment(w, r, cfg)
	if i < 0 {
		return
	}
	name := cfg.Segments[i].Name
	beforeForm := segmentForm(cfg.Segments[i], cfg)
	d := s.segmentFormData(r, cfg, cfg.Segments[i])
	d.CanEdit, d.Base = true, fp

	f := r.PostForm
	errs := map[string]string{}
	seg := &cfg.Segments[i]
	readSegmentForm(f, seg, errs)
	wasAdmin := slices.Contains(cfg.HTTP.AdminSegments, name)
	admin := f.Get("admin_segments") == "on"
	switch {
	case admin && !wasAdmin:
		cfg.HTTP.AdminSegments = append(cfg.HTTP.AdminSegments, name)
	case !admin && wasAdmin:
		cfg.HTTP.AdminSegments = slices.DeleteFunc(cfg.HTTP.AdminSegments, func(n string) bool { return n == name })
		if len(cfg.HTTP.AdminSegments) == 0 {
			errs["admin_segments"] = "At least one segment must reach the web UI: make another segment an admin segment first."
		}
	}

	form := segmentForm(*seg, cfg)
	form["subnets"], form["gateway"], form["vlan"] = f.Get("subnets"), f.Get("gateway"), f.Get("vlan")
	form["admin_segments"] = map[bool]string{true: "on"}[admin]
	form["reason"] = f.Get("reason")
	pg := page{Title: "Segment " + name, Data: d, Form: form, fieldErrs: errs}

	if len(errs) == 0 {
		pg.Error = configErrors(cfg.Validate(), errs, segmentErrorField(cfg, i))
	}

	var changed, network []string
	afterForm := segmentForm(*seg, cfg)
	afterForm["admin_segments"] = form["admin_segments"]
	for _, k := range segmentFormFields {
		if beforeForm[k] != afterForm[k] {
			changed = append(changed, strings.ReplaceAll(k, "_", " "))
			if k != "profile" {
				network = append(network, k)
			}
		}
	}
	if len(changed) == 0 && len(errs) == 0 && pg.Error == "" {
		pg.Notice = "Nothing changed."
		s.render(w, r, http.StatusOK, "segment", pg)
		return
	}
	summary := fmt.Sprintf("segment %s: %s changed", name, strings.Join(changed, ", "))
	if slices.Contains(changed, "profile") {
		summary = fmt.Sprintf("segment %s: profile %s → %s", name, beforeForm["profile"], seg.Profile)
		if len(changed) > 1 {
			summary += "; " + strings.Join(slices.DeleteFunc(slices.Clone(changed), func(c string) bool { return c == "profile" }), ", ") + " changed"
		}
	}
	next := "/segments/" + url.PathEscape(name)
	if len(network) > 0 {
		next += "?restart=" + strings.Join(network, ",")
	}
	s.saveConfig(w, r, cfg, fp, "segment", pg, summary, next)
}
