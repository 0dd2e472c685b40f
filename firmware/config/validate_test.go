package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/category"
)

var update = flag.Bool("update", false, "rewrite golden files and the generated parts of docs/configuration.md")

// base is a minimal valid configuration; cases replace parts of it.
const (
	baseDNS = `dns:
  upstreams:
    - address: 192.0.2.53:53
`
	baseSegments = `segments:
  - name: s
    subnets: [192.0.2.0/24]
    profile: p
`
	baseProfiles = `profiles:
  - name: p
`
)

// markedLine returns the 1-based line holding the "#<" marker.
func markedLine(t *testing.T, doc string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, "#<") {
			return i + 1
		}
	}
	t.Fatalf("no #< marker in document:\n%s", doc)
	return 0
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		field string
		msg   string // substring of the message
	}{
		{"unknown top-level field", baseDNS + baseSegments + baseProfiles + "colour: blue #<\n", "colour", `unknown field "colour"`},
		{"unknown nested field", baseDNS + baseSegments + "profiles:\n  - name: p\n    blok: [x.com] #<\n", "profiles[0].blok", "known: name, block_categories"},
		{"bad duration", "dns:\n  upstreams:\n    - address: 192.0.2.53:53\n  block_ttl: 60 #<\n" + baseSegments + baseProfiles, "dns.block_ttl", "needs a unit"},
		{"bad address", "dns:\n  upstreams:\n    - address: 192.0.2.53:53\n  block_page_ipv4: 10.0.0.300 #<\n" + baseSegments + baseProfiles, "dns.block_page_ipv4", "is not an IP address"},
		{"bad prefix", baseDNS + "segments:\n  - name: s\n    subnets:\n      - 192.0.2.0/33 #<\n    profile: p\n" + baseProfiles, "segments[0].subnets[0]", "not an address prefix"},
		{"wrong type", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: f\n    format: domains\n    category: adult\n    max_size: lots #<\n", "lists[0].max_size", "cannot unmarshal"},
		{"bad timezone", "appliance:\n  timezone: Europe/Londres #<\n" + baseDNS + baseSegments + baseProfiles, "appliance.timezone", "unknown time zone"},
		{"failure mode", "appliance:\n  failure_mode: ajar #<\n" + baseDNS + baseSegments + baseProfiles, "appliance.failure_mode", `unknown value "ajar"; allowed: closed, open`},
		{"wan is a segment's port", "appliance:\n  wan: eth1 #<\n" + baseDNS + "segments:\n  - name: s\n    interface: eth1\n    subnets: [192.0.2.0/24]\n    profile: p\n" + baseProfiles, "appliance.wan", "also segment \"s\"'s interface"},
		{"too many profiles for the packet path", "appliance:\n  wan: eth9 #<\n" + baseDNS + "segments:\n  - name: s\n    interface: eth1\n    subnets: [192.0.2.0/24]\n    profile: p0\n" + "profiles:\n  - name: p0\n  - name: p1\n  - name: p2\n  - name: p3\n  - name: p4\n  - name: p5\n  - name: p6\n  - name: p7\n  - name: p8\n  - name: p9\n  - name: p10\n  - name: p11\n  - name: p12\n  - name: p13\n  - name: p14\n  - name: p15\n  - name: p16\n  - name: p17\n  - name: p18\n  - name: p19\n  - name: p20\n  - name: p21\n  - name: p22\n  - name: p23\n  - name: p24\n  - name: p25\n  - name: p26\n  - name: p27\n  - name: p28\n  - name: p29\n  - name: p30\n  - name: p31\n  - name: p32\n  - name: p33\n  - name: p34\n  - name: p35\n  - name: p36\n  - name: p37\n  - name: p38\n  - name: p39\n  - name: p40\n  - name: p41\n  - name: p42\n  - name: p43\n  - name: p44\n  - name: p45\n  - name: p46\n  - name: p47\n  - name: p48\n  - name: p49\n  - name: p50\n  - name: p51\n  - name: p52\n  - name: p53\n  - name: p54\n  - name: p55\n  - name: p56\n  - name: p57\n  - name: p58\n  - name: p59\n  - name: p60\n  - name: p61\n  - name: p62\n  - name: p63\n  - name: p64\n", "appliance.wan", "at most 64 profiles"},
		{"schedule day", baseDNS + baseSegments + baseProfiles + "schedules:\n  - name: school\n    days: [mon, fry] #<\n", "schedules[0].days[1]", `unknown day "fry"`},
		{"schedule time", baseDNS + baseSegments + baseProfiles + "schedules:\n  - name: school\n    from: \"8:30\" #<\n", "schedules[0].from", "not a time like 08:30"},
		{"schedule 25h", baseDNS + baseSegments + baseProfiles + "schedules:\n  - name: school\n    to: \"25:00\" #<\n", "schedules[0].to", "not a time like 08:30"},
		{"schedule never on", baseDNS + baseSegments + baseProfiles + "schedules:\n  - name: school\n    from: \"09:00\"\n    to: \"09:00\" #<\n", "schedules[0].to", "never be on"},
		{"term backwards", baseDNS + baseSegments + baseProfiles + "schedules:\n  - name: school\n    terms:\n      - from: 2026-12-18\n        to: 2026-09-03 #<\n", "schedules[0].terms[0].to", "before from"},
		{"closed date", baseDNS + baseSegments + baseProfiles + "schedules:\n  - name: school\n    closed:\n      - from: 2026-13-01 #<\n", "schedules[0].closed[0].from", "not a date"},
		{"scheduled block unknown schedule", baseDNS + baseSegments + "profiles:\n  - name: p\n    scheduled_blocks:\n      - schedule: lessons #<\n        categories: [social]\n", "profiles[0].scheduled_blocks[0].schedule", `unknown schedule "lessons"; schedules: (none)`},
		{"scheduled block category", baseDNS + baseSegments + "profiles:\n  - name: p\n    scheduled_blocks:\n      - schedule: school\n        categories:\n          - sociall #<\n" + "schedules:\n  - name: school\n", "profiles[0].scheduled_blocks[0].categories[0]", `unknown category "sociall"`},
		{"admin segment unknown", baseDNS + baseSegments + baseProfiles + "http:\n  admin_segments: [office] #<\n", "http.admin_segments[0]", `no segment is named "office"`},
		{"admin segment guest", baseDNS + "segments:\n  - name: s\n    subnets: [192.0.2.0/24]\n    profile: p\n    guest: true\n" + baseProfiles + "http:\n  admin_segments: [s] #<\n", "http.admin_segments[0]", "guest segment"},
		{"dns listen", "dns:\n  listen: localhost:53 #<\n  upstreams:\n    - address: 192.0.2.53:53\n" + baseSegments + baseProfiles, "dns.listen", "not an IP address"},
		{"dns listen port", "dns:\n  listen: 0.0.0.0:99999 #<\n  upstreams:\n    - address: 192.0.2.53:53\n" + baseSegments + baseProfiles, "dns.listen", "1-65535"},
		{"http listen", baseDNS + "http:\n  listen: 8080 #<\n" + baseSegments + baseProfiles, "http.listen", "not host:port"},
		{"no upstream", "dns: #<\n  listen: 0.0.0.0:53\n" + baseSegments + baseProfiles, "dns.upstreams", "at least one upstream"},
		{"upstream name", "dns:\n  upstreams:\n    - address: dns.google:53 #<\n" + baseSegments + baseProfiles, "dns.upstreams[0].address", "not an IP address"},
		{"dot needs name", "dns:\n  upstreams:\n    - address: tls://1.1.1.1:853 #<\n" + baseSegments + baseProfiles, "dns.upstreams[0].tls_server_name", "required for DNS over TLS"},
		{"name without tls", "dns:\n  upstreams:\n    - address: 1.1.1.1:53\n      tls_server_name: one.one.one.one #<\n" + baseSegments + baseProfiles, "dns.upstreams[0].tls_server_name", "only used with a tls://"},
		{"negative cache", "dns:\n  upstreams:\n    - address: 1.1.1.1:53\n  cache_size: -1 #<\n" + baseSegments + baseProfiles, "dns.cache_size", "negative"},
		{"negative ttl", "dns:\n  upstreams:\n    - address: 1.1.1.1:53\n  block_ttl: -5s #<\n" + baseSegments + baseProfiles, "dns.block_ttl", "must be positive"},
		{"v6 block page in v4 field", "dns:\n  upstreams:\n    - address: 1.1.1.1:53\n  block_page_ipv4: \"::1\" #<\n" + baseSegments + baseProfiles, "dns.block_page_ipv4", "not an IPv4 address"},
		{"block page needed", "dns: #<\n  upstreams:\n    - address: 192.0.2.53:53\n" + baseSegments + "profiles:\n  - name: p\n    block_response: blockpage\n", "dns.block_page_ipv4", "is required"},
		{"segment name empty", baseDNS + "segments:\n  - subnets: [192.0.2.0/24] #<\n    profile: p\n" + baseProfiles, "segments[0].name", "is required"},
		{"segment name duplicate", baseDNS + "segments:\n  - name: s\n    subnets: [192.0.2.0/24]\n    profile: p\n  - name: s #<\n    subnets: [198.51.100.0/24]\n    profile: p\n" + baseProfiles, "segments[1].name", `duplicate segment "s" (first at line 5)`},
		{"segment profile unknown", baseDNS + "segments:\n  - name: s\n    subnets: [192.0.2.0/24]\n    profile: teachers #<\n" + baseProfiles, "segments[0].profile", `unknown profile "teachers"; known: p`},
		{"segment profile missing", baseDNS + "segments:\n  - name: s #<\n    subnets: [192.0.2.0/24]\n" + baseProfiles, "segments[0].profile", "is required"},
		{"vlan range", baseDNS + "segments:\n  - name: s\n    trunk: eth1\n    vlan: 4095 #<\n    subnets: [192.0.2.0/24]\n    profile: p\n" + baseProfiles, "segments[0].vlan", "not a VLAN ID 1-4094"},
		{"vlan needs trunk", baseDNS + "segments:\n  - name: s\n    vlan: 20 #<\n    subnets: [192.0.2.0/24]\n    profile: p\n" + baseProfiles, "segments[0].vlan", "needs trunk"},
		{"trunk needs vlan", baseDNS + "segments:\n  - name: s\n    trunk: eth1 #<\n    subnets: [192.0.2.0/24]\n    profile: p\n" + baseProfiles, "segments[0].trunk", "needs vlan"},
		{"vlan and interface", baseDNS + "segments:\n  - name: s\n    trunk: eth1\n    vlan: 20\n    interface: eth2 #<\n    subnets: [192.0.2.0/24]\n    profile: p\n" + baseProfiles, "segments[0].interface", "exclusive"},
		{"same vlan twice", baseDNS + "segments:\n  - name: a\n    trunk: eth1\n    vlan: 20\n    subnets: [192.0.2.0/24]\n    profile: p\n  - name: b\n    trunk: eth1\n    vlan: 20 #<\n    subnets: [198.51.100.0/24]\n    profile: p\n" + baseProfiles, "segments[1].vlan", `duplicate location "vlan 20 on eth1"`},
		{"no subnets", baseDNS + "segments:\n  - name: s #<\n    profile: p\n" + baseProfiles, "segments[0].subnets", "at least one subnet"},
		{"host bits", baseDNS + "segments:\n  - name: s\n    subnets:\n      - 192.0.2.1/24 #<\n    profile: p\n" + baseProfiles, "segments[0].subnets[0]", "did you mean 192.0.2.0/24"},
		{"overlap", baseDNS + "segments:\n  - name: a\n    subnets: [10.0.0.0/8]\n    profile: p\n  - name: b\n    subnets:\n      - 10.20.0.0/16 #<\n    profile: p\n" + baseProfiles, "segments[1].subnets[0]", `overlaps 10.0.0.0/8 of segment "a"`},
		{"gateway outside", baseDNS + "segments:\n  - name: s\n    subnets: [192.0.2.0/24]\n    gateway:\n      - 198.51.100.1 #<\n    profile: p\n" + baseProfiles, "segments[0].gateway[0]", "not inside any subnet"},
		{"guest shares profile", baseDNS + "segments:\n  - name: s\n    subnets: [192.0.2.0/24]\n    profile: p\n  - name: g\n    subnets: [198.51.100.0/24]\n    profile: p #<\n    guest: true\n" + baseProfiles, "segments[1].profile", "give guests their own profile"},
		{"device mac", baseDNS + baseSegments + baseProfiles + "devices:\n  - mac: 00:11:22:33:44 #<\n", "devices[0].mac", "not a MAC address"},
		{"device duplicate", baseDNS + baseSegments + baseProfiles + "devices:\n  - mac: 00:11:22:33:44:55\n  - mac: 00-11-22-33-44-55 #<\n", "devices[1].mac", `duplicate device "00:11:22:33:44:55"`},
		{"device profile", baseDNS + baseSegments + baseProfiles + "devices:\n  - mac: 00:11:22:33:44:55\n    profile: nobody #<\n", "devices[0].profile", `unknown profile "nobody"`},
		{"profile name empty", baseDNS + baseSegments + baseProfiles + "  - safe_search: on #<\n", "profiles[1].name", "is required"},
		{"profile duplicate", baseDNS + baseSegments + baseProfiles + "  - name: p #<\n", "profiles[1].name", `duplicate profile "p"`},
		{"block_response", baseDNS + baseSegments + baseProfiles + "    block_response: refused #<\n", "profiles[0].block_response", "allowed: nxdomain, null, blockpage"},
		{"safe_search", baseDNS + baseSegments + baseProfiles + "    safe_search: maybe #<\n", "profiles[0].safe_search", "allowed: off, on, strict"},
		{"unsafe_engines", baseDNS + baseSegments + baseProfiles + "    unsafe_engines: warn #<\n", "profiles[0].unsafe_engines", "allowed: allow, block"},
		{"youtube", baseDNS + baseSegments + baseProfiles + "    youtube: kids #<\n", "profiles[0].youtube", "allowed: off, moderate, strict"},
		{"quic", baseDNS + baseSegments + baseProfiles + "    quic: drop #<\n", "profiles[0].quic", "allowed: inspect, block, allow"},
		{"no_sni", baseDNS + baseSegments + baseProfiles + "    no_sni: inspect #<\n", "profiles[0].no_sni", "allowed: block, allow"},
		{"unknown category", baseDNS + baseSegments + baseProfiles + "    block_categories:\n      - adult\n      - porn #<\n", "profiles[0].block_categories[1]", `unknown category "porn"; known: adult, gambling,`},
		{"duplicate category", baseDNS + baseSegments + baseProfiles + "    block_categories: [adult, gambling,\n      adult] #<\n", "profiles[0].block_categories[2]", `duplicate category "adult"`},
		{"allow domain", baseDNS + baseSegments + baseProfiles + "    allow:\n      - https://bbc.co.uk/ #<\n", "profiles[0].allow[0]", "is a URL"},
		{"block wildcard", baseDNS + baseSegments + baseProfiles + "    block:\n      - \"*.tiktok.com\" #<\n", "profiles[0].block[0]", "no wildcards"},
		{"block ip", baseDNS + baseSegments + baseProfiles + "    block:\n      - 8.8.8.8 #<\n", "profiles[0].block[0]", "is an IP address"},
		{"block label", baseDNS + baseSegments + baseProfiles + "    block:\n      - -bad.example #<\n", "profiles[0].block[0]", "hyphen"},
		{"vpn port", baseDNS + baseSegments + baseProfiles + "    bypass:\n      vpn_ports:\n        - udp/70000 #<\n", "profiles[0].bypass.vpn_ports[0]", "1-65535"},
		{"vpn proto", baseDNS + baseSegments + baseProfiles + "    bypass:\n      vpn_ports:\n        - icmp/1 #<\n", "profiles[0].bypass.vpn_ports[0]", `want "udp/PORT"`},
		{"address list unknown", baseDNS + baseSegments + baseProfiles + "    bypass:\n      address_lists:\n        - tor #<\n", "profiles[0].bypass.address_lists[0]", `unknown list "tor"`},
		{"address list format", baseDNS + baseSegments + baseProfiles + "    bypass:\n      address_lists:\n        - l #<\nlists:\n  - name: l\n    file: l.txt\n    format: domains\n    category: adult\n", "profiles[0].bypass.address_lists[0]", "need format ips"},
		{"list name", baseDNS + baseSegments + baseProfiles + "lists:\n  - file: l.txt #<\n    format: ips\n", "lists[0].name", "is required"},
		{"list duplicate", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: l.txt\n    format: ips\n  - name: l #<\n    file: m.txt\n    format: ips\n", "lists[1].name", `duplicate list "l"`},
		{"list source missing", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l #<\n    format: ips\n", "lists[0]", "needs url or file"},
		{"list url and file", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    url: https://example.com/l.txt\n    file: l.txt #<\n    format: ips\n", "lists[0].file", "exclusive"},
		{"list url scheme", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    url: ftp://example.com/l.txt #<\n    format: ips\n", "lists[0].url", "not an http or https URL"},
		{"list format", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: l.txt\n    format: csv #<\n", "lists[0].format", `unknown value "csv"`},
		{"list format missing", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l #<\n    file: l.txt\n", "lists[0].format", "is required"},
		{"ut1 mapping", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l #<\n    file: l.tar.gz\n    format: ut1\n", "lists[0]", "needs mapping or categories"},
		{"category needed", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l #<\n    file: l.txt\n    format: hosts\n", "lists[0].category", "is required for a hosts list"},
		{"list category", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: l.txt\n    format: domains\n    category: smut #<\n", "lists[0].category", `unknown category "smut"`},
		{"mapping unknown", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: l.tar.gz\n    format: ut1\n    mapping: shallalist #<\n", "lists[0].mapping", `unknown mapping "shallalist"; known: ut1`},
		{"mapping not ut1", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: l.txt\n    format: domains\n    category: adult\n    mapping: ut1 #<\n", "lists[0].mapping", "only used by format ut1"},
		{"categories value", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    file: l.tar.gz\n    format: ut1\n    categories:\n      forums: talk #<\n", "lists[0].categories.forums", `unknown category "talk"`},
		{"update interval", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    url: https://example.com/l\n    format: ips\n    update_interval: -1h #<\n", "lists[0].update_interval", "must be positive"},
		{"max size", baseDNS + baseSegments + baseProfiles + "lists:\n  - name: l\n    url: https://example.com/l\n    format: ips\n    max_size: -1 #<\n", "lists[0].max_size", "must be positive"},
		{"exception id", baseDNS + baseSegments + baseProfiles + exc("", "profile", "p", "a.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 0), "exceptions[0].id", "is required"},
		{"exception duplicate", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", -1) + strings.TrimPrefix(exc("e", "profile", "p", "b.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 0), "exceptions:\n"), "exceptions[1].id", `duplicate exception "e"`},
		{"exception scope", baseDNS + baseSegments + baseProfiles + exc("e", "school", "p", "a.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 1), "exceptions[0].scope", `unknown value "school"`},
		{"exception profile target", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "q", "a.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 2), "exceptions[0].target", `unknown profile "q"`},
		{"exception segment target", baseDNS + baseSegments + baseProfiles + exc("e", "segment", "q", "a.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 2), "exceptions[0].target", `unknown segment "q"; known: s`},
		{"exception device target", baseDNS + baseSegments + baseProfiles + exc("e", "device", "laptop", "a.com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 2), "exceptions[0].target", "not a MAC address"},
		{"exception domain", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a..com", "allow", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 3), "exceptions[0].domain", "empty label"},
		{"exception action", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a.com", "permit", "r", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 4), "exceptions[0].action", `unknown value "permit"; allowed: allow, block`},
		{"exception reason", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a.com", "allow", "", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 0), "exceptions[0].reason", "every exception records why"},
		{"exception expiry order", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a.com", "allow", "r", "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z", 7), "exceptions[0].expires", "is not after created"},
		{"exception expiry missing", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a.com", "allow", "r", "2026-02-01T00:00:00Z", "", 0), "exceptions[0].expires", "time-limited"},
		{"exception bad time", baseDNS + baseSegments + baseProfiles + exc("e", "profile", "p", "a.com", "allow", "r", "next tuesday", "2026-03-01T00:00:00Z", 6), "exceptions[0].created", `"next tuesday" is not a time like 2026-03-01T08:30:00Z`},
		{"retention", baseDNS + baseSegments + baseProfiles + "retention:\n  events: -1d #<\n", "retention.events", "must be positive"},
		{"yaml syntax", baseDNS + baseSegments + "profiles:\n  - name: p\n    safe_search: on: off #<\n", "", "yaml syntax: mapping values are not allowed"},
		{"duplicate key", baseDNS + baseSegments + "profiles:\n  - name: p\n    youtube: strict\n    youtube: off #<\n", "profiles[0].youtube", `mapping key "youtube" already defined at line 10`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := markedLine(t, tt.doc)
			_, err := Load([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Load succeeded, want error at line %d %s", line, tt.field)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			for _, fe := range ve.Errors {
				if fe.Field == tt.field && fe.Line == line && strings.Contains(fe.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("got:\n%v\nwant an error at line %d, field %q, containing %q", err, line, tt.field, tt.msg)
		})
	}
}

// exc writes an exceptions section with one entry; the #< marker goes on line mark of the
// entry (0 = id, 1 = scope, ..., 7 = expires), -1 for none. Empty values are left out.
func exc(id, scope, target, domain, action, reason, created, expires string, mark int) string {
	keys := []string{"id", "scope", "target", "domain", "action", "reason", "created", "expires"}
	vals := []string{id, scope, target, domain, action, reason, created, expires}
	var b strings.Builder
	b.WriteString("exceptions:\n")
	first := true
	for i, k := range keys {
		if vals[i] == "" && !(i == mark) {
			continue
		}
		if first {
			b.WriteString("  - ")
			first = false
		} else {
			b.WriteString("    ")
		}
		b.WriteString(k + ": " + vals[i])
		if i == mark {
			b.WriteString(" #<")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestValidateGoBuiltHasNoLines(t *testing.T) {
	c := &Config{
		DNS:      DNS{Upstreams: []Upstream{{Address: "192.0.2.1:53"}}},
		Profiles: []Profile{{Name: "p", BlockCategories: []category.ID{"porn"}}},
	}
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate() = %v, want *ValidationError", err)
	}
	got := err.Error()
	want := `profiles[0].block_categories[0]: unknown category "porn"; known: ` + strings.Join(category.IDs(), ", ")
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if ve.Errors[0].Line != 0 {
		t.Errorf("got Line %d, want 0", ve.Errors[0].Line)
	}
}

func TestValidateAcceptsUnsetDefaults(t *testing.T) {
	c := &Config{
		DNS:      DNS{Upstreams: []Upstream{{Address: "192.0.2.1:53"}}},
		Segments: []Segment{{Name: "s", Profile: "p", Subnets: mustPrefixes(t, "192.0.2.0/24")}},
		Profiles: []Profile{{Name: "p"}},
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestValidationErrorGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "invalid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(in)
	if err == nil {
		t.Fatal("Load(invalid.yaml) succeeded")
	}
	got := err.Error() + "\n"
	golden := filepath.Join("testdata", "invalid.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
