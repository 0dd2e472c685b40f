package nfq

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// Protocols of the flows the slow path sees.
const (
	protoTCP = 6
	protoUDP = 17
)

// Flow identifies a connection by its client (the side in a school segment) and server.
type Flow struct {
	Client, Server netip.AddrPort
	Proto          uint8 // 6 TCP, 17 UDP
}

// packet is what the slow path needs from one queued packet.
type packet struct {
	flow    Flow
	seq     uint32 // TCP sequence number of the payload's first byte
	ack     uint32 // TCP acknowledgement number, when hasACK
	hasACK  bool
	syn     bool
	fin     bool
	rst     bool
	ts      tcpTimestamp // TCP timestamp option, when ts.ok
	payload []byte       // aliases the packet
	inDev   int          // interface the packet came in on (set by the caller); 0 unknown
}

// tcpTimestamp is a TCP timestamp option (RFC 7323): the sender's clock and the echo of
// the peer's.
type tcpTimestamp struct {
	val, ecr uint32
	ok       bool
}

var errUndecodable = errors.New("not an IPv4/IPv6 TCP or UDP packet")

// TCP header flags, as they sit in the header's 14th byte.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// Header fields the decoder reads.
const (
	ipv4MoreFragments = 0x2000 // in the flags and fragment offset word
	ipv4FragOffset    = 0x1fff
	// Next header values of the IPv6 extension headers the decoder skips, as the fast path
	// does (bpf/schoolgate.c), and how many it skips at most (its MAX_EXT_HDRS).
	ipv6HopByHop       = 0
	ipv6Routing        = 43
	ipv6Fragment       = 44
	ipv6AH             = 51
	ipv6DestOpts       = 60
	maxExtHeaders      = 6
	tcpOptEnd          = 0
	tcpOptNOP          = 1
	tcpOptTimestamp    = 8
	tcpOptTimestampLen = 10
	udpHeaderLen       = 8
)

// decoder turns raw IP packets (nfqueue hands us the network layer, no Ethernet header)
// into packets without allocating. It reads only the few fields the slow path needs, by
// hand: a general packet library costs megabytes of lookup tables that would stay resident
// in the daemon. A decoder is not safe for concurrent use; each queue has its own.
//
// It reads what gopacket (which it replaced) read, with these deliberate differences, all
// on packets our kernel either never forwards or that are better filtered than refused
// (a refused packet is judged by the failure mode, so under FailOpen it passes unread):
//   - IPv4 options are skipped, not checked: the kernel has already dropped packets whose
//     options are malformed before they reach the forward hook.
//   - An IPv4 total length of 0 is refused; gopacket took it as the buffer's length.
//   - TCP options are read as Linux reads them: a malformed option ends the walk (keeping a
//     timestamp seen before it) instead of refusing the packet, since the server's stack
//     accepts such a segment and its data must not slip past unread.
//   - IPv6 extension headers (hop-by-hop, routing, destination options, AH) are skipped by
//     their lengths, up to six, as the fast path skips them before it queues a flow;
//     gopacket read past a hop-by-hop header only. Refusing the others would let a client
//     put its ClientHello behind a destination options header and, under failure_mode
//     open, past the filter unread. A fragment header, or a seventh extension header, is
//     refused; so is an IPv6 payload length of 0 (a jumbogram).
//   - Tunnelled packets (IPv4 in IPv4, IPv6 in IPv6), which gopacket decoded to their inner
//     addresses, are refused: the fast path never queues them, and a verdict keyed by the
//     inner addresses would not match the kernel's flow anyway.
type decoder struct {
	// The last MAC address formatted, and its text: a client's packets come in runs.
	lastMAC    [6]byte
	lastMACStr string
}

func newDecoder() *decoder {
	return &decoder{}
}

// mac formats a 6-byte MAC address as net.HardwareAddr does; anything else is "".
func (d *decoder) mac(hw []byte) string {
	if len(hw) != 6 {
		return ""
	}
	if d.lastMACStr == "" || [6]byte(hw) != d.lastMAC {
		d.lastMAC, d.lastMACStr = [6]byte(hw), net.HardwareAddr(hw).String()
	}
	return d.lastMACStr
}

// decode reads an IPv4 or IPv6 packet carrying TCP or UDP. The payload aliases b.
func (d *decoder) decode(b []byte) (packet, error) {
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte // the transport header and what follows, within the IP length
	var ok bool
	if len(b) == 0 {
		return packet{}, errUndecodable
	}
	switch b[0] >> 4 {
	case 4:
		src, dst, proto, l4, ok = ipv4Header(b)
	case 6:
		src, dst, proto, l4, ok = ipv6Header(b)
	}
	if !ok {
		return packet{}, errUndecodable
	}
	var p packet
	var sport, dport uint16
	switch proto {
	case protoTCP:
		sport, dport, ok = readTCP(&p, l4)
	case protoUDP:
		sport, dport, ok = readUDP(&p, l4)
	default:
		ok = false
	}
	if !ok {
		return packet{}, errUndecodable
	}
	p.flow = Flow{Client: netip.AddrPortFrom(src, sport), Server: netip.AddrPortFrom(dst, dport), Proto: proto}
	return p, nil
}

// ipv4Header reads an IPv4 header and returns what it carries, cut to the total length
// (a frame can be longer than the packet). A packet shorter than its total length keeps
// what there is, as gopacket did: only a copy range can cut one, and the start of a
// segment is still worth reading. Fragments are refused: only the first carries the
// ports, and none carries the whole transport payload.
func ipv4Header(b []byte) (src, dst netip.Addr, proto uint8, l4 []byte, ok bool) {
	if len(b) < ipv4HeaderLen || b[0]>>4 != 4 {
		return
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if hl < ipv4HeaderLen || hl > len(b) || total < hl {
		return
	}
	if frag := binary.BigEndian.Uint16(b[6:]); frag&(ipv4MoreFragments|ipv4FragOffset) != 0 {
		return
	}
	src = netip.AddrFrom4([4]byte(b[12:16]))
	dst = netip.AddrFrom4([4]byte(b[16:20]))
	return src, dst, b[9], b[hl:min(total, len(b))], true
}

// ipv6Header reads an IPv6 header and the extension headers after it, and returns the
// next header and what follows, cut to the payload length. Routing headers are skipped
// whatever their type: the addresses that name the flow are those of the packet as it is.
func ipv6Header(b []byte) (src, dst netip.Addr, proto uint8, l4 []byte, ok bool) {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 {
		return
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if n == 0 {
		return // a jumbogram: nfqueue's copy range could not hold one anyway
	}
	l4 = b[ipv6HeaderLen:]
	l4 = l4[:min(n, len(l4))]
	proto = b[6]
	for range maxExtHeaders {
		var hl int
		switch proto {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			hl = 8 // next header, then the length in 8-byte units beyond the first 8
			if len(l4) >= 2 {
				hl = (int(l4[1]) + 1) * 8
			}
		case ipv6AH:
			hl = 12 // the length is in 4-byte units, less 2 (RFC 4302)
			if len(l4) >= 2 {
				hl = (int(l4[1]) + 2) * 4
			}
		default:
			// A fragment header too ends here: only the first fragment would carry the
			// ports, and none the whole transport payload (conntrack reassembles before
			// the queue, so they are not expected).
			return finishIPv6(b, proto, l4)
		}
		if hl > len(l4) {
			return
		}
		proto, l4 = l4[0], l4[hl:]
	}
	return finishIPv6(b, proto, l4)
}

// finishIPv6 returns an IPv6 packet's addresses with its transport header, refusing a
// packet whose next header is still an extension header.
func finishIPv6(b []byte, proto uint8, l4 []byte) (src, dst netip.Addr, _ uint8, _ []byte, ok bool) {
	switch proto {
	case ipv6HopByHop, ipv6Routing, ipv6Fragment, ipv6AH, ipv6DestOpts:
		return
	}
	src = netip.AddrFrom16([16]byte(b[8:24]))
	dst = netip.AddrFrom16([16]byte(b[24:40]))
	return src, dst, proto, l4, true
}

// readTCP fills p's TCP fields from the segment b and returns its ports.
func readTCP(p *packet, b []byte) (sport, dport uint16, ok bool) {
	if len(b) < tcpHeaderLen {
		return 0, 0, false
	}
	off := int(b[12]>>4) * 4
	if off < tcpHeaderLen || off > len(b) {
		return 0, 0, false
	}
	flags := b[13]
	p.seq = binary.BigEndian.Uint32(b[4:])
	p.ack = binary.BigEndian.Uint32(b[8:])
	p.hasACK = flags&tcpACK != 0
	p.syn = flags&tcpSYN != 0
	p.fin = flags&tcpFIN != 0
	p.rst = flags&tcpRST != 0
	p.ts = tcpTimestampOption(b[tcpHeaderLen:off])
	p.payload = b[off:]
	if p.syn {
		p.seq++ // SYN occupies one sequence number before the data
	}
	return binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:]), true
}

// tcpTimestampOption finds the timestamp option in a TCP header's options the way Linux
// does (tcp_parse_options), since the receiving stack's reading is the one that counts:
// end-of-list stops the walk, a NOP is one byte, any other option has a length of at
// least 2 that must fit; an impossible length stops the walk but keeps what came before.
// Of several timestamp options the last counts, as in Linux and gopacket.
func tcpTimestampOption(opts []byte) tcpTimestamp {
	var ts tcpTimestamp
	for len(opts) > 0 {
		switch opts[0] {
		case tcpOptEnd:
			return ts
		case tcpOptNOP:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 {
			return ts
		}
		n := int(opts[1])
		if n < 2 || n > len(opts) {
			return ts
		}
		if opts[0] == tcpOptTimestamp && n == tcpOptTimestampLen {
			ts = tcpTimestamp{val: binary.BigEndian.Uint32(opts[2:]), ecr: binary.BigEndian.Uint32(opts[6:]), ok: true}
		}
		opts = opts[n:]
	}
	return ts
}

// readUDP sets p's payload from the datagram b and returns its ports. The payload ends where the
// UDP length says, or at the end of the IP payload if that comes first; a length of 0 is
// read as "the rest", as Linux reads it over IPv6 (and gopacket read it everywhere).
func readUDP(p *packet, b []byte) (sport, dport uint16, ok bool) {
	if len(b) < udpHeaderLen {
		return 0, 0, false
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	switch {
	case n == 0:
		n = len(b)
	case n < udpHeaderLen:
		return 0, 0, false
	}
	p.payload = b[udpHeaderLen:min(n, len(b))]
	return binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:]), true
}
