package sni

import (
	"bytes"
	"net/netip"
	"strings"
)

// maxMethodLen bounds the request method; registered methods are far shorter, and
// a long run of letters is more likely another protocol than HTTP.
const maxMethodLen = 20

// ParseHTTPHost reads an HTTP/1.x request head from the first bytes of a TCP
// stream and returns the host the request is for: lowercased, without port, IPv6
// brackets or trailing dot. An absolute-form request-target (or CONNECT's
// authority-form) wins over the Host header, as in RFC 9112 §3.2.2.
//
// It returns ErrIncomplete until the request line and the Host header (or the
// whole head) have arrived, ErrNotHTTP when the request line is not HTTP/1.x, and
// ErrMalformed (wrapped) for duplicate or folded Host headers, invalid names and
// heads longer than MaxHeadLen. A complete head without a Host header yields "".
func ParseHTTPHost(b []byte) (string, error) {
	// RFC 9112 §2.2: servers ignore empty lines before the request line.
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	head := b[:min(len(b), MaxHeadLen)]
	tooLong := func() error {
		if len(b) >= MaxHeadLen {
			return errMalformed("request head longer than MaxHeadLen")
		}
		return ErrIncomplete
	}

	eol := bytes.IndexByte(head, '\n')
	if eol < 0 {
		if err := checkRequestLine(head, false); err != nil {
			return "", err
		}
		return "", tooLong()
	}
	line := trimCR(head[:eol])
	if err := checkRequestLine(line, true); err != nil {
		return "", err
	}
	method, rest, _ := bytes.Cut(line, []byte{' '})
	target, _, _ := bytes.Cut(rest, []byte{' '})
	if string(method) == "CONNECT" {
		return hostPort(target)
	}
	if authority, ok := absoluteAuthority(target); ok {
		return authorityHost(authority)
	}

	var host []byte
	found, lastWasHost := false, false
	pos := eol + 1
	for {
		i := bytes.IndexByte(head[pos:], '\n')
		if i < 0 {
			break
		}
		line := trimCR(head[pos : pos+i])
		pos += i + 1
		if len(line) == 0 { // end of head
			if !found {
				return "", nil
			}
			return hostPort(host)
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold (RFC 9112 §5.2): a folded Host could hide a second name.
			if lastWasHost {
				return "", errMalformed("folded host header")
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !isToken(name) {
			// Includes whitespace before the colon, which RFC 9112 §5.1 says servers
			// must reject: "Host :" must not slip past us.
			return "", errMalformed("bad header line")
		}
		lastWasHost = len(name) == 4 && bytes.EqualFold(name, []byte("host"))
		if lastWasHost {
			if found {
				return "", errMalformed("duplicate host header")
			}
			found, host = true, trimOWS(value)
		}
	}
	// The head is not complete, but the Host line is, and the next line has
	// started without folding into it: servers must refuse a second Host, so this
	// is the name.
	if found && (!lastWasHost || pos < len(head) && head[pos] != ' ' && head[pos] != '\t') {
		return hostPort(host)
	}
	return "", tooLong()
}

// checkRequestLine checks that line is (when complete) or could become (when not)
// "method SP request-target SP HTTP/1.x".
func checkRequestLine(line []byte, complete bool) error {
	if !complete {
		line = trimCR(line) // the LF may be in the next segment
	}
	method, rest, hasSP := bytes.Cut(line, []byte{' '})
	if len(method) > maxMethodLen || !isToken(method) && (len(method) > 0 || hasSP) {
		return ErrNotHTTP
	}
	if !hasSP {
		if complete {
			return ErrNotHTTP
		}
		return nil
	}
	target, version, hasSP := bytes.Cut(rest, []byte{' '})
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return ErrNotHTTP
		}
	}
	if !hasSP {
		if complete {
			return ErrNotHTTP
		}
		return nil
	}
	if len(target) == 0 {
		return ErrNotHTTP
	}
	const want = "HTTP/1."
	n := min(len(version), len(want))
	if string(version[:n]) != want[:n] {
		return ErrNotHTTP
	}
	if len(version) > len(want) && (len(version) > len(want)+1 || version[len(want)] < '0' || version[len(want)] > '9') {
		return ErrNotHTTP
	}
	if complete && len(version) != len(want)+1 {
		return ErrNotHTTP
	}
	return nil
}

// absoluteAuthority returns the authority of an absolute-form http(s) target.
func absoluteAuthority(target []byte) ([]byte, bool) {
	scheme, rest, ok := bytes.Cut(target, []byte("://"))
	if !ok || !bytes.EqualFold(scheme, []byte("http")) && !bytes.EqualFold(scheme, []byte("https")) {
		return nil, false
	}
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	return rest, true
}

// authorityHost returns the host of a URI authority ("user@host:port").
func authorityHost(authority []byte) (string, error) {
	if i := bytes.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if len(authority) == 0 {
		return "", errMalformed("absolute-form target without host")
	}
	return hostPort(authority)
}

// hostPort splits "host", "host:port" or "[v6]:port" and validates the host.
// An empty value (allowed by RFC 9112 when the target has no authority) gives "".
func hostPort(v []byte) (string, error) {
	if len(v) == 0 {
		return "", nil
	}
	var port []byte
	if v[0] == '[' {
		end := bytes.IndexByte(v, ']')
		if end < 0 {
			return "", errMalformed("unclosed ipv6 literal")
		}
		a, err := netip.ParseAddr(string(v[1:end]))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errMalformed("bad ipv6 literal")
		}
		rest := v[end+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return "", errMalformed("bad port")
			}
			port = rest[1:]
		}
		if !allDigits(port) {
			return "", errMalformed("bad port")
		}
		return a.String(), nil
	}
	if i := bytes.LastIndexByte(v, ':'); i >= 0 {
		v, port = v[:i], v[i+1:]
		if !allDigits(port) {
			return "", errMalformed("bad port")
		}
		if bytes.IndexByte(v, ':') >= 0 {
			return "", errMalformed("ipv6 literal without brackets")
		}
	}
	name, _, err := checkName(v)
	return name, err
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// trimOWS removes optional whitespace (SP, HTAB) around a field value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
