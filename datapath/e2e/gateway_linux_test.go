package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/datapath/internal/nettest"
)

func init() { runtime.LockOSThread() }

// TestPrivilegedGateway runs the real schoolgated as the gateway of three segments in
// network namespaces, with real clients behind it and a small internet in front.
func TestPrivilegedGateway(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, eBPF, nftables and nfqueue")
	}
	topo := nettest.New(t, nettest.Spec{})
	inet := topo.StartInet(t, nettest.Zone{
		"blocked.test": topo.InetAddrs(0),
		"allowed.test": topo.InetAddrs(1),
	})
	seg := topo.Segments
	gw := func(name string) string { return seg[name].Gateway4.Addr().String() }
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "schoolgate.yaml")
	cfg := fmt.Sprintf(`appliance: {name: Namespace School, wan: %s}
dns:
  listen: 0.0.0.0:53
  upstreams: [{address: "%s"}]
http: {listen: "0.0.0.0:8080"}
segments:
  - {name: staff, interface: %s, subnets: [%s, "%s"], gateway: [%s], profile: staff}
  - {name: pupil, interface: %s, subnets: [%s, "%s"], gateway: [%s], profile: pupils}
  - {name: guest, interface: %s, subnets: [%s, "%s"], gateway: [%s], profile: guest, guest: true}
profiles:
  - {name: staff}
  - {name: pupils, block: [blocked.test]}
  - {name: guest, block: [blocked.test]}
`, topo.WAN.Interface, inet.DNS,
		seg["staff"].Interface, seg["staff"].Gateway4.Masked(), seg["staff"].Gateway6.Masked(), gw("staff"),
		seg["pupil"].Interface, seg["pupil"].Gateway4.Masked(), seg["pupil"].Gateway6.Masked(), gw("pupil"),
		seg["guest"].Interface, seg["guest"].Gateway4.Masked(), seg["guest"].Gateway6.Masked(), gw("guest"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, inet.CAPEM, 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	cmd := topo.Appliance.Command(ctx, daemonBin, "-config", cfgPath, "-data-dir", filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", logs.String())
		}
	})

	// The staff client reaches the API on its gateway once the daemon is up.
	staff := topo.Clients["staff"]
	api := staff.HTTPClient(nettest.ClientOptions{Timeout: 2 * time.Second})
	apiURL := "http://" + net.JoinHostPort(gw("staff"), "8080")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := api.Get(apiURL + "/api/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("dns redirected", func(t *testing.T) {
		// The pupil asks the internet's resolver directly; schoolgate answers.
		out, _ := topo.Clients["pupil"].Command(ctx, "dig", "+short", "+tries=1", "+time=2", "@"+inet.DNS.Addr().String(), "blocked.test").CombinedOutput()
		if strings.TrimSpace(string(out)) != "" {
			t.Errorf("pupil dig blocked.test at the inet resolver = %q, want no address (blocked by schoolgate)", out)
		}
		out, _ = topo.Clients["pupil"].Command(ctx, "dig", "+short", "+tries=1", "+time=2", "@"+inet.DNS.Addr().String(), "allowed.test").CombinedOutput()
		if !strings.Contains(string(out), topo.InetAddr4(1).String()) {
			t.Errorf("pupil dig allowed.test = %q, want %s", out, topo.InetAddr4(1))
		}
	})

	t.Run("sni", func(t *testing.T) {
		curl := func(client, name string, addr netip.Addr) error {
			return topo.Clients[client].Command(ctx, "curl", "-sS", "--max-time", "3", "--cacert", caFile,
				"--resolve", fmt.Sprintf("%s:443:%s", name, addr), "https://"+name+"/").Run()
		}
		if err := curl("pupil", "blocked.test", topo.InetAddr4(0)); err == nil {
			t.Errorf("pupil curl --resolve blocked.test succeeded; want it cut off by SNI")
		}
		if err := curl("pupil", "allowed.test", topo.InetAddr4(1)); err != nil {
			t.Errorf("pupil curl allowed.test: %v", err)
		}
		if err := curl("staff", "blocked.test", topo.InetAddr4(0)); err != nil {
			t.Errorf("staff curl blocked.test: %v", err)
		}
	})

	t.Run("guest isolation", func(t *testing.T) {
		guest := topo.Clients["guest"]
		for _, target := range []string{net.JoinHostPort(gw("guest"), "8080"), net.JoinHostPort(gw("staff"), "8080"),
			net.JoinHostPort(seg["staff"].Client4.String(), "22")} {
			dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := guest.DialContext(dctx, "tcp", target)
			dcancel()
			if err == nil {
				c.Close()
				t.Errorf("guest reached %s", target)
			}
		}
		body, err := get(guest.HTTPClient(nettest.ClientOptions{TLS: inet.TLSConfig(), Hosts: map[string]netip.Addr{"allowed.test": topo.InetAddr4(1)}}), "https://allowed.test/")
		if err != nil || !strings.Contains(body, "hello from allowed.test") {
			t.Errorf("guest to the internet: %q, %v", body, err)
		}
	})

	t.Run("events", func(t *testing.T) {
		var got struct {
			Events []apiEvent `json:"events"`
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			body, err := get(api, apiURL+"/api/events?source=sni&action=block")
			if err == nil {
				json.Unmarshal([]byte(body), &got)
			}
			if len(got.Events) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(got.Events) == 0 {
			t.Fatalf("no sni block events")
		}
		ev := got.Events[0]
		if ev.Name != "blocked.test" || ev.Segment != "pupil" || ev.Profile != "pupils" || ev.MAC != seg["pupil"].ClientMAC.String() {
			t.Errorf("sni event = %+v", ev)
		}
	})

	// A clean stop removes schoolgate's table and programs.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	exited = true
	out, _ := topo.Appliance.Command(context.Background(), "nft", "list", "tables").CombinedOutput()
	if strings.Contains(string(out), "schoolgate") {
		t.Errorf("nftables table left after a clean stop: %s", out)
	}
	if _, err := os.Stat("/sys/fs/bpf/schoolgate"); err == nil {
		t.Errorf("pinned programs left after a clean stop")
	}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
