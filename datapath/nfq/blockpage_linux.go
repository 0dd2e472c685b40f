package nfq

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/schoolgate/schoolgate/firmware/policy"
)

// injector sends block pages, IP packets we built ourselves with headers, through the
// appliance's own output path: raw IPPROTO_RAW sockets (for IPv4 this implies IP_HDRINCL;
// for IPv6 the kernel sets the same "header included" flag on IPPROTO_RAW sockets). The
// kernel leaves the source address alone, so the page leaves as if from the server.
//
// The page passes conntrack and our nftables table in OUTPUT and POSTROUTING. It matches
// no conntrack entry (the flow's reply direction is the server to the WAN address), and
// conntrack never takes a FIN as the start of a connection, so it stays untracked: no NAT
// touches it (the segment interface is not masqueraded anyway) and no rule of ours drops
// it. A table that drops "ct state invalid" in OUTPUT would; ours has none.
type injector struct {
	fd4, fd6 int // -1 when the family could not be opened
}

// openInjector opens the raw sockets in the caller's network namespace. A family that
// cannot be opened is logged and left out: its blocked requests get the reset instead.
func openInjector(log *slog.Logger) *injector {
	in := &injector{fd4: -1, fd6: -1}
	for _, fam := range []struct {
		af   int
		fd   *int
		name string
	}{{unix.AF_INET, &in.fd4, "IPv4"}, {unix.AF_INET6, &in.fd6, "IPv6"}} {
		fd, err := unix.Socket(fam.af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			log.Warn("opening raw socket for block pages; blocked HTTP gets a reset", "family", fam.name, "err", err)
			continue
		}
		*fam.fd = fd
	}
	return in
}

// send hands one IP packet to the kernel for dst, to leave by interface oif (an index)
// and no other (IP_PKTINFO / IPV6_PKTINFO). It never blocks: a full socket buffer is an
// error, and the caller falls back to the reset.
func (in *injector) send(pkt []byte, dst netip.Addr, oif int) error {
	switch {
	case oif <= 0:
		return fmt.Errorf("no interface to send to %v by", dst)
	case dst.Is4() && in.fd4 >= 0:
		oob := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: int32(oif)})
		return unix.Sendmsg(in.fd4, pkt, oob, &unix.SockaddrInet4{Addr: dst.As4()}, unix.MSG_DONTWAIT)
	case dst.Is6() && !dst.Is4In6() && in.fd6 >= 0:
		oob := unix.PktInfo6(&unix.Inet6Pktinfo{Ifindex: uint32(oif)})
		return unix.Sendmsg(in.fd6, pkt, oob, &unix.SockaddrInet6{Addr: dst.As16()}, unix.MSG_DONTWAIT)
	}
	return fmt.Errorf("no raw socket for %v", dst)
}

func (in *injector) close() error {
	var errs []error
	for _, fd := range []*int{&in.fd4, &in.fd6} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// sendBlockPage answers a blocked plain-HTTP request with Config.BlockPage's page in the
// server's place. It reports whether the page went out; when it did not, the caller
// resets the client as without a block page.
//
// It must run before the flow's verdict is in the kernel's flow map: the fast path drops
// everything a silently dropped flow's (FlowDrop) server sends the client, and the page is
// such a packet. Sending is synchronous through the segment interface's egress program
// (which runs before any qdisc), so once send returns the verdict may be written.
func (s *Slowpath) sendBlockPage(o *outcome, d policy.Decision) bool {
	if s.inj == nil || s.cfg.BlockPage == nil || !wantsBlockPage(o) {
		return false
	}
	pkt, err := blockPagePacket(o.flow, o.req, s.cfg.BlockPage(o.name, d))
	if err == nil {
		// Only back out of the interface the request came in on. The request's source
		// address is the client's word: without this, a pupil could spoof a request "from"
		// an address on the internet and have the appliance send it a page twenty times
		// the request's size. Bound to the segment, a spoofed page cannot leave it.
		err = s.inj.send(pkt, o.flow.Client.Addr(), o.req.inDev)
	}
	if err != nil {
		s.cnt.errors.Add(1)
		s.cfg.Logger.Warn("sending block page; resetting instead", "flow", o.flow, "err", err)
		return false
	}
	s.cnt.blockPages.Add(1)
	return true
}
