package eventlog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"
)

const (
	// maxBatch bounds the writer's memory under a burst: it commits early
	// rather than holding more than this many rows.
	maxBatch = 32768
	// Caches of dictionary ids are cleared when they grow past these sizes;
	// a miss costs one indexed lookup, a bloated map costs RAM on a 1 GB board.
	// The fold map is cleared likewise (repeats after that are stored as rows of
	// their own, the counts stay right): at about 70 bytes a key, 256k keys hold a
	// busy school's minute and keep a flood of unique names (a tunnelling client,
	// a random-subdomain attack) to some 18 MB.
	maxNameCache = 1 << 16
	maxAtomCache = 1 << 16
	maxFoldKeys  = 1 << 18
	// purgeChunk rows are deleted per statement so that retention never holds
	// the write lock for long while the queue fills.
	purgeChunk  = 10000
	purgeBudget = 200 * time.Millisecond
	purgeEvery  = time.Hour
)

type atomKey struct {
	kind  int
	value string
}

// foldKey stands for everything in an event but the time and count: only identical
// decisions fold. It is the name and a 64-bit digest of the other fields, not the fields
// themselves: 24 bytes a key instead of 216, so the map can hold the distinct decisions of
// a busy school's minute without holding tens of megabytes. Two different decisions fold
// together only if they have the same name and the same digest (a chance of 2^-64).
type foldKey struct {
	sum  uint64
	name string
}

// foldKeyOf digests the event's fields, each length-prefixed so that no two different
// events write the same bytes.
func (w *writer) foldKeyOf(e *Event) foldKey {
	h := &w.foldHash
	h.Reset()
	a := e.Client.As16()
	var buf [20]byte
	copy(buf[:], a[:])
	binary.LittleEndian.PutUint32(buf[16:], uint32(e.Client.BitLen()))
	h.Write(buf[:])
	for _, s := range [...]string{e.MAC, e.Device, e.Segment, e.Profile, e.Source, e.QType, e.Action, e.Tier, e.Category, e.List, e.Rule, e.Schedule} {
		binary.LittleEndian.PutUint32(buf[:4], uint32(len(s)))
		h.Write(buf[:4])
		h.WriteString(s)
	}
	return foldKey{sum: h.Sum64(), name: e.Name}
}

type foldEntry struct {
	id    int64
	first int64 // unix nanoseconds of the first event of the row
	gen   uint64
	idx   int // index in batch while gen is current
}

type row struct {
	id int64
	e  Event
}

type rollKey struct {
	hour    int64
	segment string
}

type writer struct {
	l    *Log
	conn *sql.Conn
	ctx  context.Context

	insEvent, insEvents, updCount, selName, insName, selAtom, insAtom, maxID, upRollup *sql.Stmt

	// Dictionary ids are cached boxed: binding an int64 through database/sql
	// takes an interface, and boxing it anew for every column of every row
	// was a third of the writer's allocations.
	names    map[string]any
	atoms    map[atomKey]any
	args     []any           // insertChunk rows of insertCols arguments
	seq      map[int64]int64 // second → next sequence number
	fold     map[foldKey]foldEntry
	foldHash maphash.Hash // reused by foldKeyOf
	gen      uint64

	batch   []row
	updates map[int64]int
	roll    map[rollKey]SegmentCounts

	taken     uint64 // events taken from the queue
	window    int64
	lastSweep time.Time
	purgeDue  bool
}

func newWriter(l *Log) (*writer, error) {
	ctx := context.Background()
	conn, err := l.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting event log writer: %w", err)
	}
	w := &writer{
		l:        l,
		conn:     conn,
		ctx:      ctx,
		names:    make(map[string]any),
		atoms:    make(map[atomKey]any),
		args:     make([]any, insertChunk*insertCols),
		seq:      make(map[int64]int64),
		fold:     make(map[foldKey]foldEntry),
		updates:  make(map[int64]int),
		roll:     make(map[rollKey]SegmentCounts),
		window:   int64(l.cfg.DedupeWindow),
		purgeDue: true,
	}
	stmts := []struct {
		p *(*sql.Stmt)
		q string
	}{
		{&w.insEvent, insertEvents(1)},
		{&w.insEvents, insertEvents(insertChunk)},
		{&w.updCount, `UPDATE events SET count = count + ? WHERE id = ?`},
		{&w.selName, `SELECT id FROM names WHERE name = ?`},
		{&w.insName, `INSERT OR IGNORE INTO names (name) VALUES (?)`},
		{&w.selAtom, `SELECT id FROM atoms WHERE kind = ? AND value = ?`},
		{&w.insAtom, `INSERT INTO atoms (kind, value) VALUES (?, ?)`},
		{&w.maxID, `SELECT max(id) FROM events WHERE id BETWEEN ? AND ?`},
		{&w.upRollup, `INSERT INTO rollup (hour, segment_id, queries, blocked) VALUES (?,?,?,?)
			ON CONFLICT (hour, segment_id) DO UPDATE SET queries = queries + excluded.queries, blocked = blocked + excluded.blocked`},
	}
	for _, s := range stmts {
		st, err := conn.PrepareContext(ctx, s.q)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("preparing event log statement: %w", err)
		}
		*s.p = st
	}
	return w, nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.insEvent, w.insEvents, w.updCount, w.selName, w.insName, w.selAtom, w.insAtom, w.maxID, w.upRollup} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, w.conn.Close())
	return errors.Join(errs...)
}

// run is the single writer: it alone touches w and writes to the database,
// so no locks are needed and SQLite never sees two writers.
func (l *Log) run(ctx context.Context) {
	defer close(l.done)
	w := l.w
	tick := time.NewTicker(l.cfg.FlushInterval)
	defer tick.Stop()
	purge := time.NewTicker(purgeEvery)
	defer purge.Stop()
	w.lastSweep = l.now()

	// The queue is emptied in bursts on a short tick rather than event by event: a writer
	// parked on the channel would be woken by every DNS query, and on a two-core box those
	// wake-ups cost the DNS path more than the writing itself.
	take := time.NewTicker(takeEvery)
	defer take.Stop()
	for {
		select {
		case <-take.C:
			w.take()
		case <-tick.C:
			w.take()
			w.commit()
			if w.purgeDue {
				w.purge()
			}
		case <-purge.C:
			w.purgeDue = true
		case req := <-l.flushc:
			for w.taken < req.target {
				w.add(<-l.queue)
				if len(w.batch) >= maxBatch {
					w.commit()
				}
			}
			req.done <- w.commit()
		case <-l.stop:
			w.drain()
			return
		case <-ctx.Done():
			w.drain()
			return
		}
	}
}

// takeEvery is how often the writer empties the queue: at 50k events/s a burst is about
// 1,000 events, far below the queue's capacity.
const takeEvery = 20 * time.Millisecond

// take moves what is queued now into the batch.
func (w *writer) take() {
	for {
		select {
		case e := <-w.l.queue:
			w.add(e)
			if len(w.batch) >= maxBatch {
				w.commit()
			}
		default:
			return
		}
	}
}

// drain writes everything still queued, at shutdown.
func (w *writer) drain() {
	w.take()
	w.commit()
}

func normalize(e *Event) {
	if e.Count < 1 {
		e.Count = 1
	}
	// DNS names are case-insensitive and resolvers randomise case (0x20);
	// without this one domain would intern as many names.
	e.Name = strings.TrimSuffix(strings.ToLower(e.Name), ".")
	e.MAC = strings.ToLower(e.MAC)
	e.Client = e.Client.Unmap().WithZone("")
}

func (w *writer) add(e Event) {
	w.taken++
	normalize(&e)
	w.rollup(&e)
	var k foldKey
	if w.window > 0 {
		k = w.foldKeyOf(&e)
		t := e.Time.UnixNano()
		if f, ok := w.fold[k]; ok && abs(t-f.first) < w.window {
			if f.gen == w.gen {
				w.batch[f.idx].e.Count += e.Count
			} else {
				w.updates[f.id] += e.Count
			}
			w.l.folded.Add(1)
			return
		}
	}
	id, err := w.nextID(e.Time.Unix())
	if err != nil {
		w.fail(err, 1)
		return
	}
	w.batch = append(w.batch, row{id: id, e: e})
	if w.window > 0 {
		if len(w.fold) >= maxFoldKeys {
			clear(w.fold)
		}
		w.fold[k] = foldEntry{id: id, first: e.Time.UnixNano(), gen: w.gen, idx: len(w.batch) - 1}
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func (w *writer) rollup(e *Event) {
	k := rollKey{hour: e.Time.Unix() / 3600, segment: e.Segment}
	c := w.roll[k]
	c.Queries += uint64(e.Count)
	if e.Action == "block" {
		c.Blocked += uint64(e.Count)
	}
	w.roll[k] = c
}

// nextID hands out ids for a second in arrival order. Events can arrive late
// (or after a restart land in a second already on disk), so the first id of
// a second not seen since the last prune continues after what is stored.
func (w *writer) nextID(sec int64) (int64, error) {
	if sec < 0 {
		sec = 0
	}
	for {
		s, ok := w.seq[sec]
		if !ok {
			var max sql.NullInt64
			if err := w.maxID.QueryRowContext(w.ctx, idOf(sec, 0), idOf(sec, idSeqMask)).Scan(&max); err != nil {
				return 0, fmt.Errorf("reading last event id: %w", err)
			}
			if max.Valid {
				s = max.Int64&idSeqMask + 1
			}
		}
		if s <= idSeqMask {
			w.seq[sec] = s + 1
			return idOf(sec, s), nil
		}
		// Over a million events in one second cannot come from this box's
		// filters; if it happens, borrow the next second rather than fail.
		w.seq[sec] = s
		sec++
	}
}

func (w *writer) fail(err error, n int) {
	w.l.dropped.Add(uint64(n))
	w.l.setFlushed(time.Time{}, err)
	w.l.log.Error("writing event log", "err", err, "dropped", n)
}

// commit writes the batch, the count updates and the rollups in one
// transaction.
func (w *writer) commit() error {
	if len(w.batch) == 0 && len(w.updates) == 0 && len(w.roll) == 0 {
		return nil
	}
	n := len(w.batch)
	err := w.write()
	w.gen++
	w.batch = w.batch[:0]
	clear(w.updates)
	clear(w.roll)
	if err != nil {
		// Ids, dictionary ids and fold entries handed out in the failed
		// transaction no longer exist; forget them all.
		clear(w.fold)
		clear(w.seq)
		clear(w.names)
		clear(w.atoms)
		w.fail(err, n)
		return err
	}
	w.l.written.Add(uint64(n))
	now := w.l.now()
	w.l.setFlushed(now, nil)
	if w.window > 0 && now.Sub(w.lastSweep) >= time.Duration(w.window) {
		cut := now.UnixNano() - w.window
		for k, f := range w.fold {
			if f.first < cut {
				delete(w.fold, k)
			}
		}
		w.lastSweep = now
	}
	if len(w.seq) > 4096 {
		// Safe only here: nothing uncommitted holds an id from these seconds.
		clear(w.seq)
	}
	return nil
}

func (w *writer) write() (err error) {
	if _, err := w.conn.ExecContext(w.ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("beginning event batch: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := w.conn.ExecContext(w.ctx, "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back event batch: %w", rerr))
			}
		}
	}()
	// Rows go in insertChunk at a time through one multi-row statement:
	// per statement, database/sql and the driver cost about as much as
	// SQLite's own work for a row.
	for i := 0; i < len(w.batch); {
		n := insertChunk
		st := w.insEvents
		if len(w.batch)-i < insertChunk {
			n, st = 1, w.insEvent
		}
		args := w.args[:n*insertCols]
		for j := range n {
			if err := w.rowArgs(&w.batch[i+j], args[j*insertCols:(j+1)*insertCols]); err != nil {
				return err
			}
		}
		if _, err := st.ExecContext(w.ctx, args...); err != nil {
			return fmt.Errorf("inserting event: %w", err)
		}
		i += n
	}
	clear(w.args) // let the client slices go
	for id, d := range w.updates {
		if _, err := w.updCount.ExecContext(w.ctx, d, id); err != nil {
			return fmt.Errorf("folding event count: %w", err)
		}
	}
	for k, c := range w.roll {
		seg, err := w.atom(kindSegment, k.segment)
		if err != nil {
			return err
		}
		if seg == nil {
			seg = int64(0) // part of the primary key, so not NULL
		}
		if _, err := w.upRollup.ExecContext(w.ctx, k.hour, seg, c.Queries, c.Blocked); err != nil {
			return fmt.Errorf("updating rollup: %w", err)
		}
	}
	if _, err := w.conn.ExecContext(w.ctx, "COMMIT"); err != nil {
		return fmt.Errorf("committing event batch: %w", err)
	}
	return nil
}

// insertCols is the number of columns insertEvents binds per row, and
// insertChunk the rows per multi-row statement. A chunk binds
// insertChunk*insertCols parameters; the driver matches each parameter to
// its argument with a linear search, so much larger chunks get slower again.
const (
	insertCols  = 16
	insertChunk = 16
)

func insertEvents(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR FAIL INTO events (id, client, mac_id, device_id, segment_id, profile_id, source_id, name_id, qtype_id, action_id, tier_id, category_id, list_id, rule_id, schedule_id, count) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// rowArgs fills args (insertCols long) with the columns of r, interning its
// strings.
func (w *writer) rowArgs(r *row, args []any) (err error) {
	e := &r.e
	args[0] = r.id
	args[1] = nil
	if e.Client.IsValid() {
		args[1] = e.Client.AsSlice()
	}
	args[9] = nil
	if e.Action != "allow" {
		// "allow" is stored as NULL: see the schema.
		if args[9], err = w.atom(kindAction, e.Action); err != nil {
			return err
		}
	}
	// A fixed array, not a slice literal, so the table stays on the stack.
	for _, a := range [...]struct {
		i, kind int
		v       string
	}{
		{2, kindMAC, e.MAC}, {3, kindDevice, e.Device}, {4, kindSegment, e.Segment},
		{5, kindProfile, e.Profile}, {6, kindSource, e.Source}, {8, kindQType, e.QType},
		{10, kindTier, e.Tier}, {11, kindCategory, e.Category}, {12, kindList, e.List},
		{13, kindRule, e.Rule}, {14, kindSchedule, e.Schedule},
	} {
		if args[a.i], err = w.atom(a.kind, a.v); err != nil {
			return err
		}
	}
	if args[7], err = w.name(e.Name); err != nil {
		return err
	}
	args[15] = int64(e.Count)
	return nil
}

// atom returns the dictionary id of v, or nil for "" (stored as NULL).
func (w *writer) atom(kind int, v string) (any, error) {
	if v == "" {
		return nil, nil
	}
	k := atomKey{kind, v}
	if id, ok := w.atoms[k]; ok {
		return id, nil
	}
	var id int64
	err := w.selAtom.QueryRowContext(w.ctx, kind, v).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var res sql.Result
		if res, err = w.insAtom.ExecContext(w.ctx, kind, v); err == nil {
			id, err = res.LastInsertId()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("interning %q: %w", v, err)
	}
	if len(w.atoms) >= maxAtomCache {
		clear(w.atoms)
	}
	boxed := any(id)
	w.atoms[k] = boxed
	return boxed, nil
}

func (w *writer) name(v string) (any, error) {
	if v == "" {
		return nil, nil
	}
	if id, ok := w.names[v]; ok {
		return id, nil
	}
	// A name missing from the cache is more often new than evicted (the
	// cache holds the busy ones), so try the insert first: one statement for
	// a new name, and for a known one the failed insert costs what the
	// lookup after it does.
	var id int64
	res, err := w.insName.ExecContext(w.ctx, v)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	switch {
	case err != nil:
	case n == 1:
		id, err = res.LastInsertId()
	default:
		err = w.selName.QueryRowContext(w.ctx, v).Scan(&id)
	}
	if err != nil {
		return nil, fmt.Errorf("interning name %q: %w", v, err)
	}
	if len(w.names) >= maxNameCache {
		clear(w.names)
	}
	boxed := any(id)
	w.names[v] = boxed
	return boxed, nil
}

// purge deletes rows older than the retention in chunks, for at most
// purgeBudget per call; the rest waits for the next tick.
func (w *writer) purge() {
	cut := w.l.now().Add(-w.l.cfg.Retention).Unix()
	if cut <= 0 {
		w.purgeDue = false
		return
	}
	start := time.Now()
	for time.Since(start) < purgeBudget {
		res, err := w.conn.ExecContext(w.ctx,
			`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < ? ORDER BY id LIMIT ?)`,
			idOf(cut, 0), purgeChunk)
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		if err != nil {
			w.l.setFlushed(time.Time{}, err)
			w.l.log.Error("purging event log", "err", err)
			return
		}
		done := n < purgeChunk
		if done {
			if _, err := w.conn.ExecContext(w.ctx, `DELETE FROM rollup WHERE hour < ?`, cut/3600); err != nil {
				w.l.log.Error("purging event rollups", "err", err)
			}
		}
		// Counted once the rows and, at the end, their rollups are gone, so whoever sees the
		// count sees the log as the purge left it.
		w.l.purged.Add(uint64(n))
		if done {
			w.purgeDue = false
			if n > 0 || w.l.purged.Load() > 0 {
				w.l.log.Debug("purged event log", "before", time.Unix(cut, 0))
			}
			return
		}
	}
}
