package webui

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// logsEnv is the test environment with a real event log and a real policy engine (the demo
// configuration and its lists) in place of the doubles.
type logsEnv struct {
	*env
	log    *eventlog.Log
	events []eventlog.Event // as recorded
	base   time.Time        // "now" when they were recorded
}

func newLogsEnv(t *testing.T) *logsEnv {
	t.Helper()
	e := newEnv(t)
	e.withAccounts()
	ctx := context.Background()
	l, err := eventlog.New(eventlog.Config{Path: filepath.Join(t.TempDir(), "events.db"), FlushInterval: 10 * time.Millisecond, DedupeWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	demo, fsys := config.Demo()
	m, err := lists.New(lists.Config{Lists: demo.Lists, FS: fsys, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cat, err := m.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(demo, cat)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.New(policy.Config{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	e.config.cfg.Devices = append(e.config.cfg.Devices, config.Device{MAC: "02:00:00:00:00:02", Name: "Pupil iPad 7"})
	e.srv, err = New(Config{
		Explainer: engine, Events: l, Auth: e.store, Audit: e.audit, Config: e.config, Exceptions: e.exceptions,
		Status: func(context.Context) Status {
			return Status{Components: []Component{{Name: "dns", State: "running", Detail: "listening on 127.0.0.1:5353"}}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	le := &logsEnv{env: e, log: l, base: time.Now().Truncate(time.Second)}
	le.record()
	return le
}

const hostileName = `=cmd|' /c calc'!a0.evil`

// record fills the log with a school's morning: pupils (some blocked), staff, guests
// rewritten to safe search, older events for the week, and hostile strings.
func (le *logsEnv) record() {
	add := func(e eventlog.Event) {
		if e.Count == 0 {
			e.Count = 1
		}
		le.log.Record(e)
		le.events = append(le.events, e)
	}
	pupil := netip.MustParseAddr("127.0.0.2")
	for i := range 150 {
		e := eventlog.Event{Time: le.base.Add(-time.Duration(i*7+1) * time.Minute), Client: pupil, MAC: "02:00:00:00:00:02",
			Device: "pupil-ipad", Segment: "pupils", Profile: "pupils", Source: "dns", QType: "A", Tier: "default", Action: "allow", Count: 1 + i%2}
		if i%5 == 0 {
			e.Source, e.QType = "sni", ""
		}
		switch i % 3 {
		case 0:
			e.Name, e.Action, e.Tier, e.Category, e.List, e.Rule = "tiktok.com", "block", "profile", "social", "social", "tiktok.com"
			if i%2 == 0 {
				e.Schedule = "lessons" // social networks blocked in lesson time
			}
		case 1:
			e.Name = "www.bbc.co.uk"
		default:
			e.Name = "classroom.google.com"
		}
		add(e)
	}
	for i := range 40 {
		e := eventlog.Event{Time: le.base.Add(-time.Duration(i*13+2) * time.Minute), Client: netip.MustParseAddr("127.0.0.1"),
			Segment: "staff", Profile: "staff", Source: "dns", Name: "mail.school.example", Action: "allow", Tier: "default"}
		if i%8 == 0 {
			e.Name, e.Action, e.Category, e.List = "poker.example", "block", "gambling", "gambling"
		}
		add(e)
	}
	for i := range 10 {
		add(eventlog.Event{Time: le.base.Add(-time.Duration(i*17+3) * time.Minute), Client: netip.MustParseAddr("127.0.0.3"),
			Segment: "guest", Profile: "guest", Source: "dns", Name: "www.google.com", Action: "rewrite", Tier: "safesearch", Count: 3})
	}
	for i := range 5 { // three days ago: in the week, not the day
		add(eventlog.Event{Time: le.base.Add(-72*time.Hour - time.Duration(i)*time.Minute), Client: pupil, Segment: "pupils",
			Profile: "pupils", Source: "dns", Name: "pornhub.com", Action: "block", Tier: "profile", Category: "adult", List: "adult"})
	}
	for i := range 2 { // ten days ago: in neither
		add(eventlog.Event{Time: le.base.Add(-240*time.Hour - time.Duration(i)*time.Minute), Client: pupil, Segment: "pupils",
			Profile: "pupils", Source: "dns", Name: "old.example", Action: "allow"})
	}
	// Hostile strings, as a device on the network can make them.
	add(eventlog.Event{Time: le.base.Add(-30 * time.Second), Client: pupil, MAC: "02:00:00:00:00:02", Device: "+SUM(1,2)",
		Segment: "pupils", Profile: "pupils", Source: "http", Name: hostileName, Action: "block", Tier: "profile",
		Category: "social", List: "-list", Rule: "@rule"})
	add(eventlog.Event{Time: le.base.Add(-40 * time.Second), Client: pupil, Segment: "pupils", Profile: "pupils", Source: "dns",
		Name: `a,"b".example`, Action: "allow", Tier: "default"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := le.log.Flush(ctx); err != nil {
		le.t.Fatal(err)
	}
}

// count sums the events since a time (and before base+1h) that match.
func (le *logsEnv) count(since time.Time, match func(eventlog.Event) bool) (n int, rows int) {
	for _, e := range le.events {
		if !e.Time.Before(since) && (match == nil || match(e)) {
			n += e.Count
			rows++
		}
	}
	return n, rows
}

var eventRowRE = regexp.MustCompile(`<tr class="event-(allow|block|rewrite)">`)

func eventRows(page string) int { return len(eventRowRE.FindAllString(page, -1)) }

func TestLogsFilters(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("dsl1")
	day := le.base.Add(-24 * time.Hour)

	_, page := b.get("/logs")
	_, all := le.count(day, nil)
	if got := eventRows(page); got != min(all, 100) {
		t.Errorf("default page: %d rows, want %d", got, min(all, 100))
	}
	if strings.Contains(page, "pornhub.com") || strings.Contains(page, "old.example") {
		t.Error("the default page shows events older than 24 hours")
	}
	if !strings.Contains(page, "Times are in Europe/London") {
		t.Error("the page does not say the time zone")
	}
	// Times are in the appliance's zone with their offset.
	london, _ := time.LoadLocation("Europe/London")
	if want := le.events[len(le.events)-2].Time.In(london).Format("2006-01-02 15:04:05 -07:00"); !strings.Contains(html.UnescapeString(page), want) {
		t.Errorf("page lacks the time %q", want)
	}
	// The default start is shown in the field.
	if !strings.Contains(page, `id="from" name="from" value="`+le.base.Add(-24*time.Hour).In(london).Format("2006-01-02T")) {
		t.Error("the default start is not shown in the From field")
	}

	for _, tt := range []struct {
		query string
		match func(eventlog.Event) bool
		since time.Time
	}{
		{"segment=staff", func(e eventlog.Event) bool { return e.Segment == "staff" }, day},
		{"action=block", func(e eventlog.Event) bool { return e.Action == "block" }, day},
		{"action=rewrite", func(e eventlog.Event) bool { return e.Action == "rewrite" }, day},
		{"category=gambling", func(e eventlog.Event) bool { return e.Category == "gambling" }, day},
		{"source=sni", func(e eventlog.Event) bool { return e.Source == "sni" }, day},
		{"source=http", func(e eventlog.Event) bool { return e.Source == "http" }, day},
		{"profile=guest", func(e eventlog.Event) bool { return e.Profile == "guest" }, day},
		{"name=GOOGLE", func(e eventlog.Event) bool { return strings.Contains(e.Name, "google") }, day},
		{"device=127.0.0.3", func(e eventlog.Event) bool { return e.Client.String() == "127.0.0.3" }, day},
		{"device=02-00-00-00-00-02", func(e eventlog.Event) bool { return e.MAC == "02:00:00:00:00:02" }, day},
		{"device=pupil+ipad+7", func(e eventlog.Event) bool { return e.MAC == "02:00:00:00:00:02" }, day},
		{"segment=staff&action=block", func(e eventlog.Event) bool { return e.Segment == "staff" && e.Action == "block" }, day},
		{"action=block&from=" + url.QueryEscape(le.base.Add(-100*time.Hour).In(london).Format("2006-01-02T15:04")) + "&category=adult",
			func(e eventlog.Event) bool { return e.Category == "adult" }, le.base.Add(-100 * time.Hour)},
		{"from=" + url.QueryEscape(le.base.Add(-100*time.Hour).In(london).Format("2006-01-02 15:04")) + "&to=" +
			url.QueryEscape(le.base.Add(-48*time.Hour).In(london).Format("2006-01-02T15:04")),
			func(e eventlog.Event) bool { return e.Time.Before(le.base.Add(-48 * time.Hour)) }, le.base.Add(-100 * time.Hour)},
		// Only an end: the 24 hours before it.
		{"to=" + url.QueryEscape(le.base.Add(-71*time.Hour).In(london).Format("2006-01-02T15:04")),
			func(e eventlog.Event) bool { return e.Time.Before(le.base.Add(-71 * time.Hour)) }, le.base.Add(-95 * time.Hour)},
	} {
		t.Run(tt.query, func(t *testing.T) {
			resp, page := b.get("/logs?" + tt.query)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			_, want := le.count(tt.since, tt.match)
			if got := eventRows(page); got != min(want, 100) || want == 0 {
				t.Errorf("%d rows, want %d", got, want)
			}
			if strings.Contains(page, "field-error") {
				t.Errorf("a good filter is reported wrong:\n%s", page)
			}
		})
	}

	// Wrong values are reported next to their fields, marked invalid, and kept as typed.
	resp, page := b.get("/logs?from=yesterday&to=2020-01-01&segment=nope&profile=nope&action=drop&category=sport&source=ftp&device=the+printer")
	if resp.StatusCode != 200 {
		t.Errorf("bad filter: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="from-error"`, `id="segment-error"`, `id="profile-error"`, `id="action-error"`,
		`id="category-error"`, `id="source-error"`, `id="device-error"`, `aria-describedby="device-hint device-error"`,
		`value="yesterday"`, `value="the printer"`, "Enter a date and time like", "Choose one of the listed segments"} {
		if !strings.Contains(page, want) {
			t.Errorf("bad filter page lacks %q", want)
		}
	}
	if _, page := b.get("/logs?from=yesterday"); strings.Contains(page, "pornhub.com") || eventRows(page) != 100 || !strings.Contains(page, `id="from-error"`) {
		t.Error("a wrong start does not fall back to the last 24 hours")
	}
	if c := strings.Count(page, `aria-invalid="true"`); c < 7 {
		t.Errorf("%d fields marked invalid, want at least 7", c)
	}
	_, page = b.get("/logs?from=" + url.QueryEscape(le.base.In(london).Format("2006-01-02T15:04")) + "&to=" + url.QueryEscape(le.base.Add(-time.Hour).In(london).Format("2006-01-02T15:04")))
	if !strings.Contains(page, `id="to-error"`) || !strings.Contains(page, "after the start") {
		t.Error("an end before the start is not reported")
	}
	// A forged cursor gives the newest page and says so.
	if _, page := b.get("/logs?cursor=nonsense"); !strings.Contains(page, "not valid any more") || eventRows(page) != 100 {
		t.Error("a bad cursor is not reported")
	}
}

func TestLogsPaging(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("tech")
	_, want := le.count(le.base.Add(-24*time.Hour), func(e eventlog.Event) bool { return e.Segment == "pupils" })
	seen := map[string]bool{}
	next := "/logs?segment=pupils"
	total, pages := 0, 0
	for next != "" && pages < 5 {
		_, page := b.get(next)
		pages++
		total += eventRows(page)
		for _, m := range regexp.MustCompile(`<time datetime="[^"]+">([^<]+)</time>`).FindAllStringSubmatch(page, -1) {
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" id="older">`).FindStringSubmatch(page); m != nil {
			next = html.UnescapeString(m[1])
			if !strings.Contains(next, "segment=pupils") || !strings.Contains(next, "cursor=") {
				t.Errorf("older link %q loses the filter", next)
			}
		}
		if pages > 1 && !strings.Contains(page, `id="newest"`) {
			t.Error("a later page has no link to the newest")
		}
	}
	if total != want || pages != 2 {
		t.Errorf("%d rows on %d pages, want %d on 2", total, pages, want)
	}
}

func TestLogsDeviceSummaryAndRows(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("dsl1")
	_, page := b.get("/logs?segment=pupils&action=block")
	if !strings.Contains(page, "while schedule lessons was on") {
		t.Error("a block under a schedule does not name the schedule")
	}
	// Each row's address opens the device's logs in the same time range.
	m := regexp.MustCompile(`<a href="(/logs\?device=127\.0\.0\.2[^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no device link:\n%s", page)
	}
	link := html.UnescapeString(m[1])
	if !strings.Contains(link, "from=") || strings.Contains(link, "segment=") {
		t.Errorf("device link %q", link)
	}
	_, page = b.get(link)
	day := le.base.Add(-24 * time.Hour)
	pupil := func(e eventlog.Event) bool { return e.Client.String() == "127.0.0.2" }
	total, _ := le.count(day, pupil)
	blocked, _ := le.count(day, func(e eventlog.Event) bool { return pupil(e) && e.Action == "block" })
	tiktok, _ := le.count(day, func(e eventlog.Event) bool { return pupil(e) && e.Name == "tiktok.com" })
	for _, want := range []string{`id="device-summary"`, `<dd id="device-total">` + strconv.Itoa(total) + `</dd>`,
		`<dd id="device-blocked">` + strconv.Itoa(blocked) + `</dd>`, "tiktok.com</a></td><td class=\"num\">" + strconv.Itoa(tiktok) + "<",
		"Social networks"} {
		if !strings.Contains(page, want) {
			t.Errorf("device summary lacks %q", want)
		}
	}
	// By MAC address, with the configured device name.
	_, page = b.get("/logs?device=02:00:00:00:00:02")
	if !strings.Contains(page, "(Pupil iPad 7)") || !strings.Contains(page, `<dd class="mono">02:00:00:00:00:02</dd>`) {
		t.Error("the MAC address summary does not name the device")
	}
	// Hostile strings are shown as text.
	if text := html.UnescapeString(page); !strings.Contains(text, "+SUM(1,2)") || !strings.Contains(text, hostileName) || strings.Contains(page, hostileName) {
		t.Error("hostile strings are not shown escaped")
	}
	// Rows explain themselves, as of now, and say so.
	m = regexp.MustCompile(`<a href="(/explain\?[^"]*name=tiktok.com[^"]*)" aria-label="Why tiktok.com was blocked for 127.0.0.2 \(as of now\)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no explanation link for tiktok.com:\n%s", page)
	}
	_, page = b.get(html.UnescapeString(m[1]))
	for _, want := range []string{"The log shows this was blocked at", "decides <em>now</em>", `<span class="decision">Blocked</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("explanation from a row lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "has changed since") {
		t.Error("an unchanged decision is said to have changed")
	}
}

func TestLogsCSV(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("dsl1")
	resp, body := b.get("/logs.csv?segment=pupils")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="schoolgate-logs-`) {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.HasPrefix(body, "time,client,mac,device,segment,profile,source,name,qtype,action,tier,category,list,rule,count,schedule\r\n") {
		t.Errorf("header row: %q", body[:min(len(body), 200)])
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	n, rows := le.count(le.base.Add(-24*time.Hour), func(e eventlog.Event) bool { return e.Segment == "pupils" })
	if len(recs)-1 != rows {
		t.Errorf("%d rows, want %d (more than a page: %v)", len(recs)-1, rows, rows > 100)
	}
	sum := 0
	london, _ := time.LoadLocation("Europe/London")
	scheduled := 0
	for _, r := range recs[1:] {
		if r[4] != "pupils" {
			t.Errorf("row of segment %q", r[4])
		}
		c, _ := strconv.Atoi(r[14])
		sum += c
		if r[15] == "lessons" {
			scheduled++
		}
		ts, err := time.Parse(time.RFC3339, r[0])
		if err != nil || ts.Format(time.RFC3339) != ts.In(london).Format(time.RFC3339) {
			t.Errorf("time %q is not in the appliance's zone with its offset", r[0])
		}
	}
	if sum != n {
		t.Errorf("counts add up to %d, want %d", sum, n)
	}
	if scheduled == 0 {
		t.Error("no row names the schedule it was blocked under")
	}
	// Hostile cells are defused and quoted.
	var hostile []string
	for _, r := range recs {
		if strings.Contains(r[7], "calc") {
			hostile = r
		}
	}
	if hostile == nil || hostile[7] != "'"+hostileName || hostile[3] != "'+SUM(1,2)" || hostile[12] != "'-list" || hostile[13] != "'@rule" {
		t.Errorf("hostile row: %q", hostile)
	}
	if !strings.Contains(body, `"a,""b"".example"`) {
		t.Error("a name with a comma and quotes is not quoted as RFC 4180 has it")
	}
	// The download is recorded.
	last := le.auditEntries()[len(le.auditEntries())-1]
	if last.Action != "logs.export" || last.Actor != "dsl1" || !strings.Contains(last.Summary, fmt.Sprintf("%d rows", rows)) ||
		!strings.Contains(last.Summary, "segment pupils") {
		t.Errorf("audit entry: %+v", last)
	}
	// A wrong filter downloads nothing and says why, next to the field.
	resp, body = b.get("/logs.csv?action=drop")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="action-error"`) || !strings.Contains(body, "correct the filter") {
		t.Errorf("bad CSV filter: %d", resp.StatusCode)
	}
	// The logs page links the download of its own filter.
	_, page := b.get("/logs?segment=staff&action=block")
	if !strings.Contains(page, `href="/logs.csv?action=block&amp;from=`) || !strings.Contains(page, `segment=staff" download`) {
		t.Error("the download link does not carry the filter")
	}
}

func TestCSVSafeCell(t *testing.T) {
	for in, want := range map[string]string{"": "", "=1+1": "'=1+1", "+44 1234": "'+44 1234", "-5": "'-5", "@SUM(A1)": "'@SUM(A1)",
		"\t=1": "'\t=1", "ok=1": "ok=1", "10.0.0.1": "10.0.0.1"} {
		if got := csvSafeCell(in); got != want {
			t.Errorf("csvSafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// tableTotal reads the total cell of a chart's data table.
func tableTotal(t *testing.T, page, id string) int {
	t.Helper()
	i := strings.Index(page, `<div class="visually-hidden"><table id="`+id+`-data">`)
	if i < 0 {
		t.Fatalf("no data table for %s", id)
	}
	rest := page[i:]
	rest = rest[strings.Index(rest, "<tfoot>"):strings.Index(rest, "</tfoot>")]
	cells := regexp.MustCompile(`<td>([0-9,]+)</td>`).FindAllStringSubmatch(rest, -1)
	n, _ := strconv.Atoi(strings.ReplaceAll(cells[len(cells)-1][1], ",", ""))
	return n
}

// barSum adds up the values the bars of a chart's SVG carry.
func barSum(t *testing.T, page, id string) int {
	t.Helper()
	i := strings.Index(page, `<figure class="chart-figure" id="`+id+`">`)
	svg := page[i : i+strings.Index(page[i:], "</svg>")]
	sum := 0
	for _, m := range regexp.MustCompile(`</rect>|<title>[^<]*: ([0-9,]+) [a-z]+</title>`).FindAllStringSubmatch(svg, -1) {
		if m[1] != "" {
			n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
			sum += n
		}
	}
	return sum
}

func TestDashboardChartsAndTopLists(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("tech")
	_, page := b.get("/")
	hour := le.base.Truncate(time.Hour).Add(-23 * time.Hour)
	week := le.base.Add(-7 * 24 * time.Hour)
	blocked := func(e eventlog.Event) bool { return e.Action == "block" }
	dq, _ := le.count(hour, nil)
	db, _ := le.count(hour, blocked)
	wq, _ := le.count(week, nil)
	wb, _ := le.count(week, blocked)
	for _, c := range []struct {
		id   string
		want int
	}{{"chart-day-queries", dq}, {"chart-day-blocked", db}, {"chart-week-queries", wq}, {"chart-week-blocked", wb}} {
		if got := tableTotal(t, page, c.id); got != c.want {
			t.Errorf("%s: table total %d, want %d", c.id, got, c.want)
		}
		if got := barSum(t, page, c.id); got != c.want {
			t.Errorf("%s: bars add up to %d, want %d", c.id, got, c.want)
		}
	}
	for _, want := range []string{`role="img"`, `aria-label="Queries per hour, last 24 hours"`, "<desc id=\"chart-day-queries-desc\">",
		"Hour (Europe/London)", "Day (Europe/London)", `<th scope="col">pupils</th>`, `<th scope="col">staff</th>`,
		`<table id="top-names-day">`, `<table id="top-categories-week">`, `id="explain-box"`, "Social networks", "Pornography"} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(page, "style=") {
		t.Error("the dashboard has a style attribute")
	}
	// Top names: counts, and links to the logs of those blocks.
	tiktok, _ := le.count(le.base.Add(-24*time.Hour), func(e eventlog.Event) bool { return e.Name == "tiktok.com" })
	top := page[strings.Index(page, `<table id="top-names-day">`):]
	top = top[:strings.Index(top, "</table>")]
	m := regexp.MustCompile(`<a href="([^"]+)">tiktok.com</a></td><td class="num">([0-9,]+)</td>`).FindStringSubmatch(top)
	if m == nil || m[2] != strconv.Itoa(tiktok) {
		t.Fatalf("top names of the day:\n%s", top)
	}
	_, logs := b.get(html.UnescapeString(m[1]))
	if _, want := le.count(le.base.Add(-24*time.Hour), func(e eventlog.Event) bool { return e.Name == "tiktok.com" }); eventRows(logs) != min(want, 100) {
		t.Errorf("the top entry's logs show %d rows, want %d", eventRows(logs), want)
	}
	// Adult blocks were three days ago: in the week's list, not the day's.
	if strings.Contains(top, "pornhub.com") {
		t.Error("the day's list has an event of three days ago")
	}
	// A governor sees the charts and lists, without links to logs they may not read, and no
	// explain box.
	v := le.browser()
	v.login("view1")
	_, page = v.get("/")
	if !strings.Contains(page, `<table id="top-names-day">`) || !strings.Contains(page, "tiktok.com") || strings.Contains(page, `href="/logs?`) ||
		strings.Contains(page, `id="explain-box"`) || tableTotal(t, page, "chart-day-queries") != dq {
		t.Error("viewer's dashboard")
	}
	if resp, _ := v.get("/explain?name=tiktok.com&client=127.0.0.2"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer explain: %d", resp.StatusCode)
	}
	if resp, _ := v.get("/logs"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer logs: %d", resp.StatusCode)
	}
}

func TestExplainBox(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("dsl1")
	_, page := b.get("/")
	if !strings.Contains(page, `action="/explain"`) || !strings.Contains(page, `hx-get="/explain"`) {
		t.Fatal("the dashboard has no explain box")
	}
	_, page = b.get("/explain?name=TikTok.com&client=127.0.0.2")
	for _, want := range []string{`<span class="decision">Blocked</span>`, `id="explain-summary">blocked for profile &#34;pupils&#34;: category social`,
		`<ol class="steps" id="explain-steps">`, "is in segment &#34;pupils&#34;", "<dt>Category</dt><dd>Social networks</dd>", `value="TikTok.com"`} {
		if !strings.Contains(page, want) {
			t.Errorf("explanation lacks %q:\n%s", want, page)
		}
	}
	_, page = b.get("/explain?name=www.bbc.co.uk&client=127.0.0.2")
	if !strings.Contains(page, `<span class="decision">Allowed</span>`) {
		t.Errorf("bbc for a pupil:\n%s", page)
	}
	// International names are explained in the form the lists hold them.
	if _, page := b.get("/explain?name=" + url.QueryEscape("Bücher.example") + "&client=127.0.0.2"); !strings.Contains(page, "xn--bcher-kva.example</span> for 127.0.0.2") {
		t.Errorf("international name:\n%s", page)
	}
	// The box through htmx: the box alone comes back.
	resp, frag := b.do("GET", "/explain?name=tiktok.com&client=127.0.0.1", nil, "HX-Request", "true", "HX-Target", "explain-box")
	if resp.StatusCode != 200 || strings.Contains(frag, "<html") || !strings.HasPrefix(strings.TrimSpace(frag), `<section id="explain-box"`) ||
		!strings.Contains(frag, "Allowed") || !strings.Contains(frag, "autofocus") {
		t.Errorf("htmx box: %d\n%s", resp.StatusCode, frag)
	}
	// A MAC address or a device name stands for the address the device last used.
	_, page = b.get("/explain?name=tiktok.com&client=Pupil+iPad+7")
	if !strings.Contains(page, "Pupil iPad 7 last used the address 127.0.0.2") || !strings.Contains(page, "Blocked") {
		t.Errorf("by device name:\n%s", page)
	}
	_, page = b.get("/explain?name=tiktok.com&client=02:00:00:00:00:99")
	if !strings.Contains(page, `id="explain-client-error"`) || !strings.Contains(page, "has not been seen") {
		t.Error("an unseen device is not reported")
	}
	// Wrong input next to its field.
	_, page = b.get("/explain?name=https://tiktok.com/x&client=banana")
	for _, want := range []string{`id="explain-name-error"`, `id="explain-client-error"`, `aria-describedby="explain-name-hint explain-name-error"`, `aria-invalid="true"`} {
		if !strings.Contains(page, want) {
			t.Errorf("bad explain form lacks %q", want)
		}
	}
	if strings.Contains(page, `id="explanation"`) {
		t.Error("an explanation was shown for a wrong form")
	}
	// From a log row whose decision has changed since.
	_, page = b.get("/explain?name=tiktok.com&client=127.0.0.2&at=2026-01-05T09:00:00Z&was=allow")
	if !strings.Contains(html.UnescapeString(page), "The log shows this was allowed at 2026-01-05 09:00:00 +00:00") || !strings.Contains(page, "The decision has changed since then") {
		t.Errorf("changed decision:\n%s", page)
	}
	// The empty form is no error.
	if resp, page := b.get("/explain"); resp.StatusCode != 200 || strings.Contains(page, "field-error") {
		t.Errorf("empty explain page: %d", resp.StatusCode)
	}
}

// Without the event log's summaries (the API's test double), the dashboard still works.
func TestDashboardWithoutSummaries(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	b := e.browser()
	b.login("tech")
	resp, page := b.get("/")
	if resp.StatusCode != 200 || !strings.Contains(page, "need the event log") || !strings.Contains(page, `id="explain-box"`) {
		t.Errorf("dashboard without summaries: %d", resp.StatusCode)
	}
	if resp, page := b.get("/logs?device=10.0.0.9"); resp.StatusCode != 200 || !strings.Contains(page, "No events match") {
		t.Errorf("logs without events: %d", resp.StatusCode)
	}
}

// The JSON API carries the schedule a block was made under, as the page and the CSV do.
func TestEventsAPISchedule(t *testing.T) {
	le := newLogsEnv(t)
	b := le.browser()
	b.login("dsl1")
	resp, body := b.get("/api/events?segment=pupils&action=block&limit=50")
	if resp.StatusCode != 200 {
		t.Fatalf("/api/events: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Events []struct{ Name, Schedule string } `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	with, without := 0, 0
	for _, e := range out.Events {
		switch e.Schedule {
		case "lessons":
			with++
		case "":
			without++
		default:
			t.Errorf("%s: schedule %q", e.Name, e.Schedule)
		}
	}
	if with == 0 || without == 0 {
		t.Errorf("%d blocks under a schedule and %d without; want some of each", with, without)
	}
}
