package nfq

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
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

// decoder turns raw IP packets (nfqueue hands us the network layer, no Ethernet header)
// into packets without allocating: gopacket's DecodingLayerParser reuses its layers. A
// decoder is not safe for concurrent use; each queue has its own.
type decoder struct {
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	payload gopacket.Payload
	p4, p6  *gopacket.DecodingLayerParser
	found   []gopacket.LayerType
	// The last MAC address formatted, and its text: a client's packets come in runs.
	lastMAC    [6]byte
	lastMACStr string
}

func newDecoder() *decoder {
	d := &decoder{found: make([]gopacket.LayerType, 0, 4)}
	d.p4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &d.ip4, &d.tcp, &d.udp, &d.payload)
	d.p6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, &d.ip6, &d.tcp, &d.udp, &d.payload)
	for _, p := range []*gopacket.DecodingLayerParser{d.p4, d.p6} {
		// An unknown next layer (an IPv6 extension header, an ICMP packet) is not an
		// error here: decode checks that it found a transport layer.
		p.IgnoreUnsupported = true
	}
	return d
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

func (d *decoder) decode(b []byte) (packet, error) {
	if len(b) == 0 {
		return packet{}, errUndecodable
	}
	var parser *gopacket.DecodingLayerParser
	switch b[0] >> 4 {
	case 4:
		parser = d.p4
	case 6:
		parser = d.p6
	default:
		return packet{}, errUndecodable
	}
	d.found = d.found[:0]
	if err := parser.DecodeLayers(b, &d.found); err != nil {
		return packet{}, errUndecodable
	}
	var p packet
	var src, dst netip.Addr
	var transport gopacket.LayerType
	for _, t := range d.found {
		switch t {
		case layers.LayerTypeIPv4:
			if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 {
				return packet{}, errUndecodable // fragments carry no reliable ports
			}
			src, _ = netip.AddrFromSlice(d.ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(d.ip4.DstIP.To4())
		case layers.LayerTypeIPv6:
			src, _ = netip.AddrFromSlice(d.ip6.SrcIP.To16())
			dst, _ = netip.AddrFromSlice(d.ip6.DstIP.To16())
		case layers.LayerTypeTCP, layers.LayerTypeUDP:
			transport = t
		}
	}
	switch transport {
	case layers.LayerTypeTCP:
		p.flow = Flow{netip.AddrPortFrom(src, uint16(d.tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(d.tcp.DstPort)), protoTCP}
		p.seq, p.syn, p.fin, p.rst = d.tcp.Seq, d.tcp.SYN, d.tcp.FIN, d.tcp.RST
		p.ack, p.hasACK = d.tcp.Ack, d.tcp.ACK
		for _, o := range d.tcp.Options {
			if o.OptionType == layers.TCPOptionKindTimestamps && len(o.OptionData) == 8 {
				p.ts = tcpTimestamp{val: binary.BigEndian.Uint32(o.OptionData), ecr: binary.BigEndian.Uint32(o.OptionData[4:]), ok: true}
			}
		}
		p.payload = d.tcp.Payload
		if p.syn {
			p.seq++ // SYN occupies one sequence number before the data
		}
	case layers.LayerTypeUDP:
		p.flow = Flow{netip.AddrPortFrom(src, uint16(d.udp.SrcPort)), netip.AddrPortFrom(dst, uint16(d.udp.DstPort)), protoUDP}
		p.payload = d.udp.Payload
	default:
		return packet{}, errUndecodable
	}
	if !src.IsValid() || !dst.IsValid() {
		return packet{}, errUndecodable
	}
	return p, nil
}
