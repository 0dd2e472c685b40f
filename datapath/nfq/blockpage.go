package nfq

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// A block page is one TCP segment: the whole IP packet stays within these sizes, so that it
// needs no fragmentation and no retransmission on any link a client can be on (1280 is
// IPv6's minimum MTU; 1400 leaves room for tunnels and PPPoE under an IPv4 MTU of 1500).
const (
	maxPagePacket4 = 1400
	maxPagePacket6 = 1280
)

// MaxBlockPageBody is the longest Config.BlockPage body that is never cut: what is left of
// an IPv6 packet of maxPagePacket6 bytes after the IP and TCP headers (with the timestamp
// option) and the HTTP response head. Over IPv4, or without timestamps, a little more fits.
const MaxBlockPageBody = maxPagePacket6 - ipv6HeaderLen - tcpHeaderLen - tcpTSLen - responseHeadLen4

// responseHeadLen4 is the length of responseHead for a body of 1000 to 9999 bytes.
const responseHeadLen4 = 132

const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	tcpHeaderLen  = 20
	tcpTSLen      = 12 // two NOPs and the timestamp option
	pageTTL       = 64
	pageWindow    = 65535
)

var errNoRequest = errors.New("nfq: no plain-HTTP request to answer")

// wantsBlockPage tells whether a flow may be answered with a block page: it was read as a
// plain-HTTP request with a Host header, and the tracker knows where the request sits in
// the stream. Anything else (TLS, QUIC, no name, a timeout) is reset as before.
func wantsBlockPage(o *outcome) bool {
	return o.kind == kindHTTP && o.name != "" && o.req.ok && o.flow.Proto == protoTCP
}

// blockResponse is the HTTP/1.1 response that carries body, with body cut so that the
// whole response fits in room bytes. The cut falls on a UTF-8 character boundary; a page
// that is too long is thus shortened, never replaced by a reset (the HTML is likely left
// unclosed, which browsers render all the same). It returns nil when not even the head
// fits.
func blockResponse(body []byte, room int) []byte {
	if room <= 0 {
		return nil
	}
	n := len(body)
	if h := len(responseHead(nil, n)); h+n > room {
		// The head for a shorter body is never longer, so the cut body still fits.
		n = room - h
	}
	if n < 0 {
		return nil
	}
	for n > 0 && n < len(body) && !utf8.RuneStart(body[n]) {
		n-- // do not split a character: body[n] must begin one
	}
	out := append(responseHead(make([]byte, 0, room), n), body[:n]...)
	if len(out) > room {
		return nil
	}
	return out
}

// responseHead appends the response's status line and headers to b.
func responseHead(b []byte, bodyLen int) []byte {
	b = append(b, "HTTP/1.1 403 Forbidden\r\n"+
		"Content-Type: text/html; charset=utf-8\r\n"+
		"Content-Length: "...)
	b = strconv.AppendInt(b, int64(bodyLen), 10)
	return append(b, "\r\n"+
		"Connection: close\r\n"+
		"Cache-Control: no-store\r\n"+
		"\r\n"...)
}

// blockPagePacket builds the IP packet that answers the held request r of flow f in the
// server's place: from the server to the client, PSH|ACK|FIN, at the server's next
// sequence number (the client's acknowledgement), acknowledging the whole request, and
// carrying the block page (cut to fit, see blockResponse). When the client sends TCP
// timestamps the segment carries them too (the client's latest echo as our clock, its
// clock as our echo), so that PAWS and stacks that insist on timestamps accept it.
func blockPagePacket(f Flow, r request, body []byte) ([]byte, error) {
	if !r.ok || f.Proto != protoTCP {
		return nil, errNoRequest
	}
	limit, ipLen := maxPagePacket4, ipv4HeaderLen
	if f.Client.Addr().Is6() {
		limit, ipLen = maxPagePacket6, ipv6HeaderLen
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(f.Server.Port()), DstPort: layers.TCPPort(f.Client.Port()),
		Seq: r.ack, Ack: r.end, PSH: true, ACK: true, FIN: true, Window: pageWindow,
	}
	tcpLen := tcpHeaderLen
	if r.ts.ok {
		tcpLen += tcpTSLen
		ts := make([]byte, 8)
		binary.BigEndian.PutUint32(ts, r.ts.ecr)
		binary.BigEndian.PutUint32(ts[4:], r.ts.val)
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
		}
	}
	payload := blockResponse(body, limit-ipLen-tcpLen)
	if payload == nil {
		return nil, errors.New("nfq: block page does not fit in a segment")
	}
	return serializeTCP(f.Server.Addr(), f.Client.Addr(), tcp, payload)
}

// serverResetPacket builds the reset that closes the server's side of flow f in the
// client's name, sent in place of a held request packet: the server never saw the request,
// so the request's first sequence number is exactly what it expects next.
func serverResetPacket(f Flow, r request) ([]byte, error) {
	if !r.ok || f.Proto != protoTCP {
		return nil, errNoRequest
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(f.Client.Port()), DstPort: layers.TCPPort(f.Server.Port()),
		Seq: r.seq, Ack: r.ack, RST: true, ACK: true,
	}
	return serializeTCP(f.Client.Addr(), f.Server.Addr(), tcp, nil)
}

// serializeTCP puts tcp and payload in an IPv4 or IPv6 packet from src to dst, with
// lengths and checksums filled in.
func serializeTCP(src, dst netip.Addr, tcp *layers.TCP, payload []byte) ([]byte, error) {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, errors.New("nfq: flow addresses of different families")
	}
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
