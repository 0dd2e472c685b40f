package netcfg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Flags of the kernel's struct xt_NFQ_info_v3 (linux/netfilter/xt_NFQUEUE.h).
const (
	nfqFlagBypass    = 0x1
	nfqFlagCPUFanout = 0x2
)

const (
	portDNS       = 53
	portDHCP      = 67
	icmpv6RS      = 133 // router solicitation
	icmpv6NS      = 135 // neighbour solicitation
	icmpv6NA      = 136 // neighbour advertisement
	natProtoRange = 0x2 // NF_NAT_RANGE_PROTO_SPECIFIED
)

// replaceTable swaps in the whole table in one batch. This kernel refuses nft's
// native queue statement (the batch fails and nothing changes), so a refused
// batch is retried with the xtables NFQUEUE target, and the accepted mode is
// remembered so later Applies go straight to it.
func (g *Gateway) replaceTable() error {
	modes := []string{QueueModeNative, QueueModeXTCompat}
	if g.queueMode == QueueModeXTCompat {
		modes = []string{QueueModeXTCompat, QueueModeNative}
	}
	var errs []error
	for _, mode := range modes {
		g.buildTable(mode)
		err := g.nft.Flush()
		if err == nil {
			if g.queueMode != mode {
				g.log.Info("nftables table installed", "table", g.cfg.Table, "queue_mode", mode)
			}
			g.queueMode = mode
			return nil
		}
		g.log.Debug("nftables batch refused", "table", g.cfg.Table, "queue_mode", mode, "err", err)
		errs = append(errs, fmt.Errorf("%s queue: %w", mode, err))
	}
	return fmt.Errorf("installing nftables table %s: %w", g.cfg.Table, errors.Join(errs...))
}

func (g *Gateway) deleteTable() error {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: g.cfg.Table}
	// Adding first makes the delete succeed whether or not the table exists.
	g.nft.AddTable(t)
	g.nft.DelTable(t)
	if err := g.nft.Flush(); err != nil {
		return fmt.Errorf("deleting nftables table %s: %w", g.cfg.Table, err)
	}
	return nil
}

// buildTable queues the batch that replaces our table; nothing is sent until Flush.
func (g *Gateway) buildTable(queueMode string) {
	c, cfg := g.nft, g.cfg
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: cfg.Table}
	// add+delete+add: the table is recreated from scratch whether or not it
	// existed, inside the same transaction as its new rules.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)

	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
	}
	add := func(ch *nftables.Chain, parts ...[]expr.Any) {
		var exprs []expr.Any
		for _, p := range parts {
			exprs = append(exprs, p...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}

	// Anti-spoofing: a packet from a segment must come from an address routed back through
	// that segment (fib saddr . iif oif missing drop, strict reverse-path filtering for IPv4
	// and IPv6). The policy engine finds a client's segment from its address, so a pupil who
	// sets a staff address must not be taken for staff. The unspecified source (DHCP
	// discovery, IPv6 duplicate address detection) has no route and is let through.
	spoof := chain("antispoof", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	for _, s := range cfg.Segments {
		for _, fam := range []struct {
			proto       byte
			off, length uint32
		}{{unix.NFPROTO_IPV4, 12, 4}, {unix.NFPROTO_IPV6, 8, 16}} {
			add(spoof, ifname(expr.MetaKeyIIFNAME, s.ifname()), nfproto(fam.proto),
				[]expr.Any{
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.off, Len: fam.length},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, fam.length)},
					&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
				},
				[]expr.Any{&expr.Counter{}}, verdict(expr.VerdictDrop))
		}
	}

	pre := chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	for _, s := range cfg.Segments {
		for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			add(pre, ifname(expr.MetaKeyIIFNAME, s.ifname()), l4proto(proto), dport(portDNS), redirect(cfg.DNSPort))
		}
	}

	post := chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	add(post, ifname(expr.MetaKeyOIFNAME, cfg.WAN), []expr.Any{&expr.Masq{}})

	fwd := chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	// Guest isolation is also enforced by the fast path; this catches
	// anything that reaches routing before it is attached or if it fails.
	for _, guest := range cfg.Segments {
		if !guest.Guest {
			continue
		}
		for _, other := range cfg.Segments {
			if other.Name != guest.Name {
				add(fwd, ifname(expr.MetaKeyIIFNAME, guest.ifname()), ifname(expr.MetaKeyOIFNAME, other.ifname()), verdict(expr.VerdictDrop))
			}
		}
	}
	// A TCP packet is judged only inside a connection whose handshake the gateway saw:
	// a forged mid-stream request (say, from a spoofed classmate's address) is dropped
	// before the slow path can record it against someone else. A SYN carrying data (TCP
	// Fast Open) opens its connection and is judged as it is.
	add(fwd, markIs(cfg.MarkMask, cfg.MarkQueue), l4proto(unix.IPPROTO_TCP), ctStateNot(expr.CtStateBitESTABLISHED),
		tcpFlagsClear(tcpFlagSYN), verdict(expr.VerdictDrop))
	add(fwd, markIs(cfg.MarkMask, cfg.MarkQueue), queue(cfg.Queue, queueMode))
	add(fwd, markIs(cfg.MarkMask, cfg.MarkBlock), l4proto(unix.IPPROTO_TCP), []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})
	add(fwd, markIs(cfg.MarkMask, cfg.MarkBlock), verdict(expr.VerdictDrop))

	in := chain("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
	// From the internet: neither the web UI, the block page nor the resolver (an open
	// resolver is an amplifier). Answers to the appliance's own queries come from port 53,
	// not to it.
	wan := ifname(expr.MetaKeyIIFNAME, cfg.WAN)
	for _, p := range slices.Concat(cfg.AdminPorts, cfg.LANPorts) {
		add(in, wan, l4proto(unix.IPPROTO_TCP), dport(p), verdict(expr.VerdictDrop))
	}
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		add(in, wan, l4proto(proto), dport(cfg.DNSPort), verdict(expr.VerdictDrop))
	}
	for _, s := range cfg.Segments {
		iif := ifname(expr.MetaKeyIIFNAME, s.ifname())
		if s.Guest {
			add(in, iif, ctEstablishedOrRelated(), verdict(expr.VerdictAccept))
			add(in, iif, l4proto(unix.IPPROTO_UDP), dport(cfg.DNSPort), verdict(expr.VerdictAccept))
			add(in, iif, l4proto(unix.IPPROTO_TCP), dport(cfg.DNSPort), verdict(expr.VerdictAccept))
			add(in, iif, l4proto(unix.IPPROTO_UDP), dport(portDHCP), verdict(expr.VerdictAccept))
			for _, typ := range []byte{icmpv6RS, icmpv6NS, icmpv6NA} {
				add(in, iif, icmpv6Type(typ), verdict(expr.VerdictAccept))
			}
			add(in, iif, verdict(expr.VerdictDrop))
			continue
		}
		if !s.Admin {
			for _, p := range cfg.AdminPorts {
				add(in, iif, l4proto(unix.IPPROTO_TCP), dport(p), verdict(expr.VerdictDrop))
			}
		}
	}
}

// ifname matches an interface name the way nft does: NUL-padded to IFNAMSIZ.
func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// markIs matches meta mark & mask == value; marks sit in registers in host byte order.
func markIs(mask, value uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, value)},
	}
}

func l4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// dport matches the TCP or UDP destination port; l4proto must come first.
func dport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

func nfproto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

func icmpv6Type(typ byte) []expr.Any {
	return append(nfproto(unix.NFPROTO_IPV6),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
	)
}

const tcpFlagSYN = 0x02

// tcpFlagsClear matches TCP packets without any of flags; l4proto must come first.
func tcpFlagsClear(flags byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{flags}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
	}
}

// ctStateNot matches packets whose conntrack state lacks bit (or that have none).
func ctStateNot(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, bit), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
	}
}

func ctEstablishedOrRelated() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
			Xor:  make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func redirect(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
		&expr.Redir{RegisterProtoMin: 1, Flags: natProtoRange},
	}
}

func verdict(kind expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: kind}}
}

// queue hands the packet to nfqueue q, either with nft's own statement or
// with the xtables NFQUEUE target (revision 3) through nft_compat.
func queue(q Queue, mode string) []expr.Any {
	if mode == QueueModeNative {
		flags := expr.QueueFlagFanout
		if q.FailOpen {
			flags |= expr.QueueFlagBypass
		}
		return []expr.Any{&expr.Queue{Num: q.Num, Total: q.Count, Flag: flags}}
	}
	return []expr.Any{&expr.Target{Name: "NFQUEUE", Rev: 3, Info: nfqueueInfoV3(q)}}
}

// nfqueueInfoV3 packs struct xt_NFQ_info_v3 {u16 queuenum, queues_total,
// flags} in host byte order, padded to 8 bytes as x_tables requires
// (XT_ALIGN). xt has no typed Info for NFQUEUE, so it travels as raw bytes.
func nfqueueInfoV3(q Queue) *xt.Unknown {
	flags := uint16(nfqFlagCPUFanout)
	if q.FailOpen {
		flags |= nfqFlagBypass
	}
	b := make([]byte, 0, 8)
	b = binary.NativeEndian.AppendUint16(b, q.Num)
	b = binary.NativeEndian.AppendUint16(b, q.Count)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = append(b, 0, 0)
	info := xt.Unknown(b)
	return &info
}
