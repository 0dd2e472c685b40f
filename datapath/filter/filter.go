// Package filter is schoolgate's eBPF fast path (DESIGN.md §2): it loads the tc programs
// compiled from bpf/schoolgate.c, attaches them to the segment interfaces and the WAN,
// pins them and their maps under bpffs so enforcement outlives the daemon, and fills the
// maps the programs consult: segments, profiles, per-device profiles, internal networks,
// blocked address sets, port rules and the flow verdicts the nfqueue slow path decides.
//
// Packets of unknown web flows leave the fast path with MarkQueue set in skb->mark; the
// nftables table sends them to nfqueue. Blocked TCP flows get MarkBlock, which the table
// answers with a TCP reset, unless the slow path asked for them to be dropped silently
// (VerdictDrop).
//
// Packets the programs' own rules drop (guest isolation, DoT, VPN and other port rules,
// blocked addresses, QUIC) are also reported: ReadDrops delivers them as DropEvents from a
// ring buffer, at most one per flow and DropEventInterval, with the client's MAC address.
// Drops of flows the slow path blocked are not reported here; the slow path reports its
// own verdicts. Events the full ring had no room for are counted in Counters.EventsLost.
package filter

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// skb->mark bits shared with bpf/schoolgate.h and the nftables table. Only the bits in
// MarkMask belong to schoolgate; the programs leave the rest of the mark alone.
const (
	MarkMask  uint32 = 0x0f000000
	MarkQueue uint32 = 0x01000000
	MarkBlock uint32 = 0x02000000
)

// Limits the maps impose.
const (
	// MaxProfiles bounds profile ids: blocked address entries carry a 64-bit mask of
	// the profiles they apply to.
	MaxProfiles = 64
	// MaxSegmentID is the largest segment id; each id has a counter slot and the slot
	// after it, WANID, counts the WAN.
	MaxSegmentID = 254
	// WANID is the key of the WAN's counters in Stats.
	WANID uint16 = 255
)

// DropEventInterval is how often one flow can produce a DropEvent: the fast path reports
// a flow's first dropped packet and then stays quiet about it for this long. A flow here is
// client address, server address and port, and protocol: retries from new client ports
// are the same flow.
const DropEventInterval = 60 * time.Second

// DefaultPinPath is where programs, links and maps are pinned when Config.PinPath is empty.
const DefaultPinPath = "/sys/fs/bpf/schoolgate"

// Errors returned by the package.
var (
	ErrUnsupported = errors.New("ebpf filter is only supported on linux")
	ErrProfileID   = fmt.Errorf("profile id must be below %d", MaxProfiles)
	ErrSegmentID   = fmt.Errorf("segment id must be at most %d", MaxSegmentID)
	ErrInvalid     = errors.New("invalid filter entry")
	ErrBusy        = errors.New("drop events are already being read")
)

// Reason says why the fast path dropped (or, for a blocked TCP flow, reset) a packet.
// The values are bpf/schoolgate.h's enum reason.
type Reason uint8

// Reasons, in the order of enum reason.
const (
	ReasonNone Reason = iota
	ReasonGuest
	ReasonDoT
	ReasonVPN
	ReasonAddress
	ReasonQUIC
	ReasonFlow
	ReasonPort
	numReasons
)

var reasonNames = [numReasons]string{"none", "guest", "dot", "vpn", "address", "quic", "flow", "port"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Config configures a Filter.
type Config struct {
	// PinPath is the bpffs directory holding schoolgate's maps and links; DefaultPinPath
	// when empty. bpffs is mounted on /sys/fs/bpf when nothing is mounted there yet.
	PinPath string
	Logger  *slog.Logger
}

// Segment is one school network as the programs on its interface see it.
type Segment struct {
	ID      uint16 // counter slot, at most MaxSegmentID
	Profile uint16 // default profile of the segment's clients, below MaxProfiles
	Guest   bool   // keep clients away from internal networks
}

// QUICMode is what a profile does with QUIC (UDP 443).
type QUICMode uint8

const (
	// QUICInspect sends new QUIC flows to the slow path, which reads the SNI of the
	// Initial packet.
	QUICInspect QUICMode = iota
	// QUICBlock drops QUIC, so browsers fall back to TCP, where the SNI is easier to judge.
	QUICBlock
	// QUICAllow passes QUIC without looking.
	QUICAllow
)

// Port is a transport port.
type Port struct {
	Proto uint8 // 6 (TCP) or 17 (UDP)
	Num   uint16
}

// Profile is the part of a filtering profile the fast path enforces by itself.
type Profile struct {
	BlockDoT bool // DNS over TLS and QUIC: TCP and UDP 853
	QUIC     QUICMode
	VPNPorts []Port
}

// Blocked is a destination prefix blocked for some profiles.
type Blocked struct {
	Prefix   netip.Prefix
	Profiles uint64 // bit n set: blocked for profile n
	Reason   Reason // ReasonAddress when zero
}

// FlowKey names a connection from the client's side (the host in a segment).
type FlowKey struct {
	Client, Server netip.AddrPort
	Proto          uint8
}

// Verdict is the slow path's decision on a flow, which the programs apply to the flow's
// remaining packets. The values are bpf/schoolgate.h's enum verdict.
type Verdict uint8

const (
	// VerdictAllow passes the flow both ways without the slow path.
	VerdictAllow Verdict = 1
	// VerdictBlock resets a TCP flow: the client's packets get MarkBlock, which the
	// nftables table answers with a reset. A UDP flow's packets are dropped. Of the
	// server's packets only resets reach the client.
	VerdictBlock Verdict = 2
	// VerdictDrop blocks the flow silently: the client's packets are dropped without a
	// reset, and none of the server's reach the client, resets included. It is for flows
	// the slow path has answered and closed itself (the block page), where a reset for
	// the client's acknowledgement could make it discard the answer.
	VerdictDrop Verdict = 3
)

func (v Verdict) String() string {
	switch v {
	case VerdictAllow:
		return "allow"
	case VerdictBlock:
		return "block"
	case VerdictDrop:
		return "drop"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

func (v Verdict) valid() bool { return v >= VerdictAllow && v <= VerdictDrop }

// Counters are one segment's (or the WAN's) packet counters, summed over CPUs.
type Counters struct {
	Packets, Bytes uint64
	// HandOffs counts packets marked for the slow path, FlowHits packets of allowed
	// flows passed by the flow map.
	HandOffs, FlowHits uint64
	// Drops counts dropped packets by reason; ReasonFlow also counts packets of
	// blocked TCP flows marked for a reset (VerdictBlock).
	Drops map[Reason]uint64
	// EventsLost counts drop events lost because the ring buffer was full: nobody was
	// reading, or not fast enough.
	EventsLost uint64
}

// DropEvent is a packet dropped by one of the fast path's rules, reported once per flow
// and DropEventInterval. Its reason is one of ReasonGuest, ReasonDoT, ReasonVPN,
// ReasonAddress, ReasonQUIC, ReasonPort, or whatever reason a Blocked entry was given.
type DropEvent struct {
	Time    time.Time // when the packet was dropped
	Reason  Reason
	Segment uint16 // the segment's ID
	Profile uint16 // the profile whose rule dropped it: the device's, else the segment's
	Proto   uint8  // IP protocol (after IPv6 extension headers): 6, 17, 58...
	// Client is the packet's source, Server its destination; IPv4 addresses are plain
	// IPv4, ports are 0 for packets without them (ICMP, non-first fragments).
	Client, Server netip.AddrPort
	MAC            net.HardwareAddr // the client's: the frame's Ethernet source
}
