package nfq

import (
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// clientHello captures the first flight of Go's TLS client for name: with post-quantum
// key shares it is about 1.8 KB, so it needs two TCP segments.
func clientHello(t testing.TB, name string) []byte {
	t.Helper()
	c, s := net.Pipe()
	go func() {
		tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: name == ""}).Handshake()
	}()
	buf := make([]byte, 8192)
	n := 0
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	for n < 5 || n < 5+int(buf[3])<<8|int(buf[4]) {
		m, err := s.Read(buf[n:])
		if err != nil {
			t.Fatalf("capturing ClientHello: %v", err)
		}
		n += m
	}
	c.Close()
	s.Close()
	return buf[:n]
}

var testFlow = Flow{
	Client: netip.MustParseAddrPort("10.20.0.2:40000"),
	Server: netip.MustParseAddrPort("203.0.113.100:443"),
	Proto:  protoTCP,
}

func TestTrackerTLS(t *testing.T) {
	hello := clientHello(t, "blocked.example")
	if len(hello) <= 1460 {
		t.Fatalf("ClientHello is %d bytes; want a post-quantum one over one segment", len(hello))
	}
	seg1, seg2 := hello[:1448], hello[1448:]
	isn := uint32(0xfffffc00)
	next := isn + 1448 // wraps inside the hello
	now := time.Now()

	tests := []struct {
		name    string
		packets []packet
		wantAt  int // index of the packet that completes the flow
		ids     int
	}{
		{"in order", []packet{{seq: isn, payload: seg1}, {seq: next, payload: seg2}}, 1, 2},
		{"reordered", []packet{{seq: next, payload: seg2}, {seq: isn, payload: seg1}}, 1, 2},
		{"retransmitted first segment", []packet{{seq: isn, payload: seg1}, {seq: isn, payload: seg1}, {seq: next, payload: seg2}}, 2, 3},
		{"overlapping resend", []packet{{seq: isn, payload: hello[:1000]}, {seq: isn + 500, payload: hello[500:]}}, 1, 2},
		{"one segment", []packet{{seq: isn, payload: hello}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(time.Second, 10)
			for i, p := range tt.packets {
				p.flow = testFlow
				o := tr.add(uint64(i), p, "", now)
				if i < tt.wantAt {
					if o != nil {
						t.Fatalf("packet %d ended the flow early: %+v", i, o)
					}
					continue
				}
				if o == nil {
					t.Fatalf("packet %d: flow not decided", i)
				}
				if o.name != "blocked.example" || o.kind != kindTLS || len(o.ids) != tt.ids {
					t.Errorf("outcome %q kind %d ids %v, want blocked.example with %d ids", o.name, o.kind, o.ids, tt.ids)
				}
				if len(tr.flows) != 0 {
					t.Errorf("flow still held after its outcome")
				}
			}
		})
	}
}

func TestTrackerUnnamed(t *testing.T) {
	now := time.Now()
	noSNI := clientHello(t, "")
	tr := newTracker(time.Second, 2)

	if o := tr.add(1, packet{flow: testFlow, seq: 1, payload: noSNI}, "", now); o == nil || o.name != "" || o.why != whyNoName {
		t.Errorf("no-SNI hello: %+v", o)
	}

	// Not TLS on 443 (say, a VPN over TCP 443): held briefly in case an earlier segment
	// is missing, then judged unnamed.
	f := testFlow
	f.Client = netip.MustParseAddrPort("10.20.0.2:40001")
	junk := []byte("SSH-2.0-OpenSSH_9.6\r\n")
	if o := tr.add(2, packet{flow: f, seq: 1, payload: junk}, "", now); o != nil {
		t.Fatalf("first non-TLS segment decided at once: %+v", o)
	}
	if o := tr.add(3, packet{flow: f, seq: 100, payload: junk}, "", now); o == nil || o.why != whyNotTLS || len(o.ids) != 2 {
		t.Errorf("non-TLS flow: %+v", o)
	}

	// Half a hello, then silence: the sweep ends it.
	hello := clientHello(t, "example.com")
	f.Client = netip.MustParseAddrPort("10.20.0.2:40002")
	if o := tr.add(4, packet{flow: f, seq: 1, payload: hello[:1000]}, "", now); o != nil {
		t.Fatalf("half a hello decided: %+v", o)
	}
	if out := tr.expire(now.Add(500 * time.Millisecond)); len(out) != 0 {
		t.Errorf("expired before the timeout: %+v", out)
	}
	out := tr.expire(now.Add(time.Second))
	if len(out) != 1 || out[0].why != whyTimeout || out[0].ids[0] != 4 {
		t.Errorf("timeout: %+v", out)
	}

	// Full tracker: the next flow is decided by the failure mode at once.
	for i := range 2 {
		f.Client = netip.AddrPortFrom(f.Client.Addr(), uint16(50000+i))
		tr.add(uint64(10+i), packet{flow: f, seq: 1, payload: hello[:10]}, "", now)
	}
	f.Client = netip.MustParseAddrPort("10.20.0.2:40009")
	if o := tr.add(20, packet{flow: f, seq: 1, payload: hello[:10]}, "", now); o == nil || o.why != whyOverload {
		t.Errorf("over the limit: %+v", o)
	}
}

func TestTrackerHTTP(t *testing.T) {
	f := testFlow
	f.Server = netip.MustParseAddrPort("203.0.113.100:80")
	tr := newTracker(time.Second, 10)
	req := []byte("GET / HTTP/1.1\r\nHost: Blocked.Example:80\r\nUser-Agent: curl\r\n\r\n")
	if o := tr.add(1, packet{flow: f, seq: 7, payload: req[:20]}, "", time.Now()); o != nil {
		t.Fatalf("partial request decided: %+v", o)
	}
	o := tr.add(2, packet{flow: f, seq: 27, payload: req[20:]}, "", time.Now())
	if o == nil || o.name != "blocked.example" || o.kind != kindHTTP || o.kind.source() != "http" {
		t.Errorf("HTTP: %+v", o)
	}
}

// TestTrackerReuse: a decided flow's state and buffers are reused for the next flows, and
// neither its outcome nor a flow still held sees anything of another's.
func TestTrackerReuse(t *testing.T) {
	hello := clientHello(t, "one.example")
	other := clientHello(t, "two.example")
	now := time.Now()
	tr := newTracker(time.Second, 10)
	flow := func(port uint16) Flow {
		f := testFlow
		f.Client = netip.AddrPortFrom(f.Client.Addr(), port)
		return f
	}
	var outcomes []*outcome
	for round := range 3 {
		// Flow a is held across flow b's whole life.
		a, b := flow(uint16(1000+2*round)), flow(uint16(1001+2*round))
		id := uint64(100 * round)
		if o := tr.add(id, packet{flow: a, seq: 1, payload: hello[:1000]}, "", now); o != nil {
			t.Fatalf("round %d: flow a decided on its first segment", round)
		}
		if o := tr.add(id+1, packet{flow: b, seq: 1, payload: other[:1000]}, "", now); o != nil {
			t.Fatalf("round %d: flow b decided on its first segment", round)
		}
		ob := tr.add(id+2, packet{flow: b, seq: 1001, payload: other[1000:]}, "", now)
		oa := tr.add(id+3, packet{flow: a, seq: 1001, payload: hello[1000:]}, "", now)
		if ob == nil || oa == nil {
			t.Fatalf("round %d: outcomes %v, %v", round, oa, ob)
		}
		outcomes = append(outcomes, oa, ob)
	}
	for i, o := range outcomes {
		round := uint64(i / 2)
		want, ids := "one.example", []uint64{100 * round, 100*round + 3}
		if i%2 == 1 {
			want, ids = "two.example", []uint64{100*round + 1, 100*round + 2}
		}
		if o.name != want || !slices.Equal(o.ids, ids) {
			t.Errorf("outcome %d: %q ids %v, want %q ids %v", i, o.name, o.ids, want, ids)
		}
	}
	if len(tr.freeFlows) == 0 || len(tr.free) == 0 {
		t.Errorf("nothing kept for reuse: %d flows, %d buffers", len(tr.freeFlows), len(tr.free))
	}
}
