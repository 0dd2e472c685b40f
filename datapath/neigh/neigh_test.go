package neigh

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestObserve(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tbl := New(Config{Interfaces: []string{"seg-pupil"}, MaxEntries: 2, Now: func() time.Time { return now }})
	a := netip.MustParseAddr("10.20.0.5")
	mac1 := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	mac2 := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}

	tbl.observe(a, mac1, "seg-pupil")
	tbl.observe(netip.MustParseAddr("198.51.100.1"), mac2, "wan0") // not a segment
	tbl.observe(netip.MustParseAddr("10.20.0.6"), net.HardwareAddr{0, 0, 0, 0, 0, 0}, "seg-pupil")
	if got, ok := tbl.MAC(a); !ok || got != "02:00:00:00:00:01" {
		t.Fatalf("MAC(%v) = %q, %v", a, got, ok)
	}
	if got, ok := tbl.MAC(netip.AddrFrom16(a.As16())); !ok || got != "02:00:00:00:00:01" {
		t.Errorf("MAC of the v4-mapped address = %q, %v", got, ok)
	}
	if tbl.Len() != 1 {
		t.Errorf("Len = %d, want 1 (WAN and all-zero MAC ignored)", tbl.Len())
	}

	// The address moves to another device: FirstSeen restarts.
	now = now.Add(time.Hour)
	tbl.observe(a, mac2, "seg-pupil")
	e := tbl.Entries()[0]
	if e.MAC != "02:00:00:00:00:02" || !e.FirstSeen.Equal(now) || !e.LastSeen.Equal(now) {
		t.Errorf("after move: %+v", e)
	}

	// Full table: the least recently seen address goes.
	now = now.Add(time.Minute)
	tbl.observe(netip.MustParseAddr("fd00:20::7"), mac1, "seg-pupil")
	now = now.Add(time.Minute)
	tbl.observe(netip.MustParseAddr("10.20.0.9"), mac1, "seg-pupil")
	if _, ok := tbl.MAC(a); ok || tbl.Len() != 2 {
		t.Errorf("oldest not evicted: len %d, entries %+v", tbl.Len(), tbl.Entries())
	}
}
