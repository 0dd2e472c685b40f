package auth

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are the committed corpora, by fuzz target. TestFuzzSeeds checks
// they are on disk; `go test -run TestFuzzSeeds ./firmware/auth -update`
// writes them.
func fuzzSeeds() map[string][]string {
	phc := referenceHashes[0].phc
	return map[string][]string{
		"FuzzParsePHC": {
			phc,
			referenceHashes[1].phc,
			"$argon2i$v=19$m=64,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w",
			"$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w",
			"$argon2id$v=19$m=064,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w",
			"$argon2id$v=19$m=64,t=1,p=2,keyid=abc$c29tZXNhbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w",
			"$argon2id$v=19$m=64,t=1,p=2$c29tZXNh\nbHRzb21lc2FsdA$YDWZ7SC7/FISnTlw8W9X9w",
			"$argon2id$v=19$m=64,t=1,p=2$c29tZXNhbHRzb21lc2FsdA==$YDWZ7SC7/FISnTlw8W9X9w",
			"$2y$10$abcdefghijklmnopqrstuv",
			"",
		},
		"FuzzParseSecret": {
			"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
			"gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
			"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGE======",
			"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG",
			"GEZDGNBV==GY3TQOJQ",
			"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ\n",
			"otpauth://totp/a:b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
			"",
		},
		"FuzzNormalizeRecoveryCode": {
			"7k2m-q9xd-4hrt-b0wz",
			"7K2M Q9XD 4HRT BOWZ",
			"ilo0-ilo0-ilo0-ilo0",
			"uuuu-uuuu-uuuu-uuuu",
			"7k2m-q9xd-4hrt-b0wzz",
			"123456",
			"",
		},
		"FuzzNormalizeTOTPCode": {"123456", " 123 456 ", "123-456", "１２３４５６", "1234567", ""},
		"FuzzParseToken": {
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
			"_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-A",
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
			"",
		},
		"FuzzCheckPassword": {"correct horse battery staple", "P@ssw0rd2025!", "short", "bad\xffbyte-password", "abababababab"},
	}
}

func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds {
				data := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "seed0")); err != nil {
			t.Errorf("missing seed corpus for %s (run with -update): %v", target, err)
		}
	}
}

// A stored hash is hostile input: anything accepted is canonical and within
// the bounds that keep a login's memory and time in check.
func FuzzParsePHC(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("parsePHC(%q) accepted a non-canonical string; formats as %q", s, got)
		}
		if err := h.params.validate(); err != nil {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds parameters: %v", s, err)
		}
		if int(h.params.SaltLen) != len(h.salt) || int(h.params.KeyLen) != len(h.key) {
			t.Fatalf("parsePHC(%q): lengths %+v vs %d, %d", s, h.params, len(h.salt), len(h.key))
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseSecret(s)
		if err != nil {
			return
		}
		if len(key) < minSecretBytes || len(key) > maxSecretBytes {
			t.Fatalf("ParseSecret(%q) = %d bytes", s, len(key))
		}
		again, err := ParseSecret(b32.EncodeToString(key))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("ParseSecret round trip of %q: %x → %x, %v", s, key, again, err)
		}
	})
}

func FuzzNormalizeRecoveryCode(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeRecoveryCode(s)
		if !ok {
			return
		}
		if len(n) != recoveryCodeLen || strings.Trim(n, recoveryAlphabet) != "" {
			t.Fatalf("normalizeRecoveryCode(%q) = %q: not canonical", s, n)
		}
		shown := strings.ToUpper(n[:4] + "-" + n[4:8] + " " + n[8:12] + "-" + n[12:])
		for _, in := range []string{n, shown} {
			if again, ok := normalizeRecoveryCode(in); !ok || again != n {
				t.Fatalf("normalizeRecoveryCode(%q) = %q, %v; want %q", in, again, ok, n)
			}
		}
	})
}

func FuzzNormalizeTOTPCode(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := normalizeTOTPCode(s)
		if !ok {
			return
		}
		if len(c) != totpDigits || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("normalizeTOTPCode(%q) = %q", s, c)
		}
		if again, ok := normalizeTOTPCode(c); !ok || again != c {
			t.Fatalf("normalizeTOTPCode not idempotent: %q → %q → %q", s, c, again)
		}
	})
}

// Session and pending tokens come straight from cookies and forms.
func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		raw, ok := parseToken(s)
		if !ok {
			return
		}
		if len(raw) != tokenBytes || base64.RawURLEncoding.EncodeToString(raw) != s {
			t.Fatalf("parseToken(%q) accepted a non-canonical token", s)
		}
	})
}

func FuzzCheckPassword(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if CheckPassword("alice", s) != nil {
			return
		}
		if !utf8.ValidString(s) || len(s) > MaxPasswordBytes || utf8.RuneCountInString(s) < MinPasswordLength ||
			strings.Contains(strings.ToLower(s), "alice") {
			t.Fatalf("CheckPassword accepted %q", s)
		}
	})
}
