// Package devices keeps the device inventory: every device (MAC address) seen on the school's
// segments, with its last IPv4 and IPv6 addresses, its segment, when it was first and last
// seen, and its maker from the IEEE registry of MAC address blocks.
//
// Devices are learnt from the kernel's neighbour table (the daemon Polls the packet path's copy
// of it, datapath/neigh; the appliance is every segment's gateway, so every client that talks
// through it is resolved there) and kept in a
// small SQLite file in the data directory, so the list survives restarts and answers "which
// device had 10.20.0.31 last Tuesday?" long after the kernel forgot. Devices not seen for
// Config.Retention (400 days by default: a school year and its holidays) are forgotten.
//
// What the inventory does not keep: names and profile overrides. Those are configuration
// (config.Device), edited on the devices page and applied by the policy engine by MAC; the
// inventory only matches names it is given (Filter.Names) so a search finds them.
//
// Many phones and laptops show the network a "private" MAC address, made up by the device per
// network (the locally administered bit set): such an address has no maker, and the same
// device may appear under a new address after a reset. Device.Private says so, and
// Device.VendorText puts it in words the DSL can act on.
//
// Everything read from outside (sightings, MAC addresses in paths and forms, the registry
// file) is treated as hostile: MAC addresses are canonicalised to lowercase aa:bb:cc:dd:ee:ff,
// addresses are net/netip values, and the registry parser bounds what it keeps.
package devices

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

// FileName is the inventory's file in the daemon's data directory.
const FileName = "devices.db"

// Defaults and limits.
const (
	// DefaultRetention is how long a device not seen is kept: a school year with its
	// holidays and some margin, so last summer's devices are still known in September.
	DefaultRetention = 400 * 24 * time.Hour
	// DefaultMaxDevices bounds the inventory. A large school has a few thousand devices; a
	// pupil spraying made-up MAC addresses must not fill the disk.
	DefaultMaxDevices = 50000
	// DefaultResolution is the default Config.Resolution: "last seen 3 minutes ago" is as
	// good as exact on the page, and the event log has the exact times.
	DefaultResolution = 5 * time.Minute
	// DefaultListLimit is what List returns when Filter.Limit is 0; MaxListLimit caps it.
	DefaultListLimit = 500
	MaxListLimit     = 5000
	// MaxSegment is the longest segment name kept, in bytes.
	MaxSegment = 64
	// PrivateText is what a private (locally administered) MAC address is called in place
	// of a maker.
	PrivateText = "private address (randomised by the device)"

	// clockSkew is how far in the future a sighting may be dated before it is taken as now.
	clockSkew = time.Minute
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidMAC: not a unicast MAC-48 address like aa:bb:cc:dd:ee:ff.
	ErrInvalidMAC = errors.New("not a device MAC address")
	// ErrInvalid is matched by the error Observe returns when it skipped sightings.
	ErrInvalid = errors.New("invalid sighting")
	// ErrNotFound: the inventory has no device with that MAC address.
	ErrNotFound = errors.New("no such device")
	// ErrCorrupt: the file is not a readable SQLite database.
	ErrCorrupt = errors.New("devices database is corrupt or not a database")
	// ErrSchemaVersion: the file was written by a newer firmware.
	ErrSchemaVersion = errors.New("devices database schema version not supported")
)

// Sighting says a device was seen: its MAC address, optionally with an IP address, on a
// segment at a time.
type Sighting struct {
	MAC     string     // any form net.ParseMAC reads; stored canonical
	Addr    netip.Addr // the zero Addr when only the MAC address was seen
	Segment string     // the segment's name, "" when unknown
	Time    time.Time  // zero: now
}

// Device is one device of the inventory.
type Device struct {
	MAC     string // canonical lowercase aa:bb:cc:dd:ee:ff
	Vendor  string // the maker from the IEEE registry; "" when unknown or private
	Private bool   // a locally administered address, made up by the device
	Segment string // where it was last seen
	// The last addresses seen, each the zero Addr when none was. IPv6 is the last global
	// (or unique local) address; a link-local one only until a better one is seen.
	IPv4, IPv6 netip.Addr
	FirstSeen  time.Time
	LastSeen   time.Time // to within Config.Resolution
}

// VendorText is the maker as the pages show it: the vendor, "private address (randomised by
// the device)", or "" when the registry does not know the block.
func (d Device) VendorText() string {
	if d.Private {
		return PrivateText
	}
	return d.Vendor
}

// Filter selects devices for List. The zero Filter lists the most recently seen devices.
type Filter struct {
	Segment string // only devices last seen on this segment
	// Query keeps devices whose MAC address, an IP address, maker or name contains it,
	// ignoring case. "AA-BB" finds aa:bb.
	Query string
	// Names are the configuration's device names by canonical MAC address, so that Query
	// finds a device by its name too. The inventory does not keep names.
	Names     map[string]string
	SeenSince time.Time // only devices seen at or after this time
	Limit     int       // default DefaultListLimit, at most MaxListLimit
}

// Config configures an Inventory. Zero values select the defaults.
type Config struct {
	Path       string // SQLite file, usually DATA-DIR/devices.db; created if missing
	Logger     *slog.Logger
	Now        func() time.Time // nil → time.Now
	Vendors    *Vendors         // the IEEE registry (LoadVendors); nil: makers unknown
	Retention  time.Duration    // forget devices not seen for this long; default DefaultRetention
	MaxDevices int              // default DefaultMaxDevices
	// Resolution is how far a device's last-seen time may lag behind its sightings: a
	// sighting that changes nothing else is written only once the stored time is this old.
	// Default DefaultResolution; negative: write every sighting.
	Resolution time.Duration
}

// Inventory is the device inventory. All methods are safe for concurrent use.
type Inventory struct {
	cfg Config
	log *slog.Logger
	db  *sql.DB

	mu sync.Mutex // serialises writes; guards written
	// written is what Observe last wrote for each device, so that the steady state (the
	// same devices with the same addresses at every poll) writes only once per
	// Config.Resolution: an SD card's wear, a Pi's CPU.
	written map[string]written
}

// New opens (creating and migrating if needed) the inventory at cfg.Path.
func New(cfg Config) (*Inventory, error) {
	if cfg.Path == "" {
		return nil, errors.New("opening devices database: empty path")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < 24*time.Hour {
		return nil, fmt.Errorf("opening devices database: retention %v is shorter than a day", cfg.Retention)
	}
	if cfg.Resolution == 0 {
		cfg.Resolution = DefaultResolution
	}
	if cfg.MaxDevices == 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	if cfg.MaxDevices < 1 {
		return nil, fmt.Errorf("opening devices database: maximum of %d devices", cfg.MaxDevices)
	}
	// Owner-only before SQLite creates it (the -wal and -shm files take its mode): which
	// pupil's device had which address is personal data.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening devices database: %w", err)
	}
	f.Close()
	// synchronous=NORMAL: a sighting lost to a power cut comes again at the next poll.
	// _txlock=immediate: Observe's read-modify-write of a row cannot interleave with another
	// writer's.
	params := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=temp_store(MEMORY)&_txlock=immediate"
	// Two connections: the page's reads do not wait for a poll's write.
	db, err := sqlitedb.Open(cfg.Path, params, 2, ErrCorrupt)
	if err != nil {
		return nil, fmt.Errorf("opening devices database %s: %w", cfg.Path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening devices database %s: %w", cfg.Path, sqlitedb.Classify(err, ErrCorrupt))
	}
	return &Inventory{cfg: cfg, log: cfg.Logger, db: db, written: make(map[string]written)}, nil
}

// Close closes the database.
func (inv *Inventory) Close() error {
	if err := inv.db.Close(); err != nil {
		return fmt.Errorf("closing devices database: %w", err)
	}
	return nil
}

// Retention is how long a device not seen is kept.
func (inv *Inventory) Retention() time.Duration { return inv.cfg.Retention }

// Snapshot writes a consistent copy of the database to path, for a backup, while it stays
// in use.
func (inv *Inventory) Snapshot(ctx context.Context, path string) error {
	return sqlitedb.Snapshot(ctx, inv.cfg.Path, path)
}

// now is the injected clock at the millisecond precision the file keeps.
func (inv *Inventory) now() time.Time {
	return time.UnixMilli(inv.cfg.Now().UnixMilli()).UTC()
}
