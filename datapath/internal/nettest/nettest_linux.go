package nettest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsCounter makes namespace names unique within the process; the pid makes them unique
// across the test binaries `go test ./...` runs in parallel.
var nsCounter atomic.Uint64

const netnsDir = "/run/netns"

// New builds a fresh topology for one test and removes it in t.Cleanup, also when the test
// fails or panics. It skips the test when not root or when namespaces cannot be created, and
// fails it when a later step goes wrong.
func New(t testing.TB, spec Spec) *Topology {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	spec, err := spec.validate()
	if err != nil {
		t.Fatalf("nettest spec: %v", err)
	}
	sweepStale()

	ctx, cancel := context.WithCancel(context.Background())
	topo := &Topology{Spec: spec, Clients: map[string]*NS{}, Segments: map[string]Segment{}}
	id := fmt.Sprintf("nt%d-%d", os.Getpid(), nsCounter.Add(1))
	var made []*NS
	t.Cleanup(func() {
		cancel()
		for _, ns := range made {
			if err := ns.remove(); err != nil {
				t.Errorf("removing namespace %s: %v", ns.Name, err)
			}
		}
	})
	newNS := func(role string) *NS {
		ns, err := createNS(id+"-"+role, ctx.Done())
		if err != nil {
			if len(made) == 0 {
				t.Skipf("cannot create network namespaces here: %v", err)
			}
			t.Fatal(err)
		}
		made = append(made, ns)
		return ns
	}
	topo.Inet = newNS("inet")
	topo.Appliance = newNS("app")
	for i, s := range spec.Segments {
		seg := segmentPlan(i, s)
		seg.Client = newNS("c-" + s.Name)
		topo.Clients[s.Name] = seg.Client
		topo.Segments[s.Name] = seg
	}
	if err := topo.build(); err != nil {
		t.Fatalf("building topology %s: %v", id, err)
	}
	return topo
}

// sweepStale removes namespaces left by test processes that died without cleaning up (a
// -timeout panic or SIGKILL skips t.Cleanup), so they do not pile up on a developer machine.
func sweepStale() {
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "nt")
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pidText); err == nil {
			continue // still running (or the pid was reused: leave it alone)
		}
		_ = netns.DeleteNamed(e.Name()) // another process may be sweeping the same one
	}
}

// createNS makes a named namespace and keeps a handle on it.
func createNS(name string, done <-chan struct{}) (*NS, error) {
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: NewNamed moves this thread into the new namespace, and a locked
		// thread dies with its goroutine instead of going back to the scheduler.
		runtime.LockOSThread()
		var err error
		h, err = netns.NewNamed(name)
		errc <- err
	}()
	if err := <-errc; err != nil {
		// NewNamed leaves its mount-point file behind when the mount fails.
		os.Remove(filepath.Join(netnsDir, name))
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return &NS{Name: name, fd: int(h), done: done}, nil
}

// remove closes the handle and deletes the name; the kernel frees the namespace, and the
// veths in it, once the last socket or process in it is gone.
func (n *NS) remove() error {
	unix.Close(n.fd)
	return netns.DeleteNamed(n.Name)
}

// Do runs fn on a goroutine whose OS thread is inside the namespace, and waits for it.
// Sockets fn creates stay in the namespace and can be used from any goroutine afterwards;
// goroutines fn starts do not inherit the namespace. A panic in fn is re-raised in the
// caller.
func (n *NS) Do(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread is in another namespace and must not run other
		// goroutines; it exits with this goroutine.
		runtime.LockOSThread()
		defer func() {
			if p := recover(); p != nil {
				done <- result{panicked: true, value: p}
			}
		}()
		if err := netns.Set(netns.NsHandle(n.fd)); err != nil {
			done <- result{err: fmt.Errorf("entering namespace %s: %w", n.Name, err)}
			return
		}
		done <- result{err: fn()}
	}()
	r := <-done
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

// Command returns a command that runs inside the namespace through `ip netns exec`, which
// also gives it a private mount namespace with the namespace's own /sys. The process is
// killed when ctx is done or when the topology is removed, whichever comes first.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return n.command(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// NetCommand is Command through `nsenter --net`: only the network namespace changes, so
// the process shares the host's mounts, such as the bpf filesystem at /sys/fs/bpf where a
// daemon pins state that must outlive it.
func (n *NS) NetCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return n.command(ctx, "nsenter", append([]string{"--net=" + filepath.Join(netnsDir, n.Name), "--", name}, args...)...)
}

func (n *NS) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		// Ties the command to the topology's lifetime; the goroutine ends with whichever
		// finishes first.
		select {
		case <-n.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return exec.CommandContext(ctx, name, args...)
}

// Listen creates a listening socket inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket creates a packet socket inside the namespace (also raw "ip4:icmp" sockets).
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext connects from inside the namespace. The host in addr must be an IP address
// (ErrNeedIP otherwise): Go resolves names on other threads, outside the namespace.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, ErrNeedIP)
	}
	var c net.Conn
	err = n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// build wires the namespaces together and configures addresses, routes and sysctls.
func (t *Topology) build() error {
	for _, ns := range t.allNS() {
		// DAD would keep IPv6 addresses (link-local ones too) tentative for a second or two.
		err := ns.setSysctls(map[string]string{
			"net/ipv6/conf/all/accept_dad":     "0",
			"net/ipv6/conf/default/accept_dad": "0",
		})
		if err != nil {
			return err
		}
	}
	// Only the appliance forwards: the baseline without schoolgate is a plain router.
	err := t.Appliance.setSysctls(map[string]string{
		"net/ipv4/ip_forward":          "1",
		"net/ipv6/conf/all/forwarding": "1",
	})
	if err != nil {
		return err
	}

	app, err := netlink.NewHandleAt(netns.NsHandle(t.Appliance.fd))
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", t.Appliance.Name, err)
	}
	defer app.Close()
	inet, err := netlink.NewHandleAt(netns.NsHandle(t.Inet.fd))
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", t.Inet.Name, err)
	}
	defer inet.Close()

	t.WAN = Link{
		Interface: "wan0", Addr4: wanApp4, Addr6: wanApp6, MAC: mac(0xff, 1),
		Peer: "isp0", PeerAddr4: wanInet4, PeerAddr6: wanInet6, PeerMAC: mac(0xff, 2),
	}
	if err := addVeth(app, 100, t.WAN.Interface, t.WAN.MAC, t.Inet, t.WAN.Peer, t.WAN.PeerMAC); err != nil {
		return err
	}
	if err := setUp(app, "lo"); err != nil {
		return err
	}
	if err := setUp(app, "wan0", wanApp4, wanApp6); err != nil {
		return err
	}
	if err := addDefaultRoutes(app, "wan0", wanInet4.Addr(), wanInet6.Addr()); err != nil {
		return err
	}

	if err := setUp(inet, "isp0", wanInet4, wanInet6); err != nil {
		return err
	}
	// The servers' addresses go on lo: this kernel has no dummy interfaces, and lo serves
	// the same purpose (local addresses that belong to no link).
	var serverAddrs []netip.Prefix
	for _, a := range t.inetAddrs() {
		serverAddrs = append(serverAddrs, netip.PrefixFrom(a, a.BitLen()))
	}
	if err := setUp(inet, "lo", serverAddrs...); err != nil {
		return err
	}

	for _, s := range t.Spec.Segments {
		seg := t.Segments[s.Name]
		if err := addVeth(app, 101+seg.Index, seg.Interface, seg.GatewayMAC, seg.Client, "eth0", seg.ClientMAC); err != nil {
			return err
		}
		if err := setUp(app, seg.Interface, seg.Gateway4, seg.Gateway6); err != nil {
			return err
		}
		if err := t.buildClient(seg); err != nil {
			return err
		}
		if t.Spec.RouteBack {
			for _, p := range []netip.Prefix{seg.Gateway4.Masked(), seg.Gateway6.Masked()} {
				gw := wanApp4.Addr()
				if p.Addr().Is6() {
					gw = wanApp6.Addr()
				}
				if err := addRoute(inet, "isp0", p, gw); err != nil {
					return err
				}
			}
		}
	}
	// A veth end gets its carrier a moment after both ends are up; packets sent before are
	// lost, and a lost neighbour solicitation costs a test a one-second retransmit.
	for _, ns := range t.allNS() {
		if err := ns.waitCarrier(); err != nil {
			return err
		}
	}
	return nil
}

// waitCarrier waits until every link of the namespace but lo is operationally up.
func (n *NS) waitCarrier() error {
	h, err := netlink.NewHandleAt(netns.NsHandle(n.fd))
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", n.Name, err)
	}
	defer h.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("listing links in %s: %w", n.Name, err)
		}
		var down []string
		for _, l := range links {
			if a := l.Attrs(); a.Name != "lo" && a.OperState != netlink.OperUp {
				down = append(down, a.Name)
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("links %v in %s have no carrier", down, n.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (t *Topology) buildClient(seg Segment) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(seg.Client.fd))
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", seg.Client.Name, err)
	}
	defer h.Close()
	if err := setUp(h, "lo"); err != nil {
		return err
	}
	c4 := netip.PrefixFrom(seg.Client4, seg.Gateway4.Bits())
	c6 := netip.PrefixFrom(seg.Client6, seg.Gateway6.Bits())
	if err := setUp(h, "eth0", c4, c6); err != nil {
		return err
	}
	return addDefaultRoutes(h, "eth0", seg.Gateway4.Addr(), seg.Gateway6.Addr())
}

func (t *Topology) allNS() []*NS {
	all := []*NS{t.Inet, t.Appliance}
	for _, s := range t.Spec.Segments {
		all = append(all, t.Clients[s.Name])
	}
	return all
}

// setSysctls writes /proc/sys/<key> = value from inside the namespace: the net sysctls a
// thread sees are those of its own namespace.
func (n *NS) setSysctls(kv map[string]string) error {
	return n.Do(func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("setting %s in %s: %w", k, n.Name, err)
			}
		}
		return nil
	})
}

// addVeth creates a veth pair whose first end is in h's namespace and whose peer is created
// straight in peerNS, so nothing ever appears in the root namespace.
//
// The first end gets an ifindex (100 and up) that the peer, numbered from 2 in its fresh
// namespace, never has: the kernel delays a veth's carrier change by up to a second when
// both ends' ifindex happen to be equal.
func addVeth(h *netlink.Handle, index int, name string, mac net.HardwareAddr, peerNS *NS, peer string, peerMAC net.HardwareAddr) error {
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Index: index, Name: name, HardwareAddr: mac},
		PeerName:         peer,
		PeerHardwareAddr: peerMAC,
		PeerNamespace:    netlink.NsFd(peerNS.fd),
	}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth %s to %s in %s: %w", name, peer, peerNS.Name, err)
	}
	return nil
}

// setUp adds the addresses to a link and brings it up.
func setUp(h *netlink.Handle, name string, addrs ...netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding link %s: %w", name, err)
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

func addDefaultRoutes(h *netlink.Handle, dev string, gw4, gw6 netip.Addr) error {
	if err := addRoute(h, dev, netip.MustParsePrefix("0.0.0.0/0"), gw4); err != nil {
		return err
	}
	return addRoute(h, dev, netip.MustParsePrefix("::/0"), gw6)
}

func addRoute(h *netlink.Handle, dev string, dst netip.Prefix, gw netip.Addr) error {
	l, err := h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("finding link %s: %w", dev, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(dst), Gw: net.IP(gw.AsSlice())}
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("adding route %s via %s: %w", dst, gw, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
