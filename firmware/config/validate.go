package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	// Embedded so that timezone validation and schedules work on an image without
	// /usr/share/zoneinfo.
	_ "time/tzdata"
	"unicode"

	"github.com/schoolgate/schoolgate/firmware/category"
)

// Allowed values of the enumerated fields.
const (
	FailClosed = "closed"
	FailOpen   = "open"

	BlockNXDomain  = "nxdomain"
	BlockNull      = "null"
	BlockBlockPage = "blockpage"

	SafeSearchOff    = "off"
	SafeSearchOn     = "on"
	SafeSearchStrict = "strict"

	YouTubeOff      = "off"
	YouTubeModerate = "moderate"
	YouTubeStrict   = "strict"

	QUICInspect = "inspect"
	QUICBlock   = "block"
	QUICAllow   = "allow"

	// ActionAllow and ActionBlock are the values of exception actions, unsafe_engines and
	// no_sni.
	ActionAllow = "allow"
	ActionBlock = "block"

	ScopeProfile = "profile"
	ScopeSegment = "segment"
	ScopeDevice  = "device"

	FormatDomains = "domains"
	FormatHosts   = "hosts"
	FormatAdblock = "adblock"
	FormatUT1     = "ut1"
	FormatIPs     = "ips"
)

// ErrInvalid is matched (with errors.Is) by every *ValidationError.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is one problem with a configuration: the field's path as written in YAML
// ("profiles[1].block_categories[2]"), its line (0 when unknown, as for a Config built in
// Go) and what is wrong.
type FieldError struct {
	Field string
	Line  int
	Msg   string
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationError holds every problem found, so the operator can fix them all at once.
type ValidationError struct {
	Errors []FieldError
}

// Error renders one problem per line, in line order.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validate checks the whole configuration and returns a *ValidationError listing every
// problem, or nil. Empty values that ApplyDefaults would fill are accepted, so a Config
// built in Go validates with or without defaults applied.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.appliance()
	v.dns()
	v.listen("http.listen", c.HTTP.Listen)
	if c.HTTP.BlockPage != "" {
		v.listen("http.block_page", c.HTTP.BlockPage)
	}
	v.adminSegments()
	v.profiles()
	v.segments()
	v.devices()
	v.lists()
	v.exceptions()
	v.schedules()
	v.positive("retention.events", c.Retention.Events)
	if len(v.errs) == 0 {
		return nil
	}
	return newValidationError(v.errs)
}

type validator struct {
	c    *Config
	errs []FieldError
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: path, Line: v.c.line(path), Msg: fmt.Sprintf(format, args...)})
}

// enum accepts "" because it means the default.
func (v *validator) enum(path, val string, allowed ...string) {
	if val != "" && !slices.Contains(allowed, val) {
		v.add(path, "unknown value %q; allowed: %s", val, strings.Join(allowed, ", "))
	}
}

func (v *validator) positive(path string, d Duration) {
	if d < 0 {
		v.add(path, "duration %s must be positive", d)
	}
}

// unique reports the second and later uses of a name; empty names are reported by the
// caller.
type seen map[string]string

func (v *validator) unique(s seen, path, kind, name string) {
	if name == "" {
		return
	}
	if first, ok := s[name]; ok {
		msg := fmt.Sprintf("duplicate %s %q", kind, name)
		if l := v.c.line(first); l > 0 {
			msg += fmt.Sprintf(" (first at line %d)", l)
		} else {
			msg += fmt.Sprintf(" (first at %s)", first)
		}
		v.add(path, "%s", msg)
		return
	}
	s[name] = path
}

func (v *validator) appliance() {
	a := v.c.Appliance
	if a.Timezone != "" {
		if _, err := time.LoadLocation(a.Timezone); err != nil || a.Timezone == "Local" {
			v.add("appliance.timezone", "unknown time zone %q; want an IANA name like Europe/London", a.Timezone)
		}
	}
	v.enum("appliance.failure_mode", a.FailureMode, FailClosed, FailOpen)
	if a.WAN != "" {
		v.ifname("appliance.wan", a.WAN)
		for i, s := range v.c.Segments {
			if s.Interface == a.WAN || s.Trunk == a.WAN {
				v.add("appliance.wan", "%s is also segment %q's interface (segments[%d]); the WAN must be a port of its own", a.WAN, s.Name, i)
			}
		}
		// The packet path's kernel maps number profiles in a 64-bit mask and segments in
		// a counter slot each.
		if n := len(v.c.Profiles); n > MaxGatewayProfiles {
			v.add("appliance.wan", "the packet path supports at most %d profiles; the configuration has %d", MaxGatewayProfiles, n)
		}
		if n := len(v.c.Segments); n > MaxGatewaySegments {
			v.add("appliance.wan", "the packet path supports at most %d segments; the configuration has %d", MaxGatewaySegments, n)
		}
	}
}

// Limits of the packet path (appliance.wan): profiles and segments it can tell apart.
const (
	MaxGatewayProfiles = 64
	MaxGatewaySegments = 254
)

func (v *validator) adminSegments() {
	for i, name := range v.c.HTTP.AdminSegments {
		path := fmt.Sprintf("http.admin_segments[%d]", i)
		j := slices.IndexFunc(v.c.Segments, func(s Segment) bool { return s.Name == name })
		switch {
		case j < 0:
			v.add(path, "no segment is named %q", name)
		case v.c.Segments[j].Guest:
			v.add(path, "%q is a guest segment; guests never reach the web UI", name)
		}
	}
}

func (v *validator) dns() {
	d := v.c.DNS
	v.listen("dns.listen", d.Listen)
	if d.CacheSize < 0 {
		v.add("dns.cache_size", "must not be negative")
	}
	v.positive("dns.block_ttl", d.BlockTTL)
	if d.BlockPageIPv4.IsValid() && !d.BlockPageIPv4.Is4() {
		v.add("dns.block_page_ipv4", "%s is not an IPv4 address", d.BlockPageIPv4)
	}
	if d.BlockPageIPv6.IsValid() && (!d.BlockPageIPv6.Is6() || d.BlockPageIPv6.Is4In6()) {
		v.add("dns.block_page_ipv6", "%s is not an IPv6 address", d.BlockPageIPv6)
	}
	if !d.BlockPageIPv4.IsValid() {
		for i, p := range v.c.Profiles {
			if p.BlockResponse == BlockBlockPage {
				v.add("dns.block_page_ipv4", "is required: profile %q (profiles[%d]) answers blocked names with the block page", p.Name, i)
				break
			}
		}
	}
	if len(d.Upstreams) == 0 {
		v.add("dns.upstreams", "at least one upstream resolver is required")
	}
	for i, u := range d.Upstreams {
		v.upstream(fmt.Sprintf("dns.upstreams[%d]", i), u)
	}
}

// upstream requires an IP address, not a name: schoolgate is the network's resolver, so
// it has nothing to resolve an upstream's name with. DNS over TLS therefore needs the name
// to check the certificate against.
func (v *validator) upstream(path string, u Upstream) {
	addr, tls := strings.CutPrefix(u.Address, "tls://")
	if u.Address == "" {
		v.add(path+".address", "is required")
		return
	}
	if err := hostPort(addr, false); err != nil {
		v.add(path+".address", "%q: %v; want \"ip:port\" or \"tls://ip:port\"", u.Address, err)
	}
	switch {
	case tls && u.TLSServerName == "":
		v.add(path+".tls_server_name", "is required for DNS over TLS, to check the upstream's certificate")
	case !tls && u.TLSServerName != "":
		v.add(path+".tls_server_name", "is only used with a tls:// address")
	case tls:
		// An IP literal is checked against the certificate's IP addresses, as the big
		// public resolvers' certificates carry them.
		if _, err := netip.ParseAddr(u.TLSServerName); err != nil {
			if err := checkDomain(u.TLSServerName); err != nil {
				v.add(path+".tls_server_name", "%v", err)
			}
		}
	}
	if u.TLSCA != "" && !tls {
		v.add(path+".tls_ca", "is only used with a tls:// address")
	}
}

func (v *validator) listen(path, addr string) {
	if addr == "" {
		return
	}
	if err := hostPort(addr, true); err != nil {
		v.add(path, "%q: %v; want \"ip:port\" like 0.0.0.0:53", addr, err)
	}
}

// hostPort checks "ip:port"; anyHost allows an empty host, meaning every address.
func hostPort(s string, anyHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if host != "" || !anyHost {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return fmt.Errorf("host %q is not an IP address", host)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1-65535", port)
	}
	return nil
}

func (v *validator) profileNames() []string {
	var out []string
	for _, p := range v.c.Profiles {
		if p.Name != "" {
			out = append(out, p.Name)
		}
	}
	return out
}

func (v *validator) profileRef(path, name string, required bool) {
	if name == "" {
		if required {
			v.add(path, "is required")
		}
		return
	}
	if names := v.profileNames(); !slices.Contains(names, name) {
		v.add(path, "unknown profile %q; known: %s", name, listOrNone(names))
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

func (v *validator) profiles() {
	names := seen{}
	for i, p := range v.c.Profiles {
		path := fmt.Sprintf("profiles[%d]", i)
		if p.Name == "" {
			v.add(path+".name", "is required")
		}
		v.unique(names, path+".name", "profile", p.Name)
		v.enum(path+".block_response", p.BlockResponse, BlockNXDomain, BlockNull, BlockBlockPage)
		v.enum(path+".safe_search", p.SafeSearch, SafeSearchOff, SafeSearchOn, SafeSearchStrict)
		v.enum(path+".unsafe_engines", p.UnsafeEngines, ActionAllow, ActionBlock)
		v.enum(path+".youtube", p.YouTube, YouTubeOff, YouTubeModerate, YouTubeStrict)
		v.enum(path+".quic", p.QUIC, QUICInspect, QUICBlock, QUICAllow)
		v.enum(path+".no_sni", p.NoSNI, ActionBlock, ActionAllow)
		v.categories(path+".block_categories", p.BlockCategories)
		for j, sb := range p.ScheduledBlocks {
			sp := fmt.Sprintf("%s.scheduled_blocks[%d]", path, j)
			if !slices.ContainsFunc(v.c.Schedules, func(s Schedule) bool { return s.Name == sb.Schedule }) {
				var names []string
				for _, s := range v.c.Schedules {
					names = append(names, s.Name)
				}
				v.add(sp+".schedule", "unknown schedule %q; schedules: %s", sb.Schedule, listOrNone(names))
			}
			v.categories(sp+".categories", sb.Categories)
		}
		v.domains(path+".allow", p.Allow)
		v.domains(path+".block", p.Block)
		for j, port := range p.Bypass.VPNPorts {
			if err := checkPort(port); err != nil {
				v.add(fmt.Sprintf("%s.bypass.vpn_ports[%d]", path, j), "%v", err)
			}
		}
		for j, name := range p.Bypass.AddressLists {
			lp := fmt.Sprintf("%s.bypass.address_lists[%d]", path, j)
			idx := slices.IndexFunc(v.c.Lists, func(l List) bool { return l.Name == name })
			switch {
			case idx < 0:
				var ips []string
				for _, l := range v.c.Lists {
					if l.Format == FormatIPs {
						ips = append(ips, l.Name)
					}
				}
				v.add(lp, "unknown list %q; lists of format ips: %s", name, listOrNone(ips))
			case v.c.Lists[idx].Format != FormatIPs:
				v.add(lp, "list %q has format %q; address lists need format ips", name, v.c.Lists[idx].Format)
			}
		}
	}
}

// categories checks a list of category IDs: known, each once.
func (v *validator) categories(path string, ids []category.ID) {
	cats := seen{}
	for j, id := range ids {
		cp := fmt.Sprintf("%s[%d]", path, j)
		if !category.Valid(id) {
			v.add(cp, "unknown category %q; known: %s", id, strings.Join(category.IDs(), ", "))
			continue
		}
		v.unique(cats, cp, "category", string(id))
	}
}

func (v *validator) domains(path string, ds []string) {
	entries := seen{}
	for j, d := range ds {
		p := fmt.Sprintf("%s[%d]", path, j)
		if err := checkDomain(d); err != nil {
			v.add(p, "%v", err)
			continue
		}
		v.unique(entries, p, "entry", canonicalDomain(d))
	}
}

// checkDomain checks syntax only; non-ASCII labels are allowed because the lists package
// converts them to punycode.
func checkDomain(d string) error {
	s := canonicalDomain(d)
	switch {
	case s == "":
		return errors.New("empty domain")
	case strings.Contains(s, "*"):
		return fmt.Errorf("%q: no wildcards needed, a domain covers its subdomains", d)
	case strings.Contains(s, "://") || strings.Contains(s, "/"):
		return fmt.Errorf("%q is a URL, not a domain", d)
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return fmt.Errorf("%q is an IP address, not a domain; use a list of format ips", d)
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", d)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return fmt.Errorf("%q has an empty label", d)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q has a label longer than 63 characters", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q has a label starting or ending with a hyphen", d)
		}
		for _, r := range label {
			if r != '-' && r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return fmt.Errorf("%q contains %q, not allowed in a domain", d, r)
			}
		}
	}
	return nil
}

func checkPort(s string) error {
	_, _, err := ParsePort(s)
	return err
}

// ParsePort reads a bypass port, "udp/51820" or "tcp/1194".
func ParsePort(s string) (proto string, port uint16, err error) {
	proto, num, ok := strings.Cut(s, "/")
	if !ok || (proto != "udp" && proto != "tcp") {
		return "", 0, fmt.Errorf("%q: want \"udp/PORT\" or \"tcp/PORT\"", s)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 1-65535", s)
	}
	return proto, uint16(n), nil
}

func (v *validator) segments() {
	names := seen{}
	places := seen{}
	type owned struct {
		p    netip.Prefix
		path string
		seg  string
	}
	var all []owned
	guestProfiles := map[string]int{}
	for i, s := range v.c.Segments {
		path := fmt.Sprintf("segments[%d]", i)
		if s.Name == "" {
			v.add(path+".name", "is required")
		}
		v.unique(names, path+".name", "segment", s.Name)
		v.profileRef(path+".profile", s.Profile, true)
		switch {
		case s.VLAN != 0 && (s.VLAN < 1 || s.VLAN > 4094):
			v.add(path+".vlan", "%d is not a VLAN ID 1-4094", s.VLAN)
		case s.VLAN != 0 && s.Interface != "":
			v.add(path+".interface", "vlan and interface are exclusive: a segment is either a VLAN on a trunk or a plain interface")
		case s.VLAN != 0 && s.Trunk == "":
			v.add(path+".vlan", "needs trunk, the interface carrying the VLAN")
		case s.VLAN == 0 && s.Trunk != "":
			v.add(path+".trunk", "needs vlan")
		}
		if s.VLAN != 0 && s.Trunk != "" {
			v.ifname(path+".trunk", s.Trunk)
			v.unique(places, path+".vlan", "location", fmt.Sprintf("vlan %d on %s", s.VLAN, s.Trunk))
		}
		if s.Interface != "" {
			v.ifname(path+".interface", s.Interface)
			v.unique(places, path+".interface", "location", "interface "+s.Interface)
		}
		if len(s.Subnets) == 0 {
			v.add(path+".subnets", "at least one subnet is required: clients are matched to segments by address")
		}
		for j, p := range s.Subnets {
			sp := fmt.Sprintf("%s.subnets[%d]", path, j)
			switch {
			case !p.IsValid():
				v.add(sp, "is not a valid prefix")
				continue
			case p != p.Masked():
				v.add(sp, "%s has host bits set; did you mean %s?", p, p.Masked())
				continue
			}
			for _, o := range all {
				if o.p.Overlaps(p) {
					if o.seg == s.Name {
						v.add(sp, "%s overlaps %s of the same segment", p, o.p)
					} else {
						v.add(sp, "%s overlaps %s of segment %q", p, o.p, o.seg)
					}
				}
			}
			all = append(all, owned{p, sp, s.Name})
		}
		for j, g := range s.Gateway {
			gp := fmt.Sprintf("%s.gateway[%d]", path, j)
			if !g.IsValid() {
				v.add(gp, "is not a valid address")
				continue
			}
			if !slices.ContainsFunc(s.Subnets, func(p netip.Prefix) bool { return p.IsValid() && p.Contains(g) }) {
				v.add(gp, "%s is not inside any subnet of segment %q", g, s.Name)
			}
		}
		if s.Guest && s.Profile != "" {
			guestProfiles[s.Profile] = i
		}
	}
	// A guest profile shared with a school segment would make a change meant for visitors
	// silently loosen (or tighten) filtering for pupils or staff too.
	for _, s := range v.c.Segments {
		if g, ok := guestProfiles[s.Profile]; ok && !s.Guest {
			v.add(fmt.Sprintf("segments[%d].profile", g), "guest segment %q shares profile %q with non-guest segment %q; give guests their own profile",
				v.c.Segments[g].Name, s.Profile, s.Name)
			delete(guestProfiles, s.Profile)
		}
	}
}

func (v *validator) ifname(path, name string) {
	if len(name) > 15 || strings.ContainsAny(name, "/ \t:") {
		v.add(path, "%q is not a valid interface name", name)
	}
}

func (v *validator) devices() {
	macs := seen{}
	for i, d := range v.c.Devices {
		path := fmt.Sprintf("devices[%d]", i)
		mac := canonicalMAC(d.MAC)
		switch {
		case d.MAC == "":
			v.add(path+".mac", "is required")
		case !validMAC(mac):
			v.add(path+".mac", "%q is not a MAC address like aa:bb:cc:dd:ee:ff", d.MAC)
		default:
			v.unique(macs, path+".mac", "device", mac)
		}
		v.profileRef(path+".profile", d.Profile, false)
	}
}

func validMAC(s string) bool {
	hw, err := net.ParseMAC(s)
	return err == nil && len(hw) == 6
}

func (v *validator) lists() {
	names := seen{}
	mappings := category.Mappings()
	formats := []string{FormatDomains, FormatHosts, FormatAdblock, FormatUT1, FormatIPs}
	for i, l := range v.c.Lists {
		path := fmt.Sprintf("lists[%d]", i)
		if l.Name == "" {
			v.add(path+".name", "is required")
		}
		v.unique(names, path+".name", "list", l.Name)
		switch {
		case l.URL == "" && l.File == "":
			v.add(path, "needs url or file")
		case l.URL != "" && l.File != "":
			v.add(path+".file", "url and file are exclusive")
		case l.URL != "":
			u, err := url.Parse(l.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add(path+".url", "%q is not an http or https URL", l.URL)
			}
		}
		switch {
		case l.Format == "":
			v.add(path+".format", "is required; allowed: %s", strings.Join(formats, ", "))
		case !slices.Contains(formats, l.Format):
			v.add(path+".format", "unknown value %q; allowed: %s", l.Format, strings.Join(formats, ", "))
		case l.Format == FormatUT1:
			if l.Mapping == "" && len(l.Categories) == 0 {
				v.add(path, "a ut1 list needs mapping or categories to give its entries categories")
			}
		case l.Format != FormatIPs && !l.Protected && l.Category == "":
			v.add(path+".category", "is required for a %s list that is not protected", l.Format)
		}
		if l.Category != "" && !category.Valid(l.Category) {
			v.add(path+".category", "unknown category %q; known: %s", l.Category, strings.Join(category.IDs(), ", "))
		}
		if l.Format != FormatUT1 && l.Format != "" {
			if l.Mapping != "" {
				v.add(path+".mapping", "is only used by format ut1")
			}
			if len(l.Categories) > 0 {
				v.add(path+".categories", "is only used by format ut1")
			}
		}
		if l.Mapping != "" {
			if _, ok := mappings[l.Mapping]; !ok {
				known := make([]string, 0, len(mappings))
				for k := range mappings {
					known = append(known, k)
				}
				slices.Sort(known)
				v.add(path+".mapping", "unknown mapping %q; known: %s", l.Mapping, strings.Join(known, ", "))
			}
		}
		keys := make([]string, 0, len(l.Categories))
		for k := range l.Categories {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			// An empty value means "known, deliberately ignored", as in the built-in mappings.
			if id := l.Categories[k]; id != "" && !category.Valid(id) {
				v.add(path+".categories."+k, "unknown category %q; known: %s", id, strings.Join(category.IDs(), ", "))
			}
		}
		v.positive(path+".update_interval", l.UpdateInterval)
		if l.MaxSize < 0 {
			v.add(path+".max_size", "must be positive")
		}
	}
}

func (v *validator) exceptions() {
	ids := seen{}
	for i, e := range v.c.Exceptions {
		path := fmt.Sprintf("exceptions[%d]", i)
		if e.ID == "" {
			v.add(path+".id", "is required")
		}
		v.unique(ids, path+".id", "exception", e.ID)
		switch e.Scope {
		case "":
			v.add(path+".scope", "is required; allowed: profile, segment, device")
		case ScopeProfile:
			v.profileRef(path+".target", e.Target, true)
		case ScopeSegment:
			var segs []string
			for _, s := range v.c.Segments {
				segs = append(segs, s.Name)
			}
			if e.Target == "" {
				v.add(path+".target", "is required")
			} else if !slices.Contains(segs, e.Target) {
				v.add(path+".target", "unknown segment %q; known: %s", e.Target, listOrNone(segs))
			}
		case ScopeDevice:
			if !validMAC(e.Target) {
				v.add(path+".target", "%q is not a MAC address like aa:bb:cc:dd:ee:ff", e.Target)
			}
		default:
			v.add(path+".scope", "unknown value %q; allowed: profile, segment, device", e.Scope)
		}
		if err := checkDomain(e.Domain); err != nil {
			v.add(path+".domain", "%v", err)
		}
		switch e.Action {
		case ActionAllow, ActionBlock:
		case "":
			v.add(path+".action", "is required; allowed: allow, block")
		default:
			v.add(path+".action", "unknown value %q; allowed: allow, block", e.Action)
		}
		if strings.TrimSpace(e.Reason) == "" {
			v.add(path+".reason", "is required: every exception records why it was made")
		}
		switch {
		case e.Created.IsZero():
			v.add(path+".created", "is required")
		case e.Expires.IsZero():
		case !e.Expires.After(e.Created):
			v.add(path+".expires", "%s is not after created %s", e.Expires.Format(time.RFC3339), e.Created.Format(time.RFC3339))
		}
		if e.Expires.IsZero() {
			v.add(path+".expires", "is required: exceptions are time-limited")
		}
	}
}

// Weekdays are the names schedules use for days, Sunday first as in time.Weekday.
var Weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseClock reads "HH:MM" (00:00 to 24:00) as minutes after midnight.
func ParseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not a time like 08:30", s)
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time like 08:30", s)
	}
	return h*60 + m, nil
}

// ParseDate reads "2026-09-03".
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date like 2026-09-03", s)
	}
	return t, nil
}

func (v *validator) schedules() {
	names := seen{}
	for i, sc := range v.c.Schedules {
		path := fmt.Sprintf("schedules[%d]", i)
		if sc.Name == "" {
			v.add(path+".name", "is required")
		}
		v.unique(names, path+".name", "schedule", sc.Name)
		days := seen{}
		for j, d := range sc.Days {
			dp := fmt.Sprintf("%s.days[%d]", path, j)
			if !slices.Contains(Weekdays, d) {
				v.add(dp, "unknown day %q; days: %s", d, strings.Join(Weekdays, ", "))
				continue
			}
			v.unique(days, dp, "day", d)
		}
		from, to := 0, 24*60
		var err error
		if sc.From != "" {
			if from, err = ParseClock(sc.From); err != nil {
				v.add(path+".from", "%v", err)
			}
		}
		if sc.To != "" {
			if to, err = ParseClock(sc.To); err != nil {
				v.add(path+".to", "%v", err)
			}
		}
		if err == nil && from == to && sc.From != "" {
			v.add(path+".to", "is the same as from: the schedule would never be on")
		}
		for _, r := range []struct {
			field  string
			ranges []DateRange
		}{{"terms", sc.Terms}, {"closed", sc.Closed}} {
			for j, dr := range r.ranges {
				rp := fmt.Sprintf("%s.%s[%d]", path, r.field, j)
				f, err := ParseDate(dr.From)
				if err != nil {
					v.add(rp+".from", "%v", err)
					continue
				}
				if dr.To != "" {
					t, err := ParseDate(dr.To)
					if err != nil {
						v.add(rp+".to", "%v", err)
					} else if t.Before(f) {
						v.add(rp+".to", "%s is before from %s", dr.To, dr.From)
					}
				}
			}
		}
	}
}
