package filter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
)

const (
	protoTCP = 6
	protoUDP = 17
)

// SetProfiles replaces the profiles' QUIC modes and port rules.
func (f *Filter) SetProfiles(p map[uint16]Profile) error {
	ports := map[schoolgatePortKey]uint8{}
	var flags [MaxProfiles]uint32
	for id, prof := range p {
		if id >= MaxProfiles {
			return fmt.Errorf("setting profile %d: %w", id, ErrProfileID)
		}
		switch prof.QUIC {
		case QUICInspect:
		case QUICBlock:
			flags[id] = uint32(schoolgateProfileFlagPROFILE_QUIC_BLOCK)
		case QUICAllow:
			flags[id] = uint32(schoolgateProfileFlagPROFILE_QUIC_ALLOW)
		default:
			return fmt.Errorf("setting profile %d: quic mode %d: %w", id, prof.QUIC, ErrInvalid)
		}
		if prof.BlockDoT {
			ports[schoolgatePortKey{Profile: id, Proto: protoTCP, Port: 853}] = uint8(ReasonDoT)
			ports[schoolgatePortKey{Profile: id, Proto: protoUDP, Port: 853}] = uint8(ReasonDoT)
		}
		for _, port := range prof.VPNPorts {
			if port.Proto != protoTCP && port.Proto != protoUDP {
				return fmt.Errorf("setting profile %d: vpn port protocol %d: %w", id, port.Proto, ErrInvalid)
			}
			k := schoolgatePortKey{Profile: id, Proto: port.Proto, Port: port.Num}
			if _, dot := ports[k]; !dot {
				ports[k] = uint8(ReasonVPN)
			}
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for id, fl := range flags {
		if err := f.objs.Profiles.Put(uint32(id), schoolgateProfile{Flags: fl}); err != nil {
			return fmt.Errorf("setting profile %d: %w", id, err)
		}
	}
	if err := replace(f.objs.Ports, ports); err != nil {
		return fmt.Errorf("setting port rules: %w", err)
	}
	return nil
}

// SetDevices replaces the per-device profiles, keyed by MAC address ("aa:bb:cc:dd:ee:ff").
func (f *Filter) SetDevices(m map[string]uint16) error {
	want := make(map[schoolgateMac]uint16, len(m))
	for s, profile := range m {
		mac, err := net.ParseMAC(s)
		if err != nil || len(mac) != 6 {
			return fmt.Errorf("setting device %q: %w", s, ErrInvalid)
		}
		if profile >= MaxProfiles {
			return fmt.Errorf("setting device %s: %w", s, ErrProfileID)
		}
		var k schoolgateMac
		copy(k.Addr[:], mac)
		want[k] = profile
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := replace(f.objs.Devices, want); err != nil {
		return fmt.Errorf("setting devices: %w", err)
	}
	return nil
}

// SetInternal replaces the internal networks guests may not reach: private, CGNAT,
// link-local, ULA and multicast ranges and the appliance's own addresses.
func (f *Filter) SetInternal(prefixes []netip.Prefix) error {
	v4 := map[schoolgateLpmV4]uint8{}
	v6 := map[schoolgateLpmV6]uint8{}
	for _, p := range prefixes {
		k4, k6, is4, err := lpmKeys(p)
		if err != nil {
			return fmt.Errorf("setting internal networks: %w", err)
		}
		if is4 {
			v4[k4] = 1
		} else {
			v6[k6] = 1
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := replace(f.objs.InternalV4, v4); err != nil {
		return fmt.Errorf("setting internal networks: %w", err)
	}
	if err := replace(f.objs.InternalV6, v6); err != nil {
		return fmt.Errorf("setting internal networks: %w", err)
	}
	return nil
}

// SetBlocked replaces the blocked destinations. Entries for the same prefix are merged:
// their profile masks are combined and the first non-zero reason kept.
func (f *Filter) SetBlocked(entries []Blocked) error {
	v4 := map[schoolgateLpmV4]schoolgateBlocked{}
	v6 := map[schoolgateLpmV6]schoolgateBlocked{}
	for _, e := range entries {
		if e.Reason >= numReasons {
			return fmt.Errorf("setting blocked %s: reason %d: %w", e.Prefix, e.Reason, ErrInvalid)
		}
		k4, k6, is4, err := lpmKeys(e.Prefix)
		if err != nil {
			return fmt.Errorf("setting blocked addresses: %w", err)
		}
		var v schoolgateBlocked
		if is4 {
			v = v4[k4]
		} else {
			v = v6[k6]
		}
		v.Profiles |= e.Profiles
		if v.Reason == 0 {
			v.Reason = uint8(e.Reason)
		}
		if is4 {
			v4[k4] = v
		} else {
			v6[k6] = v
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := replace(f.objs.BlockedV4, v4); err != nil {
		return fmt.Errorf("setting blocked addresses: %w", err)
	}
	if err := replace(f.objs.BlockedV6, v6); err != nil {
		return fmt.Errorf("setting blocked addresses: %w", err)
	}
	return nil
}

// lpmKeys turns a prefix into an LPM trie key, IPv4-mapped IPv6 prefixes into IPv4 ones.
func lpmKeys(p netip.Prefix) (k4 schoolgateLpmV4, k6 schoolgateLpmV6, is4 bool, err error) {
	if !p.IsValid() {
		return k4, k6, false, fmt.Errorf("prefix %s: %w", p, ErrInvalid)
	}
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if p.Addr().Is4() {
		k4.Prefixlen = uint32(p.Bits())
		k4.Addr = p.Addr().As4()
		return k4, k6, true, nil
	}
	k6.Prefixlen = uint32(p.Bits())
	k6.Addr = p.Addr().As16()
	return k4, k6, false, nil
}

// replace makes m hold exactly want. New and changed entries are written before stale ones
// are deleted, so the programs never see the map empty mid-update.
func replace[K comparable, V any](m *ebpf.Map, want map[K]V) error {
	for k, v := range want {
		if err := m.Put(k, v); err != nil {
			return fmt.Errorf("writing entry: %w", err)
		}
	}
	var (
		k     K
		v     V
		stale []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("listing entries: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("deleting entry: %w", err)
		}
	}
	return nil
}

func flowKey(k FlowKey) (schoolgateFlowKey, error) {
	if !k.Client.IsValid() || !k.Server.IsValid() || (k.Proto != protoTCP && k.Proto != protoUDP) {
		return schoolgateFlowKey{}, fmt.Errorf("flow %v: %w", k, ErrInvalid)
	}
	return schoolgateFlowKey{
		Client:     k.Client.Addr().As16(),
		Server:     k.Server.Addr().As16(),
		ClientPort: k.Client.Port(),
		ServerPort: k.Server.Port(),
		Proto:      k.Proto,
	}, nil
}

// SetVerdict records the slow path's decision on a flow; the programs apply it to the
// flow's remaining packets in both directions. The profile is the one that decided.
func (f *Filter) SetVerdict(k FlowKey, v Verdict, profile uint16) error {
	key, err := flowKey(k)
	if err != nil {
		return fmt.Errorf("setting verdict: %w", err)
	}
	if !v.valid() {
		return fmt.Errorf("setting verdict: %v: %w", v, ErrInvalid)
	}
	now, err := monotonicNow()
	if err != nil {
		return fmt.Errorf("setting verdict: reading clock: %w", err)
	}
	val := schoolgateFlow{
		Verdict:  uint8(v),
		Profile:  profile,
		LastSeen: uint64(now), // bpf_ktime_get_ns is CLOCK_MONOTONIC
	}
	if v != VerdictAllow {
		val.Reason = uint8(ReasonFlow)
	}
	if err := f.objs.Flows.Put(key, val); err != nil {
		return fmt.Errorf("setting verdict: %w", err)
	}
	return nil
}

// Verdict returns the recorded verdict of a flow and whether there is one.
func (f *Filter) Verdict(k FlowKey) (Verdict, bool, error) {
	key, err := flowKey(k)
	if err != nil {
		return 0, false, fmt.Errorf("reading verdict: %w", err)
	}
	var v schoolgateFlow
	if err := f.objs.Flows.Lookup(key, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("reading verdict: %w", err)
	}
	return Verdict(v.Verdict), true, nil
}

// Stats returns the counters of every attached segment and of every segment id that has
// counted something, plus the WAN's under WANID.
func (f *Filter) Stats() (map[uint16]Counters, error) {
	ids := map[uint16]bool{WANID: true}
	var (
		ifindex uint32
		seg     schoolgateSegment
	)
	it := f.objs.Segments.Iterate()
	for it.Next(&ifindex, &seg) {
		ids[seg.Id] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("listing segments: %w", err)
	}

	out := map[uint16]Counters{}
	var perCPU []schoolgateCounters
	for slot := uint32(0); slot <= uint32(WANID); slot++ {
		if err := f.objs.Counters.Lookup(slot, &perCPU); err != nil {
			return nil, fmt.Errorf("reading counters %d: %w", slot, err)
		}
		c := Counters{Drops: map[Reason]uint64{}}
		for _, p := range perCPU {
			c.Packets += p.Packets
			c.Bytes += p.Bytes
			c.HandOffs += p.Handoffs
			c.FlowHits += p.FlowHits
			c.EventsLost += p.EventsLost
			for r, n := range p.Drops {
				if n > 0 {
					c.Drops[Reason(r)] += n
				}
			}
		}
		if c.Packets > 0 || ids[uint16(slot)] {
			out[uint16(slot)] = c
		}
	}
	return out, nil
}
