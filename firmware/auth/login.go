package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Pending is a login whose password was right and which now needs its second
// factor. Token is a secret: carry it in a hidden form field or a short-lived
// cookie, and hand it to CompleteTOTP.
type Pending struct {
	Token   string
	Account string
	Expires time.Time
	// Enrolment is set when the account must enrol an authenticator first:
	// show Enrolment.URI as a QR code (and the secret for typing), then ask
	// for the first code. CompleteTOTP then also returns the recovery codes.
	Enrolment *Enrolment
}

// LogValue keeps the token and secret out of logs.
func (p Pending) LogValue() slog.Value {
	return slog.GroupValue(slog.String("account", p.Account), slog.Bool("enrol", p.Enrolment != nil))
}

// LoginResult is what Login and CompleteTOTP return. Exactly one of Session
// and Pending is set when the step went through.
type LoginResult struct {
	Session *Session
	Pending *Pending
	// RecoveryCodes are set once, when CompleteTOTP finished an enrolment:
	// show them to the user now; they are not kept in readable form.
	RecoveryCodes []string
	// UsedRecoveryCode is set when CompleteTOTP was given a recovery code
	// (for the audit trail); RecoveryCodesLeft says how many remain.
	UsedRecoveryCode  bool
	RecoveryCodesLeft int
}

// Login checks name and password from the client at addr.
//
// With no second factor it returns a Session and nil. When the account has
// TOTP it returns a Pending and ErrTOTPRequired; when TOTP is required but not
// yet enrolled, a Pending with an Enrolment and ErrTOTPEnrolRequired. Other
// errors: ErrBadCredentials (unknown name or wrong password, alike in answer
// and in work), a *ThrottledError (ErrThrottled), ErrDisabled.
func (s *Store) Login(ctx context.Context, name, password string, addr netip.Addr) (LoginResult, error) {
	if err := s.prune(ctx, false); err != nil {
		s.log.Warn("pruning accounts database", "err", err)
	}
	name = normalizeName(name)
	keys := throttleKeys(name, addr)
	now := s.now()
	att, err := s.throttleBegin(ctx, keys, now)
	if err != nil {
		return LoginResult{}, s.logThrottled(err, addr)
	}
	defer att.end(ctx)
	a, err := accountByName(ctx, s.db, name)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNoAccount) {
		return LoginResult{}, fmt.Errorf("logging in: %w", err)
	}
	encoded := s.dummy
	if found {
		encoded = a.password
	}
	ok, rehash, err := s.hasher.verify(ctx, encoded, password)
	if err != nil {
		s.log.Error("password hash unreadable", "account", name, "err", err)
		return LoginResult{}, fmt.Errorf("logging in: %w", err)
	}
	if !found || !ok {
		att.fail()
		// An unknown name is not logged: people type passwords into it.
		if found {
			s.log.Warn("login failed", "account", name, "addr", addrString(addr), "reason", "wrong password")
		} else {
			s.log.Warn("login failed", "addr", addrString(addr), "reason", "unknown account")
		}
		return LoginResult{}, ErrBadCredentials
	}
	if a.disabled {
		s.log.Warn("login failed", "account", name, "addr", addrString(addr), "reason", "disabled")
		return LoginResult{}, ErrDisabled
	}
	var newHash string
	if rehash {
		if newHash, err = s.hasher.hash(ctx, password); err != nil {
			return LoginResult{}, fmt.Errorf("logging in: %w", err)
		}
	}
	enrol := !a.totpSecret.Valid && a.totpRequired
	needCode := a.totpSecret.Valid || enrol
	var res LoginResult
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if newHash != "" {
			// Only if nobody changed the password meanwhile.
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password = ? WHERE id = ? AND password = ?`,
				newHash, a.id, a.password); err != nil {
				return err
			}
		}
		if needCode {
			// Until the second factor, the login counts as a failure of the
			// account: knowing the password must not buy unlimited guesses
			// at the code. The address guessed nothing wrong.
			att.fail(keys[0])
			p, err := s.createPending(ctx, tx, a, enrol, now)
			res.Pending = &p
			return err
		}
		if err := throttleReset(ctx, tx, keys[0]); err != nil {
			return err
		}
		sess, err := s.createSession(ctx, tx, a, addr, now)
		res.Session = &sess
		return err
	})
	if err != nil {
		return LoginResult{}, fmt.Errorf("logging in: %w", err)
	}
	if newHash != "" {
		s.log.Info("password rehashed with current parameters", "account", name)
	}
	if res.Pending != nil {
		if enrol {
			return res, ErrTOTPEnrolRequired
		}
		return res, ErrTOTPRequired
	}
	s.log.Info("logged in", "account", name, "role", string(a.role), "addr", addrString(addr))
	return res, nil
}

func (s *Store) createPending(ctx context.Context, tx *sql.Tx, a account, enrol bool, now time.Time) (Pending, error) {
	raw, tok := newToken()
	p := Pending{Token: tok, Account: a.name, Expires: fromMS(ms(now.Add(s.cfg.PendingTimeout)))}
	if enrol {
		// Keep a secret already shown (and perhaps scanned) at an earlier attempt.
		secret := a.totpPending.String
		if !a.totpPending.Valid {
			secret = newSecret()
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET totp_pending = ? WHERE id = ?`, secret, a.id); err != nil {
				return Pending{}, err
			}
		}
		p.Enrolment = &Enrolment{Secret: secret, URI: TOTPURI(s.cfg.Issuer, a.name, secret)}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pending (token_hash, account_id, enrol, expires) VALUES (?, ?, ?, ?)`,
		tokenHash(raw), a.id, enrol, ms(p.Expires)); err != nil {
		return Pending{}, err
	}
	return p, nil
}

// CompleteTOTP finishes a Pending login with a 6-digit TOTP code or, when
// the account is enrolled, one of its recovery codes. Errors: ErrBadCode,
// ErrPendingExpired (too late, unknown token, or too many wrong codes), a
// *ThrottledError, ErrDisabled.
func (s *Store) CompleteTOTP(ctx context.Context, pendingToken, code string, addr netip.Addr) (LoginResult, error) {
	raw, ok := parseToken(pendingToken)
	if !ok {
		return LoginResult{}, ErrPendingExpired
	}
	ph := tokenHash(raw)
	now := s.now()
	var (
		accountID, expires int64
		enrol              bool
	)
	err := s.db.QueryRowContext(ctx, `SELECT account_id, enrol, expires FROM pending WHERE token_hash = ?`, ph).
		Scan(&accountID, &enrol, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return LoginResult{}, ErrPendingExpired
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("completing login: %w", err)
	}
	a, err := accountByID(ctx, s.db, accountID)
	if err != nil {
		return LoginResult{}, fmt.Errorf("completing login: %w", err)
	}
	if now.UnixMilli() >= expires || a.disabled {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM pending WHERE token_hash = ?`, ph); err != nil {
			return LoginResult{}, fmt.Errorf("completing login: %w", err)
		}
		if a.disabled {
			return LoginResult{}, ErrDisabled
		}
		return LoginResult{}, ErrPendingExpired
	}
	keys := throttleKeys(a.name, addr)
	att, err := s.throttleBegin(ctx, keys, now)
	if err != nil {
		return LoginResult{}, s.logThrottled(err, addr)
	}
	defer att.end(ctx)
	secret := a.totpSecret
	if enrol {
		secret = a.totpPending
	}
	if !secret.Valid {
		return LoginResult{}, ErrPendingExpired
	}
	key, err := ParseSecret(secret.String)
	if err != nil {
		return LoginResult{}, fmt.Errorf("completing login of %q: %w", a.name, err)
	}
	totp, isTOTP := normalizeTOTPCode(code)
	rc, isRC := normalizeRecoveryCode(code)
	var (
		res     LoginResult
		badCode bool
	)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		good := false
		switch {
		case isTOTP:
			step, ok := verifyTOTP(key, totp, now, a.totpLastStep)
			if ok {
				// The WHERE refuses a step used meanwhile by a parallel login.
				r, err := tx.ExecContext(ctx, `UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`,
					step, a.id, step)
				if err != nil {
					return err
				}
				n, _ := r.RowsAffected()
				good = n == 1
			}
		case isRC && !enrol:
			r, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used = ? WHERE account_id = ? AND hash = ? AND used IS NULL`,
				ms(now), a.id, hashRecoveryCode(rc))
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			good = n == 1
			res.UsedRecoveryCode = good
		}
		if !good {
			badCode = true
			att.fail()
			if _, err := tx.ExecContext(ctx, `UPDATE pending SET attempts = attempts + 1 WHERE token_hash = ?`, ph); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE token_hash = ? AND attempts >= ?`, ph, maxPendingAttempts)
			return err
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE token_hash = ?`, ph)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return ErrPendingExpired // completed by a parallel request
		}
		if enrol {
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET totp_secret = totp_pending, totp_pending = NULL WHERE id = ?`, a.id); err != nil {
				return err
			}
			if res.RecoveryCodes, err = replaceRecoveryCodes(ctx, tx, a.id); err != nil {
				return err
			}
		}
		if res.UsedRecoveryCode {
			if res.RecoveryCodesLeft, err = recoveryCodesLeft(ctx, tx, a.id); err != nil {
				return err
			}
		}
		if err := throttleReset(ctx, tx, keys[0]); err != nil {
			return err
		}
		sess, err := s.createSession(ctx, tx, a, addr, now)
		res.Session = &sess
		return err
	})
	if errors.Is(err, ErrPendingExpired) {
		return LoginResult{}, ErrPendingExpired
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("completing login of %q: %w", a.name, err)
	}
	if badCode {
		s.log.Warn("login failed", "account", a.name, "addr", addrString(addr), "reason", "wrong code")
		return LoginResult{}, ErrBadCode
	}
	switch {
	case enrol:
		s.log.Info("authenticator enrolled at login", "account", a.name)
	case res.UsedRecoveryCode:
		s.log.Warn("recovery code used", "account", a.name, "addr", addrString(addr), "left", res.RecoveryCodesLeft)
	}
	s.log.Info("logged in", "account", a.name, "role", string(a.role), "addr", addrString(addr))
	return res, nil
}

// First start.

// NeedsSetup reports whether no account exists yet.
func (s *Store) NeedsSetup(ctx context.Context) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		return false, fmt.Errorf("counting accounts: %w", err)
	}
	return n == 0, nil
}

// SetupToken issues a new one-time setup token while no account exists,
// replacing any earlier one; the daemon calls it at every start and prints
// the setup link. It is valid for SetupTTL. Once an account exists it
// returns ErrSetupDone.
func (s *Store) SetupToken(ctx context.Context) (string, error) {
	tok := rand.Text() // 26 base32 characters, 130 bits; easy to type from a console
	expires := s.now().Add(s.cfg.SetupTTL)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrSetupDone
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO setup (id, token_hash, expires) VALUES (1, ?, ?)`,
			setupHash(tok), ms(expires))
		return err
	})
	if errors.Is(err, ErrSetupDone) {
		return "", ErrSetupDone
	}
	if err != nil {
		return "", fmt.Errorf("issuing setup token: %w", err)
	}
	s.log.Info("setup token issued", "expires", expires)
	return tok, nil
}

func setupHash(tok string) []byte {
	h := sha256.Sum256([]byte("schoolgate setup v1\x00" + strings.ToUpper(strings.TrimSpace(tok))))
	return h[:]
}

// CreateFirst spends the setup token on the first account, a technician with
// TOTP required. Errors: ErrSetupToken, ErrSetupDone, ErrBadName, ErrWeakPassword.
func (s *Store) CreateFirst(ctx context.Context, token, name, password string) (Account, error) {
	if err := s.checkSetupToken(ctx, s.db, token); err != nil {
		return Account{}, err
	}
	name = normalizeName(name)
	if !ValidName(name) {
		return Account{}, ErrBadName
	}
	if err := CheckPassword(name, password); err != nil {
		return Account{}, err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return Account{}, fmt.Errorf("creating first account: %w", err)
	}
	var a Account
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// Again inside the transaction: two browsers may race.
		if err := s.checkSetupToken(ctx, tx, token); err != nil {
			return err
		}
		if a, err = insertAccount(ctx, tx, name, Technician, hash, s.now()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM setup`)
		return err
	})
	if errors.Is(err, ErrSetupToken) || errors.Is(err, ErrSetupDone) {
		return Account{}, err
	}
	if err != nil {
		return Account{}, fmt.Errorf("creating first account: %w", err)
	}
	s.log.Info("first account created", "account", name, "role", string(Technician))
	return a, nil
}

func (s *Store) checkSetupToken(ctx context.Context, q querier, token string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		return fmt.Errorf("checking setup token: %w", err)
	}
	if n > 0 {
		return ErrSetupDone
	}
	var (
		h       []byte
		expires int64
	)
	err := q.QueryRowContext(ctx, `SELECT token_hash, expires FROM setup WHERE id = 1`).Scan(&h, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrSetupToken
	}
	if err != nil {
		return fmt.Errorf("checking setup token: %w", err)
	}
	if subtle.ConstantTimeCompare(h, setupHash(token)) != 1 || s.now().UnixMilli() >= expires {
		return ErrSetupToken
	}
	return nil
}
