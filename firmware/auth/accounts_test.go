package auth

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCreateAccount(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "dsl1", DSL, "orange-lantern-meadow")
	dsl := e.login("dsl1", "orange-lantern-meadow")
	forgedRole := dsl
	forgedRole.Role = Technician
	otherName := tech
	otherName.Account = "dsl1"
	noToken := tech
	noToken.Token = ""
	for _, tc := range []struct {
		name  string
		by    Session
		user  string
		role  Role
		pw    string
		want  error
		check func(Account) bool
	}{
		{"teacher", tech, "Mr.Jones", Teacher, "blue-pencil-sharpener", nil,
			func(a Account) bool { return a.Name == "mr.jones" && a.Role == Teacher && !a.TOTPRequired }},
		{"dsl needs totp", tech, "dsl2", DSL, "orange-lantern-meadow", nil,
			func(a Account) bool { return a.TOTPRequired && !a.TOTPEnrolled }},
		{"technician needs totp", tech, "tech2", Technician, "orange-lantern-meadow", nil,
			func(a Account) bool { return a.TOTPRequired }},
		{"viewer", tech, "governor@oak.sch.uk", Viewer, "orange-lantern-meadow", nil,
			func(a Account) bool { return !a.TOTPRequired && a.LastLogin.IsZero() && a.Created.Equal(e.clk.Now()) }},
		{"by a dsl", dsl, "x1", Teacher, "blue-pencil-sharpener", ErrForbidden, nil},
		{"by nobody", Session{}, "x2", Teacher, "blue-pencil-sharpener", ErrForbidden, nil},
		{"forged role", forgedRole, "x3", Teacher, "blue-pencil-sharpener", ErrForbidden, nil},
		{"token of another account", otherName, "x3", Teacher, "blue-pencil-sharpener", ErrForbidden, nil},
		{"no token", noToken, "x3", Teacher, "blue-pencil-sharpener", ErrForbidden, nil},
		{"taken", tech, "DSL1", Teacher, "blue-pencil-sharpener", ErrAccountExists, nil},
		{"bad name", tech, "-x", Teacher, "blue-pencil-sharpener", ErrBadName, nil},
		{"space in name", tech, "a b", Teacher, "blue-pencil-sharpener", ErrBadName, nil},
		{"long name", tech, strings.Repeat("a", 65), Teacher, "blue-pencil-sharpener", ErrBadName, nil},
		{"bad role", tech, "x4", "admin", "blue-pencil-sharpener", ErrBadRole, nil},
		{"weak password", tech, "x5", Teacher, "welcome12345", ErrPasswordCommon, nil},
		{"name in password", tech, "pencil", Teacher, "blue-pencil-sharpener", ErrPasswordHasName, nil},
	} {
		a, err := e.s.CreateAccount(e.ctx, tc.by, tc.user, tc.role, tc.pw)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: CreateAccount = %v, want %v", tc.name, err, tc.want)
			continue
		}
		if tc.check != nil && !tc.check(a) {
			t.Errorf("%s: account %+v", tc.name, a)
		}
	}
	accts, err := e.s.Accounts(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range accts {
		names = append(names, fmt.Sprintf("%s:%s:%v", a.Name, a.Role, a.TOTPEnrolled))
	}
	want := []string{"admin:technician:true", "dsl1:dsl:true", "dsl2:dsl:false", "governor@oak.sch.uk:viewer:false",
		"mr.jones:teacher:false", "tech2:technician:false"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("Accounts = %v\nwant %v", names, want)
	}
	if _, err := e.s.Account(e.ctx, "nobody"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("Account(nobody) = %v", err)
	}
	// Account carries no secret: only these fields exist.
	var fields []string
	for f := range reflect.TypeFor[Account]().Fields() {
		fields = append(fields, f.Name)
	}
	if got := strings.Join(fields, " "); got != "Name Role Disabled TOTPEnrolled TOTPRequired RecoveryCodesLeft Created PasswordChanged LastLogin" {
		t.Errorf("Account fields: %s", got)
	}
}

func TestManageAccounts(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	tech, _ := e.setup()
	e.create(tech, "tech2", Technician, "second-technician-pass")
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	e.create(tech, "dsl1", DSL, "orange-lantern-meadow")
	tech2 := e.login("tech2", "second-technician-pass")
	teacher := e.login("teacher1", "blue-pencil-sharpener")
	dsl := e.login("dsl1", "orange-lantern-meadow")
	alive := func(s Session) bool { _, err := e.s.Lookup(ctx, s.Token); return err == nil }

	// Self-changes that would skip the password are refused.
	for name, err := range map[string]error{
		"SetRole":       e.s.SetRole(ctx, tech, techName, Viewer),
		"SetDisabled":   e.s.SetDisabled(ctx, tech, techName, true),
		"ResetTOTP":     e.s.ResetTOTP(ctx, tech, techName),
		"ResetPassword": e.s.ResetPassword(ctx, tech, techName, "another-long-password"),
	} {
		if !errors.Is(err, ErrSelf) {
			t.Errorf("%s on self = %v, want ErrSelf", name, err)
		}
	}
	// Only technicians manage.
	for name, err := range map[string]error{
		"SetRole":         e.s.SetRole(ctx, dsl, "teacher1", DSL),
		"SetDisabled":     e.s.SetDisabled(ctx, dsl, "teacher1", true),
		"ResetTOTP":       e.s.ResetTOTP(ctx, teacher, "dsl1"),
		"ResetPassword":   e.s.ResetPassword(ctx, teacher, "dsl1", "another-long-password"),
		"SetTOTPRequired": e.s.SetTOTPRequired(ctx, dsl, "dsl1", false),
	} {
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("%s by a non-technician = %v, want ErrForbidden", name, err)
		}
	}
	if err := e.s.SetRole(ctx, tech, "nobody", Viewer); !errors.Is(err, ErrNoAccount) {
		t.Errorf("SetRole(nobody) = %v", err)
	}
	if err := e.s.SetRole(ctx, tech, "teacher1", "boss"); !errors.Is(err, ErrBadRole) {
		t.Errorf("SetRole(boss) = %v", err)
	}

	// Role change: sessions end; a DSL needs TOTP.
	if err := e.s.SetRole(ctx, tech, "teacher1", DSL); err != nil {
		t.Fatal(err)
	}
	if alive(teacher) {
		t.Error("teacher's session survived a role change")
	}
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", staffAddr); !errors.Is(err, ErrTOTPEnrolRequired) {
		t.Errorf("teacher made DSL logs in: %v, want ErrTOTPEnrolRequired", err)
	}
	// The TOTP requirement can be turned off, by a technician.
	if err := e.s.SetTOTPRequired(ctx, tech, "teacher1", false); err != nil {
		t.Fatal(err)
	}
	if res, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", staffAddr); err != nil || res.Session == nil {
		t.Errorf("after SetTOTPRequired(false): %v", err)
	}

	// Password reset by a technician: sessions end, the new password works.
	if err := e.s.ResetPassword(ctx, tech, "dsl1", "short"); !errors.Is(err, ErrPasswordTooShort) {
		t.Errorf("ResetPassword(short) = %v", err)
	}
	if err := e.s.ResetPassword(ctx, tech, "dsl1", "fresh-orange-lantern"); err != nil {
		t.Fatal(err)
	}
	if alive(dsl) {
		t.Error("session survived a password reset")
	}
	if _, err := e.s.Login(ctx, "dsl1", "orange-lantern-meadow", staffAddr); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after reset: %v", err)
	}
	dsl = e.login("dsl1", "fresh-orange-lantern")

	// TOTP reset: enrolment again at the next login, old recovery codes gone.
	if err := e.s.ResetTOTP(ctx, tech, "dsl1"); err != nil {
		t.Fatal(err)
	}
	if alive(dsl) {
		t.Error("session survived a TOTP reset")
	}
	if a, _ := e.s.Account(ctx, "dsl1"); a.TOTPEnrolled || a.RecoveryCodesLeft != 0 {
		t.Errorf("after ResetTOTP: %+v", a)
	}
	if _, err := e.s.Login(ctx, "dsl1", "fresh-orange-lantern", staffAddr); !errors.Is(err, ErrTOTPEnrolRequired) {
		t.Errorf("after ResetTOTP: %v, want ErrTOTPEnrolRequired", err)
	}

	// Disable: sessions end, login says disabled (with the right password), re-enable works.
	if err := e.s.SetDisabled(ctx, tech, "tech2", true); err != nil {
		t.Fatal(err)
	}
	if alive(tech2) {
		t.Error("session survived disabling")
	}
	if _, err := e.s.Login(ctx, "tech2", "second-technician-pass", staffAddr); !errors.Is(err, ErrDisabled) {
		t.Errorf("disabled login: %v", err)
	}
	if err := e.s.SetDisabled(ctx, tech2, "teacher1", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("a disabled technician's stale session still manages: %v", err)
	}
	if err := e.s.SetDisabled(ctx, tech, "tech2", false); err != nil {
		t.Fatal(err)
	}
	e.login("tech2", "second-technician-pass")
	// A demoted technician's stale session cannot manage.
	if err := e.s.SetRole(ctx, tech, "tech2", Viewer); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetDisabled(ctx, tech2, "teacher1", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("demoted technician's stale session: %v, want ErrForbidden", err)
	}
	// Nor can a forged one.
	forged := e.login("teacher1", "blue-pencil-sharpener")
	forged.Role = Technician
	if err := e.s.SetDisabled(ctx, forged, "dsl1", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("forged session: %v, want ErrForbidden", err)
	}
	// Nor an expired or ended one.
	e.clk.Add(31 * time.Minute)
	if err := e.s.SetDisabled(ctx, tech, "dsl1", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("idle-expired session: %v, want ErrForbidden", err)
	}
	tech = e.login(techName, techPW)
	e.s.Logout(ctx, tech.Token)
	if err := e.s.SetDisabled(ctx, tech, "dsl1", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("logged-out session: %v, want ErrForbidden", err)
	}
	if err := e.s.SetDisabled(ctx, Session{Account: "nobody", Role: Technician}, "dsl1", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("session of no account: %v, want ErrForbidden", err)
	}
}

func TestLastTechnician(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	e.setup()
	tech, _ := e.s.Account(ctx, techName)
	if tech.Role != Technician {
		t.Fatal(tech)
	}
	guard := func() error {
		tx, err := e.s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		a, err := accountByName(ctx, tx, techName)
		if err != nil {
			t.Fatal(err)
		}
		return keepATechnician(ctx, tx, a)
	}
	if err := guard(); !errors.Is(err, ErrLastTechnician) {
		t.Errorf("only technician: %v, want ErrLastTechnician", err)
	}
	e.s.db.Exec(`INSERT INTO accounts (name, role, password, password_changed, totp_required, created, disabled)
		VALUES ('tech2', 'technician', 'x', 0, 1, 0, 1)`)
	if err := guard(); !errors.Is(err, ErrLastTechnician) {
		t.Errorf("other technician disabled: %v, want ErrLastTechnician", err)
	}
	e.s.db.Exec(`UPDATE accounts SET disabled = 0 WHERE name = 'tech2'`)
	if err := guard(); err != nil {
		t.Errorf("two technicians: %v", err)
	}
	// Through the API: tech2 may demote admin, and is then alone.
	e.s.db.Exec(`DELETE FROM accounts WHERE name = 'tech2'`)
	e.create(e.login(techName, techPW), "tech2", Technician, "second-technician-pass")
	if err := e.s.SetRole(ctx, e.login("tech2", "second-technician-pass"), techName, DSL); err != nil {
		t.Fatal(err)
	}
	var n int
	e.s.db.QueryRow(`SELECT count(*) FROM accounts WHERE role = 'technician' AND disabled = 0`).Scan(&n)
	if n != 1 {
		t.Errorf("%d enabled technicians, want 1", n)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	s1 := e.login("teacher1", "blue-pencil-sharpener")
	s2 := e.login("teacher1", "blue-pencil-sharpener")
	for _, tc := range []struct {
		name, old, pw string
		want          error
	}{
		{"wrong old", "red-pencil-sharpener", "green-crayon-box-99", ErrBadCredentials},
		{"same", "blue-pencil-sharpener", "blue-pencil-sharpener", ErrPasswordReused},
		{"weak", "blue-pencil-sharpener", "Welcome12345!", ErrPasswordCommon},
		{"contains name", "blue-pencil-sharpener", "teacher1-crayon-box", ErrPasswordHasName},
	} {
		if _, err := e.s.ChangePassword(ctx, s1, tc.old, tc.pw); !errors.Is(err, tc.want) {
			t.Errorf("%s: ChangePassword = %v, want %v", tc.name, err, tc.want)
		}
	}
	ns, err := e.s.ChangePassword(ctx, s1, "blue-pencil-sharpener", "green-crayon-box-99")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Session{s1, s2} {
		if _, err := e.s.Lookup(ctx, s.Token); !errors.Is(err, ErrNoSession) {
			t.Errorf("old session after a password change: %v", err)
		}
	}
	if got, err := e.s.Lookup(ctx, ns.Token); err != nil || got.Account != "teacher1" {
		t.Errorf("new session: %+v, %v", got, err)
	}
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", staffAddr); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password: %v", err)
	}
	e.login("teacher1", "green-crayon-box-99")
	if a, _ := e.s.Account(ctx, "teacher1"); !a.PasswordChanged.Equal(ns.Created) {
		t.Errorf("PasswordChanged = %v, want %v", a.PasswordChanged, ns.Created)
	}
}

func TestReauthIsThrottled(t *testing.T) {
	e := newEnv(t)
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	s := e.login("teacher1", "blue-pencil-sharpener")
	// A stolen session does not make an oracle for the password.
	for i := range 5 {
		if _, err := e.s.BeginTOTP(e.ctx, s, "guess-number-"+string(rune('a'+i))); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := e.s.ChangePassword(e.ctx, s, "blue-pencil-sharpener", "green-crayon-box-99"); !errors.Is(err, ErrThrottled) {
		t.Errorf("sixth password check: %v, want ErrThrottled", err)
	}
}

func TestVoluntaryTOTPAndRecoveryCodes(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	tech, _ := e.setup()
	e.create(tech, "teacher1", Teacher, "blue-pencil-sharpener")
	s := e.login("teacher1", "blue-pencil-sharpener")

	if _, err := e.s.ConfirmTOTP(ctx, s, "123456"); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("ConfirmTOTP before BeginTOTP: %v", err)
	}
	if _, err := e.s.NewRecoveryCodes(ctx, s, "blue-pencil-sharpener"); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("NewRecoveryCodes before enrolment: %v", err)
	}
	if _, err := e.s.BeginTOTP(ctx, s, "wrong-password-here"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("BeginTOTP with a wrong password: %v", err)
	}
	enr, err := e.s.BeginTOTP(ctx, s, "blue-pencil-sharpener")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(enr.URI, "schoolgate:teacher1?secret="+enr.Secret) {
		t.Errorf("URI %q", enr.URI)
	}
	// Until confirmed, login still needs no code.
	if res, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", staffAddr); err != nil || res.Session == nil {
		t.Errorf("login during enrolment: %v", err)
	}
	if _, err := e.s.ConfirmTOTP(ctx, s, "not a code"); !errors.Is(err, ErrBadCode) {
		t.Errorf("ConfirmTOTP(garbage): %v", err)
	}
	codes, err := e.s.ConfirmTOTP(ctx, s, e.code(enr.Secret))
	if err != nil || len(codes) != 10 {
		t.Fatalf("ConfirmTOTP = %d codes, %v", len(codes), err)
	}
	if _, err := e.s.ConfirmTOTP(ctx, s, e.code(enr.Secret)); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("ConfirmTOTP twice: %v", err)
	}
	// Enrolled: login needs the code now, although not required by role.
	if _, err := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", staffAddr); !errors.Is(err, ErrTOTPRequired) {
		t.Errorf("login after enrolment: %v, want ErrTOTPRequired", err)
	}
	e.clk.Add(30 * time.Second)
	newCodes, err := e.s.NewRecoveryCodes(ctx, s, "blue-pencil-sharpener")
	if err != nil || len(newCodes) != 10 {
		t.Fatalf("NewRecoveryCodes = %v, %v", newCodes, err)
	}
	res, _ := e.s.Login(ctx, "teacher1", "blue-pencil-sharpener", staffAddr)
	if _, err := e.s.CompleteTOTP(ctx, res.Pending.Token, codes[0], staffAddr); !errors.Is(err, ErrBadCode) {
		t.Errorf("replaced recovery code: %v", err)
	}
	if res, err := e.s.CompleteTOTP(ctx, res.Pending.Token, newCodes[9], staffAddr); err != nil || res.RecoveryCodesLeft != 9 {
		t.Errorf("new recovery code: %+v, %v", res, err)
	}
}
