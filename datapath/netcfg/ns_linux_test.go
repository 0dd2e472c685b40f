package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tests switch namespaces on locked threads; keep the main goroutine on
// the initial thread so it never runs in a test namespace.
func init() { runtime.LockOSThread() }

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and nftables tables")
	}
}

// inNS runs fn on a fresh OS thread inside ns. The thread stays locked and is
// thrown away afterwards, so no other goroutine ever runs in ns by accident.
// Sockets fn opens stay in ns and may be used from any goroutine.
func inNS(ns netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			done <- fmt.Errorf("entering namespace: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// newNS creates an anonymous network namespace with lo up. Anonymous
// namespaces need no unique names and leave nothing behind in /run/netns.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	nsc := make(chan netns.NsHandle, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the new namespace
		ns, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		nsc <- ns
	}()
	var ns netns.NsHandle
	select {
	case err := <-errc:
		t.Fatalf("creating namespace: %v", err)
	case ns = <-nsc:
	}
	t.Cleanup(func() { ns.Close() })
	h := nlHandle(t, ns)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("setting lo up: %v", err)
	}
	return ns
}

func nlHandle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// veth joins nameA in nsA to nameB in nsB, both up.
func veth(t *testing.T, nsA netns.NsHandle, nameA string, nsB netns.NsHandle, nameB string) {
	t.Helper()
	ha, hb := nlHandle(t, nsA), nlHandle(t, nsB)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB, PeerNamespace: netlink.NsFd(nsB)}
	if err := ha.LinkAdd(v); err != nil {
		t.Fatalf("adding veth %s/%s: %v", nameA, nameB, err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		name string
	}{{ha, nameA}, {hb, nameB}} {
		l, err := x.h.LinkByName(x.name)
		if err == nil {
			err = x.h.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("setting %s up: %v", x.name, err)
		}
	}
}

// addAddrs adds addresses (IPv6 without DAD) to ifname in ns.
func addAddrs(t *testing.T, ns netns.NsHandle, ifname string, prefixes ...string) {
	t.Helper()
	h := nlHandle(t, ns)
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("looking up %s: %v", ifname, err)
	}
	for _, p := range prefixes {
		if err := h.AddrAdd(l, toAddr(netip.MustParsePrefix(p))); err != nil {
			t.Fatalf("adding %s to %s: %v", p, ifname, err)
		}
	}
}

// defaultRoutes points ns's default routes at the given gateways.
func defaultRoutes(t *testing.T, ns netns.NsHandle, gateways ...string) {
	t.Helper()
	h := nlHandle(t, ns)
	for _, gw := range gateways {
		if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)}); err != nil {
			t.Fatalf("adding default route via %s: %v", gw, err)
		}
	}
}

// listenTCP opens a listener inside ns that answers each connection with
// reply(conn) and closes it.
func listenTCP(t *testing.T, ns netns.NsHandle, addr string, reply func(c net.Conn)) {
	t.Helper()
	var ln net.Listener
	err := inNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				reply(c)
			}()
		}
	}()
}

// echoUDP answers each datagram on addr in ns with "dns:" and the datagram.
func echoUDP(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	var pc net.PacketConn
	err := inNS(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening on udp %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("dns:"), buf[:n]...), from)
		}
	}()
}

// dial connects from inside ns.
func dial(ns netns.NsHandle, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// exchange dials addr from ns, sends msg and returns the whole answer.
func exchange(ns netns.NsHandle, network, addr, msg string) (string, error) {
	c, err := dial(ns, network, addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if msg != "" {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 1500)
	var got []byte
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if network == "udp" || err != nil {
			if len(got) > 0 {
				return string(got), nil
			}
			return "", err
		}
	}
}

// connRefused reports whether err is a TCP reset, as opposed to a timeout.
func connRefused(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ECONNRESET)
}
