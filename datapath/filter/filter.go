// Package filter is schoolgate's eBPF fast path (DESIGN.md §2): it loads the tc programs
// compiled from bpf/schoolgate.c, attaches them to the segment interfaces and the WAN,
// pins them and their maps under bpffs so enforcement outlives the daemon, and fills the
// maps the programs consult: segments, profiles, per-device profiles, internal networks,
// blocked address sets, port rules and the flow verdicts the nfqueue slow path decides.
//
// Packets of unknown web flows leave the fast path with MarkQueue set in skb->mark; the
// nftables table sends them to nfqueue. Blocked TCP flows get MarkBlock, which the table
// answers with a TCP reset.
package filter

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
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

// DefaultPinPath is where programs, links and maps are pinned when Config.PinPath is empty.
const DefaultPinPath = "/sys/fs/bpf/schoolgate"

// Errors returned by the package.
var (
	ErrUnsupported = errors.New("ebpf filter is only supported on linux")
	ErrProfileID   = fmt.Errorf("profile id must be below %d", MaxProfiles)
	ErrSegmentID   = fmt.Errorf("segment id must be at most %d", MaxSegmentID)
	ErrInvalid     = errors.New("invalid filter entry")
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

// Counters are one segment's (or the WAN's) packet counters, summed over CPUs.
type Counters struct {
	Packets, Bytes uint64
	// HandOffs counts packets marked for the slow path, FlowHits packets of allowed
	// flows passed by the flow map.
	HandOffs, FlowHits uint64
	// Drops counts dropped packets by reason; ReasonFlow also counts packets of
	// blocked TCP flows marked for a reset.
	Drops map[Reason]uint64
}
