package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The hash of an entry, version 1. docs/audit.md repeats this for people
// writing their own verifier; TestHashVector pins both to the same value.
//
//	Hash = lowercase hex of SHA-256( F(Domain) F(seq) F(time) F(actor) F(role)
//	       F(address) F(action) F(object) F(summary) F(detail) F(reason) F(prev_hash) )
//
//	F(s)      = the length of s in bytes as an 8-byte big-endian unsigned integer, then s
//	Domain    = "schoolgate-audit-v1"
//	seq       = decimal ASCII, no sign, no leading zeros ("1", "2", …)
//	time      = UTC, exactly TimeLayout: "2026-03-02T10:15:30.123Z"
//	strings   = their UTF-8 bytes as stored and exported, unchanged
//	prev_hash = the previous entry's hash as 64 lowercase hex digits; Genesis for seq 1
//
// Every field is length-prefixed, so no choice of contents can make two
// different entries encode alike, and the domain string keeps these hashes
// apart from any other use of SHA-256 over similar data.
const (
	Domain     = "schoolgate-audit-v1"
	TimeLayout = "2006-01-02T15:04:05.000Z"
	// Genesis is the PrevHash of entry 1.
	Genesis = "0000000000000000000000000000000000000000000000000000000000000000"
)

// Hash computes an entry's hash from every field but Hash itself.
func Hash(e Entry) string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	put(Domain)
	put(strconv.FormatInt(e.Seq, 10))
	put(e.Time.UTC().Format(TimeLayout))
	put(e.Actor)
	put(e.Role)
	put(e.Address)
	put(e.Action)
	put(e.Object)
	put(e.Summary)
	put(e.Detail)
	put(e.Reason)
	put(e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

// Result is the outcome of checking a chain.
type Result struct {
	Entries     int    // entries read
	OK          bool   // chain intact (as far as the file itself can show)
	FirstBroken int64  // seq of the first entry that fails; 0 when OK
	Problem     string // the first problem, in words; "" when OK
	// HeadSeq and Head are the newest entry's seq and hash (0 and Genesis
	// for an empty trail). Written down elsewhere, they prove later that
	// nothing up to that entry was removed or rewritten: see Anchor.
	HeadSeq int64
	Head    string
	// Header is what an export said about itself; nil for Verify.
	Header *ExportHeader
}

// Anchor is a (seq, hash) pair recorded outside the appliance, e.g. the head
// of an earlier export. A chain that still contains the same hash at that
// seq has kept every entry up to it unchanged.
type Anchor struct {
	Seq  int64
	Hash string
}

func (a Anchor) String() string { return strconv.FormatInt(a.Seq, 10) + ":" + a.Hash }

// ParseAnchor parses "SEQ:HASH", the form Anchor.String writes.
func ParseAnchor(s string) (Anchor, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || !isHash(hash) {
		return Anchor{}, fmt.Errorf("anchor %q: want SEQ:HASH, e.g. 17:%s", s, Genesis[:8]+"…")
	}
	return Anchor{Seq: n, Hash: hash}, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// chain checks entries in file order, keeping the first problem found.
// Verify and VerifyExport share it, so the database and its exports are
// judged by the same rules and in the same words.
type chain struct {
	res      Result
	lastSeq  int64
	lastHash string
	anchors  map[int64]string
}

func newChain(anchors []Anchor) *chain {
	c := &chain{res: Result{OK: true, Head: Genesis}, lastHash: Genesis, anchors: map[int64]string{}}
	for _, a := range anchors {
		c.anchors[a.Seq] = a.Hash
	}
	return c
}

func (c *chain) fail(seq int64, format string, args ...any) {
	if !c.res.OK {
		return
	}
	c.res.OK = false
	c.res.FirstBroken = seq
	c.res.Problem = fmt.Sprintf(format, args...)
}

func (c *chain) add(e Entry) {
	c.res.Entries++
	want := c.lastSeq + 1
	switch {
	case e.Seq == want:
	case e.Seq < 1:
		c.fail(want, "entry %d: seq %d is not a positive number", want, e.Seq)
	case e.Seq > want && c.lastSeq == 0:
		c.fail(want, "%s missing (the trail starts at entry %d)", span(want, e.Seq-1), e.Seq)
	case e.Seq > want:
		c.fail(want, "%s missing (seq jumps %d → %d)", span(want, e.Seq-1), c.lastSeq, e.Seq)
	default:
		c.fail(e.Seq, "entry %d out of order or repeated (it follows entry %d)", e.Seq, c.lastSeq)
	}
	if Hash(e) != e.Hash {
		c.fail(e.Seq, "entry %d: hash does not match its contents", e.Seq)
	}
	if e.PrevHash != c.lastHash {
		if c.lastSeq == 0 {
			c.fail(e.Seq, "entry %d: previous hash is not the genesis value", e.Seq)
		} else {
			c.fail(e.Seq, "entry %d: previous hash does not match entry %d", e.Seq, c.lastSeq)
		}
	}
	if h, ok := c.anchors[e.Seq]; ok {
		delete(c.anchors, e.Seq)
		if h != e.Hash {
			c.fail(e.Seq, "entry %d: hash differs from the anchor %s (the trail was rewritten at or before entry %d)",
				e.Seq, Anchor{e.Seq, h}, e.Seq)
		}
	}
	c.lastSeq, c.lastHash = e.Seq, e.Hash
	c.res.HeadSeq, c.res.Head = e.Seq, e.Hash
}

// finish reports anchors the chain never reached and returns the result.
func (c *chain) finish() Result {
	for _, seq := range slices.Sorted(maps.Keys(c.anchors)) {
		h := c.anchors[seq]
		if seq > c.res.HeadSeq {
			c.fail(c.res.HeadSeq+1, "%s missing: the anchor %s is newer than the newest entry %d (the newest entries were removed)",
				span(c.res.HeadSeq+1, seq), Anchor{seq, h}, c.res.HeadSeq)
		} else {
			c.fail(seq, "entry %d missing: the anchor %s names it", seq, Anchor{seq, h})
		}
	}
	if c.res.OK {
		c.res.FirstBroken, c.res.Problem = 0, ""
	}
	return c.res
}

// span names the entries from..to.
func span(from, to int64) string {
	if from == to {
		return fmt.Sprintf("entry %d", from)
	}
	return fmt.Sprintf("entries %d–%d", from, to)
}

// Verify walks the whole trail from entry 1, recomputing every hash and
// checking that seq numbers are contiguous and each entry names the hash of
// the one before; then it checks the newest entry against the head record
// and the given anchors. A broken chain is a Result with OK false, not an
// error; errors are failures to read the database.
//
// It detects an entry altered in the file (its hash no longer matches), an
// entry removed (a gap in seq), an entry inserted (a gap, a repeated seq or a
// broken link), an entry rewritten with a recomputed hash (the next entry's
// link breaks) and, unless the head record was rewritten too, removed or
// rewritten newest entries. Only an Anchor kept elsewhere proves the newest
// entries are all there.
func (l *Log) Verify(ctx context.Context, anchors ...Anchor) (Result, error) {
	if l.isClosed() {
		return Result{}, ErrClosed
	}
	// One read transaction: the walk and the head record are the same
	// snapshot even while Append runs.
	tx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Result{}, fmt.Errorf("verifying audit log: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT "+entryColumns+" FROM entries ORDER BY seq")
	if err != nil {
		return Result{}, fmt.Errorf("verifying audit log: %w", err)
	}
	defer rows.Close()
	c := newChain(anchors)
	for rows.Next() {
		e, bad, err := scanEntry(rows)
		if err != nil {
			return Result{}, fmt.Errorf("verifying audit log: %w", err)
		}
		if bad != "" {
			c.fail(e.Seq, "entry %d: %s", e.Seq, bad)
		}
		c.add(e)
	}
	if err := rows.Err(); err != nil {
		return Result{}, fmt.Errorf("verifying audit log: %w", err)
	}

	var (
		headSeq  int64
		headHash string
	)
	err = tx.QueryRowContext(ctx, "SELECT seq, hash FROM head WHERE id = 1").Scan(&headSeq, &headHash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		c.fail(c.res.HeadSeq, "the head record is missing (the file was changed outside schoolgate)")
	case err != nil:
		return Result{}, fmt.Errorf("verifying audit log: reading head: %w", err)
	default:
		checkHead(c, headSeq, headHash, "the head record")
	}
	return c.finish(), nil
}

// checkHead compares the newest entry read with what a head record (the
// database's, or an export's header) says it should be.
func checkHead(c *chain, seq int64, hash, what string) {
	last := c.res.HeadSeq
	switch {
	case seq < 0:
		c.fail(max(last, 1), "%s names entry %d as the newest, not a valid entry number", what, seq)
	case seq > last:
		c.fail(last+1, "%s missing at the end (%s names entry %d as the newest)", span(last+1, seq), what, seq)
	case seq < last:
		c.fail(seq+1, "%s beyond %s, which ends at entry %d (added outside schoolgate)", span(seq+1, last), what, seq)
	case hash != c.res.Head && last == 0:
		c.fail(1, "entry 1 missing: %s gives a head for an empty trail", what)
	case hash != c.res.Head:
		c.fail(last, "entry %d: hash does not match %s (rewritten, hash included)", last, what)
	}
}

// Head returns the newest entry's seq and hash (0 and Genesis when empty),
// cheaply, for the web UI to show for anchoring. It does not verify.
func (l *Log) Head(ctx context.Context) (Anchor, error) {
	if l.isClosed() {
		return Anchor{}, ErrClosed
	}
	a := Anchor{Hash: Genesis}
	err := l.rdb.QueryRowContext(ctx, "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").Scan(&a.Seq, &a.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Anchor{}, fmt.Errorf("reading audit head: %w", err)
	}
	return a, nil
}

const entryColumns = "seq, time_ms, actor, role, address, action, object, summary, detail, reason, prev_hash, hash"

// scanEntry reads one row of entryColumns. It never fails on what a row
// holds (a tampered row may hold anything: NULLs, numbers in text columns,
// text in time_ms); it returns the entry as best it can, which then fails
// its hash, and says what was wrong with the time in bad.
func scanEntry(rows *sql.Rows) (e Entry, bad string, err error) {
	var v [12]any
	ptrs := make([]any, len(v))
	for i := range v {
		ptrs[i] = &v[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return Entry{}, "", err
	}
	e.Seq, _ = v[0].(int64)
	switch t := v[1].(type) {
	case int64:
		e.Time = time.UnixMilli(t).UTC()
	default:
		bad = fmt.Sprintf("time %q is not a number of milliseconds", asText(t))
	}
	for i, p := range []*string{&e.Actor, &e.Role, &e.Address, &e.Action, &e.Object, &e.Summary, &e.Detail, &e.Reason, &e.PrevHash, &e.Hash} {
		*p = asText(v[i+2])
	}
	return e, bad, nil
}

func asText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(TimeLayout)
	}
	return fmt.Sprint(v)
}
