package neigh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func init() { runtime.LockOSThread() }

var nsCounter atomic.Int32

// inNS runs fn on a new OS thread that has entered ns and never leaves it (the thread dies
// with the goroutine).
func inNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// newNS makes an anonymous network namespace, closed at the end of the test.
func newNS(t *testing.T) netns.NsHandle {
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with its namespace
		var err error
		h, err = netns.New()
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestPrivilegedNeighbours: a client on a veth talks to the appliance; the appliance's
// table learns the client's IPv4 and IPv6 addresses with the client's MAC.
func TestPrivilegedNeighbours(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	app, client := newNS(t), newNS(t)
	clientMAC := net.HardwareAddr{0x02, 0x5c, 0, 0, 0, byte(os.Getpid())}
	name := fmt.Sprintf("seg%d", nsCounter.Add(1))

	h, err := netlink.NewHandleAt(app)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(client), PeerHardwareAddr: clientMAC}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("adding veth: %v", err)
	}
	ch, err := netlink.NewHandleAt(client)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	setup := func(h *netlink.Handle, ifname string, addrs ...string) {
		t.Helper()
		l, err := h.LinkByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			addr, _ := netlink.ParseAddr(a)
			addr.Flags = 0x02 // IFA_F_NODAD: usable at once
			if err := h.AddrAdd(l, addr); err != nil {
				t.Fatalf("adding %s: %v", a, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	// Loopback up first: Go probes IPv6 support once per process by binding ::1.
	setup(h, "lo")
	setup(ch, "lo")
	setup(h, name, "10.99.0.1/24", "fd00:99::1/64")
	setup(ch, "eth0", "10.99.0.2/24", "fd00:99::2/64")

	tbl := New(Config{Interfaces: []string{name}})
	if err := inNS(app, func() error { return tbl.Start(context.Background()) }); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer tbl.Close()

	// The client sends a datagram to the appliance, which has to resolve it to answer; the
	// appliance's reply is what makes the kernel's neighbour entry.
	var pc net.PacketConn
	if err := inNS(app, func() (err error) { pc, err = net.ListenPacket("udp", ":9999"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	for _, dst := range []string{"10.99.0.1:9999", "[fd00:99::1]:9999"} {
		err := inNS(client, func() error {
			c, err := net.Dial("udp", dst)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			for range 3 {
				c.Write([]byte("hi"))
				if _, err = c.Read(make([]byte, 8)); err == nil {
					return nil
				}
			}
			return err
		})
		if err != nil {
			t.Fatalf("client to %s: %v", dst, err)
		}
	}

	want := clientMAC.String()
	for _, a := range []string{"10.99.0.2", "fd00:99::2"} {
		addr := netip.MustParseAddr(a)
		deadline := time.Now().Add(3 * time.Second)
		for {
			mac, ok := tbl.MAC(addr)
			if ok && mac == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("MAC(%s) = %q, %v; want %s (entries %+v)", a, mac, ok, want, tbl.Entries())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, e := range tbl.Entries() {
		if e.Interface != name {
			t.Errorf("entry %+v: interface %q, want %q", e, e.Interface, name)
		}
	}
}
