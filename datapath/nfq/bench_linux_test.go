package nfq

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// The slow path's own cost per new TLS flow, without the kernel: recorded packet messages
// (Go's post-quantum ClientHello in two segments, as nfqueue hands them over) go through
// the same code as the socket's (messages: netlink parsing, decoding, the tracker, the
// decision, the verdict messages), with a policy, flow table and event log that do
// nothing, and verdicts written to /dev/null instead of the queue's socket.
//
//	go test -run '^$' -bench SlowPathFlow -benchmem ./datapath/nfq/

type nopPolicy struct{}

func (nopPolicy) Decide(r policy.Request) policy.Decision {
	return policy.Decision{Action: policy.Allow, Name: r.Name}
}

func (nopPolicy) DecideUnnamed(r policy.Request, why string) policy.Decision {
	return policy.Decision{Action: policy.Allow, Rule: why}
}

type nopFlows struct{}

func (nopFlows) SetFlowVerdict(Flow, FlowVerdict, policy.Decision) error { return nil }

type nopEvents struct{}

func (nopEvents) Record(eventlog.Event) {}

// packetMsg wraps an IP packet in an NFQNL_MSG_PACKET message the way the kernel does for
// a forwarded packet: packet header, mark, input interface, source MAC, payload.
func packetMsg(queue uint16, id uint32, pkt []byte) []byte {
	b := appendHeader(nil, nfqnlMsgPacket, 0, 0, queue)
	var hdr [7]byte
	binary.BigEndian.PutUint32(hdr[:], id)
	binary.BigEndian.PutUint16(hdr[4:], 0x0800)
	hdr[6] = 0 // NF_INET_PRE_ROUTING
	b = appendAttr(b, nfqaPacketHdr, hdr[:])
	b = attrU32(b, nfqaMark, 0x100)
	b = attrU32(b, nfqaIfindexIn, 3)
	b = appendAttr(b, nfqaHwAddr, []byte{0, 6, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0})
	b = appendAttr(b, nfqaPayload, pkt)
	setLen(b, 0)
	return b
}

func BenchmarkSlowPathFlow(b *testing.B) {
	hello := clientHello(b, "allowed.test")
	if len(hello) <= 1448 {
		b.Fatalf("ClientHello of %d bytes fits one segment", len(hello))
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	s, err := New(Config{Policy: nopPolicy{}, Flows: nopFlows{}, Events: nopEvents{}})
	if err != nil {
		b.Fatal(err)
	}
	s.queues = []*nfQueue{{fd: int(devnull.Fd())}}
	dec := newDecoder()

	// Distinct flows, each its two segments; the packet ids are rewritten per use.
	const flows = 4096
	msgs := make([][2][]byte, flows)
	server := netip.MustParseAddrPort("203.0.113.100:443")
	for i := range msgs {
		fl := Flow{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)}), 40000), Server: server, Proto: protoTCP}
		msgs[i][0] = packetMsg(0, 0, tcpPacket(b, fl, 1000, 5000, hello[:1448]))
		msgs[i][1] = packetMsg(0, 0, tcpPacket(b, fl, 1000+1448, 5000, hello[1448:]))
	}
	idAt := nlmsgHdrLen + nfgenHdrLen + nlaHdrLen // the packet id in a packet message
	var id uint32
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%flows == 0 {
			clear(s.recent) // the next round's flows are new again
			s.recentQ = s.recentQ[:0]
		}
		for _, m := range msgs[i%flows] {
			id++
			binary.BigEndian.PutUint32(m[idAt:], id)
			s.messages(0, dec, m)
		}
	}
	b.StopTimer()
	if st := s.Stats(); st.Errors != 0 || st.Allowed != uint64(b.N) {
		b.Fatalf("stats %+v after %d flows", st, b.N)
	}
}
