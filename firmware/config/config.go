// Package config is schoolgate's typed configuration: the YAML schema, defaults, validation
// that names the field and line of every error, the embedded demo configuration, and the
// atomic, versioned store on the data partition.
package config

import (
	"net/netip"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
)

// Config is the whole appliance configuration. Field tags are the YAML names; every field is
// documented in docs/configuration.md.
type Config struct {
	Appliance  Appliance   `yaml:"appliance,omitempty"`
	DNS        DNS         `yaml:"dns,omitempty"`
	HTTP       HTTP        `yaml:"http,omitempty"`
	Segments   []Segment   `yaml:"segments,omitempty"`
	Devices    []Device    `yaml:"devices,omitempty"`
	Profiles   []Profile   `yaml:"profiles,omitempty"`
	Lists      []List      `yaml:"lists,omitempty"`
	Exceptions []Exception `yaml:"exceptions,omitempty"`
	Schedules  []Schedule  `yaml:"schedules,omitempty"`
	Retention  Retention   `yaml:"retention,omitempty"`

	// lines maps field paths to the lines they were read from, for error messages; nil
	// for a Config built in Go.
	lines lineMap
}

// Appliance holds settings of the box itself.
type Appliance struct {
	Name     string `yaml:"name,omitempty"`     // shown in the UI and reports, e.g. "St Mary's Primary"
	Timezone string `yaml:"timezone,omitempty"` // IANA zone for schedules and reports; default Europe/London
	// FailureMode is what new flows get when the slow path cannot judge them (queue full,
	// daemon absent): "closed" (drop, default) or "open" (pass).
	FailureMode string `yaml:"failure_mode,omitempty"`
	// WAN is the interface facing the school's internet router. With it (and segments on
	// interfaces or VLANs), schoolgate is the gateway: it sets up the segments, NAT, the
	// DNS redirect and the packet path (eBPF and nfqueue; needs root). Without it,
	// schoolgate filters DNS only, as in the demo.
	WAN string `yaml:"wan,omitempty"`
}

// DNS configures the resolver.
type DNS struct {
	// Listen is the address the resolver binds, UDP and TCP. Default "0.0.0.0:53"; the demo
	// uses "127.0.0.1:5353".
	Listen    string     `yaml:"listen,omitempty"`
	Upstreams []Upstream `yaml:"upstreams,omitempty"`
	// CacheSize is the number of cached answers (positive and negative each). Default 10000.
	CacheSize int `yaml:"cache_size,omitempty"`
	// BlockPageIPv4 and BlockPageIPv6 are the addresses answered for blocked names by profiles
	// whose block_response is "blockpage".
	BlockPageIPv4 netip.Addr `yaml:"block_page_ipv4"`
	BlockPageIPv6 netip.Addr `yaml:"block_page_ipv6"`
	// BlockTTL is the TTL of synthesised block answers. Default 60s.
	BlockTTL Duration `yaml:"block_ttl,omitempty"`
}

// Upstream is one resolver allowed names are forwarded to.
type Upstream struct {
	// Address is "host:port" for plain DNS or "tls://host:port" for DNS over TLS.
	Address string `yaml:"address,omitempty"`
	// TLSServerName is the name checked on the upstream's certificate for DNS over TLS.
	TLSServerName string `yaml:"tls_server_name,omitempty"`
	// TLSCA is a PEM file of the certificate authority that signed the upstream's
	// certificate, for a trust's or school's own DNS-over-TLS resolver. Default: the
	// system's roots. A relative path is read from the config file's directory.
	TLSCA string `yaml:"tls_ca,omitempty"`
}

// HTTP configures the web UI and JSON API listener.
type HTTP struct {
	Listen string `yaml:"listen,omitempty"` // default "127.0.0.1:8080"
	// TLS serves the web UI over HTTPS with the appliance's certificate (made on first start
	// and kept, or uploaded on the system page). Default: on for a gateway (appliance.wan
	// set), off for the DNS-only demo on loopback.
	TLS *bool `yaml:"tls,omitempty"`
	// AdminSegments are the segments whose clients may reach the web UI. Default: the
	// segment named "staff", if there is one. Guest segments never can.
	AdminSegments []string `yaml:"admin_segments,omitempty"`
	// BlockPage is where the block page is served ("ip:port"): the browsers of profiles whose
	// block_response is "blockpage" are sent there for blocked names, and pupils can ask
	// for a review from it. Every non-guest segment reaches it; the internet does not.
	// Default on a gateway (appliance.wan set) ":80", which also sends a browser that opens
	// the appliance's own address to the HTTPS web UI; otherwise empty: no block page server.
	BlockPage string `yaml:"block_page,omitempty"`
}

// Segment is one L2 network behind the appliance.
type Segment struct {
	Name string `yaml:"name,omitempty"`
	// Exactly one of VLAN (with Trunk) or Interface says where the segment lives; the demo's
	// loopback segments have neither.
	VLAN      int            `yaml:"vlan,omitempty"`
	Trunk     string         `yaml:"trunk,omitempty"`
	Interface string         `yaml:"interface,omitempty"`
	Subnets   []netip.Prefix `yaml:"subnets,omitempty"`
	Gateway   []netip.Addr   `yaml:"gateway,omitempty"`
	Profile   string         `yaml:"profile,omitempty"`
	// Guest segments reach the internet and the resolver, and nothing else.
	Guest bool `yaml:"guest,omitempty"`
}

// Device gives one device, by MAC address, its own name or profile.
type Device struct {
	MAC     string `yaml:"mac,omitempty"` // canonical lowercase aa:bb:cc:dd:ee:ff after Load
	Name    string `yaml:"name,omitempty"`
	Profile string `yaml:"profile,omitempty"`
}

// Profile is a filtering policy ("staff and student profiles" in the DfE standards).
type Profile struct {
	Name            string        `yaml:"name,omitempty"`
	BlockCategories []category.ID `yaml:"block_categories,omitempty"`
	// Allow and Block are custom domain entries; a listed domain covers its subdomains.
	// Allow wins over Block and over categories, never over the protected tier.
	Allow []string `yaml:"allow,omitempty"`
	Block []string `yaml:"block,omitempty"`
	// BlockResponse is "nxdomain" (default), "null" (0.0.0.0 / ::) or "blockpage".
	BlockResponse string `yaml:"block_response,omitempty"`
	// SafeSearch is "off", "on" (rewrite engines to their safe endpoints) or "strict" (on,
	// and engines without enforceable safe search blocked unless UnsafeEngines says allow).
	SafeSearch string `yaml:"safe_search,omitempty"`
	// UnsafeEngines is "allow" or "block"; default "block" when SafeSearch is strict,
	// "allow" otherwise.
	UnsafeEngines string `yaml:"unsafe_engines,omitempty"`
	// YouTube is "off", "moderate" or "strict" restricted mode.
	YouTube string `yaml:"youtube,omitempty"`
	Bypass  Bypass `yaml:"bypass,omitempty"`
	// QUIC is "inspect" (judge QUIC Initial SNI, default), "block" (drop UDP 443 so clients
	// fall back to TCP) or "allow".
	QUIC string `yaml:"quic,omitempty"`
	// NoSNI is what TLS without a readable name gets: "block" or "allow". Default "block".
	NoSNI string `yaml:"no_sni,omitempty"`
	// ScheduledBlocks block more categories only while a schedule is on, e.g. social
	// networks for pupils in school hours.
	ScheduledBlocks []ScheduledBlock `yaml:"scheduled_blocks,omitempty"`
}

// ScheduledBlock blocks categories while a schedule is on.
type ScheduledBlock struct {
	Schedule   string        `yaml:"schedule,omitempty"`
	Categories []category.ID `yaml:"categories,omitempty"`
}

// Schedule is a named set of times in the appliance's time zone: days of the week, a time of
// day, the term dates it applies in and the days the school is closed.
type Schedule struct {
	Name string `yaml:"name,omitempty"`
	// Days are "mon" … "sun". Default: mon to fri.
	Days []string `yaml:"days,omitempty"`
	// From and To are "HH:MM"; To may be "24:00". A From after To runs over midnight.
	// Default: the whole day.
	From string `yaml:"from,omitempty"`
	To   string `yaml:"to,omitempty"`
	// Terms, when given, are the only dates the schedule is on (inclusive ranges).
	Terms []DateRange `yaml:"terms,omitempty"`
	// Closed are dates it is off although they fall in a term (bank holidays, INSET days).
	Closed []DateRange `yaml:"closed,omitempty"`
}

// DateRange is an inclusive range of dates, "2026-09-03".
type DateRange struct {
	From string `yaml:"from,omitempty"`
	To   string `yaml:"to,omitempty"` // default: From (one day)
}

// Bypass holds a profile's defences against getting round the filter.
type Bypass struct {
	// Canaries answers the DoH, iCloud Private Relay and designated-resolver canary names
	// with NXDOMAIN so clients keep using schoolgate's resolver. Default true.
	Canaries *bool `yaml:"canaries,omitempty"`
	// StripECH removes the ech parameter from HTTPS records so TLS names stay visible.
	// Default true.
	StripECH *bool `yaml:"strip_ech,omitempty"`
	// BlockDoT drops DNS over TLS and DNS over QUIC (port 853). Default true.
	BlockDoT *bool `yaml:"block_dot,omitempty"`
	// VPNPorts are "udp/51820"-style ports dropped for this profile.
	VPNPorts []string `yaml:"vpn_ports,omitempty"`
	// AddressLists names lists (format "ips") whose addresses are dropped for this profile.
	AddressLists []string `yaml:"address_lists,omitempty"`
}

// List is one source of domains or addresses.
type List struct {
	Name string `yaml:"name,omitempty"`
	// Exactly one of URL or File. A relative File is read from the directory of the config
	// file (or the embedded demo files).
	URL  string `yaml:"url,omitempty"`
	File string `yaml:"file,omitempty"`
	// Format is "domains", "hosts", "adblock", "ut1" (tar.gz archive with
	// blacklists/<category>/domains) or "ips" (addresses and prefixes, for the packet path).
	Format string `yaml:"format,omitempty"`
	// Category puts every entry of a single-category list in one category.
	Category category.ID `yaml:"category,omitempty"`
	// Mapping names a built-in provider mapping ("ut1"); Categories adds or overrides
	// provider-category → schoolgate-category pairs.
	Mapping    string                 `yaml:"mapping,omitempty"`
	Categories map[string]category.ID `yaml:"categories,omitempty"`
	// Protected puts the list in the protected tier: blocked for everyone, no exception.
	Protected bool `yaml:"protected,omitempty"`
	// UpdateInterval is how often a URL is fetched again. Default 24h.
	UpdateInterval Duration `yaml:"update_interval,omitempty"`
	// MaxSize caps a download in bytes. Default 512 MiB.
	MaxSize int64 `yaml:"max_size,omitempty"`
}

// Exception is a time-limited allow or block, auditable.
type Exception struct {
	ID string `yaml:"id,omitempty"`
	// Scope is "profile", "segment" or "device"; Target is the profile or segment name or
	// the device MAC address.
	Scope  string `yaml:"scope,omitempty"`
	Target string `yaml:"target,omitempty"`
	// Domain is the domain excepted (covers subdomains).
	Domain      string    `yaml:"domain,omitempty"`
	Action      string    `yaml:"action,omitempty"` // "allow" or "block"
	Reason      string    `yaml:"reason,omitempty"`
	RequestedBy string    `yaml:"requested_by,omitempty"`
	ApprovedBy  string    `yaml:"approved_by,omitempty"`
	Created     time.Time `yaml:"created,omitempty"`
	Expires     time.Time `yaml:"expires,omitempty"`
}

// Retention says how long monitoring data is kept.
type Retention struct {
	Events Duration `yaml:"events,omitempty"` // default 365 days
}

// Duration is a time.Duration that reads and writes YAML as "90d", "24h", "30m" or "10s".
type Duration time.Duration
