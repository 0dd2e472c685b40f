package lists

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// Tag is one distinct combination of categories and lists that domains are in. Set values
// index Catalog.Tags, so a domain listed by UT1 as adult and by another list as phishing
// carries one value naming both, and the policy needs one lookup per name.
type Tag struct {
	Categories category.Set
	Lists      []string // list names, in configuration order
}

// Catalog is the compiled form of all configured lists. It is immutable once returned.
type Catalog struct {
	Domains   *Set // entries of non-protected lists; value = index into Tags
	Protected *Set // entries of protected lists; value = index into Tags
	Tags      []Tag
	Addresses map[string][]netip.Prefix // "ips"-format lists by list name
	Sources   []SourceStatus
	Built     time.Time

	inputs [32]byte       // what it was compiled from (Manager.inputHash)
	stats  []compileStats // per source, as compiled
}

// SourceStatus describes one list for the UI and logs.
type SourceStatus struct {
	Name      string
	Format    string
	Origin    string // URL or file path
	Protected bool
	// Entries is the number of names (or prefixes) that went into the catalog, Skipped the
	// lines or names that could not be used; Errors shows the first of those.
	Entries int
	Skipped int
	Errors  []LineError
	// Categories counts entries per schoolgate category; Unmapped counts entries of
	// provider categories that have no mapping and were therefore left out.
	Categories map[category.ID]int
	Unmapped   map[string]int
	// Updated is when the content last changed (download or file time); Checked when the
	// source was last read or successfully asked for changes.
	Updated   time.Time
	Checked   time.Time
	LastError string
}

func (s SourceStatus) clone() SourceStatus {
	s.Errors = slices.Clone(s.Errors)
	s.Categories = maps.Clone(s.Categories)
	s.Unmapped = maps.Clone(s.Unmapped)
	return s
}

// compileStats is what compiling found out about a source; it is stored in the snapshot so
// that a reused snapshot still reports it.
type compileStats struct {
	Entries    int                 `json:"entries"`
	Skipped    int                 `json:"skipped"`
	Errors     []LineError         `json:"errors,omitempty"`
	Categories map[category.ID]int `json:"categories,omitempty"`
	Unmapped   map[string]int      `json:"unmapped,omitempty"`
	Err        string              `json:"err,omitempty"` // a configuration or read error
}

// tagTable interns Tags. Set values are indexes into tags.
type tagTable struct {
	tags  []Tag
	lists [][]int // list indexes of each tag, sorted
	byKey map[string]uint32
	memo  map[uint64]uint32 // merged pairs, since the same pairs merge again and again
	names []string          // list names by index
}

func newTagTable(names []string) *tagTable {
	return &tagTable{byKey: map[string]uint32{}, memo: map[uint64]uint32{}, names: names}
}

func (t *tagTable) intern(cats category.Set, lists []int) uint32 {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%x", uint64(cats))
	for _, l := range lists {
		fmt.Fprintf(&sb, ",%d", l)
	}
	key := sb.String()
	if v, ok := t.byKey[key]; ok {
		return v
	}
	v := uint32(len(t.tags))
	names := make([]string, len(lists))
	for i, l := range lists {
		names[i] = t.names[l]
	}
	t.tags = append(t.tags, Tag{Categories: cats, Lists: names})
	t.lists = append(t.lists, lists)
	t.byKey[key] = v
	return v
}

func (t *tagTable) merge(a, b uint32) uint32 {
	if a == b {
		return a
	}
	k := uint64(a)<<32 | uint64(b)
	if v, ok := t.memo[k]; ok {
		return v
	}
	la, lb := t.lists[a], t.lists[b]
	lists := make([]int, 0, len(la)+len(lb))
	lists = append(lists, la...)
	lists = append(lists, lb...)
	slices.Sort(lists)
	lists = slices.Compact(lists)
	v := t.intern(t.tags[a].Categories|t.tags[b].Categories, lists)
	t.memo[k] = v
	return v
}

// input is one list as the compiler sees it.
type input struct {
	list config.List
	// open returns the source's bytes; nil when there are none (download never succeeded).
	open func() (io.ReadCloser, error)
	sum  string // SHA-256 of the bytes, or "" when open is nil
}

func listFormat(l config.List) Format {
	if l.Format == "" {
		return FormatDomains
	}
	return Format(l.Format)
}

// effectiveMapping returns the provider mapping of a ut1 list with its overrides applied.
func effectiveMapping(l config.List) (category.Mapping, error) {
	name := l.Mapping
	if name == "" {
		name = "ut1"
	}
	base, ok := category.Mappings()[name]
	if !ok {
		return nil, fmt.Errorf("unknown mapping %q", name)
	}
	m := maps.Clone(base)
	maps.Copy(m, l.Categories)
	return m, nil
}

// compile parses every input into a Catalog. Sources that cannot be read or configured
// become empty with an error in their stats: one bad list must not take filtering down.
func compile(ctx context.Context, inputs []input, maxUncompressed int64) (*Catalog, []compileStats, error) {
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.list.Name
	}
	tags := newTagTable(names)
	dom := NewSetBuilder(1 << 16)
	prot := NewSetBuilder(0)
	addrs := map[string][]netip.Prefix{}
	stats := make([]compileStats, len(inputs))

	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		st := &stats[i]
		if in.open == nil {
			continue
		}
		b := dom
		if in.list.Protected {
			b = prot
		}
		var err error
		switch f := listFormat(in.list); f {
		case FormatDomains, FormatHosts, FormatAdblock:
			err = compileSingle(in, f, i, b, tags, st)
		case FormatUT1:
			err = compileUT1(in, i, b, tags, st, maxUncompressed)
		case FormatIPs:
			err = withSource(in, func(r io.Reader) error {
				ps, err := ParseIPs(r, func(p netip.Prefix) { addrs[in.list.Name] = append(addrs[in.list.Name], p) })
				st.setParse(ps)
				return err
			})
		default:
			err = fmt.Errorf("%w: %q", ErrFormat, f)
		}
		if err != nil {
			st.Err = err.Error()
		}
	}
	merge := tags.merge
	cat := &Catalog{
		Domains:   dom.Build(merge),
		Protected: prot.Build(merge),
		Tags:      tags.tags,
		Addresses: addrs,
	}
	return cat, stats, nil
}

func (st *compileStats) setParse(ps ParseStats) {
	st.Entries, st.Skipped, st.Errors = ps.Entries, ps.Skipped, ps.Errors
}

func withSource(in input, fn func(io.Reader) error) error {
	rc, err := in.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return fn(rc)
}

func compileSingle(in input, f Format, idx int, b *SetBuilder, tags *tagTable, st *compileStats) error {
	var cats category.Set
	if in.list.Category != "" {
		c, err := category.SetOf(in.list.Category)
		if err != nil {
			return err
		}
		cats = c
	}
	tag := tags.intern(cats, []int{idx})
	return withSource(in, func(r io.Reader) error {
		ps, err := Parse(r, f, func(name string) { b.Add(name, tag) })
		st.setParse(ps)
		if in.list.Category != "" && ps.Entries > 0 {
			st.Categories = map[category.ID]int{in.list.Category: ps.Entries}
		}
		return err
	})
}

func compileUT1(in input, idx int, b *SetBuilder, tags *tagTable, st *compileStats, maxUncompressed int64) error {
	mapping, err := effectiveMapping(in.list)
	if err != nil {
		return err
	}
	type target struct {
		tag uint32
		id  category.ID
		ok  bool
	}
	// Provider categories repeat for every entry; resolve each once.
	resolved := map[string]target{}
	st.Categories = map[category.ID]int{}
	st.Unmapped = map[string]int{}
	entries := 0
	err = withSource(in, func(r io.Reader) error {
		ps, err := ParseUT1(r, maxUncompressed, func(pc, name string) {
			t, seen := resolved[pc]
			if !seen {
				id, known := mapping[pc]
				if known && id != "" {
					if c, err := category.SetOf(id); err == nil {
						t = target{tag: tags.intern(c, []int{idx}), id: id, ok: true}
					}
				}
				if !known {
					t.id = "" // counted as unmapped below
				}
				resolved[pc] = t
			}
			if !t.ok {
				if _, known := mapping[pc]; !known {
					st.Unmapped[pc]++
				}
				return
			}
			st.Categories[t.id]++
			entries++
			b.Add(name, t.tag)
		})
		st.setParse(ps)
		return err
	})
	st.Entries = entries
	if len(st.Unmapped) == 0 {
		st.Unmapped = nil
	}
	if len(st.Categories) == 0 {
		st.Categories = nil
	}
	return err
}

// Catalog snapshot layout: magic, version, the SHA-256 of the inputs it was compiled from,
// a JSON block with everything but the sets (length-prefixed, CRC-32C), then the Domains
// and Protected sets in their own format. A snapshot with another input hash is simply
// not used, so there is no migration.
const (
	catalogMagic   = "SGCATLG\n"
	catalogVersion = 1
	maxMetaLen     = 256 << 20
)

type catalogMeta struct {
	Tags      []snapTag                 `json:"tags"`
	Addresses map[string][]netip.Prefix `json:"addresses,omitempty"`
	Stats     []compileStats            `json:"stats"`
	Built     time.Time                 `json:"built"`
}

type snapTag struct {
	Categories uint64   `json:"c"`
	Lists      []string `json:"l"`
}

func writeCatalog(w io.Writer, inputHash [32]byte, cat *Catalog, stats []compileStats) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	meta := catalogMeta{Addresses: cat.Addresses, Stats: stats, Built: cat.Built}
	for _, t := range cat.Tags {
		meta.Tags = append(meta.Tags, snapTag{uint64(t.Categories), t.Lists})
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encoding catalog metadata: %w", err)
	}
	hdr := make([]byte, 0, 64)
	hdr = append(hdr, catalogMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, catalogVersion)
	hdr = append(hdr, inputHash[:]...)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(mb)))
	bw.Write(hdr)
	bw.Write(mb)
	bw.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(mb, castagnoli)))
	if _, err := cat.Domains.WriteTo(bw); err != nil {
		return err
	}
	if _, err := cat.Protected.WriteTo(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// snapshotOf reports whether the snapshot file at path was compiled from inputHash,
// reading its header only.
func snapshotOf(path string, inputHash [32]byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var hdr [8 + 4 + 32]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return false
	}
	return string(hdr[:8]) == catalogMagic && binary.LittleEndian.Uint32(hdr[8:]) == catalogVersion &&
		[32]byte(hdr[12:44]) == inputHash
}

// readCatalog reads a snapshot of size bytes (0: unknown), or returns (nil, nil, nil) when
// it was compiled from other inputs than want.
func readCatalog(r io.Reader, size int64, want [32]byte) (*Catalog, []compileStats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	hdr := make([]byte, 8+4+32+4)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, nil, readErr("catalog header", err)
	}
	if string(hdr[:8]) != catalogMagic {
		return nil, nil, fmt.Errorf("%w: bad catalog magic", ErrCorrupt)
	}
	if binary.LittleEndian.Uint32(hdr[8:]) != catalogVersion || [32]byte(hdr[12:44]) != want {
		return nil, nil, nil
	}
	n := binary.LittleEndian.Uint32(hdr[44:])
	if n > maxMetaLen {
		return nil, nil, fmt.Errorf("%w: catalog metadata of %d bytes", ErrCorrupt, n)
	}
	mb, err := io.ReadAll(io.LimitReader(br, int64(n)))
	if err != nil {
		return nil, nil, fmt.Errorf("reading catalog metadata: %w", err)
	}
	var sum [4]byte
	if len(mb) != int(n) {
		return nil, nil, fmt.Errorf("%w: truncated catalog metadata", ErrCorrupt)
	}
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, nil, readErr("catalog checksum", err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc32.Checksum(mb, castagnoli) {
		return nil, nil, fmt.Errorf("%w: catalog metadata checksum mismatch", ErrCorrupt)
	}
	var meta catalogMeta
	if err := json.Unmarshal(mb, &meta); err != nil {
		return nil, nil, fmt.Errorf("%w: catalog metadata: %v", ErrCorrupt, err)
	}
	cat := &Catalog{Addresses: meta.Addresses, Built: meta.Built}
	if cat.Addresses == nil {
		cat.Addresses = map[string][]netip.Prefix{}
	}
	for _, t := range meta.Tags {
		cat.Tags = append(cat.Tags, Tag{Categories: category.Set(t.Categories), Lists: t.Lists})
	}
	// Each set may take at most what is left of the file: a damaged header claiming more
	// is read by growing the table, and fails at the end of the data.
	cr := &countReader{r: br, n: int64(len(hdr) + len(mb) + len(sum))}
	left := func() int64 {
		if size <= 0 {
			return 0 // unknown
		}
		return max(size-cr.n, 1)
	}
	if cat.Domains, err = readSet(cr, left()); err != nil {
		return nil, nil, err
	}
	if cat.Protected, err = readSet(cr, left()); err != nil {
		return nil, nil, err
	}
	// Values must index Tags, or the policy would panic on a damaged file.
	for _, s := range []*Set{cat.Domains, cat.Protected} {
		if v := s.maxValue(); s.Len() > 0 && int(v) >= len(cat.Tags) {
			return nil, nil, fmt.Errorf("%w: tag %d out of range", ErrCorrupt, v)
		}
	}
	return cat, meta.Stats, nil
}
