package filter

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// Test segments, keyed by the ifindex the programs see.
const (
	staffIf  = 10 // segment 1, profile 0
	pupilIf  = 20 // segment 2, profile 1
	guestIf  = 30 // segment 3, profile 2, guest
	egressIf = 1  // segment 4, profile 0: egress runs need a real device, loopback
)

const (
	staffProfile = 0
	pupilProfile = 1
	guestProfile = 2
)

var pupilMAC = []byte{0x02, 0, 0, 0, 0, 0x99} // a staff-segment device with the pupil profile

// rules fills f with a small school: staff see everything, pupils lose DoT, two VPN
// ports, QUIC and some resolvers' addresses, guests are isolated and get QUIC unseen.
func rules(t testing.TB, f *Filter) {
	t.Helper()
	for ifindex, seg := range map[uint32]Segment{
		staffIf:  {ID: 1, Profile: staffProfile},
		pupilIf:  {ID: 2, Profile: pupilProfile},
		guestIf:  {ID: 3, Profile: guestProfile, Guest: true},
		egressIf: {ID: 4, Profile: staffProfile},
	} {
		if err := f.putSegment(ifindex, seg); err != nil {
			t.Fatal(err)
		}
	}
	must(t, f.SetProfiles(map[uint16]Profile{
		staffProfile: {},
		pupilProfile: {BlockDoT: true, QUIC: QUICBlock, VPNPorts: []Port{{17, 51820}, {17, 1194}, {6, 1194}}},
		guestProfile: {QUIC: QUICAllow},
	}))
	must(t, f.SetDevices(map[string]uint16{"02:00:00:00:00:99": pupilProfile}))
	must(t, f.SetInternal(prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
		"169.254.0.0/16", "224.0.0.0/4", "fc00::/7", "fe80::/10", "ff00::/8")))
	must(t, f.SetBlocked([]Blocked{
		{Prefix: netip.MustParsePrefix("9.9.9.9/32"), Profiles: 1 << pupilProfile},
		{Prefix: netip.MustParsePrefix("2620:fe::fe/128"), Profiles: 1 << pupilProfile},
		{Prefix: netip.MustParsePrefix("185.220.100.0/22"), Profiles: 1<<pupilProfile | 1<<staffProfile},
	}))
	for _, v := range []struct {
		client, server string
		proto          uint8
		verdict        Verdict
	}{
		{"10.1.0.5:40000", "93.184.216.34:443", 6, VerdictAllow},
		{"10.1.0.5:40001", "93.184.216.34:443", 6, VerdictBlock},
		{"10.1.0.5:40002", "93.184.216.34:443", 17, VerdictBlock},
		{"10.1.0.5:40003", "93.184.216.34:80", 6, VerdictBlock},
		{"10.1.0.5:40004", "93.184.216.34:80", 6, VerdictDrop}, // answered with the block page
		{"10.1.0.5:40005", "93.184.216.34:443", 17, VerdictDrop},
		{"[fd00::5]:40000", "[2606:2800:220:1::1]:443", 6, VerdictAllow},
		{"[fd00::5]:40001", "[2606:2800:220:1::1]:443", 6, VerdictBlock},
		{"[fd00::5]:40004", "[2606:2800:220:1::1]:80", 6, VerdictDrop},
	} {
		k := FlowKey{netip.MustParseAddrPort(v.client), netip.MustParseAddrPort(v.server), v.proto}
		must(t, f.SetVerdict(k, v.verdict, 0))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

var hello = []byte("\x16\x03\x01\x00\x05hello") // stands in for a ClientHello

const (
	tcp    = layers.IPProtocolTCP
	udp    = layers.IPProtocolUDP
	icmpv6 = layers.IPProtocolICMPv6
)

func TestIngress(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)

	tests := []struct {
		name    string
		ifindex uint32
		frame   frame
		action  uint32
		mark    uint32
		drop    Reason // counted drop reason, if any
		handoff bool
		hit     bool
	}{
		// Guest isolation.
		{"guest to internal v4", guestIf, frame{src: "192.168.30.5:5000", dst: "192.168.10.2:445", proto: tcp, syn: true}, actShot, 0, ReasonGuest, false, false},
		{"guest to cgnat", guestIf, frame{src: "192.168.30.5:5000", dst: "100.64.1.1:80", proto: tcp, payload: hello}, actShot, 0, ReasonGuest, false, false},
		{"guest to internal v6", guestIf, frame{src: "[2001:db8:30::5]:5000", dst: "[fd00:10::2]:22", proto: tcp, syn: true}, actShot, 0, ReasonGuest, false, false},
		{"guest to multicast v6 udp", guestIf, frame{src: "[fe80::5]:5353", dst: "[ff02::fb]:5353", proto: udp}, actShot, 0, ReasonGuest, false, false},
		{"guest dns udp to gateway", guestIf, frame{src: "192.168.30.5:5000", dst: "192.168.30.1:53", proto: udp, payload: []byte("q")}, actOK, 0, 0, false, false},
		{"guest dns tcp v6", guestIf, frame{src: "[fd00:30::5]:5000", dst: "[fd00:30::1]:53", proto: tcp, syn: true}, actOK, 0, 0, false, false},
		{"guest dhcp", guestIf, frame{src: "0.0.0.0:68", dst: "255.255.255.255:67", proto: udp, payload: []byte("discover")}, actOK, 0, 0, false, false},
		{"guest router solicitation", guestIf, frame{src: "[fe80::5]:0", dst: "[ff02::2]:0", proto: icmpv6, icmpType: 133}, actOK, 0, 0, false, false},
		{"guest neighbour advertisement", guestIf, frame{src: "[fe80::5]:0", dst: "[fe80::1]:0", proto: icmpv6, icmpType: 136}, actOK, 0, 0, false, false},
		{"guest echo to internal v6", guestIf, frame{src: "[fe80::5]:0", dst: "[fe80::1]:0", proto: icmpv6, icmpType: 128}, actShot, 0, ReasonGuest, false, false},
		{"guest to internet", guestIf, frame{src: "192.168.30.5:5000", dst: "93.184.216.34:22", proto: tcp, payload: []byte("ssh")}, actOK, 0, 0, false, false},
		{"guest web handed off", guestIf, frame{src: "192.168.30.5:5000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, MarkQueue, 0, true, false},
		{"guest quic allowed unseen", guestIf, frame{src: "192.168.30.5:5000", dst: "93.184.216.34:443", proto: udp, payload: hello}, actOK, 0, 0, false, false},
		{"staff to internal allowed", staffIf, frame{src: "10.1.0.5:5000", dst: "10.2.0.2:445", proto: tcp, syn: true}, actOK, 0, 0, false, false},

		// Port rules.
		{"pupil dot tcp", pupilIf, frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}, actShot, 0, ReasonDoT, false, false},
		{"pupil doq udp v6", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello}, actShot, 0, ReasonDoT, false, false},
		{"pupil wireguard", pupilIf, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actShot, 0, ReasonVPN, false, false},
		{"pupil openvpn tcp", pupilIf, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:1194", proto: tcp, syn: true}, actShot, 0, ReasonVPN, false, false},
		{"pupil wireguard port over tcp", pupilIf, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:51820", proto: tcp, syn: true}, actOK, 0, 0, false, false},
		{"staff dot", staffIf, frame{src: "10.1.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}, actOK, 0, 0, false, false},
		{"staff wireguard", staffIf, frame{src: "10.1.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actOK, 0, 0, false, false},
		{"staff device with pupil profile", staffIf, frame{mac: pupilMAC, src: "10.1.0.9:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actShot, 0, ReasonVPN, false, false},

		// Blocked addresses.
		{"pupil doh resolver", pupilIf, frame{src: "10.2.0.5:5000", dst: "9.9.9.9:443", proto: tcp, syn: true}, actShot, 0, ReasonAddress, false, false},
		{"pupil doh resolver v6", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2620:fe::fe]:443", proto: tcp, syn: true}, actShot, 0, ReasonAddress, false, false},
		{"staff doh resolver", staffIf, frame{src: "10.1.0.5:5000", dst: "9.9.9.9:443", proto: tcp, syn: true}, actOK, 0, 0, false, false},
		{"staff device with pupil profile doh", staffIf, frame{mac: pupilMAC, src: "10.1.0.9:5000", dst: "9.9.9.9:443", proto: tcp, syn: true}, actShot, 0, ReasonAddress, false, false},
		{"staff tor prefix", staffIf, frame{src: "10.1.0.5:5000", dst: "185.220.101.7:9001", proto: tcp, syn: true}, actShot, 0, ReasonAddress, false, false},
		{"guest tor prefix not in its mask", guestIf, frame{src: "192.168.30.5:5000", dst: "185.220.101.7:9001", proto: tcp, syn: true}, actOK, 0, 0, false, false},

		// Slow path hand-off and flow verdicts.
		{"unknown tls with payload", staffIf, frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, MarkQueue, 0, true, false},
		{"unknown http with payload v6", staffIf, frame{src: "[fd00::5]:41000", dst: "[2606:2800:220:1::1]:80", proto: tcp, payload: []byte("GET / HTTP/1.1\r\n")}, actOK, MarkQueue, 0, true, false},
		{"unknown quic", staffIf, frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: udp, payload: hello}, actOK, MarkQueue, 0, true, false},
		{"syn not marked", staffIf, frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: tcp, syn: true}, actOK, 0, 0, false, false},
		{"pure ack not marked", staffIf, frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: tcp}, actOK, 0, 0, false, false},
		{"other port not marked", staffIf, frame{src: "10.1.0.5:41000", dst: "93.184.216.34:8443", proto: tcp, payload: hello}, actOK, 0, 0, false, false},
		{"allowed flow", staffIf, frame{src: "10.1.0.5:40000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, 0, 0, false, true},
		{"allowed flow v6", staffIf, frame{src: "[fd00::5]:40000", dst: "[2606:2800:220:1::1]:443", proto: tcp, payload: hello}, actOK, 0, 0, false, true},
		{"blocked tcp flow", staffIf, frame{src: "10.1.0.5:40001", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, MarkBlock, ReasonFlow, false, false},
		{"blocked tcp flow ack", staffIf, frame{src: "10.1.0.5:40001", dst: "93.184.216.34:443", proto: tcp}, actOK, MarkBlock, ReasonFlow, false, false},
		{"blocked http flow", staffIf, frame{src: "10.1.0.5:40003", dst: "93.184.216.34:80", proto: tcp, payload: hello}, actOK, MarkBlock, ReasonFlow, false, false},
		{"blocked tcp flow v6", staffIf, frame{src: "[fd00::5]:40001", dst: "[2606:2800:220:1::1]:443", proto: tcp, payload: hello}, actOK, MarkBlock, ReasonFlow, false, false},
		{"blocked udp flow", staffIf, frame{src: "10.1.0.5:40002", dst: "93.184.216.34:443", proto: udp, payload: hello}, actShot, 0, ReasonFlow, false, false},
		// Silently dropped flows (the slow path sent the block page): no reset mark.
		{"dropped http flow", staffIf, frame{src: "10.1.0.5:40004", dst: "93.184.216.34:80", proto: tcp, payload: []byte("GET / HTTP/1.1\r\n")}, actShot, 0, ReasonFlow, false, false},
		{"dropped http flow ack", staffIf, frame{src: "10.1.0.5:40004", dst: "93.184.216.34:80", proto: tcp}, actShot, 0, ReasonFlow, false, false},
		{"dropped http flow fin", staffIf, frame{src: "10.1.0.5:40004", dst: "93.184.216.34:80", proto: tcp, fin: true}, actShot, 0, ReasonFlow, false, false},
		{"dropped http flow reset", staffIf, frame{src: "10.1.0.5:40004", dst: "93.184.216.34:80", proto: tcp, rst: true}, actShot, 0, ReasonFlow, false, false},
		{"dropped http flow v6", staffIf, frame{src: "[fd00::5]:40004", dst: "[2606:2800:220:1::1]:80", proto: tcp, fin: true}, actShot, 0, ReasonFlow, false, false},
		{"dropped udp flow", staffIf, frame{src: "10.1.0.5:40005", dst: "93.184.216.34:443", proto: udp, payload: hello}, actShot, 0, ReasonFlow, false, false},
		{"same tuple other proto unknown", staffIf, frame{src: "10.1.0.5:40000", dst: "93.184.216.34:443", proto: udp, payload: hello}, actOK, MarkQueue, 0, true, false},
		{"pupil quic blocked", pupilIf, frame{src: "10.2.0.5:41000", dst: "93.184.216.34:443", proto: udp, payload: hello}, actShot, 0, ReasonQUIC, false, false},
		{"pupil tls handed off", pupilIf, frame{src: "10.2.0.5:41000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, MarkQueue, 0, true, false},

		// IPv6 extension headers and fragments.
		{"hop-by-hop then dot", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: tcp, syn: true,
			ext: []byte{byte(tcp), 0, 1, 4, 0, 0, 0, 0}, extFirst: layers.IPProtocolIPv6HopByHop}, actShot, 0, ReasonDoT, false, false},
		{"dstopts, routing, then tls", staffIf, frame{src: "[fd00::5]:41000", dst: "[2606:2800:220:1::1]:443", proto: tcp, payload: hello,
			ext: append([]byte{byte(layers.IPProtocolIPv6Routing), 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				byte(tcp), 0, 0, 0, 0, 0, 0, 0), extFirst: layers.IPProtocolIPv6Destination}, actOK, MarkQueue, 0, true, false},
		{"first fragment of dot", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello,
			ext: []byte{byte(udp), 0, 0, 1, 0, 0, 0, 1}, extFirst: layers.IPProtocolIPv6Fragment}, actShot, 0, ReasonDoT, false, false},
		{"later fragment has no ports", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello,
			ext: []byte{byte(udp), 0, 0, 0x18, 0, 0, 0, 1}, extFirst: layers.IPProtocolIPv6Fragment}, actOK, 0, 0, false, false},
		{"later v4 fragment has no ports", pupilIf, frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: udp, payload: hello, fragOffset: 3}, actOK, 0, 0, false, false},
		{"later v4 fragment to blocked address", pupilIf, frame{src: "10.2.0.5:5000", dst: "9.9.9.9:853", proto: udp, payload: hello, fragOffset: 3}, actShot, 0, ReasonAddress, false, false},
		{"too many extension headers", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello,
			ext: repeatExt(7, udp), extFirst: layers.IPProtocolIPv6Destination}, actOK, 0, 0, false, false},
		{"six extension headers parsed", pupilIf, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello,
			ext: repeatExt(6, udp), extFirst: layers.IPProtocolIPv6Destination}, actShot, 0, ReasonDoT, false, false},

		// Not ours.
		{"unknown interface", 99, frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}, actOK, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := statsOf(t, f)
			action, mark := run(t, f.objs.SegmentIngress, tt.frame.bytes(t), tt.ifindex, false)
			if action != tt.action || mark != tt.mark {
				t.Errorf("got action %d mark %#x, want action %d mark %#x", action, mark, tt.action, tt.mark)
			}
			after := statsOf(t, f)
			d := delta(before, after, segmentOf(tt.ifindex))
			want := Counters{Packets: 1, Drops: map[Reason]uint64{}}
			if tt.ifindex == 99 {
				want.Packets = 0
			}
			if tt.drop != ReasonNone {
				want.Drops[tt.drop] = 1
			}
			if tt.handoff {
				want.HandOffs = 1
			}
			if tt.hit {
				want.FlowHits = 1
			}
			if d.Packets != want.Packets || d.HandOffs != want.HandOffs || d.FlowHits != want.FlowHits || !sameDrops(d.Drops, want.Drops) {
				t.Errorf("counters moved by %+v, want %+v", d, want)
			}
			if tt.ifindex != 99 && d.Bytes != uint64(len(tt.frame.bytes(t))) {
				t.Errorf("bytes moved by %d, want %d", d.Bytes, len(tt.frame.bytes(t)))
			}
		})
	}
}

// repeatExt builds n destination-options headers ending in next.
func repeatExt(n int, next layers.IPProtocol) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		nh := byte(layers.IPProtocolIPv6Destination)
		if i == n-1 {
			nh = byte(next)
		}
		b = append(b, nh, 0, 1, 4, 0, 0, 0, 0)
	}
	return b
}

func segmentOf(ifindex uint32) uint16 {
	switch ifindex {
	case staffIf:
		return 1
	case pupilIf:
		return 2
	case guestIf:
		return 3
	case egressIf:
		return 4
	}
	return 200 // unused
}

func statsOf(t testing.TB, f *Filter) map[uint16]Counters {
	t.Helper()
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func delta(before, after map[uint16]Counters, id uint16) Counters {
	b, a := before[id], after[id]
	d := Counters{Packets: a.Packets - b.Packets, Bytes: a.Bytes - b.Bytes,
		HandOffs: a.HandOffs - b.HandOffs, FlowHits: a.FlowHits - b.FlowHits, Drops: map[Reason]uint64{}}
	for r, n := range a.Drops {
		if n != b.Drops[r] {
			d.Drops[r] = n - b.Drops[r]
		}
	}
	return d
}

func sameDrops(a, b map[Reason]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for r, n := range a {
		if b[r] != n {
			return false
		}
	}
	return true
}

func TestEgress(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)
	tests := []struct {
		name   string
		frame  frame
		action uint32
		drop   Reason
	}{
		{"blocked tcp flow reply", frame{src: "93.184.216.34:443", dst: "10.1.0.5:40001", proto: tcp, payload: hello}, actShot, ReasonFlow},
		{"blocked udp flow reply", frame{src: "93.184.216.34:443", dst: "10.1.0.5:40002", proto: udp, payload: hello}, actShot, ReasonFlow},
		{"blocked http flow reply", frame{src: "93.184.216.34:80", dst: "10.1.0.5:40003", proto: tcp}, actShot, ReasonFlow},
		{"blocked v6 flow reply", frame{src: "[2606:2800:220:1::1]:443", dst: "[fd00::5]:40001", proto: tcp, payload: hello}, actShot, ReasonFlow},
		// The reset nftables sends a blocked TCP flow's client leaves as if from the server.
		{"blocked tcp flow reset", frame{src: "93.184.216.34:443", dst: "10.1.0.5:40001", proto: tcp, rst: true}, actOK, 0},
		{"blocked v6 flow reset", frame{src: "[2606:2800:220:1::1]:443", dst: "[fd00::5]:40001", proto: tcp, rst: true}, actOK, 0},
		// A silently dropped flow gets nothing from the server, resets included.
		{"dropped http flow reply", frame{src: "93.184.216.34:80", dst: "10.1.0.5:40004", proto: tcp, payload: hello}, actShot, ReasonFlow},
		{"dropped http flow ack", frame{src: "93.184.216.34:80", dst: "10.1.0.5:40004", proto: tcp}, actShot, ReasonFlow},
		{"dropped http flow reset", frame{src: "93.184.216.34:80", dst: "10.1.0.5:40004", proto: tcp, rst: true}, actShot, ReasonFlow},
		{"dropped v6 flow reset", frame{src: "[2606:2800:220:1::1]:80", dst: "[fd00::5]:40004", proto: tcp, rst: true}, actShot, ReasonFlow},
		{"dropped udp flow reply", frame{src: "93.184.216.34:443", dst: "10.1.0.5:40005", proto: udp, payload: hello}, actShot, ReasonFlow},
		{"allowed flow reply", frame{src: "93.184.216.34:443", dst: "10.1.0.5:40000", proto: tcp, payload: hello}, actOK, 0},
		{"unknown flow reply", frame{src: "93.184.216.34:443", dst: "10.1.0.5:49999", proto: tcp, payload: hello}, actOK, 0},
		{"other port from same server", frame{src: "93.184.216.34:8443", dst: "10.1.0.5:40001", proto: tcp, payload: hello}, actOK, 0},
		{"not mistaken for the client's request direction", frame{src: "10.1.0.5:40001", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := statsOf(t, f)
			action, mark := run(t, f.objs.SegmentEgress, tt.frame.bytes(t), egressIf, true)
			if action != tt.action || mark != 0 {
				t.Errorf("got action %d mark %#x, want action %d mark 0", action, mark, tt.action)
			}
			d := delta(before, statsOf(t, f), 4)
			want := map[Reason]uint64{}
			if tt.drop != ReasonNone {
				want[tt.drop] = 1
			}
			if d.Packets != 1 || !sameDrops(d.Drops, want) {
				t.Errorf("counters moved by %+v, want 1 packet and drops %v", d, want)
			}
		})
	}
}

func TestWANCounts(t *testing.T) {
	f := newTestFilter(t)
	pkt := frame{src: "203.0.113.1:443", dst: "198.51.100.7:50000", proto: tcp, payload: hello}.bytes(t)
	for i := 0; i < 3; i++ {
		if action, mark := run(t, f.objs.Wan, pkt, 1, true); action != actOK || mark != 0 {
			t.Fatalf("got action %d mark %#x, want pass unmarked", action, mark)
		}
	}
	got := statsOf(t, f)[WANID]
	if got.Packets != 3 || got.Bytes != 3*uint64(len(pkt)) {
		t.Errorf("wan counters %+v, want 3 packets of %d bytes", got, len(pkt))
	}
}

// TestMalformed feeds broken frames: the programs must pass them (or drop them under a
// rule that needs no ports) and never fail to run.
func TestMalformed(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)
	good := frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}.bytes(t)
	good6 := frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: tcp, syn: true}.bytes(t)
	arp := append(append([]byte{}, good[:12]...), 0x08, 0x06)
	arp = append(arp, make([]byte, 28)...)
	badIHL := append([]byte{}, good...)
	badIHL[14] = 0x43
	longIHL := append([]byte{}, good[:14+20]...)
	longIHL[14] = 0x4f
	shortLen := append([]byte{}, good...)
	shortLen[16], shortLen[17] = 0, 20 // tot_len covers only the IP header
	hugeExt := append([]byte{}, good6[:14+40]...)
	hugeExt[14+6] = 0 // hop-by-hop follows
	hugeExt = append(hugeExt, byte(tcp), 0xff, 0, 0, 0, 0, 0, 0)

	other := append(append([]byte{}, good[:12]...), 0x88, 0xb5)

	tests := []struct {
		name   string
		frame  []byte
		action uint32
		mark   uint32
		// The kernel's test run refuses IP frames whose IP header is cut; such frames
		// still reach tc in real life, and the verifier-checked bounds keep them safe.
		mayRefuse bool
	}{
		{"ipv4 ethernet header only", good[:14], actOK, 0, true},
		{"other ethertype header only", other, actOK, 0, false},
		{"arp", arp, actOK, 0, false},
		{"ipv4 cut in header", good[:14+10], actOK, 0, true},
		{"ipv4 ihl below 5", badIHL, actOK, 0, false},
		{"ipv4 ihl past the end", longIHL, actOK, 0, false},
		{"tcp cut in header", good[:14+20+10], actOK, 0, false},
		{"ipv6 cut in header", good6[:14+30], actOK, 0, true},
		{"ipv6 tcp cut in header", good6[:14+40+12], actOK, 0, false},
		{"ipv6 extension header past the end", hugeExt, actOK, 0, false},
		{"tot_len shorter than headers", shortLen, actShot, 0, false}, // ports are there: DoT rule applies
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, prog := range []struct {
				egress bool
				ifidx  uint32
			}{{false, pupilIf}, {true, egressIf}} {
				action, mark, err := tryRun(progFor(f, prog.egress), tt.frame, prog.ifidx, prog.egress)
				if tt.mayRefuse && errors.Is(err, unix.EINVAL) {
					t.Logf("kernel test run refuses this frame: %v", err)
					continue
				}
				if err != nil {
					t.Fatalf("running program: %v", err)
				}
				mark &= MarkMask
				want := tt.action
				if prog.egress {
					want = actOK
				}
				if action != want || mark != tt.mark {
					t.Errorf("egress=%v: got action %d mark %#x, want %d %#x", prog.egress, action, mark, want, tt.mark)
				}
			}
		})
	}
}

func progFor(f *Filter, egress bool) *ebpf.Program {
	if egress {
		return f.objs.SegmentEgress
	}
	return f.objs.SegmentIngress
}

// TestReplace checks that the Set* calls leave exactly the given entries.
func TestReplace(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)
	pupilDoT := frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}.bytes(t)
	pupilDoH := frame{src: "10.2.0.5:5000", dst: "9.9.9.9:443", proto: tcp, syn: true}.bytes(t)
	guestLAN := frame{src: "192.168.30.5:5000", dst: "192.168.10.2:445", proto: tcp, syn: true}.bytes(t)
	override := frame{mac: pupilMAC, src: "10.1.0.9:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}.bytes(t)

	must(t, f.SetProfiles(map[uint16]Profile{pupilProfile: {QUIC: QUICBlock}}))
	must(t, f.SetBlocked(nil))
	must(t, f.SetInternal(prefixes("172.16.0.0/12")))
	must(t, f.SetDevices(nil))
	for name, tc := range map[string]struct {
		frame   []byte
		ifindex uint32
	}{"dot": {pupilDoT, pupilIf}, "doh": {pupilDoH, pupilIf}, "guest lan": {guestLAN, guestIf}, "override": {override, staffIf}} {
		if action, _ := run(t, f.objs.SegmentIngress, tc.frame, tc.ifindex, false); action != actOK {
			t.Errorf("%s: still dropped after its rule was replaced away", name)
		}
	}
	if n := count(t, f.objs.Ports); n != 0 {
		t.Errorf("ports map holds %d entries, want 0", n)
	}

	must(t, f.SetInternal(prefixes("192.168.10.0/24", "::ffff:10.0.0.0/104")))
	if action, _ := run(t, f.objs.SegmentIngress, guestLAN, guestIf, false); action != actShot {
		t.Errorf("guest lan: passed after 192.168.10.0/24 became internal")
	}
	v4, v6 := count(t, f.objs.InternalV4), count(t, f.objs.InternalV6)
	if v4 != 2 || v6 != 0 {
		t.Errorf("internal maps hold %d v4 and %d v6 prefixes, want 2 and 0 (mapped prefix stored as v4)", v4, v6)
	}
}

func TestSetErrors(t *testing.T) {
	f := newTestFilter(t)
	for name, err := range map[string]error{
		"profile id":   f.SetProfiles(map[uint16]Profile{MaxProfiles: {}}),
		"vpn proto":    f.SetProfiles(map[uint16]Profile{1: {VPNPorts: []Port{{Proto: 1, Num: 5}}}}),
		"quic mode":    f.SetProfiles(map[uint16]Profile{1: {QUIC: 7}}),
		"bad mac":      f.SetDevices(map[string]uint16{"not a mac": 1}),
		"long mac":     f.SetDevices(map[string]uint16{"00:00:00:00:fe:80:00:00": 1}),
		"device prof":  f.SetDevices(map[string]uint16{"02:00:00:00:00:01": 200}),
		"bad prefix":   f.SetInternal([]netip.Prefix{{}}),
		"bad reason":   f.SetBlocked([]Blocked{{Prefix: netip.MustParsePrefix("1.2.3.4/32"), Reason: 99}}),
		"flow proto":   f.SetVerdict(FlowKey{netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:443"), 1}, VerdictAllow, 0),
		"flow address": f.SetVerdict(FlowKey{Proto: 6}, VerdictAllow, 0),
		"no verdict":   f.SetVerdict(FlowKey{netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:443"), 6}, 0, 0),
		"bad verdict":  f.SetVerdict(FlowKey{netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:443"), 6}, VerdictDrop+1, 0),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVerdict(t *testing.T) {
	f := newTestFilter(t)
	k := FlowKey{netip.MustParseAddrPort("10.1.0.5:40000"), netip.MustParseAddrPort("93.184.216.34:443"), 6}
	if _, found, err := f.Verdict(k); err != nil || found {
		t.Fatalf("Verdict before SetVerdict: found %v, err %v", found, err)
	}
	for _, want := range []Verdict{VerdictBlock, VerdictDrop, VerdictAllow} {
		must(t, f.SetVerdict(k, want, 3))
		if v, found, err := f.Verdict(k); err != nil || !found || v != want {
			t.Fatalf("Verdict: %v found %v err %v, want %v", v, found, err, want)
		}
	}
	// The same flow named with a mapped address is the same key.
	mapped := FlowKey{netip.MustParseAddrPort("[::ffff:10.1.0.5]:40000"), k.Server, 6}
	must(t, f.SetVerdict(mapped, VerdictDrop, 3))
	if v, _, _ := f.Verdict(k); v != VerdictDrop {
		t.Errorf("verdict set through the mapped address not seen through the plain one: %v", v)
	}
	if s := VerdictDrop.String() + " " + Verdict(9).String(); s != "drop verdict(9)" {
		t.Errorf("verdict names: %q", s)
	}
}

// TestLastSeen checks that an allowed flow's last-seen time moves with its traffic, so the
// slow path can expire idle verdicts.
func TestLastSeen(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)
	k := FlowKey{netip.MustParseAddrPort("10.1.0.5:40000"), netip.MustParseAddrPort("93.184.216.34:443"), 6}
	key, _ := flowKey(k)
	var before, after schoolgateFlow
	must(t, f.objs.Flows.Lookup(key, &before))
	time.Sleep(1100 * time.Millisecond)
	run(t, f.objs.SegmentIngress, frame{src: "10.1.0.5:40000", dst: "93.184.216.34:443", proto: tcp, payload: hello}.bytes(t), staffIf, false)
	must(t, f.objs.Flows.Lookup(key, &after))
	if after.LastSeen <= before.LastSeen {
		t.Errorf("last seen %d not after %d", after.LastSeen, before.LastSeen)
	}
}

func TestSharedConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"MarkMask", uint64(MarkMask), uint64(schoolgateMarkMARK_MASK)},
		{"MarkQueue", uint64(MarkQueue), uint64(schoolgateMarkMARK_QUEUE)},
		{"MarkBlock", uint64(MarkBlock), uint64(schoolgateMarkMARK_BLOCK)},
		{"MaxProfiles", MaxProfiles, uint64(schoolgateLimitsMAX_PROFILES)},
		{"WANID", uint64(WANID), uint64(schoolgateLimitsWAN_SLOT)},
		{"MaxSegmentID", MaxSegmentID + 1, uint64(schoolgateLimitsWAN_SLOT)},
		{"reasons", uint64(numReasons), uint64(schoolgateReasonREASON_MAX)},
		{"ReasonGuest", uint64(ReasonGuest), uint64(schoolgateReasonREASON_GUEST)},
		{"ReasonDoT", uint64(ReasonDoT), uint64(schoolgateReasonREASON_DOT)},
		{"ReasonVPN", uint64(ReasonVPN), uint64(schoolgateReasonREASON_VPN)},
		{"ReasonAddress", uint64(ReasonAddress), uint64(schoolgateReasonREASON_ADDRESS)},
		{"ReasonQUIC", uint64(ReasonQUIC), uint64(schoolgateReasonREASON_QUIC)},
		{"ReasonFlow", uint64(ReasonFlow), uint64(schoolgateReasonREASON_FLOW)},
		{"ReasonPort", uint64(ReasonPort), uint64(schoolgateReasonREASON_PORT)},
		{"VerdictAllow", uint64(VerdictAllow), uint64(schoolgateVerdictVERDICT_ALLOW)},
		{"VerdictBlock", uint64(VerdictBlock), uint64(schoolgateVerdictVERDICT_BLOCK)},
		{"VerdictDrop", uint64(VerdictDrop), uint64(schoolgateVerdictVERDICT_DROP)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x in Go, %#x in bpf/schoolgate.h", c.name, c.got, c.want)
		}
	}
}

func count(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	n := 0
	it := m.Iterate()
	var k, v []byte
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkFlowHit measures the ingress program per packet in the kernel: an allowed
// flow's packet (the common case: established traffic) and an unknown flow's first data
// packet (marked for the slow path).
func BenchmarkFlowHit(b *testing.B) {
	f := newTestFilter(b)
	rules(b, f)
	for _, bc := range []struct {
		name  string
		frame frame
		mark  uint32
	}{
		{"allowed", frame{src: "10.1.0.5:40000", dst: "93.184.216.34:443", proto: tcp, payload: make([]byte, 1400)}, 0},
		{"allowed-v6", frame{src: "[fd00::5]:40000", dst: "[2606:2800:220:1::1]:443", proto: tcp, payload: make([]byte, 1400)}, 0},
		{"allowed-small", frame{src: "10.1.0.5:40000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, 0},
		{"handoff", frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, MarkQueue},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt := bc.frame.bytes(b)
			if _, mark := run(b, f.objs.SegmentIngress, pkt, staffIf, false); mark != bc.mark {
				b.Fatalf("mark %#x, want %#x", mark, bc.mark)
			}
			in := skbContext{IngressIfindex: staffIf}
			const repeat = 1 << 20
			b.ResetTimer()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := f.objs.SegmentIngress.Run(&ebpf.RunOptions{Data: pkt, Context: &in, Repeat: repeat}); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N)/repeat, "ns/packet")
		})
	}
}
