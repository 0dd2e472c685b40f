package policy

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/lists"
)

// Snapshot is a compiled, immutable policy: the configuration's segments, profiles and
// exceptions joined with the loaded lists. The engine swaps whole snapshots atomically, so a
// decision never sees half of a reload.
type Snapshot struct {
	segments []*Segment
	prefixes []segmentPrefix // longest prefix first
	profiles map[string]*Profile
	devices  map[string]config.Device // by MAC
	excepts  []exception
	catalog  *lists.Catalog
}

// Segment is a compiled segment.
type Segment struct {
	Name    string
	Profile *Profile
	Guest   bool
}

type segmentPrefix struct {
	prefix  netip.Prefix
	segment *Segment
}

// Profile is a compiled profile; the fields that the DNS and packet paths read are exported.
type Profile struct {
	Name          string
	Blocked       category.Set
	BlockResponse string // "nxdomain", "null" or "blockpage"
	SafeSearch    string
	YouTube       string
	UnsafeEngines bool // true: engines without enforceable safe search are blocked
	Canaries      bool
	StripECH      bool
	// BlockTTL and the block-page addresses come from the DNS settings; they are copied here
	// so that a decision carries everything needed to answer it, even across a swap.
	BlockTTL      time.Duration
	BlockPageIPv4 netip.Addr
	BlockPageIPv6 netip.Addr
	Config        config.Profile
	allow, block  *lists.Set
	profileSchedules
}

type exception struct {
	config.Exception
	domain string
}

// ErrNoCatalog is returned by Compile when no lists were given.
var ErrNoCatalog = errors.New("no list catalog")

// Compile joins a validated configuration with a list catalog.
func Compile(cfg *config.Config, cat *lists.Catalog) (*Snapshot, error) {
	if cat == nil {
		return nil, ErrNoCatalog
	}
	s := &Snapshot{
		profiles: make(map[string]*Profile, len(cfg.Profiles)),
		devices:  make(map[string]config.Device, len(cfg.Devices)),
		catalog:  cat,
	}
	loc, err := time.LoadLocation(cfg.Appliance.Timezone)
	if err != nil {
		return nil, fmt.Errorf("appliance.timezone: %w", err)
	}
	schedules := map[string]*schedule{}
	for _, sc := range cfg.Schedules {
		if schedules[sc.Name], err = compileSchedule(sc); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Profiles {
		cp, err := compileProfile(p)
		if err != nil {
			return nil, fmt.Errorf("compiling profile %q: %w", p.Name, err)
		}
		cp.loc = loc
		for _, sb := range p.ScheduledBlocks {
			sc, ok := schedules[sb.Schedule]
			if !ok {
				return nil, fmt.Errorf("profile %q: unknown schedule %q", p.Name, sb.Schedule)
			}
			cats, err := category.SetOf(sb.Categories...)
			if err != nil {
				return nil, fmt.Errorf("profile %q: %w", p.Name, err)
			}
			cp.scheduled = append(cp.scheduled, scheduledBlock{sched: sc, cats: cats})
		}
		cp.BlockTTL = time.Duration(cfg.DNS.BlockTTL)
		cp.BlockPageIPv4, cp.BlockPageIPv6 = cfg.DNS.BlockPageIPv4, cfg.DNS.BlockPageIPv6
		s.profiles[p.Name] = cp
	}
	for _, sc := range cfg.Segments {
		p, ok := s.profiles[sc.Profile]
		if !ok {
			return nil, fmt.Errorf("segment %q: unknown profile %q", sc.Name, sc.Profile)
		}
		seg := &Segment{Name: sc.Name, Profile: p, Guest: sc.Guest}
		s.segments = append(s.segments, seg)
		for _, pfx := range sc.Subnets {
			s.prefixes = append(s.prefixes, segmentPrefix{pfx.Masked(), seg})
		}
	}
	slices.SortStableFunc(s.prefixes, func(a, b segmentPrefix) int {
		return cmp.Compare(b.prefix.Bits(), a.prefix.Bits())
	})
	for _, d := range cfg.Devices {
		s.devices[strings.ToLower(d.MAC)] = d
	}
	for _, e := range cfg.Exceptions {
		name, err := lists.Normalize(e.Domain)
		if err != nil {
			return nil, fmt.Errorf("exception %q: %w", e.ID, err)
		}
		s.excepts = append(s.excepts, exception{Exception: e, domain: name})
	}
	return s, nil
}

func compileProfile(p config.Profile) (*Profile, error) {
	blocked, err := category.SetOf(p.BlockCategories...)
	if err != nil {
		return nil, err
	}
	allow, err := customSet(p.Allow)
	if err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	block, err := customSet(p.Block)
	if err != nil {
		return nil, fmt.Errorf("block: %w", err)
	}
	return &Profile{
		Name:          p.Name,
		Blocked:       blocked,
		BlockResponse: p.BlockResponse,
		SafeSearch:    p.SafeSearch,
		YouTube:       p.YouTube,
		UnsafeEngines: p.UnsafeEngines == "block",
		Canaries:      p.Bypass.Canaries == nil || *p.Bypass.Canaries,
		StripECH:      p.Bypass.StripECH == nil || *p.Bypass.StripECH,
		Config:        p,
		allow:         allow,
		block:         block,
	}, nil
}

func customSet(entries []string) (*lists.Set, error) {
	b := lists.NewSetBuilder(len(entries))
	for _, e := range entries {
		name, err := lists.Normalize(e)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", e, err)
		}
		b.Add(name, 0)
	}
	return b.Build(func(a, _ uint32) uint32 { return a }), nil
}

// Catalog returns the lists the snapshot was compiled with.
func (s *Snapshot) Catalog() *lists.Catalog { return s.catalog }

// Segments returns the compiled segments in configuration order.
func (s *Snapshot) Segments() []*Segment { return slices.Clone(s.segments) }

// SegmentFor returns the segment whose subnets hold addr (longest prefix wins).
func (s *Snapshot) SegmentFor(addr netip.Addr) (*Segment, bool) {
	addr = addr.Unmap()
	for _, sp := range s.prefixes {
		if sp.prefix.Contains(addr) {
			return sp.segment, true
		}
	}
	return nil, false
}
