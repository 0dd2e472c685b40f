package netcfg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	testDNSPort   = 5353
	testAdminPort = 8080
	testLANPort   = 8081 // the block page
	testQueueNum  = 7
	queuedPort    = 443  // the test's own table marks this for the slow path
	blockedPort   = 8443 // and this as blocked
)

// gatewayTopo is an appliance namespace with a WAN towards "inet" and three
// segments (staff: admin, pupil: plain, guest), each with one client namespace.
type gatewayTopo struct {
	app, inet, staff, pupil, guest netns.NsHandle
}

func newGatewayTopo(t *testing.T) *gatewayTopo {
	t.Helper()
	tp := &gatewayTopo{app: newNS(t), inet: newNS(t), staff: newNS(t), pupil: newNS(t), guest: newNS(t)}

	veth(t, tp.app, "wan0", tp.inet, "eth0")
	// WAN addressing is not netcfg's job (DHCP/static elsewhere), so the test does it.
	addAddrs(t, tp.app, "wan0", "198.51.100.1/24", "2001:db8:ff::1/64")
	// No route back to the segments: replies only arrive if masquerade works.
	addAddrs(t, tp.inet, "eth0", "198.51.100.2/24", "2001:db8:ff::2/64")

	for _, c := range []struct {
		ns      netns.NsHandle
		appSide string
		net4    string
		net6    string
	}{
		{tp.staff, "staff0", "10.20.0", "fd00:20:"},
		{tp.pupil, "pupil0", "10.25.0", "fd00:25:"},
		{tp.guest, "guest0", "10.30.0", "fd00:30:"},
	} {
		veth(t, tp.app, c.appSide, c.ns, "eth0")
		addAddrs(t, c.ns, "eth0", c.net4+".2/24", c.net6+":2/64")
		defaultRoutes(t, c.ns, c.net4+".1", c.net6+":1")
	}
	return tp
}

func (tp *gatewayTopo) config(t *testing.T, failOpen bool) Config {
	gw := func(s ...string) []netip.Prefix {
		var p []netip.Prefix
		for _, x := range s {
			p = append(p, netip.MustParsePrefix(x))
		}
		return p
	}
	return Config{
		Table: "schoolgate",
		WAN:   "wan0",
		Segments: []Segment{
			{Name: "staff", Interface: "staff0", Admin: true, Gateway: gw("10.20.0.1/24", "fd00:20::1/64")},
			{Name: "pupil", Interface: "pupil0", Gateway: gw("10.25.0.1/24", "fd00:25::1/64")},
			{Name: "guest", Interface: "guest0", Guest: true, Gateway: gw("10.30.0.1/24", "fd00:30::1/64")},
		},
		DNSPort:    testDNSPort,
		AdminPorts: []uint16{testAdminPort}, LANPorts: []uint16{testLANPort},
		Queue:    Queue{Num: testQueueNum, Count: 2, FailOpen: failOpen},
		MarkMask: testMarkMask, MarkQueue: testMarkQueue, MarkBlock: testMarkBlock,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// applyIn creates a Gateway inside ns and applies it.
func applyIn(t *testing.T, ns netns.NsHandle, cfg Config) *Gateway {
	t.Helper()
	var g *Gateway
	err := inNS(ns, func() (err error) {
		g, err = New(cfg)
		if err != nil {
			return err
		}
		return g.Apply()
	})
	if err != nil {
		t.Fatalf("new+apply: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// addMarkTable stands in for the eBPF fast path: an unrelated table that
// marks TCP to queuedPort for the slow path and TCP to blockedPort as blocked.
// It doubles as the foreign table Apply and Remove must not touch.
func addMarkTable(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "fastpath"})
	ch := c.AddChain(&nftables.Chain{Name: "mark", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
	for _, m := range []struct {
		port uint16
		mark uint32
	}{{queuedPort, testMarkQueue}, {blockedPort, testMarkBlock}} {
		exprs := slices.Concat(l4proto(unix.IPPROTO_TCP), dport(m.port), []expr.Any{
			&expr.Immediate{Register: 1, Data: binary.NativeEndian.AppendUint32(nil, m.mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		})
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: exprs})
	}
	// A second foreign table in another family, with a rule matching our interfaces.
	other := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "other"})
	och := c.AddChain(&nftables.Chain{Name: "fwd", Table: other, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(10)})
	c.AddRule(&nftables.Rule{Table: other, Chain: och, Exprs: slices.Concat(ifname(expr.MetaKeyIIFNAME, "nosuchif"), verdict(expr.VerdictDrop))})
	if err := c.Flush(); err != nil {
		t.Fatalf("adding fast-path stand-in table: %v", err)
	}
}

// dumpTables renders the tables of ns whose names match, with
// chains and rules, handles included, for comparing rulesets.
func dumpTables(t *testing.T, ns netns.NsHandle, match func(name string) bool) string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatalf("listing tables: %v", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatalf("listing chains: %v", err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		if !match(tbl.Name) {
			continue
		}
		fmt.Fprintf(&b, "table %d %s flags %d\n", tbl.Family, tbl.Name, tbl.Flags)
		for _, ch := range chains {
			if ch.Table.Name != tbl.Name || ch.Table.Family != tbl.Family {
				continue
			}
			fmt.Fprintf(&b, " chain %s type %s", ch.Name, ch.Type)
			if ch.Hooknum != nil {
				fmt.Fprintf(&b, " hook %d prio %d", *ch.Hooknum, *ch.Priority)
			}
			if ch.Policy != nil {
				fmt.Fprintf(&b, " policy %d", *ch.Policy)
			}
			b.WriteString("\n")
			rules, err := c.GetRules(tbl, ch)
			if err != nil {
				t.Fatalf("listing rules: %v", err)
			}
			for _, r := range rules {
				fmt.Fprintf(&b, "  rule %d %x:", r.Handle, r.UserData)
				for _, e := range r.Exprs {
					if tg, ok := e.(*expr.Target); ok {
						fmt.Fprintf(&b, " target{%s rev %d %x}", tg.Name, tg.Rev, nfqInfoBytes(tg))
						continue
					}
					fmt.Fprintf(&b, " %T%+v", e, e)
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

func nfqInfoBytes(tg *expr.Target) []byte {
	if u, ok := tg.Info.(*xt.Unknown); ok {
		return *u
	}
	return []byte(fmt.Sprintf("%T", tg.Info))
}

// queueListeners accepts every packet on queues num..num+count-1 and
// records the TCP destination ports it saw.
type queueListeners struct {
	mu    sync.Mutex
	ports []uint16
}

func (q *queueListeners) saw(port uint16) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Contains(q.ports, port)
}

func listenQueues(t *testing.T, ns netns.NsHandle, num, count uint16) (*queueListeners, func()) {
	t.Helper()
	q := &queueListeners{}
	ctx, cancel := context.WithCancel(context.Background())
	var open []*nfqueue.Nfqueue
	stop := func() {
		cancel()
		for _, nf := range open {
			nf.Close()
		}
		open = nil
	}
	t.Cleanup(stop)
	for i := range count {
		nf, err := nfqueue.Open(&nfqueue.Config{
			NfQueue: num + i, MaxPacketLen: 0xffff, MaxQueueLen: 64,
			Copymode: nfqueue.NfQnlCopyPacket, NetNS: int(ns), WriteTimeout: time.Second,
		})
		if err != nil {
			t.Fatalf("opening nfqueue %d: %v", num+i, err)
		}
		open = append(open, nf)
		err = nf.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
			if a.Payload != nil {
				if port, ok := tcpDstPort(*a.Payload); ok {
					q.mu.Lock()
					q.ports = append(q.ports, port)
					q.mu.Unlock()
				}
			}
			if a.PacketID != nil {
				nf.SetVerdict(*a.PacketID, nfqueue.NfAccept)
			}
			return 0
		}, func(err error) int { return 0 })
		if err != nil {
			t.Fatalf("registering on nfqueue %d: %v", num+i, err)
		}
	}
	return q, stop
}

// tcpDstPort reads the destination port of an IPv4 or IPv6 TCP packet.
func tcpDstPort(pkt []byte) (uint16, bool) {
	if len(pkt) < 1 {
		return 0, false
	}
	var off int
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 || pkt[9] != unix.IPPROTO_TCP {
			return 0, false
		}
		off = int(pkt[0]&0x0f) * 4
	case 6:
		if len(pkt) < 40 || pkt[6] != unix.IPPROTO_TCP {
			return 0, false
		}
		off = 40
	default:
		return 0, false
	}
	if len(pkt) < off+4 {
		return 0, false
	}
	return binary.BigEndian.Uint16(pkt[off+2:]), true
}

func TestPrivilegedGateway(t *testing.T) {
	needRoot(t)
	tp := newGatewayTopo(t)

	// Servers: the local resolver and admin UI on the appliance, and the
	// "internet" echoing back the source address it sees.
	echoUDP(t, tp.app, fmt.Sprintf(":%d", testDNSPort))
	echoTCP := func(c net.Conn) {
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		c.Write(append([]byte("dns:"), buf[:n]...))
	}
	listenTCP(t, tp.app, fmt.Sprintf(":%d", testDNSPort), echoTCP)
	whoami := func(c net.Conn) {
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		fmt.Fprint(c, ap.Addr().Unmap())
	}
	hello := func(c net.Conn) { fmt.Fprint(c, "hello") }
	listenTCP(t, tp.app, fmt.Sprintf(":%d", testAdminPort), hello)
	listenTCP(t, tp.app, fmt.Sprintf(":%d", testLANPort), hello)
	listenTCP(t, tp.app, ":22", hello)
	for _, port := range []int{80, queuedPort, blockedPort} {
		listenTCP(t, tp.inet, fmt.Sprintf(":%d", port), whoami)
	}
	listenTCP(t, tp.staff, ":9000", hello)

	addMarkTable(t, tp.app)
	notOurs := func(name string) bool { return name != "schoolgate" }
	ours := func(name string) bool { return name == "schoolgate" }
	foreign := dumpTables(t, tp.app, notOurs)

	g := applyIn(t, tp.app, tp.config(t, false))
	mode := g.QueueMode()
	t.Logf("queue mode: %s", mode)
	table := dumpTables(t, tp.app, ours)
	switch {
	case mode == QueueModeNative && strings.Contains(table, "*expr.Queue"):
	case mode == QueueModeXTCompat && strings.Contains(table, "target{NFQUEUE rev 3"):
	default:
		t.Fatalf("QueueMode() = %q but table has:\n%s", mode, table)
	}

	t.Run("forwarding sysctls", func(t *testing.T) {
		for key, want := range map[string]string{
			"net/ipv4/ip_forward":          "1",
			"net/ipv6/conf/all/forwarding": "1",
			"net/ipv6/conf/wan0/accept_ra": "2",
		} {
			got := readSysctl(t, tp.app, key)
			if got != want {
				t.Errorf("%s = %q, want %q", key, got, want)
			}
		}
	})

	t.Run("dns redirected to local resolver", func(t *testing.T) {
		for _, client := range []netns.NsHandle{tp.staff, tp.guest} {
			for _, network := range []string{"udp", "tcp"} {
				for _, addr := range []string{"192.0.2.53:53", "[2001:db8::53]:53"} {
					got, err := exchange(client, network, addr, "q")
					if err != nil || got != "dns:q" {
						t.Errorf("%s %s: got %q, %v; want answer from the local resolver", network, addr, got, err)
					}
				}
			}
		}
	})

	t.Run("masquerade to wan address", func(t *testing.T) {
		for addr, want := range map[string]string{
			"198.51.100.2:80":     "198.51.100.1",
			"[2001:db8:ff::2]:80": "2001:db8:ff::1",
		} {
			got, err := exchange(tp.staff, "tcp", addr, "")
			if err != nil || got != want {
				t.Errorf("%s: server saw %q (err %v), want %q", addr, got, err, want)
			}
		}
	})

	t.Run("block mark resets tcp", func(t *testing.T) {
		for _, addr := range []string{"198.51.100.2:8443", "[2001:db8:ff::2]:8443"} {
			start := time.Now()
			c, err := dial(tp.staff, "tcp", addr, 3*time.Second)
			if err == nil {
				c.Close()
			}
			if !connRefused(err) || time.Since(start) > time.Second {
				t.Errorf("%s: got %v after %v, want a fast connection refused", addr, err, time.Since(start))
			}
		}
	})

	t.Run("queue fails closed without listener", func(t *testing.T) {
		c, err := dial(tp.staff, "tcp", "198.51.100.2:443", time.Second)
		if err == nil {
			c.Close()
			t.Fatal("connected to a queued port with no queue listener and FailOpen=false")
		}
	})

	t.Run("queue delivers to listener", func(t *testing.T) {
		q, stop := listenQueues(t, tp.app, testQueueNum, 2)
		defer stop()
		got, err := exchange(tp.staff, "tcp", "198.51.100.2:443", "")
		if err != nil || got != "198.51.100.1" {
			t.Fatalf("queued connection: got %q, %v", got, err)
		}
		if !q.saw(queuedPort) {
			t.Errorf("no packet to port %d reached the queue listeners", queuedPort)
		}
		// A data segment outside any connection the gateway saw open is not queued: a
		// forged request must not be judged (and logged) in someone's name.
		queued := func() (n int) {
			time.Sleep(300 * time.Millisecond) // the connection's last packets
			q.mu.Lock()
			defer q.mu.Unlock()
			for _, p := range q.ports {
				if p == queuedPort {
					n++
				}
			}
			return n
		}
		before := queued()
		forged := gopacket.NewSerializeBuffer()
		ip := &layers.IPv4{SrcIP: net.IP{10, 20, 0, 2}, DstIP: net.IP{198, 51, 100, 2}, Protocol: layers.IPProtocolTCP}
		tcp := &layers.TCP{SrcPort: 40999, DstPort: queuedPort, Seq: 1000, Ack: 5000, PSH: true, ACK: true, Window: 512}
		tcp.SetNetworkLayerForChecksum(ip)
		if err := gopacket.SerializeLayers(forged, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			tcp, gopacket.Payload("GET / HTTP/1.1\r\nHost: forged.test\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		err = inNS(tp.staff, func() error {
			c, err := net.ListenPacket("ip4:tcp", "10.20.0.2")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.WriteTo(forged.Bytes(), &net.IPAddr{IP: ip.DstIP})
			return err
		})
		if err != nil {
			t.Fatalf("sending a forged segment: %v", err)
		}
		if after := queued(); after != before {
			t.Errorf("a forged mid-stream segment reached the queue (%d packets to port %d, then %d)", before, queuedPort, after)
		}
	})

	t.Run("wan reaches neither the web UI nor the resolver", func(t *testing.T) {
		if c, err := dial(tp.inet, "tcp", fmt.Sprintf("198.51.100.1:%d", testAdminPort), 500*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("the internet reached the web UI port")
		}
		if c, err := dial(tp.inet, "tcp", fmt.Sprintf("198.51.100.1:%d", testLANPort), 500*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("the internet reached the block page port")
		}
		for _, network := range []string{"udp", "tcp"} {
			if got, err := exchange(tp.inet, network, fmt.Sprintf("198.51.100.1:%d", testDNSPort), "q"); err == nil {
				t.Errorf("the internet got an answer from the resolver over %s: %q", network, got)
			}
		}
		// Control: the appliance is reachable from the WAN; only those ports are closed.
		if got, err := exchange(tp.inet, "tcp", "198.51.100.1:22", ""); err != nil || got != "hello" {
			t.Errorf("WAN to the appliance's port 22: %q, %v", got, err)
		}
	})

	t.Run("guest isolated", func(t *testing.T) {
		for _, addr := range []string{
			fmt.Sprintf("10.30.0.1:%d", testAdminPort),
			fmt.Sprintf("[fd00:30::1]:%d", testAdminPort),
			"10.30.0.1:22",
			fmt.Sprintf("10.30.0.1:%d", testLANPort),
			"10.20.0.1:22", // another segment's gateway address, still the appliance
			"10.20.0.2:9000",
		} {
			if c, err := dial(tp.guest, "tcp", addr, 500*time.Millisecond); err == nil {
				c.Close()
				t.Errorf("guest reached %s", addr)
			}
		}
		if got, err := exchange(tp.guest, "tcp", "198.51.100.2:80", ""); err != nil || got != "198.51.100.1" {
			t.Errorf("guest to internet: got %q, %v", got, err)
		}
		if got, err := exchange(tp.pupil, "tcp", "10.20.0.2:9000", ""); err != nil || got != "hello" {
			t.Errorf("pupil to staff client: got %q, %v; only guests are isolated", got, err)
		}
	})

	t.Run("admin ports only from admin segments", func(t *testing.T) {
		for _, addr := range []string{fmt.Sprintf("10.20.0.1:%d", testAdminPort), fmt.Sprintf("[fd00:20::1]:%d", testAdminPort)} {
			if got, err := exchange(tp.staff, "tcp", addr, ""); err != nil || got != "hello" {
				t.Errorf("staff to %s: got %q, %v", addr, got, err)
			}
		}
		if c, err := dial(tp.pupil, "tcp", fmt.Sprintf("10.25.0.1:%d", testAdminPort), 500*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("pupil reached the admin port")
		}
		if got, err := exchange(tp.pupil, "tcp", "10.25.0.1:22", ""); err != nil || got != "hello" {
			t.Errorf("pupil to port 22: got %q, %v; only admin ports are closed to pupils", got, err)
		}
		if got, err := exchange(tp.pupil, "tcp", fmt.Sprintf("10.25.0.1:%d", testLANPort), ""); err != nil || got != "hello" {
			t.Errorf("pupil to the block page port: got %q, %v", got, err)
		}
	})

	t.Run("spoofed sources dropped", func(t *testing.T) {
		// A pupil who gives itself a staff address (IPv4 and IPv6) must not get through
		// as staff: its packets never reach the internet. Its own address still does.
		var pc net.PacketConn
		if err := inNS(tp.inet, func() (err error) { pc, err = net.ListenPacket("udp", ":7777"); return err }); err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		addAddrs(t, tp.pupil, "eth0", "10.20.0.77/32", "fd00:20::77/128")
		send := func(local, remote, msg string) {
			err := inNS(tp.pupil, func() error {
				d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.MustParseAddrPort(local))}
				c, err := d.Dial("udp", remote)
				if err != nil {
					return err
				}
				defer c.Close()
				for range 3 {
					c.Write([]byte(msg))
				}
				return nil
			})
			if err != nil {
				t.Fatalf("sending from %s: %v", local, err)
			}
		}
		// Real first: the pupil's neighbour solicitation for its gateway takes its source
		// from the packet that triggers it, and a spoofed one would be dropped too.
		send("10.25.0.2:0", "198.51.100.2:7777", "real4")
		send("[fd00:25::2]:0", "[2001:db8:ff::2]:7777", "real6")
		time.Sleep(100 * time.Millisecond)
		send("10.20.0.77:0", "198.51.100.2:7777", "spoofed4")
		send("[fd00:20::77]:0", "[2001:db8:ff::2]:7777", "spoofed6")
		seen := map[string]bool{}
		buf := make([]byte, 64)
		for {
			pc.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			seen[string(buf[:n])] = true
		}
		if seen["spoofed4"] || seen["spoofed6"] || !seen["real4"] || !seen["real6"] {
			t.Errorf("the internet received %v; want real4 and real6 only", seen)
		}
	})

	t.Run("apply is idempotent", func(t *testing.T) {
		addrsBefore := linkAddrs(t, tp.app, "staff0")
		if err := g.Apply(); err != nil {
			t.Fatalf("second Apply: %v", err)
		}
		if again := dumpTables(t, tp.app, ours); again != table {
			t.Errorf("table changed on second Apply:\nbefore:\n%s\nafter:\n%s", table, again)
		}
		if got := linkAddrs(t, tp.app, "staff0"); !slices.Equal(got, addrsBefore) {
			t.Errorf("staff0 addresses changed on second Apply: %v, want %v", got, addrsBefore)
		}
		if got := dumpTables(t, tp.app, notOurs); got != foreign {
			t.Errorf("foreign tables changed by Apply:\nbefore:\n%s\nafter:\n%s", foreign, got)
		}
	})

	t.Run("fail open passes without listener", func(t *testing.T) {
		g2 := applyIn(t, tp.app, tp.config(t, true))
		if g2.QueueMode() != mode {
			t.Errorf("queue mode %q, first Apply used %q", g2.QueueMode(), mode)
		}
		got, err := exchange(tp.staff, "tcp", "198.51.100.2:443", "")
		if err != nil || got != "198.51.100.1" {
			t.Errorf("queued connection with FailOpen: got %q, %v", got, err)
		}
	})

	t.Run("remove", func(t *testing.T) {
		if err := g.Remove(); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if got := dumpTables(t, tp.app, ours); got != "" {
			t.Errorf("table left after Remove:\n%s", got)
		}
		for _, ifn := range []string{"staff0", "pupil0", "guest0"} {
			for _, a := range linkAddrs(t, tp.app, ifn) {
				if !strings.HasPrefix(a, "fe80:") {
					t.Errorf("%s still has %s after Remove", ifn, a)
				}
			}
		}
		if got := linkAddrs(t, tp.app, "wan0"); !slices.Contains(got, "198.51.100.1/24") {
			t.Errorf("wan0 addresses after Remove = %v; the WAN is not ours to clean", got)
		}
		if got := dumpTables(t, tp.app, notOurs); got != foreign {
			t.Errorf("foreign tables changed by Remove:\nbefore:\n%s\nafter:\n%s", foreign, got)
		}
		if err := g.Remove(); err != nil {
			t.Errorf("second Remove: %v", err)
		}
	})
}

func TestPrivilegedMissingWAN(t *testing.T) {
	needRoot(t)
	ns := newNS(t)
	cfg := Config{
		WAN:      "wan0",
		Segments: []Segment{{Name: "s", Interface: "lo", Gateway: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}}},
		DNSPort:  53, MarkMask: testMarkMask, MarkQueue: testMarkQueue, MarkBlock: testMarkBlock,
	}
	err := inNS(ns, func() error {
		g, err := New(cfg)
		if err != nil {
			return err
		}
		defer g.Close()
		return g.Apply()
	})
	if !errors.Is(err, ErrLinkMissing) {
		t.Fatalf("Apply without wan0 = %v, want ErrLinkMissing", err)
	}
}

func readSysctl(t *testing.T, ns netns.NsHandle, key string) string {
	t.Helper()
	var v []byte
	if err := inNS(ns, func() (err error) {
		v, err = os.ReadFile("/proc/sys/" + key)
		return err
	}); err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return string(bytes.TrimSpace(v))
}

func linkAddrs(t *testing.T, ns netns.NsHandle, ifn string) []string {
	t.Helper()
	h := nlHandle(t, ns)
	l, err := h.LinkByName(ifn)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range addrs {
		s = append(s, a.IPNet.String())
	}
	slices.Sort(s)
	return s
}
