package sni

import (
	"testing"

	"github.com/quic-go/quic-go"
)

func BenchmarkParseClientHello(b *testing.B) {
	hello := goHello(b, "bench.example.org") // real ~1.8 KB post-quantum hello
	b.SetBytes(int64(len(hello)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClientHello(hello); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQUICFlow(b *testing.B) {
	dgrams := captureQUIC(b, "bench.example.org", quic.Version1)
	b.ReportAllocs()
	for b.Loop() {
		var f QUICFlow
		var err error
		for _, d := range dgrams {
			_, err = f.Add(d)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHTTPHost(b *testing.B) {
	req := []byte("GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-GB,en;q=0.9\r\nConnection: keep-alive\r\n\r\n")
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHTTPHost(req); err != nil {
			b.Fatal(err)
		}
	}
}
