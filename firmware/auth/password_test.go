package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Made with the reference implementation (Debian's argon2 0~20171227):
//
//	echo -n "correct horse battery staple" | argon2 schoolgatesalt16 -id -t 2 -k 19456 -p 1 -l 32 -e
//	echo -n "password" | argon2 somesaltsomesalt -id -t 1 -k 64 -p 2 -l 16 -e
var referenceHashes = []struct{ password, phc string }{
	{"correct horse battery staple", "$argon2id$v=19$m=19456,t=2,p=1$c2Nob29sZ2F0ZXNhbHQxNg$MziGDmK00cCDnZAJQ+aTEPnKNVYwELPmGnJnzrPqylo"},
	{"password", "$argon2id$v=19$m=64,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w"},
}

func TestReferenceHashes(t *testing.T) {
	h := newHasher(DefaultParams(), 1)
	for _, tc := range referenceHashes {
		ok, _, err := h.verify(context.Background(), tc.phc, tc.password)
		if err != nil || !ok {
			t.Errorf("verify(%q, %q) = %v, %v; want true", tc.phc, tc.password, ok, err)
		}
		ok, _, err = h.verify(context.Background(), tc.phc, tc.password+"x")
		if err != nil || ok {
			t.Errorf("verify(%q, wrong) = %v, %v; want false", tc.phc, ok, err)
		}
		ph, err := parsePHC(tc.phc)
		if err != nil {
			t.Fatal(err)
		}
		if got := ph.String(); got != tc.phc {
			t.Errorf("round trip: got %q, want %q", got, tc.phc)
		}
	}
}

func TestDefaultParams(t *testing.T) {
	p := DefaultParams()
	// OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
	if p.Memory != 19456 || p.Time != 2 || p.Threads != 1 || p.SaltLen != 16 || p.KeyLen != 32 {
		t.Errorf("DefaultParams() = %+v", p)
	}
	if err := p.validate(); err != nil {
		t.Error(err)
	}
}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newHasher(testParams, 2)
	enc, err := h.hash(ctx, "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash = %q", enc)
	}
	enc2, _ := h.hash(ctx, "a long enough passphrase")
	if enc == enc2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		pw     string
		params Params
		ok     bool
		rehash bool
	}{
		{"a long enough passphrase", testParams, true, false},
		{"a long enough passphrasE", testParams, false, false},
		{"", testParams, false, false},
		{"a long enough passphrase", Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, true, true},
		{"a long enough passphrase", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}, true, true},
	} {
		v := newHasher(tc.params, 1)
		ok, rehash, err := v.verify(ctx, enc, tc.pw)
		if err != nil || ok != tc.ok || (ok && rehash != tc.rehash) {
			t.Errorf("verify(%q) with %+v = %v, %v, %v; want %v, %v", tc.pw, tc.params, ok, rehash, err, tc.ok, tc.rehash)
		}
	}
	if _, _, err := h.verify(ctx, "$2y$10$bcrypt", "x"); !errors.Is(err, ErrBadHash) {
		t.Errorf("verify(bcrypt) error = %v, want ErrBadHash", err)
	}
}

func TestParsePHC(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", "YDWZ7SC7/FISnTlw8W9X9w"
	good := "$argon2id$v=19$m=64,t=1,p=2$" + salt + "$" + key
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("parsePHC(%q): %v", good, err)
	}
	for _, bad := range []string{
		"",
		"$argon2i$v=19$m=64,t=1,p=2$" + salt + "$" + key,
		"$argon2d$v=19$m=64,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=2$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=2$" + salt + "$" + key, // v missing
		"$argon2id$v=19$m=64,t=1,p=2$" + salt,
		"$argon2id$v=19$m=64,t=1,p=2$" + salt + "$" + key + "$",
		"$argon2id$v=19$t=1,m=64,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=2,keyid=x$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=17,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key, // m < 8p
		"$argon2id$v=19$m=4294967295,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967296,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=262145,t=1,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=2$" + salt + "==$" + key,
		"$argon2id$v=19$m=64,t=1,p=2$" + salt + "$" + key + "\n",
		"$argon2id$v=19$m=64,t=1,p=2$c29tZXNh\nbHRzb21lc2FsdA$" + key,
		"$argon2id$v=19$m=64,t=1,p=2$c29tZXNhbHRzb21lc2FsdB$" + key, // non-zero trailing bits
		"$argon2id$v=19$m=64,t=1,p=2$c29tZQ$" + key,                 // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=2$" + salt + "$YDWZ7SC7",         // 6-byte hash
		"$argon2id$v=19$m=64,t=1,p=2$" + salt + "$" + strings.Repeat("A", 100),
		"$argon2id$v=19$m=64,t=1,p=2$" + salt + "$YDWZ7SC7_FISnTlw8W9X9w", // base64url
	} {
		if _, err := parsePHC(bad); !errors.Is(err, ErrBadHash) {
			t.Errorf("parsePHC(%q) error = %v, want ErrBadHash", bad, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		name, pw string
		want     error
	}{
		{"alice", "correct horse battery staple", nil},
		{"alice", "Tr0ub4dor&3-xyzzy", nil},
		{"alice", "ünïcødé-pässwörd", nil},
		{"alice", "short", ErrPasswordTooShort},
		{"alice", "elevenchars", ErrPasswordTooShort},
		{"alice", "äöüäöüäöüäö", ErrPasswordTooShort}, // 11 runes, 22 bytes
		{"alice", strings.Repeat("ab1!", 257), ErrPasswordTooLong},
		{"alice", "bad\x00password-here", ErrPasswordInvalid},
		{"alice", "bad\xffpassword-here", ErrPasswordInvalid},
		{"alice", "password1234", ErrPasswordCommon},
		{"alice", "123456789012", ErrPasswordCommon},
		{"alice", "Password2025!", ErrPasswordCommon},
		{"alice", "P@ssw0rd2025", ErrPasswordCommon},
		{"alice", "!!Summer2025!!", ErrPasswordCommon},
		{"alice", "Liverpool1892", ErrPasswordCommon},
		{"alice", "qwertyuiop123", ErrPasswordCommon},
		{"alice", "1q2w3e4r5t6y", ErrPasswordCommon},
		{"alice", "aaaaaaaaaaaaaa", ErrPasswordCommon},
		{"alice", "abababababab", ErrPasswordCommon},
		{"alice", "monkeymonkeymonkey", ErrPasswordCommon},
		{"alice", "Sch00lgate123", ErrPasswordCommon},
		{"alice", "alice-in-wonderland", ErrPasswordHasName},
		{"Alice", "ALICE-in-wonderland", ErrPasswordHasName},
		{"al", "al-is-fine-here", nil}, // names under 3 characters are not searched for
	} {
		err := CheckPassword(tc.name, tc.pw)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckPassword(%q, %q) = %v, want %v", tc.name, tc.pw, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrWeakPassword) {
			t.Errorf("CheckPassword(%q, %q) = %v does not wrap ErrWeakPassword", tc.name, tc.pw, err)
		}
	}
}

func TestHasherConcurrencyHonoursContext(t *testing.T) {
	h := newHasher(testParams, 1)
	h.sem <- struct{}{} // occupy the only slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.hash(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("hash with a full semaphore and a cancelled context = %v", err)
	}
}

// BenchmarkHashDefault measures one login's argon2id cost with the shipped
// parameters (about 0.1–0.2 s on a Raspberry Pi 4).
func BenchmarkHashDefault(b *testing.B) {
	h := newHasher(DefaultParams(), 1)
	for b.Loop() {
		if _, err := h.hash(context.Background(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
