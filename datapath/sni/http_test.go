package sni

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHTTPHost(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "example.com", nil},
		{"uppercase and port", "GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST:  WWW.Example.COM:8080 \r\nAccept: */*\r\n\r\n", "www.example.com", nil},
		{"trailing dot", "GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n", "example.com", nil},
		{"bare LF line ends", "GET / HTTP/1.1\nhost: lf.example\n\n", "lf.example", nil},
		{"ipv4", "GET / HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n", "192.0.2.1", nil},
		{"ipv6 literal with port", "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n", "2001:db8::1", nil},
		{"ipv6 literal", "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", "::1", nil},
		{"absolute-form wins", "GET http://Proxy.Example:81/path?q HTTP/1.1\r\nHost: other.example\r\n\r\n", "proxy.example", nil},
		{"absolute-form https with userinfo", "GET https://user:pw@abs.example/ HTTP/1.1\r\n", "abs.example", nil},
		{"absolute-form ipv6", "GET http://[::2]:8080/ HTTP/1.1\r\n", "::2", nil},
		{"connect authority-form", "CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n", "tunnel.example", nil},
		{"http/1.0 without host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", "", nil},
		{"empty host", "OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", "", nil},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example", nil},
		{"host line done, head not", "GET / HTTP/1.1\r\nHost: early.example\r\nAccept: te", "early.example", nil},
		{"other header folded", "GET / HTTP/1.1\r\nX-A: 1\r\n  2\r\nHost: fold.example\r\n\r\n", "fold.example", nil},

		{"duplicate host", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", "", ErrMalformed},
		{"duplicate host, other case", "GET / HTTP/1.1\r\nhost: a.example\r\nX: y\r\nHOST: a.example\r\n\r\n", "", ErrMalformed},
		{"folded host", "GET / HTTP/1.1\r\nHost: a.example\r\n b.example\r\n\r\n", "", ErrMalformed},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", "", ErrMalformed},
		{"line without colon", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", "", ErrMalformed},
		{"space in host", "GET / HTTP/1.1\r\nHost: a b.example\r\n\r\n", "", ErrMalformed},
		{"non-ascii host", "GET / HTTP/1.1\r\nHost: bücher.example\r\n\r\n", "", ErrMalformed},
		{"bad port", "GET / HTTP/1.1\r\nHost: a.example:8o\r\n\r\n", "", ErrMalformed},
		{"unbracketed ipv6", "GET / HTTP/1.1\r\nHost: 2001:db8::1\r\n\r\n", "", ErrMalformed},
		{"bad ipv6 literal", "GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", "", ErrMalformed},
		{"absolute-form without host", "GET http:///x HTTP/1.1\r\n", "", ErrMalformed},

		{"tls", "\x16\x03\x01\x02\x00\x01", "", ErrNotHTTP},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", ErrNotHTTP},
		{"http/0.9", "GET /\r\n", "", ErrNotHTTP},
		{"lowercase version", "GET / http/1.1\r\n", "", ErrNotHTTP},
		{"ssh banner", "SSH-2.0-OpenSSH_9.6\r\n", "", ErrNotHTTP},
		{"long method", strings.Repeat("A", 30), "", ErrNotHTTP},
		{"control byte in target", "GET /\x01 HTTP/1.1\r\n", "", ErrNotHTTP},

		{"empty", "", "", ErrIncomplete},
		{"method only", "GE", "", ErrIncomplete},
		{"request line partial", "GET /index.html HTT", "", ErrIncomplete},
		{"request line, CR pending LF", "GET / HTTP/1.1\r", "", ErrIncomplete},
		{"host value partial", "GET / HTTP/1.1\r\nHost: exam", "", ErrIncomplete},
		{"host line may still fold", "GET / HTTP/1.1\r\nHost: a.example\r\n", "", ErrIncomplete},
		{"no host yet", "GET / HTTP/1.1\r\nAccept: */*\r\n", "", ErrIncomplete},
		{"head over MaxHeadLen", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeadLen), "", ErrMalformed},
		{"request line over MaxHeadLen", "GET /" + strings.Repeat("a", MaxHeadLen), "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHTTPHost([]byte(tt.in))
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Every prefix of a request, cut anywhere, is incomplete until the Host line and
// the first byte of the next line have arrived.
func TestParseHTTPHostPrefixes(t *testing.T) {
	req := "POST /upload HTTP/1.1\r\nUser-Agent: curl/8.5\r\nHost: prefix.example\r\nContent-Length: 3\r\n\r\nabc"
	ready := strings.Index(req, "Content-Length")
	for n := range len(req) + 1 {
		got, err := ParseHTTPHost([]byte(req[:n]))
		if n <= ready {
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("prefix %d (%q): got %q, %v; want ErrIncomplete", n, req[:n], got, err)
			}
			continue
		}
		if err != nil || got != "prefix.example" {
			t.Fatalf("prefix %d: got %q, %v", n, got, err)
		}
	}
}
