package sni

import "errors"

// TLS constants used on the wire (RFC 8446, RFC 6066, RFC 7301, draft-ietf-tls-esni).
const (
	recordTypeHandshake    = 22
	handshakeClientHello   = 1
	recordHeaderLen        = 5
	handshakeHeaderLen     = 4
	maxRecordLen           = 1 << 14 // plaintext record limit, RFC 8446 §5.1
	extServerName          = 0x0000
	extALPN                = 0x0010
	extEncryptedClientHelo = 0xfe0d
)

// Hello is what the slow path needs from a ClientHello.
type Hello struct {
	// ServerName is the SNI host_name, lowercased ASCII without a trailing dot; ""
	// when the hello has no SNI or names an IP address.
	ServerName string
	// ECH is set when an encrypted_client_hello extension is present; ServerName is
	// then the outer (public) name, not the one the user asked for.
	ECH bool
	// ALPN lists the application protocols the client offers, in its order.
	ALPN []string
}

// ParseClientHello parses the start of a TLS client stream: the client's first TCP
// payloads concatenated in order. The ClientHello may span several TLS records and
// TCP segments. It returns ErrIncomplete while b is a valid prefix, ErrNotTLS when b
// does not start with a handshake record carrying a ClientHello, and ErrMalformed
// (wrapped) for broken or oversized hellos. Bytes after the ClientHello are ignored.
func ParseClientHello(b []byte) (Hello, error) {
	msg, _, err := readHandshake(b)
	if err != nil {
		return Hello{}, err
	}
	return parseHandshake(msg)
}

// NeedMore reports how many bytes of the TLS stream, in total, are needed to hold
// the whole ClientHello, so the caller can decide whether to wait for another
// segment. When the hello continues past the records seen so far it assumes the
// rest comes in one more record, so the answer is then a lower bound. It returns
// -1 when the length is not known yet or b is not a valid ClientHello prefix.
func NeedMore(b []byte) int {
	_, total, err := readHandshake(b)
	if err != nil && !errors.Is(err, ErrIncomplete) {
		return -1
	}
	return total
}

// readHandshake collects the first handshake message from the TLS records at the
// start of b. It returns the message (header included), how many bytes of b it
// occupies or, when incomplete, the expected total (-1 if unknown). When the
// message sits in the first record, msg aliases b and nothing is allocated.
func readHandshake(b []byte) (msg []byte, total int, err error) {
	var buf []byte // message bytes gathered from several records
	hsLen := -1    // full message length including its header, once known
	for pos := 0; ; {
		hdr := b[pos:]
		if err := checkRecordHeader(hdr, pos == 0); err != nil {
			return nil, -1, err
		}
		if len(hdr) < recordHeaderLen {
			if hsLen < 0 {
				return nil, -1, ErrIncomplete
			}
			return nil, pos + recordHeaderLen + hsLen - len(buf), ErrIncomplete
		}
		recLen := int(hdr[3])<<8 | int(hdr[4])
		if recLen == 0 {
			return nil, -1, errMalformed("empty handshake record")
		}
		if recLen > maxRecordLen {
			return nil, -1, errMalformed("tls record longer than 16 KiB")
		}
		end := pos + recordHeaderLen + recLen
		fragEnd := min(end, len(b))
		frag := b[pos+recordHeaderLen : fragEnd]
		if pos == 0 && len(frag) > 0 && frag[0] != handshakeClientHello {
			return nil, -1, ErrNotTLS
		}

		// Common case: the whole message is inside the first record.
		if pos == 0 && len(frag) >= handshakeHeaderLen {
			hsLen = handshakeHeaderLen + u24(frag[1:])
			if hsLen-handshakeHeaderLen > MaxHelloLen {
				return nil, -1, errMalformed("clienthello longer than MaxHelloLen")
			}
			if hsLen <= recLen {
				if len(frag) >= hsLen {
					return frag[:hsLen], recordHeaderLen + hsLen, nil
				}
				return nil, recordHeaderLen + hsLen, ErrIncomplete
			}
		}

		// The message continues in later records: gather a copy.
		take := frag
		if hsLen >= 0 && len(take) > hsLen-len(buf) {
			take = take[:hsLen-len(buf)]
		}
		if buf == nil {
			buf = make([]byte, 0, max(hsLen, 64))
		}
		buf = append(buf, take...)
		if hsLen < 0 && len(buf) >= handshakeHeaderLen {
			hsLen = handshakeHeaderLen + u24(buf[1:])
			if hsLen-handshakeHeaderLen > MaxHelloLen {
				return nil, -1, errMalformed("clienthello longer than MaxHelloLen")
			}
		}
		if hsLen >= 0 && len(buf) >= hsLen {
			return buf[:hsLen], pos + recordHeaderLen + len(take), nil
		}
		if fragEnd < end {
			if hsLen < 0 {
				return nil, -1, ErrIncomplete
			}
			missing, inRecord := hsLen-len(buf), end-fragEnd
			if missing <= inRecord {
				return nil, fragEnd + missing, ErrIncomplete
			}
			return nil, end + recordHeaderLen + missing - inRecord, ErrIncomplete
		}
		pos = end
	}
}

// checkRecordHeader checks the bytes of a record header seen so far. The first
// record decides whether this is TLS at all; a later record that is not a
// handshake record breaks the ClientHello.
func checkRecordHeader(h []byte, first bool) error {
	bad := func(why string) error {
		if first {
			return ErrNotTLS
		}
		return errMalformed(why)
	}
	if len(h) >= 1 && h[0] != recordTypeHandshake {
		return bad("non-handshake record inside clienthello")
	}
	// legacy_record_version is 3.x; SSL 3.0 to TLS 1.3 (x ≤ 4) are seen in practice.
	if len(h) >= 2 && h[1] != 3 {
		return bad("bad record version")
	}
	if len(h) >= 3 && h[2] > 4 {
		return bad("bad record version")
	}
	return nil
}

// parseHandshake parses one ClientHello handshake message (type 1, 3-byte length,
// body), as carried by TLS records or QUIC CRYPTO frames.
func parseHandshake(msg []byte) (Hello, error) {
	if len(msg) < handshakeHeaderLen {
		return Hello{}, ErrIncomplete
	}
	if msg[0] != handshakeClientHello {
		return Hello{}, errMalformed("first handshake message is not a clienthello")
	}
	n := u24(msg[1:])
	if n > MaxHelloLen {
		return Hello{}, errMalformed("clienthello longer than MaxHelloLen")
	}
	if len(msg)-handshakeHeaderLen < n {
		return Hello{}, ErrIncomplete
	}
	if len(msg)-handshakeHeaderLen > n {
		return Hello{}, errMalformed("bytes after clienthello")
	}
	r := reader(msg[handshakeHeaderLen:])

	var h Hello
	version, ok := r.u16()
	if !ok || version>>8 != 3 {
		return h, errMalformed("bad clienthello version")
	}
	if !r.skip(32) { // random
		return h, errMalformed("short clienthello")
	}
	sessionID, ok := r.vec8()
	if !ok || len(sessionID) > 32 {
		return h, errMalformed("bad session id")
	}
	suites, ok := r.vec16()
	if !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return h, errMalformed("bad cipher suites")
	}
	comp, ok := r.vec8()
	if !ok || len(comp) < 1 {
		return h, errMalformed("bad compression methods")
	}
	if len(r) == 0 {
		return h, nil // a TLS 1.2-era hello without extensions
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return h, errMalformed("bad extensions block")
	}
	var seenSNI, seenALPN bool
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return h, errMalformed("bad extension")
		}
		// A repeated extension could carry a second name that a server might pick
		// instead of the one we judge, so repeats of the ones we read are refused.
		switch typ {
		case extServerName:
			if seenSNI {
				return h, errMalformed("duplicate server_name extension")
			}
			seenSNI = true
			name, err := parseServerName(data)
			if err != nil {
				return h, err
			}
			h.ServerName = name
		case extALPN:
			if seenALPN {
				return h, errMalformed("duplicate alpn extension")
			}
			seenALPN = true
			alpn, err := parseALPN(data)
			if err != nil {
				return h, err
			}
			h.ALPN = alpn
		case extEncryptedClientHelo:
			if h.ECH {
				return h, errMalformed("duplicate encrypted_client_hello extension")
			}
			h.ECH = true
		}
	}
	return h, nil
}

// parseServerName reads a server_name extension (RFC 6066 §3).
func parseServerName(data reader) (string, error) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", errMalformed("bad server_name extension")
	}
	var name string
	seenHost := false
	for len(list) > 0 {
		typ, ok1 := list.u8()
		raw, ok2 := list.vec16()
		if !ok1 || !ok2 || len(raw) == 0 {
			return "", errMalformed("bad server_name entry")
		}
		if typ != 0 { // only host_name (0) is defined; others are skipped
			continue
		}
		if seenHost {
			return "", errMalformed("two host_name entries")
		}
		seenHost = true
		n, kind, err := checkName(raw)
		if err != nil {
			return "", err
		}
		if kind == nameDNS {
			name = n
		} // RFC 6066 forbids address literals in SNI: treat as no name.
	}
	return name, nil
}

// parseALPN reads an application_layer_protocol_negotiation extension (RFC 7301).
func parseALPN(data reader) ([]string, error) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) < 2 {
		return nil, errMalformed("bad alpn extension")
	}
	count := 0
	for r := list; len(r) > 0; count++ {
		p, ok := r.vec8()
		if !ok || len(p) == 0 {
			return nil, errMalformed("bad alpn protocol name")
		}
	}
	out := make([]string, 0, count)
	for len(list) > 0 {
		p, _ := list.vec8()
		out = append(out, protoString(p))
	}
	return out, nil
}

// protoString returns common protocol names without allocating.
func protoString(p []byte) string {
	switch string(p) {
	case "h2":
		return "h2"
	case "http/1.1":
		return "http/1.1"
	case "h3":
		return "h3"
	}
	return string(p)
}

// reader consumes big-endian fields from a byte slice; every method reports false
// instead of reading past the end.
type reader []byte

func (r *reader) u8() (byte, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (int, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := int((*r)[0])<<8 | int((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *reader) bytes(n int) (reader, bool) {
	if n < 0 || len(*r) < n {
		return nil, false
	}
	v := (*r)[:n:n]
	*r = (*r)[n:]
	return v, true
}

func (r *reader) vec8() (reader, bool) {
	n, ok := r.u8()
	if !ok {
		return nil, false
	}
	return r.bytes(int(n))
}

func (r *reader) vec16() (reader, bool) {
	n, ok := r.u16()
	if !ok {
		return nil, false
	}
	return r.bytes(n)
}

// u24 reads a 3-byte big-endian length.
func u24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }
