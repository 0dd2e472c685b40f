package netcfg

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeLinks records link and address calls. Only VLAN creation uses it: this
// kernel has no 802.1Q, everything else is tested against the real kernel.
type fakeLinks struct {
	links map[string]netlink.Link
	addrs map[string][]netlink.Addr
	calls []string
	added []netlink.Link // arguments of LinkAdd
}

func newFakeLinks(names ...string) *fakeLinks {
	f := &fakeLinks{links: map[string]netlink.Link{}, addrs: map[string][]netlink.Addr{}}
	for _, n := range names {
		f.links[n] = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: n, Index: len(f.links) + 1}}
	}
	return f
}

func (f *fakeLinks) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeLinks) LinkByName(name string) (netlink.Link, error) {
	if l, ok := f.links[name]; ok {
		return l, nil
	}
	return nil, netlink.LinkNotFoundError{}
}

func (f *fakeLinks) LinkAdd(l netlink.Link) error {
	name := l.Attrs().Name
	f.record("add %s", name)
	f.added = append(f.added, l)
	if _, ok := f.links[name]; ok {
		return unix.EEXIST
	}
	l.Attrs().Index = 100 + len(f.links)
	f.links[name] = l
	return nil
}

func (f *fakeLinks) LinkSetUp(l netlink.Link) error {
	f.record("up %s", l.Attrs().Name)
	return nil
}

func (f *fakeLinks) LinkDel(l netlink.Link) error {
	f.record("del %s", l.Attrs().Name)
	delete(f.links, l.Attrs().Name)
	delete(f.addrs, l.Attrs().Name)
	return nil
}

func (f *fakeLinks) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	return f.addrs[l.Attrs().Name], nil
}

func (f *fakeLinks) AddrReplace(l netlink.Link, a *netlink.Addr) error {
	name := l.Attrs().Name
	f.record("addr %s %s flags=%#x", name, a.IPNet, a.Flags)
	if !slices.ContainsFunc(f.addrs[name], func(x netlink.Addr) bool { return x.IPNet.String() == a.IPNet.String() }) {
		f.addrs[name] = append(f.addrs[name], *a)
	}
	return nil
}

func (f *fakeLinks) AddrDel(l netlink.Link, a *netlink.Addr) error {
	name := l.Attrs().Name
	f.record("addrdel %s %s", name, a.IPNet)
	f.addrs[name] = slices.DeleteFunc(f.addrs[name], func(x netlink.Addr) bool { return x.IPNet.String() == a.IPNet.String() })
	return nil
}

func (f *fakeLinks) addrStrings(name string) []string {
	var s []string
	for _, a := range f.addrs[name] {
		s = append(s, a.IPNet.String())
	}
	slices.Sort(s)
	return s
}

func TestVLANCreatedAndRemoved(t *testing.T) {
	fake := newFakeLinks("wan0", "eth1", "eth2")
	trunkIndex := fake.links["eth1"].Attrs().Index
	// An address the operator configured on the guest port by hand: Remove must keep it.
	pre, _ := netlink.ParseAddr("10.30.0.1/24")
	fake.addrs["eth2"] = []netlink.Addr{*pre}

	cfg := validConfig()
	cfg.Segments[1].Gateway = append(cfg.Segments[1].Gateway, netip.MustParsePrefix("fd00:30::1/64"))
	g := newGateway(cfg.withDefaults(), fake)

	if err := g.setupLinks(); err != nil {
		t.Fatalf("setupLinks: %v", err)
	}
	if len(fake.added) != 1 {
		t.Fatalf("LinkAdd called %d times, want 1 (calls %q)", len(fake.added), fake.calls)
	}
	vlan, ok := fake.added[0].(*netlink.Vlan)
	if !ok {
		t.Fatalf("LinkAdd(%T), want *netlink.Vlan", fake.added[0])
	}
	if vlan.Name != "eth1.10" || vlan.ParentIndex != trunkIndex || vlan.VlanId != 10 {
		t.Errorf("vlan = name %q parent %d id %d, want eth1.10 parent %d id 10", vlan.Name, vlan.ParentIndex, vlan.VlanId, trunkIndex)
	}
	for _, want := range []string{
		"up wan0", "up eth1", "add eth1.10", "up eth1.10",
		"addr eth1.10 10.10.0.1/24 flags=0x0",
		fmt.Sprintf("addr eth1.10 fd00:10::1/64 flags=%#x", unix.IFA_F_NODAD),
		"up eth2", "addr eth2 10.30.0.1/24 flags=0x0",
	} {
		if !slices.Contains(fake.calls, want) {
			t.Errorf("missing call %q in %q", want, fake.calls)
		}
	}
	if got, want := g.Interfaces(), map[string]string{"staff": "eth1.10", "guest": "eth2"}; !maps.Equal(got, want) {
		t.Errorf("Interfaces() = %v, want %v", got, want)
	}

	// Applying again finds the VLAN and does not add it twice.
	if err := g.setupLinks(); err != nil {
		t.Fatalf("second setupLinks: %v", err)
	}
	if len(fake.added) != 1 {
		t.Errorf("LinkAdd called %d times after second apply, want 1", len(fake.added))
	}

	if err := g.teardownLinks(); err != nil {
		t.Fatalf("teardownLinks: %v", err)
	}
	if !slices.Contains(fake.calls, "del eth1.10") {
		t.Errorf("vlan not deleted: calls %q", fake.calls)
	}
	if _, ok := fake.links["eth1"]; !ok {
		t.Errorf("trunk eth1 deleted")
	}
	if got, want := fake.addrStrings("eth2"), []string{"10.30.0.1/24"}; !slices.Equal(got, want) {
		t.Errorf("eth2 addresses after remove = %v, want %v (added one removed, pre-existing one kept)", got, want)
	}
}

func TestMissingLinks(t *testing.T) {
	tests := []struct {
		name  string
		links []string
		want  string
	}{
		{"no wan", []string{"eth1", "eth2"}, "wan0"},
		{"no trunk", []string{"wan0", "eth2"}, "eth1"},
		{"no segment interface", []string{"wan0", "eth1"}, "eth2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(validConfig().withDefaults(), newFakeLinks(tt.links...))
			err := g.setupLinks()
			if !errors.Is(err, ErrLinkMissing) {
				t.Fatalf("setupLinks() = %v, want ErrLinkMissing", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("setupLinks() = %v, want it to name %s", err, tt.want)
			}
		})
	}
}

func TestExistingLinkWithOtherVLANID(t *testing.T) {
	fake := newFakeLinks("wan0", "eth1", "eth2")
	fake.links["eth1.10"] = &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "eth1.10", Index: 50}, VlanId: 11}
	g := newGateway(validConfig().withDefaults(), fake)
	if err := g.setupLinks(); err == nil || !strings.Contains(err.Error(), "vlan id 11") {
		t.Fatalf("setupLinks() = %v, want vlan id mismatch", err)
	}
}

func TestClosedGateway(t *testing.T) {
	g := newGateway(validConfig().withDefaults(), newFakeLinks("wan0", "eth1", "eth2"))
	g.Close()
	g.Close() // a second Close must not close anything twice
	if err := g.Apply(); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
	if err := g.Remove(); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close = %v, want ErrClosed", err)
	}
}
