package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password rules. NIST SP 800-63B asks for at least 8 characters with a second
// factor and 15 without; teachers and viewers may have no TOTP, so 12 is the
// floor for everyone, and length is the only composition rule.
const (
	MinPasswordLength = 12   // characters (runes), not bytes
	MaxPasswordBytes  = 1024 // long enough for any passphrase, short enough to hash cheaply
)

// Params are argon2id's cost parameters and output sizes.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are OWASP's first argon2id configuration (m=19 MiB, t=2, p=1)
// with a 16-byte salt and a 32-byte hash. One hash takes about 26 ms on a
// current x86 core (BenchmarkHashDefault); a Raspberry Pi 4's Cortex-A72 is
// usually 5–8 times slower, so an estimated 0.15–0.2 s there: tolerable at
// login, costly for an offline guesser. One lane, because Go's argon2 uses a
// goroutine per lane and a login should not take every core of a small box;
// the Store runs at most Config.HashConcurrency hashes at once so that the
// 19 MiB blocks stay within the daemon's memory budget on a 1 GB board.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Bounds accepted by parsePHC. A hash read from the database is hostile input
// as far as the parser is concerned: an absurd memory cost must not make a
// login allocate gigabytes.
const (
	maxMemoryKiB = 256 * 1024
	maxTime      = 16
	maxThreads   = 16
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

func (p Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2 threads %d: want 1..%d", p.Threads, maxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("argon2 memory %d KiB: want %d..%d", p.Memory, 8*uint32(p.Threads), maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2 time %d: want 1..%d", p.Time, maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2 salt length %d: want %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2 key length %d: want %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// phcHash is a decoded PHC string:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64, as the PHC string format
// and the argon2 reference implementation write them.
type phcHash struct {
	params    Params // SaltLen and KeyLen are those of salt and key
	salt, key []byte
}

const phcPrefix = "$argon2id$v=19$"

func (h phcHash) String() string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, h.params.Memory, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// parsePHC accepts exactly what String writes: one canonical spelling per
// hash, so that format(parse(s)) == s and a tampered string cannot slip
// through with extra fields. Older argon2 versions, other variants, keyid and
// data fields are refused.
func parsePHC(s string) (phcHash, error) {
	var h phcHash
	rest, ok := strings.CutPrefix(s, phcPrefix)
	if !ok {
		return h, fmt.Errorf("%w: not an argon2id v19 PHC string", ErrBadHash)
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return h, fmt.Errorf("%w: want parameters, salt and hash", ErrBadHash)
	}
	ps := strings.Split(fields[0], ",")
	if len(ps) != 3 {
		return h, fmt.Errorf("%w: want m, t and p", ErrBadHash)
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		num, ok := strings.CutPrefix(ps[i], name)
		if !ok {
			return h, fmt.Errorf("%w: parameter %d is not %s", ErrBadHash, i+1, name)
		}
		v, err := parseDecimal(num)
		if err != nil {
			return h, fmt.Errorf("%w: %s%q: %v", ErrBadHash, name, num, err)
		}
		vals[i] = v
	}
	if vals[2] > maxThreads {
		return h, fmt.Errorf("%w: p=%d: want 1..%d", ErrBadHash, vals[2], maxThreads)
	}
	var err error
	if h.salt, err = decodeB64(fields[1]); err != nil {
		return h, fmt.Errorf("%w: salt: %v", ErrBadHash, err)
	}
	if h.key, err = decodeB64(fields[2]); err != nil {
		return h, fmt.Errorf("%w: hash: %v", ErrBadHash, err)
	}
	h.params = Params{Memory: vals[0], Time: vals[1], Threads: uint8(vals[2]),
		SaltLen: uint32(len(h.salt)), KeyLen: uint32(len(h.key))}
	if err := h.params.validate(); err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return h, nil
}

// parseDecimal reads a PHC decimal: digits only, no sign, no leading zero.
func parseDecimal(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("not a canonical decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a canonical decimal")
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	return uint32(v), nil
}

// decodeB64 decodes unpadded standard base64, refusing the line breaks the
// encoding package would otherwise skip and non-zero trailing bits.
func decodeB64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return nil, fmt.Errorf("byte %d is not base64", i)
		}
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}

// hasher computes argon2id hashes, at most cap(sem) at a time.
type hasher struct {
	params Params
	sem    chan struct{}
	runs   atomic.Int64 // argon2 computations, for tests of equal work
}

func newHasher(p Params, concurrency int) *hasher {
	return &hasher{params: p, sem: make(chan struct{}, concurrency)}
}

func (h *hasher) key(ctx context.Context, password string, salt []byte, p Params) ([]byte, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to hash a password: %w", ctx.Err())
	}
	defer func() { <-h.sem }()
	h.runs.Add(1)
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen), nil
}

// hash returns the PHC string of password with a fresh random salt.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	rand.Read(salt)
	key, err := h.key(ctx, password, salt, h.params)
	if err != nil {
		return "", err
	}
	return phcHash{params: h.params, salt: salt, key: key}.String(), nil
}

// verify reports whether password matches the PHC string encoded, and whether
// the hash should be replaced because it was made with other parameters.
func (h *hasher) verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	ph, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	key, err := h.key(ctx, password, ph.salt, ph.params)
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(key, ph.key) == 1
	return ok, ph.params != h.params, nil
}

// CheckPassword says why password is not acceptable for the account name, or
// returns nil. The errors wrap ErrWeakPassword and read well next to a form
// field. The web UI may call it before submitting; the Store calls it again.
func CheckPassword(name, password string) error {
	if !utf8.ValidString(password) {
		return ErrPasswordInvalid
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return ErrPasswordInvalid
		}
	}
	if len(password) > MaxPasswordBytes {
		return ErrPasswordTooLong
	}
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return ErrPasswordTooShort
	}
	lower := strings.ToLower(password)
	if name = strings.ToLower(strings.TrimSpace(name)); len(name) >= 3 && strings.Contains(lower, name) {
		return ErrPasswordHasName
	}
	if isCommonPassword(lower) {
		return ErrPasswordCommon
	}
	return nil
}

// isCommonPassword catches the commonest passwords and their usual dressings:
// case, digits or symbols around them, leetspeak, repetition, and strings of
// three or fewer distinct characters. It is a floor, not a strength meter.
func isCommonPassword(lower string) bool {
	common := commonPasswords()
	if common[lower] {
		return true
	}
	distinct := map[rune]bool{}
	for _, r := range lower {
		distinct[r] = true
	}
	if len(distinct) <= 3 {
		return true
	}
	core := strings.TrimFunc(lower, func(r rune) bool { return r < 128 && !unicode.IsLetter(r) })
	if core == "" {
		// Only digits and symbols: the list holds the common ones.
		return false
	}
	for _, c := range []string{core, deleet(core, 'i'), deleet(core, 'l')} {
		if common[c] || common[unrepeat(c)] {
			return true
		}
	}
	return false
}

func deleet(s string, one rune) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '0':
			return 'o'
		case '1':
			return one
		case '3':
			return 'e'
		case '4', '@':
			return 'a'
		case '5', '$':
			return 's'
		case '7':
			return 't'
		case '!':
			return 'i'
		}
		return r
	}, s)
}

// unrepeat returns the shortest u with s == u repeated, or s.
func unrepeat(s string) string {
	for n := 1; n <= len(s)/2; n++ {
		if len(s)%n == 0 && strings.Repeat(s[:n], len(s)/n) == s {
			return s[:n]
		}
	}
	return s
}

// commonPasswords is a short list of the passwords and base words that lead
// every published breach ranking, plus words a school's staff reach for.
// Entries shorter than MinPasswordLength still matter: they are matched after
// digits and symbols are trimmed ("Summer2025!" → "summer").
var commonPasswords = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(commonPasswordList) {
		m[w] = true
	}
	return m
})

const commonPasswordList = `
123456 1234567 12345678 123456789 1234567890 12345678910 123456789012 1234567890123
0123456789 9876543210 987654321 11223344 112233445566 147258369 159753 123123123
123321 654321 666666 696969 7777777 88888888 121212 123qwe 1q2w3e 1q2w3e4r 1q2w3e4r5t
1q2w3e4r5t6y 1qaz2wsx 1qaz2wsx3edc zaq12wsx zaq1zaq1 qazwsx qazwsxedc qwerty qwerty123
qwerty1234 qwerty12345 qwerty123456 qwertyuiop qwertyuiop123 qwertz asdfgh asdfghjkl
asdfghjkl123 zxcvbn zxcvbnm qweasd qweasdzxc abc123 abcd1234 abcdef abcdefg abcdefgh
abcdefghijkl abcdefghijklm aa123456 a123456 a1b2c3 a1b2c3d4 a1b2c3d4e5f6 123abc
password passw0rd password1 password12 password123 password1234 password12345
passwordpassword pass pass123 pass1234 passwort motdepasse contrasena wachtwoord
letmein letmeinplease welcome welcome1 welcome123 welcometoschool changeme changeit
default secret secret123 topsecret mypassword newpassword oldpassword temppassword
temp tempuser test test123 testing tester guest guest123 user user123 login admin
admin123 admin1234 administrator root toor master superuser sysadmin manager support
iloveyou iloveyou123 loveyou lovely love trustno1 whatever nothing anything something
monkey dragon shadow sunshine princess football baseball soccer rugby cricket hockey
liverpool chelsea arsenal manchester manutd tottenham everton celtic rangers england
london scotland wales cardiff britain united kingdom starwars pokemon batman superman
michael jennifer jessica charlie daniel thomas george harry oliver jack jordan hunter
ashley andrew joshua matthew william robert samsung iphone google facebook computer
internet freedom summer winter spring autumn january february march april june july
august september october november december monday friday sunday christmas easter
holiday flower butterfly cookie chocolate banana orange purple yellow silver golden
diamond killer ninja cheese pepper ginger biscuit hello hello123 helloworld mustang
school school1 school123 schools myschool highschool primary secondary academy college
teacher teachers teaching student students pupil pupils classroom headteacher
headmaster governor safeguarding education learning library science maths english
history geography office staff staffroom reception schoolgate gateway filter
filtering firewall internetfilter technician network wifi password01 qwerty1
`
