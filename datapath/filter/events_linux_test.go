package filter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// pendingDrops returns the drop events waiting in the ring buffer. Test runs are
// synchronous: the events of a packet are in the ring when prog.Run returns.
func pendingDrops(t testing.TB, f *Filter) []DropEvent {
	t.Helper()
	r, err := ringbuf.NewReader(f.objs.DropEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetDeadline(time.Now())
	var out []DropEvent
	for {
		rec, err := r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("reading ring buffer: %v", err)
		}
		ev, err := decodeDrop(rec.RawSample)
		if err != nil {
			t.Fatalf("decoding drop event: %v", err)
		}
		out = append(out, ev)
	}
}

// sameEvent compares everything but the time.
func sameEvent(a, b DropEvent) bool {
	return a.Reason == b.Reason && a.Segment == b.Segment && a.Profile == b.Profile &&
		a.Proto == b.Proto && a.Client == b.Client && a.Server == b.Server && a.MAC.String() == b.MAC.String()
}

func fmtEvent(e DropEvent) string {
	return fmt.Sprintf("{%v seg %d profile %d proto %d %v → %v mac %v}", e.Reason, e.Segment, e.Profile, e.Proto, e.Client, e.Server, e.MAC)
}

func fmtEvents(es []DropEvent) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmtEvent(e))
	}
	return out
}

// TestDropEvents runs packets through the programs in order, each step on top of the
// earlier ones' rate-limit state, and checks the events each one leaves in the ring.
func TestDropEvents(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)
	ap := netip.MustParseAddrPort
	vpn := DropEvent{Reason: ReasonVPN, Segment: 2, Profile: pupilProfile, Proto: 17,
		Client: ap("10.2.0.5:5000"), Server: ap("203.0.113.9:51820"), MAC: clientMAC}

	tests := []struct {
		name    string
		ifindex uint32
		egress  bool
		frame   frame
		action  uint32
		want    *DropEvent // nil: no event
	}{
		{"vpn", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actShot, &vpn},
		{"vpn again", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actShot, nil},
		{"vpn retried from a new port", pupilIf, false, frame{src: "10.2.0.5:5001", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actShot, nil},
		{"vpn to another port", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:1194", proto: udp, payload: hello}, actShot,
			&DropEvent{Reason: ReasonVPN, Segment: 2, Profile: pupilProfile, Proto: 17, Client: ap("10.2.0.5:5000"), Server: ap("203.0.113.9:1194"), MAC: clientMAC}},
		{"vpn over tcp to that port", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "203.0.113.9:1194", proto: tcp, syn: true}, actShot,
			&DropEvent{Reason: ReasonVPN, Segment: 2, Profile: pupilProfile, Proto: 6, Client: ap("10.2.0.5:5000"), Server: ap("203.0.113.9:1194"), MAC: clientMAC}},
		{"vpn from another client", pupilIf, false, frame{src: "10.2.0.6:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actShot,
			&DropEvent{Reason: ReasonVPN, Segment: 2, Profile: pupilProfile, Proto: 17, Client: ap("10.2.0.6:5000"), Server: ap("203.0.113.9:51820"), MAC: clientMAC}},
		{"doq v6", pupilIf, false, frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello}, actShot,
			&DropEvent{Reason: ReasonDoT, Segment: 2, Profile: pupilProfile, Proto: 17, Client: ap("[fd00:20::5]:5000"), Server: ap("[2606:4700::1111]:853"), MAC: clientMAC}},
		{"doh resolver", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "9.9.9.9:443", proto: tcp, syn: true}, actShot,
			&DropEvent{Reason: ReasonAddress, Segment: 2, Profile: pupilProfile, Proto: 6, Client: ap("10.2.0.5:5000"), Server: ap("9.9.9.9:443"), MAC: clientMAC}},
		{"doh resolver again", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "9.9.9.9:443", proto: tcp, payload: hello}, actShot, nil},
		{"quic", pupilIf, false, frame{src: "10.2.0.5:5000", dst: "93.184.216.34:443", proto: udp, payload: hello}, actShot,
			&DropEvent{Reason: ReasonQUIC, Segment: 2, Profile: pupilProfile, Proto: 17, Client: ap("10.2.0.5:5000"), Server: ap("93.184.216.34:443"), MAC: clientMAC}},
		{"device profile on staff segment", staffIf, false, frame{mac: pupilMAC, src: "10.1.0.9:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}, actShot,
			&DropEvent{Reason: ReasonDoT, Segment: 1, Profile: pupilProfile, Proto: 6, Client: ap("10.1.0.9:5000"), Server: ap("1.1.1.1:853"), MAC: pupilMAC}},
		{"guest to internal", guestIf, false, frame{src: "192.168.30.5:5000", dst: "192.168.10.2:445", proto: tcp, syn: true}, actShot,
			&DropEvent{Reason: ReasonGuest, Segment: 3, Profile: guestProfile, Proto: 6, Client: ap("192.168.30.5:5000"), Server: ap("192.168.10.2:445"), MAC: clientMAC}},
		{"guest ping to internal v6", guestIf, false, frame{src: "[fe80::5]:0", dst: "[fe80::1]:0", proto: icmpv6, icmpType: 128}, actShot,
			&DropEvent{Reason: ReasonGuest, Segment: 3, Profile: guestProfile, Proto: 58, Client: ap("[fe80::5]:0"), Server: ap("[fe80::1]:0"), MAC: clientMAC}},
		{"guest ping again", guestIf, false, frame{src: "[fe80::5]:0", dst: "[fe80::1]:0", proto: icmpv6, icmpType: 128}, actShot, nil},

		// Not reported: passed packets, and drops of flows the slow path blocked.
		{"staff vpn passes", staffIf, false, frame{src: "10.1.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}, actOK, nil},
		{"allowed flow", staffIf, false, frame{src: "10.1.0.5:40000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, nil},
		{"handed off", staffIf, false, frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, nil},
		{"guest dns", guestIf, false, frame{src: "192.168.30.5:5000", dst: "192.168.30.1:53", proto: udp, payload: []byte("q")}, actOK, nil},
		{"blocked udp flow", staffIf, false, frame{src: "10.1.0.5:40002", dst: "93.184.216.34:443", proto: udp, payload: hello}, actShot, nil},
		{"blocked tcp flow", staffIf, false, frame{src: "10.1.0.5:40001", dst: "93.184.216.34:443", proto: tcp, payload: hello}, actOK, nil},
		{"blocked flow reply", egressIf, true, frame{src: "93.184.216.34:443", dst: "10.1.0.5:40001", proto: tcp, payload: hello}, actShot, nil},
		{"dropped http flow", staffIf, false, frame{src: "10.1.0.5:40004", dst: "93.184.216.34:80", proto: tcp, fin: true}, actShot, nil},
		{"dropped flow reply", egressIf, true, frame{src: "93.184.216.34:80", dst: "10.1.0.5:40004", proto: tcp, rst: true}, actShot, nil},
	}
	if got := pendingDrops(t, f); len(got) != 0 {
		t.Fatalf("events before any packet: %v", fmtEvents(got))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			action, _ := run(t, progFor(f, tt.egress), tt.frame.bytes(t), tt.ifindex, tt.egress)
			after := time.Now()
			if action != tt.action {
				t.Errorf("action %d, want %d", action, tt.action)
			}
			got := pendingDrops(t, f)
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("events %v, want none", fmtEvents(got))
				}
				return
			}
			if len(got) != 1 || !sameEvent(got[0], *tt.want) {
				t.Fatalf("events %v, want one %s", fmtEvents(got), fmtEvent(*tt.want))
			}
			// The kernel's and the process's clocks are read at slightly different times.
			if tm := got[0].Time; tm.Before(before.Add(-time.Second)) || tm.After(after.Add(time.Second)) {
				t.Errorf("event time %v, want between %v and %v", tm, before, after)
			}
		})
	}

	t.Run("window over", func(t *testing.T) {
		pkt := frame{src: "10.2.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}.bytes(t)
		// Age the flow's last report past the window.
		k, err := flowKey(FlowKey{ap("10.2.0.5:0"), ap("203.0.113.9:51820"), 17})
		must(t, err)
		var last uint64
		must(t, f.objs.DropSeen.Lookup(k, &last))
		must(t, f.objs.DropSeen.Put(k, last-uint64(DropEventInterval)-1))
		run(t, f.objs.SegmentIngress, pkt, pupilIf, false)
		if got := pendingDrops(t, f); len(got) != 1 || !sameEvent(got[0], vpn) {
			t.Errorf("events %v after the window, want one %s", fmtEvents(got), fmtEvent(vpn))
		}
		run(t, f.objs.SegmentIngress, pkt, pupilIf, false)
		if got := pendingDrops(t, f); len(got) != 0 {
			t.Errorf("events %v right after the new report, want none", fmtEvents(got))
		}
	})

	t.Run("nothing lost", func(t *testing.T) {
		for id, c := range statsOf(t, f) {
			if c.EventsLost != 0 {
				t.Errorf("segment %d lost %d events", id, c.EventsLost)
			}
		}
	})
}

// TestDropEventsLost fills the ring buffer with nobody reading: the events it has no room
// for are counted, and none is both delivered and counted.
func TestDropEventsLost(t *testing.T) {
	f := newTestFilter(t)
	rules(t, f)
	const flows = 5000 // more than the ring's 4096 slots; fewer than drop_seen's 8192
	for port := 1; port <= flows; port++ {
		pkt := frame{src: "10.1.0.5:5000", dst: fmt.Sprintf("185.220.101.7:%d", port), proto: tcp, syn: true}.bytes(t)
		if action, _ := run(t, f.objs.SegmentIngress, pkt, staffIf, false); action != actShot {
			t.Fatalf("port %d: action %d, want drop", port, action)
		}
	}
	got := pendingDrops(t, f)
	lost := statsOf(t, f)[1].EventsLost
	if lost == 0 || uint64(len(got))+lost != flows {
		t.Errorf("%d events delivered and %d lost, want some lost and %d in all", len(got), lost, flows)
	}
	for i, e := range got {
		if want := uint16(i + 1); e.Server.Port() != want || e.Reason != ReasonAddress {
			t.Fatalf("event %d: %s, want the address drop to port %d", i, fmtEvent(e), want)
		}
	}
	// With room again, new flows are reported.
	run(t, f.objs.SegmentIngress, frame{src: "10.1.0.6:5000", dst: "185.220.101.7:1", proto: tcp, syn: true}.bytes(t), staffIf, false)
	if got := pendingDrops(t, f); len(got) != 1 {
		t.Errorf("%d events after draining, want 1", len(got))
	}
}

// TestReadDrops checks the reading loop: events arrive through fn, a second reader is
// refused, and cancelling the context or closing the filter stops it with nil.
func TestReadDrops(t *testing.T) {
	needRoot(t)
	f, err := New(Config{PinPath: testPinPath()})
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			f.Remove()
		}
	})
	rules(t, f)

	events := make(chan DropEvent, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.ReadDrops(ctx, func(e DropEvent) { events <- e }) }()

	vpn := frame{src: "10.2.0.5:5000", dst: "203.0.113.9:51820", proto: udp, payload: hello}.bytes(t)
	run(t, f.objs.SegmentIngress, vpn, pupilIf, false)
	select {
	case e := <-events:
		if e.Reason != ReasonVPN || e.Server != netip.MustParseAddrPort("203.0.113.9:51820") {
			t.Errorf("event %s, want the vpn drop", fmtEvent(e))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	if err := f.ReadDrops(context.Background(), func(DropEvent) {}); !errors.Is(err, ErrBusy) {
		t.Errorf("second ReadDrops: %v, want ErrBusy", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ReadDrops after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadDrops still running 5s after cancel")
	}

	// Events from while nobody read are delivered to the next reader.
	run(t, f.objs.SegmentIngress, frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}.bytes(t), pupilIf, false)
	go func() { done <- f.ReadDrops(context.Background(), func(e DropEvent) { events <- e }) }()
	select {
	case e := <-events:
		if e.Reason != ReasonDoT {
			t.Errorf("event %s, want the dot drop made while nobody read", fmtEvent(e))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}

	removed = true
	if err := f.Remove(); err != nil {
		t.Errorf("Remove: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ReadDrops after Remove: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadDrops still running 5s after Remove")
	}
	if err := f.ReadDrops(context.Background(), func(DropEvent) {}); err != nil {
		t.Errorf("ReadDrops on a removed filter: %v, want nil", err)
	}
}

func TestDecodeDrop(t *testing.T) {
	if dropEventSize != 56 {
		t.Fatalf("struct drop_event is %d bytes in Go, want 56", dropEventSize)
	}
	if _, err := decodeDrop(make([]byte, 10)); err == nil {
		t.Error("short record decoded")
	}
	if DropEventInterval != time.Duration(schoolgateLimitsDROP_EVENT_INTERVAL_S)*time.Second {
		t.Errorf("DropEventInterval %v, bpf/schoolgate.h says %ds", DropEventInterval, schoolgateLimitsDROP_EVENT_INTERVAL_S)
	}
	var ts unix.Timespec
	must(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	if d := time.Since(monotonicToTime(uint64(ts.Nano() - int64(time.Hour)))); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("an hour-old monotonic time is %v ago", d)
	}
}
