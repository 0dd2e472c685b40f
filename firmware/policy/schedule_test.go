package policy

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/config"
)

// scheduleConfig: staff get social networks blocked in lesson time only (term time,
// weekdays, 08:30–15:30 London time, not on the INSET day), and games overnight.
const scheduleConfig = `
appliance: {name: Test School, timezone: Europe/London}
dns:
  upstreams: [{address: "127.0.0.1:53"}]
segments:
  - {name: staff, subnets: [10.10.0.0/16], profile: staff}
profiles:
  - name: staff
    block_categories: [adult]
    scheduled_blocks:
      - {schedule: lessons, categories: [social]}
      - {schedule: night, categories: [games]}
schedules:
  - name: lessons
    from: "08:30"
    to: "15:30"
    terms: [{from: 2026-09-03, to: 2026-10-23}, {from: 2026-11-02, to: 2026-12-18}]
    closed: [{from: 2026-11-27}]
  - name: night
    days: [fri]
    from: "22:00"
    to: "06:00"
`

func TestScheduledBlocks(t *testing.T) {
	cfg, err := config.Load([]byte(scheduleConfig))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Compile(cfg, testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Pointer[time.Time]
	e, _ := New(Config{Snapshot: snap, Now: func() time.Time { return *now.Load() }})
	london, _ := time.LoadLocation("Europe/London")
	at := func(s string) time.Time {
		t, err := time.ParseInLocation("2006-01-02 15:04", s, london)
		if err != nil {
			panic(err)
		}
		return t
	}
	client := netip.MustParseAddr("10.10.0.5")
	for _, tc := range []struct {
		when, name string
		blocked    bool
	}{
		{"2026-11-23 10:00", "facebook.com", true},  // Monday, in term, in lessons
		{"2026-11-23 08:29", "facebook.com", false}, // before school
		{"2026-11-23 08:30", "facebook.com", true},
		{"2026-11-23 15:30", "facebook.com", false}, // "to" is the end
		{"2026-11-28 10:00", "facebook.com", false}, // Saturday
		{"2026-11-27 10:00", "facebook.com", false}, // INSET day
		{"2026-10-28 10:00", "facebook.com", false}, // half term
		{"2026-12-18 10:00", "facebook.com", true},  // the last day of term counts
		{"2026-12-21 10:00", "facebook.com", false}, // holidays
		{"2026-09-03 09:00", "facebook.com", true},  // BST, first day of term
		{"2026-11-27 23:00", "roblox.com", true},    // Friday night
		{"2026-11-28 05:59", "roblox.com", true},    // still Friday's night
		{"2026-11-28 06:00", "roblox.com", false},
		{"2026-11-28 23:00", "roblox.com", false}, // Saturday night is not Friday's
		{"2026-11-23 10:00", "pornhub.com", true}, // always
		{"2026-11-28 10:00", "pornhub.com", true},
	} {
		w := at(tc.when)
		now.Store(&w)
		d := e.Decide(Request{Client: client, Name: tc.name})
		if got := d.Action == Block; got != tc.blocked {
			t.Errorf("%s %s: blocked=%v, want %v (%+v)", tc.when, tc.name, got, tc.blocked, d)
		}
	}
	w := at("2026-11-23 10:00")
	now.Store(&w)
	ex := e.Explain(Request{Client: client, Name: "www.facebook.com"})
	if ex.Decision.Schedule != "lessons" || ex.Decision.Rule != "facebook.com" || !strings.Contains(ex.Summary, "while schedule lessons is on") ||
		!strings.Contains(strings.Join(ex.Steps, "\n"), `while schedule "lessons" is on`) {
		t.Errorf("explanation does not name the schedule: %+v\n%s", ex.Decision, strings.Join(ex.Steps, "\n"))
	}
	if d := e.Decide(Request{Client: client, Name: "pornhub.com"}); d.Schedule != "" {
		t.Errorf("an always-blocked category names schedule %q", d.Schedule)
	}
}

// BenchmarkDecideScheduled: a profile with schedules costs one comparison per query within
// a minute.
func BenchmarkDecideScheduled(b *testing.B) {
	cfg, _ := config.Load([]byte(scheduleConfig))
	snap, _ := Compile(cfg, testCatalog(&testing.T{}))
	e, _ := New(Config{Snapshot: snap})
	r := Request{Client: netip.MustParseAddr("10.10.0.5"), Name: "www.facebook.com"}
	for b.Loop() {
		e.Decide(r)
	}
}
