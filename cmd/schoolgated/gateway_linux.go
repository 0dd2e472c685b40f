package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
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
	"github.com/schoolgate/schoolgate/firmware/devices"
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
//
// The network side (segments and their interfaces, the WAN, the DNS and web UI ports, the
// failure mode) is set up once, at start; a reload that changes it is reported as needing a
// restart. Profiles, devices and lists are applied on every reload and list update.
type gateway struct {
	log     *slog.Logger
	pinPath string
	neigh   *neigh.Table

	mu        sync.Mutex // guards the fields below, and serialises start, apply, status and close
	net       *netcfg.Gateway
	netKey    string // the network settings in force (see networkKey)
	adminPort uint16
	segIDs    map[string]uint16 // segment name → fast-path segment id, fixed at start
	segNames  map[uint16]string // and back, with the WAN
	filter    *filter.Filter
	slow      *nfq.Slowpath
	started   bool
	pinned    bool   // a previous daemon's pinned state was there at start
	restart   string // why a reload needs a restart to take full effect; "" when none
	kd        kernelDrops
	drops     dropLimiter

	state atomic.Pointer[gatewayState] // read by the slow path's and drop events' callbacks
}

// kernelDrops remembers when the kernel last dropped (or passed unjudged) queued packets.
type kernelDrops struct {
	seen uint64
	at   time.Time
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

// sightings are the neighbour table's devices, with their segments, for the device
// inventory.
func (g *gateway) sightings(context.Context) ([]devices.Sighting, error) {
	st := g.state.Load()
	if st == nil {
		return nil, nil
	}
	segOf := map[string]string{}
	for _, s := range st.cfg.Segments {
		segOf[segmentInterface(s)] = s.Name
	}
	var out []devices.Sighting
	for _, e := range g.neigh.Entries() {
		out = append(out, devices.Sighting{MAC: e.MAC, Addr: e.Addr, Segment: segOf[e.Interface], Time: e.LastSeen})
	}
	return out, nil
}

// macs is what the policy engine asks for MAC addresses; nil without a gateway.
func (g *gateway) macs() policy.MACLookup {
	if g == nil {
		return nil
	}
	return g.neigh
}

// start sets up the packet path: the fast path's programs, the slow path's queues (bound
// before any rule sends packets to them), the interfaces and nftables table, then the
// maps. adminPort is the web UI's bound port, which only admin segments may reach.
//
// If start fails, close leaves what a previous daemon pinned in place (so its verdicts and
// rules keep enforcing, and new flows meet the failure mode), but removes everything when
// there was nothing before: a half-built gateway must not forward unfiltered.
func (g *gateway) start(ctx context.Context, cfg *config.Config, cat *lists.Catalog, engine *policy.Engine, events *eventlog.Log, adminPort uint16) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.neigh.Start(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(g.pinPath); err == nil {
		g.pinned = true
	}
	f, err := filter.New(filter.Config{PinPath: g.pinPath, Logger: g.log})
	if err != nil {
		return fmt.Errorf("loading the fast path: %w", err)
	}
	g.filter = f
	g.slow, err = nfq.New(nfq.Config{
		Queue: 0, Queues: queues(), Policy: engine, Flows: flowMap{g}, Events: events,
		FailOpen: cfg.Appliance.FailureMode == config.FailOpen,
		MarkMask: filter.MarkMask, MarkBlock: filter.MarkBlock, Logger: g.log,
		BlockPage: func(host string, d policy.Decision) []byte {
			cfg := g.state.Load().cfg
			return webui.BlockPage(cfg.Appliance.Name, host, reviewURL(cfg, d.Segment, host), d, time.Now())
		},
	})
	if err != nil {
		return err
	}
	g.segIDs, g.segNames = map[string]uint16{}, map[uint16]string{filter.WANID: "wan"}
	for i, s := range cfg.Segments {
		g.segIDs[s.Name] = uint16(i + 1)
		g.segNames[uint16(i+1)] = s.Name
	}
	// The state is needed by the slow path's callbacks from its first packet.
	ids, _ := profileIDs(cfg)
	g.state.Store(&gatewayState{cfg: cfg, cat: cat, ids: ids})
	if err := g.slow.Start(ctx); err != nil {
		return fmt.Errorf("starting the slow path: %w", err)
	}
	netCfg := g.networkConfig(cfg, adminPort)
	if g.net, err = netcfg.New(netCfg); err != nil {
		return err
	}
	g.netKey, g.adminPort = networkKey(netCfg), adminPort
	if err := g.net.Apply(); err != nil {
		return fmt.Errorf("configuring the gateway: %w", err)
	}
	if err := g.applyMaps(cfg, cat); err != nil {
		return err
	}
	ifs := g.net.Interfaces()
	for _, s := range cfg.Segments {
		seg := filter.Segment{ID: g.segIDs[s.Name], Profile: ids[s.Profile], Guest: s.Guest}
		if err := g.filter.AttachSegment(ifs[s.Name], seg); err != nil {
			return err
		}
	}
	if err := g.filter.AttachWAN(cfg.Appliance.WAN); err != nil {
		return err
	}
	if events != nil {
		go func() {
			if err := f.ReadDrops(ctx, func(ev filter.DropEvent) {
				if e, ok := g.dropEvent(ev); ok {
					events.Record(e)
				}
			}); err != nil {
				g.log.Warn("reading the fast path's drop events", "err", err)
			}
		}()
	}
	g.started = true
	g.log.Info("packet path running", "wan", cfg.Appliance.WAN, "queue_mode", g.net.QueueMode(), "queues", queues())
	return nil
}

// networkConfig is netcfg's configuration for cfg.
func (g *gateway) networkConfig(cfg *config.Config, adminPort uint16) netcfg.Config {
	_, dnsPort := splitHostPort(cfg.DNS.Listen)
	port, _ := strconv.Atoi(dnsPort)
	admin := map[string]bool{}
	for _, n := range cfg.HTTP.AdminSegments {
		admin[n] = true
	}
	var segs []netcfg.Segment
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
	}
	var lan []uint16
	if cfg.HTTP.BlockPage != "" {
		_, bp := splitHostPort(cfg.HTTP.BlockPage)
		if n, err := strconv.Atoi(bp); err == nil && n > 0 && n < 65536 {
			lan = append(lan, uint16(n))
		}
	}
	return netcfg.Config{
		WAN: cfg.Appliance.WAN, Segments: segs, DNSPort: uint16(port), AdminPorts: []uint16{adminPort}, LANPorts: lan,
		Queue:    netcfg.Queue{Num: 0, Count: queues(), FailOpen: cfg.Appliance.FailureMode == config.FailOpen},
		MarkMask: filter.MarkMask, MarkQueue: filter.MarkQueue, MarkBlock: filter.MarkBlock,
		Logger: g.log,
	}
}

// networkKey sums up the network settings, to tell whether a reload changed them.
func networkKey(c netcfg.Config) string {
	c.Logger = nil
	return fmt.Sprintf("%+v", c)
}

// apply brings the fast path's maps in line with a reloaded configuration or updated
// lists. Changes to the network side are not applied: they are logged and shown in the
// status as needing a restart.
func (g *gateway) apply(cfg *config.Config, cat *lists.Catalog) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		return nil // start applies the configuration it is given
	}
	g.restart = ""
	if cfg.Appliance.WAN == "" {
		g.restart = "appliance.wan was removed"
	} else if networkKey(g.networkConfig(cfg, g.adminPort)) != g.netKey {
		g.restart = "segments, their interfaces or addresses, the WAN, admin segments, dns.listen or failure_mode changed"
	}
	if g.restart != "" {
		g.log.Warn("the packet path keeps its network settings until the next restart", "why", g.restart)
	}
	if err := g.applyMaps(cfg, cat); err != nil {
		return err
	}
	ifs := g.net.Interfaces()
	ids := g.state.Load().ids
	for _, s := range cfg.Segments {
		id, ok := g.segIDs[s.Name]
		if !ok {
			continue // a new segment: at the next restart
		}
		if err := g.filter.AttachSegment(ifs[s.Name], filter.Segment{ID: id, Profile: ids[s.Profile], Guest: s.Guest}); err != nil {
			return err
		}
	}
	return nil
}

// profileIDs numbers the profiles for the fast path: a profile's id is its index.
func profileIDs(cfg *config.Config) (map[string]uint16, error) {
	if len(cfg.Profiles) > filter.MaxProfiles {
		return nil, fmt.Errorf("the packet path supports %d profiles, the configuration has %d", filter.MaxProfiles, len(cfg.Profiles))
	}
	ids := map[string]uint16{}
	for i, p := range cfg.Profiles {
		ids[p.Name] = uint16(i)
	}
	return ids, nil
}

// applyMaps writes the profiles, devices, internal ranges and blocked addresses of cfg and
// cat into the fast path's maps; the state the callbacks read changes once they are in.
func (g *gateway) applyMaps(cfg *config.Config, cat *lists.Catalog) error {
	ids, err := profileIDs(cfg)
	if err != nil {
		return err
	}
	profiles := map[uint16]filter.Profile{}
	for _, p := range cfg.Profiles {
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
		profiles[ids[p.Name]] = fp
	}
	devices := map[string]uint16{}
	for _, d := range cfg.Devices {
		if id, ok := ids[d.Profile]; ok && d.Profile != "" {
			devices[d.MAC] = id
		}
	}
	internal := parsePrefixes(internalNets)
	for _, s := range cfg.Segments {
		internal = append(internal, s.Subnets...)
	}
	var blocked []filter.Blocked
	for _, p := range cfg.Profiles {
		for _, name := range p.Bypass.AddressLists {
			for _, pfx := range cat.Addresses[name] {
				blocked = append(blocked, filter.Blocked{Prefix: pfx, Profiles: 1 << ids[p.Name], Reason: filter.ReasonAddress})
			}
		}
	}
	for _, err := range []error{
		g.filter.SetProfiles(profiles), g.filter.SetDevices(devices),
		g.filter.SetInternal(internal), g.filter.SetBlocked(blocked),
	} {
		if err != nil {
			return err
		}
	}
	g.state.Store(&gatewayState{cfg: cfg, cat: cat, ids: ids})
	return nil
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
func (g *gateway) status() (webui.Component, *webui.PacketPath) {
	c := webui.Component{Name: "packet path", State: "stopped"}
	if g == nil {
		return c, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		c.Detail = "not started"
		return c, nil
	}
	pp := &webui.PacketPath{QueueMode: g.net.QueueMode()}
	stats, err := g.filter.Stats()
	if err != nil {
		c.State, c.Detail = "degraded", "reading fast-path counters: "+err.Error()
	}
	for id, name := range g.segNames {
		ct := stats[id]
		pc := webui.PacketCounters{Segment: name, Packets: ct.Packets, Bytes: ct.Bytes,
			HandOffs: ct.HandOffs, FlowHits: ct.FlowHits, EventsLost: ct.EventsLost}
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
		Unnamed: s.Unnamed, Timeouts: s.Timeouts, Overloads: s.Overloads, BlockPages: s.BlockPages, Errors: s.Errors,
		KernelDropped: s.KernelDropped, DropEventsSuppressed: g.drops.suppressed.Load()}
	now := time.Now()
	if s.KernelDropped > g.kd.seen {
		g.kd = kernelDrops{seen: s.KernelDropped, at: now}
	}
	if c.State == "stopped" {
		st := g.state.Load()
		c.State, c.Detail = "running", fmt.Sprintf("gateway to %s, %d flows judged by name", st.cfg.Appliance.WAN, s.Flows)
		switch {
		case !g.kd.at.IsZero() && now.Sub(g.kd.at) < recentTrouble:
			c.State, c.Detail = "degraded", fmt.Sprintf("packets not judged in the last %v: the slow path's queue overflowed or the daemon was not reading (failure mode %s); %d since start",
				recentTrouble, st.cfg.Appliance.FailureMode, s.KernelDropped)
		case s.Errors > 0:
			c.State, c.Detail = "degraded", fmt.Sprintf("%d verdicts could not be written", s.Errors)
		case g.restart != "":
			c.State, c.Detail = "degraded", "restart needed: "+g.restart
		case s.Overloads > 0:
			c.Detail += fmt.Sprintf("; %d judged by the failure mode when too many handshakes were held at once", s.Overloads)
		}
	}
	return c, pp
}

// recentTrouble is how long kernel drops keep the packet path shown as degraded.
const recentTrouble = 10 * time.Minute

// close stops the packet path. A clean stop removes the rules and programs. After a failed
// start, what a previous daemon pinned stays (its verdicts and rules keep enforcing, new
// flows meet the failure mode) unless there was none: then everything goes, so that a
// half-built gateway does not forward unfiltered. Only a daemon that dies without closing
// (kill -9) leaves its own state in place, for the next one to take over.
func (g *gateway) close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	remove := g.started || !g.pinned
	var errs []error
	if g.slow != nil {
		errs = append(errs, g.slow.Close())
	}
	if g.filter != nil {
		if remove {
			errs = append(errs, g.filter.Remove())
		} else {
			errs = append(errs, g.filter.Close())
		}
	}
	if g.net != nil {
		if remove {
			errs = append(errs, g.net.Remove())
		}
		errs = append(errs, g.net.Close())
	}
	errs = append(errs, g.neigh.Close())
	return errors.Join(errs...)
}

// dropLimiter keeps the event log readable when a device hammers at blocked ports or
// addresses (a port scan, a VPN client trying every server): at most dropEventsPerMinute
// events a minute for one client and reason; the rest are counted. The kernel has already
// reduced the events to one a minute per client, server and protocol.
type dropLimiter struct {
	mu         sync.Mutex
	window     time.Time
	seen       map[dropKey]int
	suppressed atomic.Uint64
}

type dropKey struct {
	client netip.Addr
	reason filter.Reason
}

const dropEventsPerMinute = 10

func (l *dropLimiter) allow(k dropKey, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Minute || l.seen == nil {
		l.window, l.seen = now, map[dropKey]int{}
	}
	l.seen[k]++
	if l.seen[k] > dropEventsPerMinute {
		l.suppressed.Add(1)
		return false
	}
	return true
}

// dropEvent turns a fast-path drop into an event of source "ip": the server's address and
// port as the name, the reason as the rule, and for listed addresses the list. It reports
// false when the limiter holds the event back.
func (g *gateway) dropEvent(ev filter.DropEvent) (eventlog.Event, bool) {
	if !g.drops.allow(dropKey{ev.Client.Addr(), ev.Reason}, time.Now()) {
		return eventlog.Event{}, false
	}
	st := g.state.Load()
	e := eventlog.Event{
		Time: ev.Time, Client: ev.Client.Addr(), Source: "ip", Name: ev.Server.String(),
		Action: "block", Tier: string(policy.TierProfile), Segment: g.segNames[ev.Segment], Count: 1,
	}
	if len(ev.MAC) == 6 {
		e.MAC = ev.MAC.String()
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
	return e, true
}

// flowMap writes the slow path's verdicts into the fast path's flow map.
type flowMap struct{ g *gateway }

func (m flowMap) SetFlowVerdict(f nfq.Flow, v nfq.FlowVerdict, d policy.Decision) error {
	var fv filter.Verdict // an unknown verdict stays 0, which SetVerdict rejects
	switch v {
	case nfq.FlowAllow:
		fv = filter.VerdictAllow
	case nfq.FlowBlock:
		fv = filter.VerdictBlock // reset
	case nfq.FlowDrop:
		fv = filter.VerdictDrop // silent: the block page has answered the flow
	}
	return m.g.filter.SetVerdict(filter.FlowKey{Client: f.Client, Server: f.Server, Proto: f.Proto}, fv, m.g.state.Load().ids[d.ProfileName()])
}

// reviewURL is the block page server's page for host on the client's segment, where the
// review form is; "" without a block page server or a gateway address.
func reviewURL(cfg *config.Config, segment, host string) string {
	if cfg.HTTP.BlockPage == "" {
		return ""
	}
	_, port := splitHostPort(cfg.HTTP.BlockPage)
	for _, s := range cfg.Segments {
		if s.Name != segment || len(s.Gateway) == 0 || s.Guest {
			continue
		}
		addr := s.Gateway[0].String()
		if s.Gateway[0].Is6() {
			addr = "[" + addr + "]"
		}
		if port != "80" {
			addr += ":" + port
		}
		return "http://" + addr + "/?site=" + url.QueryEscape(host)
	}
	return ""
}
