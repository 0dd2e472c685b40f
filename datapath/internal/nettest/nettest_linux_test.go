package nettest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The test goroutines never switch namespaces themselves (Do uses goroutines of its own),
// but keep the main thread pinned as DESIGN §5 asks of packages that use namespaces.
func init() { runtime.LockOSThread() }

func TestPrivilegedTopology(t *testing.T) {
	topo := New(t, Spec{})
	inet := topo.StartInet(t, Zone{"example.com": topo.InetAddrs(0), "School.Test.": topo.InetAddrs(1)})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	if got := len(topo.Segments); got != 3 {
		t.Fatalf("default topology has %d segments, want 3", got)
	}
	if !topo.Segments["guest"].Guest || topo.Segments["pupil"].Gateway4.String() != "10.20.0.1/24" {
		t.Fatalf("default segments: %+v", topo.Segments)
	}

	// The appliance answers TCP on every gateway address.
	l, err := topo.Appliance.Listen("tcp", ":7777")
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
			c.Write([]byte("gw"))
			c.Close()
		}
	}()

	for _, s := range topo.Spec.Segments {
		seg := topo.Segments[s.Name]
		for _, gw := range []netip.Addr{seg.Gateway4.Addr(), seg.Gateway6.Addr()} {
			if err := pingWithin(seg.Client, gw, 3*time.Second); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
			if got, err := readFrom(ctx, seg.Client, "tcp", netip.AddrPortFrom(gw, 7777).String()); err != nil || got != "gw" {
				t.Errorf("%s: tcp to gateway %s: got %q, %v", s.Name, gw, got, err)
			}
		}
		// The client's eth0 has the address and MAC the topology promises.
		out, err := seg.Client.Command(ctx, "ip", "-br", "link", "show", "eth0").Output()
		if err != nil || !strings.Contains(string(out), seg.ClientMAC.String()) {
			t.Errorf("%s: eth0 is %q (%v), want MAC %s", s.Name, out, err, seg.ClientMAC)
		}
	}

	// Without NAT the internet has no way back to a school's private addresses.
	pupil := topo.Clients["pupil"]
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	if c, err := pupil.DialContext(short, "tcp", netip.AddrPortFrom(topo.InetAddr4(0), 80).String()); err == nil {
		c.Close()
		t.Errorf("reached the internet without NAT")
	}
	cancelShort()

	if err := topo.PlainNAT(); err != nil {
		t.Fatal(err)
	}
	for _, s := range topo.Spec.Segments {
		client := topo.Clients[s.Name]
		for fam, addr := range map[string]netip.Addr{"v4": topo.InetAddr4(0), "v6": topo.InetAddr6(0)} {
			t.Run(s.Name+"/"+fam, func(t *testing.T) {
				checkServices(t, ctx, client, inet, addr)
			})
		}
	}

	t.Run("dig", func(t *testing.T) {
		for _, tc := range []struct {
			server netip.AddrPort
			name   string
			qtype  string
			want   string
		}{
			{inet.DNS, "example.com", "A", topo.InetAddr4(0).String()},
			{inet.DNS6, "school.test", "AAAA", topo.InetAddr6(1).String()},
			{inet.DNS, "SCHOOL.test", "A", topo.InetAddr4(1).String()},
		} {
			out, err := pupil.Command(ctx, "dig", "+short", "+tries=3", "+time=1",
				"@"+tc.server.Addr().String(), tc.name, tc.qtype).CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
				t.Errorf("dig @%s %s %s = %q (%v), want %q", tc.server.Addr(), tc.name, tc.qtype, got, err, tc.want)
			}
		}
		out, _ := pupil.Command(ctx, "dig", "+tries=3", "+time=1", "@"+inet.DNS.Addr().String(), "unknown.test").CombinedOutput()
		if !strings.Contains(string(out), "NXDOMAIN") {
			t.Errorf("dig unknown.test: want NXDOMAIN, got\n%s", out)
		}
	})

	t.Run("dot", func(t *testing.T) {
		c, err := pupil.DialContext(ctx, "tcp", inet.DoT.String())
		if err != nil {
			t.Fatal(err)
		}
		conf := inet.TLSConfig()
		conf.ServerName = DNSName
		tc := tls.Client(c, conf)
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		dc := &dns.Conn{Conn: tc}
		if err := dc.WriteMsg(new(dns.Msg).SetQuestion("example.com.", dns.TypeAAAA)); err != nil {
			t.Fatal(err)
		}
		resp, err := dc.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Answer) != 1 || resp.Answer[0].(*dns.AAAA).AAAA.String() != topo.InetAddr6(0).String() {
			t.Errorf("DoT answer: %v", resp.Answer)
		}
	})
}

// checkServices reaches every internet service at addr from client.
func checkServices(t *testing.T, ctx context.Context, client *NS, inet *Inet, addr netip.Addr) {
	opts := ClientOptions{TLS: inet.TLSConfig(), Hosts: map[string]netip.Addr{"example.com": addr}}

	for _, url := range []string{"https://example.com/", "http://example.com/"} {
		body, proto, err := get(client.HTTPClient(opts), url)
		if err != nil || body != "hello from example.com" {
			t.Errorf("GET %s: %q (%s), %v", url, body, proto, err)
		}
	}

	h3, closeH3, err := client.HTTP3Client(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeH3()
	if body, proto, err := get(h3, "https://example.com/"); err != nil || body != "hello from example.com" || proto != "HTTP/3.0" {
		t.Errorf("HTTP/3 GET: %q (%s), %v", body, proto, err)
	}

	// A client without SNI (Go sends none for an IP address) completes the handshake.
	c, err := client.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, 443).String())
	if err != nil {
		t.Fatal(err)
	}
	conf := inet.TLSConfig()
	conf.ServerName = addr.String()
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Errorf("handshake without SNI: %v", err)
	} else if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", v)
	}
	tc.Close()

	for _, port := range EchoPorts() {
		dst := netip.AddrPortFrom(addr, uint16(port)).String()
		if got, err := echo(ctx, client, dst); err != nil || got != "ping "+dst {
			t.Errorf("udp echo %s: %q, %v", dst, got, err)
		}
	}
}

func get(c *http.Client, url string) (body, proto string, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Proto, err
}

func pingWithin(ns *NS, dst netip.Addr, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return ns.Ping(ctx, dst)
}

func readFrom(ctx context.Context, ns *NS, network, addr string) (string, error) {
	c, err := ns.DialContext(ctx, network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// echo sends a datagram a few times (the first may race neighbour discovery) and returns
// the first reply.
func echo(ctx context.Context, ns *NS, dst string) (string, error) {
	c, err := ns.DialContext(ctx, "udp", dst)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 100)
	for range 5 {
		c.Write([]byte("ping " + dst))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no echo from %s", dst)
}

// Two topologies built at once use the same addresses and interface names without
// colliding, and leave no namespace and no process behind.
func TestPrivilegedParallelCleanup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	var (
		mu    sync.Mutex
		names []string
		cmds  []*exec.Cmd
	)
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				spec := Spec{Segments: []SegmentSpec{{Name: "a"}, {Name: fmt.Sprintf("only%d", i)}}}
				spec.RouteBack = i == 1
				topo := New(t, spec)
				mu.Lock()
				for _, ns := range topo.allNS() {
					names = append(names, ns.Name)
				}
				mu.Unlock()

				client := topo.Clients["a"]
				if err := pingWithin(client, topo.Segments["a"].Gateway6.Addr(), 3*time.Second); err != nil {
					t.Error(err)
				}
				if seg := topo.Segments[fmt.Sprintf("only%d", i)]; seg.Gateway4.String() != "10.20.0.1/24" {
					t.Errorf("second segment gateway %s, want 10.20.0.1/24", seg.Gateway4)
				}

				// A long command must not outlive the topology.
				cmd := client.Command(context.Background(), "sleep", "60")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				cmds = append(cmds, cmd)
				mu.Unlock()

				if spec.RouteBack {
					// Routes back make the internet reachable without NAT.
					inet := topo.StartInet(t, Zone{"example.com": topo.InetAddrs(3)})
					opts := ClientOptions{Hosts: map[string]netip.Addr{"example.com": topo.InetAddr4(3)}, TLS: inet.TLSConfig()}
					if body, _, err := get(client.HTTPClient(opts), "https://example.com/"); err != nil || body != "hello from example.com" {
						t.Errorf("GET with routes back: %q, %v", body, err)
					}
				}
			})
		}
	})
	if len(names) != 8 {
		t.Fatalf("recorded %d namespaces, want 8", len(names))
	}

	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.Contains(string(out), name) {
			t.Errorf("namespace %s left behind:\n%s", name, out)
		}
	}
	for _, cmd := range cmds {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("sleep 60 exited cleanly; want it killed")
			}
		case <-time.After(5 * time.Second):
			t.Errorf("sleep 60 still running after its topology was removed")
		}
	}
}

func TestPrivilegedDoPanics(t *testing.T) {
	topo := New(t, Spec{Segments: []SegmentSpec{{Name: "x"}}})
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want boom", p)
		}
	}()
	topo.Appliance.Do(func() error { panic("boom") })
}
