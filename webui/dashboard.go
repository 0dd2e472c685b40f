package webui

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/webui/chart"
)

// dashboardData is what dashboard.html shows.
type dashboardData struct {
	CanDashboard bool
	Components   []Component
	// CanLogs links the top lists to the logs; CanExplain shows the explain box.
	CanLogs, CanExplain bool
	Activity            *dashActivity // nil when the event log answers no summaries
	ActivityError       string
	Zone                string
}

// dashActivity is the dashboard's picture of the traffic: charts of the last day by hour and
// the last week by day, per segment, and what was blocked most.
type dashActivity struct {
	Charts   []dashFigure
	Day      string // "12,345 queries, 234 blocked (1.9%)"
	Week     string
	TopLists []dashTopList
}

// dashFigure is one chart with what the template puts around it.
type dashFigure struct {
	Bars     chart.Bars
	XHeading string // the data table's first column
}

type dashTopList struct {
	ID, Title, Heading, Empty string
	Rows                      []dashTopRow
}

// dashTopRow is one entry of a top list; Href, when set, opens the logs filtered by it.
type dashTopRow struct {
	Label, Count, Href string
	Mono               bool
}

// handleDashboard is the start page of every role: who is logged in, and, for the roles
// that hold DashboardRead, the components' health, the traffic and what is blocked most;
// for the roles that hold PolicyRead, the explain box.
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	d := dashboardData{CanDashboard: auth.Can(sess.Role, auth.DashboardRead)}
	p := page{Title: "Dashboard", fieldErrs: map[string]string{}, Form: map[string]string{}}
	if d.CanDashboard {
		d.Components = s.cfg.Status(r.Context()).Components
		d.CanLogs = auth.Can(sess.Role, auth.LogsRead)
		d.CanExplain = auth.Can(sess.Role, auth.PolicyRead)
		loc := s.location()
		d.Zone = loc.String()
		if sum := s.summaryEvents(); sum != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			a, err := s.dashActivity(ctx, sum, s.logsConfig(), loc, time.Now(), d.CanLogs)
			cancel()
			if err != nil {
				s.cfg.Logger.Error("summarising events for the dashboard", "err", err)
				d.ActivityError = "The event log could not be summarised: " + err.Error()
			}
			d.Activity = a
		}
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "dashboard", p)
}

// handleComponents is the htmx fragment that refreshes the components table.
func (s *Server) handleComponents(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	if err := s.pages["dashboard"].ExecuteTemplate(&b, "components", s.cfg.Status(r.Context()).Components); err != nil {
		s.cfg.Logger.Error("rendering components", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

// dashActivity asks the event log for the dashboard's aggregates: two histograms from the
// hourly rollup and four top lists, each a grouped query over one time range.
func (s *Server) dashActivity(ctx context.Context, sum eventSummaries, cfg *config.Config, loc *time.Location, now time.Time, canLogs bool) (*dashActivity, error) {
	// The day: 24 hours on the hour, the last one the hour under way. The hours are real
	// hours (UTC-aligned): in zones half an hour off UTC they are labelled 09:30 and so on,
	// and each bar still comes from the rollup rather than from the rows.
	hour := now.Truncate(time.Hour)
	var dayEdges []time.Time
	for i := -23; i <= 1; i++ {
		dayEdges = append(dayEdges, hour.Add(time.Duration(i)*time.Hour))
	}
	// The week: 7 calendar days in the appliance's zone, today the last (so far).
	lt := now.In(loc)
	var weekEdges []time.Time
	for i := -6; i <= 1; i++ {
		weekEdges = append(weekEdges, time.Date(lt.Year(), lt.Month(), lt.Day()+i, 0, 0, 0, 0, loc))
	}
	day, err := sum.HistogramEdges(ctx, dayEdges)
	if err != nil {
		return nil, err
	}
	week, err := sum.HistogramEdges(ctx, weekEdges)
	if err != nil {
		return nil, err
	}
	segs := dashSegmentOrder(cfg, day, week)
	zone := loc.String()
	a := &dashActivity{}
	hourLabels, hourLong := make([]string, len(day)), make([]string, len(day))
	for i, b := range day {
		st := b.Start.In(loc)
		hourLabels[i] = st.Format("15:04")
		hourLong[i] = st.Format("Mon 2 Jan 15:04") + " to " + b.End.In(loc).Format("15:04")
		if i == len(day)-1 {
			hourLong[i] += " (so far)"
		}
	}
	dayLabels, dayLong := make([]string, len(week)), make([]string, len(week))
	for i, b := range week {
		st := b.Start.In(loc)
		dayLabels[i] = st.Format("Mon 2")
		dayLong[i] = st.Format("Monday 2 January")
		if i == len(week)-1 {
			dayLong[i] += " (so far)"
		}
	}
	bars := func(id, title, x, y string, labels, long []string, buckets []eventlog.Bucket, blocked bool) chart.Bars {
		c := chart.Bars{ID: id, Title: title, XTitle: x + " (" + zone + ")", YTitle: y, Labels: labels, LongLabels: long,
			Unit: "query", Units: "queries"}
		if blocked {
			c.Unit, c.Units = "blocked", "blocked"
		}
		for _, sg := range segs {
			sr := chart.Series{Name: sg, Values: make([]uint64, len(buckets))}
			for i, b := range buckets {
				if blocked {
					sr.Values[i] = b.Segments[sg].Blocked
				} else {
					sr.Values[i] = b.Segments[sg].Queries
				}
			}
			c.Series = append(c.Series, sr)
		}
		return c
	}
	a.Charts = []dashFigure{
		{bars("chart-day-queries", "Queries per hour, last 24 hours", "Hour", "Queries", hourLabels, hourLong, day, false), "Hour"},
		{bars("chart-day-blocked", "Blocked per hour, last 24 hours", "Hour", "Blocked", hourLabels, hourLong, day, true), "Hour"},
		{bars("chart-week-queries", "Queries per day, last 7 days", "Day", "Queries", dayLabels, dayLong, week, false), "Day"},
		{bars("chart-week-blocked", "Blocked per day, last 7 days", "Day", "Blocked", dayLabels, dayLong, week, true), "Day"},
	}
	a.Day = dashTotals(day)
	a.Week = dashTotals(week)

	// What was blocked most: rolling windows, to the minute, so that the logs a link opens
	// show the same events.
	for _, w := range []struct {
		id, label string
		from      time.Time
	}{
		{"day", "last 24 hours", now.Add(-24 * time.Hour).Truncate(time.Minute)},
		{"week", "last 7 days", now.Add(-7 * 24 * time.Hour).Truncate(time.Minute)},
	} {
		f := eventlog.Filter{From: w.from, Action: "block"}
		from := w.from.In(loc).Format(logLocalLayout)
		logs := func(k, v string) string {
			if !canLogs {
				return ""
			}
			return "/logs?" + url.Values{"action": {"block"}, k: {v}, "from": {from}}.Encode()
		}
		cats, err := sum.Top(ctx, f, "category", 10)
		if err != nil {
			return a, err
		}
		tl := dashTopList{ID: "top-categories-" + w.id, Title: "Categories, " + w.label, Heading: "Category", Empty: "Nothing blocked by category."}
		for _, e := range cats {
			tl.Rows = append(tl.Rows, dashTopRow{Label: categoryLabel(e.Value), Count: countText(e.Count), Href: logs("category", e.Value)})
		}
		names, err := sum.Top(ctx, f, "name", 10)
		if err != nil {
			return a, err
		}
		tn := dashTopList{ID: "top-names-" + w.id, Title: "Names, " + w.label, Heading: "Name", Empty: "Nothing blocked."}
		for _, e := range names {
			tn.Rows = append(tn.Rows, dashTopRow{Label: e.Value, Count: countText(e.Count), Href: logs("name", e.Value), Mono: true})
		}
		a.TopLists = append(a.TopLists, tl, tn)
	}
	// Categories first, then names: the order a reader scans them in.
	a.TopLists = []dashTopList{a.TopLists[0], a.TopLists[2], a.TopLists[1], a.TopLists[3]}
	return a, nil
}

// dashSegmentOrder lists the segments the charts show: the configured ones in their order, then
// any others the events name (since renamed or removed), then events of no segment.
func dashSegmentOrder(cfg *config.Config, hs ...[]eventlog.Bucket) []string {
	var out []string
	if cfg != nil {
		for _, sg := range cfg.Segments {
			out = append(out, sg.Name)
		}
	}
	var extra []string
	none := false
	for _, h := range hs {
		for _, b := range h {
			for sg := range b.Segments {
				switch {
				case sg == "":
					none = true
				case !slices.Contains(out, sg) && !slices.Contains(extra, sg):
					extra = append(extra, sg)
				}
			}
		}
	}
	slices.Sort(extra)
	out = append(out, extra...)
	if none {
		out = append(out, "")
	}
	return out
}

func dashTotals(h []eventlog.Bucket) string {
	var t eventlog.SegmentCounts
	for _, b := range h {
		bt := b.Total()
		t.Queries += bt.Queries
		t.Blocked += bt.Blocked
	}
	s := countText(t.Queries) + " queries, " + countText(t.Blocked) + " blocked"
	if t.Queries > 0 {
		pct := float64(t.Blocked) / float64(t.Queries) * 100
		s += " (" + dashPercent(pct) + ")"
	}
	return s
}

func dashPercent(p float64) string {
	switch {
	case p > 0 && p < 0.1:
		return "under 0.1%"
	default:
		return dashOneDecimal(p) + "%"
	}
}

func dashOneDecimal(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
