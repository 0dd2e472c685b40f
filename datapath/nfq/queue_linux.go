package nfq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// Slowpath reads the queues and judges flows.
type Slowpath struct {
	cfg    Config
	queues []*nfqueue.Nfqueue
	cnt    counters
	inj    *injector // raw sockets for block pages; nil without Config.BlockPage

	mu     sync.Mutex // guards tr and recent: a flow's packets may arrive on any queue
	tr     *tracker
	recent map[Flow]recentVerdict

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// recentVerdict remembers a decided flow for the packets that were marked before the
// kernel's flow map had the verdict (QUIC clients send several datagrams at once).
type recentVerdict struct {
	v  FlowVerdict
	at time.Time
}

const recentFor = 10 * time.Second

// New checks the configuration; Start opens the queues.
func New(cfg Config) (*Slowpath, error) {
	cfg.defaults()
	if cfg.Policy == nil || cfg.Flows == nil {
		return nil, errors.New("nfq: Policy and Flows are required")
	}
	return &Slowpath{cfg: cfg, tr: newTracker(cfg.HoldTimeout, cfg.MaxFlows), recent: make(map[Flow]recentVerdict)}, nil
}

// Start binds the queues in the caller's network namespace and starts reading them.
func (s *Slowpath) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	if s.cfg.BlockPage != nil {
		s.inj = openInjector(s.cfg.Logger)
	}
	flags := uint32(0)
	if s.cfg.FailOpen {
		flags |= nfqueue.NfQaCfgFlagFailOpen
	}
	for i := range s.cfg.Queues {
		num := s.cfg.Queue + i
		q, err := nfqueue.Open(&nfqueue.Config{
			NfQueue: num, MaxPacketLen: 0xffff, MaxQueueLen: s.cfg.MaxQueueLen,
			Copymode: nfqueue.NfQnlCopyPacket, Flags: flags, WriteTimeout: time.Second,
		})
		if err != nil {
			s.Close()
			return fmt.Errorf("opening nfqueue %d: %w", num, err)
		}
		// Under load the kernel may drop our socket's messages (ENOBUFS); we would rather
		// carry on than stop reading.
		_ = q.SetOption(netlink.NoENOBUFS, true)
		s.queues = append(s.queues, q)
		idx := uint64(len(s.queues) - 1)
		dec := newDecoder()
		err = q.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
			s.handle(idx, dec, a)
			return 0
		}, func(err error) int {
			if ctx.Err() != nil {
				return 1
			}
			s.cfg.Logger.Warn("reading nfqueue", "queue", num, "err", err)
			return 0
		})
		if err != nil {
			s.Close()
			return fmt.Errorf("registering on nfqueue %d: %w", num, err)
		}
	}
	s.wg.Add(1)
	go s.sweep(ctx)
	return nil
}

// handle is called on a queue's reading goroutine for each packet.
func (s *Slowpath) handle(qi uint64, dec *decoder, a nfqueue.Attribute) {
	s.cnt.packets.Add(1)
	if a.PacketID == nil {
		return
	}
	id := qi<<32 | uint64(*a.PacketID)
	var payload []byte
	if a.Payload != nil {
		payload = *a.Payload
	}
	p, err := dec.decode(payload)
	if err != nil {
		// The fast path marks only TCP and UDP packets with ports; anything else here is
		// unexpected, and judged by the failure mode.
		v := FlowBlock
		if s.cfg.FailOpen {
			v = FlowAllow
		}
		s.release(id, Flow{}, v)
		return
	}
	if a.InDev != nil {
		p.inDev = int(*a.InDev)
	}
	mac := ""
	if a.HwAddr != nil && len(*a.HwAddr) == 6 {
		mac = net.HardwareAddr(*a.HwAddr).String()
	}
	now := time.Now()
	s.mu.Lock()
	if v, ok := s.recent[p.flow]; ok {
		s.mu.Unlock()
		s.release(id, p.flow, v.v)
		return
	}
	o := s.tr.add(id, p, mac, now)
	s.mu.Unlock()
	if o != nil {
		s.finish(o, now)
	}
}

// sweep ends held flows whose name did not arrive in time, and forgets old verdicts.
func (s *Slowpath) sweep(ctx context.Context) {
	defer s.wg.Done()
	tick := time.NewTicker(max(s.cfg.HoldTimeout/5, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			expired := s.tr.expire(now)
			for f, v := range s.recent {
				if now.Sub(v.at) > recentFor {
					delete(s.recent, f)
				}
			}
			s.mu.Unlock()
			for _, o := range expired {
				s.cnt.timeouts.Add(1)
				s.finish(o, now)
			}
		}
	}
}

// finish judges a flow, writes the verdict to the kernel, records the event and releases
// the held packets. The flow map is written first, so that packets after the held ones
// stay in the kernel. A blocked plain-HTTP request may be answered with the block page
// instead: the page is sent before the flow map is written (the fast path would drop it
// after), the held request is then turned into a reset for the server (see resetServer)
// rather than reset at the client, and the flow's verdict is FlowDrop rather than
// FlowBlock, so that the client's acknowledgement of the page and its FIN are dropped
// instead of drawing a reset that could make it discard the page.
func (s *Slowpath) finish(o *outcome, now time.Time) {
	d, allow := judge(s.cfg.Policy, o, s.cfg.FailOpen)
	s.cnt.flows.Add(1)
	if o.why == whyOverload {
		s.cnt.overloads.Add(1)
	}
	if o.name == "" {
		s.cnt.unnamed.Add(1)
	}
	if allow {
		s.cnt.allowed.Add(1)
	} else {
		s.cnt.blocked.Add(1)
	}
	page := !allow && s.sendBlockPage(o, d)
	v := FlowBlock
	switch {
	case allow:
		v = FlowAllow
	case page:
		v = FlowDrop
	}
	if o.why != whyOther {
		if err := s.cfg.Flows.SetFlowVerdict(o.flow, v, d); err != nil {
			s.cnt.errors.Add(1)
			s.cfg.Logger.Warn("writing flow verdict", "flow", o.flow, "verdict", v, "err", err)
		}
		s.mu.Lock()
		s.recent[o.flow] = recentVerdict{v: v, at: now}
		s.mu.Unlock()
	}
	if s.cfg.Events != nil {
		s.cfg.Events.Record(event(o, d, now))
	}
	for i, id := range o.ids {
		switch {
		case page && i == 0:
			s.resetServer(id, o)
		case page:
			s.drop(id)
		default:
			s.release(id, o.flow, v)
		}
	}
}

// release gives one held packet its flow's verdict: accepted (FlowAllow); or, for a TCP
// flow blocked with FlowBlock, sent once more through the hook with the block mark so the
// nftables table answers with a reset; or dropped (UDP, and FlowDrop: the block page has
// answered the flow, and a reset now could spoil it).
func (s *Slowpath) release(id uint64, f Flow, v FlowVerdict) {
	q, pid := s.queueOf(id)
	if q == nil {
		return
	}
	var err error
	switch {
	case v == FlowAllow:
		err = q.SetVerdict(pid, nfqueue.NfAccept)
	case v == FlowBlock && f.Proto == protoTCP && s.cfg.MarkBlock != 0:
		err = q.SetVerdictWithMark(pid, nfqueue.NfRepeat, int(s.cfg.MarkBlock))
	default:
		err = q.SetVerdict(pid, nfqueue.NfDrop)
	}
	if err != nil {
		s.cnt.errors.Add(1)
		s.cfg.Logger.Warn("setting nfqueue verdict", "err", err)
	}
}

// resetServer turns one held packet of a request the block page has answered into a reset
// from the client to the server, at the request's first sequence number: the server never
// got the request, so that is exactly what it expects next, and it closes its side instead
// of waiting for its idle timeout. The packet goes on as the client's own would, with its
// conntrack entry, so the WAN's masquerade rewrites it like the rest of the flow. Should
// that fail, the packet is dropped: the client already has its page.
func (s *Slowpath) resetServer(id uint64, o *outcome) {
	q, pid := s.queueOf(id)
	if q == nil {
		return
	}
	rst, err := serverResetPacket(o.flow, o.req)
	if err == nil {
		err = q.SetVerdictModPacket(pid, nfqueue.NfAccept, rst)
	}
	if err != nil {
		s.cnt.errors.Add(1)
		s.cfg.Logger.Warn("resetting the server of a blocked HTTP flow", "flow", o.flow, "err", err)
		s.drop(id)
	}
}

// drop drops one held packet: a request the block page has answered.
func (s *Slowpath) drop(id uint64) {
	q, pid := s.queueOf(id)
	if q == nil {
		return
	}
	if err := q.SetVerdict(pid, nfqueue.NfDrop); err != nil {
		s.cnt.errors.Add(1)
		s.cfg.Logger.Warn("setting nfqueue verdict", "err", err)
	}
}

// queueOf splits a held packet's id into its queue and the queue's packet id.
func (s *Slowpath) queueOf(id uint64) (*nfqueue.Nfqueue, uint32) {
	qi := int(id >> 32)
	if qi >= len(s.queues) {
		return nil, 0
	}
	return s.queues[qi], uint32(id)
}

// Stats returns the counters.
func (s *Slowpath) Stats() Stats {
	st := s.cnt.snapshot()
	st.KernelDropped = kernelDropped(s.cfg.Queue, s.cfg.Queues)
	return st
}

// kernelDropped sums queue_dropped and user_dropped of our queues from
// /proc/net/netfilter/nfnetlink_queue (one line per bound queue).
func kernelDropped(first, n uint16) uint64 {
	f, err := os.Open("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return 0
	}
	defer f.Close()
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		num, err := strconv.ParseUint(fields[0], 10, 16)
		if err != nil || uint16(num) < first || uint16(num) >= first+n {
			continue
		}
		for _, i := range []int{5, 6} {
			v, _ := strconv.ParseUint(fields[i], 10, 64)
			total += v
		}
	}
	return total
}

// Close stops reading and unbinds the queues. Packets still held get no verdict from us;
// the kernel drops them when the queue goes away.
func (s *Slowpath) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	var errs []error
	for _, q := range s.queues {
		errs = append(errs, q.Close())
	}
	s.wg.Wait()
	s.queues = nil
	if s.inj != nil {
		errs = append(errs, s.inj.close())
		s.inj = nil
	}
	return errors.Join(errs...)
}
