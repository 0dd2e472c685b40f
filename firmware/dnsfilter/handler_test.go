package dnsfilter

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

const testConfig = `
dns:
  listen: 127.0.0.1:5353
  upstreams: [{address: "127.0.0.1:53"}]
  block_page_ipv4: 10.0.0.1
  block_page_ipv6: "fd00::1"
segments:
  - {name: staff,  subnets: [10.10.0.0/16], profile: staff}
  - {name: pupils, subnets: [10.20.0.0/16], profile: pupils}
  - {name: guest,  subnets: [10.30.0.0/16], profile: guest, guest: true}
profiles:
  - {name: staff, block_categories: [adult], block_response: blockpage, safe_search: "on",
     youtube: moderate, bypass: {strip_ech: false},
     scheduled_blocks: [{schedule: always, categories: [social]}]}
  - {name: pupils, block_categories: [adult, social], safe_search: strict, youtube: strict}
  - {name: guest, block_categories: [adult], block_response: "null"}
schedules:
  - {name: always, days: [sun, mon, tue, wed, thu, fri, sat]}
lists:
  - {name: adult, file: adult.txt, format: domains, category: adult}
  - {name: social, file: social.txt, format: hosts, category: social}
  - {name: protected, file: protected.txt, format: domains, protected: true}
`

type recorder struct {
	mu     sync.Mutex
	events []eventlog.Event
}

func (r *recorder) Record(e eventlog.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// upstream stands in for cache and forward: it answers every A and AAAA query, and HTTPS
// queries with a record carrying an ECH configuration. Its answers are shared across calls,
// as cached records are.
type upstream struct {
	mu    sync.Mutex
	asked []string
	https *dns.HTTPS
}

func (u *upstream) Name() string { return "upstream" }

func (u *upstream) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	u.mu.Lock()
	u.asked = append(u.asked, q.Name)
	u.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 3600}
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.ParseIP("192.0.2.1")}}
	case dns.TypeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::1")}}
	case dns.TypeHTTPS:
		m.Answer = []dns.RR{u.https}
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func newTestHandler(t testing.TB) (*handler, *upstream, *recorder) {
	t.Helper()
	cfg, err := config.Load([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	m, err := lists.New(lists.Config{Lists: cfg.Lists, CacheDir: t.TempDir(), FS: fstest.MapFS{
		"adult.txt":     {Data: []byte("pornhub.com\n")},
		"social.txt":    {Data: []byte("0.0.0.0 facebook.com www.instagram.com\n")},
		"protected.txt": {Data: []byte("abuse.test\n")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := m.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.New(policy.Config{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	f, err := New(Config{Engine: engine, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := dns.NewRR(`svc.example. 300 IN HTTPS 1 . alpn="h3,h2" ech="AEX+DQBBpQAgACBuSKCx0M3aeWmQH9xXxt05XaKx5jVsV5A0PMt7E4nEDAAEAAEAAQASY2xvdWRmbGFyZS1lY2guY29tAAA="`)
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{https: rr.(*dns.HTTPS)}
	return &handler{next: up, f: f}, up, rec
}

func ask(t *testing.T, h *handler, client, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	r := new(dns.Msg)
	r.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		r.SetEdns0(1232, false)
	}
	w := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: client})
	if _, err := h.ServeDNS(context.Background(), w, r); err != nil {
		t.Fatalf("ServeDNS: %v", err)
	}
	if w.Msg == nil {
		t.Fatalf("no answer written for %s %s", name, dns.TypeToString[qtype])
	}
	return w.Msg
}

func ede(m *dns.Msg) (uint16, string, bool) {
	opt := m.IsEdns0()
	if opt == nil {
		return 0, "", false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e.InfoCode, e.ExtraText, true
		}
	}
	return 0, "", false
}

func answers(m *dns.Msg) string {
	var parts []string
	for _, rr := range m.Answer {
		parts = append(parts, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return strings.Join(parts, "; ")
}

func TestBlockResponses(t *testing.T) {
	h, up, _ := newTestHandler(t)
	tests := []struct {
		client, name string
		qtype        uint16
		rcode        int
		answer       string // "" for none
		edeText      string
	}{
		{"10.20.0.5", "www.facebook.com", dns.TypeA, dns.RcodeNameError, "", "category social (profile pupils)"},
		{"10.20.0.5", "pornhub.com", dns.TypeAAAA, dns.RcodeNameError, "", "category adult (profile pupils)"},
		{"10.30.0.5", "pornhub.com", dns.TypeA, dns.RcodeSuccess, "pornhub.com. 60 IN A 0.0.0.0", "category adult (profile guest)"},
		{"10.30.0.5", "pornhub.com", dns.TypeAAAA, dns.RcodeSuccess, "pornhub.com. 60 IN AAAA ::", "category adult"},
		{"10.30.0.5", "pornhub.com", dns.TypeMX, dns.RcodeSuccess, "", "category adult"},
		{"10.10.0.5", "pornhub.com", dns.TypeA, dns.RcodeSuccess, "pornhub.com. 60 IN A 10.0.0.1", "category adult (profile staff)"},
		{"10.10.0.5", "pornhub.com", dns.TypeAAAA, dns.RcodeSuccess, "pornhub.com. 60 IN AAAA fd00::1", "category adult"},
		{"10.10.0.5", "pornhub.com", dns.TypeHTTPS, dns.RcodeSuccess, "", "category adult"},
		{"10.10.0.5", "x.abuse.test", dns.TypeA, dns.RcodeSuccess, "x.abuse.test. 60 IN A 10.0.0.1", "protected list protected"},
		{"10.10.0.5", "use-application-dns.net", dns.TypeA, dns.RcodeNameError, "", "resolver bypass canary"},
		// Addresses in no segment (IPv6 link-local, the WAN, a forgotten subnet) are
		// refused, never resolved unfiltered.
		{"fe80::1234", "example.org", dns.TypeA, dns.RcodeRefused, "", "client in no segment"},
		{"192.0.2.9", "pornhub.com", dns.TypeAAAA, dns.RcodeRefused, "", "client in no segment"},
	}
	for _, tt := range tests {
		t.Run(tt.client+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m := ask(t, h, tt.client, tt.name, tt.qtype, true)
			if m.Rcode != tt.rcode {
				t.Errorf("rcode: got %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
			}
			if got := answers(m); got != tt.answer {
				t.Errorf("answer: got %q, want %q", got, tt.answer)
			}
			if tt.answer == "" && tt.rcode != dns.RcodeRefused && (len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("negative answer without SOA for negative caching: %v", m.Ns)
			}
			code, text, ok := ede(m)
			if !ok || !strings.Contains(text, tt.edeText) {
				t.Errorf("EDE: got %d %q (present %v), want text containing %q", code, text, ok, tt.edeText)
			}
		})
	}
	if len(up.asked) != 0 {
		t.Errorf("blocked names reached the upstream: %v", up.asked)
	}
}

func TestNoEDEWithoutEDNS(t *testing.T) {
	h, _, _ := newTestHandler(t)
	m := ask(t, h, "10.20.0.5", "facebook.com", dns.TypeA, false)
	if m.IsEdns0() != nil {
		t.Errorf("answer has an OPT record although the query had none")
	}
	if m.Rcode != dns.RcodeNameError {
		t.Errorf("rcode: got %s", dns.RcodeToString[m.Rcode])
	}
}

func TestSafeSearchRewrite(t *testing.T) {
	h, up, _ := newTestHandler(t)
	m := ask(t, h, "10.20.0.5", "www.google.co.uk", dns.TypeA, true)
	want := "www.google.co.uk. 300 IN CNAME forcesafesearch.google.com.; forcesafesearch.google.com. 3600 IN A 192.0.2.1"
	if got := answers(m); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	m = ask(t, h, "10.20.0.5", "www.youtube.com", dns.TypeAAAA, true)
	want = "www.youtube.com. 300 IN CNAME restrict.youtube.com.; restrict.youtube.com. 3600 IN AAAA 2001:db8::1"
	if got := answers(m); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	m = ask(t, h, "10.10.0.5", "m.youtube.com", dns.TypeHTTPS, true)
	if len(m.Answer) == 0 || m.Answer[0].(*dns.CNAME).Target != "restrictmoderate.youtube.com." {
		t.Errorf("HTTPS query for staff: got %q", answers(m))
	}
	if got := strings.Join(up.asked, " "); got != "forcesafesearch.google.com. restrict.youtube.com. restrictmoderate.youtube.com." {
		t.Errorf("upstream asked %q: the CNAME target must be resolved through the chain", got)
	}
}

func TestECHStripping(t *testing.T) {
	h, up, _ := newTestHandler(t)
	pupil := ask(t, h, "10.20.0.5", "svc.example", dns.TypeHTTPS, true)
	if strings.Contains(answers(pupil), "ech=") || !strings.Contains(answers(pupil), `alpn="h3,h2"`) {
		t.Errorf("pupil: ech not stripped or other parameters lost: %q", answers(pupil))
	}
	staff := ask(t, h, "10.10.0.5", "svc.example", dns.TypeHTTPS, true)
	if !strings.Contains(answers(staff), "ech=") {
		t.Errorf("staff profile keeps ECH (strip_ech: false), got %q", answers(staff))
	}
	if !hasECH(up.https) {
		t.Error("stripping modified the upstream's (cached) record in place")
	}
}

func TestMalformed(t *testing.T) {
	h, _, _ := newTestHandler(t)
	for _, tt := range []struct {
		name  string
		msg   func() *dns.Msg
		rcode int
	}{
		{"no question", func() *dns.Msg { m := new(dns.Msg); m.Id = 7; return m }, dns.RcodeFormatError},
		{"two questions", func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("a.example.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, dns.RcodeFormatError},
		{"update opcode", func() *dns.Msg {
			m := new(dns.Msg)
			m.SetUpdate("example.")
			return m
		}, dns.RcodeNotImplemented},
		{"chaos class", func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			m.SetEdns0(1232, false)
			return m
		}, dns.RcodeRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: "10.20.0.5"})
			h.ServeDNS(context.Background(), w, tt.msg())
			if w.Msg == nil || w.Msg.Rcode != tt.rcode {
				t.Fatalf("got %v, want rcode %s", w.Msg, dns.RcodeToString[tt.rcode])
			}
			if _, err := w.Msg.Pack(); err != nil {
				t.Errorf("answer does not pack: %v", err)
			}
		})
	}
	// An EDNS query is answered with EDNS even when refused (RFC 6891).
	w := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: "10.20.0.5"})
	q := new(dns.Msg)
	q.SetQuestion("version.bind.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	q.SetEdns0(1232, false)
	h.ServeDNS(context.Background(), w, q)
	if w.Msg.IsEdns0() == nil {
		t.Error("REFUSED answer to an EDNS query has no OPT record")
	}
	var malformed uint64
	for _, s := range h.f.Stats() {
		malformed += s.Malformed
	}
	if malformed != 5 {
		t.Errorf("malformed counter: got %d, want 5", malformed)
	}
}

func TestEventsAndCounters(t *testing.T) {
	h, _, rec := newTestHandler(t)
	ask(t, h, "10.20.0.5", "facebook.com", dns.TypeA, true)
	ask(t, h, "10.20.0.5", "wikipedia.org", dns.TypeAAAA, true)
	ask(t, h, "10.20.0.5", "www.google.com", dns.TypeA, true)
	ask(t, h, "192.0.2.9", "example.org", dns.TypeA, true)
	ask(t, h, "10.10.0.7", "facebook.com", dns.TypeA, true) // staff: social blocked by a schedule
	var got []string
	for _, e := range rec.events {
		got = append(got, strings.Join([]string{e.Client.String(), e.Segment, e.Profile, e.Source, e.Name,
			e.QType, e.Action, e.Tier, e.Category, e.List, e.Rule, e.Schedule}, ","))
	}
	want := []string{
		"10.20.0.5,pupils,pupils,dns,facebook.com,A,block,profile,social,social,facebook.com,",
		"10.20.0.5,pupils,pupils,dns,wikipedia.org,AAAA,allow,default,,,,",
		"10.20.0.5,pupils,pupils,dns,www.google.com,A,rewrite,safesearch,,,www.google.com,",
		"192.0.2.9,,,dns,example.org,A,block,nosegment,,,client in no segment,",
		"10.10.0.7,staff,staff,dns,facebook.com,A,block,profile,social,social,facebook.com,always",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	stats := map[string]SegmentStats{}
	for _, s := range h.f.Stats() {
		stats[s.Segment] = s
	}
	if p := stats["pupils"]; p.Queries != 3 || p.Blocked != 1 || p.Rewritten != 1 {
		t.Errorf("pupils counters: %+v", p)
	}
	if u := stats["unknown"]; u.Queries != 1 || u.Blocked != 1 {
		t.Errorf("unknown-client counters: %+v", u)
	}
}

// FuzzServeDNS feeds raw packets through the handler: whatever unpacks must be answered
// without a panic.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"facebook.com.", dns.TypeA}, {"www.google.com.", dns.TypeHTTPS}, {"svc.example.", dns.TypeHTTPS}, {".", dns.TypeNS}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	h, _, _ := newTestHandler(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			return
		}
		w := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: "10.20.0.5"})
		h.ServeDNS(context.Background(), w, r)
		if w.Msg == nil {
			t.Fatalf("no answer for %v", r)
		}
		if _, err := w.Msg.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, w.Msg)
		}
	})
}
