package devices

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// minTime is the earliest sighting accepted: anything before is a clock that was never set.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// row is the sightings of one device in a batch, merged as the upsert merges them with what
// is stored.
type row struct {
	mac, vendor   string
	segment       string
	segMS         int64 // time of the newest sighting with a segment
	ipv4          string
	ipv4MS        int64
	ipv6          string
	ipv6MS        int64
	ipv6LL        bool
	firstMS, last int64
}

// rank orders IPv6 addresses for keeping: none, link-local, then global or unique local.
func rank(addr string, ll bool) int {
	switch {
	case addr == "":
		return 0
	case ll:
		return 1
	}
	return 2
}

func (r *row) add(s sighting) {
	r.firstMS, r.last = min(r.firstMS, s.ms), max(r.last, s.ms)
	if s.segment != "" && (r.segment == "" || s.ms >= r.segMS) {
		r.segment, r.segMS = s.segment, s.ms
	}
	switch a := s.addr; {
	case !a.IsValid():
	case a.Is4():
		if r.ipv4 == "" || s.ms >= r.ipv4MS {
			r.ipv4, r.ipv4MS = a.String(), s.ms
		}
	default:
		ll := a.IsLinkLocalUnicast()
		if nr, cr := rank(a.String(), ll), rank(r.ipv6, r.ipv6LL); nr > cr || (nr == cr && s.ms >= r.ipv6MS) {
			r.ipv6, r.ipv6MS, r.ipv6LL = a.String(), s.ms, ll
		}
	}
}

// sighting is a Sighting validated.
type sighting struct {
	mac     string
	addr    netip.Addr
	segment string
	ms      int64
}

func (inv *Inventory) check(s Sighting, now time.Time) (sighting, error) {
	var out sighting
	var err error
	if out.mac, err = CanonicalMAC(s.MAC); err != nil {
		return out, err
	}
	if a := s.Addr; a.IsValid() {
		a = a.Unmap().WithZone("")
		if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return out, fmt.Errorf("%s: address %s is not a device's", out.mac, a)
		}
		out.addr = a
	}
	seg := strings.TrimSpace(s.Segment)
	if len(seg) > MaxSegment || !utf8.ValidString(seg) || strings.ContainsFunc(seg, unicode.IsControl) {
		return out, fmt.Errorf("%s: segment name %.40q is not one", out.mac, seg)
	}
	out.segment = seg
	t := s.Time
	switch {
	case t.IsZero(), t.After(now.Add(clockSkew)):
		t = now
	case t.Before(minTime):
		return out, fmt.Errorf("%s: time %s is before 2000", out.mac, t.UTC().Format(time.RFC3339))
	}
	out.ms = t.UnixMilli()
	return out, nil
}

// upsertSet merges rows into what is stored. SQLite evaluates every SET expression against
// the stored row, so the conditions may name columns that are being set.
const upsertSet = `
ON CONFLICT (mac) DO UPDATE SET
	vendor   = CASE WHEN excluded.vendor <> '' THEN excluded.vendor ELSE vendor END,
	segment  = CASE WHEN excluded.segment <> '' AND (segment = '' OR excluded.last_ms >= last_ms) THEN excluded.segment ELSE segment END,
	ipv4     = CASE WHEN ` + v4Newer + ` THEN excluded.ipv4 ELSE ipv4 END,
	ipv4_ms  = CASE WHEN ` + v4Newer + ` THEN excluded.ipv4_ms ELSE ipv4_ms END,
	ipv6     = CASE WHEN ` + v6Newer + ` THEN excluded.ipv6 ELSE ipv6 END,
	ipv6_ms  = CASE WHEN ` + v6Newer + ` THEN excluded.ipv6_ms ELSE ipv6_ms END,
	ipv6_ll  = CASE WHEN ` + v6Newer + ` THEN excluded.ipv6_ll ELSE ipv6_ll END,
	first_ms = min(first_ms, excluded.first_ms),
	last_ms  = max(last_ms, excluded.last_ms)`

// v4Newer and v6Newer compare as row.add does: IPv6 by rank, then time.
const (
	v4Newer = `(excluded.ipv4 <> '' AND (ipv4 = '' OR excluded.ipv4_ms >= ipv4_ms))`
	v6Newer = `(excluded.ipv6 <> '' AND (ipv6 = '' OR (ipv6_ll = 1 AND excluded.ipv6_ll = 0) OR ` +
		`(ipv6_ll = excluded.ipv6_ll AND excluded.ipv6_ms >= ipv6_ms)))`
)

const upsert = `INSERT INTO devices (mac, vendor, segment, ipv4, ipv4_ms, ipv6, ipv6_ms, ipv6_ll, first_ms, last_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)` + upsertSet

// written is what Observe last wrote for a device: a digest of the row's values and its
// times. A row with the same values, no earlier first sighting and a last sighting less than
// Config.Resolution later changes nothing worth a write. Whatever the stored row then lacks
// (a later last-seen or address time; rarely, an address that a late sighting's write
// failed to replace) lasts at most Config.Resolution.
type written struct {
	digest        uint64
	firstMS, last int64
}

func (r *row) digest() uint64 {
	h := fnv.New64a()
	for _, s := range []string{r.vendor, r.segment, r.ipv4, r.ipv6, strconv.FormatBool(r.ipv6LL)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// Observe records a batch of sightings in one transaction: new devices are added, known
// ones get their last-seen time, addresses and segment updated (a sighting older than what
// is stored does not replace a newer address). Invalid sightings (a group or malformed MAC
// address, a loopback or multicast address, a control character in the segment) are
// skipped; the valid ones are recorded, and the error, matching ErrInvalid, counts and
// names the first skipped.
func (inv *Inventory) Observe(ctx context.Context, batch []Sighting) error {
	now := inv.now()
	rows := make(map[string]*row, len(batch))
	var order []string
	var skipped int
	var first error
	for _, s := range batch {
		c, err := inv.check(s, now)
		if err != nil {
			if skipped++; first == nil {
				first = err
			}
			continue
		}
		r, ok := rows[c.mac]
		if !ok {
			r = &row{mac: c.mac, vendor: inv.cfg.Vendors.Lookup(c.mac), firstMS: c.ms, last: c.ms}
			rows[c.mac] = r
			order = append(order, c.mac)
		}
		r.add(c)
	}
	if len(order) > 0 {
		// In MAC order: neighbouring keys share the b-tree's pages.
		slices.Sort(order)
		list := make([]*row, len(order))
		for i, mac := range order {
			list[i] = rows[mac]
		}
		if err := inv.write(ctx, list); err != nil {
			return fmt.Errorf("recording devices: %w", err)
		}
	}
	if skipped > 0 {
		return fmt.Errorf("%w: %d of %d sightings skipped, the first: %v", ErrInvalid, skipped, len(batch), first)
	}
	return nil
}

// write upserts the rows that change something (see written) in one transaction.
func (inv *Inventory) write(ctx context.Context, rows []*row) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	step := inv.cfg.Resolution.Milliseconds()
	digests := make([]uint64, len(rows))
	for i, r := range rows {
		digests[i] = r.digest()
	}
	var todo []int
	for i, r := range rows {
		w, ok := inv.written[r.mac]
		if !ok || step < 0 || w.digest != digests[i] || r.firstMS < w.firstMS || r.last-w.last >= step {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := inv.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, upsert)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, i := range todo {
		r := rows[i]
		if _, err := stmt.ExecContext(ctx, r.mac, r.vendor, r.segment, r.ipv4, r.ipv4MS, r.ipv6, r.ipv6MS, r.ipv6LL,
			r.firstMS, r.last); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, i := range todo {
		r := rows[i]
		inv.written[r.mac] = written{digest: digests[i], firstMS: r.firstMS, last: r.last}
	}
	_, err = inv.capSize(ctx)
	return err
}

// capSize forgets the least recently seen devices beyond Config.MaxDevices.
func (inv *Inventory) capSize(ctx context.Context) (int64, error) {
	var n int
	if err := inv.db.QueryRowContext(ctx, `SELECT count(*) FROM devices`).Scan(&n); err != nil {
		return 0, err
	}
	if n <= inv.cfg.MaxDevices {
		return 0, nil
	}
	res, err := inv.db.ExecContext(ctx, `DELETE FROM devices WHERE mac IN (SELECT mac FROM devices ORDER BY last_ms, mac LIMIT ?)`,
		n-inv.cfg.MaxDevices)
	if err != nil {
		return 0, err
	}
	gone, _ := res.RowsAffected()
	clear(inv.written) // which rows went is not worth asking: the next poll writes them again
	inv.log.Warn("device inventory full: least recently seen devices forgotten", "forgotten", gone, "max", inv.cfg.MaxDevices)
	return gone, nil
}

// Prune forgets the devices not seen for Config.Retention, and the least recently seen
// beyond Config.MaxDevices. It returns how many it forgot.
func (inv *Inventory) Prune(ctx context.Context) (int64, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	cut := inv.now().Add(-inv.cfg.Retention).UnixMilli()
	res, err := inv.db.ExecContext(ctx, `DELETE FROM devices WHERE last_ms < ?`, cut)
	if err != nil {
		return 0, fmt.Errorf("forgetting old devices: %w", err)
	}
	old, _ := res.RowsAffected()
	if old > 0 {
		clear(inv.written)
	}
	over, err := inv.capSize(ctx)
	if err != nil {
		return old, fmt.Errorf("forgetting old devices: %w", err)
	}
	if old > 0 {
		inv.log.Info("devices not seen for a long time forgotten", "forgotten", old, "retention", inv.cfg.Retention.String())
	}
	return old + over, nil
}

const columns = `mac, vendor, segment, ipv4, ipv6, first_ms, last_ms`

func scan(sc interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var v4, v6 string
	var first, last int64
	if err := sc.Scan(&d.MAC, &d.Vendor, &d.Segment, &v4, &v6, &first, &last); err != nil {
		return d, err
	}
	// A value that does not parse (a hand-edited file) shows as no address.
	d.IPv4, _ = netip.ParseAddr(v4)
	d.IPv6, _ = netip.ParseAddr(v6)
	d.FirstSeen, d.LastSeen = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
	d.Private = IsPrivate(d.MAC)
	if d.Private {
		d.Vendor = ""
	}
	return d, nil
}

// Get returns the device with that MAC address (any form CanonicalMAC reads), or an error
// matching ErrNotFound or ErrInvalidMAC.
func (inv *Inventory) Get(ctx context.Context, mac string) (Device, error) {
	m, err := CanonicalMAC(mac)
	if err != nil {
		return Device{}, err
	}
	d, err := scan(inv.db.QueryRowContext(ctx, `SELECT `+columns+` FROM devices WHERE mac = ?`, m))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Device{}, fmt.Errorf("%w: %s", ErrNotFound, m)
	case err != nil:
		return Device{}, fmt.Errorf("reading device %s: %w", m, err)
	}
	return d, nil
}

// privateDigits are the second hex digits of a first octet with the locally administered
// bit set.
const privateDigits = `('2', '3', '6', '7', 'a', 'b', 'e', 'f')`

// List returns the devices f selects, most recently seen first.
func (inv *Inventory) List(ctx context.Context, f Filter) ([]Device, error) {
	var where []string
	var args []any
	if f.Segment != "" {
		where, args = append(where, `segment = :segment`), append(args, sql.Named("segment", f.Segment))
	}
	if !f.SeenSince.IsZero() {
		where, args = append(where, `last_ms >= :since`), append(args, sql.Named("since", f.SeenSince.UnixMilli()))
	}
	if q := normalQuery(f.Query); q != "" {
		or := []string{`instr(mac, :q) > 0`, `instr(ipv4, :q) > 0`, `instr(ipv6, :q) > 0`, `instr(lower(vendor), :q) > 0`}
		args = append(args, sql.Named("q", q))
		if strings.Contains(PrivateText, q) {
			or = append(or, `substr(mac, 2, 1) IN `+privateDigits)
		}
		var named []string
		nameQ := strings.ToLower(strings.TrimSpace(f.Query)) // "Room 12-A" is not a MAC address
		for mac, name := range f.Names {
			if strings.Contains(strings.ToLower(name), nameQ) {
				if m, err := CanonicalMAC(mac); err == nil {
					named = append(named, m)
				}
			}
		}
		if len(named) > 0 {
			slices.Sort(named)
			js, _ := json.Marshal(named)
			or, args = append(or, `mac IN (SELECT value FROM json_each(:names))`), append(args, sql.Named("names", string(js)))
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	query := `SELECT ` + columns + ` FROM devices`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY last_ms DESC, mac LIMIT :limit`
	args = append(args, sql.Named("limit", limit))
	rs, err := inv.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	defer rs.Close()
	var out []Device
	for rs.Next() {
		d, err := scan(rs)
		if err != nil {
			return nil, fmt.Errorf("listing devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	return out, nil
}

// Count returns the number of devices in the inventory.
func (inv *Inventory) Count(ctx context.Context) (int, error) {
	var n int
	if err := inv.db.QueryRowContext(ctx, `SELECT count(*) FROM devices`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting devices: %w", err)
	}
	return n, nil
}

// normalQuery is a search as the stored text is written: lowercase, and a MAC address
// typed with dashes written with colons.
func normalQuery(q string) string {
	q = strings.ToLower(strings.TrimSpace(q))
	if len(q) > 100 {
		q = q[:100]
	}
	if strings.Contains(q, "-") && strings.Trim(q, "0123456789abcdef-") == "" {
		q = strings.ReplaceAll(q, "-", ":")
	}
	return q
}
