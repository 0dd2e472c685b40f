// Package nfq is the slow path: it reads the packets the eBPF fast path marks (the first
// payload packets of new TCP 443, TCP 80 and UDP 443 flows) from nfqueue, reads the server
// name (TLS ClientHello SNI reassembled across segments, QUIC Initial SNI, HTTP Host), asks
// the policy engine, releases or blocks the held packets, writes the verdict into the
// kernel's flow map so the rest of the flow never leaves the kernel, and records an event.
// A blocked TCP flow is reset, except that a blocked plain-HTTP request may be answered
// with a block page instead (Config.BlockPage), after which the flow is dropped silently.
//
// Packets of a flow are held (no verdict) until its name is readable or HoldTimeout
// passes: post-quantum ClientHellos span two TCP segments, which clients send back to back
// without waiting for an acknowledgement, so holding the first costs no round trip.
package nfq

import (
	"log/slog"
	"strconv"
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
	SetFlowVerdict(f Flow, v FlowVerdict, d policy.Decision) error
}

// FlowVerdict is what the kernel is to do with the rest of a decided flow.
type FlowVerdict uint8

const (
	// FlowAllow passes the flow.
	FlowAllow FlowVerdict = iota + 1
	// FlowBlock blocks it: a TCP client's later packets are answered with a reset, a UDP
	// client's are dropped.
	FlowBlock
	// FlowDrop blocks it silently: the client's later packets are dropped with no reset,
	// and nothing from the server reaches the client. For flows answered with the block
	// page, which ends the connection with a FIN: a reset for the client's acknowledgement
	// or FIN could make its TCP stack throw the unread page away (Windows may), so that
	// the browser shows "connection reset" instead.
	FlowDrop
)

func (v FlowVerdict) String() string {
	switch v {
	case FlowAllow:
		return "allow"
	case FlowBlock:
		return "block"
	case FlowDrop:
		return "drop"
	}
	return "flowverdict(" + strconv.Itoa(int(v)) + ")"
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
	// BlockPage, when set, renders the page shown for a blocked plain-HTTP request (TCP 80,
	// named by its Host header; TLS and QUIC flows are reset whatever this says). It gets
	// the host and the decision and returns an HTML body. The host comes from the client
	// (a valid name, lowercased, by sni.ParseHTTPHost): escape it like any input.
	//
	// The slow path then answers the request in the server's place with one TCP segment
	// (PSH|ACK|FIN) carrying "403 Forbidden" and the body, sent back out of the interface
	// the request came in on; turns the held request into a reset for the server, which
	// never sees the request; and has the client's later packets (its acknowledgement of
	// the page, its FIN) dropped without a reset (FlowDrop), since a reset could make the
	// client discard the page before the browser has read it. The page must fit in one
	// segment (an IP packet of 1400 bytes over IPv4, 1280 over IPv6): a body of
	// MaxBlockPageBody bytes always fits; a longer one is cut at a UTF-8 character boundary,
	// not refused. When the page cannot be sent the client gets the reset, as without
	// BlockPage.
	//
	// It is called on the queues' reading goroutines, possibly several at once: it must be
	// quick and safe for concurrent use. Start opens the raw sockets the pages need in its
	// network namespace.
	BlockPage func(host string, d policy.Decision) []byte
	Logger    *slog.Logger
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
	Errors    uint64 // verdicts, flow-map writes or block-page injections that failed
	// BlockPages counts blocked plain-HTTP requests answered with Config.BlockPage's page
	// (they are also counted in Blocked).
	BlockPages uint64
	// KernelDropped counts packets the kernel dropped or passed (by the failure mode)
	// because a queue was full or nobody listened, from /proc/net/netfilter/nfnetlink_queue.
	KernelDropped uint64
}

type counters struct {
	packets, flows, allowed, blocked, unnamed, timeouts, overloads, errors, blockPages atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{Packets: c.packets.Load(), Flows: c.flows.Load(), Allowed: c.allowed.Load(),
		Blocked: c.blocked.Load(), Unnamed: c.unnamed.Load(), Timeouts: c.timeouts.Load(),
		Overloads: c.overloads.Load(), Errors: c.errors.Load(), BlockPages: c.blockPages.Load()}
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
		Category: string(d.Category), List: d.List, Rule: d.Rule, Schedule: d.Schedule, Count: 1,
	}
}
