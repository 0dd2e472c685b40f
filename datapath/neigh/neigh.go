// Package neigh follows the kernel's neighbour table (ARP for IPv4, neighbour discovery for
// IPv6) and answers which MAC address a client address belongs to. The policy engine uses it
// for per-device profiles, events carry the MAC, and the devices page lists what was seen.
//
// The table is learnt from the kernel rather than from packets: the appliance is every
// segment's gateway, so the kernel resolves each client that talks through it, and netlink
// tells us about every change without a packet ever leaving the fast path.
package neigh

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// DefaultMaxEntries bounds the table; a school of a few thousand devices, each with an IPv4
// and a couple of IPv6 addresses, fits many times over.
const DefaultMaxEntries = 65536

// Entry is one address and the device it was last seen on.
type Entry struct {
	Addr      netip.Addr
	MAC       string // lowercase aa:bb:cc:dd:ee:ff
	Interface string
	FirstSeen time.Time // when this address was first seen with this MAC
	LastSeen  time.Time
}

// Config configures a Table.
type Config struct {
	Logger *slog.Logger
	// Interfaces, when set, limits the table to neighbours on these interfaces (the
	// segments); the WAN's router is not a device of the school.
	Interfaces []string
	MaxEntries int              // default DefaultMaxEntries
	Now        func() time.Time // for tests
}

// Table maps client addresses to MAC addresses. It is safe for concurrent use; MAC is
// called on the DNS and packet paths and takes only a read lock.
type Table struct {
	cfg Config
	log *slog.Logger

	mu      sync.RWMutex
	entries map[netip.Addr]*Entry

	sub subscription // the netlink side; see neigh_linux.go
}

// New returns an empty table; Start fills it.
func New(cfg Config) *Table {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Table{cfg: cfg, log: cfg.Logger, entries: make(map[netip.Addr]*Entry)}
}

// MAC returns the MAC address last seen for addr. IPv4-mapped IPv6 addresses are looked up
// as IPv4.
func (t *Table) MAC(addr netip.Addr) (string, bool) {
	addr = addr.Unmap()
	t.mu.RLock()
	e, ok := t.entries[addr]
	var mac string
	if ok {
		mac = e.MAC
	}
	t.mu.RUnlock()
	return mac, ok
}

// Entries returns a copy of the table, sorted by address.
func (t *Table) Entries() []Entry {
	t.mu.RLock()
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, *e)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Len returns the number of addresses in the table.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries)
}

// wanted reports whether neighbours on interface ifname belong in the table.
func (t *Table) wanted(ifname string) bool {
	return len(t.cfg.Interfaces) == 0 || slices.Contains(t.cfg.Interfaces, ifname)
}

// observe records that addr was resolved to hw on interface ifname. A deleted or failed
// kernel entry is not removed from the table: the address keeps pointing at the device
// that last had it until another device answers for it, which the kernel reports as soon
// as the appliance talks to the new one.
func (t *Table) observe(addr netip.Addr, hw net.HardwareAddr, ifname string) {
	if !addr.IsValid() || len(hw) != 6 || isZeroMAC(hw) || !t.wanted(ifname) {
		return
	}
	addr = addr.Unmap()
	mac := hw.String()
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[addr]; ok {
		if e.MAC != mac {
			t.log.Info("address moved to another device", "addr", addr, "old_mac", e.MAC, "mac", mac, "interface", ifname)
			e.MAC, e.FirstSeen = mac, now
		}
		e.Interface, e.LastSeen = ifname, now
		return
	}
	if len(t.entries) >= t.cfg.MaxEntries {
		t.evictOldest()
	}
	t.entries[addr] = &Entry{Addr: addr, MAC: mac, Interface: ifname, FirstSeen: now, LastSeen: now}
}

// evictOldest drops the least recently seen entry. It is linear, but only runs when the
// table is full, which a school's network never makes it in normal operation.
func (t *Table) evictOldest() {
	var oldest *Entry
	for _, e := range t.entries {
		if oldest == nil || e.LastSeen.Before(oldest.LastSeen) {
			oldest = e
		}
	}
	if oldest != nil {
		delete(t.entries, oldest.Addr)
	}
}

func isZeroMAC(hw net.HardwareAddr) bool {
	for _, b := range hw {
		if b != 0 {
			return false
		}
	}
	return true
}
