package sni

import (
	"errors"
	"net/netip"
	"strings"
)

// Sentinel errors; check them with errors.Is. ErrMalformed is returned wrapped with
// the reason.
var (
	// ErrIncomplete means the input is a valid prefix and more bytes are needed.
	ErrIncomplete = errors.New("incomplete input")
	// ErrNotTLS means the first bytes are not a TLS handshake record carrying a ClientHello.
	ErrNotTLS = errors.New("not a tls clienthello")
	// ErrNotQUIC means the datagram is not a QUIC v1 or v2 long-header Initial packet.
	ErrNotQUIC = errors.New("not a quic initial packet")
	// ErrNotHTTP means the bytes are not the start of an HTTP/1.x request.
	ErrNotHTTP = errors.New("not an http/1.x request")
	// ErrMalformed means the input claims to be the protocol but is broken or hostile.
	ErrMalformed = errors.New("malformed")
)

const (
	// MaxHelloLen bounds the body of a ClientHello handshake message. Real hellos,
	// including ones with post-quantum key shares, are 2–4 KB; 16 KiB is one full TLS
	// record and leaves room for growth while keeping per-flow buffering small.
	MaxHelloLen = 16 << 10
	// MaxHeadLen bounds an HTTP/1.x request head (request line and headers).
	MaxHeadLen = 8 << 10
	// maxNameLen is the longest DNS name in text form, without the trailing dot.
	maxNameLen = 253
)

// malformed wraps ErrMalformed with a reason.
type malformed string

func (m malformed) Error() string { return "malformed: " + string(m) }
func (m malformed) Unwrap() error { return ErrMalformed }

// errMalformed returns ErrMalformed wrapped with why; a named string type avoids
// fmt and keeps the error path allocation-free for constant reasons.
func errMalformed(why string) error { return malformed(why) }

// nameKind is what checkName found.
type nameKind int

const (
	nameDNS nameKind = iota // a plausible DNS name
	nameIP                  // an IPv4 or IPv6 address literal
)

// checkName validates a server name as sent on the wire (SNI or HTTP host without
// port) and returns it lowercased without a trailing dot. IP literals are reported
// as nameIP with their canonical text form.
func checkName(b []byte) (string, nameKind, error) {
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", 0, errMalformed("empty name")
	}
	if len(b) > maxNameLen {
		return "", 0, errMalformed("name longer than 253 bytes")
	}
	hasUpper, hasColon := false, false
	labelLen := 0
	lastLabelDigits := true // all characters of the current label are digits
	for _, c := range b {
		switch {
		case c == '.':
			if labelLen == 0 {
				return "", 0, errMalformed("empty label in name")
			}
			labelLen = 0
			lastLabelDigits = true
			continue
		case c >= 'a' && c <= 'z', c == '-', c == '_':
			lastLabelDigits = false
		case c >= 'A' && c <= 'Z':
			hasUpper = true
			lastLabelDigits = false
		case c >= '0' && c <= '9':
		case c == ':':
			hasColon = true
		default:
			return "", 0, errMalformed("invalid character in name")
		}
		labelLen++
		if labelLen > 63 && !hasColon {
			return "", 0, errMalformed("label longer than 63 bytes")
		}
	}
	if labelLen == 0 {
		return "", 0, errMalformed("empty label in name")
	}
	if hasColon {
		// Only an IPv6 literal may contain colons.
		a, err := netip.ParseAddr(string(b))
		if err != nil || !a.Is6() {
			return "", 0, errMalformed("invalid character in name")
		}
		return a.String(), nameIP, nil
	}
	if lastLabelDigits {
		// No top-level domain is numeric; a name ending in digits is an IPv4
		// address in some spelling (1.2.3.4, 127.1, 2130706433) that resolvers and
		// browsers would treat as an address.
		if a, err := netip.ParseAddr(string(b)); err == nil {
			return a.String(), nameIP, nil
		}
		return strings.ToLower(string(b)), nameIP, nil
	}
	if hasUpper {
		return strings.ToLower(string(b)), nameDNS, nil
	}
	return string(b), nameDNS, nil
}
