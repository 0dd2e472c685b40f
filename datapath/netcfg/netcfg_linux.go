package netcfg

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkAPI is the part of *netlink.Handle that configures links and addresses.
// It exists so VLAN creation, which this CI kernel cannot do, can be tested
// against a recording fake.
type linkAPI interface {
	LinkByName(name string) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	LinkDel(link netlink.Link) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
}

// Gateway configures one network namespace as schoolgate's gateway.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	ns    netns.NsHandle // the namespace New was called in; -1 in link-only tests
	links linkAPI
	nft   *nftables.Conn // nil in link-only tests
	close func()

	mu        sync.Mutex
	closed    bool
	queueMode string
	created   map[string]bool           // VLAN links Apply created
	added     map[string][]netip.Prefix // addresses Apply added, by interface
}

// New validates cfg and opens netlink and nftables connections bound to the
// calling thread's network namespace: later calls may run on any thread.
func New(cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("getting current network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("opening netlink handle: %w", err)
	}
	nft, err := nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting())
	if err != nil {
		h.Close()
		ns.Close()
		return nil, fmt.Errorf("opening nftables connection: %w", err)
	}
	g := newGateway(cfg, h)
	g.ns = ns
	g.nft = nft
	g.close = func() {
		_ = nft.CloseLasting()
		h.Close()
		ns.Close()
	}
	return g, nil
}

// newGateway builds a Gateway around links without opening anything; cfg must
// be validated.
func newGateway(cfg Config, links linkAPI) *Gateway {
	return &Gateway{
		cfg:     cfg,
		log:     cfg.Logger,
		ns:      -1,
		links:   links,
		close:   func() {},
		created: map[string]bool{},
		added:   map[string][]netip.Prefix{},
	}
}

// Interfaces maps each segment name to the interface it uses, for attaching
// the fast path.
func (g *Gateway) Interfaces() map[string]string {
	m := make(map[string]string, len(g.cfg.Segments))
	for _, s := range g.cfg.Segments {
		m[s.Name] = s.ifname()
	}
	return m
}

// QueueMode says which queue statement the kernel accepted at the last
// successful Apply: QueueModeNative or QueueModeXTCompat ("" before).
func (g *Gateway) QueueMode() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.queueMode
}

// Apply brings links up, adds gateway addresses, enables forwarding and
// replaces schoolgate's nftables table. It is idempotent.
func (g *Gateway) Apply() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if err := g.setupLinks(); err != nil {
		return err
	}
	if err := g.setSysctls(); err != nil {
		return err
	}
	return g.replaceTable()
}

// Remove deletes schoolgate's table, the VLAN links Apply created and the
// addresses it added. Forwarding is left on: other routes may rely on it.
func (g *Gateway) Remove() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	var errs []error
	if g.nft != nil {
		if err := g.deleteTable(); err != nil {
			errs = append(errs, err)
		}
		g.queueMode = ""
	}
	errs = append(errs, g.teardownLinks())
	return errors.Join(errs...)
}

// Close releases the connections; the configuration stays in place.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		g.close()
	}
	return nil
}

func (g *Gateway) setupLinks() error {
	wan, err := g.linkByName(g.cfg.WAN)
	if err != nil {
		return fmt.Errorf("looking up wan: %w", err)
	}
	if err := g.links.LinkSetUp(wan); err != nil {
		return fmt.Errorf("setting wan %s up: %w", g.cfg.WAN, err)
	}
	for _, s := range g.cfg.Segments {
		link, err := g.segmentLink(s)
		if err != nil {
			return fmt.Errorf("segment %s: %w", s.Name, err)
		}
		if err := g.links.LinkSetUp(link); err != nil {
			return fmt.Errorf("setting %s up: %w", s.ifname(), err)
		}
		if err := g.addAddresses(link, s); err != nil {
			return fmt.Errorf("segment %s: %w", s.Name, err)
		}
	}
	return nil
}

// segmentLink finds the segment's link, creating its VLAN on the trunk if needed.
func (g *Gateway) segmentLink(s Segment) (netlink.Link, error) {
	name := s.ifname()
	link, err := g.linkByName(name)
	switch {
	case err == nil:
		if v, ok := link.(*netlink.Vlan); ok && s.isVLAN() && v.VlanId != s.VLAN {
			return nil, fmt.Errorf("%s exists with vlan id %d, want %d", name, v.VlanId, s.VLAN)
		}
		return link, nil
	case !s.isVLAN() || !errors.Is(err, ErrLinkMissing):
		return nil, err
	}
	trunk, err := g.linkByName(s.Trunk)
	if err != nil {
		return nil, fmt.Errorf("looking up trunk: %w", err)
	}
	// A VLAN on a down trunk carries nothing.
	if err := g.links.LinkSetUp(trunk); err != nil {
		return nil, fmt.Errorf("setting trunk %s up: %w", s.Trunk, err)
	}
	vlan := &netlink.Vlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: trunk.Attrs().Index},
		VlanId:    s.VLAN,
	}
	if err := g.links.LinkAdd(vlan); err != nil {
		return nil, fmt.Errorf("creating vlan %s: %w", name, err)
	}
	g.created[name] = true
	g.log.Info("created vlan link", "link", name, "trunk", s.Trunk, "vlan", s.VLAN)
	// Read it back so later calls carry the kernel's index.
	link, err = g.linkByName(name)
	if err != nil {
		return nil, fmt.Errorf("reading back vlan: %w", err)
	}
	return link, nil
}

func (g *Gateway) linkByName(name string) (netlink.Link, error) {
	link, err := g.links.LinkByName(name)
	if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
		return nil, fmt.Errorf("%s: %w", name, ErrLinkMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	return link, nil
}

func (g *Gateway) addAddresses(link netlink.Link, s Segment) error {
	name := s.ifname()
	existing, err := g.links.AddrList(link, netlink.FAMILY_ALL)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		existing, err = g.links.AddrList(link, netlink.FAMILY_ALL)
	}
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	for _, p := range s.Gateway {
		addr := toAddr(p)
		if !hasAddr(existing, p) && !g.created[name] {
			g.added[name] = append(g.added[name], p)
		}
		if err := g.links.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("adding %v to %s: %w", p, name, err)
		}
	}
	return nil
}

// teardownLinks undoes what setupLinks added. Deleting a created VLAN also
// drops its addresses.
func (g *Gateway) teardownLinks() error {
	var errs []error
	for name, prefixes := range g.added {
		link, err := g.linkByName(name)
		if errors.Is(err, ErrLinkMissing) {
			delete(g.added, name)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var left []netip.Prefix
		for _, p := range prefixes {
			err := g.links.AddrDel(link, toAddr(p))
			if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("removing %v from %s: %w", p, name, err))
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			delete(g.added, name)
		} else {
			g.added[name] = left
		}
	}
	for name := range g.created {
		link, err := g.linkByName(name)
		if errors.Is(err, ErrLinkMissing) {
			delete(g.created, name)
			continue
		}
		if err == nil {
			err = g.links.LinkDel(link)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting vlan %s: %w", name, err))
			continue
		}
		delete(g.created, name)
	}
	return errors.Join(errs...)
}

func toAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		// Usable at once: clients must reach their gateway without waiting
		// for duplicate address detection.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func hasAddr(list []netlink.Addr, p netip.Prefix) bool {
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IPNet.IP)
		ones, _ := a.IPNet.Mask.Size()
		if ok && ip.Unmap() == p.Addr() && ones == p.Bits() {
			return true
		}
	}
	return false
}
