package lists

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// ErrCorrupt is returned when a snapshot fails its checks.
var ErrCorrupt = errors.New("corrupt snapshot")

// Set snapshot layout, little endian:
//
//	magic   "SGDSET\r\n" (8 bytes; the CR LF catches text-mode mangling)
//	version uint32 (setVersion)
//	flags   uint32 (0)
//	seed    uint64
//	count   uint64, the number of keys
//	buckets uint64
//	labels  uint64, bit i set when some entry has i labels (bit 63: 63 or more)
//	table   buckets × 64 bytes: 5 keys (uint64), 5 values (uint32), 4 zero bytes
//	crc     uint32, CRC-32C of everything before it
//
// The table is stored as it is in memory, so loading is a copy plus checks: every key is in
// one of its two buckets, slots fill from the first, empty slots are all zero, and the keys
// add up to count. The hash function and the bucket choice are part of the version:
// changing either means a new version. Older versions (1: sorted keys and values; 2: the
// byte-at-a-time FNV-1a suffix hash; 3: no label mask) are refused, and the list manager
// then compiles the lists again.
const (
	setMagic   = "SGDSET\r\n"
	setVersion = 4
	headerLen  = 8 + 4 + 4 + 8 + 8 + 8 + 8
	bucketLen  = 64
	chunkLen   = 4096 // buckets per read when loading
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes s in the versioned snapshot format read by ReadSet.
func (s *Set) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	crc := crc32.New(castagnoli)
	out := io.MultiWriter(bw, crc)

	var tbl []bucket
	var seed, count, labels uint64
	if s != nil {
		tbl, seed, count, labels = s.tbl.b, s.seed, uint64(s.n), s.labels
	}
	var hdr [headerLen]byte
	copy(hdr[:], setMagic)
	binary.LittleEndian.PutUint32(hdr[8:], setVersion)
	binary.LittleEndian.PutUint32(hdr[12:], 0)
	binary.LittleEndian.PutUint64(hdr[16:], seed)
	binary.LittleEndian.PutUint64(hdr[24:], count)
	binary.LittleEndian.PutUint64(hdr[32:], uint64(len(tbl)))
	binary.LittleEndian.PutUint64(hdr[40:], labels)
	out.Write(hdr[:])

	buf := make([]byte, 0, bucketLen*chunkLen)
	for i := 0; i < len(tbl); i += chunkLen {
		buf = buf[:0]
		for j := range tbl[i:min(i+chunkLen, len(tbl))] {
			b := &tbl[i+j]
			for _, k := range b.keys {
				buf = binary.LittleEndian.AppendUint64(buf, k)
			}
			for _, v := range b.vals {
				buf = binary.LittleEndian.AppendUint32(buf, v)
			}
			buf = binary.LittleEndian.AppendUint32(buf, 0)
		}
		out.Write(buf)
	}
	bw.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("writing set: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadSet reads a Set written by WriteTo. It reads exactly the snapshot's bytes, so a Set can
// be embedded in a larger file. Damaged or hostile input gives an error wrapping ErrCorrupt
// (or the reader's error), never a panic, and memory grows with the bytes actually present
// rather than with the count the header claims.
func ReadSet(r io.Reader) (*Set, error) { return readSet(r, 0) }

// readSet is ReadSet for a reader known to hold at most avail bytes (0: unknown). A table
// that fits in them is allocated at its size at once: loading the full UT1 set then takes
// its 80 MB, not that plus the copies of a growing table.
func readSet(r io.Reader, avail int64) (*Set, error) {
	crc := crc32.New(castagnoli)
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, readErr("header", err)
	}
	crc.Write(hdr[:])
	if string(hdr[:8]) != setMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != setVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, v)
	}
	if f := binary.LittleEndian.Uint32(hdr[12:]); f != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, f)
	}
	seed := binary.LittleEndian.Uint64(hdr[16:])
	count := binary.LittleEndian.Uint64(hdr[24:])
	nbuckets := binary.LittleEndian.Uint64(hdr[32:])
	labels := binary.LittleEndian.Uint64(hdr[40:])
	if count > maxSetEntries || count > bucketSlots*nbuckets ||
		nbuckets > 2*uint64(bucketsFor(int(count)))+8 || (count == 0) != (nbuckets == 0) {
		return nil, fmt.Errorf("%w: %d entries in %d buckets", ErrCorrupt, count, nbuckets)
	}
	if (count == 0) != (labels == 0) || labels&1 != 0 {
		return nil, fmt.Errorf("%w: label mask %#x for %d entries", ErrCorrupt, labels, count)
	}
	nb := int(nbuckets)

	// The table grows with the data read (see grow).
	buf := make([]byte, bucketLen*min(nb, chunkLen))
	tbl := make([]bucket, 0, min(nb, chunkLen))
	if avail > 0 && uint64(avail)/bucketLen >= nbuckets {
		tbl = make([]bucket, 0, nb)
	}
	keys := 0
	for len(tbl) < nb {
		m := min(nb-len(tbl), chunkLen)
		b := buf[:bucketLen*m]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, readErr("table", err)
		}
		crc.Write(b)
		tbl = grow(tbl, m, nb)
		for ; len(b) > 0; b = b[bucketLen:] {
			var e bucket
			for i := range e.keys {
				e.keys[i] = binary.LittleEndian.Uint64(b[8*i:])
				e.vals[i] = binary.LittleEndian.Uint32(b[8*bucketSlots+4*i:])
			}
			n, err := checkBucket(&e, uint64(len(tbl)), nbuckets, binary.LittleEndian.Uint32(b[bucketLen-4:]))
			if err != nil {
				return nil, err
			}
			keys += n
			tbl = append(tbl, e)
		}
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, readErr("checksum", err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc.Sum32() {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if uint64(keys) != count {
		return nil, fmt.Errorf("%w: %d keys, header says %d", ErrCorrupt, keys, count)
	}
	return &Set{seed: seed, h: newHasher(seed), n: keys, labels: labels, tbl: table{b: tbl}}, nil
}

// checkBucket checks bucket e, number i of nb, and returns how many keys it holds.
func checkBucket(e *bucket, i, nb uint64, pad uint32) (int, error) {
	if pad != 0 {
		return 0, fmt.Errorf("%w: bucket %d: padding not zero", ErrCorrupt, i)
	}
	n := 0
	for j, k := range e.keys {
		if k == 0 {
			if e.vals[j] != 0 || (j+1 < bucketSlots && e.keys[j+1] != 0) {
				return 0, fmt.Errorf("%w: bucket %d: bad empty slot", ErrCorrupt, i)
			}
			continue
		}
		if b1, b2 := bucketPair(k, nb); b1 != i && b2 != i {
			return 0, fmt.Errorf("%w: bucket %d: misplaced key", ErrCorrupt, i)
		}
		n++
	}
	return n, nil
}

// grow makes room for m more elements, doubling up to the claimed total n: memory follows
// the data actually read, the copies add up to less than the final size, and the final
// capacity is exactly n.
func grow[T any](s []T, m, n int) []T {
	if len(s)+m <= cap(s) {
		return s
	}
	c := min(n, max(2*cap(s), len(s)+m))
	t := make([]T, len(s), c)
	copy(t, s)
	return t
}

func readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	return fmt.Errorf("reading set %s: %w", what, err)
}
