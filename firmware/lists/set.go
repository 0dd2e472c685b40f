package lists

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sort"
	"unsafe"
)

// A Set stores 64-bit keyed hashes of names instead of the names, in a bucketed cuckoo hash
// table whose 64-byte buckets hold five keys and their values: about 14 bytes per entry at
// 90% load, against 40+ bytes for a Go string in a map, and one cache line per bucket. Two
// names collide with probability about n/2^64 per lookup (≈3·10^-13 at 5M entries), which
// we accept; the hash is seeded per build so collisions cannot be precomputed.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
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

// finalize is the splitmix64 finaliser. FNV-1a alone mixes poorly into the top bits, which
// pick the bucket; this spreads every input bit over the whole key.
func finalize(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// hashName returns the key of a whole name. It hashes from the last byte to the first so
// that the running state at each label boundary is the hash of that suffix, which is what
// lets Match get every parent's key in one pass.
func hashName(name string, seed uint64) uint64 {
	h := uint64(fnvOffset) ^ seed
	for i := len(name) - 1; i >= 0; i-- {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= fnvPrime
	}
	return keyOf(h)
}

// keyOf finishes a running FNV state into a key. Key 0 marks an empty slot, so a hash of 0
// becomes 1.
func keyOf(h uint64) uint64 {
	k := finalize(h)
	if k == 0 {
		k = 1
	}
	return k
}

// suffixKeys fills keys and starts with the key and start offset of every suffix of name
// at a label boundary, shortest first. It returns how many it wrote and false when name has
// more such suffixes (of at most maxNameLen bytes) than keys has room for.
func suffixKeys(name string, seed uint64, keys []uint64, starts []uint16) (int, bool) {
	h := uint64(fnvOffset) ^ seed
	n := 0
	for i := len(name) - 1; i >= 0; i-- {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= fnvPrime
		if i == 0 || name[i-1] == '.' {
			if len(name)-i > maxNameLen {
				break
			}
			if n == len(keys) || n == len(starts) {
				return n, false
			}
			keys[n] = keyOf(h)
			starts[n] = uint16(i)
			n++
		}
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
type Set struct {
	seed uint64
	n    int
	tbl  table
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
type SetBuilder struct {
	seed uint64
	keys []uint64
	vals []uint32
}

// NewSetBuilder returns a builder with room for sizeHint names.
func NewSetBuilder(sizeHint int) *SetBuilder {
	var b [8]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return newSetBuilderSeed(sizeHint, binary.LittleEndian.Uint64(b[:]))
}

func newSetBuilderSeed(sizeHint int, seed uint64) *SetBuilder {
	sizeHint = max(0, min(sizeHint, 1<<26))
	return &SetBuilder{seed: seed, keys: make([]uint64, 0, sizeHint), vals: make([]uint32, 0, sizeHint)}
}

// Add adds a normalised name (see Normalize) with value v. A trailing dot is ignored.
func (b *SetBuilder) Add(name string, v uint32) {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	b.keys = append(b.keys, hashName(name, b.seed))
	b.vals = append(b.vals, v)
}

// Len returns the number of names added so far, duplicates included.
func (b *SetBuilder) Len() int { return len(b.keys) }

// Build returns the Set and resets the builder. When a name was added more than once, the
// values are folded in the order they were added with merge(old, new); a nil merge keeps
// the first value.
func (b *SetBuilder) Build(merge func(a, b uint32) uint32) *Set {
	inKeys, inVals := b.keys, b.vals
	b.keys, b.vals = nil, nil
	n := len(inKeys)
	if n > maxSetEntries {
		panic("lists: set too large")
	}
	s := &Set{seed: b.seed}
	if n == 0 {
		return s
	}

	// Counting sort by the top bits (stable, so duplicates stay in insertion order), then a
	// sort inside each small group: linear time. Sorted keys make duplicates adjacent, and
	// filling the table in key order visits first buckets in order.
	ib := sortBits(n)
	shift := uint(64 - ib)
	counts := make([]uint32, (1<<ib)+1)
	for _, k := range inKeys {
		counts[(k>>shift)+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	keys := make([]uint64, n)
	vals := make([]uint32, n)
	next := counts[:len(counts)-1]
	for i, k := range inKeys {
		bk := k >> shift
		p := next[bk]
		keys[p], vals[p] = k, inVals[i]
		next[bk]++
	}
	inKeys, inVals = nil, nil
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

// touch loads the first word of both buckets of every key into first, in a loop without
// branches or dependencies between iterations, so that the CPU has all the cache misses in
// flight at once; the comparisons that follow then mostly hit the cache. first[j] is zero
// only when both buckets of keys[j] are empty, which lets the comparisons skip them.
func (s *Set) touch(keys, first []uint64) {
	tbl := s.tbl.b
	nb := uint64(len(tbl))
	first = first[:len(keys)]
	for j, k := range keys {
		b1, b2 := bucketPair(k, nb)
		first[j] = tbl[b1].keys[0] | tbl[b2].keys[0]
	}
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
	var keys, first [fastSuffixes]uint64
	var starts [fastSuffixes]uint16
	n, ok := suffixKeys(name, s.seed, keys[:], starts[:])
	if !ok {
		s.matchLong(name, fn)
		return
	}
	s.touch(keys[:n], first[:n])
	s.match(name, keys[:n], starts[:n], first[:n], fn)
}

//go:noinline
func (s *Set) matchLong(name string, fn func(suffix string, v uint32) bool) {
	var keys, first [maxSuffixes]uint64
	var starts [maxSuffixes]uint16
	n, _ := suffixKeys(name, s.seed, keys[:], starts[:])
	s.touch(keys[:n], first[:n])
	s.match(name, keys[:n], starts[:n], first[:n], fn)
}

func (s *Set) match(name string, keys []uint64, starts []uint16, first []uint64, fn func(string, uint32) bool) {
	for j := len(keys) - 1; j >= 0; j-- {
		if first[j] == 0 {
			continue
		}
		if b, i := s.find(keys[j]); b != nil && !fn(name[starts[j]:], b.vals[i]) {
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
	var keys, first [fastSuffixes]uint64
	var starts [fastSuffixes]uint16
	n, all := suffixKeys(name, s.seed, keys[:], starts[:])
	if !all {
		return s.lookupLong(name)
	}
	s.touch(keys[:n], first[:n])
	return s.lookup(name, keys[:n], starts[:n], first[:n])
}

//go:noinline
func (s *Set) lookupLong(name string) (string, uint32, bool) {
	var keys, first [maxSuffixes]uint64
	var starts [maxSuffixes]uint16
	n, _ := suffixKeys(name, s.seed, keys[:], starts[:])
	s.touch(keys[:n], first[:n])
	return s.lookup(name, keys[:n], starts[:n], first[:n])
}

func (s *Set) lookup(name string, keys []uint64, starts []uint16, first []uint64) (string, uint32, bool) {
	for j := len(keys) - 1; j >= 0; j-- {
		if first[j] == 0 {
			continue
		}
		if b, i := s.find(keys[j]); b != nil {
			return name[starts[j]:], b.vals[i], true
		}
	}
	return "", 0, false
}

// Contains reports whether name itself (not a parent) is in s.
func (s *Set) Contains(name string) bool {
	if s == nil || s.n == 0 {
		return false
	}
	b, _ := s.find(hashName(trimDot(name), s.seed))
	return b != nil
}

// MemoryBytes returns the memory held by s.
func (s *Set) MemoryBytes() int {
	if s == nil {
		return 0
	}
	return int(unsafe.Sizeof(*s)) + int(unsafe.Sizeof(bucket{}))*len(s.tbl.b)
}
