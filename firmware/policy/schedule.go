package policy

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// schedule is a compiled config.Schedule: when it is on, in the appliance's time zone.
type schedule struct {
	name          string
	days          uint8 // bit 1<<time.Weekday
	from, to      int   // minutes after midnight; from > to runs over midnight
	terms, closed [][2]int
}

// scheduledBlock is one of a profile's scheduled_blocks.
type scheduledBlock struct {
	sched *schedule
	cats  category.Set
}

// blockCache is a profile's blocked categories for one minute.
type blockCache struct {
	minute int64
	set    category.Set
}

func compileSchedule(sc config.Schedule) (*schedule, error) {
	s := &schedule{name: sc.Name, from: 0, to: 24 * 60}
	for _, d := range sc.Days {
		i := slices.Index(config.Weekdays, d)
		if i < 0 {
			return nil, fmt.Errorf("schedule %q: unknown day %q", sc.Name, d)
		}
		s.days |= 1 << i
	}
	var err error
	if sc.From != "" {
		if s.from, err = config.ParseClock(sc.From); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
		}
	}
	if sc.To != "" {
		if s.to, err = config.ParseClock(sc.To); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
		}
	}
	for _, r := range []struct {
		in  []config.DateRange
		out *[][2]int
	}{{sc.Terms, &s.terms}, {sc.Closed, &s.closed}} {
		for _, dr := range r.in {
			f, err := config.ParseDate(dr.From)
			if err != nil {
				return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
			}
			t := f
			if dr.To != "" {
				if t, err = config.ParseDate(dr.To); err != nil {
					return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
				}
			}
			*r.out = append(*r.out, [2]int{dayNumber(f), dayNumber(t)})
		}
	}
	return s, nil
}

// dayNumber is a date as yyyymmdd, which orders like the dates.
func dayNumber(t time.Time) int { y, m, d := t.Date(); return y*10000 + int(m)*100 + d }

// on reports whether the schedule is on at t, a time in the appliance's zone. The minutes
// after midnight of a window that runs over midnight belong to the day it started.
func (s *schedule) on(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	if s.from <= s.to {
		if m < s.from || m >= s.to {
			return false
		}
	} else if m < s.to {
		t = t.AddDate(0, 0, -1) // the window started yesterday
	} else if m < s.from {
		return false
	}
	if s.days&(1<<t.Weekday()) == 0 {
		return false
	}
	day := dayNumber(t)
	in := func(rs [][2]int) bool {
		return slices.ContainsFunc(rs, func(r [2]int) bool { return r[0] <= day && day <= r[1] })
	}
	if len(s.terms) > 0 && !in(s.terms) {
		return false
	}
	return !in(s.closed)
}

// blockedAt returns the categories p blocks at now: those always blocked and those of the
// schedules on now. It is on the path of every query, so the answer is kept for the minute.
func (p *Profile) blockedAt(now time.Time) category.Set {
	if len(p.scheduled) == 0 {
		return p.Blocked
	}
	minute := now.Unix() / 60
	if c := p.cache.Load(); c != nil && c.minute == minute {
		return c.set
	}
	set := p.Blocked
	t := now.In(p.loc)
	for _, sb := range p.scheduled {
		if sb.sched.on(t) {
			set |= sb.cats
		}
	}
	p.cache.Store(&blockCache{minute: minute, set: set})
	return set
}

// scheduleBlocking names the schedule on at now that blocks c for p, or "" when p blocks c
// all the time.
func (p *Profile) scheduleBlocking(c category.ID, now time.Time) string {
	if p.Blocked.Has(c) {
		return ""
	}
	t := now.In(p.loc)
	for _, sb := range p.scheduled {
		if sb.cats.Has(c) && sb.sched.on(t) {
			return sb.sched.name
		}
	}
	return ""
}

// profileSchedules is the part of a compiled profile that depends on the time.
type profileSchedules struct {
	loc       *time.Location
	scheduled []scheduledBlock
	cache     atomic.Pointer[blockCache]
}

// ScheduleOn reports whether a schedule is on at t (in the appliance's zone), as the engine
// judges it; the web UI shows it.
func ScheduleOn(sc config.Schedule, t time.Time) (bool, error) {
	s, err := compileSchedule(sc)
	if err != nil {
		return false, err
	}
	return s.on(t), nil
}
