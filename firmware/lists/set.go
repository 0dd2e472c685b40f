package lists

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sort"
	"strings"
	"unsafe"
)

// A Set stores 64-bit keyed hashes of names instead of the names, in a bucketed cuckoo hash
// table whose 64-byte buckets hold five keys and their values: about 14 bytes per entry at
// 90% load, against 40+ bytes for a Go string in a map, and one cache line per bucket. Two
// names collide with probability about n/2^64 per probed suffix (≈3·10^-13 at 5M entries), which
// we accept; the hash is seeded per build so collisions cannot be precomputed.

const (
	// maxSuffixes bounds the labels of a name we probe: a listed name is at most 253 bytes,
	// so at most 127 labels, and longer query suffixes cannot be in a Set.
	maxSuffixes = 128
	// fastSuffixes is how many suffixes Match and Lookup handle with small stack arrays;
	// names with more labels take a slower path with room for maxSuffixes.
	fastSuffixes = 16
	// maxSetEntries bounds a Set (and what a snapshot may claim).
	maxSetEntries = 1<<31 - 1
	// bucketSlots is the number of keys in a bucket: 5 × (8 + 4) bytes fill a 64-byte line.
	bucketSlots = 5
	// maxKicks bounds one insertion's cuckoo walk before the table is rebuilt larger.
	maxKicks = 1000
)

// finalize is the splitmix64 finaliser, a bijection that spreads every input bit over the
// whole output.
func finalize(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// The suffix hash works on labels, right to left, so one pass from the end of a name gives
// the key of every suffix at a label boundary. A label of n bytes is read as 64-bit
// little-endian words, ASCII upper case folded to lower case eight bytes at a time, and
// folded into the state of its parent suffix with one keyed 64×64→128-bit multiply:
//
//	h(no labels)      = k0
//	h(label.parent)   = mum(h(parent) ^ w0 ^ k1, w1 ^ k2 ^ n)            n ≤ 16
//	mum(x, y)         = high ^ low 64 bits of x·y
//
// where w0 holds the first eight bytes of the label (zero-padded) and w1 the last eight
// when n > 8 (overlapping w0 when n < 16; n tells the cases apart), else 0. Longer labels
// fold 16-byte blocks in the same way before the last one. The key of a suffix is its
// state (0 becomes 1, 0 marking an empty slot).
//
// Collisions: every state is the output of a multiply whose operands take in the whole
// parent state, the label bytes and the label length, so a suffix's key is a function of
// exactly its labels, and two different suffixes collide when the folded multiply of two
// different operand pairs agrees on 64 bits. With k0, k1 and k2 drawn from the per-build
// seed, that is a 2^-64 event per pair for names not chosen with knowledge of the seed
// (the same construction as wyhash and rapidhash): about 5·10^6 × 6 / 2^64 ≈ 2·10^-12 per
// lookup of a six-label name in a 5M-name Set. A multiply by 0 would forget the other
// operand: the top bit of k2 keeps the second operand non-zero for every label of at most
// eight bytes and every listed (ASCII) label, and the first operand is 0 only by a 2^-64
// accident of the seed. The seed also means colliding names cannot be prepared in advance.
type hasher struct {
	k0, k1, k2 uint64
}

func newHasher(seed uint64) hasher {
	return hasher{
		k0: finalize(seed ^ 0x243f6a8885a308d3),
		k1: finalize(seed ^ 0x13198a2e03707344),
		k2: finalize(seed^0xa4093822299f31d0) | 1<<63,
	}
}

const (
	lo7  = 0x7f7f7f7f7f7f7f7f
	hi1  = 0x8080808080808080
	dots = 0x2e2e2e2e2e2e2e2e
)

// mum is the folded 64×64→128-bit multiply.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// lower folds the ASCII upper-case letters of the eight bytes of w to lower case.
func lower(w uint64) uint64 {
	x := w & lo7
	ge := x + 0x3f3f3f3f3f3f3f3f // high bit set where the low 7 bits are >= 'A'
	gt := x + 0x2525252525252525 // … > 'Z'
	m := ge &^ gt &^ w & hi1     // 'A'..'Z', and not a byte >= 0x80
	return w | m>>2
}

// dotMask returns the high bit of every byte of w that is '.'.
func dotMask(w uint64) uint64 {
	x := w ^ dots
	return ^((x&lo7 + lo7) | x | lo7)
}

// le64 loads the eight bytes s[i:i+8] as a little-endian word.
func le64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// headWord returns the first min(8, len(s)) bytes of s as a zero-extended little-endian
// word.
func headWord(s string) uint64 {
	if len(s) >= 8 {
		return le64(s, 0)
	}
	var w uint64
	for i := len(s) - 1; i >= 0; i-- {
		w = w<<8 | uint64(s[i])
	}
	return w
}

// window returns the eight bytes of s before p, byte p-1 in the top byte, with zeros
// for positions before the start; head is headWord(s).
func window(s string, head uint64, p int) uint64 {
	if p >= 8 {
		return le64(s, p-8)
	}
	return head << (64 - 8*uint(p)&63) & -(uint64(p+7) >> 3) // 0 when p == 0
}

// longLabel handles a label that does not fit in the eight bytes before end: it returns
// where the label starts (or a value below floor when it starts before floor) and the
// state after folding it into st.
//
//go:noinline
func (h *hasher) longLabel(s string, head uint64, end, floor int, st uint64) (int, uint64) {
	start := 0
	for p := end - 8; p > 0; p -= 8 {
		if m := dotMask(window(s, head, p)); m != 0 {
			start = p - bits.LeadingZeros64(m)/8
			break
		}
		if max(p-8, 0) < floor {
			return floor - 1, 0
		}
	}
	n := end - start
	if n <= 8 { // a short label at the start of a name shorter than eight bytes
		a := window(s, head, end) >> (64 - 8*uint(n))
		return start, mum(st^lower(a)^h.k1, h.k2^uint64(n))
	}
	acc := st
	p := start
	for ; end-p > 16; p += 16 {
		acc = mum(acc^lower(le64(s, p))^h.k1, lower(le64(s, p+8))^h.k2^uint64(n))
	}
	// The last nine to sixteen bytes, as two words that may overlap each other and what
	// came before.
	a := lower(le64(s, max(start, end-16)))
	return start, mum(acc^a^h.k1, lower(le64(s, end-8))^h.k2^uint64(n))
}

// hashName returns the key of a whole name (the key its last suffix gets in suffixKeys).
func (h *hasher) hashName(name string) uint64 {
	head := headWord(name)
	st := h.k0
	for end := len(name); ; {
		w := window(name, head, end)
		m := dotMask(w)
		var start int
		if m != 0 || end <= 8 {
			n := end
			if m != 0 {
				n = bits.LeadingZeros64(m) / 8
			}
			start = end - n
			st = mum(st^lower(w>>(64-8*uint(n)))^h.k1, h.k2^uint64(n))
		} else {
			start, st = h.longLabel(name, head, end, 0, st)
		}
		if start == 0 {
			return keyOf(st)
		}
		end = start - 1
	}
}

// keyOf turns a suffix state into a key. Key 0 marks an empty slot, so 0 becomes 1.
func keyOf(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// labelBit returns the bit of a Set's label mask for names of the given number of labels;
// names of 63 labels or more share the top bit.
func labelBit(labels int) uint64 {
	return 1 << min(labels, 63)
}

// suffixKeys fills keys and starts with the key and start offset of every suffix of name
// at a label boundary whose label count is in mask (see labelBit), shortest first. It returns
// how many it wrote and false when name has more such suffixes (of at most maxNameLen
// bytes) than keys has room for.
func (h *hasher) suffixKeys(name string, mask uint64, keys []uint64, starts []uint16) (int, bool) {
	head := headWord(name)
	st := h.k0
	n := 0
	labels := 0
	lim := len(name) - maxNameLen
	for end := len(name); ; {
		// Labels of up to seven bytes (and whole names of up to eight) are found and
		// read with one load: the dot closest to end in the eight bytes before it.
		w := window(name, head, end)
		m := dotMask(w)
		var start int
		if m != 0 || end <= 8 {
			ln := end
			if m != 0 {
				ln = bits.LeadingZeros64(m) / 8
			}
			start = end - ln
			st = mum(st^lower(w>>(64-8*uint(ln)))^h.k1, h.k2^uint64(ln))
		} else {
			start, st = h.longLabel(name, head, end, lim, st)
		}
		if start < lim {
			break
		}
		// A trailing empty label (a name ending in a dot) is part of every suffix but
		// not a suffix of its own.
		if start < len(name) {
			labels++
			if mask&labelBit(labels) != 0 {
				if n == len(keys) || n == len(starts) {
					return n, false
				}
				keys[n] = keyOf(st)
				starts[n] = uint16(start)
				n++
			}
		}
		if start == 0 {
			break
		}
		end = start - 1
	}
	return n, true
}

// Set is an immutable set of domain names, each with a uint32 value, matched by suffix at
// label boundaries: a listed "example.com" matches "a.b.example.com" but not
// "notexample.com". A listed top-level domain ("zip") matches every name under it.
// A Set is safe for concurrent use.
//
// Keys live in a bucketed cuckoo table: a key is in one of two buckets picked from its
// bits, so a probe reads two independent cache lines, and Match and Lookup start the loads
// for every suffix of a name before comparing any, so the memory latencies overlap.
// Suffixes with a number of labels that no entry has (labels) are not probed at all: most
// lists hold no top-level domains and nothing deeper than a few labels, so a query such as
// "cdn.img1.a.example.co.uk" reads the buckets of three suffixes rather than six.
type Set struct {
	seed   uint64
	h      hasher
	n      int
	labels uint64 // labelBit of every entry's label count, ORed
	tbl    table
}

// A bucket is one cache line: five keys, their values, and zero padding. Slots fill from
// the first: an empty slot (key 0, value 0) is never followed by a used one.
type bucket struct {
	keys [bucketSlots]uint64
	vals [bucketSlots]uint32
	_    uint32
}

// slot returns the slot holding key k (never 0), or -1.
func (b *bucket) slot(k uint64) int {
	for i := range bucketSlots {
		if b.keys[i] == k {
			return i
		}
	}
	return -1
}

// put stores k and v in the first free slot and reports whether there was one.
func (b *bucket) put(k uint64, v uint32) bool {
	for i := range bucketSlots {
		if b.keys[i] == 0 {
			b.keys[i], b.vals[i] = k, v
			return true
		}
	}
	return false
}

// bucketPair returns the two buckets of key k in a table of nb buckets: one from the high
// bits of k, one from the low bits, each scaled to [0, nb) by a multiply.
func bucketPair(k, nb uint64) (uint64, uint64) {
	b1, _ := bits.Mul64(k, nb)
	b2, _ := bits.Mul64(bits.RotateLeft64(k, 32), nb)
	return b1, b2
}

// bucketsFor sizes a table for n keys at 90% load.
func bucketsFor(n int) int {
	return (2*n + 8) / 9
}

// SetBuilder collects names for a Set. It is not safe for concurrent use.
//
// Keys and values are kept in chunks rather than one growing slice: appending never
// copies, no capacity is left unused, and Build frees each chunk as soon as it has been
// sorted out of it. For the full UT1 set (5.5M names) that keeps the compile's peak well
// below the old one of two growing slices plus their sorted copy.
type SetBuilder struct {
	seed   uint64
	h      hasher
	labels uint64
	n      int
	first  int        // capacity of the first chunk (the size hint)
	keys   [][]uint64 // chunks; all full but the last
	vals   [][]uint32
}

// builderChunk is the capacity of every chunk but the first: 768 KiB of keys and values.
const builderChunk = 1 << 16

// NewSetBuilder returns a builder with room for sizeHint names before it allocates more.
func NewSetBuilder(sizeHint int) *SetBuilder {
	var b [8]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return newSetBuilderSeed(sizeHint, binary.LittleEndian.Uint64(b[:]))
}

func newSetBuilderSeed(sizeHint int, seed uint64) *SetBuilder {
	return &SetBuilder{seed: seed, h: newHasher(seed), first: max(16, min(sizeHint, builderChunk))}
}

// Add adds a normalised name (see Normalize) with value v. A trailing dot is ignored.
func (b *SetBuilder) Add(name string, v uint32) {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	last := len(b.keys) - 1
	if last < 0 || len(b.keys[last]) == cap(b.keys[last]) {
		c := builderChunk
		if last < 0 {
			c = b.first
		}
		b.keys = append(b.keys, make([]uint64, 0, c))
		b.vals = append(b.vals, make([]uint32, 0, c))
		last++
	}
	b.keys[last] = append(b.keys[last], b.h.hashName(name))
	b.vals[last] = append(b.vals[last], v)
	b.n++
	b.labels |= labelBit(strings.Count(name, ".") + 1)
}

// Len returns the number of names added so far, duplicates included.
func (b *SetBuilder) Len() int { return b.n }

// Build returns the Set and resets the builder. When a name was added more than once, the
// values are folded in the order they were added with merge(old, new); a nil merge keeps
// the first value.
func (b *SetBuilder) Build(merge func(a, b uint32) uint32) *Set {
	inKeys, inVals, n := b.keys, b.vals, b.n
	b.keys, b.vals, b.n = nil, nil, 0
	if n > maxSetEntries {
		panic("lists: set too large")
	}
	s := &Set{seed: b.seed, h: b.h, labels: b.labels}
	b.labels = 0
	if n == 0 {
		return s
	}

	// Counting sort by the top bits (stable, so duplicates stay in insertion order), then a
	// sort inside each small group: linear time. Sorted keys make duplicates adjacent, and
	// filling the table in key order visits first buckets in order.
	ib := sortBits(n)
	shift := uint(64 - ib)
	counts := make([]uint32, (1<<ib)+1)
	for _, chunk := range inKeys {
		for _, k := range chunk {
			counts[(k>>shift)+1]++
		}
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	keys := make([]uint64, n)
	vals := make([]uint32, n)
	next := counts[:len(counts)-1]
	for c, chunk := range inKeys {
		for i, k := range chunk {
			bk := k >> shift
			p := next[bk]
			keys[p], vals[p] = k, inVals[c][i]
			next[bk]++
		}
		inKeys[c], inVals[c] = nil, nil // sorted out: the collector may have it back
	}
	// next[b] is now the end of group b, and the start of group b is the end of b-1.
	lo := uint32(0)
	for _, hi := range next {
		sortBucket(keys[lo:hi], vals[lo:hi])
		lo = hi
	}
	counts, next = nil, nil

	// Dedupe adjacent equal keys.
	w := 0
	for r := 0; r < n; r++ {
		if w > 0 && keys[w-1] == keys[r] {
			if merge != nil {
				vals[w-1] = merge(vals[w-1], vals[r])
			}
			continue
		}
		keys[w], vals[w] = keys[r], vals[r]
		w++
	}
	s.fill(keys[:w], vals[:w])
	return s
}

// sortBits sizes the counting sort at 2–4 keys per group.
func sortBits(n int) int {
	if n < 4 {
		return 0
	}
	return min(bits.Len(uint(n))-2, 30)
}

// fill builds the table for the distinct keys. A cuckoo walk that gets stuck (vanishingly
// rare at 90% load, possible for tiny sets) restarts with 6% more buckets; the walk is
// seeded from the set's seed, so a build is deterministic.
func (s *Set) fill(keys []uint64, vals []uint32) {
	s.n = len(keys)
	rng := s.seed | 1
	for nb := bucketsFor(len(keys)); ; nb += nb/16 + 1 {
		tbl := newTable(nb)
		if fillTable(tbl.b, keys, vals, &rng) {
			s.tbl = tbl
			return
		}
		tbl.free()
	}
}

func fillTable(tbl []bucket, keys []uint64, vals []uint32, rng *uint64) bool {
	nb := uint64(len(tbl))
	for i, k := range keys {
		v := vals[i]
		b1, b2 := bucketPair(k, nb)
		if tbl[b1].put(k, v) || tbl[b2].put(k, v) {
			continue
		}
		// Both full: evict a random slot and move its key to its other bucket, and so on.
		x := xorshift(rng)
		b := b1
		if x&1 != 0 {
			b = b2
		}
		for kicks := 0; ; kicks++ {
			if kicks == maxKicks {
				return false
			}
			sl := (xorshift(rng) >> 32) % bucketSlots
			e := &tbl[b]
			k, v, e.keys[sl], e.vals[sl] = e.keys[sl], e.vals[sl], k, v
			c1, c2 := bucketPair(k, nb)
			alt := c1
			if alt == b {
				alt = c2
			}
			if tbl[alt].put(k, v) {
				break
			}
			b = alt
		}
	}
	return true
}

func xorshift(x *uint64) uint64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return *x
}

func sortBucket(keys []uint64, vals []uint32) {
	if len(keys) > 24 {
		sort.Stable(bucketSorter{keys, vals})
		return
	}
	for i := 1; i < len(keys); i++ {
		k, v := keys[i], vals[i]
		j := i
		for ; j > 0 && keys[j-1] > k; j-- {
			keys[j], vals[j] = keys[j-1], vals[j-1]
		}
		keys[j], vals[j] = k, v
	}
}

type bucketSorter struct {
	k []uint64
	v []uint32
}

func (s bucketSorter) Len() int           { return len(s.k) }
func (s bucketSorter) Less(i, j int) bool { return s.k[i] < s.k[j] }
func (s bucketSorter) Swap(i, j int) {
	s.k[i], s.k[j] = s.k[j], s.k[i]
	s.v[i], s.v[j] = s.v[j], s.v[i]
}

// Len returns the number of distinct names in s.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// maxValue returns the largest value in s, 0 when s is empty.
func (s *Set) maxValue() uint32 {
	var m uint32
	if s != nil {
		for i := range s.tbl.b {
			for _, v := range s.tbl.b[i].vals {
				m = max(m, v)
			}
		}
	}
	return m
}

// find returns the bucket and slot of key k.
func (s *Set) find(k uint64) (*bucket, int) {
	b1, b2 := bucketPair(k, uint64(len(s.tbl.b)))
	if i := s.tbl.b[b1].slot(k); i >= 0 {
		return &s.tbl.b[b1], i
	}
	if i := s.tbl.b[b2].slot(k); i >= 0 {
		return &s.tbl.b[b2], i
	}
	return nil, -1
}

// get returns the value of key k. It compares all ten slots of both buckets without
// branching on any one comparison: where a hit lands is random, and a mispredicted branch
// per lookup costs more than the few extra compares.
func (s *Set) get(k uint64) (uint32, bool) {
	b1, b2 := bucketPair(k, uint64(len(s.tbl.b)))
	v1, f1 := s.tbl.b[b1].value(k)
	v2, f2 := s.tbl.b[b2].value(k)
	return v1 | v2, f1|f2 != 0
}

// value returns the value of key k in b and 1, or 0, 0 when b does not hold k.
func (b *bucket) value(k uint64) (uint32, uint64) {
	var v uint32
	var found uint64
	for i := range bucketSlots {
		x := b.keys[i] ^ k
		eq := ((x | -x) >> 63) ^ 1 // 1 when equal
		v |= b.vals[i] & -uint32(eq)
		found |= eq
	}
	return v, found
}

// touch loads the first word of both buckets of every key, in a loop without branches or
// dependencies between iterations, so that the CPU has all the cache misses in flight at
// once; the comparisons that follow then mostly hit the cache. It returns the OR of the
// words read, which is zero only when every bucket is empty (and keeps the loads from
// being optimised away).
func (s *Set) touch(keys []uint64) uint64 {
	tbl := s.tbl.b
	nb := uint64(len(tbl))
	var any uint64
	for _, k := range keys {
		b1, b2 := bucketPair(k, nb)
		any |= tbl[b1].keys[0] | tbl[b2].keys[0]
	}
	return any
}

func trimDot(name string) string {
	if len(name) > 0 && name[len(name)-1] == '.' {
		return name[:len(name)-1]
	}
	return name
}

// Match calls fn for each suffix of name at a label boundary that is in s, longest first
// (the name itself, then its parents, up to the top-level domain), until fn returns false.
// One trailing dot is ignored, so DNS names can be passed as they come; ASCII case is
// ignored. Match does not allocate.
func (s *Set) Match(name string, fn func(suffix string, v uint32) bool) {
	if s == nil || s.n == 0 {
		return
	}
	name = trimDot(name)
	var keys [fastSuffixes]uint64
	var starts [fastSuffixes]uint16
	n, ok := s.h.suffixKeys(name, s.labels, keys[:], starts[:])
	if !ok {
		s.matchLong(name, fn)
		return
	}
	s.match(name, keys[:n], starts[:n], fn)
}

//go:noinline
func (s *Set) matchLong(name string, fn func(suffix string, v uint32) bool) {
	var keys [maxSuffixes]uint64
	var starts [maxSuffixes]uint16
	n, _ := s.h.suffixKeys(name, s.labels, keys[:], starts[:])
	s.match(name, keys[:n], starts[:n], fn)
}

func (s *Set) match(name string, keys []uint64, starts []uint16, fn func(string, uint32) bool) {
	if s.touch(keys) == 0 {
		return
	}
	starts = starts[:len(keys)]
	for j := len(keys) - 1; j >= 0; j-- {
		if v, ok := s.get(keys[j]); ok && !fn(name[starts[j]:], v) {
			return
		}
	}
}

// Lookup returns the longest suffix of name in s and its value.
func (s *Set) Lookup(name string) (suffix string, v uint32, ok bool) {
	if s == nil || s.n == 0 {
		return "", 0, false
	}
	name = trimDot(name)
	var keys [fastSuffixes]uint64
	var starts [fastSuffixes]uint16
	n, all := s.h.suffixKeys(name, s.labels, keys[:], starts[:])
	if !all {
		return s.lookupLong(name)
	}
	return s.lookup(name, keys[:n], starts[:n])
}

//go:noinline
func (s *Set) lookupLong(name string) (string, uint32, bool) {
	var keys [maxSuffixes]uint64
	var starts [maxSuffixes]uint16
	n, _ := s.h.suffixKeys(name, s.labels, keys[:], starts[:])
	return s.lookup(name, keys[:n], starts[:n])
}

func (s *Set) lookup(name string, keys []uint64, starts []uint16) (string, uint32, bool) {
	if s.touch(keys) == 0 {
		return "", 0, false
	}
	starts = starts[:len(keys)]
	for j := len(keys) - 1; j >= 0; j-- {
		if v, ok := s.get(keys[j]); ok {
			return name[starts[j]:], v, true
		}
	}
	return "", 0, false
}

// Contains reports whether name itself (not a parent) is in s.
func (s *Set) Contains(name string) bool {
	if s == nil || s.n == 0 {
		return false
	}
	b, _ := s.find(s.h.hashName(trimDot(name)))
	return b != nil
}

// MemoryBytes returns the memory held by s.
func (s *Set) MemoryBytes() int {
	if s == nil {
		return 0
	}
	return int(unsafe.Sizeof(*s)) + int(unsafe.Sizeof(bucket{}))*len(s.tbl.b)
}
