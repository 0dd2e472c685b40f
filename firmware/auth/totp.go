package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP as RFC 6238 with the parameters every authenticator app understands.
const (
	totpDigits = 6
	totpPeriod = 30 // seconds
	totpSkew   = 1  // steps accepted either side of now
	// secretBytes is RFC 4226's recommended 160 bits, the size of SHA-1's block
	// of output; minSecretBytes is its required minimum of 128.
	secretBytes    = 20
	minSecretBytes = 16
	maxSecretBytes = 64
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enrolment is what a user needs to add the account to an authenticator app.
type Enrolment struct {
	Secret string // base32, for typing in by hand
	URI    string // otpauth:// URI; the web UI renders it as a QR code
}

// newSecret returns 20 random bytes in unpadded base32.
func newSecret() string {
	b := make([]byte, secretBytes)
	rand.Read(b)
	return b32.EncodeToString(b)
}

// ParseSecret decodes a base32 TOTP secret as stored or as a person might
// type or paste it: case, spaces, hyphens and '=' padding do not matter.
func ParseSecret(s string) ([]byte, error) {
	if len(s) > 4*maxSecretBytes {
		return nil, fmt.Errorf("%w: too long", ErrBadSecret)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
		case 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case 'A' <= c && c <= 'Z' || '2' <= c && c <= '7':
			b.WriteByte(c)
		case c == '=':
			// Padding only at the end.
			if strings.Trim(s[i:], "=") != "" {
				return nil, fmt.Errorf("%w: '=' before the end", ErrBadSecret)
			}
			i = len(s)
		default:
			return nil, fmt.Errorf("%w: %q is not a base32 character", ErrBadSecret, c)
		}
	}
	// A final group of 1, 3 or 6 characters encodes no whole byte; the
	// decoder would quietly drop it.
	switch b.Len() % 8 {
	case 1, 3, 6:
		return nil, fmt.Errorf("%w: %d characters is not a base32 length", ErrBadSecret, b.Len())
	}
	key, err := b32.DecodeString(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSecret, err)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrBadSecret, len(key), minSecretBytes, maxSecretBytes)
	}
	return key, nil
}

// TOTPURI returns the otpauth:// URI (Google Authenticator's key URI format)
// for a secret. Issuer and account are escaped separately around the ':'.
func TOTPURI(issuer, account, secret string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	return fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
		url.PathEscape(issuer), url.PathEscape(account), secret, esc(issuer), totpDigits, totpPeriod)
}

// hotp is RFC 4226's HOTP with dynamic truncation, as a zero-padded string.
func hotp(key []byte, counter uint64, digits int) string {
	mac := hmac.New(sha1.New, key)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, v%mod)
}

// totpStep is the RFC 6238 time step T of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// totpCode is the code at time t.
func totpCode(key []byte, t time.Time) string { return hotp(key, uint64(totpStep(t)), totpDigits) }

// verifyTOTP checks a normalised 6-digit code against the steps around now,
// skipping steps at or before lastStep (already used). It returns the step
// that matched. Every candidate is computed and compared in constant time.
func verifyTOTP(key []byte, code string, now time.Time, lastStep int64) (int64, bool) {
	if len(code) != totpDigits || now.Unix() < 0 {
		return 0, false
	}
	cur := totpStep(now)
	matched := int64(-1)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		eq := subtle.ConstantTimeCompare([]byte(hotp(key, uint64(max(s, 0)), totpDigits)), []byte(code)) == 1
		if eq && s > lastStep && s >= 0 {
			matched = s
		}
	}
	return matched, matched >= 0
}

// normalizeTOTPCode accepts "123456", "123 456" and "123-456".
func normalizeTOTPCode(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 16 {
		return "", false
	}
	var b [totpDigits]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
		case '0' <= c && c <= '9' && n < totpDigits:
			b[n] = c
			n++
		default:
			return "", false
		}
	}
	if n != totpDigits {
		return "", false
	}
	return string(b[:]), true
}

// Recovery codes: 80 random bits as 16 characters of Crockford's base32
// (no i, l, o, u), shown as four groups of four.
const (
	recoveryCodes     = 10
	recoveryCodeBytes = 10
	recoveryCodeLen   = 16
	recoveryAlphabet  = "0123456789abcdefghjkmnpqrstvwxyz"
)

var recoveryEnc = base32.NewEncoding(recoveryAlphabet).WithPadding(base32.NoPadding)

// newRecoveryCode returns a code as shown to the user, e.g. "7k2m-q9xd-4hrt-b0wz".
func newRecoveryCode() string {
	b := make([]byte, recoveryCodeBytes)
	rand.Read(b)
	c := recoveryEnc.EncodeToString(b)
	return c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
}

// normalizeRecoveryCode turns what a user typed into the canonical 16
// characters, forgiving case, spaces, hyphens and the look-alikes Crockford's
// alphabet leaves out (i and l read as 1, o as 0).
func normalizeRecoveryCode(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var b [recoveryCodeLen]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case ' ', '-', '\t':
			continue
		case 'i', 'l':
			c = '1'
		case 'o':
			c = '0'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 || n == recoveryCodeLen {
			return "", false
		}
		b[n] = c
		n++
	}
	if n != recoveryCodeLen {
		return "", false
	}
	return string(b[:]), true
}

// hashRecoveryCode hashes a normalised code. The codes carry 80 random bits,
// so a fast hash leaves nothing practical to guess offline.
func hashRecoveryCode(code string) []byte {
	h := sha256.Sum256([]byte("schoolgate recovery code v1\x00" + code))
	return h[:]
}
