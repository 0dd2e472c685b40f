package nfq

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/schoolgate/schoolgate/datapath/sni"
)

// kind is what a flow is read as, from its protocol and server port.
type kind uint8

const (
	kindTLS  kind = iota // TCP 443: TLS ClientHello SNI
	kindHTTP             // TCP 80: HTTP Host header
	kindQUIC             // UDP 443: QUIC Initial SNI
)

func (k kind) source() string {
	switch k {
	case kindHTTP:
		return "http"
	case kindQUIC:
		return "quic"
	}
	return "sni"
}

func kindOf(f Flow) (kind, bool) {
	switch {
	case f.Proto == protoTCP && f.Server.Port() == 443:
		return kindTLS, true
	case f.Proto == protoTCP && f.Server.Port() == 80:
		return kindHTTP, true
	case f.Proto == protoUDP && f.Server.Port() == 443:
		return kindQUIC, true
	}
	return 0, false
}

// Why a flow ended without a name; these become the decision's rule and the event's.
const (
	whyNoName    = "no server name"
	whyNotTLS    = "not TLS"
	whyNotQUIC   = "not QUIC"
	whyNotHTTP   = "not HTTP"
	whyMalformed = "malformed handshake"
	whyTimeout   = "name not seen in time"
	whyOverload  = "slow path overloaded"
	whyOther     = "not TCP 443/80 or UDP 443"
)

// Limits on what one flow may make us hold: a ClientHello is at most sni.MaxHelloLen, and
// post-quantum hellos take two or three segments, so these leave room for retransmissions
// without letting a hostile client park memory.
const (
	maxSegments = 16
	maxHeld     = 32
)

// outcome is a flow the tracker is done with: the name it found (or why not), and the
// queued packets waiting for the verdict.
type outcome struct {
	flow  Flow
	kind  kind
	name  string // "" when unreadable; why says why
	why   string
	ech   bool
	mac   string // the client's MAC, from the first packet that carried one
	ids   []uint64
	first time.Time
	req   request // HTTP flows with a name: where the request sits, for a block page
	idArr [4]uint64
}

// newOutcome returns an outcome for a flow held as pf, with a copy of its packet ids.
func newOutcome(f Flow, pf *pending, why string) *outcome {
	o := &outcome{flow: f, kind: pf.kind, why: why, mac: pf.mac, first: pf.first}
	o.ids = append(o.idArr[:0], pf.ids...)
	return o
}

// request is where a plain-HTTP request sits in its TCP stream: what the slow path needs
// to answer it in the server's place (see blockPagePacket).
type request struct {
	seq uint32       // the request's first byte: the server's next expected sequence number
	end uint32       // one past the highest byte held
	ack uint32       // the client's acknowledgement: the server's next sequence number
	ts  tcpTimestamp // the client's latest timestamp option, to echo
	ok  bool         // the fields are known: the request was held and carried ACK
	// inDev is the interface the request came in on (0 when unknown): the page goes back
	// out of it and no other.
	inDev int
}

// segment is TCP payload held until the stream from the first byte is readable.
type segment struct {
	seq  uint32
	data []byte
}

// pending is a flow whose name is not known yet.
type pending struct {
	kind  kind
	first time.Time
	mac   string
	ids   []uint64
	segs  []segment // TCP, sorted by sequence number
	quic  sni.QUICFlow
	// The latest acknowledgement and timestamp option among the TCP packets held.
	ack    uint32
	hasACK bool
	ts     tcpTimestamp
	inDev  int // from the first packet that had one
	// Room for the ids and segments of a typical flow (a hello in two or three segments),
	// so that holding one takes a single allocation.
	idArr  [4]uint64
	segArr [4]segment
}

// tracker holds flows until their name is readable. It is pure logic, with no kernel in
// it, so every path through it is tested and fuzzed directly; queue_linux.go feeds it.
// It is not safe for concurrent use.
type tracker struct {
	timeout  time.Duration
	maxFlows int
	flows    map[Flow]*pending
	// Held TCP payload is copied (the packet's buffer is the socket's, read into again),
	// into buffers kept for reuse: a new flow's hello then costs no allocation, and the
	// garbage collector (and the page faults that come with a growing heap) less.
	free    [][]byte // buffers of segBufLen, at most maxFree
	scratch []byte   // the stream of a flow held in several segments, for the parser
	// Finished flows' state is reused the same way (outcomes copy what they need).
	freeFlows []*pending
}

// The buffers the tracker reuses: a segment of a standard MTU fits one.
const (
	segBufLen = 2048
	maxFree   = 256
)

// buf returns a buffer of n bytes, reused when one fits.
func (t *tracker) buf(n int) []byte {
	if n > segBufLen {
		return make([]byte, n)
	}
	if k := len(t.free); k > 0 {
		b := t.free[k-1]
		t.free = t.free[:k-1]
		return b[:n]
	}
	return make([]byte, n, segBufLen)
}

// newPending returns the state for a new held flow, reused when there is some.
func (t *tracker) newPending(k kind, now time.Time) *pending {
	var pf *pending
	if n := len(t.freeFlows); n > 0 {
		pf = t.freeFlows[n-1]
		t.freeFlows = t.freeFlows[:n-1]
	} else {
		pf = new(pending)
	}
	pf.kind, pf.first = k, now
	pf.ids, pf.segs = pf.idArr[:0], pf.segArr[:0]
	return pf
}

// done keeps a finished flow's state and buffers for reuse; nothing may refer to pf after.
func (t *tracker) done(pf *pending) {
	for _, s := range pf.segs {
		if cap(s.data) == segBufLen && len(t.free) < maxFree {
			t.free = append(t.free, s.data[:0])
		}
	}
	if len(t.freeFlows) < maxFree {
		*pf = pending{}
		t.freeFlows = append(t.freeFlows, pf)
	}
}

func newTracker(timeout time.Duration, maxFlows int) *tracker {
	return &tracker{timeout: timeout, maxFlows: maxFlows, flows: make(map[Flow]*pending)}
}

// add takes one queued packet, identified by id (the caller's: queue and packet id). It returns an outcome when the flow is decided by this
// packet (its name is now known, or can never be), or nil while the packet is held.
func (t *tracker) add(id uint64, p packet, mac string, now time.Time) *outcome {
	k, ok := kindOf(p.flow)
	if !ok {
		return &outcome{flow: p.flow, why: whyOther, mac: mac, ids: []uint64{id}, first: now}
	}
	pf := t.flows[p.flow]
	if pf == nil {
		if len(t.flows) >= t.maxFlows {
			return &outcome{flow: p.flow, kind: k, why: whyOverload, mac: mac, ids: []uint64{id}, first: now}
		}
		pf = t.newPending(k, now)
		t.flows[p.flow] = pf
	}
	pf.ids = append(pf.ids, id)
	if pf.mac == "" {
		pf.mac = mac
	}
	name, ech, why, done := t.feed(pf, p)
	if !done && len(pf.ids) >= maxHeld {
		done, why = true, whyMalformed
	}
	if !done {
		return nil
	}
	delete(t.flows, p.flow)
	o := newOutcome(p.flow, pf, why)
	o.name, o.ech = name, ech
	if k == kindHTTP && name != "" {
		o.req = pf.request()
	}
	t.done(pf)
	return o
}

// expire ends flows held longer than the timeout: their name did not come in time.
func (t *tracker) expire(now time.Time) []*outcome {
	var out []*outcome
	for f, pf := range t.flows {
		if now.Sub(pf.first) >= t.timeout {
			delete(t.flows, f)
			out = append(out, newOutcome(f, pf, whyTimeout))
			t.done(pf)
		}
	}
	return out
}

// feed adds a packet's payload to a held flow and tries to read the name. done is false
// while more packets are needed.
func (t *tracker) feed(pf *pending, p packet) (name string, ech bool, why string, done bool) {
	if pf.kind == kindQUIC {
		h, err := pf.quic.Add(p.payload)
		return result(h, err, whyNotQUIC)
	}
	if len(p.payload) == 0 {
		return "", false, "", false
	}
	if !t.insert(pf, p.seq, p.payload) {
		return "", false, whyMalformed, true
	}
	pf.note(p)
	stream := t.stream(pf)
	var h sni.Hello
	var err error
	notIt := whyNotTLS
	if pf.kind == kindHTTP {
		notIt = whyNotHTTP
		h.ServerName, err = sni.ParseHTTPHost(stream)
	} else {
		h, err = sni.ParseClientHello(stream)
	}
	// The first segment we hold may not be the stream's first (the kernel queued a
	// retransmission or a reordered segment): what does not parse yet may parse once an
	// earlier segment arrives, so wait until the timeout says otherwise.
	if (errors.Is(err, sni.ErrNotTLS) || errors.Is(err, sni.ErrNotHTTP)) && len(pf.segs) == 1 && len(pf.ids) < 3 {
		return "", false, "", false
	}
	return result(h, err, notIt)
}

func result(h sni.Hello, err error, notIt string) (string, bool, string, bool) {
	switch {
	case err == nil && h.ServerName == "":
		return "", h.ECH, whyNoName, true
	case err == nil:
		return h.ServerName, h.ECH, "", true
	case errors.Is(err, sni.ErrIncomplete):
		return "", false, "", false
	case errors.Is(err, sni.ErrNotTLS), errors.Is(err, sni.ErrNotQUIC), errors.Is(err, sni.ErrNotHTTP):
		return "", false, notIt, true
	}
	return "", false, whyMalformed, true
}

// insert keeps a copy of a TCP segment of a held flow, in sequence order. Duplicates
// (retransmissions) are dropped; overlaps are trimmed to what is new. It reports false when
// the flow holds too much.
func (t *tracker) insert(pf *pending, seq uint32, data []byte) bool {
	for _, s := range pf.segs {
		if s.seq == seq && len(s.data) >= len(data) {
			return true // a retransmission of what we hold
		}
	}
	if len(pf.segs) >= maxSegments || pf.bytes()+len(data) > sni.MaxHelloLen+sni.MaxHeadLen {
		return false
	}
	b := t.buf(len(data))
	copy(b, data)
	pf.segs = append(pf.segs, segment{seq: seq, data: b})
	// Sequence numbers wrap: compare by signed distance from the first segment's.
	base := pf.segs[0].seq
	slices.SortStableFunc(pf.segs, func(a, b segment) int {
		return cmp.Compare(int32(a.seq-base), int32(b.seq-base))
	})
	return true
}

// note keeps the latest acknowledgement and timestamps of a held TCP packet, and the
// interface the flow came in on. Acknowledgements and timestamps grow over a connection's
// life, so "latest" is the highest by signed distance (they wrap), whatever order the
// packets came in.
func (pf *pending) note(p packet) {
	if p.hasACK && (!pf.hasACK || int32(p.ack-pf.ack) > 0) {
		pf.ack, pf.hasACK = p.ack, true
	}
	if pf.inDev == 0 {
		pf.inDev = p.inDev
	}
	if p.ts.ok {
		if !pf.ts.ok || int32(p.ts.val-pf.ts.val) > 0 {
			pf.ts.val = p.ts.val
		}
		if !pf.ts.ok || int32(p.ts.ecr-pf.ts.ecr) > 0 {
			pf.ts.ecr = p.ts.ecr
		}
		pf.ts.ok = true
	}
}

// request says where the held request sits in the stream: from the lowest sequence number
// held to the highest end. It is ok only when the client's packets carried an ACK (every
// packet of an established connection does).
func (pf *pending) request() request {
	if len(pf.segs) == 0 || !pf.hasACK {
		return request{}
	}
	r := request{seq: pf.segs[0].seq, ack: pf.ack, ts: pf.ts, ok: true, inDev: pf.inDev}
	r.end = r.seq
	for _, s := range pf.segs {
		if end := s.seq + uint32(len(s.data)); int32(end-r.end) > 0 {
			r.end = end
		}
	}
	return r
}

func (pf *pending) bytes() int {
	n := 0
	for _, s := range pf.segs {
		n += len(s.data)
	}
	return n
}

// stream returns the contiguous bytes of a held flow from the lowest held sequence number.
// It aliases the flow's segment or the tracker's scratch buffer: the parsers copy what they
// keep.
func (t *tracker) stream(pf *pending) []byte {
	if len(pf.segs) == 1 {
		return pf.segs[0].data
	}
	start := pf.segs[0].seq
	out := t.scratch[:0]
	for _, s := range pf.segs {
		off := int(int32(s.seq - start))
		if off > len(out) {
			break // a gap: the rest waits for the missing segment
		}
		if end := off + len(s.data); end > len(out) {
			out = append(out, s.data[len(out)-off:]...)
		}
	}
	t.scratch = out
	return out
}
