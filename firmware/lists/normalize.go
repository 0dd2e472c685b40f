package lists

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors returned by Normalize, checked with errors.Is.
var (
	ErrInvalidName = errors.New("invalid domain name")
	ErrSingleLabel = errors.New("single-label name")
	ErrIPAddress   = errors.New("ip address, not a domain name")
)

const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// idnaProfile is UTS #46 lookup processing (what browsers do before resolving) without STD3
// rules and hyphen checks: real block lists contain underscores ("_dmarc", "ad_server") and
// labels like "-cdn", and a resolver answers for them, so refusing them would leave them
// unblocked. The profile is immutable and safe for concurrent use.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
)

// Normalize returns the canonical form of a domain name as stored in a Set: lower case,
// without a trailing dot, internationalised labels in punycode ("bücher.de" →
// "xn--bcher-kva.de"). Labels may contain letters, digits, hyphens and underscores.
// IP addresses and single-label names ("localhost", "com") are refused: neither belongs in a
// domain list, and hosts files are full of both.
func Normalize(name string) (string, error) {
	return normalize(name, false)
}

// NormalizeSuffix is Normalize but also accepts single-label names, for configuration entries
// that deliberately name a whole top-level domain ("zip"). A Set matches such entries.
func NormalizeSuffix(name string) (string, error) {
	return normalize(name, true)
}

func normalize(name string, allowSingle bool) (string, error) {
	if len(name) > 4*maxNameLen {
		// Bound the work done for garbage; no valid name is this long even in UTF-8.
		return "", fmt.Errorf("%w: too long", ErrInvalidName)
	}
	if strings.HasSuffix(name, ".") {
		name = name[:len(name)-1]
	}
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if needsIDNA(name) {
		// idna would turn invalid UTF-8 into U+FFFD and encode that, giving a name that
		// does not survive a second Normalize.
		if !utf8.ValidString(name) {
			return "", fmt.Errorf("%w: not UTF-8", ErrInvalidName)
		}
		if _, err := netip.ParseAddr(name); err == nil {
			return "", ErrIPAddress
		}
		a, err := idnaProfile.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalidName, err)
		}
		name = a
	} else {
		name = lowerASCII(name)
	}
	if err := checkASCII(name, allowSingle); err != nil {
		return "", err
	}
	return name, nil
}

// needsIDNA reports whether name has non-ASCII bytes or an A-label that must be decoded to be
// validated. Almost every list entry takes the cheap ASCII path.
func needsIDNA(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return true
		}
	}
	for i := 0; i+4 <= len(name); i++ {
		if (i == 0 || name[i-1] == '.') && (name[i] == 'x' || name[i] == 'X') && (name[i+1] == 'n' || name[i+1] == 'N') && name[i+2] == '-' && name[i+3] == '-' {
			return true
		}
	}
	return false
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// checkASCII validates a lower-case ASCII name label by label.
func checkASCII(name string, allowSingle bool) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, maxNameLen)
	}
	labels := 0
	start := 0
	lastDigits := true
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			switch {
			case 'a' <= c && c <= 'z', c == '-', c == '_':
				lastDigits = false
			case '0' <= c && c <= '9':
			default:
				if c == ':' || c == '/' {
					if _, err := netip.ParsePrefix(name); err == nil {
						return ErrIPAddress
					}
					if _, err := netip.ParseAddr(name); err == nil {
						return ErrIPAddress
					}
				}
				return fmt.Errorf("%w: character %q", ErrInvalidName, c)
			}
			continue
		}
		n := i - start
		if n == 0 {
			return fmt.Errorf("%w: empty label", ErrInvalidName)
		}
		if n > maxLabelLen {
			return fmt.Errorf("%w: label longer than %d bytes", ErrInvalidName, maxLabelLen)
		}
		labels++
		start = i + 1
		if i < len(name) {
			lastDigits = true
		}
	}
	// No top-level domain is all digits, so such a name is an IPv4 address or a mangled one
	// ("1.2.3.400"); either way it cannot be a domain a client resolves.
	if lastDigits {
		return ErrIPAddress
	}
	if labels == 1 && !allowSingle {
		return ErrSingleLabel
	}
	return nil
}
