package backup

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The header and the chunked payload; doc.go specifies them.
const (
	magic         = "schoolgate-backup"
	formatVersion = "v1"
	maxHeaderLen  = 512

	saltSize   = 16
	prefixSize = chacha20poly1305.NonceSizeX - 5 // then 4 bytes of index, 1 of last-chunk flag
	checkSize  = 16
	sumSize    = 8
	keySize    = chacha20poly1305.KeySize

	chunkSize = 64 << 10
	tagSize   = chacha20poly1305.Overhead

	payloadKeyInfo = "schoolgate-backup v1 payload key"
	keyCheckInfo   = "schoolgate-backup v1 key check"
)

// kdfParams are argon2id's costs.
type kdfParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// defaultKDF is what Write uses: see doc.go for the timings. Four times
// auth's login parameters (m=19 MiB, t=2, p=1), since a backup file can be
// attacked offline for ever and is derived once, not at every login; two
// lanes because the Pi 4 has four cores and nothing else is waiting.
func defaultKDF() kdfParams { return kdfParams{Memory: 64 << 10, Time: 3, Threads: 2} }

// kdfCaps bound the argon2id parameters Read accepts from a file.
type kdfCaps struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	Work    uint64 // Memory × Time
}

// defaultCaps leave room for future firmware to raise the cost (4× memory)
// while keeping a hostile file's demand within what a 1 GB board can give a
// restore: 256 MiB and, at the m·t cap, about 5× the default's time (1 s on
// two x86 cores, 5–10 s on a Pi 4).
func defaultCaps() kdfCaps {
	return kdfCaps{Memory: 256 << 10, Time: 10, Threads: 8, Work: 1 << 20}
}

func (p kdfParams) check(c kdfCaps) error {
	switch {
	case p.Threads < 1 || p.Time < 1 || p.Memory < 8*uint32(p.Threads):
		// argon2 needs 8 KiB a lane; an honest writer never gets this wrong.
		return fmt.Errorf("%w: argon2id parameters m=%d t=%d p=%d are invalid", ErrCorrupt, p.Memory, p.Time, p.Threads)
	case p.Memory > c.Memory || p.Time > c.Time || p.Threads > c.Threads || uint64(p.Memory)*uint64(p.Time) > c.Work:
		return fmt.Errorf("%w: argon2id parameters m=%d KiB t=%d p=%d exceed what a restore allows (m≤%d, t≤%d, p≤%d, m·t≤%d)",
			ErrTooLarge, p.Memory, p.Time, p.Threads, c.Memory, c.Time, c.Threads, c.Work)
	}
	return nil
}

// header is the parsed header line.
type header struct {
	kdf    kdfParams
	salt   [saltSize]byte
	prefix [prefixSize]byte
	check  [checkSize]byte
}

// marshal returns the header line, "\n" included: the associated data of
// every chunk.
func (h *header) marshal() []byte {
	body := fmt.Sprintf("%s %s kdf=argon2id m=%d t=%d p=%d salt=%x nonce=%x check=%x",
		magic, formatVersion, h.kdf.Memory, h.kdf.Time, h.kdf.Threads, h.salt, h.prefix, h.check)
	sum := sha256.Sum256([]byte(body))
	return fmt.Appendf(nil, "%s sum=%x\n", body, sum[:sumSize])
}

// readHeaderLine reads the header line, "\n" included, one byte at a time
// so that nothing of the payload is consumed and garbage is refused after
// its first wrong byte.
func readHeaderLine(br *bufio.Reader) ([]byte, error) {
	const start = magic + " "
	line := make([]byte, 0, 256)
	for len(line) < maxHeaderLen {
		c, err := br.ReadByte()
		if err == io.EOF {
			switch {
			case len(line) == 0:
				return nil, fmt.Errorf("%w: the file is empty", ErrFormat)
			case len(line) < len(start):
				return nil, fmt.Errorf("%w: the file is too short", ErrFormat)
			}
			return nil, fmt.Errorf("%w: the file ends inside its header", ErrCorrupt)
		}
		if err != nil {
			return nil, fmt.Errorf("reading backup: %w", err)
		}
		line = append(line, c)
		if n := len(line); n <= len(start) && c != start[n-1] {
			return nil, fmt.Errorf("%w: it does not start with %q", ErrFormat, start)
		}
		if c == '\n' {
			return line, nil
		}
	}
	return nil, fmt.Errorf("%w: no end of the header line in its first %d bytes", ErrCorrupt, maxHeaderLen)
}

// parseHeader checks a header line read by readHeaderLine, strictly: the
// version, then the sum, then that the line is exactly what marshal would
// write for the values it holds, then the argon2id parameters against caps.
func parseHeader(line []byte, caps kdfCaps) (header, error) {
	var h header
	text := strings.TrimSuffix(string(line), "\n")
	fields := strings.Split(text, " ")
	if len(fields) < 2 || fields[1] != formatVersion {
		v := ""
		if len(fields) >= 2 {
			v = fields[1]
		}
		return h, fmt.Errorf("%w: format version %q; this firmware reads %s", ErrFormat, clip(v), formatVersion)
	}
	body, sumHex, ok := cutLast(text, " sum=")
	sum := sha256.Sum256([]byte(body))
	if !ok || sumHex != hex.EncodeToString(sum[:sumSize]) {
		return h, fmt.Errorf("%w: the header line is damaged (its sum does not match)", ErrCorrupt)
	}
	// The sum only guards against accidents, so the fields are still parsed
	// as hostile input.
	bad := func(what string) (header, error) {
		return header{}, fmt.Errorf("%w: the header's %s is malformed", ErrCorrupt, what)
	}
	if len(fields) != 10 || fields[2] != "kdf=argon2id" {
		return bad("layout")
	}
	m, err1 := parseUint(fields[3], "m=", 32)
	t, err2 := parseUint(fields[4], "t=", 32)
	p, err3 := parseUint(fields[5], "p=", 8)
	if err1 != nil || err2 != nil || err3 != nil {
		return bad("argon2id parameters")
	}
	h.kdf = kdfParams{Memory: uint32(m), Time: uint32(t), Threads: uint8(p)}
	if !parseHex(h.salt[:], fields[6], "salt=") || !parseHex(h.prefix[:], fields[7], "nonce=") || !parseHex(h.check[:], fields[8], "check=") {
		return bad("salt, nonce or check")
	}
	if !bytes.Equal(h.marshal(), line) {
		return bad("form (not canonical)")
	}
	if err := h.kdf.check(caps); err != nil {
		return header{}, err
	}
	return h, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func parseUint(field, prefix string, bits int) (uint64, error) {
	s, ok := strings.CutPrefix(field, prefix)
	if !ok {
		return 0, errors.New("missing " + prefix)
	}
	return strconv.ParseUint(s, 10, bits)
}

func parseHex(dst []byte, field, prefix string) bool {
	s, ok := strings.CutPrefix(field, prefix)
	if !ok || len(s) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

// deriveKeys returns the payload key and the key-check value.
func deriveKeys(passphrase string, h *header) (key []byte, check []byte) {
	master := argon2.IDKey([]byte(passphrase), h.salt[:], h.kdf.Time, h.kdf.Memory, h.kdf.Threads, keySize)
	key, err := hkdf.Expand(sha256.New, master, payloadKeyInfo, keySize)
	if err != nil {
		panic(err) // only for lengths beyond 255 hash blocks
	}
	check, err = hkdf.Expand(sha256.New, master, keyCheckInfo, checkSize)
	if err != nil {
		panic(err)
	}
	clear(master)
	return key, check
}

// sealer encrypts a payload written to it as chunks; Close seals the last.
type sealer struct {
	w       io.Writer
	aead    cipher.AEAD
	ad      []byte
	nonce   [chacha20poly1305.NonceSizeX]byte
	buf     []byte // plaintext of the chunk being filled; sealed in place
	index   uint32
	total   int64
	maxSize int64
	err     error
}

// newSealer writes a header with fresh salt and nonce prefix from rnd and
// returns the writer for the payload. It is also how tests encrypt payloads
// that Write would never produce.
func newSealer(w io.Writer, passphrase string, kdf kdfParams, rnd io.Reader, maxSize int64) (*sealer, error) {
	var h header
	h.kdf = kdf
	if _, err := io.ReadFull(rnd, h.salt[:]); err != nil {
		return nil, fmt.Errorf("generating salt: %w", err)
	}
	if _, err := io.ReadFull(rnd, h.prefix[:]); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	key, check := deriveKeys(passphrase, &h)
	copy(h.check[:], check)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	s := &sealer{w: w, aead: aead, ad: h.marshal(), buf: make([]byte, 0, chunkSize+tagSize), maxSize: maxSize}
	copy(s.nonce[:], h.prefix[:])
	if _, err := w.Write(s.ad); err != nil {
		return nil, fmt.Errorf("writing backup: %w", err)
	}
	return s, nil
}

func (s *sealer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if int64(len(p)) > s.maxSize-s.total {
		s.err = fmt.Errorf("%w: the backup would exceed %d bytes", ErrTooLarge, s.maxSize)
		return 0, s.err
	}
	n := 0
	for len(p) > 0 {
		// A full chunk is sealed only once more data comes, so that the
		// last chunk is never empty unless everything is.
		if len(s.buf) == chunkSize {
			if err := s.seal(false); err != nil {
				return n, err
			}
		}
		k := copy(s.buf[len(s.buf):chunkSize], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		n += k
		s.total += int64(k)
	}
	return n, nil
}

// Close seals the last chunk. It does not close the underlying writer.
func (s *sealer) Close() error {
	if s.err != nil {
		return s.err
	}
	err := s.seal(true)
	if err == nil {
		s.err = errors.New("backup: write after close")
	}
	return err
}

func (s *sealer) seal(last bool) error {
	if s.index == math.MaxUint32 && !last {
		s.err = fmt.Errorf("%w: more chunks than the index can count", ErrTooLarge)
		return s.err
	}
	setNonce(&s.nonce, s.index, last)
	out := s.aead.Seal(s.buf[:0], s.nonce[:], s.buf, s.ad)
	if _, err := s.w.Write(out); err != nil {
		s.err = fmt.Errorf("writing backup: %w", err)
		return s.err
	}
	s.index++
	s.buf = s.buf[:0]
	return nil
}

func setNonce(n *[chacha20poly1305.NonceSizeX]byte, index uint32, last bool) {
	binary.BigEndian.PutUint32(n[prefixSize:], index)
	n[len(n)-1] = 0
	if last {
		n[len(n)-1] = 1
	}
}

// opener reads chunks from r and returns their plaintext, releasing none
// before its tag checks out. Its io.EOF means the last chunk, flagged as
// such, was read and nothing followed it.
type opener struct {
	r       *bufio.Reader
	aead    cipher.AEAD
	ad      []byte
	nonce   [chacha20poly1305.NonceSizeX]byte
	buf     []byte
	plain   []byte // the opened chunk's bytes not yet returned
	index   uint32
	total   int64
	maxSize int64
	done    bool  // the last chunk has been opened
	err     error // sticky; never io.EOF
}

func newOpener(r *bufio.Reader, key []byte, h *header, ad []byte, maxSize int64) (*opener, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	o := &opener{r: r, aead: aead, ad: ad, buf: make([]byte, chunkSize+tagSize), maxSize: maxSize}
	copy(o.nonce[:], h.prefix[:])
	return o, nil
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.done {
			return 0, io.EOF
		}
		o.err = o.next()
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

func (o *opener) next() error {
	n, err := io.ReadFull(o.r, o.buf)
	last := false
	switch {
	case err == nil:
		// A full chunk is the last one if the file ends right after it.
		if _, err := o.r.Peek(1); err == io.EOF {
			last = true
		} else if err != nil {
			return fmt.Errorf("reading backup: %w", err)
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err == io.EOF:
		// The previous chunk was not flagged last, or there is none.
		return fmt.Errorf("%w: the file is cut short before chunk %d", ErrCorrupt, o.index)
	default:
		return fmt.Errorf("reading backup: %w", err)
	}
	if n < tagSize {
		return fmt.Errorf("%w: the file is cut short in chunk %d", ErrCorrupt, o.index)
	}
	if int64(n-tagSize) > o.maxSize-o.total {
		return fmt.Errorf("%w: the payload is larger than %d bytes", ErrTooLarge, o.maxSize)
	}
	if !last && o.index == math.MaxUint32 {
		return fmt.Errorf("%w: more chunks than the index can count", ErrTooLarge)
	}
	setNonce(&o.nonce, o.index, last)
	plain, err := o.aead.Open(o.buf[:0], o.nonce[:], o.buf[:n], o.ad)
	if err != nil {
		// Every chunk is opened with the key the check value vouched for,
		// so this is damage, truncation, reordering or tampering.
		return fmt.Errorf("%w: chunk %d does not authenticate (damaged, cut short, reordered or altered)", ErrCorrupt, o.index)
	}
	if last && len(plain) == 0 && o.index > 0 {
		// Write never seals an empty last chunk after others.
		return fmt.Errorf("%w: empty last chunk %d", ErrCorrupt, o.index)
	}
	o.index++
	o.total += int64(len(plain))
	o.plain = plain
	o.done = last
	return nil
}

// openHeader reads and checks the header, derives the keys from the
// passphrase and returns the opener of the payload.
func openHeader(br *bufio.Reader, passphrase string, caps kdfCaps, maxSize int64) (*opener, error) {
	line, err := readHeaderLine(br)
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(line, caps)
	if err != nil {
		return nil, err
	}
	if passphrase == "" || len(passphrase) > maxPassphraseBytes {
		// Write refuses these, so no backup was made with one.
		return nil, ErrPassphrase
	}
	key, check := deriveKeys(passphrase, &h)
	if subtle.ConstantTimeCompare(check, h.check[:]) != 1 {
		return nil, ErrPassphrase
	}
	return newOpener(br, key, &h, line, maxSize)
}

// clip keeps messages about hostile input short and printable.
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
