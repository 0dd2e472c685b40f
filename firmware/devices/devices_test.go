package devices

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func sampleVendors(t testing.TB) *Vendors {
	t.Helper()
	v, err := LoadVendors(filepath.Join("testdata", "oui-sample.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newInventory(t testing.TB, change func(*Config)) (*Inventory, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	cfg := Config{Path: filepath.Join(t.TempDir(), FileName), Now: clk.Now, Vendors: sampleVendors(t)}
	if change != nil {
		change(&cfg)
	}
	inv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inv.Close() })
	return inv, clk
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func get(t *testing.T, inv *Inventory, mac string) Device {
	t.Helper()
	d, err := inv.Get(context.Background(), mac)
	if err != nil {
		t.Fatalf("Get(%s): %v", mac, err)
	}
	return d
}

func TestCanonicalMAC(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"dc:a6:32:01:02:03", "dc:a6:32:01:02:03"},
		{" DC-A6-32-01-02-03\n", "dc:a6:32:01:02:03"},
		{"dca6.3201.0203", "dc:a6:32:01:02:03"},
		{"da:a6:32:01:02:03", "da:a6:32:01:02:03"}, // private is still a device
		{"", ""},
		{"dc:a6:32:01:02", ""},
		{"dc:a6:32:01:02:03:04:05", ""},                // EUI-64
		{"01:00:5e:00:00:01", ""},                      // IPv4 multicast
		{"33:33:00:00:00:01", ""},                      // IPv6 multicast
		{"ff:ff:ff:ff:ff:ff", ""},                      // broadcast
		{"00:00:00:00:00:00", ""},                      // nothing
		{"dc:a6:32:01:02:0g", ""},                      // not hex
		{"dc:a6:32:01:02:03'; DROP TABLE devices", ""}, // hostile
		{strings.Repeat("a", 10000), ""},
	} {
		got, err := CanonicalMAC(tc.in)
		if got != tc.want || (tc.want == "") != errors.Is(err, ErrInvalidMAC) {
			t.Errorf("CanonicalMAC(%.30q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("CanonicalMAC(%.30q): error of %d bytes quotes too much", tc.in, len(err.Error()))
		}
	}
}

func TestIsPrivate(t *testing.T) {
	for mac, want := range map[string]bool{
		"dc:a6:32:01:02:03": false, // Raspberry Pi: assigned by its maker
		"da:a6:32:01:02:03": true,  // 0xda = 1101 1010: locally administered
		"02:00:00:00:00:01": true,
		"a6:1f:00:00:00:01": true, // an iPhone's private Wi-Fi address
		"AE-1F-00-00-00-01": true,
		"3c:22:fb:00:00:01": false,
		"nonsense":          false,
	} {
		if got := IsPrivate(mac); got != want {
			t.Errorf("IsPrivate(%s) = %v, want %v", mac, got, want)
		}
	}
}

func TestObserveNewAndUpdate(t *testing.T) {
	inv, clk := newInventory(t, nil)
	ctx := context.Background()
	pi, phone := "dc:a6:32:01:02:03", "a6:1f:00:00:00:01"
	err := inv.Observe(ctx, []Sighting{
		{MAC: "DC-A6-32-01-02-03", Addr: addr("10.20.0.31"), Segment: "pupils", Time: t0.Add(-time.Minute)},
		{MAC: pi, Addr: addr("fe80::dea6:32ff:fe01:203%eth1"), Segment: "pupils", Time: t0.Add(-time.Minute)},
		{MAC: phone, Addr: addr("::ffff:10.30.0.7"), Segment: "guest"}, // zero time: now
	})
	if err != nil {
		t.Fatal(err)
	}
	d := get(t, inv, pi)
	want := Device{MAC: pi, Vendor: "Raspberry Pi Trading Ltd", Segment: "pupils", IPv4: addr("10.20.0.31"),
		IPv6: addr("fe80::dea6:32ff:fe01:203"), FirstSeen: t0.Add(-time.Minute), LastSeen: t0.Add(-time.Minute)}
	if d != want {
		t.Errorf("new device:\n got %+v\nwant %+v", d, want)
	}
	if d.VendorText() != "Raspberry Pi Trading Ltd" {
		t.Errorf("VendorText = %q", d.VendorText())
	}
	p := get(t, inv, phone)
	if !p.Private || p.Vendor != "" || p.VendorText() != PrivateText || p.IPv4 != addr("10.30.0.7") || !p.LastSeen.Equal(t0) {
		t.Errorf("private device: %+v (%q)", p, p.VendorText())
	}

	// An hour later on another segment with new addresses; a global IPv6 address replaces the
	// link-local one, and a later link-local sighting does not replace the global one.
	clk.Add(time.Hour)
	err = inv.Observe(ctx, []Sighting{
		{MAC: pi, Addr: addr("10.10.0.5"), Segment: "staff"},
		{MAC: pi, Addr: addr("2001:db8:10::5")},
		{MAC: pi, Addr: addr("fe80::1"), Time: clk.Now().Add(time.Second * 30)},
	})
	if err != nil {
		t.Fatal(err)
	}
	d = get(t, inv, pi)
	if d.Segment != "staff" || d.IPv4 != addr("10.10.0.5") || d.IPv6 != addr("2001:db8:10::5") ||
		!d.FirstSeen.Equal(t0.Add(-time.Minute)) || !d.LastSeen.Equal(clk.Now().Add(30*time.Second)) {
		t.Errorf("after moving: %+v", d)
	}
	// A late sighting (an old entry read after a newer one) changes neither the addresses,
	// nor the segment, nor the last-seen time; it may move first seen earlier.
	err = inv.Observe(ctx, []Sighting{{MAC: pi, Addr: addr("10.20.0.99"), Segment: "pupils", Time: t0.Add(-2 * time.Hour)},
		{MAC: pi, Addr: addr("2001:db8:20::99"), Time: t0}})
	if err != nil {
		t.Fatal(err)
	}
	d2 := get(t, inv, pi)
	if d2.Segment != "staff" || d2.IPv4 != addr("10.10.0.5") || d2.IPv6 != addr("2001:db8:10::5") ||
		!d2.FirstSeen.Equal(t0.Add(-2*time.Hour)) || !d2.LastSeen.Equal(d.LastSeen) {
		t.Errorf("after a late sighting: %+v", d2)
	}
	// A sighting dated in the future (a client's clock, a bad source) counts as now.
	if err := inv.Observe(ctx, []Sighting{{MAC: phone, Time: clk.Now().AddDate(1, 0, 0)}}); err != nil {
		t.Fatal(err)
	}
	if p := get(t, inv, phone); !p.LastSeen.Equal(clk.Now()) || p.Segment != "guest" || p.IPv4 != addr("10.30.0.7") {
		t.Errorf("after a MAC-only sighting from the future: %+v", p)
	}
	if _, err := inv.Get(ctx, "00:11:22:33:44:55"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown device: %v", err)
	}
	if _, err := inv.Get(ctx, "ff:ff:ff:ff:ff:ff"); !errors.Is(err, ErrInvalidMAC) {
		t.Errorf("Get of broadcast: %v", err)
	}
	if n, err := inv.Count(ctx); n != 2 || err != nil {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}
}

// TestObserveResolution: a sighting that changes nothing but the last-seen time is written
// once the stored time is Config.Resolution old; any other change at once.
func TestObserveResolution(t *testing.T) {
	inv, clk := newInventory(t, nil)
	ctx := context.Background()
	mac := "dc:a6:32:00:00:01"
	observe := func(ip string) Device {
		t.Helper()
		if err := inv.Observe(ctx, []Sighting{{MAC: mac, Addr: addr(ip), Segment: "pupils"}}); err != nil {
			t.Fatal(err)
		}
		return get(t, inv, mac)
	}
	observe("10.20.0.1")
	clk.Add(4 * time.Minute)
	if d := observe("10.20.0.1"); !d.LastSeen.Equal(t0) {
		t.Errorf("4 minutes later, same address: last seen %v, want still %v", d.LastSeen, t0)
	}
	clk.Add(time.Minute)
	if d := observe("10.20.0.1"); !d.LastSeen.Equal(clk.Now()) {
		t.Errorf("5 minutes later: last seen %v, want %v", d.LastSeen, clk.Now())
	}
	clk.Add(time.Second)
	if d := observe("10.20.0.2"); !d.LastSeen.Equal(clk.Now()) || d.IPv4 != addr("10.20.0.2") {
		t.Errorf("a second later, new address: %+v", d)
	}
	// A late sighting of an old address changes nothing, and is not written.
	if err := inv.Observe(ctx, []Sighting{{MAC: mac, Addr: addr("10.20.0.1"), Time: clk.Now().Add(-time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if d := get(t, inv, mac); d.IPv4 != addr("10.20.0.2") {
		t.Errorf("after a late sighting: %+v", d)
	}
	// After Prune forgets devices, what was written is asked again.
	clk.Add(500 * 24 * time.Hour)
	if n, err := inv.Prune(ctx); n != 1 || err != nil {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	observe("10.20.0.2")

	every, clk2 := newInventory(t, func(c *Config) { c.Resolution = -1 })
	for range 2 {
		if err := every.Observe(ctx, []Sighting{{MAC: mac}}); err != nil {
			t.Fatal(err)
		}
		clk2.Add(time.Second)
	}
	if d := get(t, every, mac); !d.LastSeen.Equal(t0.Add(time.Second)) {
		t.Errorf("negative resolution: last seen %v, want %v", d.LastSeen, t0.Add(time.Second))
	}
}

func TestObserveSkipsInvalid(t *testing.T) {
	inv, _ := newInventory(t, nil)
	ctx := context.Background()
	good := "dc:a6:32:00:00:01"
	err := inv.Observe(ctx, []Sighting{
		{MAC: "ff:ff:ff:ff:ff:ff", Addr: addr("10.0.0.1")},
		{MAC: "00:00:00:00:00:00"},
		{MAC: "'; DELETE FROM devices; --"},
		{MAC: "dc:a6:32:00:00:02", Addr: addr("127.0.0.1")},
		{MAC: "dc:a6:32:00:00:03", Addr: addr("ff02::1")},
		{MAC: "dc:a6:32:00:00:04", Addr: addr("255.255.255.255")},
		{MAC: "dc:a6:32:00:00:05", Addr: addr("::")},
		{MAC: "dc:a6:32:00:00:06", Segment: "pupils\x00; x"},
		{MAC: "dc:a6:32:00:00:07", Segment: strings.Repeat("s", MaxSegment+1)},
		{MAC: "dc:a6:32:00:00:08", Segment: "\xff\xfe"},
		{MAC: "dc:a6:32:00:00:09", Time: time.Unix(0, 0)},
		{MAC: good, Addr: addr("10.20.0.2"), Segment: " pupils "},
	})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "11 of 12") {
		t.Errorf("Observe: %v; want ErrInvalid counting 11 of 12", err)
	}
	list, err := inv.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].MAC != good || list[0].Segment != "pupils" {
		t.Errorf("stored: %+v; want only %s on pupils", list, good)
	}
	if err := inv.Observe(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func TestList(t *testing.T) {
	inv, clk := newInventory(t, nil)
	ctx := context.Background()
	seen := func(mac, ip, seg string, ago time.Duration) Sighting {
		return Sighting{MAC: mac, Addr: addr(ip), Segment: seg, Time: clk.Now().Add(-ago)}
	}
	err := inv.Observe(ctx, []Sighting{
		seen("dc:a6:32:00:00:01", "10.20.0.11", "pupils", time.Minute),       // Raspberry Pi
		seen("60:8b:0e:00:00:02", "10.10.0.12", "staff", 2*time.Minute),      // Apple
		seen("60:8b:0e:00:00:02", "2001:db8:10::12", "staff", 2*time.Minute), //
		seen("f4:bd:9e:00:00:03", "10.20.0.13", "pupils", 3*time.Hour),       // Cisco
		seen("a6:1f:00:00:00:04", "10.30.0.14", "guest", 10*24*time.Hour),    // private
		seen("20:85:93:b0:00:05", "10.20.0.15", "pupils", 4*time.Minute),     // MA-M: IOG Products
	})
	if err != nil {
		t.Fatal(err)
	}
	macs := func(f Filter) []string {
		t.Helper()
		list, err := inv.List(ctx, f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		var out []string
		for _, d := range list {
			out = append(out, d.MAC[len(d.MAC)-2:])
		}
		return out
	}
	names := map[string]string{"F4-BD-9E-00-00-03": "Library printer", "60:8b:0e:00:00:02": "Head's laptop", "bad": "Printer"}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, newest first", Filter{}, []string{"01", "02", "05", "03", "04"}},
		{"segment", Filter{Segment: "pupils"}, []string{"01", "05", "03"}},
		{"unknown segment", Filter{Segment: "nope"}, nil},
		{"seen since", Filter{SeenSince: clk.Now().Add(-time.Hour)}, []string{"01", "02", "05"}},
		{"limit", Filter{Limit: 2}, []string{"01", "02"}},
		{"mac, dashes, upper case", Filter{Query: "60-8B-0E"}, []string{"02"}},
		{"mac tail", Filter{Query: ":05"}, []string{"05"}},
		{"ipv4", Filter{Query: "10.20.0.1"}, []string{"01", "05", "03"}},
		{"ipv6", Filter{Query: "2001:DB8:10::"}, []string{"02"}},
		{"vendor", Filter{Query: "raspberry"}, []string{"01"}},
		{"ma-m vendor", Filter{Query: "IOG"}, []string{"05"}},
		{"private", Filter{Query: "private"}, []string{"04"}},
		{"name", Filter{Query: "printer", Names: names}, []string{"03"}},
		{"name with a dash", Filter{Query: "12-A", Names: map[string]string{"dc:a6:32:00:00:01": "Room 12-A board"}}, []string{"01"}},
		{"name and segment", Filter{Query: "laptop", Segment: "pupils", Names: names}, nil},
		{"mac, vendor or private", Filter{Query: "A", Names: map[string]string{"f4:bd:9e:00:00:03": "x"}}, []string{"01", "02", "04"}},
		{"no match", Filter{Query: "zzz"}, nil},
		{"sql metacharacters", Filter{Query: "%' OR 1=1 --"}, nil},
		{"like wildcard is literal", Filter{Query: "_"}, nil},
	} {
		if got := macs(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPruneAndCap(t *testing.T) {
	inv, clk := newInventory(t, func(c *Config) { c.MaxDevices = 3 })
	ctx := context.Background()
	var batch []Sighting
	for i := range 5 {
		batch = append(batch, Sighting{MAC: fmt.Sprintf("dc:a6:32:00:00:%02x", i), Time: t0.Add(time.Duration(i-5) * time.Minute)})
	}
	if err := inv.Observe(ctx, batch); err != nil {
		t.Fatal(err)
	}
	list, _ := inv.List(ctx, Filter{})
	if len(list) != 3 || list[2].MAC != "dc:a6:32:00:00:02" {
		t.Fatalf("over the cap: kept %+v; want the 3 most recently seen", list)
	}
	// One device is seen again two days later. 399 days after the first sightings nothing
	// is old enough; two days more and the two not seen since go.
	clk.Add(2 * 24 * time.Hour)
	if err := inv.Observe(ctx, []Sighting{{MAC: "dc:a6:32:00:00:04"}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(397 * 24 * time.Hour)
	if n, err := inv.Prune(ctx); n != 0 || err != nil {
		t.Errorf("Prune 399 days after the first sightings: %d, %v; want 0", n, err)
	}
	clk.Add(2 * 24 * time.Hour)
	if n, err := inv.Prune(ctx); n != 2 || err != nil {
		t.Errorf("Prune 401 days after: %d, %v; want 2", n, err)
	}
	if list, _ := inv.List(ctx, Filter{}); len(list) != 1 || list[0].MAC != "dc:a6:32:00:00:04" {
		t.Errorf("after pruning: %+v", list)
	}
	if _, err := New(Config{Path: filepath.Join(t.TempDir(), "x.db"), Retention: time.Hour}); err == nil {
		t.Error("a retention of an hour was accepted")
	}
}

func TestReopenAndBadFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	inv, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := inv.Observe(ctx, []Sighting{{MAC: "dc:a6:32:00:00:01", Addr: addr("10.20.0.1")}}); err != nil {
		t.Fatal(err)
	}
	inv.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v; want 0600", fi.Mode(), err)
	}
	inv, err = New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := inv.Get(ctx, "dc:a6:32:00:00:01"); err != nil || d.IPv4 != addr("10.20.0.1") || d.Vendor != "" {
		t.Errorf("after reopening (no registry): %+v, %v", d, err)
	}
	if _, err := inv.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	inv.Close()
	if _, err := New(Config{Path: path}); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("newer schema: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o600)
	if _, err := New(Config{Path: garbage}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: %v", err)
	}
}

func TestSnapshot(t *testing.T) {
	inv, _ := newInventory(t, nil)
	ctx := context.Background()
	if err := inv.Observe(ctx, []Sighting{{MAC: "dc:a6:32:00:00:01", Addr: addr("10.20.0.1"), Segment: "pupils"}}); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := inv.Snapshot(ctx, copyPath); err != nil {
		t.Fatal(err)
	}
	cp, err := New(Config{Path: copyPath})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if d, err := cp.Get(ctx, "dc:a6:32:00:00:01"); err != nil || d.IPv4 != addr("10.20.0.1") {
		t.Errorf("in the copy: %+v, %v", d, err)
	}
	if inv.Retention() != DefaultRetention {
		t.Errorf("Retention = %v", inv.Retention())
	}
}

func TestPoll(t *testing.T) {
	inv, _ := newInventory(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan int, 10)
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		inv.Poll(ctx, time.Millisecond, func(context.Context) ([]Sighting, error) {
			n++
			select {
			case calls <- n:
			default:
			}
			switch n {
			case 1:
				return []Sighting{{MAC: "dc:a6:32:00:00:01", Segment: "pupils"}}, nil
			case 2: // a partial failure still records what was read
				return []Sighting{{MAC: "dc:a6:32:00:00:02"}}, errors.New("finding interface eth9: no such link")
			}
			return nil, errors.New("netlink gone")
		})
	}()
	for <-calls < 3 {
	}
	cancel()
	<-done
	for _, mac := range []string{"dc:a6:32:00:00:01", "dc:a6:32:00:00:02"} {
		if _, err := inv.Get(context.Background(), mac); err != nil {
			t.Errorf("%s after polling: %v", mac, err)
		}
	}
}

func TestConcurrentObserveAndList(t *testing.T) {
	inv, _ := newInventory(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				mac := fmt.Sprintf("dc:a6:32:%02x:00:%02x", w, i)
				if err := inv.Observe(ctx, []Sighting{{MAC: mac, Addr: addr(fmt.Sprintf("10.20.%d.%d", w, i+1))}}); err != nil {
					t.Error(err)
					return
				}
				if _, err := inv.List(ctx, Filter{Query: "10.20"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, _ := inv.Count(ctx); n != 200 {
		t.Errorf("Count = %d, want 200", n)
	}
}

// BenchmarkObserve records 5,000 devices, each with an IPv4 and an IPv6 address, as one
// poll of a large school's neighbour table does: "new" into an empty inventory; "known"
// again into one that has them all, 30 seconds later each time (the steady state, where
// one poll in ten writes); "moved" with a new IPv4 address for every device each time
// (every row written).
func BenchmarkObserve(b *testing.B) {
	const devices = 5000
	batch := func(round int) []Sighting {
		out := make([]Sighting, 0, 2*devices)
		for i := range devices {
			mac := fmt.Sprintf("dc:a6:%02x:%02x:%02x:%02x", round>>8&0xff, round&0xff, i>>8, i&0xff)
			at := t0.Add(time.Duration(round) * time.Second)
			out = append(out,
				Sighting{MAC: mac, Addr: netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)}), Segment: "pupils", Time: at},
				Sighting{MAC: mac, Addr: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), Segment: "pupils", Time: at})
		}
		return out
	}
	ctx := context.Background()
	b.Run("new", func(b *testing.B) {
		inv, _ := newInventory(b, func(c *Config) { c.MaxDevices = 1 << 30 })
		round := 0
		for b.Loop() {
			b.StopTimer()
			s := batch(round)
			round++
			b.StartTimer()
			if err := inv.Observe(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/device")
	})
	b.Run("known", func(b *testing.B) {
		inv, clk := newInventory(b, nil)
		s := batch(0)
		if err := inv.Observe(ctx, s); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			clk.Add(30 * time.Second)
			for i := range s {
				s[i].Time = clk.Now()
			}
			if err := inv.Observe(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/device")
	})
	b.Run("moved", func(b *testing.B) {
		inv, clk := newInventory(b, nil)
		s := batch(0)
		if err := inv.Observe(ctx, s); err != nil {
			b.Fatal(err)
		}
		round := 0
		for b.Loop() {
			clk.Add(30 * time.Second)
			round++
			for i := 0; i < len(s); i += 2 {
				s[i].Addr = netip.AddrFrom4([4]byte{10, byte(20 + round%100), byte(i >> 9), byte(i >> 1)})
				s[i].Time, s[i+1].Time = clk.Now(), clk.Now()
			}
			if err := inv.Observe(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*devices), "ns/device")
	})
}
