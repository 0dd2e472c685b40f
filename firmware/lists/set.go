package lists

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sort"
	"unsafe"
)

// A Set stores 64-bit keyed hashes of names instead of the names: 12 bytes per entry plus
// a bucket index of 1–2 bytes per entry, against 40+ bytes for a Go string in a map. Two
// names collide with probability about n/2^64 per lookup (≈3·10^-13 at 5M entries), which
// we accept; the hash is seeded per build so collisions cannot be precomputed.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	// maxSuffixes bounds the labels of a name we probe: a listed name is at most 253 bytes,
	// so at most 127 labels, and longer query suffixes cannot be in a Set.
	maxSuffixes = 128
	// maxSetEntries keeps positions within the uint32 bucket index.
	maxSetEntries = 1<<31 - 1
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
	return finalize(h)
}

// suffixKeys fills keys and starts with the key and start offset of every suffix of name
// at a label boundary, shortest first, and returns how many it wrote.
func suffixKeys(name string, seed uint64, keys *[maxSuffixes]uint64, starts *[maxSuffixes]uint16) int {
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
			if len(name)-i > maxNameLen || n == maxSuffixes {
				break
			}
			keys[n] = finalize(h)
			starts[n] = uint16(i)
			n++
		}
	}
	return n
}

// Set is an immutable set of domain names, each with a uint32 value, matched by suffix at
// label boundaries: a listed "example.com" matches "a.b.example.com" but not
// "notexample.com". A listed top-level domain ("zip") matches every name under it.
// A Set is safe for concurrent use.
type Set struct {
	seed  uint64
	shift uint // 64 - index bits; the bucket of a key is key >> shift
	keys  []uint64
	vals  []uint32
	index []uint32 // bucket b holds keys[index[b]:index[b+1]]
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
		s.setIndex(0)
		return s
	}

	// Counting sort by bucket (stable, so duplicates stay in insertion order), then a sort
	// inside each small bucket: linear time, which is what makes 5M names build in well
	// under a second.
	ib := indexBits(n)
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
	// next[b] is now the end of bucket b, and the start of bucket b is the end of b-1.
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
	if w < n-n/16 {
		keys = append([]uint64(nil), keys[:w]...)
		vals = append([]uint32(nil), vals[:w]...)
	} else {
		keys, vals = keys[:w:w], vals[:w:w]
	}
	s.keys, s.vals = keys, vals
	s.setIndex(indexBits(w))
	return s
}

// indexBits sizes the bucket index at 2–4 keys per bucket: one cache line of keys per probe
// for 1–2 bytes of index per entry.
func indexBits(n int) int {
	if n < 4 {
		return 0
	}
	return min(bits.Len(uint(n))-2, 30)
}

// setIndex builds the bucket index over the sorted keys.
func (s *Set) setIndex(ib int) {
	s.shift = uint(64 - ib)
	idx := make([]uint32, (1<<ib)+1)
	p := 0
	for b := range 1 << ib {
		idx[b] = uint32(p)
		for p < len(s.keys) && int(s.keys[p]>>s.shift) == b {
			p++
		}
	}
	idx[1<<ib] = uint32(len(s.keys))
	s.index = idx
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
	return len(s.keys)
}

// find returns the position of key k.
func (s *Set) find(k uint64) (int, bool) {
	b := k >> s.shift
	lo, hi := s.index[b], s.index[b+1]
	for i := lo; i < hi; i++ {
		if x := s.keys[i]; x >= k {
			return int(i), x == k
		}
	}
	return 0, false
}

// Match calls fn for each suffix of name at a label boundary that is in s, longest first
// (the name itself, then its parents, up to the top-level domain), until fn returns false.
// One trailing dot is ignored, so DNS names can be passed as they come; ASCII case is
// ignored. Match does not allocate.
func (s *Set) Match(name string, fn func(suffix string, v uint32) bool) {
	if s == nil || len(s.keys) == 0 {
		return
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	var keys [maxSuffixes]uint64
	var starts [maxSuffixes]uint16
	n := suffixKeys(name, s.seed, &keys, &starts)
	// Probe every suffix before calling fn: the probes are independent, so the CPU overlaps
	// their cache misses, and most names are in no list at all.
	var hit [maxSuffixes]int32
	var hitStart [maxSuffixes]uint16
	found := 0
	for j := n - 1; j >= 0; j-- {
		if i, ok := s.find(keys[j]); ok {
			hit[found] = int32(i)
			hitStart[found] = starts[j]
			found++
		}
	}
	for j := range found {
		if !fn(name[hitStart[j]:], s.vals[hit[j]]) {
			return
		}
	}
}

// Lookup returns the longest suffix of name in s and its value.
func (s *Set) Lookup(name string) (suffix string, v uint32, ok bool) {
	if s == nil || len(s.keys) == 0 {
		return "", 0, false
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	var keys [maxSuffixes]uint64
	var starts [maxSuffixes]uint16
	n := suffixKeys(name, s.seed, &keys, &starts)
	for j := n - 1; j >= 0; j-- {
		if i, found := s.find(keys[j]); found {
			return name[starts[j]:], s.vals[i], true
		}
	}
	return "", 0, false
}

// Contains reports whether name itself (not a parent) is in s.
func (s *Set) Contains(name string) bool {
	if s == nil || len(s.keys) == 0 {
		return false
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	_, ok := s.find(hashName(name, s.seed))
	return ok
}

// MemoryBytes returns the heap memory held by s.
func (s *Set) MemoryBytes() int {
	if s == nil {
		return 0
	}
	return int(unsafe.Sizeof(*s)) + 8*cap(s.keys) + 4*cap(s.vals) + 4*cap(s.index)
}
