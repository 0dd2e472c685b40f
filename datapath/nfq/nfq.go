// Package nfq is the slow path: it reads the packets the eBPF fast path marks (the first
// payload packets of new TCP 443, TCP 80 and UDP 443 flows) from nfqueue, reads the server
// name (TLS ClientHello SNI reassembled across segments, QUIC Initial SNI, HTTP Host), asks
// the policy engine, releases or blocks the held packets, writes the verdict into the
// kernel's flow map so the rest of the flow never leaves the kernel, and records an event.
//
// Packets of a flow are held (no verdict) until its name is readable or HoldTimeout
// passes: post-quantum ClientHellos span two TCP segments, which clients send back to back
// without waiting for an acknowledgement, so holding the first costs no round trip.
package nfq

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// Decider is the policy engine.
type Decider interface {
	Decide(policy.Request) policy.Decision
	DecideUnnamed(r policy.Request, why string) policy.Decision
}

// FlowTable is the kernel's flow verdict map (datapath/filter behind an adapter).
type FlowTable interface {
	SetFlowVerdict(f Flow, allow bool, d policy.Decision) error
}

// Recorder takes events; it must not block.
type Recorder interface {
	Record(eventlog.Event)
}

// Config configures the slow path.
type Config struct {
	Queue  uint16 // first queue number
	Queues uint16 // number of queues (the nftables rule spreads flows over them); default 1
	Policy Decider
	Flows  FlowTable
	Events Recorder // optional
	// HoldTimeout bounds how long a flow's first packets wait for the rest of its
	// handshake; then the profile's no_sni policy decides. Default 500ms.
	HoldTimeout time.Duration
	MaxFlows    int    // flows held at once; beyond it the failure mode applies. Default 16384
	MaxQueueLen uint32 // kernel queue length per queue; default 4096
	// FailOpen is the failure mode: true lets packets through when the queue is full or
	// the slow path is overloaded; false (the default, "closed") drops them.
	FailOpen bool
	// MarkMask and MarkBlock are the fast path's marks: a blocked TCP packet is put back
	// through the hook with MarkBlock so the nftables table answers it with a reset.
	MarkMask, MarkBlock uint32
	Logger              *slog.Logger
}

// Stats are the slow path's counters.
type Stats struct {
	Packets   uint64 // packets read from the queues
	Flows     uint64 // flows decided
	Allowed   uint64
	Blocked   uint64
	Unnamed   uint64 // flows decided without a name (no SNI, not TLS, timeout...)
	Timeouts  uint64
	Overloads uint64 // flows the failure mode decided because too many were held
	Errors    uint64 // verdicts or flow-map writes that failed
	// KernelDropped counts packets the kernel dropped or passed (by the failure mode)
	// because a queue was full or nobody listened, from /proc/net/netfilter/nfnetlink_queue.
	KernelDropped uint64
}

type counters struct {
	packets, flows, allowed, blocked, unnamed, timeouts, overloads, errors atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{Packets: c.packets.Load(), Flows: c.flows.Load(), Allowed: c.allowed.Load(),
		Blocked: c.blocked.Load(), Unnamed: c.unnamed.Load(), Timeouts: c.timeouts.Load(),
		Overloads: c.overloads.Load(), Errors: c.errors.Load()}
}

func (c *Config) defaults() {
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = 500 * time.Millisecond
	}
	if c.MaxFlows <= 0 {
		c.MaxFlows = 16384
	}
	if c.MaxQueueLen == 0 {
		c.MaxQueueLen = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// judge decides an outcome: the policy decision and whether the flow may pass.
func judge(pol Decider, o *outcome, failOpen bool) (policy.Decision, bool) {
	req := policy.Request{Client: o.flow.Client.Addr().Unmap(), MAC: o.mac, Name: o.name}
	var d policy.Decision
	if o.name == "" {
		d = pol.DecideUnnamed(req, o.why)
		if o.why == whyOverload {
			d.Action = policy.Block
			if failOpen {
				d.Action = policy.Allow
			}
		}
	} else {
		d = pol.Decide(req)
	}
	// A safe-search rewrite is a DNS answer; by the time a connection carries the name,
	// the client either asked us (and was sent to the safe endpoint) or has no other
	// resolver it can reach (port 53 is redirected, DoT and DoH are blocked).
	return d, d.Action != policy.Block
}

// event turns a decision into an event.
func event(o *outcome, d policy.Decision, now time.Time) eventlog.Event {
	return eventlog.Event{
		Time: now, Client: o.flow.Client.Addr().Unmap(), MAC: d.MAC, Device: d.Device,
		Segment: d.Segment, Profile: d.ProfileName(), Source: o.kind.source(),
		Name: d.Name, Action: d.Action.String(), Tier: string(d.Tier),
		Category: string(d.Category), List: d.List, Rule: d.Rule, Count: 1,
	}
}
