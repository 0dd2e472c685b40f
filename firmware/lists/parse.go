package lists

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Format is the syntax of a list source.
type Format string

// The list formats, as named in config.List.Format.
const (
	FormatDomains Format = "domains" // one name per line
	FormatHosts   Format = "hosts"   // "0.0.0.0 name name…"
	FormatAdblock Format = "adblock" // "||name^" network rules
	FormatUT1     Format = "ut1"     // tar.gz with blacklists/<category>/domains
	FormatIPs     Format = "ips"     // addresses and prefixes, for the packet path
)

// ErrFormat is returned for an unknown or misapplied Format.
var ErrFormat = errors.New("unsupported list format")

const (
	maxLineLen      = 4 << 10
	maxErrors       = 20
	maxErrorTextLen = 100
)

// LineError describes a line that was skipped.
type LineError struct {
	Line int    `json:"line"`
	Text string `json:"text"` // the line, cut to about 100 bytes
	Err  string `json:"err"`
}

// ParseStats summarises a parse. Lines counts every line read; Entries the names (or
// prefixes) passed on, several for a hosts line with several names; Skipped the lines or
// names that could not be used. Errors keeps the first 20 of those.
type ParseStats struct {
	Lines   int         `json:"lines"`
	Entries int         `json:"entries"`
	Skipped int         `json:"skipped"`
	Errors  []LineError `json:"errors,omitempty"`
}

func (s *ParseStats) skip(line int, text []byte, err string) {
	s.Skipped++
	if len(s.Errors) >= maxErrors {
		return
	}
	if len(text) > maxErrorTextLen {
		text = text[:maxErrorTextLen]
		// Do not cut a UTF-8 sequence in half.
		for len(text) > 0 && text[len(text)-1]&0xc0 == 0x80 {
			text = text[:len(text)-1]
		}
		if len(text) > 0 && text[len(text)-1] >= 0xc0 {
			text = text[:len(text)-1]
		}
	}
	s.Errors = append(s.Errors, LineError{Line: line, Text: string(text), Err: err})
}

// merge adds o's counts to s, keeping at most maxErrors errors.
func (s *ParseStats) merge(o ParseStats) {
	s.Lines += o.Lines
	s.Entries += o.Entries
	s.Skipped += o.Skipped
	for _, e := range o.Errors {
		if len(s.Errors) >= maxErrors {
			break
		}
		s.Errors = append(s.Errors, e)
	}
}

// lineReader yields lines of at most maxLineLen bytes, trimmed of surrounding white space,
// and skips longer ones with a count instead of buffering them.
type lineReader struct {
	br    *bufio.Reader
	line  int
	stats *ParseStats
}

func newLineReader(r io.Reader, stats *ParseStats) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, maxLineLen+2), stats: stats}
}

// next returns the next line; io.EOF at the end, or another read error.
func (lr *lineReader) next() ([]byte, error) {
	for {
		b, err := lr.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			lr.line++
			lr.stats.Lines++
			lr.stats.skip(lr.line, b, "line longer than 4 KiB")
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = lr.br.ReadSlice('\n')
			}
			if err == io.EOF {
				return nil, io.EOF
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if len(b) == 0 && err != nil {
			return nil, err
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		lr.line++
		lr.stats.Lines++
		if lr.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		return bytes.TrimSpace(b), nil
	}
}

// hostsIgnored are the names every hosts file maps to loopback for the machine itself.
// They are not list entries and not errors.
var hostsIgnored = [...]string{
	"localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost",
	"ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters",
	"ip6-allhosts", "0.0.0.0",
}

func isHostsIgnored(name string) bool {
	for _, h := range hostsIgnored {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// Parse reads a domains, hosts or adblock list and calls add with each normalised name.
// Bad and unsupported lines are skipped and counted, never fatal; the error is only for
// reading r. Every format accepts "#" comments, and the hosts and domains formats tolerate
// each other's lines, because real lists drift between them.
func Parse(r io.Reader, f Format, add func(name string)) (ParseStats, error) {
	var stats ParseStats
	var parseLine func(line []byte, n int)
	switch f {
	case FormatDomains, FormatHosts:
		parseLine = func(line []byte, n int) { parseHostsLine(line, n, &stats, add) }
	case FormatAdblock:
		parseLine = func(line []byte, n int) { parseAdblockLine(line, n, &stats, add) }
	default:
		return stats, fmt.Errorf("%w: %q", ErrFormat, f)
	}
	lr := newLineReader(r, &stats)
	for {
		line, err := lr.next()
		if err == io.EOF {
			return stats, nil
		}
		if err != nil {
			return stats, fmt.Errorf("reading line %d: %w", lr.line+1, err)
		}
		if len(line) == 0 || line[0] == '!' || (line[0] == '#' && !(f == FormatAdblock && isCosmetic(line))) {
			continue
		}
		parseLine(line, lr.line)
	}
}

func addName(raw []byte, line []byte, n int, stats *ParseStats, add func(string)) {
	s := string(raw)
	// "*.example.com" and squid-style ".example.com" mean the domain and everything under
	// it, which is what a Set entry matches anyway.
	s = strings.TrimPrefix(s, "*.")
	if len(s) > 1 && s[0] == '.' {
		s = s[1:]
	}
	name, err := Normalize(s)
	if err != nil {
		stats.skip(n, line, err.Error())
		return
	}
	stats.Entries++
	add(name)
}

// parseHostsLine handles "name", "ip name…" and either with a trailing "# comment".
func parseHostsLine(line []byte, n int, stats *ParseStats, add func(string)) {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = bytes.TrimSpace(line[:i])
		if len(line) == 0 {
			return
		}
	}
	var buf [4][]byte
	var fields [][]byte
	if isASCII(line) {
		fields = appendFields(buf[:0], line)
	} else {
		fields = bytes.Fields(line) // Unicode spaces (a no-break space) separate fields too
	}
	if len(fields) == 0 {
		return
	}
	if mayBeAddr(fields[0]) && isAddr(fields[0]) {
		if len(fields) == 1 {
			stats.skip(n, line, ErrIPAddress.Error())
			return
		}
		for _, f := range fields[1:] {
			if isHostsIgnored(string(f)) {
				continue
			}
			addName(f, line, n, stats, add)
		}
		return
	}
	if len(fields) > 1 {
		stats.skip(n, line, "more than one name on a line")
		return
	}
	if isHostsIgnored(string(fields[0])) {
		return
	}
	addName(fields[0], line, n, stats, add)
}

// appendFields appends the fields of an ASCII line, split at white space, to dst: a hosts line
// has one or two, and dst's array on the caller's stack holds them without allocating, for
// each of the millions of lines of a big list.
func appendFields(dst [][]byte, line []byte) [][]byte {
	const space = " \t\r\n\v\f"
	for {
		i := 0
		for i < len(line) && strings.IndexByte(space, line[i]) >= 0 {
			i++
		}
		line = line[i:]
		if len(line) == 0 {
			return dst
		}
		end := bytes.IndexAny(line, space)
		if end < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:end])
		line = line[end:]
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// mayBeAddr says whether a field could be an IP address: one starts with a digit or has a
// colon. Names, nearly every field, are then not handed to netip.ParseAddr, whose error
// for them costs an allocation each.
func mayBeAddr(f []byte) bool {
	return len(f) > 0 && (f[0] >= '0' && f[0] <= '9' || bytes.IndexByte(f, ':') >= 0)
}

func isAddr(f []byte) bool {
	_, err := netip.ParseAddr(string(f))
	return err == nil
}

// adblockOptions are the rule modifiers that keep a "||name^" rule a plain block of the
// name for DNS. Others ($badfilter, $denyallow, $client, $dnsrewrite, $third-party, …)
// change or narrow its meaning, and blocking the whole name would over-block.
var adblockOptions = [...]string{"important", "all", "document", "doc", "popup"}

func parseAdblockLine(line []byte, n int, stats *ParseStats, add func(string)) {
	switch {
	case bytes.HasPrefix(line, []byte("@@")):
		stats.skip(n, line, "exception rule not supported")
		return
	case line[0] == '[':
		return // "[Adblock Plus 2.0]" header
	case isCosmetic(line):
		stats.skip(n, line, "cosmetic rule not supported")
		return
	}
	if !bytes.HasPrefix(line, []byte("||")) {
		// AdGuard-style DNS lists mix in hosts lines and bare names.
		if bytes.ContainsAny(line, "|^$/*") {
			stats.skip(n, line, "unsupported rule")
			return
		}
		parseHostsLine(line, n, stats, add)
		return
	}
	rule := line[2:]
	var opts []byte
	if i := bytes.IndexByte(rule, '$'); i >= 0 {
		rule, opts = rule[:i], rule[i+1:]
	}
	rule = bytes.TrimSuffix(rule, []byte("|"))
	rule = bytes.TrimSuffix(rule, []byte("^"))
	if len(rule) == 0 || bytes.ContainsAny(rule, "^|/*:?=&") {
		stats.skip(n, line, "unsupported rule")
		return
	}
	if len(opts) > 0 {
		for o := range bytes.SplitSeq(opts, []byte(",")) {
			if !knownAdblockOption(string(bytes.TrimSpace(o))) {
				stats.skip(n, line, "unsupported modifier "+string(o))
				return
			}
		}
	}
	addName(rule, line, n, stats, add)
}

// isCosmetic reports element-hiding and scriptlet rules ("example.com##.ad", "##.banner"),
// which act inside pages and mean nothing to DNS.
func isCosmetic(line []byte) bool {
	return bytes.Contains(line, []byte("##")) || bytes.Contains(line, []byte("#@#")) ||
		bytes.Contains(line, []byte("#$#")) || bytes.Contains(line, []byte("#?#")) ||
		bytes.Contains(line, []byte("#%#"))
}

func knownAdblockOption(o string) bool {
	for _, k := range adblockOptions {
		if o == k {
			return true
		}
	}
	return false
}

// ParseIPs reads addresses and prefixes, IPv4 or IPv6, one per line, with "#" comments
// anywhere and anything after the first field tolerated only if it is a comment.
// A bare address becomes a single-address prefix; prefixes are masked to their network.
func ParseIPs(r io.Reader, add func(netip.Prefix)) (ParseStats, error) {
	var stats ParseStats
	lr := newLineReader(r, &stats)
	for {
		line, err := lr.next()
		if err == io.EOF {
			return stats, nil
		}
		if err != nil {
			return stats, fmt.Errorf("reading line %d: %w", lr.line+1, err)
		}
		text := line
		if i := bytes.IndexAny(text, "#;"); i >= 0 {
			text = bytes.TrimSpace(text[:i])
		}
		if len(text) == 0 {
			continue
		}
		fields := bytes.Fields(text)
		if len(fields) > 1 {
			stats.skip(lr.line, line, "unexpected text after address")
			continue
		}
		p, err := parsePrefix(string(fields[0]))
		if err != nil {
			stats.skip(lr.line, line, err.Error())
			continue
		}
		stats.Entries++
		add(p)
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid prefix: %w", err)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address: %w", err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("invalid address: zone not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
