package nfq

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"unicode/utf8"
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
	seg := tcpSegment{
		src: f.Server, dst: f.Client,
		seq: r.ack, ack: r.end, flags: tcpPSH | tcpACK | tcpFIN, window: pageWindow,
	}
	tcpLen := tcpHeaderLen
	if r.ts.ok {
		tcpLen += tcpTSLen
		seg.ts = tcpTimestamp{val: r.ts.ecr, ecr: r.ts.val, ok: true}
	}
	seg.payload = blockResponse(body, limit-ipLen-tcpLen)
	if seg.payload == nil {
		return nil, errors.New("nfq: block page does not fit in a segment")
	}
	return seg.build()
}

// serverResetPacket builds the reset that closes the server's side of flow f in the
// client's name, sent in place of a held request packet: the server never saw the request,
// so the request's first sequence number is exactly what it expects next.
func serverResetPacket(f Flow, r request) ([]byte, error) {
	if !r.ok || f.Proto != protoTCP {
		return nil, errNoRequest
	}
	seg := tcpSegment{src: f.Client, dst: f.Server, seq: r.seq, ack: r.ack, flags: tcpRST | tcpACK}
	return seg.build()
}

// tcpSegment is a TCP segment we send in another host's name.
type tcpSegment struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8 // tcpFIN, tcpACK…
	window   uint16
	ts       tcpTimestamp // sent as NOP, NOP, timestamp (the usual aligned layout) when ok
	payload  []byte
}

// build returns the IP packet that carries s: IPv4 with Don't Fragment set (the segment
// is sized not to need it) or IPv6, with a TTL or hop limit of pageTTL, lengths and
// checksums filled in. Everything else in the headers is zero.
func (s *tcpSegment) build() ([]byte, error) {
	src, dst := s.src.Addr(), s.dst.Addr()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, errors.New("nfq: flow addresses of different families")
	}
	ipLen, tcpLen := ipv6HeaderLen, tcpHeaderLen
	if src.Is4() {
		ipLen = ipv4HeaderLen
	}
	if s.ts.ok {
		tcpLen += tcpTSLen
	}
	segLen := tcpLen + len(s.payload)
	if ipLen+segLen > 0xffff {
		return nil, errors.New("nfq: segment too long for an IP packet")
	}
	b := make([]byte, ipLen+segLen)

	tcp := b[ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], s.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], s.window)
	if s.ts.ok {
		opt := tcp[tcpHeaderLen:]
		opt[0], opt[1], opt[2], opt[3] = tcpOptNOP, tcpOptNOP, tcpOptTimestamp, tcpOptTimestampLen
		binary.BigEndian.PutUint32(opt[4:], s.ts.val)
		binary.BigEndian.PutUint32(opt[8:], s.ts.ecr)
	}
	copy(tcp[tcpLen:], s.payload)

	// The TCP checksum covers a pseudo-header of the addresses, the protocol and the
	// segment's length (RFC 793, RFC 8200 §8.1), which is the same sum for both families
	// once the addresses are in.
	var sum uint32
	if src.Is4() {
		ip := b[:ipv4HeaderLen]
		ip[0] = 4<<4 | ipv4HeaderLen/4
		binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
		binary.BigEndian.PutUint16(ip[6:], ipv4DontFragment)
		ip[8] = pageTTL
		ip[9] = protoTCP
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^foldChecksum(addChecksum(0, ip)))
		sum = addChecksum(0, ip[12:20])
	} else {
		ip := b[:ipv6HeaderLen]
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(segLen))
		ip[6] = protoTCP
		ip[7] = pageTTL
		s16, d16 := src.As16(), dst.As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
		sum = addChecksum(0, ip[8:40])
	}
	sum += protoTCP + uint32(segLen)
	binary.BigEndian.PutUint16(tcp[16:], ^foldChecksum(addChecksum(sum, tcp)))
	return b, nil
}

// ipv4DontFragment is the DF flag in the IPv4 flags and fragment offset word.
const ipv4DontFragment = 0x4000

// addChecksum adds b to the Internet checksum's running sum (RFC 1071): big-endian 16-bit
// words, an odd last byte padded with zero. A uint32 cannot overflow for an IP packet.
func addChecksum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// foldChecksum folds the carries of a running sum back into 16 bits (ones' complement
// addition); the checksum is its complement.
func foldChecksum(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
