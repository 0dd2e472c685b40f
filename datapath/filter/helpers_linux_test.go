package filter

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var pinCounter atomic.Int32

// testPinPath is unique per test process and call: packages' tests run in parallel.
func testPinPath() string {
	return fmt.Sprintf("/sys/fs/bpf/schoolgate-test-%d-%d", os.Getpid(), pinCounter.Add(1))
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs")
	}
}

// newTestFilter loads the programs with a pin path of their own and removes everything
// when the test ends.
func newTestFilter(t testing.TB) *Filter {
	t.Helper()
	needRoot(t)
	f, err := New(Config{PinPath: testPinPath()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Remove(); err != nil {
			t.Errorf("Remove: %v", err)
		}
	})
	return f
}

// skbContext is the start of struct __sk_buff, as far as BPF_PROG_TEST_RUN lets us set it.
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex, TCIndex                                  uint32
	CB                                                                          [5]uint32
	Hash, TCClassID                                                             uint32
}

const (
	actOK   = 0
	actShot = 2
)

// run runs prog on one frame and returns its tc action and the skb mark after it. For
// ingress the segment is picked by ingress_ifindex, which test runs take as given; for
// egress by ifindex, which must name a real device (1, loopback).
func run(t testing.TB, prog *ebpf.Program, frame []byte, ifindex uint32, egress bool) (action, mark uint32) {
	t.Helper()
	action, mark, err := tryRun(prog, frame, ifindex, egress)
	if err != nil {
		t.Fatalf("running program: %v", err)
	}
	if mark&^MarkMask != testMark {
		t.Fatalf("mark bits outside MarkMask changed: %#x", mark)
	}
	return action, mark & MarkMask
}

// testMark is set in every test skb: the programs must leave bits outside MarkMask alone.
const testMark = 0x42

func tryRun(prog *ebpf.Program, frame []byte, ifindex uint32, egress bool) (action, mark uint32, err error) {
	in := skbContext{Mark: testMark}
	if egress {
		in.Ifindex = ifindex
	} else {
		in.IngressIfindex = ifindex
	}
	// The kernel copies the whole struct __sk_buff back (192 bytes on 6.18) and refuses a
	// smaller buffer; mark is its third field.
	var out [512]byte
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: &in, ContextOut: out[:]})
	if err != nil {
		return 0, 0, err
	}
	return ret, binary.NativeEndian.Uint32(out[8:12]), nil
}

var (
	clientMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	gatewayMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
)

// frame describes a test packet from a client.
type frame struct {
	mac      net.HardwareAddr // clientMAC when nil
	src, dst string           // "addr:port" or "[addr]:port"; the port is ignored for ICMPv6
	proto    layers.IPProtocol
	syn      bool   // TCP: a SYN instead of an ACK
	fin, rst bool   // TCP: FIN or RST set as well
	payload  []byte // transport payload
	icmpType uint8
	// ext are raw IPv6 extension headers placed before the transport header; extFirst
	// is the first one's protocol number (the chain's last next-header must be proto).
	ext      []byte
	extFirst layers.IPProtocol
	// fragOffset makes an IPv4 packet a non-first fragment.
	fragOffset uint16
}

func (fr frame) bytes(t testing.TB) []byte {
	t.Helper()
	src := netip.MustParseAddrPort(fr.src)
	dst := netip.MustParseAddrPort(fr.dst)
	mac := fr.mac
	if mac == nil {
		mac = clientMAC
	}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: gatewayMAC}
	var ip interface {
		gopacket.SerializableLayer
		gopacket.NetworkLayer
	}
	if src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: fr.proto, FragOffset: fr.fragOffset,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		next := fr.proto
		if fr.ext != nil {
			next = fr.extFirst
		}
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	}

	var l4 gopacket.SerializableLayer
	switch fr.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
			Seq: 1000, Ack: 1, SYN: fr.syn, ACK: !fr.syn, FIN: fr.fin, RST: fr.rst, Window: 65535}
		tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
		udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	case layers.IPProtocolICMPv6:
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(fr.icmpType, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		l4 = icmp
	default:
		t.Fatalf("unsupported protocol %v", fr.proto)
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	transport := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(transport, opts, l4, gopacket.Payload(fr.payload)); err != nil {
		t.Fatalf("serializing transport: %v", err)
	}
	rest := append(append([]byte{}, fr.ext...), transport.Bytes()...)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, gopacket.Payload(rest)); err != nil {
		t.Fatalf("serializing frame: %v", err)
	}
	return buf.Bytes()
}
