package nfq

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

// FuzzSlowPath feeds raw IP packets, as nfqueue hands them over, through the decoder and
// the tracker: whatever arrives, nothing panics, memory stays bounded, and every packet
// held is released by an outcome or the timeout.
func FuzzSlowPath(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 20, 0, 2, 203, 0, 113, 100,
		0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, 0x16, 3, 1, 0, 5})
	f.Add([]byte{0x60, 0, 0, 0, 0, 12, 17, 64, 0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
		0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x9c, 0x40, 0x01, 0xbb, 0, 12, 0, 0, 0xc0, 0, 0, 0})
	// A plain-HTTP request with timestamps, over IPv4 and IPv6: these flows get block pages.
	get := []byte("GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n")
	f.Add(tcpPacket(f, httpFlow4, 1000, 5000, get))
	f.Add(tcpPacket(f, httpFlow6, 0xfffffff0, 5000, get))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := newDecoder()
		tr := newTracker(time.Second, 4)
		now := time.Now()
		held := map[uint64]bool{}
		// The input is several packets, separated by 0xff 0x00.
		var id uint64
		for _, raw := range bytes.Split(data, []byte{0xff, 0}) {
			p, err := dec.decode(raw)
			if err != nil {
				continue
			}
			id++
			held[id] = true
			if o := tr.add(id, p, "", now); o != nil {
				for _, x := range o.ids {
					delete(held, x)
				}
				checkBlockPage(t, o)
			}
		}
		for _, o := range tr.expire(now.Add(time.Second)) {
			for _, x := range o.ids {
				delete(held, x)
			}
		}
		if len(held) != 0 || len(tr.flows) != 0 {
			t.Fatalf("%d packets never released", len(held))
		}
	})
}

// checkBlockPage: whatever the client sent, the block page for its flow (when it gets
// one) and the server's reset are built without panicking, well formed, and the page fits
// in one segment.
func checkBlockPage(t *testing.T, o *outcome) {
	if !wantsBlockPage(o) {
		return
	}
	pkt, err := blockPagePacket(o.flow, o.req, bytes.Repeat([]byte("é"), 1000))
	if err != nil {
		t.Fatalf("block page for %v: %v", o.flow, err)
	}
	if len(pkt) > maxPagePacket4 || (o.flow.Client.Addr().Is6() && len(pkt) > maxPagePacket6) {
		t.Fatalf("block page of %d bytes", len(pkt))
	}
	parseTCP(t, pkt) // gopacket reads it, and its checksums verify
	rst, err := serverResetPacket(o.flow, o.req)
	if err != nil {
		t.Fatalf("server reset for %v: %v", o.flow, err)
	}
	parseTCP(t, rst)
}

// tcpPacket builds a client's TCP data packet of flow fl with a timestamp option.
func tcpPacket(tb testing.TB, fl Flow, seq, ack uint32, payload []byte) []byte {
	tcp := &layers.TCP{SrcPort: layers.TCPPort(fl.Client.Port()), DstPort: layers.TCPPort(fl.Server.Port()),
		Seq: seq, Ack: ack, ACK: true, PSH: true, Window: 502,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindTimestamps, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 2}}}}
	pkt, err := gopacketTCP(fl.Client.Addr(), fl.Server.Addr(), tcp, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}
