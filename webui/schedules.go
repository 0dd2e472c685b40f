package webui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// The schedules page: named times (days, hours, term dates, closed days) that profiles use to
// block some categories only part of the time. Saved through the configuration with a reason,
// like the profiles.

type scheduleRow struct {
	config.Schedule
	On      bool     // on now
	UsedBy  []string // "pupils: social, games"
	Terms   string   // as the form shows them, one range per line
	Closed  string
	DayOn   map[string]bool
	Summary string
}

type schedulesData struct {
	CanEdit   bool
	Base      string
	Schedules []scheduleRow
	Days      []string
	Saved     string
	Zone      string
}

// dateRanges writes ranges one per line, "2026-09-03 to 2026-10-23".
func dateRanges(rs []config.DateRange) string {
	var lines []string
	for _, r := range rs {
		if r.To == "" || r.To == r.From {
			lines = append(lines, r.From)
		} else {
			lines = append(lines, r.From+" to "+r.To)
		}
	}
	return strings.Join(lines, "\n")
}

// readDateRanges reads what dateRanges writes; each line is one date or "from to to".
func readDateRanges(text string) []config.DateRange {
	var out []config.DateRange
	for line := range strings.Lines(text) {
		f := strings.Fields(strings.NewReplacer(",", " ", "–", " to ", " - ", " to ").Replace(line))
		switch {
		case len(f) == 0:
		case len(f) == 3 && strings.EqualFold(f[1], "to"):
			out = append(out, config.DateRange{From: f[0], To: f[2]})
		case len(f) == 2:
			out = append(out, config.DateRange{From: f[0], To: f[1]})
		default:
			out = append(out, config.DateRange{From: strings.Join(f, " ")})
		}
	}
	return out
}

// scheduleSummary says when a schedule is on, in a sentence.
func scheduleSummary(sc config.Schedule) string {
	days := strings.Join(sc.Days, ", ")
	if slices.Equal(sc.Days, []string{"mon", "tue", "wed", "thu", "fri"}) {
		days = "weekdays"
	}
	from, to := sc.From, sc.To
	if from == "" {
		from = "00:00"
	}
	if to == "" {
		to = "24:00"
	}
	s := fmt.Sprintf("%s, %s to %s", days, from, to)
	if len(sc.Terms) > 0 {
		s += fmt.Sprintf(", in %d term date range(s)", len(sc.Terms))
	}
	if len(sc.Closed) > 0 {
		s += fmt.Sprintf(", except %d closed day(s)", len(sc.Closed))
	}
	return s
}

func (s *Server) schedulesData(r *http.Request, cfg *config.Config) schedulesData {
	loc := s.location()
	d := schedulesData{CanEdit: auth.Can(sessionFrom(r).Role, auth.PolicyEdit), Base: fingerprint(cfg), Days: config.Weekdays[1:],
		Saved: r.URL.Query().Get("saved"), Zone: loc.String()}
	d.Days = append(d.Days, config.Weekdays[0])
	for _, sc := range cfg.Schedules {
		row := scheduleRow{Schedule: sc, Terms: dateRanges(sc.Terms), Closed: dateRanges(sc.Closed), DayOn: map[string]bool{}, Summary: scheduleSummary(sc)}
		for _, day := range sc.Days {
			row.DayOn[day] = true
		}
		for _, p := range cfg.Profiles {
			for _, sb := range p.ScheduledBlocks {
				if sb.Schedule == sc.Name {
					var cats []string
					for _, c := range sb.Categories {
						cats = append(cats, string(c))
					}
					row.UsedBy = append(row.UsedBy, p.Name+": "+strings.Join(cats, ", "))
				}
			}
		}
		row.On, _ = policy.ScheduleOn(sc, time.Now().In(loc))
		d.Schedules = append(d.Schedules, row)
	}
	return d
}

func (s *Server) handleSchedules(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	s.render(w, r, http.StatusOK, "schedules", page{Title: "Schedules", Data: s.schedulesData(r, cfg),
		Form: map[string]string{"days": "mon tue wed thu fri"}, fieldErrs: map[string]string{}})
}

// handleScheduleSave adds a schedule (name "new") or changes one, or deletes it.
func (s *Server) handleScheduleSave(w http.ResponseWriter, r *http.Request) {
	cfg, fp, ok := s.editForm(w, r, "Schedules")
	if !ok {
		return
	}
	f := r.PostForm
	target := r.PathValue("name")
	sc := config.Schedule{Name: strings.TrimSpace(f.Get("name")), Days: f["days"], From: strings.TrimSpace(f.Get("from")),
		To: strings.TrimSpace(f.Get("to")), Terms: readDateRanges(f.Get("terms")), Closed: readDateRanges(f.Get("closed"))}
	if sc.Days == nil {
		sc.Days = []string{}
	}
	i := slices.IndexFunc(cfg.Schedules, func(x config.Schedule) bool { return x.Name == target })
	p := page{Title: "Schedules", fieldErrs: map[string]string{}, Form: map[string]string{"reason": f.Get("reason"),
		"name": sc.Name, "from": sc.From, "to": sc.To, "terms": f.Get("terms"), "closed": f.Get("closed"),
		"days": strings.Join(sc.Days, " "), "target": target}}
	var summary string
	switch {
	case target == "new":
		if sc.Name == "" {
			p.fieldErrs["name"] = "Give the schedule a name, like lessons."
		}
		cfg.Schedules = append(cfg.Schedules, sc)
		summary = "schedule " + sc.Name + " added: " + scheduleSummary(sc)
	case i < 0:
		p.Error = "There is no schedule called " + target + ": someone may have removed it. Nothing was saved."
	case f.Get("delete") != "":
		for _, pr := range cfg.Profiles {
			if slices.ContainsFunc(pr.ScheduledBlocks, func(b config.ScheduledBlock) bool { return b.Schedule == target }) {
				p.Error = fmt.Sprintf("Schedule %s is used by profile %s: remove it there first.", target, pr.Name)
			}
		}
		cfg.Schedules = slices.Delete(cfg.Schedules, i, i+1)
		summary = "schedule " + target + " deleted"
	default:
		sc.Name = target // renaming would orphan the profiles' references
		cfg.Schedules[i] = sc
		summary = "schedule " + target + " changed: " + scheduleSummary(sc)
	}
	d := s.schedulesData(r, cfg)
	d.CanEdit, d.Base = true, fp
	p.Data = d
	if p.Error != "" {
		s.render(w, r, http.StatusUnprocessableEntity, "schedules", p)
		return
	}
	s.saveConfig(w, r, cfg, fp, "schedules", p, summary, "/schedules")
}
