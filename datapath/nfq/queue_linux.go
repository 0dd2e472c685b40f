package nfq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Slowpath reads the queues and judges flows.
type Slowpath struct {
	cfg     Config
	queues  []*nfQueue
	waiters []*waiter
	cnt     counters
	inj     *injector // raw sockets for block pages; nil without Config.BlockPage

	mu     sync.Mutex // guards tr, recent and recentQ: a flow's packets may arrive on any queue
	tr     *tracker
	recent map[Flow]recentVerdict
	// recentQ has recent's entries in the order they were made, for the sweep to forget
	// the old ones without reading the whole map (it holds ten seconds of flows).
	recentQ []recentEntry

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

type recentEntry struct {
	f  Flow
	at time.Time
}

// remember records a decided flow's verdict (s.mu held).
func (s *Slowpath) remember(f Flow, v FlowVerdict, now time.Time) {
	s.recent[f] = recentVerdict{v: v, at: now}
	s.recentQ = append(s.recentQ, recentEntry{f: f, at: now})
}

// forget drops the verdicts older than recentFor (s.mu held). Entries are made in about
// the order of their times (goroutines' clocks differ by the time it takes to take the
// lock), so the sweep stops at the first that is young enough.
func (s *Slowpath) forget(now time.Time) {
	n := 0
	for _, e := range s.recentQ {
		if now.Sub(e.at) <= recentFor {
			break
		}
		// The flow may have been decided again since (a timeout's packets, say); then
		// its entry is the later one's.
		if v, ok := s.recent[e.f]; ok && v.at.Equal(e.at) {
			delete(s.recent, e.f)
		}
		n++
	}
	s.recentQ = s.recentQ[n:]
	if len(s.recentQ) == 0 {
		s.recentQ = nil
	}
}

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
		flags |= nfqaCfgFailOpen
	}
	for i := range s.cfg.Queues {
		num := s.cfg.Queue + i
		q, err := openQueue(num, s.cfg.MaxQueueLen, flags)
		if err != nil {
			s.Close()
			return fmt.Errorf("opening nfqueue %d: %w", num, err)
		}
		s.queues = append(s.queues, q)
	}
	for range waiters(len(s.queues), runtime.GOMAXPROCS(0)) {
		w, err := newWaiter()
		if err != nil {
			s.Close()
			return err
		}
		s.waiters = append(s.waiters, w)
	}
	for i, q := range s.queues {
		w := s.waiters[i%len(s.waiters)]
		if err := w.add(q.fd, int32(i)); err != nil {
			s.Close()
			return err
		}
		w.queues = append(w.queues, uint64(i))
	}
	for _, w := range s.waiters {
		s.wg.Add(1)
		go s.read(w)
	}
	s.wg.Add(1)
	go s.sweep(ctx)
	return nil
}

// maxBurst is how many messages a waiter reads from one queue before it looks at the
// others again.
const maxBurst = 64

// How a waiter waits (see waiter): while packets came within activeFor, it sleeps in
// epoll_wait, waking at least every yieldEvery to yield, so the runtime never sees it stuck
// in a syscall; after that, it parks until the next packet.
const (
	yieldEvery = 5 * time.Millisecond // well under the runtime's 10 ms
	activeFor  = time.Second
)

// read reads a waiter's queues until the slow path stops, handling each packet on this
// goroutine: a flow is decided, and its packets released, by the goroutine that read its
// last packet.
func (s *Slowpath) read(w *waiter) {
	defer s.wg.Done()
	dec := newDecoder()
	for _, qi := range w.queues {
		q := s.queues[qi]
		for _, m := range q.early {
			s.messages(qi, dec, m)
		}
		q.early = nil
	}
	events := make([]unix.EpollEvent, len(w.queues)+1)
	var yielded, active time.Time
	for {
		var ready []unix.EpollEvent
		var err error
		if now := time.Now(); now.Sub(active) < activeFor {
			if now.Sub(yielded) >= yieldEvery {
				runtime.Gosched()
				yielded = now
			}
			ready, err = w.wait(events, int(yieldEvery/time.Millisecond))
		} else {
			ready, err = w.park(events)
		}
		if err != nil {
			// Nothing but a bug gets here (the descriptors are ours, open until this
			// goroutine ends): stop rather than spin.
			s.cfg.Logger.Error("reading nfqueue: the slow path stops", "err", err)
			return
		}
		if len(ready) > 0 {
			active = time.Now()
		}
		for _, ev := range ready {
			if ev.Fd == stopEvent {
				return
			}
			qi := uint64(ev.Fd)
			q := s.queues[qi]
			for range maxBurst {
				b, err := q.read()
				if err == unix.EAGAIN {
					break
				}
				if err != nil {
					s.cfg.Logger.Warn("reading nfqueue", "queue", q.num, "err", err)
					break
				}
				s.messages(qi, dec, b)
			}
		}
	}
}

// messages handles the netlink messages of one datagram from queue qi.
func (s *Slowpath) messages(qi uint64, dec *decoder, b []byte) {
	for {
		m, rest, ok := nextMsg(b)
		if !ok {
			return
		}
		b = rest
		switch m.typ {
		case nfnlSubsysQueue<<8 | nfqnlMsgPacket:
			p, err := parsePacket(m.body)
			if err != nil {
				s.cnt.packets.Add(1)
				s.cfg.Logger.Warn("reading nfqueue", "queue", s.cfg.Queue+uint16(qi), "err", err)
				continue
			}
			s.handle(qi, dec, p)
		case nlmsgError:
			// The kernel refused a verdict (it answers errors unasked); the message's
			// sequence number is the packet id.
			if err := ackError(m.body); err != nil {
				s.cfg.Logger.Warn("reading nfqueue", "queue", s.cfg.Queue+uint16(qi), "packet", m.seq, "err", err)
			}
		}
	}
}

// handle is called on a waiter's goroutine for each packet.
func (s *Slowpath) handle(qi uint64, dec *decoder, a queuedPacket) {
	s.cnt.packets.Add(1)
	if !a.hasID {
		return
	}
	id := qi<<32 | uint64(a.id)
	p, err := dec.decode(a.payload)
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
	p.inDev = int(a.inDev)
	mac := dec.mac(a.hwAddr)
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
			for _, w := range s.waiters {
				w.wake() // the readers stop
			}
			return
		case now := <-tick.C:
			s.mu.Lock()
			expired := s.tr.expire(now)
			s.forget(now)
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
		s.remember(o.flow, v, now)
		s.mu.Unlock()
	}
	if s.cfg.Events != nil {
		s.cfg.Events.Record(event(o, d, now))
	}
	// The held packets' verdicts go to the kernel in the order the packets came, in one
	// write for each run of packets from the same queue: usually one write for the flow.
	var arr [4 * (verdictLen + 8)]byte
	buf, cur, n := arr[:0], uint64(0), 0
	for i, id := range o.ids {
		qi := id >> 32
		if n > 0 && qi != cur {
			s.send(cur, buf, n)
			buf, n = buf[:0], 0
		}
		cur = qi
		switch {
		case page && i == 0:
			s.resetServer(id, o) // the first: nothing is waiting in buf
			continue
		case page:
			// A request the block page has answered: dropped.
			buf = appendVerdict(buf, s.cfg.Queue+uint16(qi), uint32(id), nfDrop, 0, false, nil)
		default:
			buf = s.appendRelease(buf, id, o.flow, v)
		}
		n++
	}
	if n > 0 {
		s.send(cur, buf, n)
	}
}

// release gives one held packet its flow's verdict (see appendRelease).
func (s *Slowpath) release(id uint64, f Flow, v FlowVerdict) {
	var arr [verdictLen + 8]byte
	s.send(id>>32, s.appendRelease(arr[:0], id, f, v), 1)
}

// appendRelease appends the verdict that gives held packet id its flow's verdict:
// accepted (FlowAllow); or, for a TCP flow blocked with FlowBlock, sent once more through
// the hook with the block mark so the nftables table answers with a reset; or dropped
// (UDP, and FlowDrop: the block page has answered the flow, and a reset now could spoil
// it).
func (s *Slowpath) appendRelease(b []byte, id uint64, f Flow, v FlowVerdict) []byte {
	queue, pid := s.cfg.Queue+uint16(id>>32), uint32(id)
	switch {
	case v == FlowAllow:
		return appendVerdict(b, queue, pid, nfAccept, 0, false, nil)
	case v == FlowBlock && f.Proto == protoTCP && s.cfg.MarkBlock != 0:
		return appendVerdict(b, queue, pid, nfRepeat, s.cfg.MarkBlock, true, nil)
	}
	return appendVerdict(b, queue, pid, nfDrop, 0, false, nil)
}

// send writes the verdict messages in b, n of them, to queue qi.
func (s *Slowpath) send(qi uint64, b []byte, n int) {
	if qi >= uint64(len(s.queues)) {
		return
	}
	if err := s.queues[qi].write(b); err != nil {
		s.cnt.errors.Add(uint64(n))
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
	qi := id >> 32
	if qi >= uint64(len(s.queues)) {
		return
	}
	rst, err := serverResetPacket(o.flow, o.req)
	if err == nil {
		err = s.queues[qi].write(appendVerdict(nil, s.cfg.Queue+uint16(qi), uint32(id), nfAccept, 0, false, rst))
	}
	if err != nil {
		s.cnt.errors.Add(1)
		s.cfg.Logger.Warn("resetting the server of a blocked HTTP flow", "flow", o.flow, "err", err)
		var arr [verdictLen]byte
		s.send(qi, appendVerdict(arr[:0], s.cfg.Queue+uint16(qi), uint32(id), nfDrop, 0, false, nil), 1)
	}
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
	for _, w := range s.waiters {
		w.wake()
	}
	s.wg.Wait()
	var errs []error
	for _, q := range s.queues {
		errs = append(errs, q.close())
	}
	for _, w := range s.waiters {
		w.close()
	}
	s.queues, s.waiters = nil, nil
	if s.inj != nil {
		errs = append(errs, s.inj.close())
		s.inj = nil
	}
	return errors.Join(errs...)
}
