package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "viewer1", Viewer, "green-garden-gnome-7")
	ctx := e.ctx

	for _, tc := range []struct {
		name  string
		steps []time.Duration // lookups after each wait
		want  error           // of the last lookup
	}{
		{"fresh", []time.Duration{0}, nil},
		{"idle just under 30 min", []time.Duration{29*time.Minute + 59*time.Second}, nil},
		{"idle 30 min", []time.Duration{30 * time.Minute}, ErrSessionExpired},
		{"activity slides the idle timer", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, nil},
		{"absolute 12 h despite activity", repeat(25*time.Minute, 29), ErrSessionExpired}, // 12 h 5 min
		{"just under 12 h with activity", append(repeat(25*time.Minute, 28), 19*time.Minute), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := e.login("viewer1", "green-garden-gnome-7")
			var err error
			for _, d := range tc.steps {
				e.clk.Add(d)
				_, err = e.s.Lookup(ctx, sess.Token)
				if err != nil {
					break
				}
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Lookup = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				// The expired row is gone: asking again is ErrNoSession.
				if _, err := e.s.Lookup(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
					t.Errorf("second Lookup = %v, want ErrNoSession", err)
				}
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestSessionLookup(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "dsl1", DSL, "orange-lantern-meadow")
	ctx := e.ctx
	sess := e.login("dsl1", "orange-lantern-meadow")
	if len(sess.Token) != 43 || len(sess.CSRF) != 43 || sess.Token == sess.CSRF {
		t.Fatalf("session tokens %q, %q", sess.Token, sess.CSRF)
	}
	if sess.Role != DSL || sess.Account != "dsl1" || sess.Addr != staffAddr {
		t.Errorf("session = %+v", sess)
	}
	if !sess.Expires.Equal(sess.Created.Add(12*time.Hour)) || !sess.IdleExpires.Equal(sess.LastSeen.Add(30*time.Minute)) {
		t.Errorf("expiry: created %v expires %v, seen %v idle %v", sess.Created, sess.Expires, sess.LastSeen, sess.IdleExpires)
	}
	e.clk.Add(5 * time.Minute)
	got, err := e.s.Lookup(ctx, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != sess.Token || got.CSRF != sess.CSRF || got.Role != DSL || !got.Created.Equal(sess.Created) ||
		!got.LastSeen.Equal(e.clk.Now()) {
		t.Errorf("Lookup = %+v\nlogin  = %+v", got, sess)
	}
	// CSRF: per session, compared exactly.
	other := e.login("dsl1", "orange-lantern-meadow")
	for _, tc := range []struct {
		tok  string
		want bool
	}{
		{sess.CSRF, true},
		{other.CSRF, false},
		{"", false},
		{sess.CSRF[:42], false},
		{sess.CSRF + "A", false},
		{sess.Token, false},
	} {
		if got := got.CheckCSRF(tc.tok); got != tc.want {
			t.Errorf("CheckCSRF(%q) = %v, want %v", tc.tok, got, tc.want)
		}
	}
	if (Session{}).CheckCSRF("") {
		t.Error("empty session accepts an empty CSRF token")
	}
	// Malformed and unknown tokens.
	for _, tok := range []string{"", "x", sess.Token[:42], sess.Token + "=", strings.Repeat("A", 43), strings.Repeat("é", 22)} {
		if _, err := e.s.Lookup(ctx, tok); !errors.Is(err, ErrNoSession) {
			t.Errorf("Lookup(%q) = %v, want ErrNoSession", tok, err)
		}
	}
	// Only the hash is stored.
	rows, _ := e.s.db.Query(`SELECT token_hash FROM sessions`)
	for rows.Next() {
		var h []byte
		rows.Scan(&h)
		raw, _ := parseToken(sess.Token)
		if len(h) != 32 || bytes.Equal(h, raw) || bytes.Contains(h, []byte(sess.Token)) {
			t.Errorf("stored token %x", h)
		}
	}
	rows.Close()
	// A role change applies at once, and revokes.
	if err := e.s.SetRole(ctx, e.login(techName, techPW), "dsl1", Viewer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Lookup(ctx, other.Token); !errors.Is(err, ErrNoSession) {
		t.Errorf("after a role change: %v", err)
	}
	// Logout.
	v := e.login("dsl1", "orange-lantern-meadow")
	if v.Role != Viewer {
		t.Errorf("role after change = %s", v.Role)
	}
	if err := e.s.Logout(ctx, v.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Lookup(ctx, v.Token); !errors.Is(err, ErrNoSession) {
		t.Errorf("after Logout: %v", err)
	}
	if err := e.s.Logout(ctx, "garbage"); err != nil {
		t.Errorf("Logout(garbage) = %v", err)
	}
}

func TestRevokeAll(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	a, b := e.login("teacher1", "blue-pencil-sharpener"), e.login("teacher1", "blue-pencil-sharpener")
	n, err := e.s.RevokeAll(e.ctx, "Teacher1")
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v; want 2", n, err)
	}
	for _, s := range []Session{a, b} {
		if _, err := e.s.Lookup(e.ctx, s.Token); !errors.Is(err, ErrNoSession) {
			t.Errorf("after RevokeAll: %v", err)
		}
	}
	if _, err := e.s.Lookup(e.ctx, tech.Token); err != nil {
		t.Errorf("other account's session: %v", err)
	}
	if _, err := e.s.RevokeAll(e.ctx, "nobody"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("RevokeAll(nobody) = %v", err)
	}
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	tech, codes := e.setup()
	e.s.log.Info("session", "s", tech)
	res, _ := e.s.Login(e.ctx, techName, techPW, staffAddr)
	e.s.log.Info("pending", "p", *res.Pending)
	out := buf.String()
	for _, secret := range []string{tech.Token, tech.CSRF, res.Pending.Token, e.secretOf(techName), codes[0], techPW} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "s.account=admin") {
		t.Errorf("log lacks the session's account:\n%s", out)
	}
}

// A backup's copy of the accounts logs nobody in: a session, a login half way through
// TOTP and the login throttling stay behind, and nothing of them is left in the file.
func TestSnapshotForgetsSessions(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "dsl1", DSL, "amber-lantern-orchard-17")
	res, err := e.s.Login(e.ctx, "dsl1", "amber-lantern-orchard-17", staffAddr) // waits for enrolment
	if !errors.Is(err, ErrTOTPEnrolRequired) || res.Pending == nil {
		t.Fatalf("dsl1 login: %+v, %v", res, err)
	}
	if _, err := e.s.Login(e.ctx, "dsl1", "wrong password", otherAddr); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := e.s.Snapshot(e.ctx, path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(otherAddr.String())) || bytes.Contains(raw, []byte(staffAddr.String())) {
		t.Error("the copy still holds a client address of a session or of the throttle")
	}

	e.cfg.Path = path // a box restored from the copy
	e.open()
	if _, err := e.s.Lookup(e.ctx, tech.Token); !errors.Is(err, ErrNoSession) {
		t.Errorf("the technician's session in the copy: %v, want ErrNoSession", err)
	}
	if _, err := e.s.CompleteTOTP(e.ctx, res.Pending.Token, "000000", staffAddr); err == nil {
		t.Error("a pending login survived into the copy")
	}
	accts, err := e.s.Accounts(e.ctx)
	if err != nil || len(accts) != 2 {
		t.Errorf("accounts in the copy: %+v, %v", accts, err)
	}
	e.login(techName, techPW) // with the same password and authenticator as before
}
