package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Throttling counts failed attempts per account name and per client address.
// Failures are kept in SQLite, so a restart forgives nothing; attempts still
// being checked are counted in memory (the daemon is one process), so that
// parallel requests cannot all pass the same count before the first failure
// is written. Successes never refresh an address's counter: it fades only
// after Throttle.Forget without failures, so an insider cannot wash it with
// logins of their own account between guesses at others.

const (
	kindAccount = 1
	kindAddr    = 2
)

type throttleKey struct {
	kind int
	key  string
}

func throttleKeys(name string, addr netip.Addr) []throttleKey {
	if len(name) > maxNameLen {
		name = name[:maxNameLen] // still counted, in a bounded key
	}
	return []throttleKey{{kindAccount, name}, {kindAddr, addrKey(addr)}}
}

// addrKey groups IPv6 clients by /64, the smallest network a client
// usually controls; an unknown address shares one bucket.
func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// throttle holds the attempts under way.
type throttle struct {
	mu       sync.Mutex
	inflight map[throttleKey]int
}

// delay is how long after the last failure the next attempt must wait when
// there have been failures: Free of them cost nothing, then Base doubling up
// to Max.
func (s *Store) delay(failures int) time.Duration {
	t := s.cfg.Throttle
	if failures < t.Free {
		return 0
	}
	n := failures - t.Free
	if n >= 40 {
		return t.Max
	}
	d := t.Base << n
	if d <= 0 || d > t.Max {
		return t.Max
	}
	return d
}

// attempt is one login-like attempt under way, from throttleBegin to end.
type attempt struct {
	s      *Store
	keys   []throttleKey
	now    time.Time
	failed []throttleKey
}

// throttleBegin refuses the attempt with a *ThrottledError while any key
// must wait; otherwise the attempt counts as under way until end, which
// records the failures marked with fail. Call end outside any transaction.
func (s *Store) throttleBegin(ctx context.Context, keys []throttleKey, now time.Time) (*attempt, error) {
	s.throttle.mu.Lock()
	defer s.throttle.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		var (
			failures int
			last     int64
		)
		err := s.db.QueryRowContext(ctx, `SELECT failures, last_failure FROM throttle WHERE kind = ? AND key = ?`,
			k.kind, k.key).Scan(&failures, &last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("reading login throttle: %w", err)
		}
		ref := fromMS(last)
		if failures == 0 || now.Sub(ref) >= s.cfg.Throttle.Forget {
			// Only attempts under way: the delay runs from now.
			failures, ref = 0, now
		}
		wait = max(wait, s.delay(failures+s.throttle.inflight[k])-now.Sub(ref))
	}
	if wait > 0 {
		// Whole seconds, rounded up: what a Retry-After header carries.
		return nil, &ThrottledError{RetryAfter: (wait + time.Second - 1).Truncate(time.Second)}
	}
	if s.throttle.inflight == nil {
		s.throttle.inflight = map[throttleKey]int{}
	}
	for _, k := range keys {
		s.throttle.inflight[k]++
	}
	return &attempt{s: s, keys: keys, now: now}, nil
}

// fail marks keys (by default all of the attempt's) as failed.
func (a *attempt) fail(keys ...throttleKey) {
	if len(keys) == 0 {
		keys = a.keys
	}
	a.failed = append(a.failed, keys...)
}

// end records the failures and ends the attempt, both under the throttle's
// lock, so that throttleBegin never sees a failure twice (written and still
// under way) or not at all. The write ignores cancellation: a client that
// hangs up must not escape the count.
func (a *attempt) end(ctx context.Context) {
	s := a.s
	s.throttle.mu.Lock()
	defer s.throttle.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	for _, k := range a.failed {
		if _, err := s.db.ExecContext(ctx, `
			INSERT INTO throttle (kind, key, failures, last_failure) VALUES (?, ?, 1, ?)
			ON CONFLICT (kind, key) DO UPDATE SET
				failures = CASE WHEN last_failure <= ? THEN 1 ELSE failures + 1 END,
				last_failure = excluded.last_failure`,
			k.kind, k.key, ms(a.now), ms(a.now)-s.cfg.Throttle.Forget.Milliseconds()); err != nil {
			s.log.Error("recording login failure", "err", err)
		}
	}
	for _, k := range a.keys {
		if s.throttle.inflight[k]--; s.throttle.inflight[k] <= 0 {
			delete(s.throttle.inflight, k)
		}
	}
}

// throttleReset clears a counter; a full login clears its account's.
func throttleReset(ctx context.Context, q querier, k throttleKey) error {
	_, err := q.ExecContext(ctx, `DELETE FROM throttle WHERE kind = ? AND key = ?`, k.kind, k.key)
	return err
}

func (s *Store) logThrottled(err error, addr netip.Addr) error {
	var te *ThrottledError
	if errors.As(err, &te) {
		s.log.Warn("login throttled", "addr", addrString(addr), "retry_after", te.RetryAfter)
		return err
	}
	return fmt.Errorf("logging in: %w", err)
}
