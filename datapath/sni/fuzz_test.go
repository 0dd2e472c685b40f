package sni

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/quic-go/quic-go"
)

var writeSeeds = flag.Bool("write-seeds", false, "capture real hellos and write them as fuzz seeds under testdata/fuzz")

// checkErr fails unless err is nil or wraps one of the package's sentinels.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []error{ErrIncomplete, ErrNotTLS, ErrNotQUIC, ErrNotHTTP, ErrMalformed} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

// checkHello fails unless h holds only what the parsers promise.
func checkHello(t *testing.T, h Hello) {
	t.Helper()
	if h.ServerName != "" {
		name, kind, err := checkName([]byte(h.ServerName))
		if err != nil || kind != nameDNS || name != h.ServerName {
			t.Fatalf("server name %q is not a normalized dns name", h.ServerName)
		}
	}
	for _, p := range h.ALPN {
		if p == "" {
			t.Fatal("empty alpn protocol")
		}
	}
}

func FuzzClientHello(f *testing.F) {
	f.Add(buildHello(sniExt("seed.example")))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseClientHello(b)
		checkErr(t, err)
		need := NeedMore(b)
		switch {
		case err == nil:
			checkHello(t, h)
			if need < 0 || need > len(b) {
				t.Fatalf("complete hello but NeedMore = %d of %d", need, len(b))
			}
			// The hello ends where NeedMore says: exactly those bytes parse the same.
			h2, err2 := ParseClientHello(b[:need])
			if err2 != nil || h2.ServerName != h.ServerName || h2.ECH != h.ECH {
				t.Fatalf("hello cut at NeedMore=%d: got %+v, %v; want %+v", need, h2, err2, h)
			}
		case errors.Is(err, ErrIncomplete):
			if need != -1 && need <= len(b) {
				t.Fatalf("incomplete but NeedMore = %d of %d", need, len(b))
			}
		}
	})
}

// splitDatagrams cuts fuzz input into datagrams, each prefixed by a 2-byte length;
// what is left at the end is the last datagram.
func splitDatagrams(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := int(b[0])<<8 | int(b[1])
		b = b[2:]
		if n > len(b) {
			break
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}

func joinDatagrams(ds [][]byte) []byte {
	var b []byte
	for _, d := range ds {
		b = appendVec16(b, d)
	}
	return b
}

// FuzzQUICFlow feeds datagrams to a flow. With seal set, each datagram is taken
// as the plaintext payload of an Initial packet and sealed first, so the fuzzer
// reaches frame parsing and reassembly past the AEAD.
func FuzzQUICFlow(f *testing.F) {
	f.Add(joinDatagrams([][]byte{cryptoFrame(0, buildHello(sniExt("seed.example"))[recordHeaderLen:])}), true)
	f.Fuzz(func(t *testing.T, b []byte, seal bool) {
		var fl QUICFlow
		for i, d := range splitDatagrams(b) {
			if seal {
				d = sealInitial(t, quicV1, []byte{1, 2, 3, 4}, uint16(i), d)
			}
			h, err := fl.Add(d)
			checkErr(t, err)
			if len(fl.crypto) > maxCryptoLen || len(fl.ranges) > maxCryptoRanges {
				t.Fatalf("flow holds %d bytes in %d ranges", len(fl.crypto), len(fl.ranges))
			}
			if err == nil {
				checkHello(t, h)
			}
			if err != nil && !errors.Is(err, ErrIncomplete) && i == 0 && !errors.Is(err, ErrNotQUIC) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("first datagram: unexpected %v", err)
			}
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: seed.example\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		host, err := ParseHTTPHost(b)
		checkErr(t, err)
		if err != nil && host != "" {
			t.Fatalf("host %q returned with error %v", host, err)
		}
		if bytes.ContainsAny([]byte(host), " \t\r\n\x00[]@/") || host != string(bytes.ToLower([]byte(host))) {
			t.Fatalf("host %q is not normalized", host)
		}
	})
}

// TestWriteFuzzSeeds refreshes the committed seed corpora from real clients:
// go test -run TestWriteFuzzSeeds -write-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("seeds are committed; run with -write-seeds to capture them again")
	}
	write := func(target, name string, args ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	pq := goHello(t, "www.example.org")
	write("FuzzClientHello", "go-pq-sni", pq)
	write("FuzzClientHello", "go-no-sni", captureHello(t, &tls.Config{InsecureSkipVerify: true}))
	write("FuzzClientHello", "go-alpn", captureHello(t, &tls.Config{ServerName: "a.example", NextProtos: []string{"h2", "http/1.1"}}))
	write("FuzzClientHello", "go-ech", captureHello(t, &tls.Config{ServerName: "secret.example", MinVersion: tls.VersionTLS13,
		EncryptedClientHelloConfigList: echConfigList(t, "public.example")}))
	write("FuzzClientHello", "go-two-records", reframe(t, pq, 600))
	write("FuzzClientHello", "built-duplicate-sni", buildHello(sniExt("a.example"), sniExt("b.example")))
	write("FuzzClientHello", "built-ip-sni", buildHello(sniExt("192.0.2.1")))

	write("FuzzQUICFlow", "quic-go-v1", joinDatagrams(captureQUIC(t, "quic.example.org", quic.Version1)), false)
	v2 := captureQUIC(t, "quic.example.org", quic.Version2)
	write("FuzzQUICFlow", "quic-go-v2-reversed", joinDatagrams([][]byte{v2[1], v2[0]}), false)
	write("FuzzQUICFlow", "rfc9001", joinDatagrams([][]byte{readHex(t, "rfc9001-client-initial.hex")}), false)
	write("FuzzQUICFlow", "rfc9369", joinDatagrams([][]byte{readHex(t, "rfc9369-client-initial.hex")}), false)
	msg := buildHello(sniExt("frames.example"))[recordHeaderLen:]
	write("FuzzQUICFlow", "sealed-split-frames", joinDatagrams([][]byte{
		append(cryptoFrame(20, msg[20:]), 0x02, 0, 0, 1, 0, 0, 0),
		append([]byte{1}, cryptoFrame(0, msg[:30])...),
	}), true)

	for name, req := range map[string]string{
		"simple":    "GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
		"absolute":  "GET http://abs.example:8080/x HTTP/1.1\r\nHost: other\r\n\r\n",
		"ipv6":      "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n",
		"duplicate": "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"folded":    "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
		"connect":   "CONNECT t.example:443 HTTP/1.1\r\n\r\n",
		"no-host":   "GET / HTTP/1.0\r\n\r\n",
	} {
		write("FuzzHTTPHost", name, []byte(req))
	}
}
