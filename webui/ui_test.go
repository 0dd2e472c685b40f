package webui

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

const testPassword = "purple-kettle-meadow-42"

// testAPIToken is the API token of the test servers.
const testAPIToken = "test-api-token-0123456789abcdef"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeExplainer struct{}

func (fakeExplainer) Explain(policy.Request) policy.Explanation { return policy.Explanation{} }

type fakeEvents struct{}

func (fakeEvents) Query(context.Context, eventlog.Filter) (eventlog.Page, error) {
	return eventlog.Page{}, nil
}

// memConfig keeps the configuration in memory, as the daemon keeps it in its file.
type memConfig struct {
	mu      sync.Mutex
	cfg     *config.Config
	version int
	changes []Change
}

func (m *memConfig) EditableConfig() (*config.Config, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.Clone()
}

func (m *memConfig) SaveConfig(_ context.Context, cfg *config.Config, ch Change) (config.Version, error) {
	if err := cfg.Validate(); err != nil {
		return config.Version{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg, m.version = cfg, m.version+1
	m.changes = append(m.changes, ch)
	return config.Version{Number: m.version}, nil
}

type env struct {
	config     *memConfig
	t          *testing.T
	clk        *clock
	store      *auth.Store
	audit      *audit.Log
	auditDir   string
	exceptions *exceptions.Store
	srv        *Server
	ts         *httptest.Server
	secrets    map[string]string // account → TOTP secret, for accounts enrolled
	tech       auth.Session      // the technician's session made through the store
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the server's configuration changed by change before New.
func newEnvWith(t *testing.T, change func(*Config)) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	store, err := auth.New(auth.Config{
		Path: filepath.Join(t.TempDir(), "auth.db"), Now: clk.Now,
		Argon2:   auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Throttle: auth.Throttle{Base: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	demo, _ := config.Demo()
	auditDir := t.TempDir()
	trail, err := audit.New(audit.Config{Path: filepath.Join(auditDir, audit.FileName), Appliance: "Test School"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trail.Close() })
	xs, err := exceptions.New(exceptions.Config{Path: filepath.Join(t.TempDir(), exceptions.FileName),
		Protected: func(d string) bool { return d == "protected.example" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xs.Close() })
	e := &env{t: t, clk: clk, store: store, audit: trail, auditDir: auditDir, exceptions: xs, secrets: map[string]string{}, config: &memConfig{cfg: demo}}
	cfg := Config{
		Explainer: fakeExplainer{}, Events: fakeEvents{}, Auth: store, Audit: e.audit, Config: e.config, Exceptions: xs,
		APIToken: testAPIToken,
		Status: func(context.Context) Status {
			return Status{Components: []Component{{Name: "dns", State: "running", Detail: "listening on 127.0.0.1:5353"},
				{Name: "lists", State: "degraded", Detail: "one list failed"}}}
		},
	}
	if change != nil {
		change(&cfg)
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// totp is RFC 6238 (SHA-1, 6 digits, 30 s), written here independently of the auth package.
func totp(t *testing.T, secret string, at time.Time) string {
	key, err := auth.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// withAccounts creates a technician (enrolled in TOTP) and one account of every other
// role, all with testPassword; the DSL's TOTP requirement is turned off to keep logins short.
func (e *env) withAccounts() {
	t, ctx := e.t, context.Background()
	tok, err := e.store.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateFirst(ctx, tok, "tech", testPassword); err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Login(ctx, "tech", testPassword, mustAddr("127.0.0.1"))
	if !errors.Is(err, auth.ErrTOTPEnrolRequired) {
		t.Fatalf("login of tech: %v", err)
	}
	e.secrets["tech"] = res.Pending.Enrolment.Secret
	res, err = e.store.CompleteTOTP(ctx, res.Pending.Token, totp(t, e.secrets["tech"], e.clk.Now()), mustAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	e.tech = *res.Session
	for name, role := range map[string]auth.Role{"dsl1": auth.DSL, "teach1": auth.Teacher, "view1": auth.Viewer} {
		if _, err := e.store.CreateAccount(ctx, e.tech, name, role, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.SetTOTPRequired(ctx, e.tech, "dsl1", false); err != nil {
		t.Fatal(err)
	}
}

type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.ts.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do("GET", path, nil) }
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	return b.do("POST", path, form)
}

var hiddenRE = regexp.MustCompile(`name="([a-z0-9]+)" value="([^"]*)"`)

// hidden returns the value of a hidden field in a page.
func hidden(t *testing.T, page, name string) string {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	t.Fatalf("no field %q in page:\n%s", name, page)
	return ""
}

// login logs the browser in through the pages, answering the code step for enrolled
// accounts, and returns the session's CSRF token as the pages carry it.
func (b *browser) login(name string) string {
	t := b.e.t
	t.Helper()
	_, page := b.get("/login")
	resp, page := b.post("/login", url.Values{"csrf": {hidden(t, page, "csrf")}, "name": {name}, "password": {testPassword}})
	if secret, ok := b.e.secrets[name]; ok {
		if resp.StatusCode != 200 || !strings.Contains(page, "Authenticator code") {
			t.Fatalf("login of %s: want the code step, got %d:\n%s", name, resp.StatusCode, page)
		}
		b.e.clk.Add(31 * time.Second) // a step once used is refused; the app shows the next
		resp, page = b.post("/login/totp", url.Values{"csrf": {hidden(t, page, "csrf")},
			"pending": {hidden(t, page, "pending")}, "code": {totp(t, secret, b.e.clk.Now())}})
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login of %s: got %d %q:\n%s", name, resp.StatusCode, resp.Header.Get("Location"), page)
	}
	_, page = b.get("/")
	return hidden(t, page, "csrf")
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// auditEntries returns the audit trail, oldest first.
func (e *env) auditEntries() []audit.Entry {
	e.t.Helper()
	list, err := e.audit.List(context.Background(), audit.Filter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(list)
	return list
}
