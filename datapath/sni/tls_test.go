package sni

import (
	"bytes"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseClientHelloGoClient(t *testing.T) {
	tests := []struct {
		name     string
		cfg      *tls.Config
		wantName string
		wantALPN []string
	}{
		{"sni", &tls.Config{ServerName: "www.example.org"}, "www.example.org", nil},
		{"sni uppercase, trailing dot", &tls.Config{ServerName: "Mixed.Example.COM."}, "mixed.example.com", nil},
		{"no sni", &tls.Config{InsecureSkipVerify: true}, "", nil},
		{"ip address target sends no sni", &tls.Config{ServerName: "192.0.2.1"}, "", nil},
		{"alpn", &tls.Config{ServerName: "h2.example", NextProtos: []string{"h2", "http/1.1", "x-custom"}},
			"h2.example", []string{"h2", "http/1.1", "x-custom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := captureHello(t, tt.cfg)
			h, err := ParseClientHello(b)
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if h.ServerName != tt.wantName || h.ECH || !slices.Equal(h.ALPN, tt.wantALPN) {
				t.Errorf("got %+v, want name %q, alpn %q, no ech", h, tt.wantName, tt.wantALPN)
			}
		})
	}
}

// A default Go client offers X25519MLKEM768, which makes the hello larger than a
// typical TCP segment; that is the case the slow path must reassemble.
func TestParseClientHelloPostQuantumSize(t *testing.T) {
	b := goHello(t, "pq.example")
	if len(b) < 1500 {
		t.Fatalf("go hello is %d bytes; expected a post-quantum key share (>1500)", len(b))
	}
}

func TestParseClientHelloEveryPrefix(t *testing.T) {
	full := goHello(t, "split.example.net")
	for n := range len(full) {
		_, err := ParseClientHello(full[:n])
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix of %d/%d bytes: got %v, want ErrIncomplete", n, len(full), err)
		}
		need := NeedMore(full[:n])
		if n >= recordHeaderLen+handshakeHeaderLen && need != len(full) {
			t.Fatalf("NeedMore(prefix of %d) = %d, want %d", n, need, len(full))
		}
		if n < recordHeaderLen+handshakeHeaderLen && need != -1 {
			t.Fatalf("NeedMore(prefix of %d) = %d, want -1 (length not visible yet)", n, need)
		}
	}
	h, err := ParseClientHello(full)
	if err != nil || h.ServerName != "split.example.net" {
		t.Fatalf("full hello: got %+v, %v", h, err)
	}
	if got := NeedMore(full); got != len(full) {
		t.Errorf("NeedMore(full) = %d, want %d", got, len(full))
	}
	// Whatever follows the hello (a ChangeCipherSpec, early data) is not its concern.
	more := append(bytes.Clone(full), 20, 3, 3, 0, 1, 1)
	if h, err := ParseClientHello(more); err != nil || h.ServerName != "split.example.net" {
		t.Errorf("hello followed by another record: got %+v, %v", h, err)
	}
}

func TestParseClientHelloAcrossRecords(t *testing.T) {
	one := goHello(t, "records.example")
	msgLen := len(one) - recordHeaderLen
	// Every cut of the message into two records, including inside its 4-byte header.
	for cut := 1; cut < msgLen; cut++ {
		b := reframe(t, one, cut)
		h, err := ParseClientHello(b)
		if err != nil || h.ServerName != "records.example" {
			t.Fatalf("cut at %d: got %+v, %v", cut, h, err)
		}
	}
	// Every prefix of a three-record hello is incomplete, and the length is known
	// exactly once the hello's header is in and all records have started.
	b := reframe(t, one, 2, 700)
	for n := range len(b) {
		if _, err := ParseClientHello(b[:n]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix %d of 3-record hello: got %v, want ErrIncomplete", n, err)
		}
		if n > 2*recordHeaderLen+700 && NeedMore(b[:n]) != len(b) {
			t.Fatalf("NeedMore(prefix %d of 3 records) = %d, want %d", n, NeedMore(b[:n]), len(b))
		}
	}
	if h, err := ParseClientHello(b); err != nil || h.ServerName != "records.example" {
		t.Fatalf("3-record hello: got %+v, %v", h, err)
	}
}

func TestParseClientHelloECH(t *testing.T) {
	b := captureHello(t, &tls.Config{
		ServerName:                     "secret.example",
		MinVersion:                     tls.VersionTLS13,
		EncryptedClientHelloConfigList: echConfigList(t, "public.example"),
	})
	h, err := ParseClientHello(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.ECH || h.ServerName != "public.example" {
		t.Errorf("got %+v, want ECH with outer name public.example", h)
	}
	if strings.Contains(string(b), "secret.example") {
		t.Error("inner name visible in the hello: ECH was not used")
	}
}

// ext is a raw TLS extension for buildHello.
func ext(typ uint16, data []byte) []byte {
	return appendVec16([]byte{byte(typ >> 8), byte(typ)}, data)
}

// sniExt builds a server_name extension with one host_name entry per name.
func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0)
		list = appendVec16(list, []byte(n))
	}
	return ext(extServerName, appendVec16(nil, list))
}

// buildHello builds a minimal TLS 1.2-style ClientHello record with the given
// extensions, for inputs no real client sends. A single nil extension means a
// hello without an extensions block.
func buildHello(exts ...[]byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = appendVec16(body, []byte{0x13, 0x01})
	body = append(body, 1, 0) // null compression
	if len(exts) != 1 || exts[0] != nil {
		body = appendVec16(body, bytes.Join(exts, nil))
	}
	msg := append([]byte{handshakeClientHello, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return appendVec16([]byte{recordTypeHandshake, 3, 1}, msg)
}

func TestParseClientHelloBuilt(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 60)+".", 4) + "example" // 251 bytes
	tooLong := "aaaaaaa." + long                                       // 255 bytes
	tests := []struct {
		name string
		in   []byte
		want Hello
		err  error
	}{
		{"plain", buildHello(sniExt("a.example")), Hello{ServerName: "a.example"}, nil},
		{"underscore and digits", buildHello(sniExt("_srv.x-1.example")), Hello{ServerName: "_srv.x-1.example"}, nil},
		{"no extensions", buildHello(nil), Hello{}, nil},
		{"ipv4 literal", buildHello(sniExt("192.0.2.7")), Hello{}, nil},
		{"short ipv4", buildHello(sniExt("127.1")), Hello{}, nil},
		{"ipv6 literal", buildHello(sniExt("2001:db8::1")), Hello{}, nil},
		{"ech only", buildHello(ext(extEncryptedClientHelo, []byte{0})), Hello{ECH: true}, nil},
		{"unknown name type skipped", buildHello(ext(extServerName, appendVec16(nil, []byte{7, 0, 1, 'x', 0, 0, 3, 'a', '.', 'b'}))), Hello{ServerName: "a.b"}, nil},
		{"duplicate sni extension", buildHello(sniExt("a.example"), sniExt("b.example")), Hello{}, ErrMalformed},
		{"two host names", buildHello(sniExt("a.example", "b.example")), Hello{}, ErrMalformed},
		{"duplicate ech", buildHello(ext(extEncryptedClientHelo, nil), ext(extEncryptedClientHelo, nil)), Hello{}, ErrMalformed},
		{"space in name", buildHello(sniExt("a example")), Hello{}, ErrMalformed},
		{"nul in name", buildHello(sniExt("a\x00.example")), Hello{}, ErrMalformed},
		{"non-ascii name", buildHello(sniExt("bücher.example")), Hello{}, ErrMalformed},
		{"empty label", buildHello(sniExt("a..example")), Hello{}, ErrMalformed},
		{"only a dot", buildHello(sniExt(".")), Hello{}, ErrMalformed},
		{"label over 63", buildHello(sniExt(strings.Repeat("x", 64) + ".example")), Hello{}, ErrMalformed},
		{"name of 253 with dot", buildHello(sniExt("b." + long + ".")), Hello{ServerName: "b." + long}, nil},
		{"name over 253", buildHello(sniExt(tooLong)), Hello{}, ErrMalformed},
		{"empty sni extension", buildHello(ext(extServerName, nil)), Hello{}, ErrMalformed},
		{"empty alpn protocol", buildHello(ext(extALPN, appendVec16(nil, []byte{0}))), Hello{}, ErrMalformed},
		{"extension overruns block", buildHello([]byte{0, 0, 0, 9, 0}), Hello{}, ErrMalformed},
		{"not tls: http", []byte("GET / HTTP/1.1\r\n"), Hello{}, ErrNotTLS},
		{"not tls: sslv2", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, Hello{}, ErrNotTLS},
		{"not tls: application data", []byte{23, 3, 3, 0, 5}, Hello{}, ErrNotTLS},
		{"not tls: record version", []byte{22, 2, 0}, Hello{}, ErrNotTLS},
		{"not tls: server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, Hello{}, ErrNotTLS},
		{"empty record", []byte{22, 3, 1, 0, 0}, Hello{}, ErrMalformed},
		{"record over 16 KiB", []byte{22, 3, 1, 0x40, 0x01}, Hello{}, ErrMalformed},
		{"hello over MaxHelloLen", []byte{22, 3, 1, 0x40, 0x00, 1, 0x01, 0, 0}, Hello{}, ErrMalformed},
		{"alert between hello records", append([]byte{22, 3, 1, 0, 4, 1, 0, 1, 0}, 21, 3, 3, 0, 2, 2, 40), Hello{}, ErrMalformed},
		{"empty", nil, Hello{}, ErrIncomplete},
		{"one byte", []byte{22}, Hello{}, ErrIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseClientHello(tt.in)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err == nil && (h.ServerName != tt.want.ServerName || h.ECH != tt.want.ECH) {
				t.Errorf("got %+v, want %+v", h, tt.want)
			}
		})
	}
}

// Trailing bytes inside the handshake message mean the lengths disagree.
func TestParseHandshakeTrailingBytes(t *testing.T) {
	rec := buildHello(sniExt("a.example"))
	msg := bytes.Clone(rec[recordHeaderLen:])
	msg = append(msg, 0)
	msg[3]++
	if _, err := parseHandshake(msg); !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want ErrMalformed", err)
	}
}
