// Package policy decides what happens to a name asked by a client: the tiers of DESIGN.md §1
// (protected, exceptions, profile, default allow), client → segment → profile by longest
// prefix with per-device overrides by MAC address, safe search and canaries. DNS queries,
// TLS and QUIC SNI and HTTP Host headers are all judged by the same Engine, so a name gets the
// same answer whichever way it arrives.
package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
)

// Action is what happens to a name.
type Action uint8

const (
	Allow   Action = iota
	Block          // answered by the profile's block response
	Rewrite        // answered with a CNAME to Decision.Rewrite (safe search)
)

func (a Action) String() string {
	switch a {
	case Block:
		return "block"
	case Rewrite:
		return "rewrite"
	default:
		return "allow"
	}
}

// Tier says which rule decided.
type Tier string

const (
	TierProtected  Tier = "protected"
	TierException  Tier = "exception"
	TierProfile    Tier = "profile"
	TierCanary     Tier = "canary"
	TierSafeSearch Tier = "safesearch"
	TierDefault    Tier = "default"
	// TierNoSegment: the client is in no configured segment. schoolgate serves only its
	// own segments, so such a client is refused rather than given unfiltered answers.
	TierNoSegment Tier = "nosegment"
	// TierNoName: a connection whose server name could not be read (TLS without SNI, a
	// handshake that did not arrive in time, not TLS at all on port 443), judged by the
	// profile's no_sni setting.
	TierNoName Tier = "noname"
)

// Request is one name to judge.
type Request struct {
	Client netip.Addr
	// MAC is the client's hardware address when the caller knows it; otherwise the engine
	// asks its MACLookup.
	MAC string
	// Name is the domain, any case, with or without the trailing dot.
	Name string
}

// Decision is the outcome and everything needed to explain it. It holds no pointers into
// request data, so it can be kept in an event.
type Decision struct {
	Action  Action
	Tier    Tier
	Name    string // normalised name judged
	Segment string // "" when the client is in no segment
	Profile *Profile
	MAC     string
	Device  string
	// Category is the category that caused a block, or for allowed names the first
	// category the name is listed in (so reports can show, say, staff use of social media).
	Category category.ID
	List     string // list that matched
	Rule     string // the matching entry: a listed domain, exception ID, canary or engine name
	Rewrite  string // CNAME target for Rewrite
	Reason   string // for exceptions: the recorded reason
	// Schedule names the schedule under which the profile blocks the category now; "" when
	// it is blocked at all times.
	Schedule string
}

// ProfileName returns the deciding profile's name, or "".
func (d Decision) ProfileName() string {
	if d.Profile == nil {
		return ""
	}
	return d.Profile.Name
}

// MACLookup maps a client address to its MAC address. The packet path fills it from the
// kernel's neighbour table; without one, per-device overrides apply only to callers that
// pass Request.MAC.
type MACLookup interface {
	MAC(addr netip.Addr) (string, bool)
}

// Config configures an Engine.
type Config struct {
	Snapshot *Snapshot
	MACs     MACLookup        // optional
	Now      func() time.Time // optional, for tests
}

// Engine judges names against the current snapshot. It is safe for concurrent use; Swap
// replaces the snapshot without blocking deciders.
type Engine struct {
	snap atomic.Pointer[Snapshot]
	macs MACLookup
	now  func() time.Time
}

// New returns an engine serving cfg.Snapshot.
func New(cfg Config) (*Engine, error) {
	if cfg.Snapshot == nil {
		return nil, fmt.Errorf("policy engine: %w", ErrNoSnapshot)
	}
	e := &Engine{macs: cfg.MACs, now: cfg.Now}
	if e.now == nil {
		e.now = time.Now
	}
	e.snap.Store(cfg.Snapshot)
	return e, nil
}

// ErrNoSnapshot is returned by New without a snapshot.
var ErrNoSnapshot = fmt.Errorf("no policy snapshot")

// Swap installs a new snapshot; decisions already under way finish on the old one.
func (e *Engine) Swap(s *Snapshot) { e.snap.Store(s) }

// Snapshot returns the snapshot in force.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Decide judges one request. It is the hot path of DNS and SNI filtering: no I/O, no locks.
func (e *Engine) Decide(r Request) Decision {
	return e.decide(r)
}

// DecideUnnamed judges a connection whose server name could not be read; why says what
// was seen instead (e.g. "no SNI", "not TLS", "timeout") and becomes the decision's Rule.
// Exceptions do not apply (they are for names), nor does the protected tier (no name can
// match it): the profile's no_sni setting decides, and a client in no segment is blocked.
func (e *Engine) DecideUnnamed(r Request, why string) Decision {
	r.Name = ""
	d := e.decide(r)
	d.Tier, d.Rule, d.Category, d.List, d.Rewrite = TierNoName, why, "", "", ""
	d.Action = Block
	if d.Profile != nil && d.Profile.Config.NoSNI == "allow" {
		d.Action = Allow
	}
	return d
}

// Explanation is a decision with the trail of checks that led to it, for people.
type Explanation struct {
	Decision Decision
	Summary  string
	Steps    []string
}

// Explain judges a request like Decide and lists the checks that led to the decision. The
// steps are derived from the decision and the tier order, so Decide itself never pays for
// them.
func (e *Engine) Explain(r Request) Explanation {
	d := e.decide(r)
	return Explanation{Decision: d, Summary: summary(d), Steps: steps(d, r.Client)}
}

func (e *Engine) decide(r Request) Decision {
	s := e.snap.Load()
	d := Decision{Name: normalise(r.Name), MAC: strings.ToLower(r.MAC)}
	if d.MAC == "" && e.macs != nil && r.Client.IsValid() {
		if mac, ok := e.macs.MAC(r.Client); ok {
			d.MAC = strings.ToLower(mac)
		}
	}
	if seg, ok := s.SegmentFor(r.Client); ok {
		d.Segment = seg.Name
		d.Profile = seg.Profile
	}
	if d.MAC != "" {
		if dev, ok := s.devices[d.MAC]; ok {
			d.Device = dev.Name
			if p, ok := s.profiles[dev.Profile]; ok && dev.Profile != "" {
				d.Profile = p
			}
		}
	}

	// Tier 1: protected. Nothing below can lift it.
	if suffix, v, ok := s.catalog.Protected.Lookup(d.Name); ok {
		d.Action, d.Tier, d.Rule = Block, TierProtected, suffix
		d.List, d.Category = tagInfo(s, v)
		return d
	}

	// Tier 2: exceptions.
	now := e.now()
	if ex, ok := s.matchException(d, now); ok {
		d.Tier, d.Rule, d.Reason = TierException, ex.ID, ex.Reason
		if ex.Action == "block" {
			d.Action = Block
		} else {
			d.Action = Allow
		}
		return d
	}

	p := d.Profile
	if p == nil {
		d.Action, d.Tier, d.Rule = Block, TierNoSegment, "client in no segment"
		d.Category, d.List = listedCategory(s, d.Name)
		return d
	}
	// Tier 3: the profile.
	if _, ok := canaries[d.Name]; ok && p.Canaries {
		d.Action, d.Tier, d.Rule = Block, TierCanary, d.Name
		return d
	}
	if suffix, _, ok := p.allow.Lookup(d.Name); ok {
		d.Action, d.Tier, d.Rule = Allow, TierProfile, suffix
		d.List = "custom allow"
		return safeSearch(d)
	}
	if suffix, _, ok := p.block.Lookup(d.Name); ok {
		d.Action, d.Tier, d.Rule = Block, TierProfile, suffix
		d.List = "custom block"
		return d
	}
	if blockedBy(s, p, &d, p.blockedAt(now)) {
		d.Schedule = p.scheduleBlocking(d.Category, now)
		return d
	}
	if p.UnsafeEngines {
		if engine, ok := matchUnsafeEngine(d.Name); ok {
			d.Action, d.Tier, d.Rule = Block, TierSafeSearch, engine
			return d
		}
	}
	d.Action, d.Tier = Allow, TierDefault
	return safeSearch(d)
}

// safeSearch turns an allow into a rewrite when the name is a search engine or YouTube host
// the profile enforces safe mode on.
func safeSearch(d Decision) Decision {
	t := safeSearchTarget(d.Name, d.Profile.SafeSearch, d.Profile.YouTube)
	if t == "" {
		return d
	}
	d.Action, d.Tier, d.Rewrite = Rewrite, TierSafeSearch, t
	if d.Rule == "" {
		d.Rule = d.Name
	}
	return d
}

// blockedBy walks the listed suffixes of d.Name, longest first, and blocks on the first whose
// categories the profile blocks. It also fills the category of allowed names.
func blockedBy(s *Snapshot, p *Profile, d *Decision, blockedCats category.Set) bool {
	blocked := false
	s.catalog.Domains.Match(d.Name, func(suffix string, v uint32) bool {
		if int(v) >= len(s.catalog.Tags) {
			return true
		}
		tag := s.catalog.Tags[v]
		if hit := tag.Categories & blockedCats; hit != 0 {
			d.Action, d.Tier, d.Rule = Block, TierProfile, suffix
			d.Category, d.List = hit.First(), firstList(tag.Lists)
			blocked = true
			return false
		}
		if d.Category == "" {
			d.Category, d.List, d.Rule = tag.Categories.First(), firstList(tag.Lists), suffix
		}
		return true
	})
	return blocked
}

func listedCategory(s *Snapshot, name string) (category.ID, string) {
	_, v, ok := s.catalog.Domains.Lookup(name)
	if !ok {
		return "", ""
	}
	l, c := tagInfo(s, v)
	return c, l
}

func tagInfo(s *Snapshot, v uint32) (string, category.ID) {
	if int(v) >= len(s.catalog.Tags) {
		return "", ""
	}
	t := s.catalog.Tags[v]
	return firstList(t.Lists), t.Categories.First()
}

func firstList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// matchException finds the exception that applies: active now, scope matching the client,
// domain covering the name. The most specific scope wins (device, then segment, then
// profile), then the longest domain, then block over allow.
func (s *Snapshot) matchException(d Decision, now time.Time) (exception, bool) {
	var best exception
	bestRank := -1
	for _, ex := range s.excepts {
		if now.Before(ex.Created) || !now.Before(ex.Expires) {
			continue
		}
		if !covers(ex.domain, d.Name) {
			continue
		}
		var scope int
		switch ex.Scope {
		case "device":
			if d.MAC == "" || !strings.EqualFold(ex.Target, d.MAC) {
				continue
			}
			scope = 3
		case "segment":
			if ex.Target != d.Segment || d.Segment == "" {
				continue
			}
			scope = 2
		case "profile":
			if d.Profile == nil || ex.Target != d.Profile.Name {
				continue
			}
			scope = 1
		default:
			continue
		}
		rank := scope<<20 | len(ex.domain)<<1
		if ex.Action == "block" {
			rank |= 1
		}
		if rank > bestRank {
			best, bestRank = ex, rank
		}
	}
	return best, bestRank >= 0
}

// covers reports whether domain is name or a parent of it.
func covers(domain, name string) bool {
	return name == domain || (len(name) > len(domain) && strings.HasSuffix(name, domain) &&
		name[len(name)-len(domain)-1] == '.')
}

// normalise lower-cases ASCII and drops one trailing dot without allocating when the name is
// already canonical, which it nearly always is on the DNS path.
func normalise(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}

// steps lists, for people, the checks made in tier order up to the one that decided.
func steps(d Decision, client netip.Addr) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if d.Segment == "" {
		add("client %s is in no segment", client)
	} else {
		add("client %s is in segment %q", client, d.Segment)
	}
	if d.MAC != "" {
		dev := d.Device
		if dev == "" {
			dev = "no name"
		}
		add("device %s (%s)", d.MAC, dev)
	}
	if d.Profile != nil {
		add("profile %q applies", d.Profile.Name)
	}
	if d.Tier == TierProtected {
		add("%q is on protected list %q (entry %q): blocked for everyone, no exception can lift it", d.Name, d.List, d.Rule)
		return out
	}
	add("not on any protected list")
	if d.Tier == TierException {
		add("exception %q applies (%s): %s", d.Rule, d.Action, d.Reason)
		return out
	}
	add("no active exception applies")
	if d.Profile == nil {
		add("refused: schoolgate answers only clients in its segments (add the client's subnet to a segment)")
		return out
	}
	p := d.Profile
	switch {
	case d.Tier == TierCanary:
		add("%q is a resolver-bypass canary (%s): answered NXDOMAIN so clients keep using this resolver", d.Name, canaries[d.Name])
		return out
	case d.List == "custom allow":
		add("%q is on profile %q's allow list (entry %q)", d.Name, p.Name, d.Rule)
	case d.List == "custom block":
		add("%q is on profile %q's block list (entry %q)", d.Name, p.Name, d.Rule)
		return out
	case d.Action == Block && d.Tier == TierProfile && d.Schedule != "":
		add("%q is listed in category %q by list %q (entry %q), which profile %q blocks while schedule %q is on, as it is now",
			d.Name, d.Category, d.List, d.Rule, p.Name, d.Schedule)
		return out
	case d.Action == Block && d.Tier == TierProfile:
		add("%q is listed in category %q by list %q (entry %q), which profile %q blocks", d.Name, d.Category, d.List, d.Rule, p.Name)
		return out
	case d.Action == Block && d.Tier == TierSafeSearch:
		add("%q is a search engine without enforceable safe search, which profile %q blocks", d.Name, p.Name)
		return out
	case d.Category != "":
		add("%q is listed in category %q by list %q, which profile %q allows", d.Name, d.Category, d.List, p.Name)
	default:
		add("%q is in no category profile %q blocks", d.Name, p.Name)
	}
	if d.Action == Rewrite {
		add("profile %q enforces safe search (safe_search %s, youtube %s): answered as CNAME %s",
			p.Name, p.SafeSearch, p.YouTube, d.Rewrite)
	}
	return out
}

func summary(d Decision) string {
	who := "client in no segment"
	if d.Tier == TierNoSegment {
		return fmt.Sprintf("refused: %s is asked from an address in no segment", d.Name)
	}
	if d.Profile != nil {
		who = fmt.Sprintf("profile %q", d.Profile.Name)
	}
	switch {
	case d.Tier == TierProtected:
		return fmt.Sprintf("blocked for everyone: %s is on the protected list %q", d.Name, d.List)
	case d.Tier == TierException:
		return fmt.Sprintf("%s by exception %s for %s: %s", d.Action, d.Rule, who, d.Reason)
	case d.Tier == TierCanary:
		return fmt.Sprintf("answered NXDOMAIN: %s is a resolver-bypass canary", d.Name)
	case d.Action == Rewrite:
		return fmt.Sprintf("rewritten to %s: safe search enforced for %s", d.Rewrite, who)
	case d.Action == Block && d.Category != "" && d.Schedule != "":
		return fmt.Sprintf("blocked for %s while schedule %s is on: category %s (list %q, entry %s)", who, d.Schedule, d.Category, d.List, d.Rule)
	case d.Action == Block && d.Category != "":
		return fmt.Sprintf("blocked for %s: category %s (list %q, entry %s)", who, d.Category, d.List, d.Rule)
	case d.Action == Block:
		return fmt.Sprintf("blocked for %s: %s (%s)", who, d.Rule, d.List)
	default:
		return fmt.Sprintf("allowed for %s", who)
	}
}
