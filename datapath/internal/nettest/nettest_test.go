package nettest

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestSegmentPlan(t *testing.T) {
	for _, tc := range []struct {
		i                          int
		name                       string
		gw4, gw6, client4, client6 string
		mac                        string
	}{
		{0, "staff", "10.10.0.1/24", "fd00:10::1/64", "10.10.0.2", "fd00:10::2", "02:5c:47:00:01:02"},
		{1, "pupil", "10.20.0.1/24", "fd00:20::1/64", "10.20.0.2", "fd00:20::2", "02:5c:47:00:02:02"},
		{3, "four", "10.40.0.1/24", "fd00:40::1/64", "10.40.0.2", "fd00:40::2", "02:5c:47:00:04:02"},
		{24, "last", "10.250.0.1/24", "fd00:250::1/64", "10.250.0.2", "fd00:250::2", "02:5c:47:00:19:02"},
	} {
		s := segmentPlan(tc.i, SegmentSpec{Name: tc.name})
		got := []string{s.Interface, s.Gateway4.String(), s.Gateway6.String(), s.Client4.String(), s.Client6.String(), s.ClientMAC.String()}
		want := []string{"seg-" + tc.name, tc.gw4, tc.gw6, tc.client4, tc.client6, tc.mac}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("segment %d: got %v, want %v", tc.i, got, want)
		}
		if ClientMAC(tc.i).String() != tc.mac {
			t.Errorf("ClientMAC(%d) = %s, want %s", tc.i, ClientMAC(tc.i), tc.mac)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	s, err := Spec{}.validate()
	if err != nil || len(s.Segments) != 3 || s.Segments[0].Name != "staff" || !s.Segments[2].Guest {
		t.Errorf("empty spec: got %+v, %v; want staff, pupil, guest", s.Segments, err)
	}
	many := make([]SegmentSpec, maxSegments+1)
	for i := range many {
		many[i].Name = "s" + string(rune('a'+i))
	}
	for _, bad := range []Spec{
		{Segments: []SegmentSpec{{Name: "averyverylongname"}}}, // seg-<name> would exceed 15 bytes
		{Segments: []SegmentSpec{{Name: "Staff"}}},
		{Segments: []SegmentSpec{{Name: ""}}},
		{Segments: []SegmentSpec{{Name: "a"}, {Name: "a"}}},
		{Segments: many},
	} {
		if _, err := bad.validate(); err == nil {
			t.Errorf("spec %+v accepted", bad.Segments)
		}
	}
}

func TestInetAddrs(t *testing.T) {
	var topo Topology
	seen := map[netip.Addr]bool{}
	for _, a := range topo.inetAddrs() {
		if seen[a] {
			t.Errorf("address %s handed out twice", a)
		}
		seen[a] = true
	}
	if got := topo.InetAddr6(15).String(); got != "2001:db8:1::10f" {
		t.Errorf("InetAddr6(15) = %s", got)
	}
	if got := topo.InetAddr4(0).String(); got != "203.0.113.100" {
		t.Errorf("InetAddr4(0) = %s", got)
	}
}

func TestAnswer(t *testing.T) {
	zone := Zone{"example.com": {netip.MustParseAddr("203.0.113.100"), netip.MustParseAddr("2001:db8:1::100")}}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"example.com.", dns.TypeA, dns.RcodeSuccess, []string{"203.0.113.100"}},
		{"EXAMPLE.com.", dns.TypeAAAA, dns.RcodeSuccess, []string{"2001:db8:1::100"}},
		{"example.com.", dns.TypeMX, dns.RcodeSuccess, nil},
		{"www.example.com.", dns.TypeA, dns.RcodeNameError, nil},
	} {
		resp := answer(zone, new(dns.Msg).SetQuestion(tc.name, tc.qtype))
		var got []string
		for _, rr := range resp.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				got = append(got, rr.A.String())
			case *dns.AAAA:
				got = append(got, rr.AAAA.String())
			}
			if rr.Header().Name != tc.name {
				t.Errorf("%s: answer owner %s", tc.name, rr.Header().Name)
			}
		}
		if resp.Rcode != tc.rcode || strings.Join(got, ",") != strings.Join(tc.want, ",") || !resp.Authoritative {
			t.Errorf("%s %s: rcode %d answers %v aa %v; want rcode %d answers %v aa", tc.name,
				dns.TypeToString[tc.qtype], resp.Rcode, got, resp.Authoritative, tc.rcode, tc.want)
		}
	}
	noQuestion := answer(zone, &dns.Msg{})
	if noQuestion.Rcode != dns.RcodeFormatError {
		t.Errorf("query without a question: rcode %d, want FORMERR", noQuestion.Rcode)
	}
}

// FuzzAnswer feeds the DNS server's answer function hostile queries, as the inet namespace's
// server gets from whatever a test (or schoolgate's forwarder) sends.
func FuzzAnswer(f *testing.F) {
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("example.com.", dns.TypeA),
		new(dns.Msg).SetQuestion("example.com.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("nope.test.", dns.TypeHTTPS),
	} {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	zone := Zone{"example.com": {netip.MustParseAddr("203.0.113.100"), netip.MustParseAddr("2001:db8:1::100")}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req dns.Msg
		if req.Unpack(b) != nil {
			return
		}
		resp := answer(zone, &req)
		if len(resp.Answer) > 2 {
			t.Fatalf("%d answers for %v", len(resp.Answer), req.Question)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("reply id %d response %v to query %d", resp.Id, resp.Response, req.Id)
		}
	})
}
