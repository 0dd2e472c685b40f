package sni

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// captureHello runs Go's crypto/tls client over a pipe and returns the bytes it
// sends first: its ClientHello as one TLS record.
func captureHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	done := make(chan error, 1)
	go func() {
		c := tls.Client(client, cfg)
		done <- c.Handshake()
		c.Close()
	}()
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatalf("reading record header: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatalf("reading record body: %v", err)
	}
	server.Close()
	if err := <-done; err == nil {
		t.Fatal("handshake succeeded without a server")
	}
	return append(hdr, body...)
}

// goHello is the ClientHello of a default Go client asking for host.
func goHello(t testing.TB, host string) []byte {
	return captureHello(t, &tls.Config{ServerName: host})
}

// echConfigList builds an ECHConfigList (draft-ietf-tls-esni §4) with a fresh
// X25519 key, so Go's client sends a real encrypted_client_hello with publicName
// as the outer SNI.
func echConfigList(t testing.TB, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var c []byte
	c = append(c, 1)          // config_id
	c = append(c, 0x00, 0x20) // KEM: DHKEM(X25519, HKDF-SHA256)
	c = appendVec16(c, key.PublicKey().Bytes())
	c = appendVec16(c, []byte{0x00, 0x01, 0x00, 0x01}) // HKDF-SHA256, AES-128-GCM
	c = append(c, 0)                                   // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = appendVec16(c, nil) // extensions
	cfg := appendVec16([]byte{0xfe, 0x0d}, c)
	return appendVec16(nil, cfg)
}

func appendVec16(b, v []byte) []byte {
	b = append(b, byte(len(v)>>8), byte(len(v)))
	return append(b, v...)
}

// reframe splits the handshake message inside a single-record hello into records
// cut at the given offsets of the message.
func reframe(t testing.TB, record []byte, cuts ...int) []byte {
	t.Helper()
	msg := record[recordHeaderLen:]
	var out []byte
	prev := 0
	for _, c := range append(cuts, len(msg)) {
		out = append(out, recordTypeHandshake, 3, 1)
		out = appendVec16(out, msg[prev:c])
		prev = c
	}
	return out
}

// captureQUIC dials a local UDP socket with quic-go and returns the client's
// first datagrams, enough to hold its ClientHello (two with ML-KEM key shares).
func captureQUIC(t testing.TB, host string, version quic.Version) [][]byte {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dialed := make(chan struct{})
	go func() {
		defer close(dialed)
		conn, err := quic.DialAddr(ctx, pc.LocalAddr().String(),
			&tls.Config{ServerName: host, NextProtos: []string{"h3"}},
			&quic.Config{Versions: []quic.Version{version}})
		if err == nil {
			conn.CloseWithError(0, "")
		}
	}()
	defer func() { cancel(); <-dialed }()

	// Read until the first datagrams carry a whole hello; quic-go retransmits
	// after its probe timeout, so stop at the first complete set.
	var got [][]byte
	var f QUICFlow
	buf := make([]byte, 65536)
	for len(got) < 8 {
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("reading quic-go datagram %d: %v", len(got)+1, err)
		}
		got = append(got, bytes.Clone(buf[:n]))
		if _, err := f.Add(buf[:n]); !errors.Is(err, ErrIncomplete) {
			return got
		}
	}
	t.Fatalf("no complete hello in %d datagrams", len(got))
	return nil
}

// readHex reads a hex dump from testdata, ignoring whitespace.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	return b
}
