package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/datapath/internal/nettest"
)

// keptConn is an HTTPS connection kept open across requests, to show what happens to an
// established flow when the daemon dies.
type keptConn struct {
	c  *tls.Conn
	br *bufio.Reader
}

func dialKept(t *testing.T, g *gatewayTest, client, name string, i int) *keptConn {
	t.Helper()
	raw, err := dial(g.topo.Clients[client], "tcp", net.JoinHostPort(g.topo.InetAddr4(i).String(), "443"))
	if err != nil {
		t.Fatal(err)
	}
	conf := g.inet.TLSConfig()
	conf.ServerName = name
	conf.NextProtos = []string{"http/1.1"}
	c := tls.Client(raw, conf)
	t.Cleanup(func() { c.Close() })
	return &keptConn{c: c, br: bufio.NewReader(c)}
}

// get sends one request on the kept connection and reads the response within 3 s.
func (k *keptConn) get(name string) (string, error) {
	k.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", name); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPrivilegedRestart kills the daemon with SIGKILL: the kernel keeps enforcing the
// verdicts it has, new flows follow the failure mode, and a new daemon takes over the
// pinned state without a gap.
func TestPrivilegedRestart(t *testing.T) {
	for _, mode := range []string{"closed", "open"} {
		t.Run("failure mode "+mode, func(t *testing.T) { testRestart(t, mode) })
	}
}

func testRestart(t *testing.T, mode string) {
	g := newGatewayTest(t)
	topo := g.topo
	cfg := strings.Replace(gatewayConfig(topo, g.inet, gatewayProfiles), "appliance: {", "appliance: {failure_mode: "+mode+", ", 1)
	g.d = startDaemon(t, topo, g.dir, cfg)

	allowed := func(client string) error {
		out, err := g.curl(client, "https", "allowed.test", topo.InetAddr4(addrAllowed))
		if err == nil && !strings.Contains(out, "hello from allowed.test") {
			err = fmt.Errorf("unexpected page %q", out)
		}
		return err
	}
	blocked := func() bool {
		_, err := g.curl("pupil", "https", "blocked.test", topo.InetAddr4(addrBlocked))
		return err != nil
	}
	kept := dialKept(t, g, "pupil", "allowed.test", addrAllowed)
	if body, err := kept.get("allowed.test"); err != nil || !strings.Contains(body, "hello from allowed.test") {
		t.Fatalf("kept connection before the kill: %q, %v", body, err)
	}
	if !blocked() {
		t.Fatalf("pupil reached blocked.test before the kill")
	}

	g.d.kill()
	out, _ := topo.Appliance.Command(context.Background(), "nft", "list", "tables").CombinedOutput()
	if !strings.Contains(string(out), "schoolgate") {
		t.Errorf("the nftables table went with the killed daemon: %s", out)
	}
	if _, err := os.Stat(g.d.pin); err != nil {
		t.Errorf("pinned state went with the killed daemon: %v", err)
	}
	// The established flow's verdict is in the kernel: it carries on without the daemon.
	if body, err := kept.get("allowed.test"); err != nil || !strings.Contains(body, "hello from allowed.test") {
		t.Errorf("kept connection after kill -9: %q, %v", body, err)
	}
	// New flows cannot be judged by name: the failure mode decides.
	switch mode {
	case "closed":
		if err := allowed("staff"); err == nil {
			t.Errorf("failure mode closed: a new HTTPS flow passed with no daemon")
		}
		if !blocked() {
			t.Errorf("failure mode closed: pupil reached blocked.test with no daemon")
		}
	case "open":
		if err := allowed("pupil"); err != nil {
			t.Errorf("failure mode open: a new HTTPS flow with no daemon: %v", err)
		}
	}

	if mode == "closed" {
		// A daemon that cannot start (a segment's port is missing) leaves the dead one's
		// state enforcing: the kept flow carries on, pupils stay off blocked.test.
		broken := strings.Replace(cfg, "interface: "+topo.Segments["guest"].Interface, "interface: nosuchif0", 1)
		if out := failToStart(t, topo, g.dir, broken); !strings.Contains(out, "nosuchif0") {
			t.Errorf("the failed start does not name the missing interface:\n%s", out)
		}
		if _, err := os.Stat(g.d.pin); err != nil {
			t.Errorf("a failed start removed the pinned state: %v", err)
		}
		if body, err := kept.get("allowed.test"); err != nil || !strings.Contains(body, "hello from allowed.test") {
			t.Errorf("kept connection after a failed start: %q, %v", body, err)
		}
		if !blocked() {
			t.Errorf("pupil reached blocked.test after a failed start")
		}
	}

	// A new daemon takes over the pinned maps and the table: the kept flow never notices,
	// new flows are judged again.
	g.d = startDaemon(t, topo, g.dir, cfg)
	if body, err := kept.get("allowed.test"); err != nil || !strings.Contains(body, "hello from allowed.test") {
		t.Errorf("kept connection after the restart: %q, %v", body, err)
	}
	if err := allowed("pupil"); err != nil {
		t.Errorf("pupil to allowed.test after the restart: %v", err)
	}
	if !blocked() {
		t.Errorf("pupil reached blocked.test after the restart")
	}
	if err := udpEcho(topo.Clients["pupil"], net.JoinHostPort(topo.InetAddr4(addrAllowed).String(), fmt.Sprint(nettest.PortWireGuard))); err == nil {
		t.Errorf("pupil's WireGuard got through after the restart")
	}
}

// TestPrivilegedFailedStart: a daemon that cannot start on a box where nothing ran before
// leaves nothing behind, so a half-built gateway never forwards unfiltered.
func TestPrivilegedFailedStart(t *testing.T) {
	g := newGatewayTest(t)
	cfg := gatewayConfig(g.topo, g.inet, gatewayProfiles)
	broken := strings.Replace(cfg, "interface: "+g.topo.Segments["guest"].Interface, "interface: nosuchif0", 1)
	failToStart(t, g.topo, g.dir, broken)
	out, _ := g.topo.Appliance.Command(context.Background(), "nft", "list", "tables").CombinedOutput()
	if strings.Contains(string(out), "schoolgate") {
		t.Errorf("a failed start left the nftables table: %s", out)
	}
	if _, err := os.Stat(pinPath(g.dir)); err == nil {
		t.Errorf("a failed start left pinned programs at %s", pinPath(g.dir))
	}
}
