package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Session is a logged-in account, as Login, CompleteTOTP and Lookup return it.
// Token and CSRF are secrets: Session's LogValue leaves them out of logs.
type Session struct {
	// Token is the cookie value: 43 characters of unpadded base64url, safe in
	// a cookie without quoting. Send it Secure, HttpOnly, SameSite=Strict.
	Token string
	// CSRF goes into every form and htmx request; check it with CheckCSRF.
	CSRF    string
	Account string
	Role    Role
	// Addr is the client address the session was made from.
	Addr        netip.Addr
	Created     time.Time
	LastSeen    time.Time
	IdleExpires time.Time // LastSeen + IdleTimeout
	Expires     time.Time // Created + AbsoluteTimeout
}

// CheckCSRF compares a submitted CSRF token with the session's in constant time.
func (s Session) CheckCSRF(token string) bool {
	return s.CSRF != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// LogValue keeps the token and CSRF token out of logs.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("account", s.Account), slog.String("role", string(s.Role)),
		slog.String("addr", addrString(s.Addr)))
}

const tokenBytes = 32

// newToken returns a random token and its cookie encoding.
func newToken() ([]byte, string) {
	b := make([]byte, tokenBytes)
	rand.Read(b)
	return b, base64.RawURLEncoding.EncodeToString(b)
}

func newTokenString() string { _, s := newToken(); return s }

// parseToken decodes a token as it comes back from a cookie or form: exactly
// 43 base64url characters encoding 32 bytes.
func parseToken(s string) ([]byte, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, false
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != tokenBytes {
		return nil, false
	}
	return b, true
}

func tokenHash(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:]
}

// csrfFor derives the session's CSRF token from its secret token, so it needs
// no storage and a copy of the database (which holds only token hashes)
// cannot produce it.
func csrfFor(raw []byte) string {
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("schoolgate csrf v1"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// createSession inserts a session for the account inside tx.
func (s *Store) createSession(ctx context.Context, tx *sql.Tx, a account, addr netip.Addr, now time.Time) (Session, error) {
	raw, tok := newToken()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO sessions (token_hash, account_id, addr, created, last_seen) VALUES (?, ?, ?, ?, ?)`,
		tokenHash(raw), a.id, addrString(addr), ms(now), ms(now)); err != nil {
		return Session{}, fmt.Errorf("creating session: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET last_login = ? WHERE id = ?`, ms(now), a.id); err != nil {
		return Session{}, fmt.Errorf("creating session: %w", err)
	}
	return s.session(raw, tok, a.name, a.role, addr, now, now), nil
}

func (s *Store) session(raw []byte, tok, name string, role Role, addr netip.Addr, created, seen time.Time) Session {
	return Session{
		Token: tok, CSRF: csrfFor(raw), Account: name, Role: role, Addr: addr,
		Created: created, LastSeen: seen,
		IdleExpires: seen.Add(s.cfg.IdleTimeout), Expires: created.Add(s.cfg.AbsoluteTimeout),
	}
}

// Lookup returns the session for a cookie value and slides its idle timer.
// It fails with ErrNoSession for unknown, malformed or revoked tokens and for
// disabled accounts, and with ErrSessionExpired after a timeout. The role is
// read afresh from the account.
func (s *Store) Lookup(ctx context.Context, token string) (Session, error) {
	raw, ok := parseToken(token)
	if !ok {
		return Session{}, ErrNoSession
	}
	h := tokenHash(raw)
	var (
		id, created, seen int64
		addr, name, role  string
		disabled          bool
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT s.id, s.addr, s.created, s.last_seen, a.name, a.role, a.disabled
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.token_hash = ?`, h).Scan(&id, &addr, &created, &seen, &name, &role, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("looking up session: %w", err)
	}
	now := s.now()
	sess := s.session(raw, token, name, Role(role), parseAddr(addr), fromMS(created), fromMS(seen))
	expired := !now.Before(sess.IdleExpires) || !now.Before(sess.Expires)
	if expired || disabled {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
			return Session{}, fmt.Errorf("ending session: %w", err)
		}
		if disabled {
			return Session{}, ErrNoSession
		}
		return Session{}, ErrSessionExpired
	}
	if now.Sub(sess.LastSeen) >= slideEvery {
		if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen = ? WHERE id = ?`, ms(now), id); err != nil {
			return Session{}, fmt.Errorf("sliding session: %w", err)
		}
		sess.LastSeen = fromMS(ms(now))
		sess.IdleExpires = sess.LastSeen.Add(s.cfg.IdleTimeout)
	}
	return sess, nil
}

// Logout ends the session. Unknown tokens are not an error.
func (s *Store) Logout(ctx context.Context, token string) error {
	raw, ok := parseToken(token)
	if !ok {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash(raw)); err != nil {
		return fmt.Errorf("logging out: %w", err)
	}
	return nil
}

// RevokeAll ends every session and pending login of the account and returns
// how many sessions ended. The Store calls it itself on password, role, TOTP
// reset and disable; the web UI may call it for "log out everywhere".
func (s *Store) RevokeAll(ctx context.Context, name string) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, normalizeName(name))
		if err != nil {
			return err
		}
		n, err = revokeAll(ctx, tx, a.id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoking sessions of %q: %w", name, err)
	}
	s.log.Info("sessions revoked", "account", normalizeName(name), "sessions", n)
	return n, nil
}

func revokeAll(ctx context.Context, tx *sql.Tx, id int64) (int, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = ?`, id)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE account_id = ?`, id); err != nil {
		return 0, err
	}
	return int(n), nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func parseAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}
