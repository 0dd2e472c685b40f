package nfq

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	httpFlow4 = Flow{
		Client: netip.MustParseAddrPort("10.20.0.2:40000"),
		Server: netip.MustParseAddrPort("203.0.113.100:80"),
		Proto:  protoTCP,
	}
	httpFlow6 = Flow{
		Client: netip.MustParseAddrPort("[fd00:20::2]:40000"),
		Server: netip.MustParseAddrPort("[2001:db8:1::100]:80"),
		Proto:  protoTCP,
	}
)

// ones is the Internet checksum's sum (RFC 1071) computed byte by byte, independently of
// the package's word-at-a-time helpers: even bytes are the high halves of 16-bit words.
func ones(parts ...[]byte) uint16 {
	var sum uint64
	for _, b := range parts {
		for i, c := range b {
			if i%2 == 0 {
				sum += uint64(c) << 8
			} else {
				sum += uint64(c)
			}
		}
	}
	for sum>>16 != 0 {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// checkChecksums verifies the IPv4 header checksum and the TCP checksum of pkt: summed
// with their checksums, header and segment come to 0xffff. (TestTCPSegmentBuild checks
// the bytes themselves against gopacket's serializer.)
func checkChecksums(t *testing.T, pkt []byte) {
	t.Helper()
	var pseudo []byte
	var seg []byte
	if pkt[0]>>4 == 4 {
		ihl := int(pkt[0]&0xf) * 4
		if got := ones(pkt[:ihl]); got != 0xffff {
			t.Errorf("IPv4 header checksum: sum %#x, want 0xffff", got)
		}
		seg = pkt[ihl:]
		pseudo = append(append([]byte{}, pkt[12:20]...), 0, 6, byte(len(seg)>>8), byte(len(seg)))
	} else {
		seg = pkt[40:]
		pseudo = append(append([]byte{}, pkt[8:40]...), 0, 0, byte(len(seg)>>8), byte(len(seg)), 0, 0, 0, 6)
	}
	if got := ones(pseudo, seg); got != 0xffff { // pseudo is of even length
		t.Errorf("TCP checksum: sum %#x, want 0xffff", got)
	}
}

// parseTCP decodes pkt as IPv4 or IPv6 and TCP.
func parseTCP(t *testing.T, pkt []byte) (src, dst netip.Addr, tcp *layers.TCP) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decoding: %v", el.Error())
	}
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		if int(ip.Length) != len(pkt) {
			t.Errorf("IPv4 length %d, packet %d", ip.Length, len(pkt))
		}
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		if int(ip.Length)+40 != len(pkt) {
			t.Errorf("IPv6 payload length %d, packet %d", ip.Length, len(pkt))
		}
	default:
		t.Fatalf("no IP layer in %x", pkt)
	}
	tcp, ok := p.TransportLayer().(*layers.TCP)
	if !ok {
		t.Fatalf("no TCP layer in %x", pkt)
	}
	checkChecksums(t, pkt)
	return src, dst, tcp
}

func TestBlockPagePacket(t *testing.T) {
	page := []byte("<!doctype html><title>Blocked</title><p>blocked.test is blocked — «adult»</p>")
	tests := []struct {
		name  string
		flow  Flow
		req   request
		limit int
	}{
		{"IPv4", httpFlow4, request{seq: 1000, end: 1077, ack: 5000, ok: true}, maxPagePacket4},
		{"IPv6", httpFlow6, request{seq: 1000, end: 1077, ack: 5000, ok: true}, maxPagePacket6},
		{"IPv4 timestamps", httpFlow4, request{seq: 0xfffffff0, end: 60, ack: 0xffffffff, ts: tcpTimestamp{val: 111, ecr: 222, ok: true}, ok: true}, maxPagePacket4},
		{"IPv6 timestamps", httpFlow6, request{seq: 7, end: 8, ack: 9, ts: tcpTimestamp{val: 0xdeadbeef, ecr: 0xfeedface, ok: true}, ok: true}, maxPagePacket6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt, err := blockPagePacket(tt.flow, tt.req, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) > tt.limit {
				t.Errorf("packet is %d bytes, want at most %d", len(pkt), tt.limit)
			}
			src, dst, tcp := parseTCP(t, pkt)
			if src != tt.flow.Server.Addr() || dst != tt.flow.Client.Addr() {
				t.Errorf("addresses %v → %v, want %v → %v", src, dst, tt.flow.Server.Addr(), tt.flow.Client.Addr())
			}
			if int(tcp.SrcPort) != 80 || int(tcp.DstPort) != 40000 {
				t.Errorf("ports %d → %d, want 80 → 40000", tcp.SrcPort, tcp.DstPort)
			}
			if tcp.Seq != tt.req.ack || tcp.Ack != tt.req.end {
				t.Errorf("seq %d ack %d, want %d %d", tcp.Seq, tcp.Ack, tt.req.ack, tt.req.end)
			}
			if !tcp.PSH || !tcp.ACK || !tcp.FIN || tcp.RST || tcp.SYN || tcp.URG {
				t.Errorf("flags PSH=%v ACK=%v FIN=%v RST=%v SYN=%v URG=%v, want PSH|ACK|FIN", tcp.PSH, tcp.ACK, tcp.FIN, tcp.RST, tcp.SYN, tcp.URG)
			}
			if tcp.Window == 0 {
				t.Error("zero window")
			}
			var ts []byte
			for _, o := range tcp.Options {
				if o.OptionType == layers.TCPOptionKindTimestamps {
					ts = o.OptionData
				}
			}
			switch {
			case tt.req.ts.ok && len(ts) != 8:
				t.Errorf("no timestamp option: %v", tcp.Options)
			case tt.req.ts.ok:
				// Our clock is the client's echo of the server's; our echo is the client's.
				if v, e := binary.BigEndian.Uint32(ts), binary.BigEndian.Uint32(ts[4:]); v != tt.req.ts.ecr || e != tt.req.ts.val {
					t.Errorf("timestamps %d/%d, want %d/%d", v, e, tt.req.ts.ecr, tt.req.ts.val)
				}
			case ts != nil:
				t.Errorf("timestamp option %x where the client sent none", ts)
			}

			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(tcp.Payload)), nil)
			if err != nil {
				t.Fatalf("reading the response: %v\n%s", err, tcp.Payload)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 403 || resp.Proto != "HTTP/1.1" || !bytes.Equal(body, page) {
				t.Errorf("got %s %d %q, want HTTP/1.1 403 and the page", resp.Proto, resp.StatusCode, body)
			}
			for k, want := range map[string]string{
				"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			// Go's reader turns "Connection: close" into resp.Close and drops the header.
			if !bytes.Contains(tcp.Payload, []byte("\r\nConnection: close\r\n")) {
				t.Errorf("no Connection: close in %q", tcp.Payload)
			}
			if resp.ContentLength != int64(len(page)) || !resp.Close {
				t.Errorf("Content-Length %d close %v, want %d true", resp.ContentLength, resp.Close, len(page))
			}
		})
	}
}

func TestServerResetPacket(t *testing.T) {
	for _, f := range []Flow{httpFlow4, httpFlow6} {
		req := request{seq: 1000, end: 1077, ack: 5000, ts: tcpTimestamp{val: 1, ecr: 2, ok: true}, ok: true}
		pkt, err := serverResetPacket(f, req)
		if err != nil {
			t.Fatal(err)
		}
		src, dst, tcp := parseTCP(t, pkt)
		if src != f.Client.Addr() || dst != f.Server.Addr() || int(tcp.SrcPort) != 40000 || int(tcp.DstPort) != 80 {
			t.Errorf("%v: reset goes %v:%d → %v:%d, want client → server", f, src, tcp.SrcPort, dst, tcp.DstPort)
		}
		if !tcp.RST || tcp.FIN || tcp.SYN || tcp.PSH || tcp.Seq != req.seq || tcp.Ack != req.ack || len(tcp.Payload) != 0 {
			t.Errorf("%v: RST=%v FIN=%v SYN=%v seq %d ack %d payload %d, want a bare RST at %d", f, tcp.RST, tcp.FIN, tcp.SYN, tcp.Seq, tcp.Ack, len(tcp.Payload), req.seq)
		}
	}
}

func TestBlockPageRefused(t *testing.T) {
	udp := httpFlow4
	udp.Proto = protoUDP
	mixed := Flow{Client: httpFlow4.Client, Server: httpFlow6.Server, Proto: protoTCP}
	ok := request{seq: 1, end: 2, ack: 3, ok: true}
	for _, tt := range []struct {
		name string
		flow Flow
		req  request
	}{
		{"unknown request", httpFlow4, request{}},
		{"UDP", udp, ok},
		{"mixed families", mixed, ok},
		{"no addresses", Flow{Proto: protoTCP}, ok},
	} {
		if pkt, err := blockPagePacket(tt.flow, tt.req, []byte("x")); err == nil {
			t.Errorf("%s: block page built: %x", tt.name, pkt)
		}
		if pkt, err := serverResetPacket(tt.flow, tt.req); err == nil {
			t.Errorf("%s: reset built: %x", tt.name, pkt)
		}
	}
}

// TestBlockPageTruncation: a page too long for one segment is cut to fit exactly, on a
// character boundary, with a Content-Length that matches.
func TestBlockPageTruncation(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"ASCII", strings.Repeat("a", 5000)},
		{"two-byte characters", strings.Repeat("é", 3000)},
		{"three-byte characters", "x" + strings.Repeat("€", 2000)},
		{"four-byte characters", "xy" + strings.Repeat("🚫", 2000)},
	}
	for _, tt := range tests {
		for _, f := range []Flow{httpFlow4, httpFlow6} {
			limit := maxPagePacket4
			if f.Client.Addr().Is6() {
				limit = maxPagePacket6
			}
			for _, ts := range []bool{false, true} {
				req := request{seq: 1, end: 100, ack: 1, ts: tcpTimestamp{ok: ts}, ok: true}
				pkt, err := blockPagePacket(f, req, []byte(tt.body))
				if err != nil {
					t.Fatalf("%s %v: %v", tt.name, f, err)
				}
				if len(pkt) > limit || len(pkt) < limit-3 {
					t.Errorf("%s %v ts=%v: %d bytes, want a full packet of at most %d", tt.name, f, ts, len(pkt), limit)
				}
				_, _, tcp := parseTCP(t, pkt)
				resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(tcp.Payload)), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if !utf8.Valid(body) || !strings.HasPrefix(tt.body, string(body)) || resp.ContentLength != int64(len(body)) {
					t.Errorf("%s %v: body of %d bytes (Content-Length %d) is not a clean prefix", tt.name, f, len(body), resp.ContentLength)
				}
			}
		}
	}

	if n := len(responseHead(nil, 1000)); n != responseHeadLen4 {
		t.Fatalf("response head is %d bytes, responseHeadLen4 says %d", n, responseHeadLen4)
	}
	// MaxBlockPageBody is exact: that much always fits, one byte more is cut over IPv6.
	ts := request{seq: 1, end: 2, ack: 3, ts: tcpTimestamp{ok: true}, ok: true}
	for _, n := range []int{MaxBlockPageBody, MaxBlockPageBody + 1} {
		pkt, err := blockPagePacket(httpFlow6, ts, bytes.Repeat([]byte("z"), n))
		if err != nil {
			t.Fatal(err)
		}
		_, _, tcp := parseTCP(t, pkt)
		full := bytes.HasSuffix(tcp.Payload, []byte("\r\n\r\n"+strings.Repeat("z", n)))
		if full != (n == MaxBlockPageBody) {
			t.Errorf("body of %d bytes (MaxBlockPageBody %d): sent whole %v", n, MaxBlockPageBody, full)
		}
	}

	// Every cut point near where the Content-Length gains a digit.
	for n := 0; n < 1300; n++ {
		body := []byte(strings.Repeat("b", n))
		got := blockResponse(body, 1000)
		if len(got) > 1000 {
			t.Fatalf("body %d: response of %d bytes in 1000", n, len(got))
		}
		head := len(responseHead(nil, n))
		if head+n <= 1000 && len(got) != head+n {
			t.Errorf("body %d fits but was cut to a %d-byte response", n, len(got))
		}
	}
	if got := blockResponse([]byte("x"), 10); got != nil {
		t.Errorf("room for no head: got %q", got)
	}
}

// TestTrackerHTTPRequest: the tracker tells where a plain-HTTP request sits in its stream,
// across segments, reordering and sequence number wrap-around.
func TestTrackerHTTPRequest(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: blocked.test\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n")
	isn := uint32(0xfffffff0)
	a, b := req[:30], req[30:]
	f := httpFlow4
	now := time.Now()
	tests := []struct {
		name    string
		packets []packet
		want    request
	}{
		{"one segment", []packet{{flow: f, seq: isn, ack: 77, hasACK: true, payload: req}},
			request{seq: isn, end: isn + uint32(len(req)), ack: 77, ok: true}},
		{"two segments reordered, timestamps", []packet{
			{flow: f, seq: isn + 30, ack: 78, hasACK: true, ts: tcpTimestamp{val: 11, ecr: 21, ok: true}, payload: b, inDev: 7},
			{flow: f, seq: isn, ack: 77, hasACK: true, ts: tcpTimestamp{val: 10, ecr: 20, ok: true}, payload: a, inDev: 7},
		}, request{seq: isn, end: isn + uint32(len(req)), ack: 78, ts: tcpTimestamp{val: 11, ecr: 21, ok: true}, ok: true, inDev: 7}},
		{"no ACK", []packet{{flow: f, seq: isn, payload: req}}, request{}},
	}
	for _, tt := range tests {
		tr := newTracker(time.Second, 8)
		var o *outcome
		for i, p := range tt.packets {
			o = tr.add(uint64(i), p, "", now)
		}
		if o == nil || o.name != "blocked.test" {
			t.Fatalf("%s: outcome %+v, want blocked.test", tt.name, o)
		}
		if o.req != tt.want {
			t.Errorf("%s: request %+v, want %+v", tt.name, o.req, tt.want)
		}
		if got := wantsBlockPage(o); got != tt.want.ok {
			t.Errorf("%s: wantsBlockPage %v, want %v", tt.name, got, tt.want.ok)
		}
	}

	// TLS flows never get a page, nor HTTP flows without a name.
	tls := &outcome{flow: testFlow, kind: kindTLS, name: "x.test", req: request{ok: true}}
	unnamed := &outcome{flow: f, kind: kindHTTP, why: whyNotHTTP, req: request{ok: true}}
	if wantsBlockPage(tls) || wantsBlockPage(unnamed) {
		t.Error("a page for a TLS or unnamed flow")
	}
}

// TestTCPSegmentBuild: the segments we build are byte for byte what gopacket serialises
// from the same fields (so gopacket's checksums agree with ours), parse back with
// gopacket, and carry checksums that verify from scratch.
func TestTCPSegmentBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := [][2]netip.Addr{
		{httpFlow4.Client.Addr(), httpFlow4.Server.Addr()},
		{httpFlow6.Client.Addr(), httpFlow6.Server.Addr()},
		{netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("0.0.0.0")},
		{netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
	}
	for i := range 2000 {
		a := addrs[i%len(addrs)]
		s := tcpSegment{
			src: netip.AddrPortFrom(a[0], uint16(rng.Uint32())), dst: netip.AddrPortFrom(a[1], uint16(rng.Uint32())),
			seq: rng.Uint32(), ack: rng.Uint32(), flags: uint8(rng.Uint32()) & (tcpFIN | tcpSYN | tcpRST | tcpPSH | tcpACK),
			window: uint16(rng.Uint32()), ts: tcpTimestamp{val: rng.Uint32(), ecr: rng.Uint32(), ok: i%3 != 0},
			payload: make([]byte, rng.IntN(1460)), // the largest block page is about 1350 bytes
		}
		for j := range s.payload {
			s.payload[j] = byte(rng.Uint32())
		}
		if i%7 == 0 {
			s.payload = nil
		}
		got, err := s.build()
		if err != nil {
			t.Fatal(err)
		}
		ref := &layers.TCP{
			SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()), Seq: s.seq, Ack: s.ack,
			FIN: s.flags&tcpFIN != 0, SYN: s.flags&tcpSYN != 0, RST: s.flags&tcpRST != 0, PSH: s.flags&tcpPSH != 0,
			ACK: s.flags&tcpACK != 0, Window: s.window,
		}
		if s.ts.ok {
			ts := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, s.ts.val), s.ts.ecr)
			ref.Options = []layers.TCPOption{
				{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
				{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
			}
		}
		want, err := gopacketTCP(a[0], a[1], ref, s.payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("segment %d (%+v):\ngot  %x\nwant %x", i, s, got, want)
		}
		src, dst, tcp := parseTCP(t, got)
		if src != a[0] || dst != a[1] || tcp.Seq != s.seq || !bytes.Equal(tcp.Payload, s.payload) {
			t.Fatalf("segment %d parses as %v → %v seq %d", i, src, dst, tcp.Seq)
		}
	}

	// Addresses of different families, or none, build nothing.
	for _, s := range []tcpSegment{{src: httpFlow4.Client, dst: httpFlow6.Server}, {dst: httpFlow4.Server}} {
		if b, err := s.build(); err == nil {
			t.Errorf("%v → %v: built %x", s.src, s.dst, b)
		}
	}
}
