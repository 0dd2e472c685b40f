package nfq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/mdlayher/netlink"
)

// The slow path's nfnetlink_queue messages are checked against mdlayher/netlink's
// encoding, an implementation of the same format written independently of ours.

func nfgen(queue uint16) []byte { return []byte{0, 0, byte(queue >> 8), byte(queue)} }

func marshal(t testing.TB, typ uint16, flags netlink.HeaderFlags, seq uint32, queue uint16, attrs []netlink.Attribute) []byte {
	t.Helper()
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return message(t, netlink.Header{Type: netlink.HeaderType(typ), Flags: flags, Sequence: seq}, append(nfgen(queue), data...))
}

// message marshals a netlink message, filling in its length as netlink.Conn does.
func message(t testing.TB, h netlink.Header, data []byte) []byte {
	t.Helper()
	h.Length = uint32(nlmsgHdrLen + align4(len(data)))
	b, err := netlink.Message{Header: h, Data: data}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func TestAppendVerdict(t *testing.T) {
	hdr := func(verdict, id uint32) netlink.Attribute {
		return netlink.Attribute{Type: nfqaVerdictHdr, Data: append(be32(verdict), be32(id)...)}
	}
	const typ = nfnlSubsysQueue<<8 | nfqnlMsgVerdict
	for _, tc := range []struct {
		name  string
		got   []byte
		attrs []netlink.Attribute
		queue uint16
		id    uint32
	}{
		{"accept", appendVerdict(nil, 3, 77, nfAccept, 0, false, nil), []netlink.Attribute{hdr(nfAccept, 77)}, 3, 77},
		{"repeat with mark", appendVerdict(nil, 0x102, 0xfffffffe, nfRepeat, 0x200, true, nil),
			[]netlink.Attribute{hdr(nfRepeat, 0xfffffffe), {Type: nfqaMark, Data: be32(0x200)}}, 0x102, 0xfffffffe},
		{"packet, padded", appendVerdict(nil, 1, 5, nfAccept, 0, false, []byte{1, 2, 3, 4, 5}),
			[]netlink.Attribute{hdr(nfAccept, 5), {Type: nfqaPayload, Data: []byte{1, 2, 3, 4, 5}}}, 1, 5},
	} {
		want := marshal(t, typ, netlink.Request, tc.id, tc.queue, tc.attrs)
		if !bytes.Equal(tc.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", tc.name, tc.got, want)
		}
	}
	// Two verdicts in one buffer are two whole messages, one after the other.
	two := appendVerdict(appendVerdict(nil, 0, 1, nfAccept, 0, false, nil), 0, 2, nfDrop, 0, false, nil)
	if len(two) != 2*verdictLen {
		t.Fatalf("two verdicts take %d bytes, want %d", len(two), 2*verdictLen)
	}
	one := appendVerdict(nil, 0, 1, nfAccept, 0, false, nil)
	var m netlink.Message
	if err := m.UnmarshalBinary(two[:len(one)]); err != nil || m.Header.Sequence != 1 || !bytes.Equal(two[:len(one)], one) {
		t.Fatalf("first of two verdicts: %+v, %v", m, err)
	}
	if err := m.UnmarshalBinary(two[len(one):]); err != nil || m.Header.Sequence != 2 {
		t.Fatalf("second of two verdicts: %+v, %v", m, err)
	}
}

func TestConfigMsg(t *testing.T) {
	got := configMsg(7, 99, 4096, nfqaCfgFailOpen)
	want := marshal(t, nfnlSubsysQueue<<8|nfqnlMsgConfig, netlink.Request|netlink.Acknowledge, 99, 7, []netlink.Attribute{
		{Type: nfqaCfgCmd, Data: []byte{nfqnlCfgCmdBind, 0, 0, 0}},
		{Type: nfqaCfgParams, Data: append(be32(maxCopyRange), nfqnlCopyPacket)},
		{Type: nfqaCfgQueueLen, Data: be32(4096)},
		{Type: nfqaCfgMask, Data: be32(nfqaCfgFailOpen)},
		{Type: nfqaCfgFlags, Data: be32(nfqaCfgFailOpen)},
	})
	if !bytes.Equal(got, want) {
		t.Errorf("config:\n got %x\nwant %x", got, want)
	}
	// Without flags, no mask and no flags: the kernel leaves the queue's flags alone.
	got = configMsg(7, 99, 4096, 0)
	if want := want[:len(want)-16]; !bytes.Equal(got[nlmsgHdrLen:], want[nlmsgHdrLen:]) {
		t.Errorf("config without flags:\n got %x\nwant %x", got, want)
	}
}

// kernelPacket is a packet message as the kernel sends it for a forwarded packet, with
// attributes the slow path skips around the ones it reads.
func kernelPacket(t testing.TB, id uint32, payload []byte) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Bytes(nfqaPacketHdr, append(be32(id), 0x08, 0x00, 1)) // struct nfqnl_msg_packet_hdr, 7 bytes
	ae.Uint32(nfqaMark, 0x100)
	ae.Bytes(4, make([]byte, 16)) // NFQA_TIMESTAMP
	ae.Uint32(nfqaIfindexIn, 42)
	ae.Bytes(nfqaHwAddr, []byte{0, 6, 0, 0, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0})
	ae.Bytes(netlink.Nested|11, []byte{4, 0, 1, 0}) // NFQA_CT, nested
	ae.Bytes(nfqaPayload, payload)
	ae.Uint32(14, 0) // NFQA_SKB_INFO, after the payload
	data, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return message(t, netlink.Header{Type: nfnlSubsysQueue<<8 | nfqnlMsgPacket}, append([]byte{2, 0, 0, 1}, data...)) // AF_INET, queue 1
}

func TestParsePacket(t *testing.T) {
	payload := []byte{0x45, 0, 0, 21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}
	// Two messages in one datagram.
	b := append(kernelPacket(t, 1, payload), kernelPacket(t, 0x80000001, payload[:3])...)
	var got []queuedPacket
	for {
		m, rest, ok := nextMsg(b)
		if !ok {
			break
		}
		b = rest
		if m.typ != nfnlSubsysQueue<<8|nfqnlMsgPacket {
			t.Fatalf("message type %#x", m.typ)
		}
		p, err := parsePacket(m.body)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if len(b) != 0 || len(got) != 2 {
		t.Fatalf("%d packets, %d bytes left", len(got), len(b))
	}
	for i, want := range []struct {
		id      uint32
		payload []byte
	}{{1, payload}, {0x80000001, payload[:3]}} {
		p := got[i]
		if !p.hasID || p.id != want.id || p.inDev != 42 || !bytes.Equal(p.payload, want.payload) ||
			!bytes.Equal(p.hwAddr, []byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}) {
			t.Errorf("packet %d: %+v", i, p)
		}
	}
}

func TestParsePacketMalformed(t *testing.T) {
	good := kernelPacket(t, 9, []byte{0x45, 0, 0, 20})
	m, _, ok := nextMsg(good)
	if !ok {
		t.Fatal("no message")
	}
	// Every truncation of the body either parses (ending on an attribute boundary) or
	// is refused; none panics or reads past the end.
	for n := range len(m.body) {
		p, err := parsePacket(m.body[:n])
		if err == nil && p.hasID && n < nfgenHdrLen+nlaHdrLen+7 { // the packet header is 7 bytes
			t.Errorf("%d bytes: %+v", n, p)
		}
	}
	// An attribute claiming more than there is.
	bad := bytes.Clone(m.body)
	binary.NativeEndian.PutUint16(bad[nfgenHdrLen:], 0xfff0)
	if _, err := parsePacket(bad); !errors.Is(err, errMalformedMsg) {
		t.Errorf("overlong attribute: %v", err)
	}
	// A message claiming more than the datagram has ends the datagram.
	if _, _, ok := nextMsg(good[:len(good)-1]); ok {
		t.Error("truncated message accepted")
	}
}

func TestAckError(t *testing.T) {
	ack := make([]byte, 20)
	if err := ackError(ack); err != nil {
		t.Errorf("acknowledgement: %v", err)
	}
	code := -int32(syscall.EBUSY)
	binary.NativeEndian.PutUint32(ack, uint32(code))
	if err := ackError(ack); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("EBUSY: %v", err)
	}
	if err := ackError(ack[:3]); err == nil {
		t.Error("short error message accepted")
	}
}

func FuzzNetlinkMessages(f *testing.F) {
	f.Add(kernelPacket(f, 1, []byte{0x45, 0, 0, 20}))
	f.Add(appendVerdict(nil, 0, 1, nfAccept, 0, false, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		for {
			m, rest, ok := nextMsg(b)
			if !ok {
				return
			}
			if len(rest) >= len(b) {
				t.Fatal("no progress")
			}
			b = rest
			if p, err := parsePacket(m.body); err == nil && len(p.payload) > len(m.body) {
				t.Fatal("payload beyond the message")
			}
			_ = ackError(m.body)
		}
	})
}
