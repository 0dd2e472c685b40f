package auth

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// RFC 4226 Appendix D: HOTP of the ASCII secret "12345678901234567890".
func TestHOTPRFC4226(t *testing.T) {
	key := []byte("12345678901234567890")
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for c, w := range want {
		if got := hotp(key, uint64(c), 6); got != w {
			t.Errorf("hotp(counter %d) = %s, want %s", c, got, w)
		}
	}
}

// RFC 6238 Appendix B, the SHA-1 rows: the 8-digit codes as published, and
// their last six digits, which are what 6-digit TOTP yields.
func TestTOTPRFC6238(t *testing.T) {
	key := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix  int64
		step  int64
		eight string
	}{
		{59, 0x1, "94287082"},
		{1111111109, 0x23523EC, "07081804"},
		{1111111111, 0x23523ED, "14050471"},
		{1234567890, 0x273EF07, "89005924"},
		{2000000000, 0x3F940AA, "69279037"},
		{20000000000, 0x27BC86AA, "65353130"},
	} {
		now := time.Unix(tc.unix, 0)
		if got := totpStep(now); got != tc.step {
			t.Errorf("step(%d) = %#x, want %#x", tc.unix, got, tc.step)
		}
		if got := hotp(key, uint64(totpStep(now)), 8); got != tc.eight {
			t.Errorf("8-digit TOTP at %d = %s, want %s", tc.unix, got, tc.eight)
		}
		six := tc.eight[2:]
		if got := totpCode(key, now); got != six {
			t.Errorf("6-digit TOTP at %d = %s, want %s", tc.unix, got, six)
		}
		if step, ok := verifyTOTP(key, six, now, 0); !ok || step != tc.step {
			t.Errorf("verifyTOTP(%s at %d) = %d, %v", six, tc.unix, step, ok)
		}
	}
}

func TestVerifyTOTPWindowAndReplay(t *testing.T) {
	key, err := ParseSecret(newSecret())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 15, 40, 0, time.UTC)
	cur := totpStep(now)
	codeAt := func(step int64) string { return hotp(key, uint64(step), 6) }
	for _, tc := range []struct {
		name     string
		step     int64
		lastUsed int64
		ok       bool
	}{
		{"current", cur, 0, true},
		{"one behind", cur - 1, 0, true},
		{"one ahead", cur + 1, 0, true},
		{"two behind", cur - 2, 0, false},
		{"two ahead", cur + 2, 0, false},
		{"replayed", cur, cur, false},
		{"older than last used", cur - 1, cur, false},
		{"newer than last used", cur + 1, cur, true},
	} {
		step, ok := verifyTOTP(key, codeAt(tc.step), now, tc.lastUsed)
		if ok != tc.ok || (ok && step != tc.step) {
			t.Errorf("%s: verifyTOTP = %d, %v; want %d, %v", tc.name, step, ok, tc.step, tc.ok)
		}
	}
	if _, ok := verifyTOTP(key, "12345", now, 0); ok {
		t.Error("5-digit code accepted")
	}
	if _, ok := verifyTOTP(key, codeAt(0), time.Unix(-100, 0), -5); ok {
		t.Error("code accepted before 1970")
	}
}

func TestSecret(t *testing.T) {
	s := newSecret()
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(s) {
		t.Errorf("newSecret() = %q, want 32 base32 characters", s)
	}
	key, err := ParseSecret(s)
	if err != nil || len(key) != 20 {
		t.Fatalf("ParseSecret(%q) = %d bytes, %v", s, len(key), err)
	}
	spaced := strings.ToLower(s[:4] + " " + s[4:8] + "-" + s[8:])
	if k2, err := ParseSecret(spaced); err != nil || string(k2) != string(key) {
		t.Errorf("ParseSecret(%q) = %x, %v; want %x", spaced, k2, err, key)
	}
	// RFC 6238's key, as authenticator apps would be given it.
	if k, err := ParseSecret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"); err != nil || string(k) != "12345678901234567890" {
		t.Errorf("ParseSecret(RFC key) = %q, %v", k, err)
	}
	if k, err := ParseSecret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGE======"); err != nil || string(k) != "123456789012345678901" {
		t.Errorf("ParseSecret(padded) = %q, %v", k, err)
	}
	for _, bad := range []string{
		"",
		"GEZDGNBVGY3TQOJQ",                       // 10 bytes: under RFC 4226's 128 bits
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1",       // 1 is not base32
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",     // newline
		"GEZDGNBVGY3TQOJQ==GEZDGNBVGY3TQOJQ",     // padding inside
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG",      // impossible length
		strings.Repeat("GEZDGNBV", 40),           // too long
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\u00e9", // non-ASCII
	} {
		if _, err := ParseSecret(bad); !errors.Is(err, ErrBadSecret) {
			t.Errorf("ParseSecret(%q) error = %v, want ErrBadSecret", bad, err)
		}
	}
}

func TestTOTPURI(t *testing.T) {
	got := TOTPURI("Oak Primary schoolgate", "alice@oak.sch.uk", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	const want = "otpauth://totp/Oak%20Primary%20schoolgate:alice@oak.sch.uk?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" +
		"&issuer=Oak%20Primary%20schoolgate&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Errorf("TOTPURI:\ngot  %s\nwant %s", got, want)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Oak Primary schoolgate:alice@oak.sch.uk" ||
		q.Get("issuer") != "Oak Primary schoolgate" || q.Get("secret") != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Errorf("parsed back: scheme %q host %q path %q query %v", u.Scheme, u.Host, u.Path, q)
	}
}

func TestNormalizeTOTPCode(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"123456", "123456", true},
		{" 123 456 ", "123456", true},
		{"123-456", "123456", true},
		{"012345", "012345", true},
		{"12345", "", false},
		{"1234567", "", false},
		{"12345a", "", false},
		{"１２３４５６", "", false}, // full-width digits
		{"", "", false},
	} {
		got, ok := normalizeTOTPCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeTOTPCode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	seen := map[string]bool{}
	re := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$`)
	for range 100 {
		c := newRecoveryCode()
		if !re.MatchString(c) {
			t.Fatalf("newRecoveryCode() = %q", c)
		}
		if seen[c] {
			t.Fatalf("duplicate recovery code %q", c)
		}
		seen[c] = true
		n, ok := normalizeRecoveryCode(c)
		if !ok || n != strings.ReplaceAll(c, "-", "") {
			t.Fatalf("normalizeRecoveryCode(%q) = %q, %v", c, n, ok)
		}
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"7k2m-q9xd-4hrt-b0wz", "7k2mq9xd4hrtb0wz", true},
		{"7K2M Q9XD 4HRT B0WZ", "7k2mq9xd4hrtb0wz", true},
		{"7k2mq9xd4hrtbOwz", "7k2mq9xd4hrtb0wz", true}, // O read as 0
		{"7k2mq9xd4hrtbowz", "7k2mq9xd4hrtb0wz", true},
		{"ik2mq9xd4hrtb0wz", "1k2mq9xd4hrtb0wz", true}, // i and l read as 1
		{"lk2mq9xd4hrtb0wz", "1k2mq9xd4hrtb0wz", true},
		{"uk2mq9xd4hrtb0wz", "", false}, // u is not in the alphabet
		{"7k2m-q9xd-4hrt-b0w", "", false},
		{"7k2m-q9xd-4hrt-b0wzz", "", false},
		{"7k2m_q9xd_4hrt_b0wz", "", false},
		{"123456", "", false},
		{"", "", false},
	} {
		got, ok := normalizeRecoveryCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeRecoveryCode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
