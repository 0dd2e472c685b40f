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
//	count   uint64
//	keys    count × uint64, strictly increasing
//	values  count × uint32
//	crc     uint32, CRC-32C of everything before it
//
// The bucket index is not stored: rebuilding it is one pass over the keys and saves
// checking a second structure against the first. The hash function is part of the
// version: changing it means a new version.
const (
	setMagic   = "SGDSET\r\n"
	setVersion = 1
	headerLen  = 8 + 4 + 4 + 8 + 8
	chunkLen   = 64 << 10 // entries per read when loading
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes s in the versioned snapshot format read by ReadSet.
func (s *Set) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	crc := crc32.New(castagnoli)
	out := io.MultiWriter(bw, crc)

	var keys []uint64
	var vals []uint32
	var seed uint64
	if s != nil {
		keys, vals, seed = s.keys, s.vals, s.seed
	}
	var hdr [headerLen]byte
	copy(hdr[:], setMagic)
	binary.LittleEndian.PutUint32(hdr[8:], setVersion)
	binary.LittleEndian.PutUint32(hdr[12:], 0)
	binary.LittleEndian.PutUint64(hdr[16:], seed)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(len(keys)))
	out.Write(hdr[:])

	buf := make([]byte, 0, 8*4096)
	for i := 0; i < len(keys); i += 4096 {
		buf = buf[:0]
		for _, k := range keys[i:min(i+4096, len(keys))] {
			buf = binary.LittleEndian.AppendUint64(buf, k)
		}
		out.Write(buf)
	}
	for i := 0; i < len(vals); i += 8192 {
		buf = buf[:0]
		for _, v := range vals[i:min(i+8192, len(vals))] {
			buf = binary.LittleEndian.AppendUint32(buf, v)
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
func ReadSet(r io.Reader) (*Set, error) {
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
	if count > maxSetEntries {
		return nil, fmt.Errorf("%w: %d entries", ErrCorrupt, count)
	}
	n := int(count)

	buf := make([]byte, 8*min(n, chunkLen))
	keys := make([]uint64, 0, min(n, chunkLen))
	for len(keys) < n {
		m := min(n-len(keys), chunkLen)
		b := buf[:8*m]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, readErr("keys", err)
		}
		crc.Write(b)
		keys = grow(keys, m, n)
		for i := 0; i < len(b); i += 8 {
			k := binary.LittleEndian.Uint64(b[i:])
			if len(keys) > 0 && k <= keys[len(keys)-1] {
				return nil, fmt.Errorf("%w: keys out of order", ErrCorrupt)
			}
			keys = append(keys, k)
		}
	}
	vals := make([]uint32, 0, min(n, chunkLen))
	for len(vals) < n {
		m := min(n-len(vals), chunkLen)
		b := buf[:4*m]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, readErr("values", err)
		}
		crc.Write(b)
		vals = grow(vals, m, n)
		for i := 0; i < len(b); i += 4 {
			vals = append(vals, binary.LittleEndian.Uint32(b[i:]))
		}
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, readErr("checksum", err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc.Sum32() {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	s := &Set{seed: seed, keys: keys, vals: vals}
	s.setIndex(indexBits(n))
	return s, nil
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
