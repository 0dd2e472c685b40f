package audit

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The export format, version 1: JSON lines (UTF-8, one JSON object per line,
// "\n" after each).
//
// Line 1, the header:
//
//	{"format":"schoolgate-audit","version":1,"appliance":"…","exported_at":"2026-03-02T10:15:30.123Z",
//	 "entries":1234,"head_seq":1234,"head":"<64 hex>"}
//
// Then one line per entry, oldest first, every key always present:
//
//	{"seq":1,"time":"2026-03-02T10:15:30.123Z","actor":"…","role":"…","address":"…","action":"…",
//	 "object":"…","summary":"…","detail":"…","reason":"…","prev_hash":"<64 hex>","hash":"<64 hex>"}
//
// The header is not covered by any hash; it lets a verifier notice a file
// cut short, and carries the head to write down as an Anchor.
const (
	exportFormat  = "schoolgate-audit"
	exportVersion = 1
	// maxExportLine bounds one line when reading an export: an entry's
	// longest field is 1 MiB, which JSON escaping can make at most 6 MiB.
	maxExportLine = 16 << 20
)

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format     string
	Version    int
	Appliance  string
	ExportedAt time.Time
	Entries    int64
	HeadSeq    int64
	Head       string
}

type exportHeader struct {
	Format     string  `json:"format"`
	Version    int     `json:"version"`
	Appliance  string  `json:"appliance"`
	ExportedAt string  `json:"exported_at"`
	Entries    *int64  `json:"entries"`
	HeadSeq    *int64  `json:"head_seq"`
	Head       *string `json:"head"`
}

type exportEntry struct {
	Seq      int64  `json:"seq"`
	Time     string `json:"time"`
	Actor    string `json:"actor"`
	Role     string `json:"role"`
	Address  string `json:"address"`
	Action   string `json:"action"`
	Object   string `json:"object"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Reason   string `json:"reason"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// entryKeys are the keys of an entry line, every one required.
var entryKeys = []string{"seq", "time", "actor", "role", "address", "action", "object", "summary", "detail", "reason", "prev_hash", "hash"}

// Export writes the whole trail, from entry 1, as a self-contained file
// that VerifyExport (and `schoolgate audit verify`) can check without the
// appliance. Rows are written as they are in the database, altered or not:
// verifying the export shows what Verify would. Callers record who exported
// with an "audit.export" entry before calling Export, so the file contains
// its own record.
func (l *Log) Export(ctx context.Context, w io.Writer) error {
	if l.isClosed() {
		return ErrClosed
	}
	// One read transaction, so the header describes exactly the lines
	// that follow even if entries are appended meanwhile.
	tx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	defer tx.Rollback()
	var (
		n    int64
		head = Anchor{Hash: Genesis}
	)
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM entries").Scan(&n); err != nil {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	var hash any
	err = tx.QueryRowContext(ctx, "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").Scan(&head.Seq, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	if err == nil {
		head.Hash = asText(hash)
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // "<" and "&" stay readable in diffs
	h := exportHeader{
		Format:     exportFormat,
		Version:    exportVersion,
		Appliance:  l.cfg.Appliance,
		ExportedAt: l.now().UTC().Format(TimeLayout),
		Entries:    &n,
		HeadSeq:    &head.Seq,
		Head:       &head.Hash,
	}
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+entryColumns+" FROM entries ORDER BY seq")
	if err != nil {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, _, err := scanEntry(rows)
		if err != nil {
			return fmt.Errorf("exporting audit log: %w", err)
		}
		if err := enc.Encode(toExport(e)); err != nil {
			return fmt.Errorf("exporting audit log: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("exporting audit log: %w", err)
	}
	return nil
}

func toExport(e Entry) exportEntry {
	return exportEntry{
		Seq: e.Seq, Time: e.Time.UTC().Format(TimeLayout),
		Actor: e.Actor, Role: e.Role, Address: e.Address, Action: e.Action, Object: e.Object,
		Summary: e.Summary, Detail: e.Detail, Reason: e.Reason, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// VerifyExport checks an export read from r, offline, by the same rules as
// Verify, then checks that the file holds as many entries as its header
// says and ends with the header's head, and that it contains the given
// anchors. A broken or tampered file is a Result with OK false; the error is
// for a file that is not an export at all (ErrNotExport) or cannot be read.
// It is meant for files from anywhere: no input makes it panic or hold more
// than about one line in memory.
func VerifyExport(r io.Reader, anchors ...Anchor) (Result, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	lineNo := 0
	var line []byte
	var long bool
	var err error
	// next reads the next non-blank line into line.
	next := func() bool {
		for {
			line, long, err = readLine(br, line[:0])
			if err != nil {
				return false
			}
			lineNo++
			if long || len(bytes.TrimSpace(line)) > 0 {
				return true
			}
		}
	}

	if !next() {
		if err == io.EOF {
			return Result{}, fmt.Errorf("%w: the file is empty", ErrNotExport)
		}
		return Result{}, fmt.Errorf("reading export: %w", err)
	}
	if long {
		return Result{}, fmt.Errorf("%w: first line longer than %d bytes", ErrNotExport, maxExportLine)
	}
	hdr, err := parseHeader(line)
	if err != nil {
		return Result{}, err
	}

	c := newChain(anchors)
	c.res.Header = hdr
	for next() {
		if long {
			c.fail(c.lastSeq+1, "line %d: longer than %d bytes, not an entry", lineNo, maxExportLine)
			break
		}
		e, problem := parseEntry(line)
		if problem != "" {
			seq := c.lastSeq + 1
			if e.Seq > 0 {
				seq = e.Seq
			}
			c.fail(seq, "line %d: %s", lineNo, problem)
			break
		}
		c.add(e)
	}
	if err != io.EOF {
		if err == nil {
			// Stopped at a malformed line: the rest cannot be trusted, and
			// its count would only repeat the problem already found.
			return c.finish(), nil
		}
		return Result{}, fmt.Errorf("reading export line %d: %w", lineNo+1, err)
	}
	// A chain that checked out runs 1..HeadSeq without gaps, so the head
	// check also catches a file cut short; the count only has to agree.
	checkHead(c, hdr.HeadSeq, hdr.Head, "the header")
	if int64(c.res.Entries) != hdr.Entries {
		c.fail(c.res.HeadSeq+1, "the header counts %d entries, the file holds %d", hdr.Entries, c.res.Entries)
	}
	return c.finish(), nil
}

// readLine appends the next line (without "\n" or "\r\n") to buf. When the
// line is longer than maxExportLine it is skipped, not kept, and long is
// true. err is io.EOF only when no line was read.
func readLine(br *bufio.Reader, buf []byte) (line []byte, long bool, err error) {
	line = buf
	for {
		frag, err := br.ReadSlice('\n')
		if !long {
			if len(line)+len(frag) > maxExportLine+2 {
				long, line = true, line[:0]
			} else {
				line = append(line, frag...)
			}
		}
		switch {
		case err == nil:
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			return line, long, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && (len(line) > 0 || long):
			return bytes.TrimSuffix(line, []byte("\r")), long, nil
		default:
			return line, long, err
		}
	}
}

func parseHeader(line []byte) (*ExportHeader, error) {
	var h exportHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("%w: the first line is not its header: %v", ErrNotExport, err)
	}
	if h.Format != exportFormat {
		return nil, fmt.Errorf("%w: the header's format is %q, want %q", ErrNotExport, h.Format, exportFormat)
	}
	if h.Version != exportVersion {
		return nil, fmt.Errorf("%w: format version %d; this schoolgate reads version %d", ErrNotExport, h.Version, exportVersion)
	}
	if h.Entries == nil || h.HeadSeq == nil || h.Head == nil {
		return nil, fmt.Errorf("%w: the header lacks entries, head_seq or head", ErrNotExport)
	}
	if *h.Entries < 0 || *h.HeadSeq < 0 {
		return nil, fmt.Errorf("%w: the header counts %d entries up to entry %d", ErrNotExport, *h.Entries, *h.HeadSeq)
	}
	out := &ExportHeader{
		Format: h.Format, Version: h.Version, Appliance: h.Appliance,
		Entries: *h.Entries, HeadSeq: *h.HeadSeq, Head: *h.Head,
	}
	// Not covered by any hash, so only informative: an unreadable time is
	// left zero rather than refused.
	out.ExportedAt, _ = time.Parse(TimeLayout, h.ExportedAt)
	return out, nil
}

// parseEntry decodes one entry line strictly: every key present, no other
// key, the time in its one canonical form. Anything looser would let a file
// carry text that no hash covers.
func parseEntry(line []byte) (Entry, string) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Entry{}, fmt.Sprintf("not a valid entry: %v", err)
	}
	var x exportEntry
	if v, ok := raw["seq"]; ok {
		// Decoded first so that later problems can name the entry.
		if err := json.Unmarshal(v, &x.Seq); err != nil {
			return Entry{}, fmt.Sprintf("seq %q is not a whole number", clip(v))
		}
	}
	for _, k := range entryKeys {
		if _, ok := raw[k]; !ok {
			return Entry{Seq: x.Seq}, fmt.Sprintf("entry %d: no %q", x.Seq, k)
		}
	}
	if len(raw) != len(entryKeys) {
		for k := range raw {
			if !slices.Contains(entryKeys, k) {
				return Entry{Seq: x.Seq}, fmt.Sprintf("entry %d: unknown key %q, not covered by the hash", x.Seq, clip([]byte(k)))
			}
		}
	}
	if err := json.Unmarshal(line, &x); err != nil {
		return Entry{Seq: x.Seq}, fmt.Sprintf("entry %d: %v", x.Seq, err)
	}
	t, err := time.Parse(TimeLayout, x.Time)
	if err != nil || t.Format(TimeLayout) != x.Time {
		return Entry{Seq: x.Seq}, fmt.Sprintf("entry %d: time %q is not in the form %s", x.Seq, clip([]byte(x.Time)), TimeLayout)
	}
	return Entry{
		Seq: x.Seq, Time: t,
		Actor: x.Actor, Role: x.Role, Address: x.Address, Action: x.Action, Object: x.Object,
		Summary: x.Summary, Detail: x.Detail, Reason: x.Reason, PrevHash: x.PrevHash, Hash: x.Hash,
	}, ""
}

// clip keeps messages about hostile input short.
func clip(b []byte) string {
	const n = 40
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
