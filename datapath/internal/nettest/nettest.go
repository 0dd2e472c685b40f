// Package nettest builds network-namespace topologies for schoolgate's privileged tests: an
// "inet" namespace that plays the internet, an "appliance" namespace where schoolgated runs,
// and one client namespace per school segment, joined by veth pairs. It also starts the
// internet's servers (DNS, DoT, HTTPS, HTTP/3, HTTP, UDP echo on VPN ports) with a test CA.
//
//	client "pupil" eth0 10.20.0.2 ──veth── seg-pupil 10.20.0.1 ┐
//	client "staff" eth0 10.10.0.2 ──veth── seg-staff 10.10.0.1 ├ appliance wan0 198.51.100.2 ──veth── isp0 198.51.100.1 inet
//	client "guest" eth0 10.30.0.2 ──veth── seg-guest 10.30.0.1 ┘                                        lo 203.0.113.x (servers)
//
// Everything lives in namespaces of its own, named nt<pid>-<n>-<role> under /run/netns so
// `ip netns exec` works; nothing is created in the root namespace, and New removes it all in
// t.Cleanup.
package nettest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
)

// ErrUnsupported is returned by namespace operations on systems without network namespaces.
var ErrUnsupported = errors.New("network namespaces are only available on linux")

// ErrNeedIP is returned when a dial address names a host instead of an IP address: name
// resolution would run on another thread, in another namespace.
var ErrNeedIP = errors.New("address must be an IP literal")

// Spec describes the topology New builds.
type Spec struct {
	// Segments are the school networks, one client namespace each, in order: the i-th one
	// (from 0) gets 10.<10(i+1)>.0.0/24 and fd00:<10(i+1)>::/64. Empty means DefaultSegments.
	Segments []SegmentSpec
	// RouteBack gives the inet namespace routes to the segments' subnets through the
	// appliance, so traffic works without NAT. Off by default: the real internet has no
	// route to a school's private addresses.
	RouteBack bool
}

// SegmentSpec is one school network.
type SegmentSpec struct {
	Name  string // 1-11 characters of [a-z0-9], so "seg-<name>" fits an interface name
	Guest bool
}

// DefaultSegments returns staff, pupil and guest, in that order (10.10, 10.20, 10.30).
func DefaultSegments() []SegmentSpec {
	return []SegmentSpec{{Name: "staff"}, {Name: "pupil"}, {Name: "guest", Guest: true}}
}

// maxSegments keeps the third octet 10(i+1) within a byte.
const maxSegments = 25

var segmentName = regexp.MustCompile(`^[a-z0-9]{1,11}$`)

// validate checks the spec and fills in defaults.
func (s Spec) validate() (Spec, error) {
	if len(s.Segments) == 0 {
		s.Segments = DefaultSegments()
	}
	if len(s.Segments) > maxSegments {
		return s, fmt.Errorf("%d segments, at most %d fit the address plan", len(s.Segments), maxSegments)
	}
	seen := map[string]bool{}
	for _, seg := range s.Segments {
		if !segmentName.MatchString(seg.Name) {
			return s, fmt.Errorf("segment name %q: want 1-11 characters of [a-z0-9]", seg.Name)
		}
		if seen[seg.Name] {
			return s, fmt.Errorf("segment %q named twice", seg.Name)
		}
		seen[seg.Name] = true
	}
	return s, nil
}

// Topology is one test's set of namespaces. Fields are read-only after New.
type Topology struct {
	Spec      Spec // as built, with defaults filled in
	Inet      *NS
	Appliance *NS
	Clients   map[string]*NS     // by segment name
	WAN       Link               // appliance "wan0" ↔ inet "isp0"
	Segments  map[string]Segment // by segment name
}

// NS is one network namespace of a topology.
type NS struct {
	// Name is unique across processes and names /run/netns/<Name>, so
	// `ip netns exec <Name> …` enters the namespace too.
	Name string

	fd   int             // open handle on the namespace, closed by the topology's cleanup
	done <-chan struct{} // closed when the topology is removed: kills Command's processes
}

// Link is a veth pair: the appliance's end and the peer's.
type Link struct {
	Interface    string       // in the appliance, e.g. "wan0"
	Addr4, Addr6 netip.Prefix // the appliance end's addresses, e.g. 198.51.100.2/24
	MAC          net.HardwareAddr
	Peer         string       // in the other namespace, e.g. "isp0"
	PeerAddr4    netip.Prefix // e.g. 198.51.100.1/24
	PeerAddr6    netip.Prefix
	PeerMAC      net.HardwareAddr
}

// Segment is one school network as built: its appliance interface and its one client.
type Segment struct {
	Name               string
	Guest              bool
	Index              int          // position in Spec.Segments
	Interface          string       // appliance side, "seg-<name>"
	Gateway4, Gateway6 netip.Prefix // appliance addresses, e.g. 10.20.0.1/24, fd00:20::1/64
	GatewayMAC         net.HardwareAddr
	Client4, Client6   netip.Addr // the client's eth0, e.g. 10.20.0.2, fd00:20::2
	ClientMAC          net.HardwareAddr
	Client             *NS
}

// The WAN addresses (documentation ranges, RFC 5737 and RFC 3849).
var (
	wanApp4  = netip.MustParsePrefix("198.51.100.2/24")
	wanInet4 = netip.MustParsePrefix("198.51.100.1/24")
	wanApp6  = netip.MustParsePrefix("2001:db8:ff::2/64")
	wanInet6 = netip.MustParsePrefix("2001:db8:ff::1/64")
)

// InetAddrCount is how many server addresses of each family InetAddr4/InetAddr6 hand out.
const InetAddrCount = 16

// InetAddr4 returns the i-th (0 ≤ i < InetAddrCount) IPv4 server address of the internet,
// 203.0.113.(100+i). Every server StartInet starts answers on it, except DNS.
func (t *Topology) InetAddr4(i int) netip.Addr {
	checkInetIndex(i)
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)})
}

// InetAddr6 returns the i-th IPv6 server address, 2001:db8:1::100 + i.
func (t *Topology) InetAddr6(i int) netip.Addr {
	checkInetIndex(i)
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: 1, 15: byte(i)})
}

// InetAddrs returns InetAddr4(i) and InetAddr6(i), handy as a Zone entry.
func (t *Topology) InetAddrs(i int) []netip.Addr {
	return []netip.Addr{t.InetAddr4(i), t.InetAddr6(i)}
}

// IperfAddrs returns an IPv4 and an IPv6 internet address that no StartInet server uses,
// for tests that run `iperf3 -s -B <addr>` in the inet namespace themselves.
func (t *Topology) IperfAddrs() []netip.Addr {
	return []netip.Addr{iperf4, iperf6}
}

func checkInetIndex(i int) {
	if i < 0 || i >= InetAddrCount {
		// A programming error in a test, like an index out of range.
		panic(fmt.Sprintf("nettest: inet address index %d out of range [0,%d)", i, InetAddrCount))
	}
}

var (
	dns4   = netip.MustParseAddr("203.0.113.53")
	dns6   = netip.MustParseAddr("2001:db8:1::53")
	iperf4 = netip.MustParseAddr("203.0.113.200")
	iperf6 = netip.MustParseAddr("2001:db8:1::200")
)

// inetAddrs lists every server address of the inet namespace (on its lo).
func (t *Topology) inetAddrs() []netip.Addr {
	addrs := []netip.Addr{dns4, dns6, iperf4, iperf6}
	for i := range InetAddrCount {
		addrs = append(addrs, t.InetAddrs(i)...)
	}
	return addrs
}

// segmentPlan returns the built form of the i-th segment (without its namespace).
func segmentPlan(i int, s SegmentSpec) Segment {
	n := byte(10 * (i + 1))
	// fd00:<n>:: with n written in decimal digits, as a person would read "fd00:20::".
	hextet := uint16(n/100)<<8 | uint16(n/10%10)<<4 | uint16(n%10)
	v6 := func(host byte) netip.Addr {
		return netip.AddrFrom16([16]byte{0xfd, 0, byte(hextet >> 8), byte(hextet), 15: host})
	}
	return Segment{
		Name:       s.Name,
		Guest:      s.Guest,
		Index:      i,
		Interface:  "seg-" + s.Name,
		Gateway4:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, n, 0, 1}), 24),
		Gateway6:   netip.PrefixFrom(v6(1), 64),
		GatewayMAC: mac(byte(i+1), 1),
		Client4:    netip.AddrFrom4([4]byte{10, n, 0, 2}),
		Client6:    v6(2),
		ClientMAC:  mac(byte(i+1), 2),
	}
}

// mac makes the deterministic, locally administered address 02:5c:47:00:<link>:<end>, so
// tests know a client's MAC before the topology exists (device overrides by MAC).
func mac(link, end byte) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5c, 0x47, 0x00, link, end}
}

// ClientMAC returns the MAC address New gives the eth0 of the i-th segment's client.
func ClientMAC(i int) net.HardwareAddr { return mac(byte(i+1), 2) }
