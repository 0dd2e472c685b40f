package main

// Browser tests: Debian's headless chromium, driven by chromedp, against the real daemon
// that e2e_test.go starts. They check what a person sees (texts on the page, the address
// bar), not internals.
//
// The harness:
//
//	ctx := newBrowser(t)                          // one headless chromium for the test
//	open(t, ctx, d.apiURL+"/login")               // navigate and wait for the load
//	step(t, ctx, "log in", fill("#name", "x"), submit("button[type=submit]"))
//	textOf(t, ctx, "#code-error")                 // visible text of an element
//	loginAs(t, ctx, d, name, password, secret)    // the whole login, TOTP included
//	shot(ctx, t, "dashboard")                     // PNG for docs/screenshots when asked
//
// Every step has its own time limit (stepTimeout), so a page that hangs fails with the name
// of the step, the page's address and visible text rather than at go test's 10 minutes. On
// failure the page's screenshot and HTML are saved; the path is in the test log.
//
// Chromium: exec.LookPath of chromium, chromium-browser or google-chrome. Without one the
// tests skip, unless running as root (CI, `make test` as root installs it), where they fail.

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stepTimeout bounds one step: a navigation, a form submission with its page load, a wait
// for an element. The pages are local, so a step that takes this long is stuck.
const stepTimeout = 20 * time.Second

// browserStartTimeout bounds starting chromium and opening its first tab.
const browserStartTimeout = 60 * time.Second

type browserKey struct{}

// browserState is what newBrowser keeps for the harness's failure reports.
type browserState struct {
	mu      sync.Mutex
	console []string // console messages, uncaught exceptions and browser log entries
}

func (b *browserState) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.console = append(b.console, s)
}

func (b *browserState) messages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

func stateOf(ctx context.Context) *browserState {
	b, _ := ctx.Value(browserKey{}).(*browserState)
	return b
}

// findChromium returns the browser to drive, or skips the test where there is none and the
// test is not running as root (as root, under `make test`, deps installs it).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("chromium not installed: browser tests skip (Debian package chromium; `make test` installs it as root)")
	}
	t.Fatal("chromium not installed, and running as root: `make test` installs it (TEST_PACKAGES in the Makefile)")
	return ""
}

// newBrowser starts a headless chromium with a fresh profile and returns the context of
// its tab. The browser is closed at the end of the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium(t)
	profile := t.TempDir() // removed after the browser has stopped (cleanups run in reverse)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", "en-GB"),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	state := &browserState{}
	// chromedp's own messages can come after the test has ended, so they are kept with the
	// console messages rather than sent to t.Logf.
	logf := func(format string, args ...any) { state.add("chromedp: " + fmt.Sprintf(format, args...)) }
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		cancel()
		acancel()
	})

	// The first action starts the browser and must run on the context NewContext made: the
	// browser lives as long as the context it was started with. A watchdog bounds it.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	case <-time.After(browserStartTimeout):
		cancel()
		t.Fatalf("starting %s: no tab after %v", path, browserStartTimeout)
	}

	ctx = context.WithValue(ctx, browserKey{}, state)
	recordConsole(ctx, state)
	return ctx
}

// recordConsole keeps a tab's console messages and uncaught errors in state, for failf and
// wantNoPageErrors.
func recordConsole(ctx context.Context, state *browserState) {
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s: %s", m.Type, m.Text)
			if m.Source != "" {
				line = fmt.Sprintf("%s (%s): %s", m.Type, m.Source, m.Text)
			}
			if m.URL != "" {
				line += " [" + m.URL + "]"
			}
			state.add(line)
		}
	}()
}

// step runs actions as one step of the test, bounded by stepTimeout. On failure it ends the
// test with what, the error and the page as it is (see failf).
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: not done within %v", err, stepTimeout)
		}
		failf(t, ctx, "%s: %v", what, err)
	}
}

// open navigates to url and waits for the page to load.
func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	step(t, ctx, "open "+url, chromedp.Navigate(url))
}

// fill types value into the input sel, replacing what it held.
func fill(sel, value string) chromedp.Action[chromedp.Void] {
	clear := fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return false; e.value = ""; return true })()`, jsString(sel))
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			ok, err := chromedp.Evaluate[bool](clear)(ctx, t)
			if err == nil && !ok {
				err = fmt.Errorf("no %s to fill", sel)
			}
			return err
		}),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

// submit clicks the button sel and waits for the page that the form's answer loads.
func submit(sel string) chromedp.Action[chromedp.Void] {
	return click(sel)
}

// click clicks sel, a link or a button that loads a page, and waits for that page.
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		if err != nil {
			return fmt.Errorf("clicking %s: %w", sel, err)
		}
		return nil
	})
}

// waitVisible waits until sel is on the page and visible.
func waitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// textOf returns the visible text of sel, trimmed, waiting for it to be visible.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		failf(t, ctx, "reading the text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// textsOf returns the visible text of every element matching sel, trimmed, waiting for at
// least one.
func textsOf(t *testing.T, ctx context.Context, sel string) []string {
	t.Helper()
	step(t, ctx, "waiting for "+sel, waitVisible(sel))
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).map(e => e.innerText.trim())`, jsString(sel))
	texts, err := chromedp.Run(sctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		failf(t, ctx, "reading the texts of %s: %v", sel, err)
	}
	return texts
}

// pageURL returns the address the browser shows.
func pageURL(t *testing.T, ctx context.Context) *url.URL {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Location())
	if err != nil {
		failf(t, ctx, "reading the address: %v", err)
	}
	u, err := url.Parse(s)
	if err != nil {
		failf(t, ctx, "the address %q: %v", s, err)
	}
	return u
}

// wantPath checks the address bar's path (and query, when want has one).
func wantPath(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	u := pageURL(t, ctx)
	got := u.Path
	if strings.Contains(want, "?") {
		got = u.RequestURI()
	}
	if got != want {
		failf(t, ctx, "address is %s, want %s", u, want)
	}
}

// wantText checks that the visible text of sel contains each of wants.
func wantText(t *testing.T, ctx context.Context, sel string, wants ...string) {
	t.Helper()
	got := textOf(t, ctx, sel)
	for _, w := range wants {
		if !strings.Contains(got, w) {
			failf(t, ctx, "%s reads %q, want it to contain %q", sel, got, w)
		}
	}
}

// failf ends the test with the message, the page's address, title and visible text, the
// browser's console, and saves a screenshot and the HTML (their folder is logged).
func failf(t *testing.T, ctx context.Context, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	// The context of the step may have expired; the page is read with a fresh limit.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var b strings.Builder
	if loc, err := chromedp.Run(dctx, chromedp.Location()); err == nil {
		fmt.Fprintf(&b, "\npage: %s", loc)
	}
	if title, err := chromedp.Run(dctx, chromedp.Title()); err == nil {
		fmt.Fprintf(&b, "\ntitle: %s", title)
	}
	if text, err := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err == nil {
		if len(text) > 3000 {
			text = text[:3000] + " …"
		}
		fmt.Fprintf(&b, "\nvisible text:\n%s", indent(text))
	}
	if st := stateOf(ctx); st != nil {
		if msgs := st.messages(); len(msgs) > 0 {
			fmt.Fprintf(&b, "\nbrowser console:\n%s", indent(strings.Join(msgs, "\n")))
		}
	}
	if dir := failureDir(t); dir != "" {
		if png, err := chromedp.Run(dctx, chromedp.FullScreenshot(100)); err == nil {
			os.WriteFile(filepath.Join(dir, "page.png"), png, 0o644)
		}
		if html, err := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("html"))); err == nil {
			os.WriteFile(filepath.Join(dir, "page.html"), []byte(html), 0o644)
		}
		fmt.Fprintf(&b, "\nscreenshot and HTML: %s", dir)
	}
	t.Fatalf("%s%s", msg, b.String())
}

// failureDir is where a failing test's screenshot and HTML go: the test's artifact
// directory with go test -artifacts (kept under -outputdir), else a temporary directory that
// is kept so that it can be looked at after the run.
func failureDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir, err := os.MkdirTemp("", "schoolgate-browser-"+name+"-")
	if err != nil {
		t.Logf("no folder for the failure's screenshot: %v", err)
		return ""
	}
	return dir
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ")
}

// shot saves a full-page PNG of the page as DIR/name.png when SCHOOLGATE_SCREENSHOTS=DIR is
// set (to refresh docs/screenshots/), and does nothing otherwise.
func shot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("SCHOOLGATE_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		failf(t, ctx, "screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	t.Logf("screenshot %s", path)
}

// wantNoPageErrors fails when the browser reported an uncaught script error or a blocked
// resource (a Content-Security-Policy violation): the page is then broken for its users.
func wantNoPageErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	st := stateOf(ctx)
	if st == nil {
		return
	}
	var bad []string
	for _, m := range st.messages() {
		if strings.HasPrefix(m, string(chromedp.ConsoleException)) || strings.Contains(m, "(security)") ||
			strings.Contains(m, "Content Security Policy") {
			bad = append(bad, m)
		}
	}
	if len(bad) > 0 {
		failf(t, ctx, "the browser reported errors on the pages:\n%s", indent(strings.Join(bad, "\n")))
	}
}

// setupLink waits for the one-time setup link the daemon logs at its first start.
func setupLink(t *testing.T, d *daemonProc) string {
	t.Helper()
	re := regexp.MustCompile(`url="?(http://[^"\s]+/setup\?token=[^"\s]+)`)
	var link string
	waitFor(t, "the setup link in the daemon's log", func() bool {
		m := re.FindStringSubmatch(d.logs.String())
		if m != nil {
			link = m[1]
		}
		return m != nil
	})
	return link
}

// TOTP, computed here as an authenticator app would (RFC 6238: HMAC-SHA-1, 6 digits, 30 s).
// The daemon accepts each time step once per account, so totpCode hands out each step of a
// secret at most once, waiting for the next step when the current one was used.
var totpUsed = struct {
	sync.Mutex
	step map[string]int64
}{step: map[string]int64{}}

func totpAt(t *testing.T, secret string, step int64) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.ReplaceAll(secret, " ", "")))
	if err != nil {
		t.Fatalf("the TOTP key %q the page showed is not base32: %v", secret, err)
	}
	mac := hmac.New(sha1.New, key)
	binary.Write(mac, binary.BigEndian, uint64(step))
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

// totpCode returns the code of the current step for secret, first waiting for a step not
// used yet in this test run.
func totpCode(t *testing.T, secret string) string {
	t.Helper()
	totpUsed.Lock()
	now := time.Now()
	step := now.Unix() / 30
	if last, ok := totpUsed.step[secret]; ok && step <= last {
		step = last + 1
	}
	totpUsed.step[secret] = step
	totpUsed.Unlock()
	if wait := time.Unix(step*30, 0).Sub(now); wait > 0 {
		t.Logf("waiting %v for the next TOTP step", wait.Round(time.Second))
		time.Sleep(wait)
	}
	return totpAt(t, secret, step)
}

// wrongTOTP returns a 6-digit code that no step around now accepts.
func wrongTOTP(t *testing.T, secret string) string {
	t.Helper()
	step := time.Now().Unix() / 30
	near := map[string]bool{}
	for s := step - 2; s <= step+2; s++ {
		near[totpAt(t, secret, s)] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (123456+i*111111)%1_000_000)
		if !near[c] {
			return c
		}
	}
}

// loginAs logs in through the login page as a user would: password, then (when totpSecret
// is not empty) the code from the authenticator. It ends on the start page, checked to
// name the account.
func loginAs(t *testing.T, ctx context.Context, d *daemonProc, name, password, totpSecret string) {
	t.Helper()
	open(t, ctx, d.apiURL+"/login")
	step(t, ctx, "log in as "+name,
		fill("#name", name), fill("#password", password), submit(`main button[type="submit"]`))
	if totpSecret != "" {
		wantText(t, ctx, "h1", "Authenticator code")
		step(t, ctx, "give "+name+"'s authenticator code",
			fill("#code", totpCode(t, totpSecret)), submit(`main button[type="submit"]`))
	}
	wantPath(t, ctx, "/")
	if got := textOf(t, ctx, "#account"); got != name {
		failf(t, ctx, "start page names the account %q, want %q", got, name)
	}
}

// logOut uses the header's log out button and checks the login page says so.
func logOut(t *testing.T, ctx context.Context) {
	t.Helper()
	step(t, ctx, "log out", submit(`header form[action="/logout"] button`))
	wantPath(t, ctx, "/login?out=1")
	wantText(t, ctx, "main", "You have logged out.")
}

// TestBrowserFirstRunAndTOTPLogin walks the first start of a new appliance: the technician
// opens the setup link from the log, creates the first account, is made to set up an
// authenticator at the first login, saves the recovery codes and reaches the start page.
// Then: logging out, logging in with a password and the authenticator, a wrong code, and a
// recovery code that works once.
func TestBrowserFirstRunAndTOTPLogin(t *testing.T) {
	ctx := newBrowser(t)
	d := startDaemon(t, "", "-demo")
	const (
		name     = "r.patel"
		password = "Kettle orbit marmalade ferry 71"
	)

	// The setup link from the log opens the form for the first account.
	open(t, ctx, setupLink(t, d))
	wantText(t, ctx, "h1", "Create the first technician account")
	shot(ctx, t, "setup")
	step(t, ctx, "create the first account",
		fill("#name", name), fill("#password", password), fill("#password2", password),
		submit(`main button[type="submit"]`))
	wantPath(t, ctx, "/login")
	wantText(t, ctx, "main", "The account was created. Log in with it now.")

	// The first login of a technician sets up the authenticator: the page shows the key.
	step(t, ctx, "first login", fill("#name", name), fill("#password", password), submit(`main button[type="submit"]`))
	wantText(t, ctx, "h1", "Set up your authenticator")
	secret := textOf(t, ctx, "#totp-secret")
	wantText(t, ctx, "#totp-uri", "otpauth://totp/", "secret="+secret)
	shot(ctx, t, "totp-enrol")
	step(t, ctx, "confirm the authenticator with its code",
		fill("#code", totpCode(t, secret)), submit(`main button[type="submit"]`))

	// The recovery codes are shown once, then the start page.
	wantText(t, ctx, "h1", "Your recovery codes")
	codes := textsOf(t, ctx, "#recovery-codes li")
	if len(codes) != 10 {
		failf(t, ctx, "%d recovery codes shown, want 10: %q", len(codes), codes)
	}
	shot(ctx, t, "recovery-codes")
	step(t, ctx, "continue to the start page", click(`main a[href="/"]`))
	wantPath(t, ctx, "/")
	if got := textOf(t, ctx, "#account"); got != name {
		failf(t, ctx, "start page names the account %q, want %q", got, name)
	}
	if got := textOf(t, ctx, "#role"); got != "technician" {
		failf(t, ctx, "start page gives the role %q, want technician", got)
	}
	wantText(t, ctx, "header .who", name, "technician")
	wantText(t, ctx, "#components-heading", "Components")
	rows := textsOf(t, ctx, "#components tbody tr")
	for _, c := range []string{"config", "lists", "policy", "dns", "eventlog", "http"} {
		found := false
		for _, r := range rows {
			found = found || strings.HasPrefix(r, c+"\t") || strings.HasPrefix(r, c+" ")
		}
		if !found {
			failf(t, ctx, "the components list lacks %s: %q", c, rows)
		}
	}
	for _, r := range rows {
		if strings.HasPrefix(r, "dns") && !strings.Contains(r, "running") {
			failf(t, ctx, "dns is not shown running: %q", r)
		}
	}
	shot(ctx, t, "dashboard")

	// Logged out, the start page sends the browser to the login page.
	logOut(t, ctx)
	open(t, ctx, d.apiURL+"/")
	wantPath(t, ctx, "/login")

	// A wrong authenticator code is refused with a message; a recovery code logs in.
	step(t, ctx, "password", fill("#name", name), fill("#password", password), submit(`main button[type="submit"]`))
	wantText(t, ctx, "h1", "Authenticator code")
	shot(ctx, t, "totp-login")
	step(t, ctx, "a wrong code", fill("#code", wrongTOTP(t, secret)), submit(`main button[type="submit"]`))
	wantText(t, ctx, "#code-error", "wrong")
	if u := pageURL(t, ctx); u.Path == "/" {
		failf(t, ctx, "a wrong code logged in")
	}
	shot(ctx, t, "totp-wrong-code")
	step(t, ctx, "a recovery code", fill("#code", codes[0]), submit(`main button[type="submit"]`))
	wantPath(t, ctx, "/")
	wantText(t, ctx, "#account", name)
	logOut(t, ctx)

	// Password and the authenticator's code.
	loginAs(t, ctx, d, name, password, secret)
	logOut(t, ctx)

	// The recovery code works once only.
	step(t, ctx, "password again", fill("#name", name), fill("#password", password), submit(`main button[type="submit"]`))
	step(t, ctx, "the used recovery code", fill("#code", codes[0]), submit(`main button[type="submit"]`))
	wantText(t, ctx, "#code-error", "already used")
	if u := pageURL(t, ctx); u.Path == "/" {
		failf(t, ctx, "a used recovery code logged in again")
	}

	wantNoPageErrors(t, ctx)
}
