package neigh

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// subscription is the netlink side of a Table.
type subscription struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ns     netns.NsHandle  // the namespace Start was called in
	links  *netlink.Handle // for interface names, in ns
	names  map[int]string  // ifindex → name, owned by the reading goroutine
}

// usable are the neighbour states whose link-layer address is a real answer from the
// device (or was configured), as opposed to a resolution in progress or one that failed.
const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// Start reads the current neighbour table of the caller's network namespace (the calling
// thread's, which is what tests that switch namespaces need) and follows its changes until
// ctx ends or Close is called. If the subscription breaks (for instance when the kernel
// drops messages because we fell behind), it is opened again with a fresh dump, so nothing
// is missed for long.
func (t *Table) Start(ctx context.Context) error {
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("finding the network namespace: %w", err)
	}
	links, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return fmt.Errorf("opening netlink: %w", err)
	}
	t.sub.ns, t.sub.links, t.sub.names = ns, links, make(map[int]string)
	ctx, cancel := context.WithCancel(ctx)
	ch, errs, err := t.subscribe(ctx)
	if err != nil {
		cancel()
		links.Close()
		ns.Close()
		return fmt.Errorf("subscribing to neighbour updates: %w", err)
	}
	t.sub.cancel = cancel
	t.sub.wg.Add(1)
	go func() {
		defer t.sub.wg.Done()
		for {
			t.consume(ch)
			if ctx.Err() != nil {
				return
			}
			select {
			case err := <-errs:
				t.log.Warn("neighbour subscription broke, resubscribing", "err", err)
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if ch, errs, err = t.subscribe(ctx); err != nil {
				t.log.Warn("resubscribing to neighbour updates", "err", err)
				ch = nil
			}
		}
	}()
	return nil
}

func (t *Table) subscribe(ctx context.Context) (<-chan netlink.NeighUpdate, <-chan error, error) {
	ch := make(chan netlink.NeighUpdate, 256)
	errs := make(chan error, 1)
	err := netlink.NeighSubscribeWithOptions(ch, ctx.Done(), netlink.NeighSubscribeOptions{
		Namespace:    &t.sub.ns,
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	})
	return ch, errs, err
}

// consume applies updates until the subscription's channel closes.
func (t *Table) consume(ch <-chan netlink.NeighUpdate) {
	if ch == nil {
		return
	}
	for u := range ch {
		if u.Type == unix.RTM_DELNEIGH || u.State&usable == 0 {
			continue
		}
		if u.Family != unix.AF_INET && u.Family != unix.AF_INET6 {
			continue // AF_BRIDGE forwarding entries: no IP address
		}
		addr, ok := netip.AddrFromSlice(u.IP)
		if !ok {
			continue
		}
		t.observe(addr, u.HardwareAddr, t.ifname(u.LinkIndex))
	}
}

func (t *Table) ifname(index int) string {
	if name, ok := t.sub.names[index]; ok {
		return name
	}
	l, err := t.sub.links.LinkByIndex(index)
	if err != nil {
		return "" // gone already, or not yet visible: ask again next time
	}
	t.sub.names[index] = l.Attrs().Name
	return l.Attrs().Name
}

// Close stops following the kernel's table. The table keeps what it learnt.
func (t *Table) Close() error {
	if t.sub.cancel != nil {
		t.sub.cancel()
		t.sub.wg.Wait()
		t.sub.links.Close()
		t.sub.ns.Close()
		t.sub.cancel = nil
	}
	return nil
}
