package auth

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testParams keep argon2id cheap in tests; TestReferenceHashes covers the real cost.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	t0        = time.Date(2026, 3, 2, 10, 15, 3, 0, time.UTC)
	staffAddr = netip.MustParseAddr("10.10.0.21")
	otherAddr = netip.MustParseAddr("10.10.0.99")
)

const (
	techName = "admin"
	techPW   = "violet-kettle-harbour-42"
)

type env struct {
	t   *testing.T
	s   *Store
	clk *fakeClock
	cfg Config
	ctx context.Context
}

// newEnv opens a Store on a temp file with a fake clock and cheap argon2.
func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	clk := &fakeClock{t: t0}
	cfg := Config{
		Path:   filepath.Join(t.TempDir(), "accounts.db"),
		Now:    clk.Now,
		Argon2: testParams,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	e := &env{t: t, clk: clk, cfg: cfg, ctx: context.Background()}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	s, err := New(e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.s = s
	e.t.Cleanup(func() { s.Close() })
}

// reopen closes and reopens the store on the same file, as a restart would.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// code returns the current TOTP code for secret (the authenticator app).
func (e *env) code(secret string) string {
	e.t.Helper()
	key, err := ParseSecret(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return totpCode(key, e.clk.Now())
}

// secretOf reads an account's enrolled secret straight from the database.
func (e *env) secretOf(name string) string {
	e.t.Helper()
	var s sql.NullString
	if err := e.s.db.QueryRow(`SELECT totp_secret FROM accounts WHERE name = ?`, name).Scan(&s); err != nil || !s.Valid {
		e.t.Fatalf("secret of %s: %v, %v", name, s, err)
	}
	return s.String
}

// setup creates the first technician and enrols its authenticator; it
// returns the technician's session and recovery codes.
func (e *env) setup() (Session, []string) {
	e.t.Helper()
	tok, err := e.s.SetupToken(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.CreateFirst(e.ctx, tok, techName, techPW); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.s.Login(e.ctx, techName, techPW, staffAddr)
	if !errors.Is(err, ErrTOTPEnrolRequired) || res.Pending == nil || res.Pending.Enrolment == nil {
		e.t.Fatalf("first login: %+v, %v; want an enrolment", res, err)
	}
	res, err = e.s.CompleteTOTP(e.ctx, res.Pending.Token, e.code(res.Pending.Enrolment.Secret), staffAddr)
	if err != nil || res.Session == nil {
		e.t.Fatalf("enrolling at first login: %+v, %v", res, err)
	}
	e.clk.Add(totpPeriod * time.Second) // the next code is a new step
	return *res.Session, res.RecoveryCodes
}

// login logs in fully, answering TOTP from the stored secret if asked.
func (e *env) login(name, pw string) Session {
	e.t.Helper()
	res, err := e.s.Login(e.ctx, name, pw, staffAddr)
	switch {
	case err == nil:
	case errors.Is(err, ErrTOTPRequired):
		res, err = e.s.CompleteTOTP(e.ctx, res.Pending.Token, e.code(e.secretOf(normalizeName(name))), staffAddr)
		if err != nil {
			e.t.Fatalf("CompleteTOTP(%s): %v", name, err)
		}
		e.clk.Add(totpPeriod * time.Second)
	case errors.Is(err, ErrTOTPEnrolRequired):
		res, err = e.s.CompleteTOTP(e.ctx, res.Pending.Token, e.code(res.Pending.Enrolment.Secret), staffAddr)
		if err != nil {
			e.t.Fatalf("enrolling %s: %v", name, err)
		}
		e.clk.Add(totpPeriod * time.Second)
	default:
		e.t.Fatalf("Login(%s): %v", name, err)
	}
	if res.Session == nil {
		e.t.Fatalf("Login(%s): no session", name)
	}
	return *res.Session
}

func (e *env) create(by Session, name string, role Role, pw string) {
	e.t.Helper()
	if _, err := e.s.CreateAccount(e.ctx, by, name, role, pw); err != nil {
		e.t.Fatalf("CreateAccount(%s, %s): %v", name, role, err)
	}
}

func TestNewFile(t *testing.T) {
	e := newEnv(t)
	fi, err := os.Stat(e.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("database mode %o, want 600", mode)
	}
	var v int
	if err := e.s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != schemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, schemaVersion)
	}
	var mode string
	if err := e.s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	e.s.Close()

	// A newer schema is refused.
	db, err := sql.Open("sqlite", e.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := New(e.cfg); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("newer schema: got %v, want ErrSchemaVersion", err)
	}

	// Garbage is reported as corrupt.
	bad := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(bad, bytes.Repeat([]byte("not a database "), 512), 0o600)
	cfg := e.cfg
	cfg.Path = bad
	if _, err := New(cfg); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: got %v, want ErrCorrupt", err)
	}

	for _, c := range []Config{
		{},
		{Path: filepath.Join(t.TempDir(), "a.db"), Issuer: "a:b"},
		{Path: filepath.Join(t.TempDir(), "a.db"), Argon2: Params{Memory: 1 << 30, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
	} {
		if s, err := New(c); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

func TestFirstStart(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	if need, err := e.s.NeedsSetup(ctx); err != nil || !need {
		t.Fatalf("NeedsSetup = %v, %v", need, err)
	}
	if _, err := e.s.CreateFirst(ctx, "", techName, techPW); !errors.Is(err, ErrSetupToken) {
		t.Errorf("CreateFirst before any token: %v", err)
	}
	old, err := e.s.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.reopen() // a restart issues a new token; the old one stops working
	tok, err := e.s.SetupToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok == old || len(tok) != 26 {
		t.Fatalf("tokens %q then %q", old, tok)
	}
	for _, tc := range []struct {
		name     string
		tok      string
		user, pw string
		want     error
	}{
		{"previous token", old, techName, techPW, ErrSetupToken},
		{"wrong token", strings.Repeat("A", 26), techName, techPW, ErrSetupToken},
		{"bad name", tok, "Bad Name", techPW, ErrBadName},
		{"weak password", tok, techName, "password1234", ErrWeakPassword},
	} {
		if _, err := e.s.CreateFirst(ctx, tc.tok, tc.user, tc.pw); !errors.Is(err, tc.want) {
			t.Errorf("%s: CreateFirst = %v, want %v", tc.name, err, tc.want)
		}
	}
	var n int
	e.s.db.QueryRow(`SELECT count(*) FROM setup WHERE token_hash = ?`, []byte(tok)).Scan(&n)
	if n != 0 {
		t.Error("setup token stored in clear")
	}
	// Typed from a console in lower case, with stray spaces: still accepted.
	a, err := e.s.CreateFirst(ctx, " "+strings.ToLower(tok)+" ", " Admin ", techPW)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != techName || a.Role != Technician || !a.TOTPRequired || a.TOTPEnrolled || a.Disabled {
		t.Errorf("first account = %+v", a)
	}
	if _, err := e.s.CreateFirst(ctx, tok, "second", techPW); !errors.Is(err, ErrSetupDone) {
		t.Errorf("CreateFirst after setup: %v, want ErrSetupDone", err)
	}
	if _, err := e.s.SetupToken(ctx); !errors.Is(err, ErrSetupDone) {
		t.Errorf("SetupToken after setup: %v, want ErrSetupDone", err)
	}
	if need, _ := e.s.NeedsSetup(ctx); need {
		t.Error("NeedsSetup after setup")
	}
}

func TestSetupTokenExpires(t *testing.T) {
	e := newEnv(t)
	tok, err := e.s.SetupToken(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Add(24 * time.Hour)
	if _, err := e.s.CreateFirst(e.ctx, tok, techName, techPW); !errors.Is(err, ErrSetupToken) {
		t.Errorf("after 24 h: %v, want ErrSetupToken", err)
	}
	tok, _ = e.s.SetupToken(e.ctx)
	e.clk.Add(23 * time.Hour)
	if _, err := e.s.CreateFirst(e.ctx, tok, techName, techPW); err != nil {
		t.Errorf("after 23 h: %v", err)
	}
}

func TestConcurrentCreateFirst(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.s.SetupToken(e.ctx)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.s.CreateFirst(e.ctx, tok, "tech"+string(rune('a'+i)), techPW)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrSetupDone), errors.Is(err, ErrSetupToken):
		default:
			t.Errorf("CreateFirst: %v", err)
		}
	}
	if accts, _ := e.s.Accounts(e.ctx); ok != 1 || len(accts) != 1 {
		t.Errorf("%d succeeded, %d accounts; want 1 and 1", ok, len(accts))
	}
}
