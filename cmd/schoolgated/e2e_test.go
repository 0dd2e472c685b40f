package main

// End-to-end tests: the real schoolgated binary, a real DNS upstream on loopback, real
// clients (dig and a Go resolver) asking from 127.0.0.1 (staff), 127.0.0.2 (pupils) and
// 127.0.0.3 (guest), and the JSON API.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/config"
)

var daemonBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "schoolgated-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemonBin = filepath.Join(dir, "schoolgated")
	if out, err := exec.Command("go", "build", "-o", daemonBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building schoolgated: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Addresses the test upstream gives. The safe-search targets get the addresses the real
// endpoints have, so answers look like production ones.
var upstreamA = map[string]string{
	"forcesafesearch.google.com.":   "216.239.38.120",
	"restrict.youtube.com.":         "216.239.38.120",
	"restrictmoderate.youtube.com.": "216.239.38.119",
	"strict.bing.com.":              "204.79.197.220",
}

const upstreamDefaultA = "192.0.2.80"

// upstreamHandler answers like the school's upstream resolver would.
var upstreamHandler = dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 300}
	switch q.Qtype {
	case dns.TypeA:
		a := upstreamA[strings.ToLower(q.Name)]
		if a == "" {
			a = upstreamDefaultA
		}
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.ParseIP(a)}}
	case dns.TypeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::80")}}
	case dns.TypeHTTPS:
		rr, _ := dns.NewRR(q.Name + ` 300 IN HTTPS 1 . alpn="h2" ech="AEX+DQBBpQAgACBuSKCx0M3aeWmQH9xXxt05XaKx5jVsV5A0PMt7E4nEDAAEAAEAAQASY2xvdWRmbGFyZS1lY2guY29tAAA="`)
		m.Answer = []dns.RR{rr}
	}
	w.WriteMsg(m)
})

// startUpstream serves DNS on loopback over UDP and TCP.
func startUpstream(t testing.TB) string {
	t.Helper()
	handler := upstreamHandler
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: addr, Net: network, Handler: handler}
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ListenAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("upstream %s did not start", network)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return addr
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type daemonProc struct {
	dataDir  string
	cmd      *exec.Cmd
	dnsAddr  string
	apiURL   string
	blockURL string       // the block page server
	client   *http.Client // trusts the daemon's certificate when the UI is HTTPS
	logs     *syncBuffer
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

// startDaemon runs schoolgated with args plus fresh listen addresses and a data directory,
// and waits until its API answers.
func startDaemon(t testing.TB, upstream string, args ...string) *daemonProc {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), upstream, args...)
}

// startDaemonIn starts the daemon with the given data directory, e.g. that of a daemon
// stopped before, to see what it kept.
func startDaemonIn(t testing.TB, dataDir, upstream string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{
		dnsAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		logs:    &syncBuffer{},
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.apiURL = "http://" + httpAddr
	if upstream != "" {
		args = append(args, "-upstream", upstream)
	}
	d.dataDir = dataDir
	d.blockURL = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	args = append(args, "-listen-dns", d.dnsAddr, "-listen-http", httpAddr, "-data-dir", d.dataDir,
		"-listen-block-page", strings.TrimPrefix(d.blockURL, "http://"))
	d.cmd = exec.Command(daemonBin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	d.client = http.DefaultClient
	for {
		// With http.tls on, the UI is HTTPS with the certificate the daemon makes at first
		// start; the tests trust exactly that one.
		if pem, err := os.ReadFile(filepath.Join(d.dataDir, "tls", "web.crt")); err == nil && d.client == http.DefaultClient {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			d.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			d.apiURL = "https://" + httpAddr
		}
		resp, err := d.client.Get(d.apiURL + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up: %v\n%s", err, d.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks the daemon exits cleanly.
func (d *daemonProc) stop(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exited with %v\n%s", err, d.logs.String())
		}
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("daemon did not stop within 15s")
	}
}

func (d *daemonProc) reload(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// ask sends one query from the given loopback source address.
func ask(src, server, network, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	var local net.Addr = &net.UDPAddr{IP: net.ParseIP(src)}
	if network == "tcp" {
		local = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, Dialer: &net.Dialer{LocalAddr: local, Timeout: 3 * time.Second}}
	r, _, err := c.Exchange(m, server)
	return r, err
}

func summarise(m *dns.Msg) string {
	var parts []string
	parts = append(parts, dns.RcodeToString[m.Rcode])
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			parts = append(parts, "A "+rr.A.String())
		case *dns.AAAA:
			parts = append(parts, "AAAA "+rr.AAAA.String())
		case *dns.CNAME:
			parts = append(parts, "CNAME "+rr.Target)
		case *dns.HTTPS:
			parts = append(parts, "HTTPS "+strings.ReplaceAll(rr.String(), "\t", " "))
		}
	}
	return strings.Join(parts, " ")
}

// writeDemoConfig copies the embedded demo configuration and its lists into dir, so a test
// can change them and reload.
func writeDemoConfig(t testing.TB, dir string) string {
	t.Helper()
	_, fsys := config.Demo()
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "schoolgate.yaml")
	if err := os.WriteFile(path, config.DemoYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	staff = "127.0.0.1"
	pupil = "127.0.0.2"
	guest = "127.0.0.3"
)

// TestEndToEnd runs the daemon on a copy of the demo configuration and checks what each
// profile is answered, over UDP and TCP.
func TestEndToEnd(t *testing.T) {
	upstream := startUpstream(t)
	dir := t.TempDir()
	cfgPath := writeDemoConfig(t, dir)
	d := startDaemon(t, upstream, "-config", cfgPath)

	tests := []struct {
		src, name string
		qtype     uint16
		want      string
	}{
		{staff, "example.org", dns.TypeA, "NOERROR A " + upstreamDefaultA},
		{pupil, "example.org", dns.TypeAAAA, "NOERROR AAAA 2001:db8::80"},
		// Social networks: blocked for pupils, allowed for staff.
		{staff, "www.facebook.com", dns.TypeA, "NOERROR A " + upstreamDefaultA},
		{pupil, "www.facebook.com", dns.TypeA, "NXDOMAIN"},
		{pupil, "instagram.com", dns.TypeAAAA, "NXDOMAIN"},
		// Gambling blocked for everyone; guests get the null address.
		{staff, "bet365.com", dns.TypeA, "NXDOMAIN"},
		{guest, "bet365.com", dns.TypeA, "NOERROR A 0.0.0.0"},
		{guest, "www.bet365.com", dns.TypeAAAA, "NOERROR AAAA ::"},
		// Games only for pupils; adult for all.
		{pupil, "roblox.com", dns.TypeA, "NXDOMAIN"},
		{staff, "roblox.com", dns.TypeA, "NOERROR A " + upstreamDefaultA},
		{staff, "pornhub.com", dns.TypeA, "NXDOMAIN"},
		// Bypass: VPN providers blocked for every profile.
		{guest, "nordvpn.com", dns.TypeA, "NOERROR A 0.0.0.0"},
		// Protected tier: blocked for everyone.
		{staff, "protected-abuse.test", dns.TypeA, "NXDOMAIN"},
		{guest, "protected-abuse.test", dns.TypeA, "NOERROR A 0.0.0.0"},
		// Safe search, with the target's addresses resolved upstream.
		{pupil, "www.google.com", dns.TypeA, "NOERROR CNAME forcesafesearch.google.com. A 216.239.38.120"},
		{staff, "www.google.co.uk", dns.TypeA, "NOERROR CNAME forcesafesearch.google.com. A 216.239.38.120"},
		{pupil, "www.youtube.com", dns.TypeA, "NOERROR CNAME restrict.youtube.com. A 216.239.38.120"},
		{staff, "www.youtube.com", dns.TypeA, "NOERROR CNAME restrictmoderate.youtube.com. A 216.239.38.119"},
		{guest, "m.youtube.com", dns.TypeA, "NOERROR CNAME restrictmoderate.youtube.com. A 216.239.38.119"},
		{guest, "www.bing.com", dns.TypeA, "NOERROR CNAME strict.bing.com. A 204.79.197.220"},
		// An address in no segment is refused, not answered unfiltered.
		{"127.0.0.4", "example.org", dns.TypeA, "REFUSED"},
		{"127.0.0.4", "facebook.com", dns.TypeA, "REFUSED"},
		// Canaries.
		{pupil, "use-application-dns.net", dns.TypeA, "NXDOMAIN"},
		{staff, "mask.icloud.com", dns.TypeAAAA, "NXDOMAIN"},
		{guest, "mask-h2.icloud.com", dns.TypeA, "NXDOMAIN"},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			r, err := ask(tt.src, d.dnsAddr, network, tt.name, tt.qtype)
			if err != nil {
				t.Errorf("%s %s %s: %v", network, tt.src, tt.name, err)
				continue
			}
			if got := summarise(r); got != tt.want {
				t.Errorf("%s from %s: %s %s: got %q, want %q", network, tt.src, tt.name,
					dns.TypeToString[tt.qtype], got, tt.want)
			}
		}
	}

	// ECH is stripped from HTTPS records for pupils.
	r, err := ask(pupil, d.dnsAddr, "udp", "cdn.example.net", dns.TypeHTTPS)
	if err != nil || !strings.Contains(summarise(r), `alpn="h2"`) || strings.Contains(summarise(r), "ech=") {
		t.Errorf("pupil HTTPS record: got %v %v, want alpn kept and ech removed", r, err)
	}

	// The blocked answer says why, in an Extended DNS Error that dig shows.
	out := dig(t, pupil, d.dnsAddr, "www.facebook.com")
	if !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, "EDE: 15 (Blocked)") ||
		!strings.Contains(out, "category social (profile pupils)") {
		t.Errorf("dig from a pupil:\n%s", out)
	}
	if out := dig(t, staff, d.dnsAddr, "www.facebook.com"); !strings.Contains(out, "status: NOERROR") {
		t.Errorf("dig from staff:\n%s", out)
	}

	// Explain agrees with what DNS did.
	var ex struct {
		Action, Tier, Segment, Profile, Category, List, Rule, Summary string
		Steps                                                         []string
	}
	d.getJSON(t, "/api/explain?client=127.0.0.2&name=www.facebook.com", &ex)
	if ex.Action != "block" || ex.Tier != "profile" || ex.Segment != "pupils" || ex.Category != "social" ||
		ex.Rule != "facebook.com" || len(ex.Steps) == 0 {
		t.Errorf("explain: %+v", ex)
	}
	d.getJSON(t, "/api/explain?client=127.0.0.2&name=www.google.com", &ex)
	if ex.Action != "rewrite" || !strings.Contains(ex.Summary, "forcesafesearch.google.com") {
		t.Errorf("explain safe search: %+v", ex)
	}

	// The events API shows what was asked, filtered.
	events := d.waitEvents(t, "/api/events?client=127.0.0.2&name=facebook&action=block", func(evs []apiEvent) bool {
		return len(evs) > 0
	})
	e := events[0]
	if e.Segment != "pupils" || e.Profile != "pupils" || e.Source != "dns" || e.Category != "social" ||
		e.Name != "www.facebook.com" || e.Count < 2 {
		t.Errorf("event: %+v (want pupils/social www.facebook.com, asked over UDP, TCP and dig: count ≥ 2)", e)
	}
	staffEvents := d.waitEvents(t, "/api/events?segment=staff&name=facebook", func(evs []apiEvent) bool { return len(evs) > 0 })
	for _, e := range staffEvents {
		if e.Action != "allow" || e.Segment != "staff" {
			t.Errorf("staff event: %+v", e)
		}
	}
	for url, want := range map[string]string{
		"/api/events?action=explode":              "action",
		"/api/events?cursor=not-a-cursor":         "cursor",
		"/api/explain?client=pupil&name=x.org":    "client",
		"/api/explain?client=127.0.0.2&name=a..b": "name",
		"/api/explain?client=127.0.0.2":           "name",
	} {
		var bad struct{ Error string }
		if code := d.getJSONStatus(t, url, &bad); code != http.StatusBadRequest || !strings.Contains(bad.Error, want) {
			t.Errorf("%s: got %d %q, want 400 naming %q", url, code, bad.Error, want)
		}
	}

	// Status: components, lists and per-segment counters.
	var st struct {
		Components []struct{ Name, State string }
		Lists      []struct {
			Name    string
			Entries int
		}
		Segments []struct {
			Segment          string
			Queries, Blocked uint64
		}
	}
	d.getJSON(t, "/api/status", &st)
	states := map[string]string{}
	for _, c := range st.Components {
		states[c.Name] = c.State
	}
	for _, name := range []string{"lists", "policy", "dns", "eventlog", "http"} {
		if states[name] != "running" {
			t.Errorf("component %s: state %q", name, states[name])
		}
	}
	for _, s := range st.Segments {
		if s.Segment == "pupils" && (s.Queries == 0 || s.Blocked == 0) {
			t.Errorf("pupils counters: %+v", s)
		}
	}
	if len(st.Lists) < 10 {
		t.Errorf("status lists: %+v", st.Lists)
	}

	t.Run("reload with a broken config keeps the old one", func(t *testing.T) {
		good, _ := os.ReadFile(cfgPath)
		broken := strings.Replace(string(good), "block_categories: [adult, gambling, drugs,", "block_categories: [porn, gambling, drugs,", 1)
		if broken == string(good) {
			t.Fatal("could not break the config")
		}
		os.WriteFile(cfgPath, []byte(broken), 0o644)
		defer os.WriteFile(cfgPath, good, 0o644)
		d.reload(t)
		waitFor(t, "reload refused in logs", func() bool { return strings.Contains(d.logs.String(), "reload refused") })
		var st struct {
			Config struct {
				LastReloadError string `json:"last_reload_error"`
			}
		}
		d.getJSON(t, "/api/status", &st)
		if !strings.Contains(st.Config.LastReloadError, `unknown category "porn"`) || !strings.Contains(st.Config.LastReloadError, "line ") {
			t.Errorf("status last_reload_error: %q (want the field, line and reason)", st.Config.LastReloadError)
		}
		for _, q := range []struct{ src, name, want string }{
			{pupil, "www.facebook.com", "NXDOMAIN"}, {pupil, "pornhub.com", "NXDOMAIN"},
			{staff, "www.facebook.com", "NOERROR A " + upstreamDefaultA},
		} {
			r, err := ask(q.src, d.dnsAddr, "udp", q.name, dns.TypeA)
			if err != nil || summarise(r) != q.want {
				t.Errorf("after refused reload, %s %s: got %v %v, want %s", q.src, q.name, r, err, q.want)
			}
		}
	})

	t.Run("reload with a changed list swaps without failed queries", func(t *testing.T) {
		if r, _ := ask(pupil, d.dnsAddr, "udp", "newly-social.example", dns.TypeA); r == nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("before the change newly-social.example should resolve: %v", r)
		}
		var failures, total atomic.Int64
		var lastErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, src := range []string{staff, pupil, guest, pupil} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					total.Add(1)
					r, err := ask(src, d.dnsAddr, "udp", "wikipedia.org", dns.TypeA)
					if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
						failures.Add(1)
						lastErr.Store(fmt.Sprint(r, err))
					}
				}
			}()
		}
		social := filepath.Join(dir, "lists", "social.txt")
		b, err := os.ReadFile(social)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(social, append(b, []byte("\nnewly-social.example\n")...), 0o644)
		time.Sleep(200 * time.Millisecond)
		d.reload(t)
		waitFor(t, "the new list entry to take effect", func() bool {
			r, err := ask(pupil, d.dnsAddr, "udp", "www.newly-social.example", dns.TypeA)
			return err == nil && r.Rcode == dns.RcodeNameError
		})
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if failures.Load() != 0 {
			t.Errorf("%d of %d queries failed during the reload; last: %v", failures.Load(), total.Load(), lastErr.Load())
		}
		if total.Load() < 50 {
			t.Errorf("only %d queries were sent during the reload", total.Load())
		}
		if r, _ := ask(staff, d.dnsAddr, "udp", "newly-social.example", dns.TypeA); r == nil || r.Rcode != dns.RcodeSuccess {
			t.Errorf("staff (social allowed) should still resolve the new entry: %v", r)
		}
	})

	d.stop(t)

	t.Run("audit trail", func(t *testing.T) {
		// Every change the daemon made is in the audit trail, chained.
		l, err := audit.New(audit.Config{Path: filepath.Join(d.dataDir, audit.FileName)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		entries, err := l.List(context.Background(), audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			actions = append(actions, e.Action)
			switch e.Action {
			case "config.change":
				if !strings.Contains(e.Detail, "+  - name: pupils") {
					t.Errorf("first configuration entry lacks the configuration: %q", e.Detail)
				}
			case "config.reload.refused":
				if !strings.Contains(e.Summary, `unknown category "porn"`) {
					t.Errorf("refused reload entry: %q", e.Summary)
				}
			}
		}
		want := []string{"daemon.start", "config.change", "config.reload.refused", "config.reload", "daemon.stop"}
		if strings.Join(actions, " ") != strings.Join(want, " ") {
			t.Errorf("audit actions = %v, want %v", actions, want)
		}
		if res, err := l.Verify(context.Background()); err != nil || !res.OK {
			t.Errorf("audit chain: %+v, %v", res, err)
		}
	})
}

// TestDemoMode starts the daemon exactly as `make run` does (apart from the addresses) and
// checks that it tells the user how to try it and filters per profile.
func TestDemoMode(t *testing.T) {
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-demo")
	for _, q := range []struct{ src, name, want string }{
		{staff, "facebook.com", "NOERROR A " + upstreamDefaultA},
		{pupil, "facebook.com", "NXDOMAIN"},
		{guest, "bet365.com", "NOERROR A 0.0.0.0"},
	} {
		r, err := ask(q.src, d.dnsAddr, "udp", q.name, dns.TypeA)
		if err != nil || summarise(r) != q.want {
			t.Errorf("demo %s %s: got %v %v, want %s", q.src, q.name, r, err, q.want)
		}
	}
	waitFor(t, "the demo help text", func() bool { return strings.Contains(d.logs.String(), "schoolgate demo is running") })
	if !strings.Contains(d.logs.String(), "dig @127.0.0.1 -p ") {
		t.Errorf("demo help lacks dig examples:\n%s", d.logs.String())
	}
	d.stop(t)
}

func TestBadConfigRefusedAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("segments:\n  - name: staff\n    profile: nobody\n"), 0o644)
	out, err := exec.Command(daemonBin, "-config", path, "-data-dir", t.TempDir()).CombinedOutput()
	if err == nil {
		t.Fatalf("daemon started with a bad config:\n%s", out)
	}
	if !strings.Contains(string(out), "line 3") || !strings.Contains(string(out), "segments[0].profile") {
		t.Errorf("error does not name the field and line:\n%s", out)
	}
}

// dig runs the real dig client from src, or skips the check where dig is not installed.
func dig(t *testing.T, src, server, name string) string {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (Debian package bind9-dnsutils; `make test` installs it as root)")
	}
	host, port, _ := net.SplitHostPort(server)
	out, err := exec.Command("dig", "@"+host, "-p", port, "-b", src, "+tries=1", "+time=3", name).CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	return string(out)
}

type apiEvent struct {
	Client, Segment, Profile, Source, Name, QType, Action, Tier, Category string
	Count                                                                 int
}

func (d *daemonProc) waitEvents(t *testing.T, path string, ok func([]apiEvent) bool) []apiEvent {
	t.Helper()
	var page struct{ Events []apiEvent }
	waitFor(t, "events at "+path, func() bool {
		page.Events = nil
		d.getJSON(t, path, &page)
		return ok(page.Events)
	})
	return page.Events
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemonProc) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	if code := d.getJSONStatus(t, path, v); code != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, code)
	}
}

// getJSONStatus asks the daemon's API with its token, as the admin CLI on the box does.
func (d *daemonProc) getJSONStatus(t testing.TB, path string, v any) int {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(d.dataDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", d.apiURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decoding: %v", path, err)
	}
	return resp.StatusCode
}

// TestDNSOverTLSUpstream forwards allowed names to an upstream over DNS over TLS whose
// certificate comes from the school's own CA (tls_ca), and checks the name is verified.
func TestDNSOverTLSUpstream(t *testing.T) {
	dir := t.TempDir()
	caPEM, cert := testCertificate(t, "dot.test")
	caPath := filepath.Join(dir, "trust-ca.pem")
	os.WriteFile(caPath, caPEM, 0o644)
	port := freePort(t)
	srv := &dns.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Net: "tcp-tls", Handler: upstreamHandler,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ListenAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })

	for _, tt := range []struct {
		serverName string
		want       string
	}{
		{"dot.test", "NOERROR A " + upstreamDefaultA},
		{"wrong-name.test", "SERVFAIL"}, // the certificate does not match: nothing is forwarded
	} {
		t.Run(tt.serverName, func(t *testing.T) {
			cfgPath := writeDemoConfig(t, t.TempDir())
			b, _ := os.ReadFile(cfgPath)
			cfg := strings.Replace(string(b), "    - address: tls://1.1.1.1:853\n      tls_server_name: cloudflare-dns.com",
				fmt.Sprintf("    - address: tls://127.0.0.1:%d\n      tls_server_name: %s\n      tls_ca: %s", port, tt.serverName, caPath), 1)
			if cfg == string(b) {
				t.Fatal("demo upstream not found in the demo config")
			}
			os.WriteFile(cfgPath, []byte(cfg), 0o644)
			d := startDaemon(t, "", "-config", cfgPath)
			r, err := ask(staff, d.dnsAddr, "udp", "example.org", dns.TypeA)
			if err != nil || summarise(r) != tt.want {
				t.Errorf("got %v %v, want %s", r, err, tt.want)
			}
			if r, _ := ask(pupil, d.dnsAddr, "udp", "facebook.com", dns.TypeA); r == nil || r.Rcode != dns.RcodeNameError {
				t.Errorf("blocked names are answered whatever the upstream: %v", r)
			}
			d.stop(t)
		})
	}
}

// testCertificate makes a throwaway CA and a server certificate for name signed by it.
func testCertificate(t *testing.T, name string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "schoolgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestParseUpstream(t *testing.T) {
	for in, want := range map[string]config.Upstream{
		"192.0.2.53:53":               {Address: "192.0.2.53:53"},
		"tls://1.1.1.1:853":           {Address: "tls://1.1.1.1:853", TLSServerName: "1.1.1.1"},
		"tls://[2606:4700::1111]:853": {Address: "tls://[2606:4700::1111]:853", TLSServerName: "2606:4700::1111"},
	} {
		got, err := parseUpstream(in)
		if err != nil || got != want {
			t.Errorf("parseUpstream(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := parseUpstream("1.1.1.1"); err == nil {
		t.Error("an address without a port was accepted")
	}
}
