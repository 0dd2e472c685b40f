package filter

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Legacy tc attachment (kernels without TCX): one direct-action bpf filter per direction
// at a fixed priority and handle, so replacing it swaps the program atomically. The
// filter's name carries the pin path, so Remove deletes only the filters of its own
// Filter (tests run several side by side).
const (
	tcPriority = 1
	tcHandle   = 0x5c
)

func tcFilterName(pinPath string, dir direction) string {
	return "schoolgate:" + dir.name + ":" + pinPath
}

type direction struct {
	name   string
	tcx    ebpf.AttachType
	parent uint32
}

var (
	ingress = direction{"ingress", ebpf.AttachTCXIngress, netlink.HANDLE_MIN_INGRESS}
	egress  = direction{"egress", ebpf.AttachTCXEgress, netlink.HANDLE_MIN_EGRESS}
)

// AttachSegment enforces seg on the interface: its ingress runs the rules for packets
// from clients, its egress drops server packets of blocked flows. Attaching again (or
// from a new daemon while an old one's programs are still attached) swaps the programs
// in place, without a moment of no filtering.
func (f *Filter) AttachSegment(ifname string, seg Segment) error {
	if seg.ID > MaxSegmentID {
		return fmt.Errorf("attaching segment %d to %s: %w", seg.ID, ifname, ErrSegmentID)
	}
	if seg.Profile >= MaxProfiles {
		return fmt.Errorf("attaching segment %d to %s: %w", seg.ID, ifname, ErrProfileID)
	}
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("attaching to %s: %w", ifname, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The segment goes in first: a program that finds no segment passes everything.
	if err := f.putSegment(uint32(iface.Index), seg); err != nil {
		return fmt.Errorf("attaching to %s: %w", ifname, err)
	}
	if err := f.attach(ifname, iface.Index, f.objs.SegmentIngress, ingress); err != nil {
		return err
	}
	return f.attach(ifname, iface.Index, f.objs.SegmentEgress, egress)
}

// AttachWAN counts the WAN interface's traffic in both directions.
func (f *Filter) AttachWAN(ifname string) error {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("attaching to %s: %w", ifname, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Stale if the interface used to be a segment; the WAN program ignores it anyway.
	if err := f.objs.Segments.Delete(uint32(iface.Index)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("attaching to %s: %w", ifname, err)
	}
	if err := f.attach(ifname, iface.Index, f.objs.Wan, ingress); err != nil {
		return err
	}
	return f.attach(ifname, iface.Index, f.objs.Wan, egress)
}

func (f *Filter) putSegment(ifindex uint32, seg Segment) error {
	v := schoolgateSegment{Id: seg.ID, Profile: seg.Profile}
	if seg.Guest {
		v.Flags |= uint32(schoolgateSegmentFlagSEGMENT_GUEST)
	}
	if err := f.objs.Segments.Put(ifindex, v); err != nil {
		return fmt.Errorf("writing segment: %w", err)
	}
	return nil
}

// attach puts prog on one direction of an interface, preferring a TCX link pinned under
// the pin path (taken over with an atomic update when a previous daemon left one) and
// falling back to clsact with a bpf filter when the kernel refuses TCX.
func (f *Filter) attach(ifname string, ifindex int, prog *ebpf.Program, dir direction) error {
	pin := filepath.Join(f.linksDir, ifname+"_"+dir.name)
	if l, ok := f.links[pin]; ok {
		if err := l.Update(prog); err != nil {
			return fmt.Errorf("updating %s link on %s: %w", dir.name, ifname, err)
		}
		return nil
	}
	if f.takeOver(pin, ifindex, prog) {
		f.log.Info("took over attached program", "interface", ifname, "direction", dir.name)
		return nil
	}

	if !f.noTCX {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: dir.tcx})
		if err == nil {
			if err := l.Pin(pin); err != nil {
				l.Close()
				return fmt.Errorf("pinning %s link on %s: %w", dir.name, ifname, err)
			}
			f.links[pin] = l
			// A filter left by a daemon that ran without TCX would filter every packet
			// a second time; it goes only now that the TCX program is in place.
			if err := f.removeNetlinkFilters(ifindex, &dir); err != nil {
				f.log.Warn("removing old tc filter", "interface", ifname, "err", err)
			}
			return nil
		}
		f.log.Info("tcx refused, using clsact", "interface", ifname, "direction", dir.name, "err", err)
	}
	if err := attachNetlink(ifindex, prog, dir, tcFilterName(f.pinPath, dir)); err != nil {
		return fmt.Errorf("attaching %s tc filter to %s: %w", dir.name, ifname, err)
	}
	return nil
}

// takeOver updates a link pinned by an earlier daemon to prog. A pinned link for another
// ifindex (the interface was recreated) is detached instead.
func (f *Filter) takeOver(pin string, ifindex int, prog *ebpf.Program) bool {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.log.Warn("loading pinned link", "pin", pin, "err", err)
			os.Remove(pin)
		}
		return false
	}
	info, err := l.Info()
	if err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
		if err = l.Update(prog); err == nil {
			f.links[pin] = l
			return true
		}
	}
	f.log.Warn("dropping stale pinned link", "pin", pin, "err", err)
	if err := unpinAndClose(l); err != nil {
		f.log.Warn("dropping stale pinned link", "pin", pin, "err", err)
	}
	return false
}

func attachNetlink(ifindex int, prog *ebpf.Program, dir direction, name string) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("adding clsact qdisc: %w", err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    dir.parent,
			Handle:    tcHandle,
			Priority:  tcPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("replacing bpf filter: %w", err)
	}
	return nil
}

// removeNetlinkFilters deletes this Filter's tc filters from one interface and direction,
// or from every interface of the namespace when ifindex is 0 and both when dir is nil.
func (f *Filter) removeNetlinkFilters(ifindex int, dir *direction) error {
	var links []netlink.Link
	if ifindex != 0 {
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("finding interface %d: %w", ifindex, err)
		}
		links = []netlink.Link{l}
	} else {
		var err error
		if links, err = netlink.LinkList(); err != nil {
			return fmt.Errorf("listing interfaces: %w", err)
		}
	}
	var errs []error
	for _, l := range links {
		for _, d := range []direction{ingress, egress} {
			if dir != nil && dir.name != d.name {
				continue
			}
			// Fails on interfaces without clsact: nothing of ours there.
			filters, err := netlink.FilterList(l, d.parent)
			if err != nil {
				continue
			}
			for _, flt := range filters {
				if bf, ok := flt.(*netlink.BpfFilter); ok && bf.Name == tcFilterName(f.pinPath, d) {
					if err := netlink.FilterDel(bf); err != nil {
						errs = append(errs, fmt.Errorf("deleting tc filter on %s: %w", l.Attrs().Name, err))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}
