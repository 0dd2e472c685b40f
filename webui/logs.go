package webui

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
	"github.com/schoolgate/schoolgate/webui/chart"
)

// The logs page: every decision, filtered by time, segment, profile, device, name, action,
// category and source, a page at a time with the event log's cursor; a device's summary
// when the filter names one device; each row's explanation as of now; and the filter's rows
// as CSV.

// logRoutes are the routes of the log pages.
func (s *Server) logRoutes() []route {
	return []route{
		{"GET /logs", auth.LogsRead, s.handleLogs},
		{"GET /logs.csv", auth.LogsRead, s.handleLogsCSV},
		{"GET /explain", auth.PolicyRead, s.handleExplainPage},
	}
}

// logPageFiles are the templates of the log pages.
var logPageFiles = []string{"logs", "explain"}

// eventSummaries are the aggregate queries of the dashboard and the device summary.
// *eventlog.Log answers them; an Events without them (a test double) gets pages without
// charts and summaries.
type eventSummaries interface {
	HistogramEdges(ctx context.Context, edges []time.Time) ([]eventlog.Bucket, error)
	Top(ctx context.Context, f eventlog.Filter, field string, n int) ([]eventlog.TopEntry, error)
	Tally(ctx context.Context, f eventlog.Filter) (eventlog.Tally, error)
}

func (s *Server) summaryEvents() eventSummaries {
	sum, _ := s.cfg.Events.(eventSummaries)
	return sum
}

const (
	logsPageSize = 100
	// csvMaxRows bounds a download: a school's busiest week filtered to one segment fits,
	// and the file still opens in a spreadsheet.
	csvMaxRows = 100_000
	// logLocalLayout is how a time is typed in the filter (what input type=datetime-local
	// sends) and shown in it.
	logLocalLayout = "2006-01-02T15:04"
	// logRowTime shows an event's time in the appliance's zone with its offset, so that a
	// time copied out of the page or the CSV is never ambiguous (the clocks go back once
	// a year).
	logRowTime = "2006-01-02 15:04:05 -07:00"
)

// logTimeLayouts are accepted in the from and to fields: what browsers send, what people type.
var logTimeLayouts = []string{logLocalLayout, "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"}

var logActionLabels = map[string]string{"allow": "Allowed", "block": "Blocked", "rewrite": "Rewritten"}

var logSourceLabels = []selectOption{
	{"dns", "DNS query"}, {"sni", "HTTPS (TLS name)"}, {"quic", "QUIC (HTTP/3)"}, {"http", "Plain HTTP"},
	{"ip", "Address and port"},
}

// logFilterKeys are the filter's fields, in the order links carry them.
var logFilterKeys = []string{"from", "to", "segment", "profile", "device", "name", "action", "category", "source"}

// logQuery is a parsed filter: the event log's filter and what the page shows of it.
type logQuery struct {
	f       eventlog.Filter
	form    map[string]string // the fields as typed, with the default start filled in
	errs    map[string]string
	device  string // the device the filter names ("" for none), as typed
	devName string // its name in the configuration, if any
}

// parseLogQuery reads the filter fields. A wrong value is reported against its field and
// left out of the filter; the rest still applies.
func parseLogQuery(q url.Values, cfg *config.Config, loc *time.Location, now time.Time) logQuery {
	lq := logQuery{form: map[string]string{}, errs: map[string]string{}}
	for _, k := range logFilterKeys {
		lq.form[k] = strings.TrimSpace(q.Get(k))
	}
	f := &lq.f
	parse := func(k string) (time.Time, bool) {
		v := lq.form[k]
		for _, layout := range logTimeLayouts {
			if t, err := time.ParseInLocation(layout, v, loc); err == nil {
				if layout == "2006-01-02" && k == "to" {
					t = t.AddDate(0, 0, 1) // to a date: the whole of that day
				}
				return t, true
			}
		}
		lq.errs[k] = "Enter a date and time like 2026-11-23 09:00."
		return time.Time{}, false
	}
	if lq.form["to"] != "" {
		if t, ok := parse("to"); ok {
			f.To = t
		}
	}
	if lq.form["from"] != "" {
		if t, ok := parse("from"); ok {
			f.From = t
		}
	}
	// No start (or a wrong one): the 24 hours before the end (before now, without one),
	// shown in the field when it was empty. The log is never read unbounded.
	if f.From.IsZero() {
		end := now
		if !f.To.IsZero() {
			end = f.To
		}
		f.From = end.Add(-24 * time.Hour).Truncate(time.Minute)
		if lq.form["from"] == "" {
			lq.form["from"] = f.From.In(loc).Format(logLocalLayout)
		}
	}
	if !f.To.IsZero() && !f.To.After(f.From) && lq.errs["from"] == "" {
		lq.errs["to"] = "Enter a time after the start."
		f.To = time.Time{}
	}
	choose := func(k string, valid func(string) bool, msg string) string {
		v := lq.form[k]
		if v != "" && !valid(v) {
			lq.errs[k] = msg
			return ""
		}
		return v
	}
	var segments, profiles []string
	if cfg != nil {
		for _, sg := range cfg.Segments {
			segments = append(segments, sg.Name)
		}
		for _, p := range cfg.Profiles {
			profiles = append(profiles, p.Name)
		}
	}
	// Without a configuration to check against, any name is taken as it is.
	f.Segment = choose("segment", func(v string) bool { return cfg == nil || slices.Contains(segments, v) }, "Choose one of the listed segments.")
	f.Profile = choose("profile", func(v string) bool { return cfg == nil || slices.Contains(profiles, v) }, "Choose one of the listed profiles.")
	f.Action = choose("action", func(v string) bool { _, ok := logActionLabels[v]; return ok }, "Choose allowed, blocked or rewritten.")
	f.Category = choose("category", func(v string) bool { return category.Valid(category.ID(v)) }, "Choose one of the listed categories.")
	f.Source = choose("source", func(v string) bool {
		return slices.ContainsFunc(logSourceLabels, func(o selectOption) bool { return o.Value == v })
	}, "Choose one of the listed sources.")
	if v := lq.form["name"]; len(v) > 253 {
		lq.errs["name"] = "A name has at most 253 characters."
	} else {
		f.Name = v
	}
	if v := lq.form["device"]; v != "" {
		client, mac, name, err := parseLogDevice(v, cfg)
		if err != "" {
			lq.errs["device"] = err
		} else {
			f.Client, f.MAC, lq.device, lq.devName = client, mac, v, name
		}
	}
	f.Cursor = q.Get("cursor")
	return lq
}

// parseLogDevice reads a device as an IP address, a MAC address or the name of a device in the
// configuration; the error is a sentence for the field.
func parseLogDevice(v string, cfg *config.Config) (client netip.Addr, mac, name, errMsg string) {
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap().WithZone(""), "", "", ""
	}
	if hw, err := net.ParseMAC(v); err == nil && len(hw) == 6 {
		mac = hw.String()
		return netip.Addr{}, mac, configDeviceName(cfg, mac), ""
	}
	if cfg != nil {
		for _, d := range cfg.Devices {
			if d.Name != "" && strings.EqualFold(d.Name, v) {
				return netip.Addr{}, strings.ToLower(d.MAC), d.Name, ""
			}
		}
	}
	return netip.Addr{}, "", "", "Enter an IP address (10.20.0.15), a MAC address (aa:bb:cc:dd:ee:ff) or the name of a device in the devices list."
}

func configDeviceName(cfg *config.Config, mac string) string {
	if cfg == nil {
		return ""
	}
	for _, d := range cfg.Devices {
		if strings.EqualFold(d.MAC, mac) {
			return d.Name
		}
	}
	return ""
}

// link returns /path?query for the filter's fields with some replaced ("" removes one).
func (lq logQuery) link(path string, set ...string) string {
	v := url.Values{}
	for _, k := range logFilterKeys {
		if lq.form[k] != "" && lq.errs[k] == "" {
			v.Set(k, lq.form[k])
		}
	}
	for i := 0; i+1 < len(set); i += 2 {
		if set[i+1] == "" {
			v.Del(set[i])
		} else {
			v.Set(set[i], set[i+1])
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// deviceLink filters the current time range by one device and nothing else.
func (lq logQuery) deviceLink(device string) string {
	v := url.Values{"device": {device}}
	for _, k := range []string{"from", "to"} {
		if lq.form[k] != "" && lq.errs[k] == "" {
			v.Set(k, lq.form[k])
		}
	}
	return "/logs?" + v.Encode()
}

type logsData struct {
	Rows    []logRow
	Zone    string
	Selects map[string]selectField
	CSV     string // the download link of the filter
	Older   string // the next page, "" at the end
	Newest  string // the first page, when this is not it
	Device  *logDeviceSummary
	CanWhy  bool // the role may open explanations
	CSVMax  string
}

type logRow struct {
	eventlog.Event
	Local, ISO       string
	ActionLabel      string
	CategoryLabel    string
	ClientText       string
	ClientLink       string
	MACLink          string
	Explain          string // link to the explanation as of now; "" when there is none
	ExplainLabel     string
	SourceLabel      string
	Repeated         bool
	DeviceFromConfig string
}

// logDeviceSummary is what the page shows above the rows when the filter names one device.
type logDeviceSummary struct {
	Label, MAC, Name string
	Tally            eventlog.Tally
	Total            string
	Blocked          string
	Rewritten        string
	TopNames         []dashTopRow
	TopCategories    []dashTopRow
}

func (s *Server) logsConfig() *config.Config {
	cfg, err := s.cfg.Config.EditableConfig()
	if err != nil {
		s.cfg.Logger.Warn("reading the configuration for the logs page", "err", err)
		return nil
	}
	return cfg
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	cfg, loc, now := s.logsConfig(), s.location(), time.Now()
	lq := parseLogQuery(r.URL.Query(), cfg, loc, now)
	p := page{Title: "Logs", Form: lq.form, fieldErrs: lq.errs}
	d := logsData{Zone: loc.String(), CanWhy: auth.Can(sess.Role, auth.PolicyRead), CSVMax: countText(csvMaxRows)}
	d.Selects = logSelects(p, cfg)
	d.CSV = lq.link("/logs.csv")

	f := lq.f
	f.Limit = logsPageSize
	res, err := s.cfg.Events.Query(r.Context(), f)
	if errors.Is(err, eventlog.ErrBadCursor) {
		p.Error = "That page link is not valid any more; this is the newest page."
		f.Cursor = ""
		res, err = s.cfg.Events.Query(r.Context(), f)
	}
	if err != nil {
		s.cfg.Logger.Error("querying events for the logs page", "err", err)
		p.Error = "The event log could not be read: " + err.Error()
	}
	for _, e := range res.Events {
		d.Rows = append(d.Rows, s.logRow(e, lq, loc, cfg, d.CanWhy))
	}
	if res.Next != "" {
		d.Older = lq.link("/logs", "cursor", res.Next)
	}
	if f.Cursor != "" {
		d.Newest = lq.link("/logs")
	}
	if lq.device != "" && lq.errs["from"] == "" && lq.errs["to"] == "" {
		d.Device = s.deviceSummaryFor(r.Context(), lq)
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "logs", p)
}

func (s *Server) logRow(e eventlog.Event, lq logQuery, loc *time.Location, cfg *config.Config, canWhy bool) logRow {
	row := logRow{Event: e, Local: e.Time.In(loc).Format(logRowTime), ISO: e.Time.In(loc).Format(time.RFC3339),
		ActionLabel: logActionLabels[e.Action], Repeated: e.Count > 1}
	if row.ActionLabel == "" {
		row.ActionLabel = e.Action
	}
	if info, ok := category.Lookup(category.ID(e.Category)); ok {
		row.CategoryLabel = info.Name
	} else {
		row.CategoryLabel = e.Category
	}
	for _, o := range logSourceLabels {
		if o.Value == e.Source {
			row.SourceLabel = o.Label
		}
	}
	if e.Client.IsValid() {
		row.ClientText = e.Client.String()
		row.ClientLink = lq.deviceLink(row.ClientText)
	}
	if e.MAC != "" {
		row.MACLink = lq.deviceLink(e.MAC)
		if e.Device == "" {
			row.DeviceFromConfig = configDeviceName(cfg, e.MAC)
		}
	}
	// Names only: the packet path's events are of an address and port, which no policy
	// explains by name.
	if canWhy && e.Source != "ip" && e.Name != "" && e.Client.IsValid() {
		v := url.Values{"name": {e.Name}, "client": {row.ClientText}, "at": {e.Time.In(loc).Format(time.RFC3339)}, "was": {e.Action}}
		if e.MAC != "" {
			v.Set("mac", e.MAC)
		}
		row.Explain = "/explain?" + v.Encode()
		row.ExplainLabel = fmt.Sprintf("Why %s was %s for %s (as of now)", e.Name, strings.ToLower(row.ActionLabel), row.ClientText)
	}
	return row
}

// logSelects are the filter's drop-downs, from the configuration and the taxonomy.
func logSelects(p page, cfg *config.Config) map[string]selectField {
	// "any" keeps the narrow drop-downs readable; each is labelled with what it filters.
	sel := func(name, label string, opts []selectOption) selectField {
		f := selectField{Name: name, Label: label, Value: p.Form[name], Err: p.FieldError(name)}
		f.Options = append([]selectOption{{"", "any"}}, opts...)
		return f
	}
	var segs, profs, cats []selectOption
	if cfg != nil {
		for _, sg := range cfg.Segments {
			segs = append(segs, selectOption{sg.Name, sg.Name})
		}
		for _, pr := range cfg.Profiles {
			profs = append(profs, selectOption{pr.Name, pr.Name})
		}
	}
	for _, c := range category.All() {
		cats = append(cats, selectOption{string(c.ID), c.Name})
	}
	return map[string]selectField{
		"segment":  sel("segment", "Segment", segs),
		"profile":  sel("profile", "Profile", profs),
		"action":   sel("action", "Decision", []selectOption{{"allow", "allowed"}, {"block", "blocked"}, {"rewrite", "rewritten (safe search)"}}),
		"category": sel("category", "Category", cats),
		"source":   sel("source", "Seen as", logSourceLabels),
	}
}

// deviceSummaryFor counts the device's events in the filter's time range, whatever the other
// filters say, and lists what was blocked for it most.
func (s *Server) deviceSummaryFor(ctx context.Context, lq logQuery) *logDeviceSummary {
	d := &logDeviceSummary{Label: lq.device, Name: lq.devName, MAC: lq.f.MAC}
	if lq.f.Client.IsValid() {
		d.Label = lq.f.Client.String()
	}
	sum := s.summaryEvents()
	if sum == nil {
		return d
	}
	f := eventlog.Filter{From: lq.f.From, To: lq.f.To, Client: lq.f.Client, MAC: lq.f.MAC}
	var err error
	if d.Tally, err = sum.Tally(ctx, f); err != nil {
		s.cfg.Logger.Error("summarising a device", "err", err)
		return d
	}
	d.Total, d.Blocked, d.Rewritten = countText(d.Tally.Total()), countText(d.Tally.Blocked), countText(d.Tally.Rewritten)
	f.Action = "block"
	names, err := sum.Top(ctx, f, "name", 5)
	if err != nil {
		s.cfg.Logger.Error("summarising a device", "err", err)
	}
	for _, e := range names {
		d.TopNames = append(d.TopNames, dashTopRow{Label: e.Value, Count: countText(e.Count), Mono: true,
			Href: lq.link("/logs", "action", "block", "name", e.Value, "cursor", "")})
	}
	cats, err := sum.Top(ctx, f, "category", 5)
	if err != nil {
		s.cfg.Logger.Error("summarising a device", "err", err)
	}
	for _, e := range cats {
		d.TopCategories = append(d.TopCategories, dashTopRow{Label: categoryLabel(e.Value), Count: countText(e.Count),
			Href: lq.link("/logs", "action", "block", "category", e.Value, "cursor", "")})
	}
	return d
}

func categoryLabel(id string) string {
	if info, ok := category.Lookup(category.ID(id)); ok {
		return info.Name
	}
	return id
}

// handleLogsCSV streams the filter's events, newest first, up to csvMaxRows. The download
// is recorded in the audit trail: who took a copy of pupils' browsing, and of what.
func (s *Server) handleLogsCSV(w http.ResponseWriter, r *http.Request) {
	longResponse(w)
	cfg, loc, now := s.logsConfig(), s.location(), time.Now()
	lq := parseLogQuery(r.URL.Query(), cfg, loc, now)
	if len(lq.errs) > 0 {
		p := page{Title: "Logs", Form: lq.form, fieldErrs: lq.errs, Error: "The download was not made: correct the filter first."}
		p.Data = logsData{Zone: loc.String(), Selects: logSelects(p, cfg), CSV: lq.link("/logs.csv"), CSVMax: countText(csvMaxRows),
			CanWhy: auth.Can(sessionFrom(r).Role, auth.PolicyRead)}
		s.render(w, r, http.StatusBadRequest, "logs", p)
		return
	}
	f := lq.f
	f.Cursor, f.Limit = "", 1000
	res, err := s.cfg.Events.Query(r.Context(), f)
	if err != nil {
		s.cfg.Logger.Error("querying events for a CSV download", "err", err)
		s.renderMessage(w, r, http.StatusInternalServerError, "Download failed", "The event log could not be read: "+err.Error())
		return
	}
	name := "schoolgate-logs-" + f.From.In(loc).Format("2006-01-02-1504")
	if !f.To.IsZero() {
		name += "-to-" + f.To.In(loc).Format("2006-01-02-1504")
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180
	cw.Write([]string{"time", "client", "mac", "device", "segment", "profile", "source", "name", "qtype",
		"action", "tier", "category", "list", "rule", "count", "schedule"})
	rows := 0
	for {
		for _, e := range res.Events {
			if rows == csvMaxRows {
				break
			}
			client := ""
			if e.Client.IsValid() {
				client = e.Client.String()
			}
			rec := []string{e.Time.In(loc).Format(time.RFC3339), client, e.MAC, e.Device, e.Segment, e.Profile,
				e.Source, e.Name, e.QType, e.Action, e.Tier, e.Category, e.List, e.Rule, strconv.Itoa(e.Count), e.Schedule}
			for i := range rec {
				rec[i] = csvSafeCell(rec[i])
			}
			cw.Write(rec)
			rows++
		}
		if res.Next == "" || rows == csvMaxRows || r.Context().Err() != nil {
			break
		}
		f.Cursor = res.Next
		f.Limit = min(1000, csvMaxRows-rows)
		if res, err = s.cfg.Events.Query(r.Context(), f); err != nil {
			// Too late for an error page: the file ends here, and the log says why.
			s.cfg.Logger.Error("querying events for a CSV download; the file is cut short", "err", err, "rows", rows)
			break
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		s.cfg.Logger.Warn("writing a CSV download", "err", err)
	}
	// Recorded even when the browser went away part way: a copy may have been taken.
	sess := sessionFrom(r)
	s.recordAudit(r.WithContext(context.WithoutCancel(r.Context())), audit.Entry{Actor: sess.Account, Role: string(sess.Role), Action: "logs.export",
		Summary: fmt.Sprintf("event log exported as CSV: %d rows (%s)", rows, lq.describe())})
}

// describe says what the filter selects, for the audit trail.
func (lq logQuery) describe() string {
	var parts []string
	for _, k := range logFilterKeys {
		if v := lq.form[k]; v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// csvSafeCell keeps a cell from being read as a formula by a spreadsheet: a value starting
// with = + - @ (or a tab or carriage return, which some spreadsheets skip before one) gets a
// leading apostrophe, which spreadsheets show as text and do not display. Quoting itself is
// encoding/csv's, as RFC 4180 has it.
func csvSafeCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// The explain page and box: a name and a device → the decision now and why.

type explainPageData struct {
	Result *explainOutcome
	// At and Was come from a log row: when it happened and what was decided then.
	At, Was string
	// Standalone is the explain page; the box on the dashboard (and the box htmx swaps
	// into it) has a heading of its own.
	Standalone bool
}

type explainOutcome struct {
	Name, Client, Via     string
	Action, ActionLabel   string
	Summary               string
	Steps                 []string
	Segment, Profile      string
	MAC, Device           string
	Category, List, Rule  string
	Rewrite, Reason, Tier string
	Changed               bool // the logged decision differs from today's
}

func (s *Server) handleExplainPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := page{Title: "Explain a decision", fieldErrs: map[string]string{}, Form: map[string]string{}}
	for _, k := range []string{"name", "client", "mac", "at", "was"} {
		p.Form[k] = strings.TrimSpace(q.Get(k))
	}
	d := explainPageData{}
	if p.Form["name"] != "" || p.Form["client"] != "" {
		d.Result = s.explainFor(r.Context(), p.Form, p.fieldErrs)
	}
	if d.Result != nil {
		loc := s.location()
		if t, err := time.Parse(time.RFC3339, p.Form["at"]); err == nil {
			d.At = t.In(loc).Format(logRowTime)
		}
		if _, ok := logActionLabels[p.Form["was"]]; ok && d.At != "" {
			d.Was = strings.ToLower(logActionLabels[p.Form["was"]])
			d.Result.Changed = p.Form["was"] != d.Result.Action
		}
	}
	// The dashboard's box asks through htmx for the box alone.
	if r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Target") == "explain-box" {
		p.Data = d
		s.renderLogFragment(w, "explain", "explain-box", p)
		return
	}
	d.Standalone = true
	p.Data = d
	s.render(w, r, http.StatusOK, "explain", p)
}

// explainFor checks the form and asks the engine; nil when a field is wrong (errs says which).
func (s *Server) explainFor(ctx context.Context, form, errs map[string]string) *explainOutcome {
	// The name as the lists hold it: lower case, international names in their ASCII form.
	name, err := lists.Normalize(form["name"])
	if form["name"] == "" {
		errs["explain-name"] = "Enter the name of a site, such as www.example.com."
	} else if err != nil {
		errs["explain-name"] = "Enter a domain name such as www.example.com (no https:// or path)."
	}
	var (
		client netip.Addr
		mac    string
		via    string
	)
	if v := form["client"]; v == "" {
		errs["explain-client"] = "Enter the device's IP address, MAC address or name."
	} else {
		var who, msg string
		client, mac, who, msg = parseLogDevice(v, s.logsConfig())
		switch {
		case msg != "":
			errs["explain-client"] = msg
		case !client.IsValid():
			// A MAC address or a device name: its address is the one it last used.
			res, err := s.cfg.Events.Query(ctx, eventlog.Filter{MAC: mac, Limit: 1})
			if err != nil {
				s.cfg.Logger.Error("looking up a device's address", "mac", mac, "err", err)
				errs["explain-client"] = "The event log could not be read to find this device's address: enter its IP address."
				break
			}
			if len(res.Events) == 0 || !res.Events[0].Client.IsValid() {
				errs["explain-client"] = "This device has not been seen yet, so its network is unknown: enter its IP address."
				break
			}
			client = res.Events[0].Client
			if who == "" {
				who = mac
			}
			via = fmt.Sprintf("%s last used the address %s (%s).", who, client, res.Events[0].Time.In(s.location()).Format(logRowTime))
		}
	}
	if len(errs) > 0 {
		return nil
	}
	if m := form["mac"]; m != "" && mac == "" {
		if hw, err := net.ParseMAC(m); err == nil && len(hw) == 6 {
			mac = hw.String()
		}
	}
	ex := s.cfg.Explainer.Explain(policy.Request{Client: client, Name: name, MAC: mac})
	dd := ex.Decision
	res := &explainOutcome{
		Name: name, Client: client.String(), Via: via, Action: dd.Action.String(),
		Summary: ex.Summary, Steps: ex.Steps, Segment: dd.Segment, Profile: dd.ProfileName(),
		MAC: dd.MAC, Device: dd.Device, Category: categoryLabel(string(dd.Category)), List: dd.List, Rule: dd.Rule,
		Rewrite: dd.Rewrite, Reason: dd.Reason, Tier: string(dd.Tier),
	}
	res.ActionLabel = logActionLabels[res.Action]
	return res
}

// renderLogFragment writes one template of a page's set on its own, for htmx.
func (s *Server) renderLogFragment(w http.ResponseWriter, set, name string, data any) {
	var b strings.Builder
	if err := s.pages[set].ExecuteTemplate(&b, name, data); err != nil {
		s.cfg.Logger.Error("rendering a fragment", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(b.String()))
}

// countText formats a count with thousands separators.
func countText(n uint64) string { return chart.Count(n) }
