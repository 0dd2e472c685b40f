package webui

import (
	"context"
	"html"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/devices"
)

// Test devices: a Raspberry Pi in the library, a staff laptop with an override, a pupil's
// phone with a private address, and a device the configuration names that was never seen.
const (
	macPi      = "dc:a6:32:01:02:03"
	macLaptop  = "60:8b:0e:00:00:02"
	macPhone   = "a6:1f:00:00:00:04"
	macUnseen  = "b8:27:eb:00:00:09"
	testOUICSV = "Registry,Assignment,Organization Name,Organization Address\n" +
		"MA-L,DCA632,Raspberry Pi Trading Ltd,\"Maurice Wilkes Building, Cowley Road Cambridge  GB CB4 0DS \"\n" +
		"MA-L,608B0E,\"Apple, Inc.\",1 Infinite Loop Cupertino CA US 95014 \n"
)

// withDevices sets Config.Devices.
func withDevices(t *testing.T, inv DeviceInventory) func(*Config) {
	return func(c *Config) { c.Devices = inv }
}

// newDevicesEnv is an env whose inventory holds the test devices, and whose configuration
// names two of them.
func newDevicesEnv(t *testing.T) (*env, *devices.Inventory) {
	t.Helper()
	vendors, err := devices.ParseVendors(strings.NewReader(testOUICSV))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := devices.New(devices.Config{Path: filepath.Join(t.TempDir(), devices.FileName), Vendors: vendors})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inv.Close() })
	now := time.Now()
	err = inv.Observe(context.Background(), []devices.Sighting{
		{MAC: macPi, Addr: netip.MustParseAddr("10.20.0.31"), Segment: "pupils", Time: now.Add(-3 * time.Minute)},
		{MAC: macPi, Addr: netip.MustParseAddr("2001:db8:20::31"), Segment: "pupils", Time: now.Add(-3 * time.Minute)},
		{MAC: macLaptop, Addr: netip.MustParseAddr("10.10.0.12"), Segment: "staff", Time: now.Add(-2 * time.Hour)},
		{MAC: macPhone, Addr: netip.MustParseAddr("10.30.0.7"), Segment: "guest", Time: now.Add(-50 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, withDevices(t, inv))
	e.config.cfg.Devices = []config.Device{
		{MAC: macPi, Name: "Library Pi"},
		{MAC: macLaptop, Name: "Head's laptop", Profile: "staff"},
		{MAC: macUnseen, Name: "Spare laptop", Profile: "pupils"},
	}
	e.withAccounts()
	return e, inv
}

func mustContain(t *testing.T, what, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

var rowRE = regexp.MustCompile(`(?s)<tr id="d-([0-9a-f:]+)">`)

// rowsOf returns the MAC addresses of a page's device rows, in order, and those of the
// "not seen" table separately.
func rowsOf(page string) (seen, unseen []string) {
	main, rest, _ := strings.Cut(page, `id="unseen-heading"`)
	for _, m := range rowRE.FindAllStringSubmatch(main, -1) {
		seen = append(seen, m[1])
	}
	for _, m := range rowRE.FindAllStringSubmatch(rest, -1) {
		unseen = append(unseen, m[1])
	}
	return seen, unseen
}

func TestDevicesPage(t *testing.T) {
	e, _ := newDevicesEnv(t)
	b := e.browser()
	b.login("dsl1")
	resp, page := b.get("/devices")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /devices: %d\n%s", resp.StatusCode, page)
	}
	page = html.UnescapeString(page)
	seen, unseen := rowsOf(page)
	if !slices.Equal(seen, []string{macPi, macLaptop, macPhone}) || !slices.Equal(unseen, []string{macUnseen}) {
		t.Errorf("rows: seen %v, not seen %v", seen, unseen)
	}
	mustContain(t, "the devices page", page,
		"Library Pi", "Head's laptop", "Spare laptop", // names from the configuration
		"Raspberry Pi Trading Ltd", "Apple, Inc.", devices.PrivateText, // makers
		"10.20.0.31", "2001:db8:20::31", "10.30.0.7", // addresses
		`href="/devices/`+macPi+`"`, `href="/logs?device=`+macPi+`"`, `href="/logs?device=`+macUnseen+`"`,
		"3 minutes ago", "2 hours ago", "2 days ago", "Europe/London",
		`<option value="pupils">pupils</option>`)
	if strings.Contains(page, "not running") {
		t.Error("the page says the inventory is not running")
	}
	// The staff laptop's override shows in its row; the Pi has none.
	_, laptopRow, _ := strings.Cut(page, `id="d-`+macLaptop+`"`)
	laptopRow, _, _ = strings.Cut(laptopRow, "</tr>")
	mustContain(t, "the laptop's row", laptopRow, `data-label="Profile">staff<`, "staff")

	for _, tc := range []struct {
		query        string
		seen, unseen []string
	}{
		{"q=library", []string{macPi}, nil},
		{"q=LAPTOP", []string{macLaptop}, []string{macUnseen}},
		{"q=DC-A6-32", []string{macPi}, nil},
		{"q=b8:27", nil, []string{macUnseen}},
		{"q=10.30.", []string{macPhone}, nil},
		{"q=apple", []string{macLaptop}, nil},
		{"q=private", []string{macPhone}, nil},
		{"segment=staff", []string{macLaptop}, nil},
		{"seen=1h", []string{macPi}, nil},
		{"seen=24h&q=laptop", []string{macLaptop}, nil},
		{"q=" + url.QueryEscape("<script>"), nil, nil},
	} {
		resp, page := b.get("/devices?" + tc.query)
		seen, unseen := rowsOf(page)
		if resp.StatusCode != 200 || !slices.Equal(seen, tc.seen) || !slices.Equal(unseen, tc.unseen) {
			t.Errorf("%s: %d, seen %v, not seen %v; want %v, %v", tc.query, resp.StatusCode, seen, unseen, tc.seen, tc.unseen)
		}
		if strings.Contains(page, "<script>") {
			t.Errorf("%s: the search is not escaped", tc.query)
		}
	}
	// A segment or time not offered is refused next to its field, and not applied.
	_, page = b.get("/devices?segment=" + url.QueryEscape("x' OR 1=1") + "&seen=5y")
	mustContain(t, "bad filters", page, `id="segment-error"`, "Choose one of the listed networks.", `id="seen-error"`)
	if seen, _ := rowsOf(page); len(seen) != 3 {
		t.Errorf("bad filters: %v", seen)
	}

	// A teacher may not see the inventory.
	tb := e.browser()
	tb.login("teach1")
	if resp, _ := tb.get("/devices"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("teacher: %d", resp.StatusCode)
	}
}

func TestDevicePage(t *testing.T) {
	e, _ := newDevicesEnv(t)
	dsl := e.browser()
	dsl.login("dsl1")
	resp, page := dsl.get("/devices/" + macPhone)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /devices/%s: %d", macPhone, resp.StatusCode)
	}
	page = html.UnescapeString(page)
	mustContain(t, "the phone's page", page, macPhone, devices.PrivateText, `id="private-note"`, "10.30.0.7", "guest",
		"guest, the profile of the guest network", `href="/logs?device=`+macPhone+`"`, "2 days ago")
	if strings.Contains(page, `name="reason"`) || strings.Contains(page, `method="post" action="/devices`) {
		t.Error("the DSL gets the edit form")
	}
	_, page = dsl.get("/devices/" + macLaptop)
	mustContain(t, "the laptop's page", html.UnescapeString(page), "Head's laptop", "Apple, Inc.", "staff, its own profile, wherever it connects")
	if strings.Contains(page, `id="private-note"`) {
		t.Error("a maker's address is called private")
	}
	_, page = dsl.get("/devices/" + macUnseen)
	mustContain(t, "the unseen device's page", page, "Spare laptop", `id="not-seen"`, "400 days")

	// Another form of the address goes to the canonical page; what is not a device's
	// address is not found.
	if resp, _ := dsl.get("/devices/DC-A6-32-01-02-03"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/devices/"+macPi {
		t.Errorf("non-canonical address: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, bad := range []string{"nonsense", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", url.PathEscape("<b>x</b>")} {
		resp, page := dsl.get("/devices/" + bad)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(page, "<b>x") {
			t.Errorf("/devices/%s: %d", bad, resp.StatusCode)
		}
	}
	// The DSL may not change a device.
	if resp, _ := dsl.post("/devices/"+macPi, url.Values{"csrf": {hidden(t, page, "csrf")}, "name": {"x"}, "reason": {"because"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("DSL POST: %d", resp.StatusCode)
	}
}

func TestDeviceSave(t *testing.T) {
	e, _ := newDevicesEnv(t)
	b := e.browser()
	csrf := b.login("tech")
	_, page := b.get("/devices/" + macPhone)
	base := hidden(t, page, "base")
	mustContain(t, "the technician's form", page, `name="reason"`, `<option value="" selected>none: the network's profile (guest)</option>`,
		`<option value="staff">staff</option>`)
	form := func(name, profile, reason string) url.Values {
		return url.Values{"csrf": {csrf}, "base": {base}, "name": {name}, "profile": {profile}, "reason": {reason}}
	}
	changes := func() []Change {
		e.config.mu.Lock()
		defer e.config.mu.Unlock()
		return slices.Clone(e.config.changes)
	}
	entry := func(mac string) (config.Device, bool) {
		cfg, _ := e.config.EditableConfig()
		i := slices.IndexFunc(cfg.Devices, func(d config.Device) bool { return d.MAC == mac })
		if i < 0 {
			return config.Device{}, false
		}
		return cfg.Devices[i], true
	}

	// Errors are shown next to their fields, with what was typed kept.
	for _, tc := range []struct {
		form       url.Values
		field, msg string
	}{
		{form("Ella's phone", "staff", ""), "reason", "Say why"},
		{form("Ella's phone", "teachers", "new phone"), "profile", "Choose one of the listed profiles."},
		{form(strings.Repeat("x", 65), "", "new phone"), "name", "Keep the name under 65 characters."},
		{form("Ella\u202e's phone", "", "new phone"), "name", "The name contains characters that cannot be shown."},
	} {
		resp, page := b.post("/devices/"+macPhone, tc.form)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422", tc.field, resp.StatusCode)
		}
		page = html.UnescapeString(page)
		mustContain(t, tc.field+" error", page, `id="`+tc.field+`-error">`+tc.msg, `aria-invalid="true"`)
		if !strings.Contains(page, `value="`+tc.form.Get("name")+`"`) {
			t.Errorf("%s: the name typed is not kept", tc.field)
		}
	}
	if len(changes()) != 0 {
		t.Fatalf("a refused form was saved: %+v", changes())
	}

	// Name the phone and give it the staff profile.
	resp, _ := b.post("/devices/"+macPhone, form("  Ella's   phone ", "staff", "Ella is a teaching assistant"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/devices/"+macPhone+"?saved=1" {
		t.Fatalf("save: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if d, ok := entry(macPhone); !ok || d.Name != "Ella's phone" || d.Profile != "staff" {
		t.Errorf("configuration entry: %+v, %v", d, ok)
	}
	ch := changes()
	if len(ch) != 1 || ch[0].Summary != `device `+macPhone+`: named "Ella's phone"; given the profile staff` ||
		ch[0].Reason != "Ella is a teaching assistant" || ch[0].Actor != "tech" || ch[0].Role != string(auth.Technician) {
		t.Errorf("change: %+v", ch)
	}
	_, page = b.get("/devices/" + macPhone + "?saved=1")
	page = html.UnescapeString(page)
	mustContain(t, "the saved page", page, "Saved as configuration version 1", "<h1>Ella's phone</h1>", "staff, its own profile")

	// A form made from the configuration before that save is shown again, not saved.
	resp, page = b.post("/devices/"+macPi, url.Values{"csrf": {csrf}, "base": {base}, "name": {"Library Pi 2"}, "reason": {"renumbered"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "Someone else changed the configuration") {
		t.Errorf("stale form: %d", resp.StatusCode)
	}
	_, page = b.get("/devices/" + macPi)
	base = hidden(t, page, "base")

	// Nothing changed.
	resp, page = b.post("/devices/"+macPi, form("Library Pi", "", "no change"))
	if resp.StatusCode != 200 || !strings.Contains(page, "Nothing changed.") || len(changes()) != 1 {
		t.Errorf("no change: %d, %d changes", resp.StatusCode, len(changes()))
	}
	// Rename, then remove the entry by emptying both fields.
	if resp, _ := b.post("/devices/"+macPi, form("Library Pi 2", "", "renumbered")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rename: %d", resp.StatusCode)
	}
	if ch := changes(); ch[len(ch)-1].Summary != `device `+macPi+`: renamed from "Library Pi" to "Library Pi 2"` {
		t.Errorf("rename summary: %q", ch[len(ch)-1].Summary)
	}
	_, page = b.get("/devices/" + macLaptop)
	base = hidden(t, page, "base")
	mustContain(t, "an entry's form", page, "To remove the device from the configuration")
	if resp, _ := b.post("/devices/"+macLaptop, form("", "", "laptop returned")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	if d, ok := entry(macLaptop); ok {
		t.Errorf("entry not removed: %+v", d)
	}
	if ch := changes(); ch[len(ch)-1].Summary != `device `+macLaptop+`: name "Head's laptop" removed; profile override staff removed: the network's profile applies` {
		t.Errorf("removal summary: %q", ch[len(ch)-1].Summary)
	}
	// A device never seen can be named before it connects; the path may use another form.
	_, page = b.get("/devices/" + macLaptop)
	base = hidden(t, page, "base")
	if resp, _ := b.post("/devices/02-00-00-00-00-01", form("Visitor kiosk", "guest", "kiosk arrives Monday")); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/devices/02:00:00:00:00:01?saved=4" {
		t.Errorf("new entry: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if d, ok := entry("02:00:00:00:00:01"); !ok || d.Name != "Visitor kiosk" || d.Profile != "guest" {
		t.Errorf("new entry: %+v, %v", d, ok)
	}
}

// TestDevicesWithoutInventory: the DNS-only demo has no inventory; the pages show what the
// configuration names.
func TestDevicesWithoutInventory(t *testing.T) {
	e := newEnv(t)
	e.config.cfg.Devices = []config.Device{{MAC: macLaptop, Name: "Head's laptop", Profile: "staff"}}
	e.withAccounts()
	b := e.browser()
	b.login("dsl1")
	resp, page := b.get("/devices")
	page = html.UnescapeString(page)
	if _, unseen := rowsOf(page); resp.StatusCode != 200 || !slices.Equal(unseen, []string{macLaptop}) {
		t.Errorf("GET /devices: %d, %v", resp.StatusCode, unseen)
	}
	mustContain(t, "the page", page, "The device inventory is not running", "Head's laptop")
	resp, page = b.get("/devices/" + macLaptop)
	if resp.StatusCode != 200 || !strings.Contains(page, "The device inventory is not running") {
		t.Errorf("GET /devices/%s: %d", macLaptop, resp.StatusCode)
	}
}

// TestDeviceRoutesRoles tries the devices routes with every role, as TestRouteRoleTable does
// once it substitutes {mac}.
func TestDeviceRoutesRoles(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	accounts := map[auth.Role]string{auth.Technician: "tech", auth.DSL: "dsl1", auth.Teacher: "teach1", auth.Viewer: "view1"}
	for _, rt := range e.srv.deviceRoutes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.ReplaceAll(path, "{mac}", macPi)
		if resp, _ := e.browser().do(method, path, url.Values{}); resp.StatusCode != http.StatusFound {
			t.Errorf("%s without a session: %d", rt.pattern, resp.StatusCode)
		}
		for _, role := range auth.Roles() {
			b := e.browser()
			csrf := b.login(accounts[role])
			resp, page := b.do(method, path, url.Values{"csrf": {csrf}})
			want := []int{http.StatusOK}
			if !auth.Can(role, rt.perm) {
				want = []int{http.StatusForbidden}
			}
			if !slices.Contains(want, resp.StatusCode) {
				t.Errorf("%s as %s: %d, want %v\n%s", rt.pattern, role, resp.StatusCode, want, page)
			}
		}
	}
}

func TestAgoText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:          "just now",
		59 * time.Second:      "just now",
		time.Minute:           "1 minute ago",
		59 * time.Minute:      "59 minutes ago",
		time.Hour:             "1 hour ago",
		23 * time.Hour:        "23 hours ago",
		30 * time.Hour:        "yesterday",
		50 * time.Hour:        "2 days ago",
		59 * 24 * time.Hour:   "59 days ago",
		90 * 24 * time.Hour:   "3 months ago",
		400 * 24 * time.Hour:  "1 year ago",
		1000 * 24 * time.Hour: "2 years ago",
	} {
		if got := agoText(d); got != want {
			t.Errorf("agoText(%v) = %q, want %q", d, got, want)
		}
	}
}
