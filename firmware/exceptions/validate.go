package exceptions

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/lists"
)

// Form fields named by FieldError.Field. They are the names the web UI's
// forms use, so a message can be shown next to its input.
const (
	FieldScope       = "scope"
	FieldTarget      = "target"
	FieldDomain      = "domain"
	FieldAction      = "action"
	FieldReason      = "reason"
	FieldDuration    = "duration"
	FieldRequestedBy = "requested_by"
	FieldBy          = "by" // who approves, denies, revokes, withdraws or creates
	FieldNote        = "note"
	FieldClientAddr  = "client_addr"
	FieldClientMAC   = "client_mac"
)

// FieldError is one problem with one field. Message is a sentence that
// names the field, fit to show next to it.
type FieldError struct {
	Field   string
	Message string
	err     error // a more specific sentinel, such as ErrProtected
}

func (e *FieldError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Unwrap gives the more specific sentinel, if any.
func (e *FieldError) Unwrap() error { return e.err }

// ValidationError holds every problem found in one call, in form order, so
// that the person filling the form can fix them all at once.
type ValidationError struct {
	Errors []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Message
	}
	return "invalid exception: " + strings.Join(msgs, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Unwrap gives the FieldErrors, so errors.As finds the first and errors.Is
// sees their sentinels.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// Field returns the message for field, or "" when it has none: what a
// form template shows under the input.
func (e *ValidationError) Field(field string) string {
	for _, fe := range e.Errors {
		if fe.Field == field {
			return fe.Message
		}
	}
	return ""
}

type validator struct {
	s    *Store
	errs []*FieldError
}

func (v *validator) add(field, format string, args ...any) {
	v.addErr(field, nil, format, args...)
}

func (v *validator) addErr(field string, err error, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...), err: err})
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: v.errs}
}

// request checks the fields every exception has and returns them cleaned:
// trimmed, lower-cased where case means nothing, MAC and domain canonical.
// Nothing else of e is copied.
func (v *validator) request(e Exception) Exception {
	var out Exception
	out.Scope, out.Target = v.scopeTarget(e.Scope, e.Target)
	out.Domain = v.domain(e.Domain)
	out.Action = v.action(e.Action)
	out.Reason = v.text(FieldReason, "reason", e.Reason, true)
	out.Duration = v.duration(e.Duration)
	return out
}

func (v *validator) scopeTarget(scope, target string) (string, string) {
	scope = strings.ToLower(strings.TrimSpace(scope))
	target = strings.TrimSpace(target)
	switch scope {
	case "":
		v.add(FieldScope, "scope is required: choose profile, segment or device")
	case config.ScopeProfile, config.ScopeSegment:
		switch {
		case target == "":
			v.add(FieldTarget, "target is required: give the name of the %s", scope)
		case !utf8.ValidString(target) || strings.IndexFunc(target, badRune) >= 0:
			v.add(FieldTarget, "target must be a %s name without control characters", scope)
		case utf8.RuneCountInString(target) > maxName:
			v.add(FieldTarget, "target must be a %s name of at most %d characters", scope, maxName)
		case v.s.cfg.KnownTarget != nil && !v.s.cfg.KnownTarget(scope, target):
			v.add(FieldTarget, "target %s is not the name of a %s on this appliance", quote(target), scope)
		}
		return scope, target
	case config.ScopeDevice:
		if target == "" {
			v.add(FieldTarget, "target is required: give the device's MAC address, like aa:bb:cc:dd:ee:ff")
			return scope, ""
		}
		mac, ok := parseMAC(target)
		if !ok {
			v.add(FieldTarget, "target %s is not a device MAC address like aa:bb:cc:dd:ee:ff", quote(target))
		}
		return scope, mac
	default:
		v.add(FieldScope, "scope %s is not one of profile, segment or device", quote(scope))
	}
	if target == "" {
		v.add(FieldTarget, "target is required")
	}
	return scope, target
}

// parseMAC accepts the 6-byte forms net.ParseMAC does (colons, dashes, Cisco
// dots) and returns lower case with colons, the form the policy engine compares.
func parseMAC(s string) (string, bool) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", false
	}
	return hw.String(), true
}

func (v *validator) domain(raw string) string {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		v.add(FieldDomain, "domain is required, like www.example.com")
		return ""
	case strings.Contains(s, "://") || strings.ContainsAny(s, "/?#"):
		// A pasted address: suggest its host name, which is what is meant.
		if u, err := url.Parse(s); err == nil && u.Hostname() != "" {
			if host, err := lists.Normalize(u.Hostname()); err == nil {
				v.add(FieldDomain, "domain %s is a web address; give only the site's name, here %s", quote(s), host)
				return ""
			}
		}
		v.add(FieldDomain, "domain %s is a web address; give only the site's name, like www.example.com", quote(s))
		return ""
	case strings.Contains(s, "*"):
		v.add(FieldDomain, "domain %s needs no wildcard: a domain covers its subdomains", quote(s))
		return ""
	}
	name, err := lists.Normalize(s)
	switch {
	case errors.Is(err, lists.ErrIPAddress):
		v.add(FieldDomain, "domain %s is an IP address; exceptions are for names like www.example.com", quote(s))
		return ""
	case errors.Is(err, lists.ErrSingleLabel):
		v.add(FieldDomain, "domain %s is a top-level domain on its own; give a site's name, like example.%s", quote(s), strings.TrimSuffix(strings.ToLower(s), "."))
		return ""
	case err != nil:
		v.add(FieldDomain, "domain %s is not a valid domain name (%v)", quote(s), err)
		return ""
	}
	// An exception for "co.uk" or "github.io" would cover thousands of
	// unrelated sites; the Normalize check above only catches "uk".
	if ps, _ := publicsuffix.PublicSuffix(name); ps == name {
		v.add(FieldDomain, "domain %s is a public suffix shared by unrelated sites; give one site's name, like example.%s", quote(name), name)
		return ""
	}
	if p, ok := v.s.protected(name); ok {
		if p == name {
			v.addErr(FieldDomain, ErrProtected, "domain %s is on a protected list (illegal content) and can never be excepted", quote(name))
		} else {
			v.addErr(FieldDomain, ErrProtected, "domain %s is under %s, which is on a protected list (illegal content) and can never be excepted", quote(name), quote(p))
		}
		return ""
	}
	if v.s.cfg.Bypass != nil {
		if why := v.s.cfg.Bypass(name); why != "" {
			v.add(FieldDomain, "domain %s switches off the school's filtering (%s) and cannot be excepted", quote(name), why)
			return ""
		}
	}
	return name
}

// protected reports the name itself or the nearest parent that
// Config.Protected reports, top-level domain included.
func (s *Store) protected(name string) (string, bool) {
	for d := name; ; {
		if s.cfg.Protected(d) {
			return d, true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return "", false
		}
		d = d[i+1:]
	}
}

func (v *validator) action(raw string) string {
	a := strings.ToLower(strings.TrimSpace(raw))
	switch a {
	case config.ActionAllow, config.ActionBlock:
	case "":
		v.add(FieldAction, "action is required: choose allow or block")
	default:
		v.add(FieldAction, "action %s is not allow or block", quote(a))
	}
	return a
}

func (v *validator) duration(d time.Duration) time.Duration {
	// Whole seconds: nobody means a fraction, and the file keeps milliseconds.
	d = d.Truncate(time.Second)
	switch max := v.s.cfg.MaxDuration; {
	case d <= 0:
		v.add(FieldDuration, "duration is required and must be positive")
	case d < MinDuration:
		v.add(FieldDuration, "duration must be at least %s; %s was given", human(MinDuration), human(d))
	case d > max:
		v.add(FieldDuration, "duration must be at most %s; %s was given", human(max), human(d))
	}
	return d
}

// text checks a reason or note: trimmed, valid UTF-8 on one line without
// control or direction-changing characters, minText..maxText characters
// (or empty when not required).
func (v *validator) text(field, label, raw string, required bool) string {
	s := strings.TrimSpace(raw)
	n := utf8.RuneCountInString(s)
	switch {
	case s == "" && !required:
	case s == "":
		v.add(field, "%s is required", label)
	case !utf8.ValidString(s):
		v.add(field, "%s must be valid text", label)
	case strings.IndexFunc(s, badRune) >= 0:
		v.add(field, "%s must be one line without control characters", label)
	case required && n < minText:
		v.add(field, "%s must be at least %d characters", label, minText)
	case n > maxText:
		v.add(field, "%s must be at most %d characters; it has %d", label, maxText, n)
	}
	return s
}

// actor checks the name of who acted. It is recorded exactly as given (the
// web UI passes the account name) but must be there and be printable.
func (v *validator) actor(field, raw string) string {
	label := "the name of who is acting"
	if field == FieldRequestedBy {
		label = "requested_by, the account asking,"
	}
	switch {
	case strings.TrimSpace(raw) == "":
		v.add(field, "%s is required", label)
	case len(raw) > maxActor || !utf8.ValidString(raw) || strings.IndexFunc(raw, badRune) >= 0:
		v.add(field, "%s must be at most %d bytes without control characters", label, maxActor)
	}
	return raw
}

// clientAddr accepts an IP address or an "address:port" (http.Request.RemoteAddr).
func (v *validator) clientAddr(raw string) string {
	s := strings.TrimSpace(raw)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			if s == "" {
				v.add(FieldClientAddr, "client_addr is required: the address of the device asking")
			} else {
				v.add(FieldClientAddr, "client_addr %s is not an IP address", quote(s))
			}
			return ""
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("").String()
}

// badRune is a character that has no place in a one-line name or sentence:
// C0 and C1 controls, DEL, line and paragraph separators, and the bidi
// controls that can make a reason read differently from what it says.
func badRune(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029', r == utf8.RuneError:
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f',
		'\u202a' <= r && r <= '\u202e', '\u2066' <= r && r <= '\u2069':
		return true
	}
	return false
}

// quote quotes hostile input for a message, shortened so a megabyte pasted
// into a form does not come back in the error.
func quote(s string) string {
	if utf8.RuneCountInString(s) > maxShown {
		r := []rune(s)
		s = string(r[:maxShown]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// human writes a duration as people say it: "30 days", "2 hours 30 minutes", "90 seconds".
func human(d time.Duration) string {
	if d < time.Minute {
		return plural(int64(d/time.Second), "second")
	}
	var parts []string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}} {
		if n := int64(d / u.d); n > 0 {
			parts = append(parts, plural(n, u.name))
			d -= time.Duration(n) * u.d
		}
	}
	if d >= time.Second {
		parts = append(parts, plural(int64(d/time.Second), "second"))
	}
	return strings.Join(parts, " ")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
