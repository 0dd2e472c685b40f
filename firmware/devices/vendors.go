package devices

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RegistryFiles are the IEEE registry files Debian's ieee-data package installs: large
// blocks (MA-L, 24-bit prefixes), medium (MA-M, 28-bit), small (MA-S, 36-bit) and the old
// individual address blocks (IAB, 36-bit).
var RegistryFiles = []string{
	"/usr/share/ieee-data/oui.csv",
	"/usr/share/ieee-data/mam.csv",
	"/usr/share/ieee-data/oui36.csv",
	"/usr/share/ieee-data/iab.csv",
}

// ErrRegistry: a file is not an IEEE registry CSV file.
var ErrRegistry = errors.New("not an IEEE registry file")

// Limits of what the registry parser keeps. The real files hold about 47,000 blocks in
// 5 MB, with names up to 108 characters.
const (
	maxRegistryBytes = 64 << 20
	maxBlocks        = 1 << 20 // also the most names: an index takes nameBits bits
	maxVendorRunes   = 120
	maxBadRecords    = 1000
	nameBits         = 20
)

// prefix lengths in bits, most specific first: Lookup tries them in this order.
var prefixBits = [3]int{36, 28, 24}

// registryBits gives each registry's prefix length, and so its assignment's hex digits.
var registryBits = map[string]int{"MA-L": 24, "MA-M": 28, "MA-S": 36, "IAB": 36}

// Vendors is the IEEE registry of MAC address blocks, read once and then only looked up:
// safe for concurrent use. A nil *Vendors knows no maker.
//
// It is compact: each block is one uint64, its prefix above a 20-bit index of its name,
// in a table per prefix length sorted by prefix (about 8 bytes a block and the names once
// each: well under 1.5 MB for the whole registry).
type Vendors struct {
	blocks [len(prefixBits)][]uint64 // prefix<<nameBits | name index, sorted
	names  string                    // every name once, end to end
	ends   []uint32                  // ends[i] is the end of name i in names
}

// Lookup returns the maker of a MAC address's block, or "" when the registry does not know
// it, it is no MAC address, or it is a private (locally administered) address.
func (v *Vendors) Lookup(mac string) string {
	if v == nil {
		return ""
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || hw[0]&2 != 0 {
		return ""
	}
	var x uint64
	for _, b := range hw {
		x = x<<8 | uint64(b)
	}
	for i, bits := range prefixBits {
		t, key := v.blocks[i], x>>(48-bits)
		j, found := slices.BinarySearchFunc(t, key, func(e, k uint64) int {
			return cmpUint(e>>nameBits, k)
		})
		if found {
			return v.name(uint32(t[j] & (1<<nameBits - 1)))
		}
	}
	return ""
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (v *Vendors) name(i uint32) string {
	start := uint32(0)
	if i > 0 {
		start = v.ends[i-1]
	}
	return v.names[start:v.ends[i]]
}

// Len returns the number of blocks known.
func (v *Vendors) Len() int {
	if v == nil {
		return 0
	}
	n := 0
	for _, t := range v.blocks {
		n += len(t)
	}
	return n
}

// LoadVendors reads the registry files at paths (usually RegistryFiles) into one table. A
// file that is missing or unreadable is reported in the error, which matches
// fs.ErrNotExist when that is why, and the others are still loaded: the table returned is
// never nil. The daemon loads it once at start.
func LoadVendors(paths ...string) (*Vendors, error) {
	b := newVendorBuilder()
	var errs []error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the IEEE registry: %w", err))
			continue
		}
		err = b.parse(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the IEEE registry %s: %w", p, err))
		}
	}
	return b.build(), errors.Join(errs...)
}

// ParseVendors reads one IEEE registry CSV file (Registry,Assignment,Organization
// Name,Organization Address; the header may repeat, lines starting with # are comments).
// Malformed records are skipped; a file without a single valid block gives an error
// matching ErrRegistry. Blocks assigned to the IEEE Registration Authority itself (the
// parents of MA-M and MA-S blocks) and those registered as "Private" are left out, so
// that an address in them has no maker rather than a misleading one.
func ParseVendors(r io.Reader) (*Vendors, error) {
	b := newVendorBuilder()
	if err := b.parse(r); err != nil {
		return nil, err
	}
	return b.build(), nil
}

type vendorBuilder struct {
	blocks [len(prefixBits)][]uint64
	index  map[string]uint32
	names  strings.Builder
	ends   []uint32
	total  int
}

func newVendorBuilder() *vendorBuilder {
	return &vendorBuilder{index: make(map[string]uint32)}
}

func (b *vendorBuilder) parse(r io.Reader) error {
	cr := csv.NewReader(io.LimitReader(r, maxRegistryBytes))
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	added, bad := 0, 0
	var firstBad error
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = b.record(rec)
			if err == nil {
				added++
				continue
			}
			if errors.Is(err, errSkip) {
				continue
			}
		}
		if bad++; firstBad == nil {
			firstBad = err
		}
		if bad > maxBadRecords || errors.Is(err, errFull) {
			break
		}
	}
	if added == 0 {
		if firstBad != nil {
			return fmt.Errorf("%w: no valid assignment; the first problem: %v", ErrRegistry, firstBad)
		}
		return fmt.Errorf("%w: no assignment", ErrRegistry)
	}
	return nil
}

var (
	errSkip = errors.New("skipped")
	errFull = errors.New("too many blocks")
)

func (b *vendorBuilder) record(rec []string) error {
	if len(rec) < 3 {
		return fmt.Errorf("record has %d fields, want at least 3", len(rec))
	}
	registry := strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
	if registry == "Registry" {
		return errSkip // a header
	}
	bits, ok := registryBits[registry]
	if !ok {
		return errSkip // CID and registries to come: not device addresses
	}
	hex := strings.TrimSpace(rec[1])
	if len(hex) != bits/4 {
		return fmt.Errorf("%s assignment %.20q is not %d hex digits", registry, hex, bits/4)
	}
	prefix, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return fmt.Errorf("%s assignment %.20q is not %d hex digits", registry, hex, bits/4)
	}
	name := cleanName(rec[2])
	switch name {
	case "":
		return fmt.Errorf("%s %s has no organisation name", registry, hex)
	case "Private", "IEEE Registration Authority":
		return errSkip
	}
	if b.total >= maxBlocks {
		return errFull
	}
	idx, ok := b.index[name]
	if !ok {
		idx = uint32(len(b.ends))
		b.index[name] = idx
		b.names.WriteString(name)
		b.ends = append(b.ends, uint32(b.names.Len()))
	}
	t := slices.Index(prefixBits[:], bits)
	b.blocks[t] = append(b.blocks[t], prefix<<nameBits|uint64(idx))
	b.total++
	return nil
}

// cleanName makes an organisation name safe to show: valid UTF-8, no control or format
// characters (such as right-to-left overrides), spaces collapsed, at most maxVendorRunes.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == utf8.RuneError:
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxVendorRunes {
		s = string([]rune(s)[:maxVendorRunes-1]) + "…"
	}
	return s
}

// build sorts the tables; where a prefix is listed twice, the first listing wins.
func (b *vendorBuilder) build() *Vendors {
	v := &Vendors{names: b.names.String(), ends: slices.Clip(b.ends)}
	for i, t := range b.blocks {
		slices.SortStableFunc(t, func(x, y uint64) int { return cmpUint(x>>nameBits, y>>nameBits) })
		t = slices.CompactFunc(t, func(x, y uint64) bool { return x>>nameBits == y>>nameBits })
		v.blocks[i] = slices.Clip(t)
	}
	return v
}
