package netcfg

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
)

// DefaultTable is the nftables table (family inet) used when Config.Table is empty.
const DefaultTable = "schoolgate"

// Queue modes reported by Gateway.QueueMode.
const (
	QueueModeNative   = "native"    // nft's own queue statement
	QueueModeXTCompat = "xt-compat" // xtables NFQUEUE target through nft_compat
)

var (
	// ErrInvalidConfig is wrapped by every validation error of New.
	ErrInvalidConfig = errors.New("invalid netcfg config")
	// ErrLinkMissing means an interface the config names does not exist.
	ErrLinkMissing = errors.New("link missing")
	// ErrClosed is returned by Apply and Remove after Close.
	ErrClosed = errors.New("gateway closed")
	// ErrUnsupported is returned on operating systems other than Linux.
	ErrUnsupported = errors.New("netcfg is only supported on linux")
)

// Config describes the gateway's links, addresses and firewall table.
type Config struct {
	Table      string // nftables table name in family inet; DefaultTable if empty
	WAN        string // WAN interface name; must exist, its addresses are not managed here
	Segments   []Segment
	DNSPort    uint16   // local resolver port that clients' DNS (port 53) is redirected to
	AdminPorts []uint16 // TCP ports of the web UI; only Admin segments reach them
	// LANPorts are TCP ports every non-guest segment reaches (the block page) and the WAN
	// does not.
	LANPorts []uint16
	Queue    Queue // nfqueue used by the slow path

	// Packet marks set by the eBPF fast path: mark&MarkMask == MarkQueue sends the
	// packet to the slow path, == MarkBlock blocks it.
	MarkMask, MarkQueue, MarkBlock uint32

	Logger *slog.Logger
}

// Segment is one layer-2 network the appliance is the gateway of.
type Segment struct {
	Name string

	// Either Interface (a plain interface), or Trunk and VLAN: the link
	// "<Trunk>.<VLAN>" is then created on the trunk if missing.
	Interface string
	Trunk     string
	VLAN      int

	Gateway []netip.Prefix // the appliance's addresses on the segment, e.g. 10.20.0.1/24
	Guest   bool           // isolated: reaches only DNS/DHCP/ND on the appliance and nothing else local
	Admin   bool           // may reach AdminPorts
}

// Queue selects the nfqueue numbers of the slow path: Num..Num+Count-1, with
// packets spread over them by CPU.
type Queue struct {
	Num, Count uint16
	// FailOpen accepts packets while no program listens on the queue (the
	// "bypass" flag); the default drops them, so an unfiltered path never opens
	// by accident.
	FailOpen bool
}

// ifnameMax is IFNAMSIZ minus the terminating NUL.
const ifnameMax = 15

// ifname is the interface the segment uses: its own interface or the VLAN link on the trunk.
func (s Segment) ifname() string {
	if s.Interface != "" {
		return s.Interface
	}
	return s.Trunk + "." + strconv.Itoa(s.VLAN)
}

func (s Segment) isVLAN() bool { return s.Interface == "" }

// withDefaults returns cfg with empty optional fields filled in.
func (cfg Config) withDefaults() Config {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.Queue.Count == 0 {
		cfg.Queue.Count = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// validate checks cfg (after withDefaults) without touching the system.
func (cfg Config) validate() error {
	if len(cfg.Table) > 255 {
		return invalid("table name longer than 255 bytes")
	}
	if err := checkIfname("wan", cfg.WAN); err != nil {
		return err
	}
	if len(cfg.Segments) == 0 {
		return invalid("no segments")
	}
	if cfg.DNSPort == 0 {
		return invalid("dns port is 0")
	}
	for _, p := range cfg.AdminPorts {
		if p == 0 {
			return invalid("admin port 0")
		}
	}
	for _, p := range cfg.LANPorts {
		if p == 0 {
			return invalid("LAN port 0")
		}
	}
	if int(cfg.Queue.Num)+int(cfg.Queue.Count)-1 > 0xffff {
		return invalid("queues %d..%d go past 65535", cfg.Queue.Num, int(cfg.Queue.Num)+int(cfg.Queue.Count)-1)
	}
	if err := cfg.validateMarks(); err != nil {
		return err
	}

	names := map[string]bool{}
	ifnames := map[string]string{cfg.WAN: "wan"}
	type owned struct {
		p   netip.Prefix
		seg string
	}
	var gateways []owned
	for i, s := range cfg.Segments {
		if s.Name == "" {
			return invalid("segment %d has no name", i)
		}
		if names[s.Name] {
			return invalid("segment %q listed twice", s.Name)
		}
		names[s.Name] = true
		switch {
		case s.Interface != "" && (s.Trunk != "" || s.VLAN != 0):
			return invalid("segment %q has both an interface and a trunk/vlan", s.Name)
		case s.Interface == "" && s.Trunk == "":
			return invalid("segment %q has neither an interface nor a trunk", s.Name)
		case s.Trunk != "" && (s.VLAN < 1 || s.VLAN > 4094):
			return invalid("segment %q: vlan %d outside 1-4094", s.Name, s.VLAN)
		}
		if s.isVLAN() {
			if err := checkIfname("segment "+s.Name+" trunk", s.Trunk); err != nil {
				return err
			}
			if s.Trunk == cfg.WAN {
				return invalid("segment %q: trunk %q is the wan", s.Name, s.Trunk)
			}
		}
		ifn := s.ifname()
		if err := checkIfname("segment "+s.Name, ifn); err != nil {
			return err
		}
		if other, ok := ifnames[ifn]; ok {
			return invalid("segment %q: interface %q already used by %s", s.Name, ifn, other)
		}
		ifnames[ifn] = "segment " + s.Name
		if s.Guest && s.Admin {
			return invalid("segment %q is both guest and admin", s.Name)
		}
		if len(s.Gateway) == 0 {
			return invalid("segment %q has no gateway address", s.Name)
		}
		for _, p := range s.Gateway {
			if !p.IsValid() || p.Addr().Zone() != "" {
				return invalid("segment %q: bad gateway %v", s.Name, p)
			}
			a := p.Addr()
			if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Is4In6() {
				return invalid("segment %q: gateway %v is not a unicast address", s.Name, p)
			}
			for _, o := range gateways {
				if o.p.Overlaps(p) {
					return invalid("segment %q: gateway %v overlaps %v of segment %q", s.Name, p, o.p, o.seg)
				}
			}
			gateways = append(gateways, owned{p, s.Name})
		}
	}
	return nil
}

func (cfg Config) validateMarks() error {
	switch {
	case cfg.MarkMask == 0:
		return invalid("mark mask is 0")
	case cfg.MarkQueue == 0 || cfg.MarkBlock == 0:
		// A zero mark would match every unmarked packet.
		return invalid("queue and block marks must be non-zero")
	case cfg.MarkQueue&^cfg.MarkMask != 0 || cfg.MarkBlock&^cfg.MarkMask != 0:
		return invalid("queue mark %#x or block mark %#x outside mask %#x", cfg.MarkQueue, cfg.MarkBlock, cfg.MarkMask)
	case cfg.MarkQueue == cfg.MarkBlock:
		return invalid("queue and block marks are equal")
	}
	return nil
}

func checkIfname(what, name string) error {
	if name == "" {
		return invalid("%s interface missing", what)
	}
	if len(name) > ifnameMax {
		return invalid("%s interface name %q longer than %d bytes", what, name, ifnameMax)
	}
	for _, c := range []byte(name) {
		if c == '/' || c == 0 || c == ' ' || c == ':' {
			return invalid("%s interface name %q has a forbidden character", what, name)
		}
	}
	if name == "." || name == ".." {
		return invalid("%s interface name %q is reserved", what, name)
	}
	return nil
}
