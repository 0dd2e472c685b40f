package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/exceptions"
)

// clientFrom is an HTTP client whose connections come from src, so the daemon sees a client
// of that segment; every request goes to the block page server whatever its URL's host, as
// the DNS answer of a blockpage profile sends it.
func clientFrom(src, blockURL string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	server := strings.TrimPrefix(blockURL, "http://")
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		},
	}}
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values, hdr ...string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBlockPage: a pupil's browser lands on the block page for a blocked name, sees what was
// blocked and why, and asks for a review, which waits for the DSL; guests cannot ask, staff
// are told the site is not blocked for them, and a pupil cannot flood the DSL.
func TestBlockPage(t *testing.T) {
	d := startDaemon(t, startUpstream(t), "-demo")
	pupilC, guestC, staffC := clientFrom(pupil, d.blockURL), clientFrom(guest, d.blockURL), clientFrom(staff, d.blockURL)

	status, page := fetch(t, pupilC, "GET", "http://facebook.com/some/page", nil)
	for _, want := range []string{"This site is blocked", `id="host" class="mono">facebook.com`, "Social networks", `id="profile">pupils`, "Demo School", `id="request-review"`} {
		if !strings.Contains(page, want) {
			t.Errorf("pupil's block page lacks %q:\n%s", want, page)
		}
	}
	if status != http.StatusForbidden {
		t.Errorf("block page status %d, want 403", status)
	}
	if status, page := fetch(t, pupilC, "GET", "http://facebook.com/pixel.gif", nil, "Sec-Fetch-Dest", "image"); status != http.StatusForbidden || page != "" {
		t.Errorf("a blocked image got %d %q, want an empty 403", status, page)
	}

	status, page = fetch(t, pupilC, "POST", "http://facebook.com/review", url.Values{"reason": {"Our media studies project on social media"}})
	if status != http.StatusOK || !strings.Contains(page, "Your request was sent") {
		t.Fatalf("review request: %d\n%s", status, page)
	}

	// The request waits for the DSL in the exceptions store, with who and why.
	xs, err := exceptions.New(exceptions.Config{Path: filepath.Join(d.dataDir, exceptions.FileName), Protected: func(string) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	defer xs.Close()
	pending, err := xs.List(context.Background(), exceptions.Filter{Status: []exceptions.Status{exceptions.Pending}})
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending requests: %+v, %v", pending, err)
	}
	if p := pending[0]; p.Domain != "facebook.com" || p.Source != exceptions.SourceBlockPage || p.Target != "pupils" ||
		p.ClientAddr != pupil || p.Reason != "Our media studies project on social media" {
		t.Errorf("pending request: %+v", p)
	}

	// The packet path's own block page (for a request to a blocked name by address) links
	// to the appliance's address with the site named: the same page and form.
	status, page = fetch(t, pupilC, "GET", "http://127.0.0.1/?site=tiktok.com", nil)
	if status != http.StatusForbidden || !strings.Contains(page, `id="host" class="mono">tiktok.com`) || !strings.Contains(page, `name="site" value="tiktok.com"`) {
		t.Errorf("block page by ?site=: %d\n%s", status, page)
	}

	// A pupil cannot flood the queue.
	codes := []int{}
	for _, name := range []string{"instagram.com", "tiktok.com", "twitter.com"} {
		s, _ := fetch(t, pupilC, "POST", "http://"+name+"/review", url.Values{"reason": {"need it for homework"}})
		codes = append(codes, s)
	}
	if codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Errorf("review statuses %v: the fourth within minutes should be refused", codes)
	}

	// Guests see the reason but cannot ask; staff are told the site is allowed for them.
	status, page = fetch(t, guestC, "GET", "http://bet365.com/", nil)
	if status != http.StatusForbidden || !strings.Contains(page, "Gambling") || strings.Contains(page, `id="request-review"`) {
		t.Errorf("guest block page %d:\n%s", status, page)
	}
	if status, _ := fetch(t, guestC, "POST", "http://bet365.com/review", url.Values{"reason": {"please let me bet"}}); status != http.StatusForbidden {
		t.Errorf("guest review: %d", status)
	}
	if status, page := fetch(t, staffC, "GET", "http://facebook.com/", nil); status != http.StatusOK || !strings.Contains(page, "This site is not blocked") {
		t.Errorf("staff: %d\n%s", status, page)
	}
	// A form posted to the block page from another site is refused before it is read.
	if status, _ := fetch(t, pupilC, "POST", "http://facebook.com/review", url.Values{"reason": {"forged"}},
		"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"); status != http.StatusForbidden {
		t.Errorf("cross-site review: %d", status)
	}
}

// TestWebUIHTTPS: with http.tls on, the web UI is HTTPS with a certificate made at first
// start and kept across restarts; the status shows its fingerprint, and the block page port
// sends a browser that asks for the appliance itself to the HTTPS UI.
func TestWebUIHTTPS(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeDemoConfig(t, dir)
	raw, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), "http:\n", "http:\n  tls: true\n", 1)), 0o644)
	upstream := startUpstream(t)
	d := startDaemon(t, upstream, "-config", cfgPath)
	if !strings.HasPrefix(d.apiURL, "https://") {
		t.Fatalf("the UI is not HTTPS: %s", d.apiURL)
	}
	certPEM, err := os.ReadFile(filepath.Join(d.dataDir, "tls", "web.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(block.Bytes)
	want := strings.ToUpper(hex.EncodeToString(sum[:]))
	var st struct {
		Components []struct{ Name, State, Detail string } `json:"components"`
	}
	d.getJSON(t, "/api/status", &st)
	found := false
	for _, c := range st.Components {
		if c.Name == "http" {
			found = strings.Contains(strings.ReplaceAll(c.Detail, ":", ""), want) && strings.HasPrefix(c.Detail, "https://")
		}
	}
	if !found {
		t.Errorf("status does not show the certificate's fingerprint %s: %+v", want, st.Components)
	}
	// The session cookie of the HTTPS UI is Secure.
	resp, err := d.client.Get(d.apiURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "Secure") || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("login over HTTPS: cookie %q, HSTS %q", c, resp.Header.Get("Strict-Transport-Security"))
	}
	// The block page port redirects a request for the appliance's own address to the UI.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(d.blockURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != strings.TrimSuffix(d.apiURL, "/")+"/" {
		t.Errorf("block page port for the appliance: %d to %q, want %s/", resp.StatusCode, loc, d.apiURL)
	}
	// The certificate is kept across a restart.
	d.stop(t)
	d2 := startDaemonIn(t, d.dataDir, upstream, "-config", cfgPath)
	again, _ := os.ReadFile(filepath.Join(d2.dataDir, "tls", "web.crt"))
	if string(again) != string(certPEM) {
		t.Error("a new certificate was made at restart")
	}
	d2.stop(t)
}
