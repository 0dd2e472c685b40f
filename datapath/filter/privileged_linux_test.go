package filter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Tests that switch network namespaces keep the main goroutine on its thread (DESIGN §5).
func init() { runtime.LockOSThread() }

// topology is an appliance namespace and a client namespace joined by a veth pair; the
// appliance end is the segment interface.
type topology struct {
	appliance, client netns.NsHandle
	segIf             string
}

const (
	applianceAddr = "10.99.0.1"
	clientAddr    = "10.99.0.2"
)

// inTopology runs fn on a goroutine whose thread sits in the appliance namespace and is
// never unlocked, so Go retires it with the namespaces when fn returns. fn reports
// failures with t.Errorf and returns early.
func inTopology(t *testing.T, fn func(tp *topology)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and attaches eBPF programs")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tp, err := newTopology()
		if err != nil {
			t.Errorf("building topology: %v", err)
			return
		}
		defer tp.appliance.Close()
		defer tp.client.Close()
		fn(tp)
	}()
	<-done
}

func newTopology() (*topology, error) {
	client, err := netns.New() // the thread is now in the client namespace
	if err != nil {
		return nil, err
	}
	appliance, err := netns.New() // and now in the appliance namespace, where it stays
	if err != nil {
		client.Close()
		return nil, err
	}
	tp := &topology{appliance: appliance, client: client,
		segIf: fmt.Sprintf("sg%d-%d", os.Getpid()%100000, pinCounter.Add(1))}
	ha, err := netlink.NewHandleAt(appliance)
	if err != nil {
		return nil, err
	}
	defer ha.Close()
	hc, err := netlink.NewHandleAt(client)
	if err != nil {
		return nil, err
	}
	defer hc.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tp.segIf, Namespace: netlink.NsFd(appliance)},
		PeerName: "client0", PeerNamespace: netlink.NsFd(client)}
	if err := ha.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("adding veth: %w", err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{ha, tp.segIf, applianceAddr}, {hc, "client0", clientAddr}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			return nil, err
		}
		if err := side.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(side.addr), Mask: net.CIDRMask(24, 32)}}); err != nil {
			return nil, err
		}
		if err := side.h.LinkSetUp(l); err != nil {
			return nil, err
		}
	}
	return tp, nil
}

// reaches sends one UDP datagram from the client namespace to the appliance's port and
// reports whether it arrived.
func (tp *topology) reaches(t *testing.T, port int) bool {
	t.Helper()
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(applianceAddr), Port: port})
	if err != nil {
		t.Errorf("listening: %v", err)
		return false
	}
	defer ln.Close()
	// Sockets keep the namespace they were made in.
	if err := netns.Set(tp.client); err != nil {
		t.Errorf("entering client namespace: %v", err)
		return false
	}
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(applianceAddr), Port: port})
	if err := errors.Join(err, netns.Set(tp.appliance)); err != nil {
		t.Errorf("dialing from client namespace: %v", err)
		return false
	}
	defer conn.Close()
	buf := make([]byte, 64)
	// The first datagram may wait for ARP; try a few.
	for i := 0; i < 3; i++ {
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Errorf("sending: %v", err)
			return false
		}
		ln.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := ln.ReadFromUDP(buf); err == nil {
			return true
		}
	}
	return false
}

func tcxPrograms(t *testing.T, ifname string, attach ebpf.AttachType) int {
	t.Helper()
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Errorf("finding %s: %v", ifname, err)
		return -1
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: iface.Index, Attach: attach})
	if err != nil {
		t.Errorf("querying tcx programs: %v", err)
		return -1
	}
	return len(res.Programs)
}

func tcFilters(t *testing.T, ifname string) int {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Errorf("finding %s: %v", ifname, err)
		return -1
	}
	n := 0
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := netlink.FilterList(l, parent)
		if err != nil {
			continue // no clsact
		}
		n += len(filters)
	}
	return n
}

var vpnProfile = map[uint16]Profile{1: {VPNPorts: []Port{{Proto: 17, Num: 51820}}}}

// TestPrivilegedRestart attaches to a real interface with TCX, checks that traffic is
// filtered and counted, that the filtering and the flow verdicts outlive the Filter
// (daemon restart), that a new Filter takes the links over, and that Remove undoes it all.
func TestPrivilegedRestart(t *testing.T) {
	testRestart(t, false)
}

// TestPrivilegedNetlinkFallback does the same through clsact and a bpf filter, the path
// taken on kernels without TCX.
func TestPrivilegedNetlinkFallback(t *testing.T) {
	testRestart(t, true)
}

func testRestart(t *testing.T, noTCX bool) {
	inTopology(t, func(tp *topology) {
		pin := testPinPath()
		defer os.RemoveAll(pin)
		attached := func() int {
			if noTCX {
				return tcFilters(t, tp.segIf)
			}
			return tcxPrograms(t, tp.segIf, ebpf.AttachTCXIngress) + tcxPrograms(t, tp.segIf, ebpf.AttachTCXEgress)
		}
		open := func() *Filter {
			f, err := New(Config{PinPath: pin})
			if err != nil {
				t.Errorf("New: %v", err)
				return nil
			}
			f.noTCX = noTCX
			if err := f.AttachSegment(tp.segIf, Segment{ID: 7, Profile: 1}); err != nil {
				t.Errorf("AttachSegment: %v", err)
			}
			return f
		}

		f := open()
		if f == nil {
			return
		}
		if err := f.SetProfiles(vpnProfile); err != nil {
			t.Errorf("SetProfiles: %v", err)
		}
		if n := attached(); n != 2 {
			t.Errorf("%d programs attached, want 2", n)
		}
		if !tp.reaches(t, 5000) {
			t.Errorf("udp 5000 dropped, want it to pass")
		}
		if tp.reaches(t, 51820) {
			t.Errorf("udp 51820 (vpn) passed, want it dropped")
		}
		stats, err := f.Stats()
		if err != nil {
			t.Errorf("Stats: %v", err)
		} else if c := stats[7]; c.Drops[ReasonVPN] < 1 || c.Packets < 2 {
			t.Errorf("segment counters %+v, want vpn drops and packets counted", c)
		}
		k := FlowKey{netip.MustParseAddrPort(clientAddr + ":40000"), netip.MustParseAddrPort("93.184.216.34:443"), 6}
		if err := f.SetVerdict(k, VerdictDrop, 1); err != nil {
			t.Errorf("SetVerdict: %v", err)
		}

		// The daemon goes away: the programs keep filtering.
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := attached(); n != 2 {
			t.Errorf("%d programs attached with no Filter open, want 2", n)
		}
		if tp.reaches(t, 51820) {
			t.Errorf("udp 51820 passed with no Filter open, want it dropped")
		}

		// A new daemon takes over the pinned maps and links.
		f = open()
		if f == nil {
			return
		}
		if v, found, err := f.Verdict(k); err != nil || !found || v != VerdictDrop {
			t.Errorf("flow verdict after restart: %v found %v err %v, want the drop kept", v, found, err)
		}
		if n := attached(); n != 2 {
			t.Errorf("%d programs attached after takeover, want 2 (updated, not added)", n)
		}
		if tp.reaches(t, 51820) {
			t.Errorf("udp 51820 passed after takeover, want it dropped")
		}
		if stats, err := f.Stats(); err != nil || stats[7].Drops[ReasonVPN] < 2 {
			t.Errorf("counters after restart %+v (err %v), want the earlier drops kept", stats[7], err)
		}

		if err := f.Remove(); err != nil {
			t.Errorf("Remove: %v", err)
		}
		if n := attached(); n != 0 {
			t.Errorf("%d programs attached after Remove, want 0", n)
		}
		if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin path after Remove: %v, want it gone", err)
		}
		if !tp.reaches(t, 51820) {
			t.Errorf("udp 51820 dropped after Remove, want it to pass")
		}
	})
}

// TestPrivilegedIncompatiblePin checks that a pinned map left by an older build with
// another layout is replaced instead of failing the load.
func TestPrivilegedIncompatiblePin(t *testing.T) {
	needRoot(t)
	pin := testPinPath()
	f, err := New(Config{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Remove() })
	f.Close()
	// Swap the pinned flows map for one with a different value size.
	path := pin + "/maps/flows"
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 40, ValueSize: 8, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(path); err != nil {
		t.Fatal(err)
	}
	f, err = New(Config{PinPath: pin})
	if err != nil {
		t.Fatalf("New with an incompatible pinned map: %v", err)
	}
	k := FlowKey{netip.MustParseAddrPort("10.0.0.1:1000"), netip.MustParseAddrPort("10.0.0.2:443"), 6}
	if err := f.SetVerdict(k, VerdictAllow, 0); err != nil {
		t.Errorf("SetVerdict on the replaced map: %v", err)
	}
}

// TestPrivilegedDropEvents sends a VPN datagram through a real interface and reads the
// drop event with the client's MAC, then checks that a drop made while no daemon runs
// waits in the pinned ring buffer for the next one.
func TestPrivilegedDropEvents(t *testing.T) {
	inTopology(t, func(tp *topology) {
		pin := testPinPath()
		defer os.RemoveAll(pin)
		hc, err := netlink.NewHandleAt(tp.client)
		if err != nil {
			t.Errorf("netlink handle: %v", err)
			return
		}
		defer hc.Close()
		cl, err := hc.LinkByName("client0")
		if err != nil {
			t.Errorf("finding client0: %v", err)
			return
		}
		clientMAC := cl.Attrs().HardwareAddr

		events := make(chan DropEvent, 64)
		done := make(chan error, 1)
		open := func() *Filter {
			f, err := New(Config{PinPath: pin})
			if err != nil {
				t.Errorf("New: %v", err)
				return nil
			}
			if err := f.AttachSegment(tp.segIf, Segment{ID: 7, Profile: 1}); err != nil {
				t.Errorf("AttachSegment: %v", err)
			}
			if err := f.SetProfiles(map[uint16]Profile{1: {VPNPorts: []Port{{17, 51820}, {17, 1194}}}}); err != nil {
				t.Errorf("SetProfiles: %v", err)
			}
			go func() { done <- f.ReadDrops(context.Background(), func(e DropEvent) { events <- e }) }()
			return f
		}
		expect := func(port uint16) {
			t.Helper()
			select {
			case e := <-events:
				if e.Reason != ReasonVPN || e.Segment != 7 || e.Profile != 1 || e.Proto != 17 ||
					e.Client.Addr() != netip.MustParseAddr(clientAddr) ||
					e.Server != netip.AddrPortFrom(netip.MustParseAddr(applianceAddr), port) ||
					e.MAC.String() != clientMAC.String() {
					t.Errorf("event %s, want vpn from %s (%s) to port %d", fmtEvent(e), clientAddr, clientMAC, port)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("no drop event for port %d within 5s", port)
			}
		}
		stopped := func() {
			t.Helper()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("ReadDrops: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("ReadDrops still running 5s after Close")
			}
		}

		f := open()
		if f == nil {
			return
		}
		if tp.reaches(t, 51820) {
			t.Errorf("udp 51820 (vpn) passed, want it dropped")
		}
		expect(51820) // reaches sends up to three datagrams: one event
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		stopped()
		select {
		case e := <-events:
			t.Errorf("second event %s for one flow", fmtEvent(e))
		default:
		}

		// No daemon: the programs still drop and report into the pinned ring.
		if tp.reaches(t, 1194) {
			t.Errorf("udp 1194 (vpn) passed with no Filter open, want it dropped")
		}
		f = open()
		if f == nil {
			return
		}
		expect(1194)
		if stats, err := f.Stats(); err != nil || stats[7].EventsLost != 0 {
			t.Errorf("stats %+v (err %v), want no events lost", stats[7], err)
		}
		if err := f.Remove(); err != nil {
			t.Errorf("Remove: %v", err)
		}
		stopped()
	})
}

// TestPrivilegedOldPins starts from the pins of an older build: a counters map of the old
// size, no drop event maps, and a map this build no longer has. The load replaces,
// creates and removes them.
func TestPrivilegedOldPins(t *testing.T) {
	needRoot(t)
	pin := testPinPath()
	f, err := New(Config{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Remove() })
	f.Close()
	maps := pin + "/maps/"
	for _, name := range []string{"counters", "drop_events", "drop_seen"} {
		if err := os.Remove(maps + name); err != nil {
			t.Fatal(err)
		}
	}
	for name, spec := range map[string]*ebpf.MapSpec{
		"counters": {Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 96, MaxEntries: 256},
		"obsolete": {Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 16},
	} {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Pin(maps + name); err != nil {
			t.Fatal(err)
		}
	}
	f, err = New(Config{PinPath: pin})
	if err != nil {
		t.Fatalf("New over an older build's pins: %v", err)
	}
	if _, err := os.Stat(maps + "obsolete"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("obsolete pinned map: %v, want it removed", err)
	}
	for _, name := range []string{"counters", "drop_events", "drop_seen"} {
		if _, err := os.Stat(maps + name); err != nil {
			t.Errorf("pinned map %s: %v", name, err)
		}
	}
	if _, err := f.Stats(); err != nil {
		t.Errorf("Stats on the replaced counters: %v", err)
	}
	rules(t, f)
	run(t, f.objs.SegmentIngress, frame{src: "10.2.0.5:5000", dst: "1.1.1.1:853", proto: tcp, syn: true}.bytes(t), pupilIf, false)
	if got := pendingDrops(t, f); len(got) != 1 {
		t.Errorf("%d drop events, want 1", len(got))
	}
}
