package sni

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	"github.com/quic-go/quic-go"
)

// RFC 9001 Appendix A and RFC 9369 Appendix A use this client destination
// connection ID.
var rfcDCID = []byte{0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08}

func TestInitialKeysRFC(t *testing.T) {
	tests := []struct {
		name        string
		version     uint32
		key, iv, hp string
	}{
		// RFC 9001 §A.1
		{"v1", quicV1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		// RFC 9369 §A.1
		{"v2", quicV2, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := newInitialKeys(tt.version, rfcDCID)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(k.iv[:]); got != tt.iv {
				t.Errorf("iv = %s, want %s", got, tt.iv)
			}
			// The AES keys are not exposed by cipher.Block; compare what they do.
			sameBlock := func(what, key string, got interface{ Encrypt(dst, src []byte) }) {
				raw, _ := hex.DecodeString(key)
				want, err := aes.NewCipher(raw)
				if err != nil {
					t.Fatal(err)
				}
				in := []byte("sixteen byte blk")
				a, b := make([]byte, 16), make([]byte, 16)
				got.Encrypt(a, in)
				want.Encrypt(b, in)
				if !bytes.Equal(a, b) {
					t.Errorf("%s key differs from RFC %s", what, key)
				}
			}
			sameBlock("hp", tt.hp, k.hp)
			raw, _ := hex.DecodeString(tt.key)
			block, err := aes.NewCipher(raw)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cipher.NewGCM(block)
			if err != nil {
				t.Fatal(err)
			}
			nonce := make([]byte, 12)
			msg := []byte("initial packet payload")
			if got, want := k.aead.Seal(nil, nonce, msg, nil), want.Seal(nil, nonce, msg, nil); !bytes.Equal(got, want) {
				t.Errorf("packet key differs from RFC %s", tt.key)
			}
		})
	}
}

func TestQUICFlowRFCClientInitial(t *testing.T) {
	for _, file := range []string{"rfc9001-client-initial.hex", "rfc9369-client-initial.hex"} {
		t.Run(file, func(t *testing.T) {
			pkt := readHex(t, file)
			if !IsQUICInitial(pkt) {
				t.Fatal("IsQUICInitial = false")
			}
			var f QUICFlow
			h, err := f.Add(pkt)
			if err != nil || h.ServerName != "example.com" || h.ECH {
				t.Fatalf("got %+v, %v; want example.com", h, err)
			}
			// The result sticks: later datagrams of the flow change nothing.
			if h2, err := f.Add([]byte{0x40, 1, 2, 3}); err != nil || h2.ServerName != "example.com" {
				t.Errorf("second Add: got %+v, %v", h2, err)
			}
			// Any flipped bit in the protected part fails authentication.
			for _, i := range []int{0, 18, 19, 40, 600, len(pkt) - 1} {
				bad := bytes.Clone(pkt)
				bad[i] ^= 0x04
				var f QUICFlow
				if _, err := f.Add(bad); !errors.Is(err, ErrMalformed) {
					t.Errorf("bit flipped at %d: got %v, want ErrMalformed", i, err)
				}
			}
			// Cut short, the length field points past the datagram.
			var g QUICFlow
			if _, err := g.Add(pkt[:1000]); !errors.Is(err, ErrMalformed) {
				t.Errorf("truncated: got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestQUICFlowQuicGo(t *testing.T) {
	for _, v := range []quic.Version{quic.Version1, quic.Version2} {
		t.Run(v.String(), func(t *testing.T) {
			dgrams := captureQUIC(t, "quic.example.org", v)
			for i, d := range dgrams {
				t.Logf("quic-go datagram %d: %d bytes", i, len(d))
			}
			if len(dgrams) < 2 {
				t.Fatalf("quic-go hello fit in %d datagram; expected two with ML-KEM", len(dgrams))
			}
			check := func(name string, order []int) {
				t.Helper()
				var f QUICFlow
				for i, idx := range order {
					h, err := f.Add(dgrams[idx])
					if i < len(order)-1 {
						if !errors.Is(err, ErrIncomplete) {
							t.Fatalf("%s: datagram %d: got %v, want ErrIncomplete", name, idx, err)
						}
						continue
					}
					if err != nil || h.ServerName != "quic.example.org" || !slices.Equal(h.ALPN, []string{"h3"}) {
						t.Fatalf("%s: got %+v, %v", name, h, err)
					}
				}
			}
			inOrder := make([]int, len(dgrams))
			for i := range inOrder {
				inOrder[i] = i
			}
			check("in order", inOrder)
			reversed := slices.Clone(inOrder)
			slices.Reverse(reversed)
			check("reversed", reversed)
			check("first repeated", append([]int{0, 0}, inOrder[1:]...))
		})
	}
}

// sealInitial builds a client Initial packet around payload, the way a client
// would, so frame handling can be tested with inputs real clients rarely send.
func sealInitial(t testing.TB, version uint32, dcid []byte, pn uint16, payload []byte) []byte {
	t.Helper()
	k, err := newInitialKeys(version, dcid)
	if err != nil {
		t.Fatal(err)
	}
	if len(payload) < 20 {
		payload = append(slices.Clone(payload), make([]byte, 20-len(payload))...) // PADDING
	}
	const pnLen = 2
	typ := byte(0)
	if version == quicV2 {
		typ = 1
	}
	hdr := []byte{0xc0 | typ<<4 | (pnLen - 1), byte(version >> 24), byte(version >> 16), byte(version >> 8), byte(version)}
	hdr = append(hdr, byte(len(dcid)))
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0, 0) // no source connection ID, no token
	length := pnLen + len(payload) + aeadTagLen
	hdr = append(hdr, 0x40|byte(length>>8), byte(length))
	pnOffset := len(hdr)
	hdr = append(hdr, byte(pn>>8), byte(pn))
	nonce := k.iv
	nonce[11] ^= byte(pn)
	nonce[10] ^= byte(pn >> 8)
	sealed := k.aead.Seal(nil, nonce[:], payload, hdr)
	var mask [16]byte
	k.hp.Encrypt(mask[:], sealed[4-pnLen:4-pnLen+16])
	hdr[0] ^= mask[0] & 0x0f
	hdr[pnOffset] ^= mask[1]
	hdr[pnOffset+1] ^= mask[2]
	return append(hdr, sealed...)
}

func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xc0|byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func cryptoFrame(off int, data []byte) []byte {
	b := appendVarint([]byte{0x06}, uint64(off))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

func TestQUICFlowFrames(t *testing.T) {
	dcid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	msg := buildHello(sniExt("frames.example"), ext(extALPN, appendVec16(nil, []byte{2, 'h', '3'})))[recordHeaderLen:]
	a, b, c := msg[:10], msg[10:40], msg[40:]
	seal := func(pn uint16, frames ...[]byte) []byte {
		return sealInitial(t, quicV1, dcid, pn, bytes.Join(frames, nil))
	}
	ack := []byte{0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00} // largest 0, delay 0, 1 extra range
	ackECN := []byte{0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03}
	closeFrame := []byte{0x1c, 0x00, 0x00, 0x02, 'h', 'i'}
	// A Handshake packet (no token field) the flow must step over by its length.
	handshake := append([]byte{0xe1, 0, 0, 0, 1, byte(len(dcid))}, dcid...)
	handshake = append(handshake, 0, 0x40, 22)
	handshake = append(handshake, bytes.Repeat([]byte{0xee}, 22)...)

	tests := []struct {
		name  string
		dgram [][]byte
		err   error // of the last Add; earlier ones must be ErrIncomplete
	}{
		{"one frame", [][]byte{seal(0, cryptoFrame(0, msg))}, nil},
		{"frames out of order in one packet", [][]byte{seal(0, cryptoFrame(40, c), cryptoFrame(0, a), []byte{1}, cryptoFrame(10, b))}, nil},
		{"ack, ping, close around crypto", [][]byte{seal(0, ack, ackECN, []byte{1}, cryptoFrame(0, msg), closeFrame)}, nil},
		{"later packets first", [][]byte{seal(2, cryptoFrame(40, c)), seal(1, cryptoFrame(10, b)), seal(0, cryptoFrame(0, a))}, nil},
		{"coalesced packets", [][]byte{append(seal(0, cryptoFrame(0, a)), seal(1, cryptoFrame(10, msg[10:]))...)}, nil},
		{"overlapping retransmission", [][]byte{seal(0, cryptoFrame(0, msg[:50])), seal(1, cryptoFrame(20, msg[20:]))}, nil},
		{"handshake packet coalesced and skipped", [][]byte{seal(0, cryptoFrame(0, a)), append(handshake, seal(1, cryptoFrame(10, msg[10:]))...)}, nil},
		{"short header after initial ignored", [][]byte{append(seal(0, cryptoFrame(0, msg)), 0x40, 1, 2, 3)}, nil},
		{"forged packet in later datagram skipped", [][]byte{seal(0, cryptoFrame(0, a)), sealInitial(t, quicV1, []byte{9}, 1, cryptoFrame(10, msg[10:])), seal(1, cryptoFrame(10, msg[10:]))}, nil},
		{"conflicting retransmission", [][]byte{seal(0, cryptoFrame(0, msg[:50])), seal(1, cryptoFrame(20, append([]byte{'X'}, msg[21:]...)))}, ErrMalformed},
		{"stream frame", [][]byte{seal(0, []byte{0x08, 0x00, 0x01, 'x'}, cryptoFrame(0, msg))}, ErrMalformed},
		{"application close", [][]byte{seal(0, []byte{0x1d, 0x00, 0x00})}, ErrMalformed},
		{"crypto past the limit", [][]byte{seal(0, cryptoFrame(maxCryptoLen, []byte{1}))}, ErrMalformed},
		{"crypto length past packet", [][]byte{seal(0, []byte{0x06, 0x00, 0x40, 0xff, 1})}, ErrMalformed},
		{"not a clienthello", [][]byte{seal(0, cryptoFrame(0, []byte{2, 0, 0, 1, 0}))}, ErrMalformed},
		{"first packet undecryptable", [][]byte{func() []byte { p := seal(0, cryptoFrame(0, msg)); p[len(p)-1] ^= 1; return p }()}, ErrMalformed},
		{"waiting for the rest", [][]byte{seal(0, cryptoFrame(0, a))}, ErrIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f QUICFlow
			var h Hello
			var err error
			for i, d := range tt.dgram {
				h, err = f.Add(d)
				if i < len(tt.dgram)-1 && !errors.Is(err, ErrIncomplete) {
					t.Fatalf("datagram %d: got %v, want ErrIncomplete", i, err)
				}
			}
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			if err == nil && (h.ServerName != "frames.example" || !slices.Equal(h.ALPN, []string{"h3"})) {
				t.Errorf("got %+v", h)
			}
		})
	}
}

func TestQUICFlowTooFragmented(t *testing.T) {
	var frames [][]byte
	for i := range maxCryptoRanges + 1 {
		frames = append(frames, cryptoFrame(10+2*i, []byte{0}))
	}
	var f QUICFlow
	_, err := f.Add(sealInitial(t, quicV1, []byte{1}, 0, bytes.Join(frames, nil)))
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want ErrMalformed", err)
	}
}

func TestQUICFlowNotQUIC(t *testing.T) {
	v1 := readHex(t, "rfc9001-client-initial.hex")
	handshake := bytes.Clone(v1)
	handshake[0] = 0xe0
	draft := bytes.Clone(v1)
	copy(draft[1:5], []byte{0xff, 0, 0, 29})
	longCID := bytes.Clone(v1)
	longCID[5] = 21
	tests := map[string][]byte{
		"empty":               nil,
		"short header":        {0x40, 1, 2, 3, 4, 5, 6, 7},
		"version negotiation": {0x80, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0},
		"draft-29":            draft,
		"v1 handshake":        handshake,
		"dcid over 20":        longCID,
		"tls":                 goHello(t, "x.example"),
		"dns":                 {0x12, 0x34, 0x01, 0x00, 0x00, 0x01},
	}
	for name, d := range tests {
		var f QUICFlow
		if _, err := f.Add(d); !errors.Is(err, ErrNotQUIC) {
			t.Errorf("%s: got %v, want ErrNotQUIC", name, err)
		}
		if IsQUICInitial(d) {
			t.Errorf("%s: IsQUICInitial = true", name)
		}
	}
}

func TestDecodePacketNumber(t *testing.T) {
	// RFC 9000 §A.3 example, plus the start of a connection.
	if got := decodePacketNumber(0xa82f30ea, 0x9b32, 16); got != 0xa82f9b32 {
		t.Errorf("RFC example: got %#x, want 0xa82f9b32", got)
	}
	if got := decodePacketNumber(-1, 0, 8); got != 0 {
		t.Errorf("first packet: got %d, want 0", got)
	}
	if got := decodePacketNumber(-1, 2, 32); got != 2 {
		t.Errorf("RFC Initial pn 2: got %d, want 2", got)
	}
}
