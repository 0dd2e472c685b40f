package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Account is what the web UI may show about an account: no secrets.
type Account struct {
	Name              string
	Role              Role
	Disabled          bool
	TOTPEnrolled      bool
	TOTPRequired      bool // enrolment is forced at the next login
	RecoveryCodesLeft int
	Created           time.Time
	PasswordChanged   time.Time
	LastLogin         time.Time // zero if never
}

// account is a row of the accounts table.
type account struct {
	id              int64
	name            string
	role            Role
	password        string
	passwordChanged int64
	totpSecret      sql.NullString
	totpPending     sql.NullString
	totpLastStep    int64
	totpRequired    bool
	created         int64
	lastLogin       sql.NullInt64
	disabled        bool
}

const maxNameLen = 64

// normalizeName is applied to every name that comes in, so "Alice " logs in
// as "alice".
func normalizeName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ValidName says whether s, normalised, may name an account: 1–64 lowercase letters and
// digits, and "._-@" after the first. Forms check it to name every problem at once; the
// store checks again (ErrBadName).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._-@", rune(c))) {
			return false
		}
	}
	return true
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const accountColumns = `id, name, role, password, password_changed, totp_secret, totp_pending,
	totp_last_step, totp_required, created, last_login, disabled`

func scanAccount(row interface{ Scan(...any) error }) (account, error) {
	var a account
	var role string
	err := row.Scan(&a.id, &a.name, &role, &a.password, &a.passwordChanged, &a.totpSecret, &a.totpPending,
		&a.totpLastStep, &a.totpRequired, &a.created, &a.lastLogin, &a.disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNoAccount
	}
	a.role = Role(role)
	return a, err
}

func accountByName(ctx context.Context, q querier, name string) (account, error) {
	return scanAccount(q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE name = ?`, name))
}

func accountByID(ctx context.Context, q querier, id int64) (account, error) {
	return scanAccount(q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
}

func (a account) public(codesLeft int) Account {
	p := Account{
		Name: a.name, Role: a.role, Disabled: a.disabled,
		TOTPEnrolled: a.totpSecret.Valid, TOTPRequired: a.totpRequired, RecoveryCodesLeft: codesLeft,
		Created: fromMS(a.created), PasswordChanged: fromMS(a.passwordChanged),
	}
	if a.lastLogin.Valid {
		p.LastLogin = fromMS(a.lastLogin.Int64)
	}
	return p
}

func insertAccount(ctx context.Context, tx *sql.Tx, name string, role Role, hash string, now time.Time) (Account, error) {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO accounts (name, role, password, password_changed, totp_required, created)
		VALUES (?, ?, ?, ?, ?, ?)`, name, string(role), hash, ms(now), role.totpRequiredByDefault(), ms(now))
	if isUniqueViolation(err) {
		return Account{}, ErrAccountExists
	}
	if err != nil {
		return Account{}, err
	}
	a, err := accountByName(ctx, tx, name)
	return a.public(0), err
}

// Accounts lists every account by name.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountColumns+`,
		(SELECT count(*) FROM recovery_codes r WHERE r.account_id = accounts.id AND r.used IS NULL)
		FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var (
			a    account
			role string
			left int
		)
		if err := rows.Scan(&a.id, &a.name, &role, &a.password, &a.passwordChanged, &a.totpSecret, &a.totpPending,
			&a.totpLastStep, &a.totpRequired, &a.created, &a.lastLogin, &a.disabled, &left); err != nil {
			return nil, fmt.Errorf("listing accounts: %w", err)
		}
		a.role = Role(role)
		out = append(out, a.public(left))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	return out, nil
}

// Account returns one account, or ErrNoAccount.
func (s *Store) Account(ctx context.Context, name string) (Account, error) {
	a, err := accountByName(ctx, s.db, normalizeName(name))
	if err != nil {
		return Account{}, fmt.Errorf("reading account %q: %w", name, err)
	}
	left, err := recoveryCodesLeft(ctx, s.db, a.id)
	if err != nil {
		return Account{}, fmt.Errorf("reading account %q: %w", name, err)
	}
	return a.public(left), nil
}

// manage runs f in a transaction for a technician's change to an account.
func (s *Store) manage(ctx context.Context, by Session, name string, allowSelf bool, f func(tx *sql.Tx, a account) error) error {
	name = normalizeName(name)
	if !Can(by.Role, AccountsManage) {
		return ErrForbidden
	}
	if !allowSelf && name == by.Account {
		return ErrSelf
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkActor(ctx, tx, by); err != nil {
			return err
		}
		a, err := accountByName(ctx, tx, name)
		if err != nil {
			return err
		}
		return f(tx, a)
	})
}

// checkActor checks, inside the transaction, that by is a live session of an
// enabled account that may manage accounts now. Neither the Session's Role
// nor its Account is taken on trust: a session looked up a moment ago must
// not outlive its holder's demotion, and a Session value assembled by
// mistake in the web UI grants nothing.
func (s *Store) checkActor(ctx context.Context, tx *sql.Tx, by Session) error {
	raw, ok := parseToken(by.Token)
	if !ok {
		return ErrForbidden
	}
	var (
		name, role        string
		disabled          bool
		created, lastSeen int64
	)
	err := tx.QueryRowContext(ctx, `
		SELECT a.name, a.role, a.disabled, s.created, s.last_seen
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.token_hash = ?`, tokenHash(raw)).Scan(&name, &role, &disabled, &created, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrForbidden
	}
	if err != nil {
		return err
	}
	now := s.now()
	live := now.Before(fromMS(lastSeen).Add(s.cfg.IdleTimeout)) && now.Before(fromMS(created).Add(s.cfg.AbsoluteTimeout))
	if !live || disabled || name != by.Account || !Can(Role(role), AccountsManage) {
		return ErrForbidden
	}
	return nil
}

// keepATechnician refuses to demote or disable a, the last enabled
// technician. ErrSelf and the actor check already imply another enabled
// technician exists; this stays in case either is ever relaxed, because a
// box with no technician can only be recovered by reinstalling.
func keepATechnician(ctx context.Context, tx *sql.Tx, a account) error {
	if a.role != Technician || a.disabled {
		return nil
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE role = ? AND disabled = 0`, string(Technician)).Scan(&n)
	if err != nil {
		return err
	}
	if n <= 1 {
		return ErrLastTechnician
	}
	return nil
}

// CreateAccount creates an account on a technician's behalf; by is the
// technician's Session as Lookup returned it (so for every method taking
// by). TOTP is required for technician and DSL accounts. Errors:
// ErrForbidden, ErrBadName, ErrBadRole, ErrAccountExists, ErrWeakPassword.
func (s *Store) CreateAccount(ctx context.Context, by Session, name string, role Role, password string) (Account, error) {
	name = normalizeName(name)
	if !Can(by.Role, AccountsManage) {
		return Account{}, ErrForbidden
	}
	if !ValidName(name) {
		return Account{}, ErrBadName
	}
	if !role.Valid() {
		return Account{}, ErrBadRole
	}
	if err := CheckPassword(name, password); err != nil {
		return Account{}, err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return Account{}, fmt.Errorf("creating account %q: %w", name, err)
	}
	var out Account
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkActor(ctx, tx, by); err != nil {
			return err
		}
		out, err = insertAccount(ctx, tx, name, role, hash, s.now())
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("creating account %q: %w", name, err)
	}
	s.log.Info("account created", "account", name, "role", string(role), "by", by.Account)
	return out, nil
}

// ResetPassword sets another account's password on a technician's behalf and
// ends its sessions.
func (s *Store) ResetPassword(ctx context.Context, by Session, name, password string) error {
	name = normalizeName(name)
	if !Can(by.Role, AccountsManage) {
		return ErrForbidden
	}
	if name == by.Account {
		return ErrSelf
	}
	if err := CheckPassword(name, password); err != nil {
		return err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("resetting password of %q: %w", name, err)
	}
	err = s.manage(ctx, by, name, false, func(tx *sql.Tx, a account) error {
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password = ?, password_changed = ? WHERE id = ?`,
			hash, ms(s.now()), a.id); err != nil {
			return err
		}
		_, err := revokeAll(ctx, tx, a.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("resetting password of %q: %w", name, err)
	}
	s.log.Info("password reset", "account", name, "by", by.Account)
	return nil
}

// SetRole changes another account's role and ends its sessions. Making an
// account technician or DSL turns its TOTP requirement on.
func (s *Store) SetRole(ctx context.Context, by Session, name string, role Role) error {
	if !role.Valid() {
		return ErrBadRole
	}
	err := s.manage(ctx, by, name, false, func(tx *sql.Tx, a account) error {
		if role != Technician {
			if err := keepATechnician(ctx, tx, a); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET role = ?, totp_required = totp_required OR ? WHERE id = ?`,
			string(role), role.totpRequiredByDefault(), a.id); err != nil {
			return err
		}
		_, err := revokeAll(ctx, tx, a.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting role of %q: %w", name, err)
	}
	s.log.Info("role changed", "account", normalizeName(name), "role", string(role), "by", by.Account)
	return nil
}

// SetDisabled disables or re-enables another account. Disabling ends its sessions.
func (s *Store) SetDisabled(ctx context.Context, by Session, name string, disabled bool) error {
	err := s.manage(ctx, by, name, false, func(tx *sql.Tx, a account) error {
		if disabled {
			if err := keepATechnician(ctx, tx, a); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET disabled = ? WHERE id = ?`, disabled, a.id); err != nil {
			return err
		}
		if !disabled {
			return nil
		}
		_, err := revokeAll(ctx, tx, a.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting %q disabled=%v: %w", name, disabled, err)
	}
	s.log.Info("account disabled changed", "account", normalizeName(name), "disabled", disabled, "by", by.Account)
	return nil
}

// SetTOTPRequired turns the TOTP requirement of an account (one's own
// included) on or off. The caller audits it. An enrolled account keeps
// needing its code either way; the flag decides whether enrolment is forced.
func (s *Store) SetTOTPRequired(ctx context.Context, by Session, name string, required bool) error {
	err := s.manage(ctx, by, name, true, func(tx *sql.Tx, a account) error {
		_, err := tx.ExecContext(ctx, `UPDATE accounts SET totp_required = ? WHERE id = ?`, required, a.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting TOTP requirement of %q: %w", name, err)
	}
	s.log.Info("totp requirement changed", "account", normalizeName(name), "required", required, "by", by.Account)
	return nil
}

// ResetTOTP removes another account's authenticator and recovery codes (a
// lost phone) and ends its sessions; if TOTP is required it enrols again at
// its next login.
func (s *Store) ResetTOTP(ctx context.Context, by Session, name string) error {
	err := s.manage(ctx, by, name, false, func(tx *sql.Tx, a account) error {
		if _, err := tx.ExecContext(ctx, `
			UPDATE accounts SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0 WHERE id = ?`, a.id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account_id = ?`, a.id); err != nil {
			return err
		}
		_, err := revokeAll(ctx, tx, a.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("resetting TOTP of %q: %w", name, err)
	}
	s.log.Info("totp reset", "account", normalizeName(name), "by", by.Account)
	return nil
}

// reauth checks the session holder's password again before a sensitive
// change, throttled like a login.
func (s *Store) reauth(ctx context.Context, sess Session, password string) (account, error) {
	keys := throttleKeys(sess.Account, sess.Addr)
	now := s.now()
	att, err := s.throttleBegin(ctx, keys, now)
	if err != nil {
		return account{}, s.logThrottled(err, sess.Addr)
	}
	defer att.end(ctx)
	a, err := accountByName(ctx, s.db, sess.Account)
	if err != nil {
		return account{}, err
	}
	ok, _, err := s.hasher.verify(ctx, a.password, password)
	if err != nil {
		return account{}, err
	}
	if !ok {
		att.fail()
		s.log.Warn("password check failed", "account", a.name, "addr", addrString(sess.Addr))
		return account{}, ErrBadCredentials
	}
	if a.disabled {
		return account{}, ErrDisabled
	}
	return a, throttleReset(ctx, s.db, keys[0])
}

// ChangePassword changes the session holder's own password after checking
// the current one. Every session of the account ends, this one included; the
// returned Session replaces it (set the new cookie).
func (s *Store) ChangePassword(ctx context.Context, sess Session, old, password string) (Session, error) {
	if err := CheckPassword(sess.Account, password); err != nil {
		return Session{}, err
	}
	if old == password {
		return Session{}, ErrPasswordReused
	}
	a, err := s.reauth(ctx, sess, old)
	if err != nil {
		return Session{}, fmt.Errorf("changing password: %w", err)
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return Session{}, fmt.Errorf("changing password: %w", err)
	}
	var out Session
	err = s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password = ?, password_changed = ? WHERE id = ?`,
			hash, ms(now), a.id); err != nil {
			return err
		}
		if _, err := revokeAll(ctx, tx, a.id); err != nil {
			return err
		}
		out, err = s.createSession(ctx, tx, a, sess.Addr, now)
		return err
	})
	if err != nil {
		return Session{}, fmt.Errorf("changing password: %w", err)
	}
	s.log.Info("password changed", "account", a.name)
	return out, nil
}

// BeginTOTP starts (or restarts) enrolment of an authenticator for the
// session holder, after checking the password. The current authenticator,
// if any, keeps working until ConfirmTOTP.
func (s *Store) BeginTOTP(ctx context.Context, sess Session, password string) (Enrolment, error) {
	a, err := s.reauth(ctx, sess, password)
	if err != nil {
		return Enrolment{}, fmt.Errorf("enrolling authenticator: %w", err)
	}
	secret := newSecret()
	if _, err := s.db.ExecContext(ctx, `UPDATE accounts SET totp_pending = ? WHERE id = ?`, secret, a.id); err != nil {
		return Enrolment{}, fmt.Errorf("enrolling authenticator: %w", err)
	}
	return Enrolment{Secret: secret, URI: TOTPURI(s.cfg.Issuer, a.name, secret)}, nil
}

// ConfirmTOTP finishes BeginTOTP with the first code from the new
// authenticator and returns ten new recovery codes, which replace any old
// ones. Errors: ErrNotEnrolled (no BeginTOTP), ErrBadCode.
func (s *Store) ConfirmTOTP(ctx context.Context, sess Session, code string) ([]string, error) {
	a, err := accountByName(ctx, s.db, sess.Account)
	if err != nil {
		return nil, fmt.Errorf("confirming authenticator: %w", err)
	}
	if !a.totpPending.Valid {
		return nil, ErrNotEnrolled
	}
	keys := throttleKeys(a.name, sess.Addr)
	now := s.now()
	att, err := s.throttleBegin(ctx, keys, now)
	if err != nil {
		return nil, s.logThrottled(err, sess.Addr)
	}
	defer att.end(ctx)
	key, err := ParseSecret(a.totpPending.String)
	if err != nil {
		return nil, fmt.Errorf("confirming authenticator: %w", err)
	}
	// A step is only usable once, even across a change of secret.
	c, ok := normalizeTOTPCode(code)
	step, ok2 := verifyTOTP(key, c, now, a.totpLastStep)
	if !ok || !ok2 {
		att.fail()
		return nil, ErrBadCode
	}
	var codes []string
	err = s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `
			UPDATE accounts SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?
			WHERE id = ? AND totp_pending = ? AND totp_last_step < ?`, step, a.id, a.totpPending.String, step)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return ErrBadCode
		}
		if err := throttleReset(ctx, tx, keys[0]); err != nil {
			return err
		}
		codes, err = replaceRecoveryCodes(ctx, tx, a.id)
		return err
	})
	if errors.Is(err, ErrBadCode) {
		return nil, ErrBadCode
	}
	if err != nil {
		return nil, fmt.Errorf("confirming authenticator: %w", err)
	}
	s.log.Info("authenticator enrolled", "account", a.name)
	return codes, nil
}

// NewRecoveryCodes replaces the session holder's recovery codes after
// checking the password, and returns the new ones to show once.
func (s *Store) NewRecoveryCodes(ctx context.Context, sess Session, password string) ([]string, error) {
	a, err := s.reauth(ctx, sess, password)
	if err != nil {
		return nil, fmt.Errorf("renewing recovery codes: %w", err)
	}
	if !a.totpSecret.Valid {
		return nil, ErrNotEnrolled
	}
	var codes []string
	err = s.tx(ctx, func(tx *sql.Tx) error {
		codes, err = replaceRecoveryCodes(ctx, tx, a.id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renewing recovery codes: %w", err)
	}
	s.log.Info("recovery codes renewed", "account", a.name)
	return codes, nil
}

func replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, id int64) ([]string, error) {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account_id = ?`, id); err != nil {
		return nil, err
	}
	codes := make([]string, 0, recoveryCodes)
	for len(codes) < recoveryCodes {
		c := newRecoveryCode()
		n, _ := normalizeRecoveryCode(c)
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (account_id, hash) VALUES (?, ?)`,
			id, hashRecoveryCode(n)); err != nil {
			return nil, err
		}
		codes = append(codes, c)
	}
	return codes, nil
}

func recoveryCodesLeft(ctx context.Context, q querier, id int64) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE account_id = ? AND used IS NULL`, id).Scan(&n)
	return n, err
}
