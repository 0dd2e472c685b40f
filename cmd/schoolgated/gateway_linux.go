package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schoolgate/schoolgate/datapath/filter"
	"github.com/schoolgate/schoolgate/datapath/neigh"
	"github.com/schoolgate/schoolgate/datapath/netcfg"
	"github.com/schoolgate/schoolgate/datapath/nfq"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
	"github.com/schoolgate/schoolgate/webui"
)

// gatewayState is what the fast path's numbers mean under the configuration in force.
type gatewayState struct {
	cfg *config.Config
	cat *lists.Catalog
	ids map[string]uint16 // profile name → fast-path profile id (its index in cfg.Profiles)
}

// internalNets are the destinations a guest segment never reaches (besides every
// segment's own subnets): private, shared, link-local, loopback, multicast and ULA ranges.
var internalNets = []string{
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
	"127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4",
	"fc00::/7", "fe80::/10", "ff00::/8", "::1/128", "::/128",
}

// gateway is the packet path: the neighbour table, the interfaces and nftables table
// (netcfg), the eBPF fast path (filter) and the nfqueue slow path (nfq). It runs only when
// the configuration names a WAN.
type gateway struct {
	log     *slog.Logger
	pinPath string
	mu      sync.Mutex // guards net, replaced by apply, and serialises apply with status and close

	neigh  *neigh.Table
	net    *netcfg.Gateway
	filter *filter.Filter
	slow   *nfq.Slowpath
	state  atomic.Pointer[gatewayState]
}

func newGateway(cfg *config.Config, pinPath string, logger *slog.Logger) *gateway {
	if cfg.Appliance.WAN == "" {
		return nil
	}
	g := &gateway{log: logger.With("component", "gateway"), pinPath: pinPath}
	var ifaces []string
	for _, s := range cfg.Segments {
		ifaces = append(ifaces, segmentInterface(s))
	}
	g.neigh = neigh.New(neigh.Config{Logger: logger.With("component", "neigh"), Interfaces: ifaces})
	return g
}

func segmentInterface(s config.Segment) string {
	if s.Interface != "" {
		return s.Interface
	}
	return s.Trunk + "." + strconv.Itoa(s.VLAN)
}

// macs is what the policy engine asks for MAC addresses; nil without a gateway.
func (g *gateway) macs() policy.MACLookup {
	if g == nil {
		return nil
	}
	return g.neigh
}

// start sets up the interfaces and rules, attaches the fast path and starts the slow path.
func (g *gateway) start(ctx context.Context, cfg *config.Config, cat *lists.Catalog, engine *policy.Engine, events *eventlog.Log) error {
	if g == nil {
		return nil
	}
	if err := g.neigh.Start(ctx); err != nil {
		return err
	}
	var err error
	if g.filter, err = filter.New(filter.Config{PinPath: g.pinPath, Logger: g.log}); err != nil {
		return fmt.Errorf("loading the fast path: %w", err)
	}
	if err := g.apply(cfg, cat); err != nil {
		return err
	}
	if events != nil {
		go func() {
			if err := g.filter.ReadDrops(ctx, func(ev filter.DropEvent) { events.Record(g.dropEvent(ev)) }); err != nil {
				g.log.Warn("reading the fast path's drop events", "err", err)
			}
		}()
	}
	slow, err := nfq.New(nfq.Config{
		Queue: 0, Queues: queues(), Policy: engine, Flows: flowMap{g}, Events: events,
		FailOpen: cfg.Appliance.FailureMode == config.FailOpen,
		MarkMask: filter.MarkMask, MarkBlock: filter.MarkBlock, Logger: g.log,
		BlockPage: func(host string, d policy.Decision) []byte {
			return webui.BlockPage(g.state.Load().cfg.Appliance.Name, host, d, time.Now())
		},
	})
	if err != nil {
		return err
	}
	if err := slow.Start(ctx); err != nil {
		return fmt.Errorf("starting the slow path: %w", err)
	}
	g.mu.Lock()
	g.slow = slow
	g.mu.Unlock()
	g.log.Info("packet path running", "wan", cfg.Appliance.WAN, "queue_mode", g.net.QueueMode())
	return nil
}

// apply brings the interfaces, rules and fast-path maps in line with cfg and cat.
func (g *gateway) apply(cfg *config.Config, cat *lists.Catalog) error {
	if g == nil || cfg.Appliance.WAN == "" {
		return nil // no packet path, or one that only a restart can remove
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, dnsPort := splitHostPort(cfg.DNS.Listen)
	port, _ := strconv.Atoi(dnsPort)
	admin := map[string]bool{}
	for _, n := range cfg.HTTP.AdminSegments {
		admin[n] = true
	}
	var segs []netcfg.Segment
	internal := parsePrefixes(internalNets)
	for _, s := range cfg.Segments {
		ns := netcfg.Segment{Name: s.Name, Interface: s.Interface, Trunk: s.Trunk, VLAN: s.VLAN, Guest: s.Guest, Admin: admin[s.Name]}
		for _, gw := range s.Gateway {
			for _, sub := range s.Subnets {
				if sub.Contains(gw) {
					ns.Gateway = append(ns.Gateway, netip.PrefixFrom(gw, sub.Bits()))
					break
				}
			}
		}
		segs = append(segs, ns)
		internal = append(internal, s.Subnets...)
	}
	_, httpPort := splitHostPort(cfg.HTTP.Listen)
	hp, _ := strconv.Atoi(httpPort)
	nc, err := netcfg.New(netcfg.Config{
		WAN: cfg.Appliance.WAN, Segments: segs, DNSPort: uint16(port), AdminPorts: []uint16{uint16(hp)},
		Queue:    netcfg.Queue{Num: 0, Count: queues(), FailOpen: cfg.Appliance.FailureMode == config.FailOpen},
		MarkMask: filter.MarkMask, MarkQueue: filter.MarkQueue, MarkBlock: filter.MarkBlock,
		Logger: g.log,
	})
	if err != nil {
		return err
	}
	if err := nc.Apply(); err != nil {
		nc.Close()
		return fmt.Errorf("configuring the gateway: %w", err)
	}
	if g.net != nil {
		g.net.Close()
	}
	g.net = nc

	ids := map[string]uint16{}
	profiles := map[uint16]filter.Profile{}
	for i, p := range cfg.Profiles {
		id := uint16(i)
		ids[p.Name] = id
		fp := filter.Profile{BlockDoT: p.Bypass.BlockDoT == nil || *p.Bypass.BlockDoT}
		switch p.QUIC {
		case config.QUICBlock:
			fp.QUIC = filter.QUICBlock
		case config.QUICAllow:
			fp.QUIC = filter.QUICAllow
		}
		for _, s := range p.Bypass.VPNPorts {
			proto, num, err := config.ParsePort(s)
			if err != nil {
				continue // refused by Validate
			}
			pr := uint8(17)
			if proto == "tcp" {
				pr = 6
			}
			fp.VPNPorts = append(fp.VPNPorts, filter.Port{Proto: pr, Num: num})
		}
		profiles[id] = fp
	}
	devices := map[string]uint16{}
	for _, d := range cfg.Devices {
		if id, ok := ids[d.Profile]; ok && d.Profile != "" {
			devices[d.MAC] = id
		}
	}
	var blocked []filter.Blocked
	for _, p := range cfg.Profiles {
		for _, name := range p.Bypass.AddressLists {
			for _, pfx := range cat.Addresses[name] {
				blocked = append(blocked, filter.Blocked{Prefix: pfx, Profiles: 1 << ids[p.Name], Reason: filter.ReasonAddress})
			}
		}
	}
	g.state.Store(&gatewayState{cfg: cfg, cat: cat, ids: ids})
	return errors.Join(
		g.filter.SetProfiles(profiles),
		g.filter.SetDevices(devices),
		g.filter.SetInternal(internal),
		g.filter.SetBlocked(blocked),
		g.attach(cfg),
	)
}

func (g *gateway) attach(cfg *config.Config) error {
	ifs := g.net.Interfaces()
	for i, s := range cfg.Segments {
		seg := filter.Segment{ID: uint16(i + 1), Profile: g.state.Load().ids[s.Profile], Guest: s.Guest}
		if err := g.filter.AttachSegment(ifs[s.Name], seg); err != nil {
			return err
		}
	}
	return g.filter.AttachWAN(cfg.Appliance.WAN)
}

// queues is the number of nfqueue queues: one per CPU, the kernel spreading flows over
// them (fanout), each read by its own goroutine.
func queues() uint16 { return uint16(min(runtime.NumCPU(), 64)) }

func parsePrefixes(ss []string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// status reports the packet path as a component of /api/status, with its counters.
func (g *gateway) status(cfg *config.Config) (webui.Component, *webui.PacketPath) {
	c := webui.Component{Name: "packet path", State: "stopped"}
	if g == nil {
		return c, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.slow == nil || g.net == nil {
		c.Detail = "not started"
		return c, nil
	}
	pp := &webui.PacketPath{QueueMode: g.net.QueueMode()}
	stats, err := g.filter.Stats()
	if err != nil {
		c.State, c.Detail = "degraded", "reading fast-path counters: "+err.Error()
	}
	names := map[uint16]string{filter.WANID: "wan"}
	for i, s := range cfg.Segments {
		names[uint16(i+1)] = s.Name
	}
	for id, name := range names {
		ct, ok := stats[id]
		if !ok && id == filter.WANID {
			continue
		}
		pc := webui.PacketCounters{Segment: name, Packets: ct.Packets, Bytes: ct.Bytes, HandOffs: ct.HandOffs, FlowHits: ct.FlowHits, EventsLost: ct.EventsLost}
		for r, n := range ct.Drops {
			if n > 0 {
				if pc.Drops == nil {
					pc.Drops = map[string]uint64{}
				}
				pc.Drops[r.String()] = n
			}
		}
		pp.Segments = append(pp.Segments, pc)
	}
	slices.SortFunc(pp.Segments, func(a, b webui.PacketCounters) int { return strings.Compare(a.Segment, b.Segment) })
	s := g.slow.Stats()
	pp.SlowPath = webui.SlowPathCounters{Packets: s.Packets, Flows: s.Flows, Allowed: s.Allowed, Blocked: s.Blocked,
		Unnamed: s.Unnamed, Timeouts: s.Timeouts, Overloads: s.Overloads, BlockPages: s.BlockPages, Errors: s.Errors, KernelDropped: s.KernelDropped}
	if c.State == "stopped" {
		c.State = "running"
		c.Detail = fmt.Sprintf("gateway to %s, %d flows judged by name", cfg.Appliance.WAN, s.Flows)
		switch {
		case s.KernelDropped > 0:
			c.State, c.Detail = "degraded", fmt.Sprintf("%d packets not judged: the slow path's queue overflowed or the daemon was not reading (failure mode %s)", s.KernelDropped, cfg.Appliance.FailureMode)
		case s.Overloads > 0:
			c.State, c.Detail = "degraded", fmt.Sprintf("%d flows judged by the failure mode: too many handshakes held at once", s.Overloads)
		case s.Errors > 0:
			c.State, c.Detail = "degraded", fmt.Sprintf("%d verdicts could not be written", s.Errors)
		}
	}
	return c, pp
}

// close stops the packet path. A clean stop removes the rules and programs; the kernel
// state is left in place only when the daemon dies without closing (kill -9), so that
// established flows keep their verdicts until a new daemon takes over.
func (g *gateway) close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	if g.slow != nil {
		errs = append(errs, g.slow.Close())
	}
	if g.filter != nil {
		errs = append(errs, g.filter.Remove())
	}
	if g.net != nil {
		errs = append(errs, g.net.Remove(), g.net.Close())
	}
	errs = append(errs, g.neigh.Close())
	return errors.Join(errs...)
}

// dropEvent turns a fast-path drop (at most one a minute per client, server and protocol)
// into an event of source "ip": the server's address and port as the name, the reason
// as the rule, and for listed addresses the list.
func (g *gateway) dropEvent(ev filter.DropEvent) eventlog.Event {
	st := g.state.Load()
	e := eventlog.Event{
		Time: ev.Time, Client: ev.Client.Addr(), Source: "ip", Name: ev.Server.String(),
		Action: "block", Tier: string(policy.TierProfile), Count: 1,
	}
	if len(ev.MAC) == 6 {
		e.MAC = ev.MAC.String()
	}
	if i := int(ev.Segment) - 1; i >= 0 && i < len(st.cfg.Segments) {
		e.Segment = st.cfg.Segments[i].Name
	}
	if int(ev.Profile) < len(st.cfg.Profiles) {
		e.Profile = st.cfg.Profiles[ev.Profile].Name
	}
	for _, d := range st.cfg.Devices {
		if strings.EqualFold(d.MAC, e.MAC) {
			e.Device = d.Name
		}
	}
	proto := "udp"
	if ev.Proto == 6 {
		proto = "tcp"
	}
	port := fmt.Sprintf("%s/%d", proto, ev.Server.Port())
	switch ev.Reason {
	case filter.ReasonGuest:
		e.Tier, e.Rule = "guest", "guest segment: internal address"
	case filter.ReasonDoT:
		e.Category, e.Rule = "bypass", "DNS over TLS/QUIC "+port
	case filter.ReasonVPN:
		e.Category, e.Rule = "bypass", "VPN port "+port
	case filter.ReasonQUIC:
		e.Rule = "QUIC blocked for the profile"
	case filter.ReasonAddress:
		e.Category, e.Rule = "bypass", "listed address"
		if int(ev.Profile) < len(st.cfg.Profiles) {
		lists:
			for _, name := range st.cfg.Profiles[ev.Profile].Bypass.AddressLists {
				for _, p := range st.cat.Addresses[name] {
					if p.Contains(ev.Server.Addr()) {
						e.List, e.Rule = name, p.String()
						break lists
					}
				}
			}
		}
	default:
		e.Rule = ev.Reason.String() + " " + port
	}
	return e
}

// flowMap writes the slow path's verdicts into the fast path's flow map.
type flowMap struct{ g *gateway }

func (m flowMap) SetFlowVerdict(f nfq.Flow, allow bool, d policy.Decision) error {
	return m.g.filter.SetVerdict(filter.FlowKey{Client: f.Client, Server: f.Server, Proto: f.Proto}, allow, m.g.state.Load().ids[d.ProfileName()])
}
