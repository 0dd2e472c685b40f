package nfq

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The decoder was built on gopacket; gopacket stays in the tests as an independent
// reference for what a packet says.

// refDecoder is the gopacket decoder the hand-written one replaced, configured as it was:
// a DecodingLayerParser per family with the IP, TCP, UDP and payload layers only, unknown
// layers ignored.
type refDecoder struct {
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	payload gopacket.Payload
	p4, p6  *gopacket.DecodingLayerParser
	found   []gopacket.LayerType
}

func newRefDecoder() *refDecoder {
	d := &refDecoder{found: make([]gopacket.LayerType, 0, 4)}
	d.p4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &d.ip4, &d.tcp, &d.udp, &d.payload)
	d.p6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, &d.ip6, &d.tcp, &d.udp, &d.payload)
	d.p4.IgnoreUnsupported = true
	d.p6.IgnoreUnsupported = true
	return d
}

var errRefused = errors.New("refused on purpose")

// expected is what decode must make of b: gopacket's reading, adjusted for the
// differences the decoder's doc comment lists. The adjustments turn b into the packet
// gopacket reads the way decode reads b (without IPv4 options, without a hop-by-hop
// header), or refuse it outright.
func (d *refDecoder) expected(b []byte) (packet, error) {
	switch {
	case len(b) >= ipv4HeaderLen && b[0]>>4 == 4:
		if binary.BigEndian.Uint16(b[2:]) == 0 {
			return packet{}, errRefused // total length 0
		}
		b = withoutIPv4Options(b)
	case len(b) >= ipv6HeaderLen && b[0]>>4 == 6 && isExtHeader(b[6]):
		if binary.BigEndian.Uint16(b[4:]) == 0 {
			return packet{}, errRefused // a jumbogram
		}
		var ok bool
		if b, ok = withoutExtHeaders(b); !ok {
			return packet{}, errRefused
		}
	}
	return d.decode(b)
}

// withoutIPv4Options returns b without the options in its IPv4 header, when the header
// is all there; otherwise b itself.
func withoutIPv4Options(b []byte) []byte {
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if hl <= ipv4HeaderLen || hl > len(b) || total < hl {
		return b
	}
	c := append(append([]byte{}, b[:ipv4HeaderLen]...), b[hl:]...)
	c[0] = 0x45
	binary.BigEndian.PutUint16(c[2:], uint16(total-(hl-ipv4HeaderLen)))
	return c
}

func isExtHeader(next byte) bool {
	switch next {
	case ipv6HopByHop, ipv6Routing, ipv6Fragment, ipv6AH, ipv6DestOpts:
		return true
	}
	return false
}

// withoutExtHeaders returns b, an IPv6 packet starting with extension headers, without
// them, for gopacket to read; ok is false when one does not fit in the payload, when there
// are more than six, or when one is a fragment header.
func withoutExtHeaders(b []byte) (_ []byte, ok bool) {
	n := int(binary.BigEndian.Uint16(b[4:]))
	rest := b[ipv6HeaderLen:]
	rest = rest[:min(n, len(rest))]
	next, skipped := b[6], 0
	for ; isExtHeader(next); skipped++ {
		if skipped == 6 || next == ipv6Fragment || len(rest) < 2 {
			return nil, false
		}
		hl := (int(rest[1]) + 1) * 8
		if next == ipv6AH {
			hl = (int(rest[1]) + 2) * 4
		}
		if hl > len(rest) {
			return nil, false
		}
		next, rest = rest[0], rest[hl:]
		n -= hl
	}
	c := append(append([]byte{}, b[:ipv6HeaderLen]...), rest...)
	c[6] = next
	binary.BigEndian.PutUint16(c[4:], uint16(n))
	return c, true
}

// decode is the old decode, with two changes that follow the new decoder's reading:
// malformed TCP options no longer refuse the packet (gopacket has read every other field
// by then, and the options before the bad one), and tunnelled packets are refused.
func (d *refDecoder) decode(b []byte) (packet, error) {
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
		// Only the TCP layer says this, after reading every other field and the options
		// before the bad one into d.tcp.
		if !strings.HasPrefix(err.Error(), "Invalid TCP option length") {
			return packet{}, errUndecodable
		}
		d.found = append(d.found, layers.LayerTypeTCP)
	}
	var p packet
	var src, dst netip.Addr
	var transport gopacket.LayerType
	ipLayers := 0
	for _, t := range d.found {
		switch t {
		case layers.LayerTypeIPv4:
			ipLayers++
			if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 {
				return packet{}, errUndecodable
			}
			src, _ = netip.AddrFromSlice(d.ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(d.ip4.DstIP.To4())
		case layers.LayerTypeIPv6:
			ipLayers++
			src, _ = netip.AddrFromSlice(d.ip6.SrcIP.To16())
			dst, _ = netip.AddrFromSlice(d.ip6.DstIP.To16())
		case layers.LayerTypeTCP, layers.LayerTypeUDP:
			transport = t
		}
	}
	if ipLayers != 1 {
		return packet{}, errRefused // a tunnel
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
			p.seq++
		}
	case layers.LayerTypeUDP:
		p.flow = Flow{netip.AddrPortFrom(src, uint16(d.udp.SrcPort)), netip.AddrPortFrom(dst, uint16(d.udp.DstPort)), protoUDP}
		p.payload = d.udp.Payload
	default:
		return packet{}, errUndecodable
	}
	return p, nil
}

// samePacket reports how got differs from want, or "" when they agree on every field
// (the payload's bytes included).
func samePacket(got, want packet) string {
	if g, w := packetString(got), packetString(want); g != w {
		return "got  " + g + "\nwant " + w
	}
	return ""
}

func packetString(p packet) string {
	return fmt.Sprintf("%v → %v proto=%d seq=%d ack=%d hasACK=%v syn=%v fin=%v rst=%v ts=%+v inDev=%d payload=%q",
		p.flow.Client, p.flow.Server, p.flow.Proto, p.seq, p.ack, p.hasACK, p.syn, p.fin, p.rst, p.ts, p.inDev, p.payload)
}

// gopacketTCP serialises tcp and payload in an IPv4 or IPv6 packet from src to dst with
// gopacket, lengths and checksums filled in: the reference for tcpSegment.build, and a way
// to make test packets with options laid out differently from ours.
func gopacketTCP(src, dst netip.Addr, tcp *layers.TCP, payload []byte) ([]byte, error) {
	var ip gopacket.SerializableLayer
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		ip4 := &layers.IPv4{Version: 4, TTL: pageTTL, Protocol: layers.IPProtocolTCP,
			Flags: layers.IPv4DontFragment, SrcIP: s[:], DstIP: d[:]}
		if err := tcp.SetNetworkLayerForChecksum(ip4); err != nil {
			return nil, err
		}
		ip = ip4
	} else {
		s, d := src.As16(), dst.As16()
		ip6 := &layers.IPv6{Version: 6, HopLimit: pageTTL, NextHeader: layers.IPProtocolTCP,
			SrcIP: s[:], DstIP: d[:]}
		if err := tcp.SetNetworkLayerForChecksum(ip6); err != nil {
			return nil, err
		}
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(payload)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Raw packet builders for the decoder's tests, by hand so that they can be wrong in
// exactly one place. Checksums are left zero: the decoder does not read them (the kernel
// checked what it had to).

var (
	testSrc4, testDst4 = [4]byte{10, 20, 0, 2}, [4]byte{203, 0, 113, 100}
	testSrc6           = [16]byte{0xfd, 0, 0, 0x20, 15: 2}
	testDst6           = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: 0x64}
)

// rawIPv4 is an IPv4 packet carrying l4 as protocol proto, with IP options opts (a
// multiple of 4 bytes).
func rawIPv4(proto byte, opts, l4 []byte) []byte {
	hl := ipv4HeaderLen + len(opts)
	b := make([]byte, hl, hl+len(l4))
	b[0] = 4<<4 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(l4)))
	b[8], b[9] = 64, proto
	copy(b[12:], testSrc4[:])
	copy(b[16:], testDst4[:])
	copy(b[20:], opts)
	return append(b, l4...)
}

// rawIPv6 is an IPv6 packet whose payload (extension headers included) is l4, the first
// header being next.
func rawIPv6(next byte, l4 []byte) []byte {
	b := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(l4))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6], b[7] = next, 64
	copy(b[8:], testSrc6[:])
	copy(b[24:], testDst6[:])
	return append(b, l4...)
}

// rawTCP is a TCP segment from port 40000 to 443 with options opts (a multiple of 4
// bytes).
func rawTCP(flags byte, seq, ack uint32, opts, payload []byte) []byte {
	hl := tcpHeaderLen + len(opts)
	b := make([]byte, hl, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 443)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 502)
	copy(b[20:], opts)
	return append(b, payload...)
}

// rawUDP is a UDP datagram from port 40000 to 443 whose length field says length
// (-1: the true length).
func rawUDP(length int, payload []byte) []byte {
	if length < 0 {
		length = udpHeaderLen + len(payload)
	}
	b := make([]byte, udpHeaderLen, udpHeaderLen+len(payload))
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 443)
	binary.BigEndian.PutUint16(b[4:], uint16(length))
	return append(b, payload...)
}

// ext is an IPv6 extension header (hop-by-hop, routing, destination options) of n×8
// bytes, padded with PadN.
func ext(next byte, n int) []byte {
	b := make([]byte, n*8)
	b[0], b[1] = next, byte(n-1)
	b[2], b[3] = 1, byte(n*8-4) // PadN over the rest
	return b
}

// with returns a copy of b with f applied.
func with(b []byte, f func([]byte) []byte) []byte {
	return f(append([]byte{}, b...))
}

var (
	tsOpt      = []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9}                            // NOP NOP TS 7/9
	synOpts    = []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0, 1, 3, 3, 7} // MSS SACK TS NOP WS
	ts79       = tcpTimestamp{val: 7, ecr: 9, ok: true}
	hello      = []byte("\x16\x03\x01\x00\x05hello")
	quicLike   = []byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8}
	client4    = netip.AddrPortFrom(netip.AddrFrom4(testSrc4), 40000)
	server4    = netip.AddrPortFrom(netip.AddrFrom4(testDst4), 443)
	client6    = netip.AddrPortFrom(netip.AddrFrom16(testSrc6), 40000)
	server6    = netip.AddrPortFrom(netip.AddrFrom16(testDst6), 443)
	tcp4, tcp6 = Flow{client4, server4, protoTCP}, Flow{client6, server6, protoTCP}
	udp4, udp6 = Flow{client4, server4, protoUDP}, Flow{client6, server6, protoUDP}
)

// decodeTests are the decoder's cases, each written out by hand with what it must read;
// they are also the seeds of FuzzDecode (testdata/fuzz/FuzzDecode, see TestDecodeSeeds).
var decodeTests = []struct {
	name string
	pkt  []byte
	want *packet // nil: refused
}{
	{"ipv4-tcp-syn-options", rawIPv4(6, nil, rawTCP(tcpSYN, 99, 0, synOpts, nil)),
		&packet{flow: tcp4, seq: 100, syn: true, ts: tcpTimestamp{val: 256, ok: true}, payload: []byte{}}},
	{"ipv4-tcp-timestamp-data", rawIPv4(6, nil, rawTCP(tcpACK|tcpPSH, 1000, 5000, tsOpt, hello)),
		&packet{flow: tcp4, seq: 1000, ack: 5000, hasACK: true, ts: ts79, payload: hello}},
	{"ipv6-tcp-timestamp-data", rawIPv6(6, rawTCP(tcpACK|tcpPSH, 1000, 5000, tsOpt, hello)),
		&packet{flow: tcp6, seq: 1000, ack: 5000, hasACK: true, ts: ts79, payload: hello}},
	{"ipv4-tcp-fin-rst", rawIPv4(6, nil, rawTCP(tcpFIN|tcpRST, 1, 2, nil, nil)),
		&packet{flow: tcp4, seq: 1, ack: 2, fin: true, rst: true, payload: []byte{}}},
	{"ipv4-udp", rawIPv4(17, nil, rawUDP(-1, quicLike)), &packet{flow: udp4, payload: quicLike}},
	{"ipv6-udp", rawIPv6(17, rawUDP(-1, quicLike)), &packet{flow: udp6, payload: quicLike}},
	{"ipv4-trailing-bytes", append(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), 0, 0, 0, 0),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"ipv6-trailing-bytes", append(rawIPv6(17, rawUDP(-1, quicLike)), 0, 0),
		&packet{flow: udp6, payload: quicLike}},
	{"ipv4-truncated-payload", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello))[:45],
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, payload: hello[:5]}},
	{"ipv4-options", rawIPv4(6, []byte{0x94, 4, 0, 0, 1, 1, 1, 0}, rawTCP(tcpACK, 1, 2, tsOpt, hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, ts: ts79, payload: hello}},
	{"ipv4-malformed-options", rawIPv4(6, []byte{0x94, 9, 0, 0}, rawTCP(tcpACK, 1, 2, nil, hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"ipv6-hop-by-hop", rawIPv6(0, append(ext(6, 1), rawTCP(tcpACK, 1, 2, tsOpt, hello)...)),
		&packet{flow: tcp6, seq: 1, ack: 2, hasACK: true, ts: ts79, payload: hello}},
	{"ipv6-hop-by-hop-udp", rawIPv6(0, append(ext(17, 2), rawUDP(-1, quicLike)...)),
		&packet{flow: udp6, payload: quicLike}},
	// Behind other extension headers, as the fast path reads them: a ClientHello behind a
	// destination options header must not pass unread.
	{"ipv6-destination-options", rawIPv6(60, append(ext(6, 1), rawTCP(tcpACK, 1, 2, nil, hello)...)),
		&packet{flow: tcp6, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"ipv6-routing", rawIPv6(43, append(ext(6, 1), rawTCP(tcpACK, 1, 2, nil, hello)...)),
		&packet{flow: tcp6, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"ipv6-two-hop-by-hop", rawIPv6(0, append(ext(0, 1), append(ext(6, 1), rawTCP(tcpACK, 1, 2, nil, hello)...)...)),
		&packet{flow: tcp6, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"ipv6-ah-then-destination-options", rawIPv6(51, append([]byte{60, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}, append(ext(6, 2), rawTCP(tcpACK, 1, 2, tsOpt, hello)...)...)),
		&packet{flow: tcp6, seq: 1, ack: 2, hasACK: true, ts: ts79, payload: hello}},
	{"ipv6-six-extension-headers", rawIPv6(60, append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(17, 1), rawUDP(-1, quicLike)...)...)...)...)...)...)),
		&packet{flow: udp6, payload: quicLike}},
	{"tcp-malformed-option-after-timestamp", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, append(tsOpt, 5, 1, 0, 0), hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, ts: ts79, payload: hello}},
	{"tcp-option-too-long-before-timestamp", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, append([]byte{1, 1, 5, 40}, tsOpt...), hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"tcp-option-end-before-timestamp", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, append([]byte{0, 0, 0, 0}, tsOpt...), hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"tcp-timestamp-wrong-length", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, []byte{8, 8, 0, 0, 0, 7, 0, 0}, hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, payload: hello}},
	{"tcp-two-timestamps", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, append([]byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, tsOpt...), hello)),
		&packet{flow: tcp4, seq: 1, ack: 2, hasACK: true, ts: ts79, payload: hello}},
	{"udp-length-short", rawIPv4(17, nil, rawUDP(10, quicLike)), &packet{flow: udp4, payload: quicLike[:2]}},
	{"udp-length-long", rawIPv4(17, nil, rawUDP(100, quicLike)), &packet{flow: udp4, payload: quicLike}},
	{"udp-length-zero", rawIPv6(17, rawUDP(0, quicLike)), &packet{flow: udp6, payload: quicLike}},

	{"empty", nil, nil},
	{"version-5", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[0] = 0x55; return b }), nil},
	{"ipv4-short-header", rawIPv4(6, nil, nil)[:19], nil},
	{"ipv4-ihl-4", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[0] = 0x44; return b }), nil},
	{"ipv4-ihl-beyond-packet", with(rawIPv4(6, nil, nil), func(b []byte) []byte { b[0] = 0x46; return b }), nil},
	{"ipv4-total-length-0", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[2], b[3] = 0, 0; return b }), nil},
	{"ipv4-total-length-19", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[2], b[3] = 0, 19; return b }), nil},
	{"ipv4-more-fragments", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[6] = 0x20; return b }), nil},
	{"ipv4-fragment-offset", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[7] = 1; return b }), nil},
	{"ipv4-dont-fragment", with(rawIPv4(17, nil, rawUDP(-1, quicLike)), func(b []byte) []byte { b[6] = 0x40; return b }),
		&packet{flow: udp4, payload: quicLike}},
	{"ipv4-icmp", rawIPv4(1, nil, []byte{8, 0, 0, 0, 0, 1, 0, 1}), nil},
	{"ipv4-in-ipv4", rawIPv4(4, nil, rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello))), nil},
	{"ipv6-in-ipv6", rawIPv6(41, rawIPv6(6, rawTCP(tcpACK, 1, 2, nil, hello))), nil},
	{"ipv6-short-header", rawIPv6(6, nil)[:39], nil},
	{"ipv6-payload-length-0", with(rawIPv6(6, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[4], b[5] = 0, 0; return b }), nil},
	{"ipv6-payload-length-short", with(rawIPv6(6, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[4], b[5] = 0, 19; return b }), nil},
	{"ipv6-fragment", rawIPv6(44, append([]byte{6, 0, 0, 1, 0, 0, 0, 1}, rawTCP(tcpACK, 1, 2, nil, hello)...)), nil},
	{"ipv6-destination-options-then-fragment", rawIPv6(60, append(ext(44, 1), append([]byte{6, 0, 0, 0, 0, 0, 0, 1}, rawTCP(tcpACK, 1, 2, nil, hello)...)...)), nil},
	{"ipv6-seven-extension-headers", rawIPv6(60, append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(60, 1), append(ext(6, 1), rawTCP(tcpACK, 1, 2, nil, hello)...)...)...)...)...)...)...)), nil},
	{"ipv6-ah-beyond-payload", rawIPv6(51, []byte{6, 20, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}), nil},
	{"ipv6-hop-by-hop-beyond-payload", with(rawIPv6(0, append(ext(6, 1), rawTCP(tcpACK, 1, 2, nil, hello)...)), func(b []byte) []byte { b[41] = 200; return b }), nil},
	{"ipv6-hop-by-hop-beyond-payload-length", with(rawIPv6(0, append(ext(6, 2), rawTCP(tcpACK, 1, 2, nil, hello)...)), func(b []byte) []byte { b[4], b[5] = 0, 12; return b }), nil},
	{"ipv6-icmp", rawIPv6(58, []byte{128, 0, 0, 0, 0, 1, 0, 1}), nil},
	{"tcp-short-header", rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, nil)[:19]), nil},
	{"tcp-data-offset-4", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[32] = 4 << 4; return b }), nil},
	{"tcp-data-offset-beyond-segment", with(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, hello)), func(b []byte) []byte { b[32] = 15 << 4; return b }), nil},
	{"tcp-data-offset-beyond-total-length", with(append(rawIPv4(6, nil, rawTCP(tcpACK, 1, 2, nil, nil)), make([]byte, 40)...), func(b []byte) []byte { b[32] = 8 << 4; return b }), nil},
	{"udp-short-header", rawIPv6(17, rawUDP(-1, nil)[:7]), nil},
	{"udp-length-5", rawIPv4(17, nil, rawUDP(5, quicLike)), nil},
}

func TestDecode(t *testing.T) {
	dec, ref := newDecoder(), newRefDecoder()
	for _, tt := range decodeTests {
		got, err := dec.decode(tt.pkt)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("%s: decoded %s, want it refused", tt.name, packetString(got))
		case tt.want != nil && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != nil:
			if d := samePacket(got, *tt.want); d != "" {
				t.Errorf("%s:\n%s", tt.name, d)
			}
		}
		// The reference agrees with the hand-written expectations too.
		p, err := ref.expected(tt.pkt)
		if (err == nil) != (tt.want != nil) {
			t.Errorf("%s: reference says %v", tt.name, err)
		} else if err == nil {
			if d := samePacket(p, *tt.want); d != "" {
				t.Errorf("%s: reference:\n%s", tt.name, d)
			}
		}
	}
}

// FuzzDecode checks the decoder against gopacket's reading of the same bytes (see
// refDecoder.expected): both accept or both refuse, and agree on every field; whatever
// decode accepts, its payload aliases the packet.
func FuzzDecode(f *testing.F) {
	dec, ref := newDecoder(), newRefDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := dec.decode(b)
		want, werr := ref.expected(b)
		switch {
		case err == nil && werr != nil:
			t.Fatalf("decoded %s; gopacket: %v", packetString(got), werr)
		case err != nil && werr == nil:
			t.Fatalf("refused; gopacket read %s", packetString(want))
		case err != nil:
			return
		}
		if d := samePacket(got, want); d != "" {
			t.Fatal(d)
		}
		if n := len(got.payload); n > 0 {
			at := cap(b) - cap(got.payload)
			if at < 0 || at+n > len(b) || &b[at] != &got.payload[0] {
				t.Fatal("the payload is a copy")
			}
		}
	})
}

func TestDecodeAllocs(t *testing.T) {
	dec := newDecoder()
	var pkts [][]byte
	for _, tt := range decodeTests {
		if tt.want != nil {
			pkts = append(pkts, tt.pkt)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, b := range pkts {
			if _, err := dec.decode(b); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("%v allocations per run, want none", n)
	}
}

// BenchmarkDecode decodes a client's data segment with timestamps, over IPv4 and IPv6.
func BenchmarkDecode(b *testing.B) {
	get := []byte("GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n")
	pkts := [][]byte{tcpPacket(b, httpFlow4, 1000, 5000, get), tcpPacket(b, httpFlow6, 1000, 5000, get)}
	dec := newDecoder()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := dec.decode(pkts[i&1]); err != nil {
			b.Fatal(err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the committed fuzz seeds")

// TestDecodeSeeds checks that every case of decodeTests, and a packet of each family as
// gopacket lays it out, is in FuzzDecode's committed corpus;
// `go test -run TestDecodeSeeds ./datapath/nfq -update` writes them.
func TestDecodeSeeds(t *testing.T) {
	get := []byte("GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n")
	seeds := map[string][]byte{
		"gopacket-ipv4-tcp": tcpPacket(t, httpFlow4, 1000, 5000, get),
		"gopacket-ipv6-tcp": tcpPacket(t, httpFlow6, 0xfffffff0, 5000, get),
	}
	for _, tt := range decodeTests {
		seeds[tt.name] = tt.pkt
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, b := range seeds {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (run with -update): %v", name, err)
		}
	}
}
