package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/datapath/internal/nettest"
)

func init() { runtime.LockOSThread() }

// The inet addresses of the test zone, by InetAddrs index.
const (
	addrBlocked = iota // blocked.test: blocked for pupils and guests
	addrAllowed        // allowed.test
	addrDoH            // doh.test: a DoH resolver, on the pupils' address list
)

// gatewayProfiles: pupils block blocked.test, a WireGuard port and the DoH address list
// (DoT is blocked by default); guests may not use QUIC at all.
const gatewayProfiles = `  - {name: staff, no_sni: allow, bypass: {block_dot: false}}
  - {name: pupils, block: [blocked.test], bypass: {vpn_ports: [udp/51820], address_lists: [doh]}}
  - {name: guest, block: [blocked.test], quic: block}
lists:
  - {name: doh, file: doh.txt, format: ips}
`

// gatewayTest is one running appliance with its internet, shared by the subtests.
type gatewayTest struct {
	topo   *nettest.Topology
	inet   *nettest.Inet
	d      *daemon
	dir    string
	caFile string
}

func newGatewayTest(t *testing.T) *gatewayTest {
	needRoot(t)
	topo := nettest.New(t, nettest.Spec{})
	g := &gatewayTest{topo: topo, dir: t.TempDir()}
	g.inet = topo.StartInet(t, nettest.Zone{
		"blocked.test": topo.InetAddrs(addrBlocked),
		"allowed.test": topo.InetAddrs(addrAllowed),
		"doh.test":     topo.InetAddrs(addrDoH),
	})
	g.caFile = filepath.Join(g.dir, "ca.pem")
	doh := strings.Join([]string{"# DoH resolvers", topo.InetAddr4(addrDoH).String(), topo.InetAddr6(addrDoH).String() + "/128", ""}, "\n")
	for name, body := range map[string][]byte{"ca.pem": g.inet.CAPEM, "doh.txt": []byte(doh)} {
		if err := os.WriteFile(filepath.Join(g.dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *gatewayTest) start(t *testing.T) {
	g.d = startDaemon(t, g.topo, g.dir, gatewayConfig(g.topo, g.inet, gatewayProfiles))
}

// curl fetches https://name/ (or http:// when scheme says so) from a client, connecting to
// addr as curl --resolve does, and returns curl's output and error.
func (g *gatewayTest) curl(client, scheme, name string, addr netip.Addr, extra ...string) (string, error) {
	port := "443"
	if scheme == "http" {
		port = "80"
	}
	host := addr.String()
	if addr.Is6() {
		host = "[" + host + "]"
	}
	args := append([]string{"-sS", "--max-time", "3", "--cacert", g.caFile,
		"--resolve", fmt.Sprintf("%s:%s:%s", name, port, host), scheme + "://" + name + "/"}, extra...)
	out, err := g.topo.Clients[client].Command(context.Background(), "curl", args...).CombinedOutput()
	return string(out), err
}

// events polls the events API until want says the list is complete or 5 s pass.
func (g *gatewayTest) events(t *testing.T, query string, want func([]apiEvent) bool) []apiEvent {
	t.Helper()
	var got struct {
		Events []apiEvent `json:"events"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got.Events = nil
		body, err := g.d.get("/api/events?" + query)
		if err == nil {
			err = json.Unmarshal([]byte(body), &got)
		}
		if err == nil && want(got.Events) {
			return got.Events
		}
		if time.Now().After(deadline) {
			t.Errorf("events?%s: %v; got %+v", query, err, got.Events)
			return got.Events
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func hasEvent(evs []apiEvent, match func(apiEvent) bool) bool {
	for _, e := range evs {
		if match(e) {
			return true
		}
	}
	return false
}

// TestPrivilegedGateway runs the real schoolgated as the gateway of three segments in
// network namespaces, with real clients behind it and a small internet in front.
func TestPrivilegedGateway(t *testing.T) {
	g := newGatewayTest(t)
	topo, inet, seg := g.topo, g.inet, g.topo.Segments
	ctx := context.Background()

	// A foreign table present before the daemon starts must be there, unchanged, after.
	foreign := "table inet foreign {\n\tchain keep {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tcounter packets 0 bytes 0\n\t}\n}"
	cmd := topo.Appliance.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(foreign)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f foreign table: %v\n%s", err, out)
	}

	g.start(t)

	t.Run("dns redirected", func(t *testing.T) {
		// The pupil asks the internet's resolver directly; schoolgate answers. The daemon is
		// healthy only once the redirect is in place, so the first try should be answered;
		// dig retries once as UDP clients do, and a lost try is logged (its ";;" line), not
		// taken for an answer with no address.
		dig := func(name string) string {
			out, _ := topo.Clients["pupil"].Command(ctx, "dig", "+short", "+tries=2", "+time=2", "@"+inet.DNS.Addr().String(), name).CombinedOutput()
			var answer []string
			for line := range strings.Lines(string(out)) {
				line = strings.TrimSpace(line)
				switch {
				case strings.Contains(line, "no servers"):
					answer = append(answer, line)
				case strings.HasPrefix(line, ";;"):
					t.Logf("dig %s: %s", name, line)
				case line != "":
					answer = append(answer, line)
				}
			}
			return strings.Join(answer, "\n")
		}
		if out := dig("blocked.test"); out != "" {
			t.Errorf("pupil dig blocked.test at the inet resolver = %q, want no address (blocked by schoolgate)", out)
		}
		if out := dig("allowed.test"); out != topo.InetAddr4(addrAllowed).String() {
			t.Errorf("pupil dig allowed.test = %q, want %s", out, topo.InetAddr4(addrAllowed))
		}
	})

	t.Run("sni", func(t *testing.T) {
		for _, v6 := range []bool{false, true} {
			addr := func(i int) netip.Addr {
				if v6 {
					return topo.InetAddr6(i)
				}
				return topo.InetAddr4(i)
			}
			start := time.Now()
			if out, err := g.curl("pupil", "https", "blocked.test", addr(addrBlocked)); err == nil {
				t.Errorf("pupil curl --resolve blocked.test:443:%s succeeded (%q); want it cut off by SNI", addr(addrBlocked), out)
			} else if time.Since(start) > time.Second {
				t.Errorf("pupil curl blocked.test (%s) took %v to fail; want a reset, not a timeout", addr(addrBlocked), time.Since(start))
			}
			if out, err := g.curl("pupil", "https", "allowed.test", addr(addrAllowed)); err != nil || !strings.Contains(out, "hello from allowed.test") {
				t.Errorf("pupil curl allowed.test (%s): %q, %v", addr(addrAllowed), out, err)
			}
			if out, err := g.curl("staff", "https", "blocked.test", addr(addrBlocked)); err != nil || !strings.Contains(out, "hello from blocked.test") {
				t.Errorf("staff curl blocked.test (%s): %q, %v", addr(addrBlocked), out, err)
			}
		}
	})

	t.Run("http", func(t *testing.T) {
		// Plain HTTP to a blocked name gets the block page; over IPv6 too.
		for _, a := range []netip.Addr{topo.InetAddr4(addrBlocked), topo.InetAddr6(addrBlocked)} {
			out, err := g.curl("pupil", "http", "blocked.test", a, "-w", "\n%{http_code}")
			if err != nil || !strings.Contains(out, "This site is blocked") || !strings.Contains(out, "Namespace School") ||
				!strings.HasSuffix(out, "\n403") || strings.Contains(out, "hello from") {
				t.Errorf("pupil http://blocked.test (%s): %q, %v; want the 403 block page", a, out, err)
			}
			if out, err := g.curl("staff", "http", "blocked.test", a); err != nil || !strings.Contains(out, "hello from blocked.test") {
				t.Errorf("staff http://blocked.test (%s): %q, %v", a, out, err)
			}
		}
		if out, err := g.curl("pupil", "http", "allowed.test", topo.InetAddr4(addrAllowed)); err != nil || !strings.Contains(out, "hello from allowed.test") {
			t.Errorf("pupil http://allowed.test: %q, %v", out, err)
		}
	})

	t.Run("post-quantum hello in two segments", func(t *testing.T) {
		// Go's default key shares include X25519MLKEM768: a ~1.8 KB ClientHello that
		// spans two TCP segments.
		for _, tc := range []struct {
			client string
			ok     bool
		}{{"pupil", false}, {"staff", true}} {
			c := topo.Clients[tc.client].HTTPClient(nettest.ClientOptions{TLS: inet.TLSConfig(), Timeout: 3 * time.Second,
				Hosts: map[string]netip.Addr{"blocked.test": topo.InetAddr4(addrBlocked)}})
			var state tls.ConnectionState
			resp, err := c.Get("https://blocked.test/")
			if err == nil {
				state = *resp.TLS
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("%s Go client to blocked.test: err = %v, want success %v", tc.client, err, tc.ok)
			}
			if err == nil && state.CurveID != tls.X25519MLKEM768 {
				t.Errorf("%s handshake used %v, want X25519MLKEM768 (the test needs a two-segment hello)", tc.client, state.CurveID)
			}
		}
	})

	t.Run("no sni", func(t *testing.T) {
		// openssl -noservername sends no SNI: the pupils profile blocks that (the
		// default); the staff profile allows it.
		s := func(client string) error {
			cmd := topo.Clients[client].Command(ctx, "openssl", "s_client", "-noservername", "-brief", "-ign_eof",
				"-connect", net.JoinHostPort(topo.InetAddr4(addrAllowed).String(), "443"), "-CAfile", g.caFile)
			cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
			out, err := cmd.CombinedOutput()
			if err == nil && !strings.Contains(string(out), "hello from") {
				err = fmt.Errorf("no page: %s", out)
			}
			return err
		}
		if err := s("pupil"); err == nil {
			t.Errorf("pupil TLS without SNI succeeded; the pupils profile blocks it")
		}
		if err := s("staff"); err != nil {
			t.Errorf("staff TLS without SNI (no_sni: allow): %v", err)
		}
	})

	t.Run("quic", func(t *testing.T) {
		h3 := func(client, name string, i int) (string, error) {
			c, closeFn, err := topo.Clients[client].HTTP3Client(nettest.ClientOptions{TLS: inet.TLSConfig(), Timeout: 3 * time.Second,
				Hosts: map[string]netip.Addr{name: topo.InetAddr4(i)}})
			if err != nil {
				return "", err
			}
			defer closeFn()
			return get(c, "https://"+name+"/")
		}
		if _, err := h3("pupil", "blocked.test", addrBlocked); err == nil {
			t.Errorf("pupil HTTP/3 to blocked.test succeeded; want the QUIC flow dropped")
		}
		if body, err := h3("pupil", "allowed.test", addrAllowed); err != nil || !strings.Contains(body, "hello from allowed.test") {
			t.Errorf("pupil HTTP/3 to allowed.test: %q, %v", body, err)
		}
		// Guests may not use QUIC: UDP 443 is dropped, and the client falls back to TCP.
		if _, err := h3("guest", "allowed.test", addrAllowed); err == nil {
			t.Errorf("guest HTTP/3 succeeded; the guest profile blocks QUIC")
		}
		if out, err := g.curl("guest", "https", "allowed.test", topo.InetAddr4(addrAllowed)); err != nil || !strings.Contains(out, "hello from allowed.test") {
			t.Errorf("guest HTTPS over TCP after QUIC was dropped: %q, %v", out, err)
		}
	})

	t.Run("bypass", func(t *testing.T) {
		dot := func(client string) error {
			c, err := dial(topo.Clients[client], "tcp", inet.DoT.String())
			if err == nil {
				c.Close()
			}
			return err
		}
		if err := dot("pupil"); err == nil {
			t.Errorf("pupil reached DNS over TLS at %s", inet.DoT)
		}
		if err := dot("staff"); err != nil {
			t.Errorf("staff (block_dot: false) to DoT: %v", err)
		}
		for _, port := range []int{nettest.PortWireGuard, nettest.PortDoQ} {
			target := net.JoinHostPort(topo.InetAddr4(addrAllowed).String(), fmt.Sprint(port))
			if err := udpEcho(topo.Clients["pupil"], target); err == nil {
				t.Errorf("pupil got an echo from %s; the port is blocked", target)
			}
		}
		if err := udpEcho(topo.Clients["pupil"], net.JoinHostPort(topo.InetAddr4(addrAllowed).String(), fmt.Sprint(nettest.PortOpenVPN))); err != nil {
			t.Errorf("pupil to an unlisted UDP port: %v", err)
		}
		if err := udpEcho(topo.Clients["staff"], net.JoinHostPort(topo.InetAddr4(addrAllowed).String(), fmt.Sprint(nettest.PortWireGuard))); err != nil {
			t.Errorf("staff to WireGuard (not blocked for staff): %v", err)
		}
		for _, a := range []netip.Addr{topo.InetAddr4(addrDoH), topo.InetAddr6(addrDoH)} {
			if out, err := g.curl("pupil", "https", "doh.test", a); err == nil {
				t.Errorf("pupil reached the listed DoH resolver at %s: %q", a, out)
			}
			if out, err := g.curl("staff", "https", "doh.test", a); err != nil {
				t.Errorf("staff to doh.test at %s (not on staff's lists): %q, %v", a, out, err)
			}
		}
	})

	t.Run("guest isolation", func(t *testing.T) {
		// A staff machine with a service the guest must not find.
		l, err := topo.Clients["staff"].Listen("tcp", ":8000")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		staffClient := seg["staff"].Client4.String()
		// The pupil finds it (it is really there); the guest finds nothing anywhere inside.
		if open := nmapOpen(t, topo.Clients["pupil"], staffClient); !open["8000"] {
			t.Errorf("nmap from pupil to %s: open %v, want 8000 (the control)", staffClient, open)
		}
		// Port 53 answers at every address: each client DNS query, to any address, is
		// redirected to schoolgate's own resolver. Nothing else is open: not the staff
		// machine's service, not the gateways' web UI.
		for _, target := range []string{staffClient, seg["staff"].Gateway4.Addr().String(),
			seg["pupil"].Gateway4.Addr().String(), seg["guest"].Gateway4.Addr().String()} {
			if open := nmapOpen(t, topo.Clients["guest"], target); len(open) != 1 || !open["53"] {
				t.Errorf("nmap from guest to %s: open ports %v, want only 53 (schoolgate's resolver)", target, open)
			}
		}
		out, err := g.curl("guest", "https", "allowed.test", topo.InetAddr4(addrAllowed))
		if err != nil || !strings.Contains(out, "hello from allowed.test") {
			t.Errorf("guest to the internet: %q, %v", out, err)
		}
	})

	t.Run("events", func(t *testing.T) {
		pupilMAC := seg["pupil"].ClientMAC.String()
		byPupil := func(source, name string) func(apiEvent) bool {
			return func(e apiEvent) bool {
				return e.Source == source && e.Name == name && e.Segment == "pupil" && e.Profile == "pupils" && e.MAC == pupilMAC
			}
		}
		for _, tc := range []struct{ source, name string }{{"sni", "blocked.test"}, {"quic", "blocked.test"}, {"http", "blocked.test"}} {
			g.events(t, "action=block&source="+tc.source, func(evs []apiEvent) bool { return hasEvent(evs, byPupil(tc.source, tc.name)) })
		}
		g.events(t, "action=allow&source=quic", func(evs []apiEvent) bool { return hasEvent(evs, byPupil("quic", "allowed.test")) })

		// The kernel's drops by port and address are events too: what a DSL needs to see
		// when a pupil's device tries a VPN or its own resolver.
		allowedAddr := topo.InetAddr4(addrAllowed).String()
		for _, want := range []apiEvent{
			{Name: net.JoinHostPort(inet.DoT.Addr().String(), "853"), Rule: "DNS over TLS/QUIC tcp/853", Category: "bypass"},
			{Name: net.JoinHostPort(allowedAddr, "51820"), Rule: "VPN port udp/51820", Category: "bypass"},
			{Name: net.JoinHostPort(topo.InetAddr4(addrDoH).String(), "443"), List: "doh", Rule: topo.InetAddr4(addrDoH).String() + "/32", Category: "bypass"},
			{Name: net.JoinHostPort(topo.InetAddr6(addrDoH).String(), "443"), List: "doh", Rule: topo.InetAddr6(addrDoH).String() + "/128", Category: "bypass"},
		} {
			g.events(t, "action=block&source=ip&profile=pupils", func(evs []apiEvent) bool {
				return hasEvent(evs, func(e apiEvent) bool {
					return e.Name == want.Name && e.Rule == want.Rule && e.List == want.List && e.Category == want.Category &&
						e.Segment == "pupil" && e.MAC == pupilMAC && e.Tier == "profile"
				})
			})
		}
		g.events(t, "action=block&source=ip&segment=guest", func(evs []apiEvent) bool {
			return hasEvent(evs, func(e apiEvent) bool {
				return e.Tier == "guest" && e.MAC == seg["guest"].ClientMAC.String() && strings.HasPrefix(e.Name, seg["staff"].Client4.String()+":")
			})
		})
	})

	t.Run("status", func(t *testing.T) {
		body, err := g.d.get("/api/status")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Components []struct{ Name, State, Detail string }
			PacketPath struct {
				QueueMode string `json:"queue_mode"`
				Segments  []struct {
					Segment           string
					Packets, HandOffs uint64
					Drops             map[string]uint64
				}
				SlowPath struct{ Flows, Blocked, Unnamed uint64 } `json:"slow_path"`
			} `json:"packet_path"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if !hasComponent(st.Components, "packet path", "running") {
			t.Errorf("no running packet path component in /api/status: %+v", st.Components)
		}
		pp := st.PacketPath
		if pp.QueueMode == "" || pp.SlowPath.Flows == 0 || pp.SlowPath.Blocked == 0 || pp.SlowPath.Unnamed == 0 {
			t.Errorf("packet_path = %+v, want a queue mode and judged, blocked and unnamed flows", pp)
		}
		// What the subtests above did shows in the pupil segment's counters.
		for _, s := range pp.Segments {
			if s.Segment != "pupil" {
				continue
			}
			if s.Packets == 0 || s.HandOffs == 0 {
				t.Errorf("pupil counters %+v: want packets and hand-offs", s)
			}
			for _, r := range []string{"dot", "vpn", "address", "flow"} {
				if s.Drops[r] == 0 {
					t.Errorf("pupil drops %v: none for %s", s.Drops, r)
				}
			}
		}
	})

	t.Run("reload", func(t *testing.T) {
		// Profiles and their bypass rules apply at once; a change to the network side (here
		// who reaches the web UI) waits for a restart, and the status says so.
		cfg := gatewayConfig(topo, inet, strings.NewReplacer(
			"block: [blocked.test], bypass: {vpn_ports: [udp/51820]", "block: [blocked.test, allowed.test], bypass: {vpn_ports: [udp/51820, udp/1194]",
		).Replace(gatewayProfiles))
		cfg = strings.Replace(cfg, `http: {listen: "0.0.0.0:8080"}`, `http: {listen: "0.0.0.0:8080", admin_segments: [staff, pupil]}`, 1)
		g.d.reload(t, cfg)
		if out, err := g.curl("pupil", "https", "allowed.test", topo.InetAddr4(addrAllowed)); err == nil {
			t.Errorf("pupil reached allowed.test after the reload blocked it: %q", out)
		}
		if err := udpEcho(topo.Clients["pupil"], net.JoinHostPort(topo.InetAddr4(addrAllowed).String(), fmt.Sprint(nettest.PortOpenVPN))); err == nil {
			t.Errorf("pupil's OpenVPN got through after the reload blocked udp/1194")
		}
		if out, err := g.curl("staff", "https", "allowed.test", topo.InetAddr4(addrAllowed)); err != nil {
			t.Errorf("staff to allowed.test after the reload: %q, %v", out, err)
		}
		var st struct {
			Components []struct{ Name, State, Detail string }
		}
		body, _ := g.d.get("/api/status")
		json.Unmarshal([]byte(body), &st)
		if !hasComponent(st.Components, "packet path", "degraded") || !strings.Contains(body, "restart needed") {
			t.Errorf("after a reload that changes a segment, status = %+v; want the packet path degraded, restart needed", st.Components)
		}
	})

	// A clean stop removes schoolgate's table and programs, and leaves the foreign table.
	if err := g.d.stop(); err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	out, _ := topo.Appliance.Command(ctx, "nft", "list", "tables").CombinedOutput()
	if strings.Contains(string(out), "schoolgate") {
		t.Errorf("nftables table left after a clean stop: %s", out)
	}
	if !strings.Contains(string(out), "table inet foreign") {
		t.Errorf("the foreign nftables table is gone after a clean stop: %s", out)
	}
	out, _ = topo.Appliance.Command(ctx, "nft", "list", "table", "inet", "foreign").CombinedOutput()
	if !strings.Contains(string(out), "chain keep") || !strings.Contains(string(out), "hook forward priority filter + 10; policy accept;") {
		t.Errorf("the foreign table changed: %s", out)
	}
	if _, err := os.Stat(g.d.pin); err == nil {
		t.Errorf("pinned programs left after a clean stop")
	}
}

// dial connects from ns with a 2 s timeout.
func dial(ns *nettest.NS, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return ns.DialContext(ctx, network, addr)
}

// udpEcho sends a datagram to target from ns and waits up to a second for the echo.
func udpEcho(ns *nettest.NS, target string) error {
	c, err := dial(ns, "udp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte("schoolgate echo test")
	buf := make([]byte, 64)
	for range 2 {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == string(msg) {
			return nil
		}
	}
	return fmt.Errorf("no echo from %s", target)
}

// nmapOpen runs a TCP connect scan of common service ports (and the web UI's) from ns
// and returns the open ones.
func nmapOpen(t *testing.T, ns *nettest.NS, target string) map[string]bool {
	t.Helper()
	out, err := ns.Command(context.Background(), "nmap", "-Pn", "-n", "-sT", "-T5", "--max-retries", "1",
		"--host-timeout", "30s", "-p", "21-23,25,53,80,110,139,143,443,445,3000,3389,5353,8000,8080,8443", "-oG", "-", target).CombinedOutput()
	if err != nil {
		t.Fatalf("nmap %s: %v\n%s", target, err, out)
	}
	open := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		_, ports, ok := strings.Cut(line, "Ports: ")
		if !ok {
			continue
		}
		for _, p := range strings.Split(ports, ", ") {
			f := strings.Split(p, "/")
			if len(f) > 1 && f[1] == "open" {
				open[f[0]] = true
			}
		}
	}
	return open
}

func hasComponent(cs []struct{ Name, State, Detail string }, name, state string) bool {
	for _, c := range cs {
		if c.Name == name && c.State == state {
			return true
		}
	}
	return false
}
