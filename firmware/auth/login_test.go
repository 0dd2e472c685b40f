package auth

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoginWithTOTP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Throttle.Free = 100 }) // TestThrottle covers it
	ctx := e.ctx

	// Enrolment at the first login.
	tok, _ := e.s.SetupToken(ctx)
	e.s.CreateFirst(ctx, tok, techName, techPW)
	res, err := e.s.Login(ctx, techName, techPW, staffAddr)
	if !errors.Is(err, ErrTOTPEnrolRequired) || res.Session != nil || res.Pending == nil || res.Pending.Enrolment == nil {
		t.Fatalf("first Login = %+v, %v; want a pending enrolment", res, err)
	}
	enr := *res.Pending.Enrolment
	if !strings.HasPrefix(enr.URI, "otpauth://totp/schoolgate:admin?secret="+enr.Secret+"&issuer=schoolgate&") {
		t.Errorf("enrolment URI %q", enr.URI)
	}
	// A second attempt before finishing shows the same secret (it may have been scanned).
	res2, err := e.s.Login(ctx, techName, techPW, staffAddr)
	if !errors.Is(err, ErrTOTPEnrolRequired) || res2.Pending.Enrolment.Secret != enr.Secret {
		t.Fatalf("second Login: %v, secret %q then %q", err, enr.Secret, res2.Pending.Enrolment.Secret)
	}
	if _, err := e.s.CompleteTOTP(ctx, res.Pending.Token, "000000", staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("wrong enrolment code: %v", err)
	}
	if _, err := e.s.CompleteTOTP(ctx, res.Pending.Token, "aaaa-bbbb-cccc-dddd", staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("recovery code during enrolment: %v", err)
	}
	done, err := e.s.CompleteTOTP(ctx, res.Pending.Token, e.code(enr.Secret), staffAddr)
	if err != nil || done.Session == nil || len(done.RecoveryCodes) != recoveryCodes {
		t.Fatalf("CompleteTOTP(enrolment) = %+v, %v", done, err)
	}
	codes := done.RecoveryCodes
	if _, err := e.s.CompleteTOTP(ctx, res.Pending.Token, e.code(enr.Secret), staffAddr); !errors.Is(err, ErrPendingExpired) {
		t.Errorf("pending used twice: %v", err)
	}
	// The other pending login of the same account still exists but the
	// secret is now enrolled and the step used.
	if _, err := e.s.CompleteTOTP(ctx, res2.Pending.Token, e.code(enr.Secret), staffAddr); err == nil {
		t.Error("second pending enrolment completed with a used step")
	}

	a, _ := e.s.Account(ctx, techName)
	if !a.TOTPEnrolled || a.RecoveryCodesLeft != 10 || a.LastLogin.IsZero() {
		t.Errorf("after enrolment: %+v", a)
	}

	// Later logins ask for a code.
	login := func() Pending {
		t.Helper()
		res, err := e.s.Login(ctx, techName, techPW, staffAddr)
		if !errors.Is(err, ErrTOTPRequired) || res.Pending == nil || res.Pending.Enrolment != nil || res.Session != nil {
			t.Fatalf("Login = %+v, %v; want ErrTOTPRequired with a Pending", res, err)
		}
		return *res.Pending
	}
	p := login()
	// The code of the step used for enrolment is refused (replay), even
	// inside the ±1 step window.
	if _, err := e.s.CompleteTOTP(ctx, p.Token, e.code(enr.Secret), staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("replayed code: %v, want ErrBadCode", err)
	}
	e.clk.Add(30 * time.Second)
	c := e.code(enr.Secret)
	if res, err := e.s.CompleteTOTP(ctx, p.Token, c[:3]+" "+c[3:], staffAddr); err != nil || res.Session == nil {
		t.Fatalf("CompleteTOTP with a fresh code: %+v, %v", res, err)
	}
	// The same code in a parallel second login is a replay.
	p = login()
	if _, err := e.s.CompleteTOTP(ctx, p.Token, c, staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("same code twice: %v", err)
	}
	// 30 s later, the previous step's code is still refused, the current one works.
	e.clk.Add(30 * time.Second)
	if _, err := e.s.CompleteTOTP(ctx, p.Token, c, staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("old code: %v", err)
	}
	if _, err := e.s.CompleteTOTP(ctx, p.Token, e.code(enr.Secret), staffAddr); err != nil {
		t.Errorf("current code: %v", err)
	}

	// Recovery codes: each works once, typed loosely.
	p = login()
	res, err = e.s.CompleteTOTP(ctx, p.Token, strings.ToUpper(strings.ReplaceAll(codes[0], "-", " ")), staffAddr)
	if err != nil || res.Session == nil || !res.UsedRecoveryCode || res.RecoveryCodesLeft != 9 {
		t.Fatalf("recovery code: %+v, %v", res, err)
	}
	p = login()
	if _, err := e.s.CompleteTOTP(ctx, p.Token, codes[0], staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("recovery code reused: %v", err)
	}
	if res, err := e.s.CompleteTOTP(ctx, p.Token, codes[1], staffAddr); err != nil || res.RecoveryCodesLeft != 8 {
		t.Errorf("second recovery code: %+v, %v", res, err)
	}
	var used int
	e.s.db.QueryRow(`SELECT count(*) FROM recovery_codes WHERE used IS NOT NULL`).Scan(&used)
	if used != 2 {
		t.Errorf("%d recovery codes recorded as used, want 2", used)
	}
	var n int
	e.s.db.QueryRow(`SELECT count(*) FROM recovery_codes WHERE hash = ?`, []byte(strings.ReplaceAll(codes[2], "-", ""))).Scan(&n)
	if n != 0 {
		t.Error("recovery code stored in clear")
	}
}

func TestLoginErrors(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	if err := e.s.SetDisabled(e.ctx, tech, "teacher1", true); err != nil {
		t.Fatal(err)
	}
	e.create(tech, "teacher2", Teacher, "red-pencil-sharpener")

	for _, tc := range []struct {
		name, user, pw string
		want           error
	}{
		{"unknown account", "nobody", "blue-pencil-sharpener", ErrBadCredentials},
		{"wrong password", "teacher2", "blue-pencil-sharpener", ErrBadCredentials},
		{"empty", "", "", ErrBadCredentials},
		{"hostile name", strings.Repeat("x", 5000), "pw", ErrBadCredentials},
		{"disabled, wrong password", "teacher1", "wrong-pencil-sharpener", ErrBadCredentials},
		{"disabled, right password", "teacher1", "blue-pencil-sharpener", ErrDisabled},
		{"name case and spaces", " Teacher2 ", "red-pencil-sharpener", nil},
	} {
		before := e.s.hasher.runs.Load()
		res, err := e.s.Login(e.ctx, tc.user, tc.pw, netip.MustParseAddr("10.10.0.50"))
		e.clk.Add(time.Minute) // stay clear of the address's throttle
		if !errors.Is(err, tc.want) || (err == nil) != (res.Session != nil) {
			t.Errorf("%s: Login = %+v, %v; want %v", tc.name, res, err, tc.want)
		}
		// Equal work: exactly one argon2id computation whether or not the
		// account exists (a rehash would add one only after success).
		if runs := e.s.hasher.runs.Load() - before; runs != 1 {
			t.Errorf("%s: %d argon2 computations, want 1", tc.name, runs)
		}
		if tc.want == ErrBadCredentials && err.Error() != ErrBadCredentials.Error() {
			t.Errorf("%s: error text %q says more than ErrBadCredentials", tc.name, err)
		}
	}
}

func TestThrottle(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	ctx := e.ctx
	addr := netip.MustParseAddr("10.10.0.60")

	fail := func(name string, addr netip.Addr) error {
		_, err := e.s.Login(ctx, name, "wrong-password-guess", addr)
		return err
	}
	retry := func(err error) time.Duration {
		var te *ThrottledError
		if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) {
			t.Fatalf("got %v, want a *ThrottledError", err)
		}
		return te.RetryAfter
	}
	for i := range 5 {
		if err := fail("teacher1", addr); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	// Then 1 s, 2 s, 4 s … between attempts.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		err := fail("teacher1", addr)
		if got := retry(err); got != want {
			t.Errorf("after %d failures: RetryAfter %v, want %v", 5+i, got, want)
		}
		e.clk.Add(want - time.Millisecond)
		if got := retry(fail("teacher1", addr)); got != time.Second {
			t.Errorf("just before the delay: RetryAfter %v", got)
		}
		e.clk.Add(time.Millisecond)
		if err := fail("teacher1", addr); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("after the delay: %v", err)
		}
	}
	// The right password is refused while throttled, even from another address.
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", otherAddr); !errors.Is(err, ErrThrottled) {
		t.Errorf("right password while throttled: %v", err)
	}
	// Survives a restart.
	e.reopen()
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", otherAddr); !errors.Is(err, ErrThrottled) {
		t.Errorf("after restart: %v", err)
	}
	// The cap: many failures later the wait is 15 minutes.
	for range 20 {
		e.clk.Add(time.Hour)
		fail("teacher1", addr)
	}
	if got := retry(fail("teacher1", otherAddr)); got != 15*time.Minute {
		t.Errorf("capped RetryAfter = %v, want 15m", got)
	}
	// Success resets the account's counter.
	e.clk.Add(15 * time.Minute)
	e.login("teacher1", "blue-pencil-sharpener")
	for i := range 5 {
		if err := fail("teacher1", otherAddr); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d after reset: %v", i+1, err)
		}
	}
}

func TestThrottlePerAddress(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	ctx := e.ctx
	attacker := netip.MustParseAddr("2001:db8:10:20::5")
	// Spraying different names from one address: throttled by address.
	for i := range 5 {
		if _, err := e.s.Login(ctx, "guess"+string(rune('a'+i)), "some-password-guess", attacker); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Another address in the same /64 shares the counter.
	neighbour := netip.MustParseAddr("2001:db8:10:20::99")
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", neighbour); !errors.Is(err, ErrThrottled) {
		t.Errorf("same /64: %v, want ErrThrottled", err)
	}
	// Other addresses, and the account itself, are unaffected.
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", otherAddr); err != nil {
		t.Errorf("other address: %v", err)
	}
	// A successful login from the address does not wash its counter: the
	// next failure is the sixth, and the one after must wait 2 s.
	e.clk.Add(time.Second)
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", attacker); err != nil {
		t.Fatalf("right password after the wait: %v", err)
	}
	if _, err := e.s.Login(ctx, "guessy", "some-password-guess", attacker); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("guess after the wait: %v", err)
	}
	var te *ThrottledError
	if _, err := e.s.Login(ctx, "guessz", "some-password-guess", attacker); !errors.As(err, &te) || te.RetryAfter != 2*time.Second {
		t.Errorf("after a success from the address: %v, want a 2 s wait", err)
	}
	// Counters fade after a quiet day.
	e.clk.Add(24 * time.Hour)
	if _, err := e.s.Login(ctx, "guessz", "some-password-guess", attacker); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a day later: %v, want ErrBadCredentials", err)
	}
	var rows int
	e.s.db.QueryRow(`SELECT count(*) FROM throttle`).Scan(&rows)
	if rows == 0 {
		t.Error("no throttle rows")
	}
}

// Parallel guesses cannot slip past the count: each is counted before its
// password is checked.
func TestThrottleParallel(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		checked, throttled int
	)
	for i := range 40 {
		wg.Go(func() {
			addr := netip.AddrFrom4([4]byte{10, 10, 1, byte(i)})
			_, err := e.s.Login(e.ctx, "teacher1", "wrong-password-guess", addr)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrBadCredentials):
				checked++
			case errors.Is(err, ErrThrottled):
				throttled++
			default:
				t.Errorf("Login: %v", err)
			}
		})
	}
	wg.Wait()
	if checked != 5 || throttled != 35 {
		t.Errorf("%d passwords checked, %d throttled; want 5 and 35", checked, throttled)
	}
}

func TestSecondFactorThrottle(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := e.ctx
	// Someone with the password but not the phone: each login counts against
	// the account, and so does each wrong code; the right password does not
	// reset the counter.
	guesses := 0
	for {
		res, err := e.s.Login(ctx, techName, techPW, staffAddr)
		if errors.Is(err, ErrThrottled) {
			break
		}
		if !errors.Is(err, ErrTOTPRequired) {
			t.Fatalf("Login: %v", err)
		}
		_, err = e.s.CompleteTOTP(ctx, res.Pending.Token, "000000", staffAddr)
		if errors.Is(err, ErrThrottled) {
			break
		}
		if !errors.Is(err, ErrBadCode) {
			t.Fatalf("CompleteTOTP: %v", err)
		}
		guesses++
		if guesses > 10 {
			t.Fatal("no throttling of second-factor guesses")
		}
	}
	if guesses > 3 {
		t.Errorf("%d code guesses before throttling, want at most 3", guesses)
	}
}

func TestPendingLimits(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := e.ctx
	secret := e.secretOf(techName)

	res, _ := e.s.Login(ctx, techName, techPW, staffAddr)
	if got := res.Pending.Expires; !got.Equal(e.clk.Now().Add(5 * time.Minute)) {
		t.Errorf("Pending.Expires = %v", got)
	}
	e.clk.Add(5 * time.Minute)
	if _, err := e.s.CompleteTOTP(ctx, res.Pending.Token, e.code(secret), staffAddr); !errors.Is(err, ErrPendingExpired) {
		t.Errorf("after 5 minutes: %v, want ErrPendingExpired", err)
	}
	for _, tok := range []string{"", "x", strings.Repeat("A", 43), res.Pending.Token + "A"} {
		if _, err := e.s.CompleteTOTP(ctx, tok, "123456", staffAddr); !errors.Is(err, ErrPendingExpired) {
			t.Errorf("CompleteTOTP(%q): %v, want ErrPendingExpired", tok, err)
		}
	}

	// Five wrong codes end the pending login (with generous throttling).
	e2 := newEnv(t, func(c *Config) { c.Throttle.Free = 100 })
	e2.setup()
	res, _ = e2.s.Login(ctx, techName, techPW, staffAddr)
	for i := range maxPendingAttempts {
		if _, err := e2.s.CompleteTOTP(ctx, res.Pending.Token, "000000", staffAddr); !errors.Is(err, ErrBadCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if _, err := e2.s.CompleteTOTP(ctx, res.Pending.Token, e2.code(e2.secretOf(techName)), staffAddr); !errors.Is(err, ErrPendingExpired) {
		t.Errorf("after %d wrong codes: %v, want ErrPendingExpired", maxPendingAttempts, err)
	}
}

func TestRehashOnLogin(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "viewer1", Viewer, "green-garden-gnome-7")
	e.cfg.Argon2 = Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	e.reopen()
	var before string
	e.s.db.QueryRow(`SELECT password FROM accounts WHERE name = 'viewer1'`).Scan(&before)
	if !strings.HasPrefix(before, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("stored hash %q", before)
	}
	if _, err := e.s.Login(e.ctx, "viewer1", "wrong-password-here", staffAddr); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	var after string
	e.s.db.QueryRow(`SELECT password FROM accounts WHERE name = 'viewer1'`).Scan(&after)
	if after != before {
		t.Error("rehashed after a failed login")
	}
	e.login("viewer1", "green-garden-gnome-7")
	e.s.db.QueryRow(`SELECT password FROM accounts WHERE name = 'viewer1'`).Scan(&after)
	if !strings.HasPrefix(after, "$argon2id$v=19$m=128,t=2,p=1$") {
		t.Errorf("after login, hash %q; want the new parameters", after)
	}
	e.login("viewer1", "green-garden-gnome-7")
}
