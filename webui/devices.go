package webui

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/devices"
)

// The devices pages: the inventory of devices seen on the school's networks (maker or
// "private address", addresses, network, first and last seen) joined with the names and
// profile overrides the configuration gives them by MAC address; one page per device, where
// a technician names it or gives it another profile, with a reason that goes into the audit
// trail. The DSL reads them: which device had which address, and whose it is.

// DeviceInventory lists and finds the devices seen on the network. *devices.Inventory is one.
type DeviceInventory interface {
	List(context.Context, devices.Filter) ([]devices.Device, error)
	Get(ctx context.Context, mac string) (devices.Device, error)
}

// inventory returns Config.Devices, or nil when the daemon runs without an inventory (the
// DNS-only demo): the pages then show the devices the configuration names.
func (s *Server) inventory() DeviceInventory {
	if s.cfg.Devices == nil {
		return nil
	}
	return s.cfg.Devices
}

// deviceRoutes are the routes of the devices pages.
func (s *Server) deviceRoutes() []route {
	return []route{
		{"GET /devices", auth.DevicesRead, s.handleDevices},
		{"GET /devices/{mac}", auth.DevicesRead, s.handleDevice},
		{"POST /devices/{mac}", auth.DevicesEdit, s.handleDeviceSave},
	}
}

// devicePageFiles are the templates of the devices pages.
var devicePageFiles = []string{"devices", "device"}

// Limits of the devices pages.
const (
	devicesShown  = 500 // rows of the table; a search narrows it
	maxDeviceName = 64  // characters of a device's name
)

// seenOption is a choice of the "seen" filter.
type seenOption struct {
	Value, Label string
	within       time.Duration
}

// seenWithin are the choices of the "seen" filter.
var seenWithin = []seenOption{
	{"", "any time", 0},
	{"1h", "in the last hour", time.Hour},
	{"24h", "in the last 24 hours", 24 * time.Hour},
	{"7d", "in the last 7 days", 7 * 24 * time.Hour},
	{"30d", "in the last 30 days", 30 * 24 * time.Hour},
}

// deviceView is a device as the pages show it.
type deviceView struct {
	MAC, Name, Profile string
	Vendor             string // the maker, devices.PrivateText, or ""
	Private            bool
	Segment            string
	IPv4, IPv6         string
	Seen               bool   // in the inventory
	FirstSeen          string // in the appliance's time zone
	FirstSeenDay       string // the date alone, for the table
	LastSeen           string
	LastSeenISO        string
	LastSeenAgo        string // "3 minutes ago"
}

// LogsHref is the logs page filtered by this device.
func (d deviceView) LogsHref() string { return "/logs?device=" + d.MAC }

func viewOfDevice(d devices.Device, cfgDev config.Device, now time.Time, loc *time.Location) deviceView {
	v := deviceView{MAC: d.MAC, Name: cfgDev.Name, Profile: cfgDev.Profile, Vendor: d.VendorText(), Private: d.Private,
		Segment: d.Segment, Seen: !d.LastSeen.IsZero()}
	if d.IPv4.IsValid() {
		v.IPv4 = d.IPv4.String()
	}
	if d.IPv6.IsValid() {
		v.IPv6 = d.IPv6.String()
	}
	if v.Seen {
		v.FirstSeen = d.FirstSeen.In(loc).Format("Mon 2 Jan 2006 15:04")
		v.FirstSeenDay = d.FirstSeen.In(loc).Format("2 Jan 2006")
		v.LastSeen = d.LastSeen.In(loc).Format("Mon 2 Jan 2006 15:04")
		v.LastSeenISO = d.LastSeen.Format(time.RFC3339)
		v.LastSeenAgo = agoText(now.Sub(d.LastSeen))
	}
	return v
}

// viewOfConfigured is a device the configuration names but the inventory has not seen.
func viewOfConfigured(c config.Device) deviceView {
	v := deviceView{MAC: c.MAC, Name: c.Name, Profile: c.Profile, Private: devices.IsPrivate(c.MAC)}
	if v.Private {
		v.Vendor = devices.PrivateText
	}
	return v
}

// agoText says how long ago, in words: "just now", "5 minutes ago", "yesterday".
func agoText(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return strconv.Itoa(n) + " " + unit + "s ago"
	}
	const day = 24 * time.Hour
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < day:
		return plural(int(d/time.Hour), "hour")
	case d < 2*day:
		return "yesterday"
	case d < 60*day:
		return plural(int(d/day), "day")
	case d < 365*day:
		return plural(int(d/(30*day)), "month")
	}
	return plural(int(d/(365*day)), "year")
}

// configuredDevices maps canonical MAC addresses to the configuration's device entries.
func configuredDevices(cfg *config.Config) map[string]config.Device {
	out := make(map[string]config.Device, len(cfg.Devices))
	for _, d := range cfg.Devices {
		if mac, err := devices.CanonicalMAC(d.MAC); err == nil {
			d.MAC = mac
			out[mac] = d
		}
	}
	return out
}

type devicesData struct {
	Rows      []deviceView
	Unseen    []deviceView // named in the configuration, not in the inventory
	More      bool         // there are more rows than shown
	Shown     int
	Segments  []string
	Seen      []selectOption
	Inventory bool // the inventory is running
	Zone      string
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	loc := s.location()
	q := r.URL.Query()
	p := page{Title: "Devices", fieldErrs: map[string]string{}, Form: map[string]string{}}
	for _, k := range []string{"q", "segment", "seen"} {
		p.Form[k] = strings.TrimSpace(q.Get(k))
	}
	d := devicesData{Inventory: s.inventory() != nil, Shown: devicesShown, Zone: loc.String()}
	for _, seg := range cfg.Segments {
		d.Segments = append(d.Segments, seg.Name)
	}
	for _, o := range seenWithin {
		d.Seen = append(d.Seen, selectOption{o.Value, o.Label})
	}
	named := configuredDevices(cfg)
	names := make(map[string]string, len(named))
	for mac, c := range named {
		if c.Name != "" {
			names[mac] = c.Name
		}
	}
	now := time.Now()
	f := devices.Filter{Query: p.Form["q"], Names: names, Limit: devicesShown + 1}
	if seg := p.Form["segment"]; seg != "" {
		if !slices.Contains(d.Segments, seg) {
			p.fieldErrs["segment"] = "Choose one of the listed networks."
			p.Form["segment"] = ""
		} else {
			f.Segment = seg
		}
	}
	if v := p.Form["seen"]; v != "" {
		i := slices.IndexFunc(seenWithin, func(o seenOption) bool { return o.Value == v })
		if i < 0 {
			p.fieldErrs["seen"] = "Choose one of the listed times."
			p.Form["seen"] = ""
		} else {
			f.SeenSince = now.Add(-seenWithin[i].within)
		}
	}
	if utf8.RuneCountInString(f.Query) > 100 {
		p.fieldErrs["q"] = "Search for at most 100 characters."
		f.Query = ""
	}
	inv := s.inventory()
	listed := map[string]bool{}
	failed := false
	if inv != nil {
		list, err := inv.List(r.Context(), f)
		if err != nil {
			s.cfg.Logger.Error("listing devices", "err", err)
			p.Error = "The device inventory could not be read: " + err.Error()
			failed = true
		}
		if len(list) > devicesShown {
			list, d.More = list[:devicesShown], true
		}
		for _, dev := range list {
			d.Rows = append(d.Rows, viewOfDevice(dev, named[dev.MAC], now, loc))
			listed[dev.MAC] = true
		}
	}
	// The devices the configuration names that have not been seen (or were forgotten), unless
	// a filter about being seen rules them out. The list matches names and MAC addresses as
	// this does, so a matching device missing from a complete list has not been seen; from a
	// list cut short, the inventory is asked.
	if f.Segment == "" && f.SeenSince.IsZero() && !failed {
		query := strings.ToLower(f.Query)
		macQuery := strings.ReplaceAll(query, "-", ":")
		for _, mac := range slices.Sorted(maps.Keys(named)) {
			c := named[mac]
			if listed[mac] || (query != "" && !strings.Contains(mac, macQuery) && !strings.Contains(strings.ToLower(c.Name), query)) {
				continue
			}
			if inv != nil && d.More {
				if _, err := inv.Get(r.Context(), mac); !errors.Is(err, devices.ErrNotFound) {
					continue
				}
			}
			d.Unseen = append(d.Unseen, viewOfConfigured(c))
		}
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "devices", p)
}

// deviceMAC reads the {mac} of the path, or answers 404.
func (s *Server) deviceMAC(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := r.PathValue("mac")
	mac, err := devices.CanonicalMAC(raw)
	if err != nil {
		s.renderMessage(w, r, http.StatusNotFound, "No such device",
			"A device is named by its MAC address, like aa:bb:cc:dd:ee:ff; "+strconv.Quote(truncate(raw, 40))+" is not one.")
		return "", false
	}
	return mac, true
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

type deviceData struct {
	deviceView
	CanEdit        bool
	Inventory      bool   // the inventory is running
	InConfig       bool   // the configuration has an entry for it
	SegmentProfile string // the profile of the segment it was last seen on, "" when unknown
	Applies        string // the profile that applies, in words
	Profiles       []string
	RetentionDays  int
	Base           string
	Saved          string
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	mac, ok := s.deviceMAC(w, r)
	if !ok {
		return
	}
	if mac != r.PathValue("mac") {
		http.Redirect(w, r, "/devices/"+mac, http.StatusMovedPermanently)
		return
	}
	cfg, ok := s.editableConfig(w, r)
	if !ok {
		return
	}
	c, inConfig := configuredDevices(cfg)[mac]
	p := page{Title: "Device " + mac, fieldErrs: map[string]string{}, Form: map[string]string{"name": c.Name, "profile": c.Profile}}
	d := s.deviceFormData(r, &p, cfg, mac)
	d.InConfig = inConfig
	d.CanEdit = auth.Can(sessionFrom(r).Role, auth.DevicesEdit)
	d.Saved = r.URL.Query().Get("saved")
	if d.Name != "" {
		p.Title = "Device " + d.Name
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "device", p)
}

// deviceFormData assembles what device.html shows of mac, from the inventory and cfg.
func (s *Server) deviceFormData(r *http.Request, p *page, cfg *config.Config, mac string) deviceData {
	c, ok := configuredDevices(cfg)[mac]
	if !ok {
		c = config.Device{MAC: mac}
	}
	d := deviceData{deviceView: viewOfConfigured(c), Base: fingerprint(cfg), RetentionDays: int(devices.DefaultRetention / (24 * time.Hour))}
	if inv := s.inventory(); inv != nil {
		d.Inventory = true
		if rt, ok := inv.(interface{ Retention() time.Duration }); ok {
			d.RetentionDays = int(rt.Retention() / (24 * time.Hour))
		}
		dev, err := inv.Get(r.Context(), mac)
		switch {
		case err == nil:
			d.deviceView = viewOfDevice(dev, c, time.Now(), s.location())
		case !errors.Is(err, devices.ErrNotFound):
			s.cfg.Logger.Error("reading a device", "mac", mac, "err", err)
			p.Error = "The device inventory could not be read: " + err.Error()
		}
	}
	for _, prof := range cfg.Profiles {
		d.Profiles = append(d.Profiles, prof.Name)
	}
	for _, seg := range cfg.Segments {
		if seg.Name == d.Segment {
			d.SegmentProfile = seg.Profile
		}
	}
	switch {
	case d.Profile != "":
		d.Applies = d.Profile + ", its own profile, wherever it connects"
	case d.SegmentProfile != "":
		d.Applies = d.SegmentProfile + ", the profile of the " + d.Segment + " network"
	default:
		d.Applies = "the profile of the network it connects to"
	}
	return d
}

// handleDeviceSave sets, changes or removes the configuration's entry for a device: its
// name and profile override. Both empty removes the entry.
func (s *Server) handleDeviceSave(w http.ResponseWriter, r *http.Request) {
	mac, ok := s.deviceMAC(w, r)
	if !ok {
		return
	}
	cfg, fp, ok := s.editForm(w, r, "Device")
	if !ok {
		return
	}
	f := r.PostForm
	p := page{Title: "Device " + mac, fieldErrs: map[string]string{},
		Form: map[string]string{"name": f.Get("name"), "profile": f.Get("profile"), "reason": f.Get("reason")}}
	name := strings.Join(strings.Fields(f.Get("name")), " ")
	profile := strings.TrimSpace(f.Get("profile"))
	if msg := checkDeviceName(name); msg != "" {
		p.fieldErrs["name"] = msg
	}
	if profile != "" && !slices.ContainsFunc(cfg.Profiles, func(pr config.Profile) bool { return pr.Name == profile }) {
		p.fieldErrs["profile"] = "Choose one of the listed profiles."
	}
	i := slices.IndexFunc(cfg.Devices, func(d config.Device) bool {
		m, err := devices.CanonicalMAC(d.MAC)
		return err == nil && m == mac
	})
	var before config.Device
	if i >= 0 {
		before = cfg.Devices[i]
	}
	after := config.Device{MAC: mac, Name: name, Profile: profile}
	switch {
	case name == "" && profile == "" && i >= 0:
		cfg.Devices = slices.Delete(cfg.Devices, i, i+1)
	case name == "" && profile == "":
	case i >= 0:
		cfg.Devices[i] = after
	default:
		cfg.Devices = append(cfg.Devices, after)
	}
	d := s.deviceFormData(r, &p, cfg, mac)
	d.CanEdit, d.Base, d.InConfig = true, fp, i >= 0
	p.Data = d
	summary := deviceChange(mac, before, after)
	if summary == "" && len(p.fieldErrs) == 0 {
		p.Notice = "Nothing changed."
		s.render(w, r, http.StatusOK, "device", p)
		return
	}
	s.saveConfig(w, r, cfg, fp, "device", p, summary, "/devices/"+mac)
}

// checkDeviceName says what is wrong with a device's name, or "".
func checkDeviceName(name string) string {
	switch {
	case utf8.RuneCountInString(name) > maxDeviceName:
		return fmt.Sprintf("Keep the name under %d characters.", maxDeviceName+1)
	case !utf8.ValidString(name), strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return "The name contains characters that cannot be shown."
	}
	return ""
}

// deviceChange is the audit summary of a change of a device's entry, "" when nothing changed.
func deviceChange(mac string, before, after config.Device) string {
	var parts []string
	switch {
	case before.Name == after.Name:
	case after.Name == "":
		parts = append(parts, fmt.Sprintf("name %q removed", before.Name))
	case before.Name == "":
		parts = append(parts, fmt.Sprintf("named %q", after.Name))
	default:
		parts = append(parts, fmt.Sprintf("renamed from %q to %q", before.Name, after.Name))
	}
	switch {
	case before.Profile == after.Profile:
	case after.Profile == "":
		parts = append(parts, "profile override "+before.Profile+" removed: the network's profile applies")
	case before.Profile == "":
		parts = append(parts, "given the profile "+after.Profile)
	default:
		parts = append(parts, "profile changed from "+before.Profile+" to "+after.Profile)
	}
	if len(parts) == 0 {
		return ""
	}
	return "device " + mac + ": " + strings.Join(parts, "; ")
}
