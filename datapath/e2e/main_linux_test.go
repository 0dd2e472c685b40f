package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/datapath/internal/nettest"
)

var daemonBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "schoolgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemonBin = filepath.Join(dir, "schoolgated")
	if out, err := exec.Command("go", "build", "-o", daemonBin, "../../cmd/schoolgated").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building schoolgated: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needRoot skips tests that build namespaces, load eBPF and bind nfqueue.
func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: network namespaces, eBPF, nftables and nfqueue")
	}
}

// gatewayConfig is the appliance's configuration for a nettest topology: schoolgate as
// the gateway of the staff, pupil and guest segments, resolving through inet's DNS server.
// profiles is the YAML of the profiles list (staff, pupils and guest must exist).
func gatewayConfig(topo *nettest.Topology, inet *nettest.Inet, profiles string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "appliance: {name: Namespace School, wan: %s}\n", topo.WAN.Interface)
	fmt.Fprintf(&b, "dns:\n  listen: 0.0.0.0:53\n  upstreams: [{address: \"%s\"}]\n", inet.DNS)
	b.WriteString("http: {listen: \"0.0.0.0:8080\"}\nsegments:\n")
	for _, s := range []struct{ seg, profile, extra string }{
		{"staff", "staff", ""}, {"pupil", "pupils", ""}, {"guest", "guest", ", guest: true"},
	} {
		sg := topo.Segments[s.seg]
		fmt.Fprintf(&b, "  - {name: %s, interface: %s, subnets: [%s, \"%s\"], gateway: [%s, \"%s\"], profile: %s%s}\n",
			s.seg, sg.Interface, sg.Gateway4.Masked(), sg.Gateway6.Masked(), sg.Gateway4.Addr(), sg.Gateway6.Addr(), s.profile, s.extra)
	}
	b.WriteString("profiles:\n")
	b.WriteString(profiles)
	return b.String()
}

// daemon is a schoolgated process running in the topology's appliance namespace.
type daemon struct {
	pin     string // the eBPF pin path, unique to the test
	cfgPath string
	dataDir string
	cmd     *exec.Cmd
	logs    *syncBuffer
	api     *http.Client // from the staff client, which may reach the web UI
	apiURL  string
	done    chan struct{}
	err     error
}

// startDaemon writes cfg into dir and runs schoolgated with it (data in dir/data), waiting
// until the staff client reaches its API. The daemon is stopped when the test ends.
//
// It runs in the appliance's network namespace but the host's mounts, as on an appliance:
// its pinned eBPF state lives on the real bpf filesystem and outlives the process. The pin
// path is unique to dir, so a daemon started again in the same dir takes over the state.
func startDaemon(tb testing.TB, topo *nettest.Topology, dir, cfg string) *daemon {
	tb.Helper()
	cfgPath := filepath.Join(dir, "schoolgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	d := &daemon{pin: pinPath(dir), cfgPath: cfgPath, dataDir: filepath.Join(dir, "data"), logs: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = topo.Appliance.NetCommand(context.Background(), daemonBin, "-config", cfgPath,
		"-data-dir", filepath.Join(dir, "data"), "-bpf-pin-path", d.pin)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	tb.Cleanup(func() {
		d.stop()
		os.RemoveAll(d.pin) // after a kill -9 with no restart
		if tb.Failed() {
			tb.Logf("daemon output:\n%s", d.logs.String())
		}
	})
	// The web UI is HTTPS on a gateway, with the certificate the daemon makes on first start:
	// the staff client trusts exactly that certificate, as a technician does after checking
	// its fingerprint.
	d.apiURL = "https://" + net.JoinHostPort(topo.Segments["staff"].Gateway4.Addr().String(), "8080")
	certPath := filepath.Join(dir, "data", "tls", "web.crt")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if d.api == nil {
			var pem []byte
			if pem, err = os.ReadFile(certPath); err == nil {
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(pem)
				d.api = topo.Clients["staff"].HTTPClient(nettest.ClientOptions{Timeout: 2 * time.Second,
					TLS: &tls.Config{RootCAs: pool}})
			}
		}
		var resp *http.Response
		if d.api != nil {
			resp, err = d.api.Get(d.apiURL + "/api/health")
		}
		if err == nil {
			resp.Body.Close()
			// 503 "starting" until the packet path is in place: the UI listens first.
			if resp.StatusCode == http.StatusOK {
				return d
			}
			err = fmt.Errorf("health: %s", resp.Status)
		}
		select {
		case <-d.done:
			tb.Fatalf("daemon exited: %v\n%s", d.err, d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("daemon did not come up: %v\n%s", err, d.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reload writes cfg over the daemon's configuration and sends SIGHUP, waiting until the
// daemon has loaded it.
func (d *daemon) reload(tb testing.TB, cfg string) {
	tb.Helper()
	loaded := func() string {
		var st struct {
			Config struct{ Loaded, LastReload string }
		}
		body, _ := d.get("/api/status")
		json.Unmarshal([]byte(body), &st)
		return st.Config.Loaded + st.Config.LastReload
	}
	before := loaded()
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); loaded() == before; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the daemon did not reload within 10s")
		}
	}
	var st struct{ Config struct{ LastReload string } }
	body, _ := d.get("/api/status")
	json.Unmarshal([]byte(body), &st)
	if st.Config.LastReload != "" {
		tb.Fatalf("reload refused: %s", st.Config.LastReload)
	}
}

// pinPath is the eBPF pin path of the daemons started in dir.
func pinPath(dir string) string {
	h := fnv.New64a()
	h.Write([]byte(dir))
	return fmt.Sprintf("/sys/fs/bpf/schoolgate-e2e-%x", h.Sum64())
}

// failToStart runs schoolgated on cfg (the pin path and data of dir) and expects it to
// exit with an error within 30 s; it returns the output.
func failToStart(tb testing.TB, topo *nettest.Topology, dir, cfg string) string {
	tb.Helper()
	cfgPath := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := topo.Appliance.NetCommand(ctx, daemonBin, "-config", cfgPath,
		"-data-dir", filepath.Join(dir, "data"), "-bpf-pin-path", pinPath(dir)).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		tb.Fatalf("schoolgated started on a configuration it cannot run (err %v):\n%s", err, out)
	}
	return string(out)
}

// stop ends the daemon with SIGTERM (a clean stop) and returns how it exited.
func (d *daemon) stop() error { return d.signal(syscall.SIGTERM) }

// kill ends the daemon with SIGKILL: nothing of its own shutdown runs.
func (d *daemon) kill() { d.signal(syscall.SIGKILL) }

func (d *daemon) signal(sig os.Signal) error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("daemon did not stop within 20s of %v", sig)
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	return d.err
}

// get fetches path from the daemon's API with the API token, as the admin CLI does.
func (d *daemon) get(path string) (string, error) {
	tok, err := os.ReadFile(filepath.Join(d.dataDir, "api-token"))
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest("GET", d.apiURL+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := d.api.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(b), err
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type apiEvent struct {
	Client, MAC, Segment, Profile, Source, Name, Action, Tier, Category, List, Rule string
}
