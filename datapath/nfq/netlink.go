package nfq

import (
	"encoding/binary"
	"errors"
	"syscall"
)

// The nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h), spoken directly: the
// slow path reads every queued packet and answers every one, so this is its hot path, and
// it neither allocates nor starts goroutines per message (go-nfqueue over mdlayher/netlink
// did both, several times per packet). Netlink headers are in host byte order, nfqueue's
// attribute values in network byte order.
//
// This file is pure encoding and decoding, so that it is tested and fuzzed without a
// kernel; nfqueue_linux.go has the socket.

const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nfgenHdrLen = 4  // struct nfgenmsg
	nlaHdrLen   = 4  // struct nlattr

	nlmsgNoop  = 1 // NLMSG_NOOP
	nlmsgError = 2 // NLMSG_ERROR
	nlmsgDone  = 3 // NLMSG_DONE

	nlmFRequest = 0x1 // NLM_F_REQUEST
	nlmFAck     = 0x4 // NLM_F_ACK

	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER

	nfnlSubsysQueue = 3 // NFNL_SUBSYS_QUEUE

	nfqnlMsgPacket  = 0 // NFQNL_MSG_PACKET
	nfqnlMsgVerdict = 1 // NFQNL_MSG_VERDICT
	nfqnlMsgConfig  = 2 // NFQNL_MSG_CONFIG

	// Attributes of packet and verdict messages (enum nfqnl_attr_type).
	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaIfindexIn  = 5
	nfqaHwAddr     = 9
	nfqaPayload    = 10

	// Attributes of config messages (enum nfqnl_attr_config).
	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueLen = 3
	nfqaCfgMask     = 4
	nfqaCfgFlags    = 5

	nfqnlCfgCmdBind = 1 // NFQNL_CFG_CMD_BIND
	nfqnlCopyPacket = 2 // NFQNL_COPY_PACKET
	nfqaCfgFailOpen = 1 // NFQA_CFG_F_FAIL_OPEN

	// Verdicts (linux/netfilter.h).
	nfDrop   = 0
	nfAccept = 1
	nfRepeat = 4

	// maxCopyRange is the most of a packet the kernel copies to us (NFQNL_MAX_COPY_RANGE is
	// a little less), and recvBufLen a buffer any packet message fits in with its other
	// attributes.
	maxCopyRange = 0xffff
	recvBufLen   = maxCopyRange + 4096

	// verdictLen is the length of a verdict message without a mark or a payload.
	verdictLen = nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8
)

var errMalformedMsg = errors.New("nfq: malformed netlink message")

func align4(n int) int { return (n + 3) &^ 3 }

// nlMsg is one netlink message of a datagram; body aliases it.
type nlMsg struct {
	typ   uint16
	flags uint16
	seq   uint32
	body  []byte // after the header
	raw   []byte // the whole message
}

// nextMsg splits the first message off a datagram. ok is false at the end, or when what
// is left is not a whole message (the rest of the datagram is then skipped).
func nextMsg(b []byte) (m nlMsg, rest []byte, ok bool) {
	if len(b) < nlmsgHdrLen {
		return m, nil, false
	}
	n := int(binary.NativeEndian.Uint32(b))
	if n < nlmsgHdrLen || n > len(b) {
		return m, nil, false
	}
	m = nlMsg{
		typ:   binary.NativeEndian.Uint16(b[4:]),
		flags: binary.NativeEndian.Uint16(b[6:]),
		seq:   binary.NativeEndian.Uint32(b[8:]),
		body:  b[nlmsgHdrLen:n],
		raw:   b[:n],
	}
	return m, b[min(align4(n), len(b)):], true
}

// ackError is the error an NLMSG_ERROR message carries: nil for an acknowledgement.
func ackError(body []byte) error {
	if len(body) < 4 {
		return errMalformedMsg
	}
	if code := int32(binary.NativeEndian.Uint32(body)); code < 0 {
		return syscall.Errno(-code)
	}
	return nil
}

// queuedPacket is what the slow path reads from a packet message. The slices alias the
// message.
type queuedPacket struct {
	id      uint32
	hasID   bool
	inDev   uint32 // 0 when the message had none
	hwAddr  []byte // the source MAC, when the packet came with a link-layer header
	payload []byte // the packet from its network header
}

// parsePacket reads the body of an NFQNL_MSG_PACKET message. Attributes it does not use
// are skipped.
func parsePacket(body []byte) (queuedPacket, error) {
	var p queuedPacket
	if len(body) < nfgenHdrLen {
		return p, errMalformedMsg
	}
	b := body[nfgenHdrLen:]
	for len(b) >= nlaHdrLen {
		n := int(binary.NativeEndian.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return p, errMalformedMsg
		}
		v := b[nlaHdrLen:n]
		switch binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask {
		case nfqaPacketHdr: // struct nfqnl_msg_packet_hdr: be32 packet_id, be16 hw_protocol, u8 hook
			if len(v) < 4 {
				return p, errMalformedMsg
			}
			p.id, p.hasID = binary.BigEndian.Uint32(v), true
		case nfqaIfindexIn:
			if len(v) >= 4 {
				p.inDev = binary.BigEndian.Uint32(v)
			}
		case nfqaHwAddr: // struct nfqnl_msg_packet_hw: be16 hw_addrlen, u16 pad, u8 hw_addr[8]
			if len(v) >= 4 {
				if l := int(binary.BigEndian.Uint16(v)); 4+l <= len(v) {
					p.hwAddr = v[4 : 4+l]
				}
			}
		case nfqaPayload:
			p.payload = v
		}
		b = b[min(align4(n), len(b)):]
	}
	return p, nil
}

// appendHeader appends a netlink header and an nfgenmsg for queue; the caller sets the
// length once the message is complete (setLen).
func appendHeader(b []byte, msg uint16, flags uint16, seq uint32, queue uint16) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, nfnlSubsysQueue<<8|msg)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // the kernel
	// struct nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id (the queue) big endian
	b = append(b, 0, 0)
	return binary.BigEndian.AppendUint16(b, queue)
}

// setLen fills in the length of the message that starts at start.
func setLen(b []byte, start int) {
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
}

// appendAttr appends one attribute with its padding.
func appendAttr(b []byte, typ uint16, v ...[]byte) []byte {
	n := nlaHdrLen
	for _, p := range v {
		n += len(p)
	}
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	for _, p := range v {
		b = append(b, p...)
	}
	for range align4(n) - n {
		b = append(b, 0)
	}
	return b
}

func attrU32(b []byte, typ uint16, v uint32) []byte {
	b = binary.NativeEndian.AppendUint16(b, nlaHdrLen+4)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint32(b, v)
}

// appendVerdict appends a verdict message for packet id of queue: the verdict, with the
// packet's new mark when withMark, and the packet replaced by packet when it is not nil.
// Several verdicts appended to one buffer go to the kernel in one write, which handles
// them in order. The message's sequence number is the packet id, so that a refusal (the
// kernel answers errors even unasked) says which packet it was about.
func appendVerdict(b []byte, queue uint16, id uint32, verdict uint32, mark uint32, withMark bool, packet []byte) []byte {
	start := len(b)
	b = appendHeader(b, nfqnlMsgVerdict, nlmFRequest, id, queue)
	// struct nfqnl_msg_verdict_hdr: be32 verdict, be32 id
	b = binary.NativeEndian.AppendUint16(b, nlaHdrLen+8)
	b = binary.NativeEndian.AppendUint16(b, nfqaVerdictHdr)
	b = binary.BigEndian.AppendUint32(b, verdict)
	b = binary.BigEndian.AppendUint32(b, id)
	if withMark {
		b = attrU32(b, nfqaMark, mark)
	}
	if packet != nil {
		b = appendAttr(b, nfqaPayload, packet)
	}
	setLen(b, start)
	return b
}

// configMsg is the one message that binds queue to the socket and configures it: copy
// whole packets (up to maxCopyRange), at most maxLen waiting in the kernel, and the
// flags. The kernel takes the command first and then the parameters, so no packet is
// queued to us before the copy mode is set. It asks for an acknowledgement.
func configMsg(queue uint16, seq uint32, maxLen uint32, flags uint32) []byte {
	b := appendHeader(nil, nfqnlMsgConfig, nlmFRequest|nlmFAck, seq, queue)
	// struct nfqnl_msg_config_cmd: u8 command, u8 pad, be16 pf (unused since Linux 3.8)
	b = appendAttr(b, nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0})
	// struct nfqnl_msg_config_params: be32 copy_range, u8 copy_mode (packed)
	b = appendAttr(b, nfqaCfgParams, binary.BigEndian.AppendUint32(nil, maxCopyRange), []byte{nfqnlCopyPacket})
	b = attrU32(b, nfqaCfgQueueLen, maxLen)
	if flags != 0 {
		b = attrU32(b, nfqaCfgMask, flags)
		b = attrU32(b, nfqaCfgFlags, flags)
	}
	setLen(b, 0)
	return b
}
