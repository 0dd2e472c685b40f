package nfq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/schoolgate/schoolgate/datapath/filter"
	"github.com/schoolgate/schoolgate/datapath/internal/nettest"
	"github.com/schoolgate/schoolgate/datapath/neigh"
	"github.com/schoolgate/schoolgate/datapath/netcfg"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

func init() { runtime.LockOSThread() }

var pinCounter atomic.Int32

const pathConfig = `
dns: {upstreams: [{address: "203.0.113.53:53"}]}
segments:
  - {name: staff,  interface: seg-staff, subnets: [10.10.0.0/24, "fd00:10::/64"], profile: staff}
  - {name: pupil,  interface: seg-pupil, subnets: [10.20.0.0/24, "fd00:20::/64"], profile: pupils}
  - {name: guest,  interface: seg-guest, subnets: [10.30.0.0/24, "fd00:30::/64"], profile: guest, guest: true}
profiles:
  - {name: staff, block: [staffblocked.test]}
  - {name: pupils, block: [blocked.test]}
  - {name: guest, block: [blocked.test], no_sni: allow}
`

type events struct {
	mu sync.Mutex
	ev []eventlog.Event
}

func (e *events) Record(ev eventlog.Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *events) find(source, name, action string) (eventlog.Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.ev {
		if ev.Source == source && ev.Name == name && ev.Action == action {
			return ev, true
		}
	}
	return eventlog.Event{}, false
}

// flowMap writes the slow path's verdicts into the fast path's map.
type flowMap struct {
	f        *filter.Filter
	profiles map[string]uint16
}

func (m flowMap) SetFlowVerdict(fl Flow, v FlowVerdict, d policy.Decision) error {
	fv, ok := map[FlowVerdict]filter.Verdict{FlowAllow: filter.VerdictAllow, FlowBlock: filter.VerdictBlock, FlowDrop: filter.VerdictDrop}[v]
	if !ok {
		return fmt.Errorf("flow verdict %v", v)
	}
	return m.f.SetVerdict(filter.FlowKey{Client: fl.Client, Server: fl.Server, Proto: fl.Proto}, fv, m.profiles[d.ProfileName()])
}

// packetPath is a running appliance without the daemon: the gateway's nftables table, the
// fast path on every segment and the slow path, judging with a real policy engine.
type packetPath struct {
	topo   *nettest.Topology
	inet   *nettest.Inet
	filter *filter.Filter
	slow   *Slowpath
	events *events
}

// startPacketPath starts one; page is the slow path's Config.BlockPage (nil: resets).
func startPacketPath(t *testing.T, page func(string, policy.Decision) []byte) *packetPath {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, eBPF and nfqueue")
	}
	topo := nettest.New(t, nettest.Spec{})
	zone := nettest.Zone{
		"blocked.test":      topo.InetAddrs(0),
		"allowed.test":      topo.InetAddrs(1),
		"staffblocked.test": topo.InetAddrs(2),
	}
	pp := &packetPath{topo: topo, inet: topo.StartInet(t, zone), events: &events{}}

	cfg, err := config.Load([]byte(pathConfig))
	if err != nil {
		t.Fatal(err)
	}
	empty := lists.NewSetBuilder(0).Build(nil)
	snap, err := policy.Compile(cfg, &lists.Catalog{Domains: empty, Protected: empty})
	if err != nil {
		t.Fatal(err)
	}
	// Packets a client's kernel sent as one GSO batch reach the queue without their
	// Ethernet header, so the MAC comes from the neighbour table, as in the daemon.
	neighbours := neigh.New(neigh.Config{})
	engine, err := policy.New(policy.Config{Snapshot: snap, MACs: neighbours})
	if err != nil {
		t.Fatal(err)
	}

	profiles := map[string]uint16{"staff": 0, "pupils": 1, "guest": 2}
	pin := fmt.Sprintf("/sys/fs/bpf/schoolgate-nfqtest-%d-%d", os.Getpid(), pinCounter.Add(1))
	err = topo.Appliance.Do(func() error {
		if err := neighbours.Start(context.Background()); err != nil {
			return err
		}
		t.Cleanup(func() { neighbours.Close() })
		var segs []netcfg.Segment
		for _, s := range cfg.Segments {
			ts := topo.Segments[s.Name]
			segs = append(segs, netcfg.Segment{Name: s.Name, Interface: ts.Interface,
				Gateway: []netip.Prefix{ts.Gateway4, ts.Gateway6}, Guest: s.Guest, Admin: s.Name == "staff"})
		}
		gw, err := netcfg.New(netcfg.Config{WAN: topo.WAN.Interface, Segments: segs, DNSPort: 53,
			Queue:    netcfg.Queue{Num: 0, Count: 1},
			MarkMask: filter.MarkMask, MarkQueue: filter.MarkQueue, MarkBlock: filter.MarkBlock})
		if err != nil {
			return err
		}
		if err := gw.Apply(); err != nil {
			return err
		}
		t.Cleanup(func() { gw.Remove(); gw.Close() })

		f, err := filter.New(filter.Config{PinPath: pin})
		if err != nil {
			return err
		}
		pp.filter = f
		t.Cleanup(func() { f.Remove() })
		if err := f.SetProfiles(map[uint16]filter.Profile{0: {}, 1: {BlockDoT: true}, 2: {BlockDoT: true}}); err != nil {
			return err
		}
		for i, s := range cfg.Segments {
			if err := f.AttachSegment(topo.Segments[s.Name].Interface, filter.Segment{ID: uint16(i + 1), Profile: profiles[s.Profile], Guest: s.Guest}); err != nil {
				return err
			}
		}
		if err := f.AttachWAN(topo.WAN.Interface); err != nil {
			return err
		}

		slow, err := New(Config{Policy: engine, Flows: flowMap{f, profiles}, Events: pp.events,
			MarkMask: filter.MarkMask, MarkBlock: filter.MarkBlock, BlockPage: page})
		if err != nil {
			return err
		}
		pp.slow = slow
		t.Cleanup(func() { slow.Close() })
		return slow.Start(context.Background())
	})
	if err != nil {
		t.Fatalf("starting the packet path: %v", err)
	}
	return pp
}

// get fetches url from a client namespace, connecting to addr whatever the name.
func (pp *packetPath) get(client, url string, addr netip.Addr, h3 bool) (string, error) {
	ns := pp.topo.Clients[client]
	host := strings.Split(strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://"), "/")[0]
	opts := nettest.ClientOptions{TLS: pp.inet.TLSConfig(), Hosts: map[string]netip.Addr{host: addr}, Timeout: 3 * time.Second}
	c := ns.HTTPClient(opts)
	if h3 {
		var closeFn func() error
		var err error
		if c, closeFn, err = ns.HTTP3Client(opts); err != nil {
			return "", err
		}
		defer closeFn()
	}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPrivilegedSNIFiltering: clients that skip DNS and connect straight to an address
// (curl --resolve) are judged by the name in their handshake: TLS with Go's post-quantum
// two-segment ClientHello over IPv4 and IPv6, QUIC, and plain HTTP.
func TestPrivilegedSNIFiltering(t *testing.T) {
	pp := startPacketPath(t, nil)
	blocked := pp.inet.Addrs("blocked.test")
	allowed := pp.inet.Addrs("allowed.test")
	tests := []struct {
		client, url string
		addr        netip.Addr
		h3          bool
		ok          bool
	}{
		{"pupil", "https://allowed.test/", allowed[0], false, true},
		{"pupil", "https://blocked.test/", blocked[0], false, false},
		{"pupil", "https://blocked.test/", blocked[1], false, false}, // IPv6
		{"pupil", "https://allowed.test/", allowed[1], false, true},
		{"staff", "https://blocked.test/", blocked[0], false, true},
		{"staff", "https://staffblocked.test/", pp.inet.Addrs("staffblocked.test")[0], false, false},
		{"pupil", "https://allowed.test/", allowed[0], true, true}, // QUIC
		{"pupil", "https://blocked.test/", blocked[0], true, false},
		{"pupil", "http://allowed.test/", allowed[0], false, true}, // HTTP Host
		{"pupil", "http://blocked.test/", blocked[0], false, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %s %v h3=%v", tt.client, tt.url, tt.addr, tt.h3)
		start := time.Now()
		body, err := pp.get(tt.client, tt.url, tt.addr, tt.h3)
		took := time.Since(start)
		host := strings.Split(strings.SplitN(tt.url, "//", 2)[1], "/")[0]
		switch {
		case tt.ok && (err != nil || !strings.Contains(body, "hello from "+host)):
			t.Errorf("%s: want success, got %q, %v", name, body, err)
		case !tt.ok && err == nil:
			t.Errorf("%s: want blocked, got %q", name, body)
		case !tt.ok && !tt.h3 && took > time.Second:
			t.Errorf("%s: blocked after %v, want a reset within a second", name, took)
		}
	}

	// Without a block page, curl's plain-HTTP request to a blocked name is reset, over
	// IPv4 and IPv6.
	for _, addr := range blocked {
		res := pp.curl(t, "pupil", "blocked.test", addr)
		if res.err == nil || !strings.Contains(res.stderr, "reset") || res.took > time.Second {
			t.Errorf("curl http://blocked.test/ at %v: %s, %v after %v; want a reset within a second", addr, res, res.err, res.took)
		}
	}
	if n := pp.slow.Stats().BlockPages; n != 0 {
		t.Errorf("%d block pages sent without Config.BlockPage", n)
	}

	// Every decision is an event with segment, profile and the device's MAC.
	pupilMAC := pp.topo.Segments["pupil"].ClientMAC.String()
	for _, want := range []struct{ source, name, action string }{
		{"sni", "blocked.test", "block"}, {"sni", "allowed.test", "allow"},
		{"quic", "blocked.test", "block"}, {"quic", "allowed.test", "allow"},
		{"http", "blocked.test", "block"},
	} {
		ev, ok := pp.events.find(want.source, want.name, want.action)
		if !ok {
			t.Errorf("no %s event for %s %s", want.source, want.action, want.name)
			continue
		}
		if ev.Segment != "pupil" || ev.Profile != "pupils" || ev.MAC != pupilMAC {
			t.Errorf("%s event: segment %q profile %q MAC %q, want pupil/pupils/%s", want.source, ev.Segment, ev.Profile, ev.MAC, pupilMAC)
		}
	}

	// After the first verdict, a flow stays in the kernel: a 1 MiB download from an
	// allowed name (hundreds of packets) hands the slow path only its first packets.
	before := pp.slow.Stats().Packets
	body, err := pp.get("staff", "https://allowed.test"+nettest.BigPath, allowed[0], false)
	if err != nil || !strings.HasPrefix(body, "hello from") || len(body) < nettest.BigSize {
		t.Fatalf("staff allowed.test%s: %d bytes, %v", nettest.BigPath, len(body), err)
	}
	stats, err := pp.filter.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := pp.slow.Stats().Packets - before; got == 0 || got > 3 {
		t.Errorf("slow path saw %d packets of one HTTPS download, want 1–3 (the ClientHello)", got)
	}
	// The client's side of a download is mostly acknowledgements, tens of them.
	if stats[1].FlowHits < 20 {
		t.Errorf("staff segment: %d fast-path flow hits for a 1 MiB download, want its acknowledgements: %+v", stats[1].FlowHits, stats[1])
	}
}

// curlResult is what curl made of one plain-HTTP request.
type curlResult struct {
	code, body, stderr string
	took               time.Duration
	err                error
}

func (r curlResult) String() string {
	return fmt.Sprintf("status %q body %q stderr %q", r.code, r.body, strings.TrimSpace(r.stderr))
}

// curl fetches http://host/ with curl from a client namespace, connecting to addr whatever
// the name (--resolve), and returns the status code, the body and curl's complaints.
func (pp *packetPath) curl(t *testing.T, client, host string, addr netip.Addr) curlResult {
	t.Helper()
	ip := addr.String()
	if addr.Is6() {
		ip = "[" + ip + "]"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := pp.topo.Clients[client].Command(ctx, "curl", "-sS", "--max-time", "3",
		"--resolve", host+":80:"+ip, "-w", "\n%{http_code}", "http://"+host+"/")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := curlResult{stderr: stderr.String(), took: time.Since(start), err: err}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running curl: %v", err)
	}
	out := stdout.String()
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		res.body, res.code = out[:i], out[i+1:]
	}
	return res
}

// TestPrivilegedHTTPBlockPage: with Config.BlockPage, curl's plain-HTTP request to a
// blocked name gets the block page (403, the page's body, the connection closed cleanly)
// over IPv4 and IPv6, the server's side of the connection is reset rather than left open,
// and allowed names still reach the server.
func TestPrivilegedHTTPBlockPage(t *testing.T) {
	page := func(host string, d policy.Decision) []byte {
		return []byte(fmt.Sprintf("<!doctype html><title>Blocked</title><p>%s is blocked for %s (%s).</p>",
			html.EscapeString(host), html.EscapeString(d.ProfileName()), d.Action))
	}
	pp := startPacketPath(t, page)
	blocked := pp.inet.Addrs("blocked.test")
	allowed := pp.inet.Addrs("allowed.test")
	want := "<p>blocked.test is blocked for pupils (block).</p>"

	// What the pupil's interface receives while it is shown the pages: after the page the
	// flow is dropped silently, so no reset may follow it (Windows may discard unread data
	// on a reset, and the browser show "connection reset" instead of the page).
	pupil := pp.topo.Segments["pupil"]
	capt := startCapture(t, pupil.Client, "eth0")
	dropsBefore := flowDrops(t, pp.filter, 2)
	for _, addr := range blocked {
		res := pp.curl(t, "pupil", "blocked.test", addr)
		if res.err != nil || res.code != "403" || !strings.Contains(res.body, want) {
			t.Errorf("curl http://blocked.test/ at %v: %s, %v; want 403 and the block page", addr, res, res.err)
		}
	}
	// The client's FIN after the page is dropped, not answered; it retransmits it
	// within a second.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && flowDrops(t, pp.filter, 2) == dropsBefore; {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a reset to arrive, if one were coming
	segs := capt.stop()
	for _, addr := range blocked {
		client := pupil.Client4
		if addr.Is6() {
			client = pupil.Client6
		}
		var page *captured
		for i, sg := range segs {
			if sg.in && sg.src == netip.AddrPortFrom(addr, 80) && sg.fin && sg.payload > 0 {
				page = &segs[i]
				break
			}
		}
		if page == nil {
			t.Errorf("%v: the pupil received no page segment from %v:80", addr, addr)
			continue
		}
		for _, sg := range segs {
			if sg.in && sg.rst && sg.dst == page.dst {
				t.Errorf("%v: the pupil received a reset after the block page: %v", addr, sg)
			}
		}
		k := filter.FlowKey{Client: netip.AddrPortFrom(client, page.dst.Port()), Server: page.src, Proto: protoTCP}
		if v, found, err := pp.filter.Verdict(k); err != nil || v != filter.VerdictDrop {
			t.Errorf("%v: flow verdict %v (found %v, err %v), want %v", k, v, found, err, filter.VerdictDrop)
		}
	}
	if n := flowDrops(t, pp.filter, 2); n == dropsBefore {
		t.Errorf("no packets of the pages' flows dropped on the pupil segment (%d flow drops)", n)
	}
	for _, addr := range allowed {
		res := pp.curl(t, "pupil", "allowed.test", addr)
		if res.err != nil || res.code != "200" || res.body != "hello from allowed.test" {
			t.Errorf("curl http://allowed.test/ at %v: %s, %v; want the real page", addr, res, res.err)
		}
	}
	// Staff may visit the name: the real page.
	if res := pp.curl(t, "staff", "blocked.test", blocked[0]); res.err != nil || res.code != "200" || res.body != "hello from blocked.test" {
		t.Errorf("staff curl http://blocked.test/: %s, %v; want the real page", res, res.err)
	}
	// TLS to a blocked name is reset as before.
	if body, err := pp.get("pupil", "https://blocked.test/", blocked[0], false); err == nil {
		t.Errorf("pupil https://blocked.test/: got %q, want a reset", body)
	}

	st := pp.slow.Stats()
	if st.BlockPages != uint64(len(blocked)) || st.Errors != 0 {
		t.Errorf("stats: %d block pages, %d errors; want %d and 0", st.BlockPages, st.Errors, len(blocked))
	}
	if ev, ok := pp.events.find("http", "blocked.test", "block"); !ok || ev.Segment != "pupil" {
		t.Errorf("no http block event for the pupil segment: %+v", ev)
	}

	// A request spoofed from an address on the internet gets no page there: the page may
	// leave only by the interface the request came in on (else a pupil could aim pages,
	// twenty times the request's size, at anyone).
	victim := netip.MustParseAddr("203.0.113.50")
	if out, err := pp.topo.Inet.Command(context.Background(), "ip", "addr", "add", victim.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("adding the victim's address: %v: %s", err, out)
	}
	capture, err := pp.topo.Inet.ListenPacket("ip4:tcp", victim.String())
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	// The server address is none of the inet namespace's own, so that the page, should it
	// come, is not dropped there as a martian (from a local address).
	server := netip.MustParseAddr("203.0.113.60")
	spoofed := Flow{Client: netip.AddrPortFrom(victim, 40123), Server: netip.AddrPortFrom(server, 80), Proto: protoTCP}
	err = pp.topo.Clients["pupil"].Do(func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		inj := openInjector(slog.New(slog.DiscardHandler))
		defer inj.close()
		return inj.send(tcpPacket(t, spoofed, 1000, 5000, []byte("GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n")), server, eth0.Index)
	})
	if err != nil {
		t.Fatalf("sending the spoofed request: %v", err)
	}
	buf := make([]byte, 2048)
	capture.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, _, err := capture.ReadFrom(buf) // the TCP segment, without the IP header
		if err != nil {
			break
		}
		if n >= 20 && binary.BigEndian.Uint16(buf) == 80 {
			t.Errorf("the internet address got a segment from port 80 for a spoofed request: %q", buf[20:n])
			break
		}
	}
	// The gateway's anti-spoofing rule (netcfg) drops a source that is not routed back
	// through its segment before the slow path sees it; the page's binding to the
	// request's interface is the second guard.
	pp.events.mu.Lock()
	judged := false
	for _, ev := range pp.events.ev {
		judged = judged || ev.Client == victim
	}
	pp.events.mu.Unlock()
	if judged {
		t.Error("a request from a spoofed internet address reached the slow path")
	}

	// The server never got the request, and its side was reset through the WAN's NAT:
	// no connection to a blocked address lingers there.
	var lingering string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		lingering = ""
		for _, addr := range blocked {
			src := addr.String()
			if addr.Is6() {
				src = "[" + src + "]"
			}
			out, err := pp.topo.Inet.Command(context.Background(), "ss", "-Htn", "state", "established",
				"src", src, "sport", "=", ":80").Output()
			if err != nil {
				t.Fatalf("ss: %v", err)
			}
			lingering += strings.TrimSpace(string(out))
		}
		if lingering == "" {
			break
		}
	}
	if lingering != "" {
		t.Errorf("the server still holds the blocked connections:\n%s", lingering)
	}
}

// flowDrops returns the segment's flow drops (ReasonFlow): packets of flows the slow path
// blocked.
func flowDrops(t *testing.T, f *filter.Filter, segment uint16) uint64 {
	t.Helper()
	st, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st[segment].Drops[filter.ReasonFlow]
}

// captured is one TCP segment seen on a captured interface.
type captured struct {
	in            bool // received, not sent
	src, dst      netip.AddrPort
	syn, fin, rst bool
	payload       int
}

func (c captured) String() string {
	flags := ""
	for _, f := range []struct {
		on   bool
		name string
	}{{c.syn, "SYN"}, {c.fin, "FIN"}, {c.rst, "RST"}} {
		if f.on {
			flags += "|" + f.name
		}
	}
	return fmt.Sprintf("in=%v %v > %v%s len %d", c.in, c.src, c.dst, flags, c.payload)
}

// capture records the TCP segments an interface sends and receives, through an AF_PACKET
// socket, so that it sees what reaches the interface before the IP stack acts on it.
type capture struct {
	fd      int
	stopped atomic.Bool
	done    chan struct{} // closed when read has returned and closed fd
	mu      sync.Mutex
	segs    []captured
}

func startCapture(t *testing.T, ns *nettest.NS, ifname string) *capture {
	t.Helper()
	c := &capture{fd: -1, done: make(chan struct{})}
	all := int(htons(unix.ETH_P_ALL))
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, all)
		if err != nil {
			return err
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		t.Fatalf("capturing on %s: %v", ifname, err)
	}
	go c.read()
	t.Cleanup(func() { c.stop() })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) read() {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, 65536)
	for !c.stopped.Load() {
		n, from, err := unix.Recvfrom(c.fd, buf, 0) // times out every 50ms (SO_RCVTIMEO)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		var first gopacket.LayerType
		switch htons(ll.Protocol) {
		case unix.ETH_P_IP:
			first = layers.LayerTypeIPv4
		case unix.ETH_P_IPV6:
			first = layers.LayerTypeIPv6
		default:
			continue
		}
		p := gopacket.NewPacket(buf[:n], first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		tcp, ok := p.TransportLayer().(*layers.TCP)
		if !ok || p.NetworkLayer() == nil {
			continue
		}
		src, _ := netip.AddrFromSlice(p.NetworkLayer().NetworkFlow().Src().Raw())
		dst, _ := netip.AddrFromSlice(p.NetworkLayer().NetworkFlow().Dst().Raw())
		c.mu.Lock()
		c.segs = append(c.segs, captured{
			in:  ll.Pkttype != unix.PACKET_OUTGOING,
			src: netip.AddrPortFrom(src.Unmap(), uint16(tcp.SrcPort)), dst: netip.AddrPortFrom(dst.Unmap(), uint16(tcp.DstPort)),
			syn: tcp.SYN, fin: tcp.FIN, rst: tcp.RST, payload: len(tcp.Payload),
		})
		c.mu.Unlock()
	}
}

// stop ends the capture and returns what it saw.
func (c *capture) stop() []captured {
	c.stopped.Store(true)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.segs...)
}
