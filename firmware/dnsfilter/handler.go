package dnsfilter

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/nonwriter"
	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// rewriteTTL is the TTL of the synthesised safe-search CNAME: long enough to be cached by
// clients, short enough that a changed profile takes effect within minutes.
const rewriteTTL = 300

// defaultBlockTTL answers blocks for clients in no segment (the protected tier).
const defaultBlockTTL = 60 * time.Second

type handler struct {
	next plugin.Handler
	f    *Filter
}

func (h *handler) Name() string { return PluginName }

func (h *handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	client := clientAddr(w.RemoteAddr())
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET {
		segment := ""
		if seg, ok := h.f.engine.Snapshot().SegmentFor(client); ok {
			segment = seg.Name
		}
		h.f.counters(segment).formerr.Add(1)
		return h.refuse(w, r)
	}
	q := r.Question[0]
	d := h.f.engine.Decide(policy.Request{Client: client, Name: q.Name})
	c := h.f.counters(d.Segment)
	c.queries.Add(1)
	h.record(client, q.Qtype, d)

	switch d.Action {
	case policy.Block:
		c.blocked.Add(1)
		return h.block(w, r, d)
	case policy.Rewrite:
		c.rewritten.Add(1)
		return h.rewrite(ctx, w, r, d)
	}
	if q.Qtype == dns.TypeHTTPS && d.Profile != nil && d.Profile.StripECH {
		w = &echStripper{ResponseWriter: w}
	}
	return plugin.NextOrFailure(h.Name(), h.next, ctx, w, r)
}

// refuse answers what is not a single Internet-class query: FORMERR for a malformed
// question section, NOTIMP for other opcodes, REFUSED for other classes.
func (h *handler) refuse(w dns.ResponseWriter, r *dns.Msg) (int, error) {
	m := new(dns.Msg)
	rcode := dns.RcodeFormatError
	switch {
	case r.Opcode != dns.OpcodeQuery:
		rcode = dns.RcodeNotImplemented
	case len(r.Question) == 1:
		rcode = dns.RcodeRefused
	}
	m.SetRcode(r, rcode)
	if len(r.Question) != 1 {
		m.Question = nil
	} else if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do()) // RFC 6891: answer EDNS with EDNS
	}
	w.WriteMsg(m)
	return rcode, nil
}

func (h *handler) record(client netip.Addr, qtype uint16, d policy.Decision) {
	if h.f.events == nil {
		return
	}
	qt, ok := dns.TypeToString[qtype]
	if !ok {
		qt = fmt.Sprintf("TYPE%d", qtype)
	}
	h.f.events.Record(eventlog.Event{
		Time: time.Now(), Client: client, MAC: d.MAC, Device: d.Device,
		Segment: d.Segment, Profile: d.ProfileName(), Source: "dns",
		Name: d.Name, QType: qt, Action: d.Action.String(), Tier: string(d.Tier),
		Category: string(d.Category), List: d.List, Rule: d.Rule, Schedule: d.Schedule, Count: 1,
	})
}

// block answers a blocked name with the profile's block response. Canaries are always
// NXDOMAIN: that is the signal clients look for.
func (h *handler) block(w dns.ResponseWriter, r *dns.Msg, d policy.Decision) (int, error) {
	ttl := uint32(defaultBlockTTL / time.Second)
	var v4, v6 netip.Addr
	if d.Profile != nil {
		ttl = uint32(d.Profile.BlockTTL / time.Second)
		v4, v6 = d.Profile.BlockPageIPv4, d.Profile.BlockPageIPv6
	}
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if d.Tier == policy.TierNoSegment {
		// Not one of our clients: refuse rather than resolve, so that an address outside the
		// configured segments (IPv6 link-local, a forgotten subnet, the WAN) is never an
		// unfiltered way round the filter.
		m.Rcode = dns.RcodeRefused
		addEDE(r, m, dns.ExtendedErrorCodeProhibited, "schoolgate: client in no segment")
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	}

	mode := "nxdomain"
	if d.Profile != nil && d.Tier != policy.TierCanary {
		mode = d.Profile.BlockResponse
	}
	var answer dns.RR
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: ttl}
	switch {
	case mode == "nxdomain":
	case q.Qtype == dns.TypeA && mode == "null":
		answer = &dns.A{Hdr: hdr, A: net.IPv4zero.To4()}
	case q.Qtype == dns.TypeAAAA && mode == "null":
		answer = &dns.AAAA{Hdr: hdr, AAAA: net.IPv6zero}
	case q.Qtype == dns.TypeA && mode == "blockpage" && v4.Is4():
		answer = &dns.A{Hdr: hdr, A: v4.AsSlice()}
	case q.Qtype == dns.TypeAAAA && mode == "blockpage" && v6.Is6():
		answer = &dns.AAAA{Hdr: hdr, AAAA: v6.AsSlice()}
	}
	switch {
	case answer != nil:
		m.Answer = []dns.RR{answer}
	case mode == "nxdomain":
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{blockSOA(q.Name, ttl)}
	default: // NODATA: the name exists, but not with this type
		m.Ns = []dns.RR{blockSOA(q.Name, ttl)}
	}
	code := uint16(dns.ExtendedErrorCodeBlocked)
	if d.Tier == policy.TierCanary {
		code = dns.ExtendedErrorCodeFiltered
	}
	addEDE(r, m, code, blockText(d))
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// blockSOA makes the authority record that lets resolvers cache a negative block answer for
// the block TTL (RFC 2308).
func blockSOA(name string, ttl uint32) dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "schoolgate.", Mbox: "blocked.schoolgate.",
		Serial: 1, Refresh: 1800, Retry: 900, Expire: 604800, Minttl: ttl,
	}
}

// blockText is the Extended DNS Error text: short, and naming the category so a technician
// with dig can see why.
func blockText(d policy.Decision) string {
	switch d.Tier {
	case policy.TierProtected:
		return "schoolgate: blocked for everyone (protected list " + d.List + ")"
	case policy.TierCanary:
		return "schoolgate: resolver bypass canary"
	case policy.TierException:
		return "schoolgate: blocked by exception " + d.Rule
	case policy.TierSafeSearch:
		return "schoolgate: search engine without safe search (profile " + d.ProfileName() + ")"
	}
	if d.Category != "" {
		return "schoolgate: category " + string(d.Category) + " (profile " + d.ProfileName() + ")"
	}
	return "schoolgate: " + d.List + " " + d.Rule + " (profile " + d.ProfileName() + ")"
}

// addEDE adds an Extended DNS Error (RFC 8914). EDNS options may only be sent to clients
// that used EDNS themselves.
func addEDE(r, m *dns.Msg, code uint16, text string) {
	ropt := r.IsEdns0()
	if ropt == nil {
		return
	}
	size := ropt.UDPSize()
	if size < dns.MinMsgSize {
		size = dns.MinMsgSize
	}
	m.SetEdns0(size, ropt.Do())
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
}

// rewrite answers with a CNAME to the safe endpoint and the endpoint's own records, resolved
// through the rest of the chain (cache, forward) so they are cached like any answer.
func (h *handler) rewrite(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, d policy.Decision) (int, error) {
	q := r.Question[0]
	target := dns.Fqdn(d.Rewrite)
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	m.Answer = []dns.RR{&dns.CNAME{
		Hdr:    dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: rewriteTTL},
		Target: target,
	}}
	if q.Qtype != dns.TypeCNAME {
		sub := r.Copy()
		sub.Question[0].Name = target
		nw := nonwriter.New(w)
		plugin.NextOrFailure(h.Name(), h.next, ctx, nw, sub)
		if nw.Msg != nil {
			m.Answer = append(m.Answer, nw.Msg.Answer...)
			m.Ns = nw.Msg.Ns
			m.Rcode = nw.Msg.Rcode
		} else {
			// Nothing came back (an error, or a plugin that wrote nothing): a bare CNAME
			// would look like a name without addresses.
			m.Rcode = dns.RcodeServerFailure
		}
	}
	if q.Qtype == dns.TypeHTTPS && d.Profile != nil && d.Profile.StripECH {
		stripECH(m)
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// echStripper removes ECH configurations from HTTPS records on the way to the client, so the
// TLS ClientHello keeps a readable server name for the packet path to judge.
type echStripper struct {
	dns.ResponseWriter
}

func (e *echStripper) WriteMsg(m *dns.Msg) error {
	stripECH(m)
	return e.ResponseWriter.WriteMsg(m)
}

// stripECH replaces HTTPS records carrying an ech parameter with copies without it. It never
// modifies records in place: the message may share them with the cache, and other profiles
// must still get what the upstream sent.
func stripECH(m *dns.Msg) {
	var answer []dns.RR
	for i, rr := range m.Answer {
		h, ok := rr.(*dns.HTTPS)
		if !ok || !hasECH(h) {
			continue
		}
		if answer == nil {
			answer = append([]dns.RR(nil), m.Answer...)
		}
		c := &dns.HTTPS{SVCB: dns.SVCB{Hdr: h.Hdr, Priority: h.Priority, Target: h.Target}}
		for _, kv := range h.Value {
			if kv.Key() != dns.SVCB_ECHCONFIG {
				c.Value = append(c.Value, kv)
			}
		}
		answer[i] = c
	}
	if answer != nil {
		m.Answer = answer
	}
}

func hasECH(h *dns.HTTPS) bool {
	for _, kv := range h.Value {
		if kv.Key() == dns.SVCB_ECHCONFIG {
			return true
		}
	}
	return false
}

func clientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
