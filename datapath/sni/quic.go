package sni

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
)

// QUIC versions whose Initial packets we can decrypt.
const (
	quicV1 = 0x00000001 // RFC 9000, RFC 9001
	quicV2 = 0x6b3343cf // RFC 9369
)

const (
	maxConnIDLen = 20 // RFC 9000 §17.2 for v1 and v2
	// maxCryptoLen bounds the reassembled CRYPTO stream. The client's Initial
	// CRYPTO stream holds nothing but its ClientHello, so it can never be longer
	// than the largest hello we accept.
	maxCryptoLen = handshakeHeaderLen + MaxHelloLen
	// maxCryptoRanges bounds the number of disjoint pieces held while waiting for
	// gaps to fill; real clients leave one or two gaps.
	maxCryptoRanges = 32
	// maxCryptoFrames bounds the work a flow can cause; Chrome's scrambled hellos
	// use a few dozen frames.
	maxCryptoFrames = 512
	aeadTagLen      = 16
	hpSampleLen     = 16
)

// Initial salts and labels: RFC 9001 §5.2 (v1) and RFC 9369 §3.3 (v2).
var (
	saltV1 = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2 = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
)

// IsQUICInitial reports whether b starts like a QUIC v1 or v2 long-header Initial
// packet. It looks at the first six bytes only.
func IsQUICInitial(b []byte) bool {
	if len(b) < 6 || b[0]&0x80 == 0 || b[5] > maxConnIDLen {
		return false
	}
	v := binary.BigEndian.Uint32(b[1:5])
	return (v == quicV1 || v == quicV2) && packetType(b[0], v) == packetInitial
}

// Long header packet types, numbered as in v1. Version 2 permutes the wire values
// (RFC 9369 §3.2) and packetType maps them back.
const (
	packetInitial = iota
	packet0RTT
	packetHandshake
	packetRetry
)

// packetType returns the v1 numbering of a long header packet's type.
func packetType(first byte, version uint32) int {
	t := int(first>>4) & 3
	if version == quicV2 {
		// v2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
		return (t + 3) % 4
	}
	return t
}

// QUICFlow reassembles the ClientHello from the client's Initial packets of one
// QUIC connection. The zero value is ready to use; a flow holds at most
// maxCryptoLen bytes of CRYPTO data. A QUICFlow is not safe for concurrent use.
type QUICFlow struct {
	version   uint32
	keys      *initialKeys // derived from the first Initial's destination connection ID
	largestPN int64        // largest packet number decrypted, -1 before the first
	frames    int

	crypto  []byte // CRYPTO stream bytes by offset; gaps are zero
	ranges  []span // received parts of crypto, sorted and merged
	scratch []byte // decryption buffer, reused across packets

	done  bool
	hello Hello
	err   error
}

// span is a half-open byte range [start, end) of the CRYPTO stream.
type span struct{ start, end int }

// Add takes one UDP datagram sent by the client. A datagram may hold several
// coalesced packets; only Initial packets are used. Add returns the Hello as soon
// as the CRYPTO data from offset 0 holds a whole ClientHello, ErrIncomplete while
// more datagrams are needed, ErrNotQUIC when the first datagram is not a QUIC
// v1/v2 Initial, and ErrMalformed (wrapped) for broken or hostile packets. Once a
// result or ErrMalformed has been returned, later calls return it again.
func (f *QUICFlow) Add(datagram []byte) (Hello, error) {
	if f.done {
		return f.hello, f.err
	}
	if f.keys == nil && !IsQUICInitial(datagram) {
		return Hello{}, ErrNotQUIC
	}
	if err := f.addDatagram(datagram); err != nil {
		return f.finish(Hello{}, err)
	}
	h, err := f.tryHello()
	if errors.Is(err, ErrIncomplete) {
		return Hello{}, err
	}
	return f.finish(h, err)
}

func (f *QUICFlow) finish(h Hello, err error) (Hello, error) {
	f.done, f.hello, f.err = true, h, err
	f.crypto, f.ranges, f.scratch = nil, nil, nil // release memory early
	return h, err
}

// addDatagram decrypts the datagram's Initial packets and files their frames.
func (f *QUICFlow) addDatagram(d []byte) error {
	for first := true; len(d) > 0; first = false {
		p, ok := parseLongHeader(d, f.version)
		if !ok {
			if f.keys == nil {
				return errMalformed("bad initial packet header")
			}
			// Junk or a short header packet ends the datagram; neither can be skipped.
			return nil
		}
		pkt := d[:p.end]
		d = d[p.end:]
		if packetType(pkt[0], p.version) != packetInitial {
			continue // 0-RTT or Handshake: nothing for us
		}
		if f.keys == nil {
			k, err := newInitialKeys(p.version, p.dcid)
			if err != nil {
				return err
			}
			// Later Initials may carry the connection ID the server chose, but
			// their keys stay the ones derived from this first ID.
			f.keys, f.version, f.largestPN = k, p.version, -1
		}
		payload, ok := f.decrypt(pkt, p.pnOffset)
		if !ok {
			if first && f.largestPN < 0 {
				// Nothing from this flow has ever decrypted: it is not a real Initial.
				return errMalformed("initial packet does not decrypt")
			}
			// A spoofed or corrupted packet; the real ones may still come.
			continue
		}
		if err := f.readFrames(payload); err != nil {
			return err
		}
	}
	return nil
}

// longPacket locates the parts of one long header packet.
type longPacket struct {
	version  uint32
	dcid     []byte
	pnOffset int // where the (protected) packet number starts
	end      int // end of the packet within the datagram
}

// parseLongHeader reads a v1/v2 long header at the start of d. want is the
// flow's version, or 0 before the first Initial.
func parseLongHeader(d []byte, want uint32) (longPacket, bool) {
	var p longPacket
	r := reader(d)
	first, ok := r.u8()
	if !ok || first&0x80 == 0 {
		return p, false
	}
	if len(r) < 4 {
		return p, false
	}
	p.version = binary.BigEndian.Uint32(r)
	r = r[4:]
	if p.version != quicV1 && p.version != quicV2 || want != 0 && p.version != want {
		return p, false // another version's header layout is unknown to us
	}
	dcid, ok := r.vec8()
	if !ok || len(dcid) > maxConnIDLen {
		return p, false
	}
	scid, ok := r.vec8()
	if !ok || len(scid) > maxConnIDLen {
		return p, false
	}
	p.dcid = dcid
	switch packetType(first, p.version) {
	case packetInitial:
		n, ok := r.varint()
		if !ok || !r.skip64(n) { // token
			return p, false
		}
	case packetRetry:
		return p, false // only servers send Retry, and it has no length field
	}
	length, ok := r.varint()
	if !ok || length > uint64(len(r)) {
		return p, false
	}
	p.pnOffset = len(d) - len(r)
	p.end = p.pnOffset + int(length)
	return p, true
}

// decrypt removes header protection and decrypts one Initial packet (RFC 9001
// §5.3–5.4) in f.scratch, leaving datagram untouched: the caller may still need
// the original bytes for its verdict.
func (f *QUICFlow) decrypt(pkt []byte, pnOffset int) ([]byte, bool) {
	if pnOffset+4+hpSampleLen > len(pkt) {
		return nil, false
	}
	var mask [16]byte
	f.keys.hp.Encrypt(mask[:], pkt[pnOffset+4:pnOffset+4+hpSampleLen])

	s := append(f.scratch[:0], pkt...)
	f.scratch = s
	s[0] ^= mask[0] & 0x0f
	pnLen := int(s[0]&3) + 1
	var truncated uint64
	for i := range pnLen {
		s[pnOffset+i] ^= mask[1+i]
		truncated = truncated<<8 | uint64(s[pnOffset+i])
	}
	pn := decodePacketNumber(f.largestPN, truncated, pnLen*8)

	nonce := f.keys.iv
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	hdr, ct := s[:pnOffset+pnLen], s[pnOffset+pnLen:]
	if len(ct) < aeadTagLen {
		return nil, false
	}
	pt, err := f.keys.aead.Open(ct[:0], nonce[:], ct, hdr)
	if err != nil {
		return nil, false
	}
	if s[0]&0x0c != 0 { // reserved bits must be zero once unprotected
		return nil, false
	}
	if int64(pn) > f.largestPN {
		f.largestPN = int64(pn)
	}
	return pt, true
}

// decodePacketNumber expands a truncated packet number (RFC 9000 §A.3).
func decodePacketNumber(largest int64, truncated uint64, bits int) uint64 {
	expected := uint64(largest + 1)
	win := uint64(1) << bits
	hwin := win / 2
	candidate := expected&^(win-1) | truncated
	switch {
	case candidate+hwin <= expected && candidate < 1<<62-win:
		return candidate + win
	case candidate > expected+hwin && candidate >= win:
		return candidate - win
	}
	return candidate
}

// readFrames walks the frames of a decrypted Initial packet. Only the frame types
// RFC 9000 §12.4 allows in Initial packets are accepted.
func (f *QUICFlow) readFrames(p reader) error {
	for len(p) > 0 {
		typ, ok := p.varint()
		if !ok {
			return errMalformed("bad frame type")
		}
		switch typ {
		case 0x00: // PADDING
			for len(p) > 0 && p[0] == 0 {
				p = p[1:]
			}
		case 0x01: // PING
		case 0x02, 0x03: // ACK, ACK with ECN counts
			fields := 4
			for i := 0; i < fields; i++ {
				v, ok := p.varint()
				if !ok {
					return errMalformed("bad ack frame")
				}
				if i == 2 { // ACK Range Count: a gap and a length each
					if v > uint64(len(p)) {
						return errMalformed("bad ack frame")
					}
					fields += 2 * int(v)
				}
			}
			if typ == 0x03 && !(p.skipVarint() && p.skipVarint() && p.skipVarint()) {
				return errMalformed("bad ack frame")
			}
		case 0x06: // CRYPTO
			off, ok1 := p.varint()
			n, ok2 := p.varint()
			if !ok1 || !ok2 || n > uint64(len(p)) {
				return errMalformed("bad crypto frame")
			}
			data := p[:n]
			p = p[n:]
			if err := f.addCrypto(off, data); err != nil {
				return err
			}
		case 0x1c: // CONNECTION_CLOSE (transport)
			_, ok1 := p.varint()
			_, ok2 := p.varint()
			n, ok3 := p.varint()
			if !ok1 || !ok2 || !ok3 || !p.skip64(n) {
				return errMalformed("bad connection_close frame")
			}
		default:
			return errMalformed("frame type not allowed in initial packet")
		}
	}
	return nil
}

// addCrypto places CRYPTO frame data at its offset. Retransmissions may repeat or
// overlap earlier data; overlapping bytes that differ are refused, since a server
// and this parser could otherwise read different hellos.
func (f *QUICFlow) addCrypto(off uint64, data []byte) error {
	f.frames++
	if f.frames > maxCryptoFrames {
		return errMalformed("too many crypto frames")
	}
	if len(data) == 0 {
		return nil
	}
	if off > maxCryptoLen || off+uint64(len(data)) > maxCryptoLen {
		return errMalformed("crypto data beyond the longest clienthello")
	}
	start, end := int(off), int(off)+len(data)
	for _, r := range f.ranges {
		lo, hi := max(r.start, start), min(r.end, end)
		if lo < hi && !bytes.Equal(f.crypto[lo:hi], data[lo-start:hi-start]) {
			return errMalformed("retransmitted crypto data differs")
		}
	}
	if len(f.crypto) < end {
		f.crypto = slices.Grow(f.crypto, end-len(f.crypto))[:end]
	}
	copy(f.crypto[start:end], data)
	return f.addRange(span{start, end})
}

// addRange merges s into the sorted, disjoint f.ranges.
func (f *QUICFlow) addRange(s span) error {
	i := 0
	for i < len(f.ranges) && f.ranges[i].end < s.start {
		i++
	}
	j := i
	for j < len(f.ranges) && f.ranges[j].start <= s.end {
		s.start = min(s.start, f.ranges[j].start)
		s.end = max(s.end, f.ranges[j].end)
		j++
	}
	f.ranges = slices.Replace(f.ranges, i, j, s)
	if len(f.ranges) > maxCryptoRanges {
		return errMalformed("crypto data too fragmented")
	}
	return nil
}

// tryHello parses the ClientHello once the stream from offset 0 holds all of it.
func (f *QUICFlow) tryHello() (Hello, error) {
	if len(f.ranges) == 0 || f.ranges[0].start != 0 {
		return Hello{}, ErrIncomplete
	}
	have := f.crypto[:f.ranges[0].end]
	if have[0] != handshakeClientHello {
		return Hello{}, errMalformed("crypto stream does not start with a clienthello")
	}
	if len(have) < handshakeHeaderLen {
		return Hello{}, ErrIncomplete
	}
	n := handshakeHeaderLen + u24(have[1:])
	if n > maxCryptoLen {
		return Hello{}, errMalformed("clienthello longer than MaxHelloLen")
	}
	if len(have) < n {
		return Hello{}, ErrIncomplete
	}
	return parseHandshake(have[:n])
}

// initialKeys protect the client's Initial packets.
type initialKeys struct {
	aead cipher.AEAD
	iv   [12]byte
	hp   cipher.Block
}

// newInitialKeys derives the client's Initial keys from the destination connection
// ID of its first Initial packet (RFC 9001 §5.2, RFC 9369 §3.3.1).
func newInitialKeys(version uint32, dcid []byte) (*initialKeys, error) {
	salt, keyLabel, ivLabel, hpLabel := saltV1, "quic key", "quic iv", "quic hp"
	if version == quicV2 {
		salt, keyLabel, ivLabel, hpLabel = saltV2, "quicv2 key", "quicv2 iv", "quicv2 hp"
	}
	initial, err := hkdf.Extract(sha256.New, dcid, salt)
	if err != nil {
		return nil, err
	}
	secret, err := expandLabel(initial, "client in", sha256.Size)
	if err != nil {
		return nil, err
	}
	key, err := expandLabel(secret, keyLabel, 16)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(secret, ivLabel, 12)
	if err != nil {
		return nil, err
	}
	hpKey, err := expandLabel(secret, hpLabel, 16)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	hp, err := aes.NewCipher(hpKey)
	if err != nil {
		return nil, err
	}
	k := &initialKeys{aead: aead, hp: hp}
	copy(k.iv[:], iv)
	return k, nil
}

// expandLabel is HKDF-Expand-Label from RFC 8446 §7.1 with an empty context.
func expandLabel(secret []byte, label string, length int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = append(info, byte(length>>8), byte(length), byte(len(full)))
	info = append(info, full...)
	info = append(info, 0) // empty context
	return hkdf.Expand(sha256.New, secret, string(info), length)
}

// varint reads a QUIC variable-length integer (RFC 9000 §16).
func (r *reader) varint() (uint64, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	n := 1 << ((*r)[0] >> 6)
	if len(*r) < n {
		return 0, false
	}
	v := uint64((*r)[0] & 0x3f)
	for _, c := range (*r)[1:n] {
		v = v<<8 | uint64(c)
	}
	*r = (*r)[n:]
	return v, true
}

func (r *reader) skipVarint() bool {
	_, ok := r.varint()
	return ok
}

func (r *reader) skip64(n uint64) bool {
	if n > uint64(len(*r)) {
		return false
	}
	*r = (*r)[n:]
	return true
}
