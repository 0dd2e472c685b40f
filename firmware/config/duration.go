package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Day is the "d" unit of a Duration. Retention and list intervals are naturally counted in
// days, and time.ParseDuration has no day unit.
const Day = 24 * time.Hour

// ErrDuration is wrapped by every Duration parse error.
var ErrDuration = errors.New("invalid duration")

// units are tried largest first, so "1d12h" means what people expect.
var units = [...]struct {
	sym byte
	d   time.Duration
}{{'d', Day}, {'h', time.Hour}, {'m', time.Minute}, {'s', time.Second}}

// ParseDuration reads "90d", "24h", "30m", "10s" and sums such as "1h30m" or "1d12h".
// Anything else time.ParseDuration accepts ("1.5h", "500ms") is accepted too, so that a
// Duration built in Go with sub-second precision survives a round trip.
func ParseDuration(s string) (Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	neg := false
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		neg, s = true, rest
	}
	if s == "" {
		return 0, fmt.Errorf("%w %q: empty", ErrDuration, in)
	}
	if s == "0" {
		return 0, nil
	}
	if d, ok := parseSimple(s); ok {
		if neg {
			d = -d
		}
		return Duration(d), nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%w %q: needs a unit (d, h, m or s)", ErrDuration, in)
	}
	// Only fractions and sub-second units fall through to time.ParseDuration, so that
	// "1m1h" or a doubled sign stay errors.
	sub := strings.Contains(s, ".") || strings.Contains(s, "ms") || strings.Contains(s, "us") ||
		strings.Contains(s, "µs") || strings.Contains(s, "ns")
	d, err := time.ParseDuration(s)
	if !sub || s[0] < '0' || s[0] > '9' || err != nil {
		return 0, fmt.Errorf("%w %q: want a number and a unit like 90d, 24h, 30m, 10s or 1h30m", ErrDuration, in)
	}
	if neg {
		d = -d
	}
	return Duration(d), nil
}

// parseSimple reads integer amounts of d, h, m and s in decreasing order, each at most once.
func parseSimple(s string) (time.Duration, bool) {
	var total time.Duration
	next := 0 // index into units of the smallest unit still allowed
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, false
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, false
		}
		u := -1
		for j := next; j < len(units); j++ {
			if units[j].sym == s[i] {
				u = j
				break
			}
		}
		if u < 0 {
			return 0, false
		}
		if n > math.MaxInt64/int64(units[u].d) {
			return 0, false
		}
		part := time.Duration(n) * units[u].d
		if total > math.MaxInt64-part {
			return 0, false
		}
		total += part
		next = u + 1
		s = s[i+1:]
	}
	return total, true
}

// String is the shortest form ParseDuration reads back: "1d" rather than "24h", "90m"
// rather than "1h30m".
func (d Duration) String() string {
	td := time.Duration(d)
	if td == 0 {
		return "0s"
	}
	if td%time.Second != 0 || td == math.MinInt64 {
		return td.String()
	}
	sign := ""
	if td < 0 {
		sign, td = "-", -td
	}
	best := ""
	// Try every largest unit; a greedy split from each is the shortest with that start.
	for start := range units {
		var b strings.Builder
		rest := td
		for _, u := range units[start:] {
			if n := rest / u.d; n > 0 {
				b.WriteString(strconv.FormatInt(int64(n), 10))
				b.WriteByte(u.sym)
				rest -= n * u.d
			}
		}
		if rest == 0 && (best == "" || b.Len() < len(best)) {
			best = b.String()
		}
	}
	return sign + best
}

// MarshalYAML writes the String form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads the forms ParseDuration accepts.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: want a string like 24h", ErrDuration)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
