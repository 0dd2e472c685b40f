package dnssvc

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/dnsfilter"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

func TestCorefile(t *testing.T) {
	got, err := Corefile(Config{
		Listen: "127.0.0.1:5353",
		Upstreams: []config.Upstream{
			{Address: "tls://1.1.1.1:853", TLSServerName: "cloudflare-dns.com"},
			{Address: "tls://1.0.0.1:853", TLSServerName: "cloudflare-dns.com"},
		},
		CacheSize: 5000,
	}, "sg7")
	if err != nil {
		t.Fatal(err)
	}
	want := `.:5353 {
	bind 127.0.0.1
	errors
	schoolfilter sg7
	cache {
		success 5000
		denial 5000
	}
	forward . tls://1.1.1.1:853 tls://1.0.0.1:853 {
		tls_servername cloudflare-dns.com
		health_check 5s
	}
}
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, tt := range []struct {
		cfg Config
		err string
	}{
		{Config{Listen: "nonsense", Upstreams: []config.Upstream{{Address: "1.1.1.1:53"}}}, "listen address"},
		{Config{Listen: "0.0.0.0:53"}, "no upstream"},
		{Config{Listen: "0.0.0.0:53", Upstreams: []config.Upstream{
			{Address: "tls://1.1.1.1:853", TLSServerName: "a"}, {Address: "tls://9.9.9.9:853", TLSServerName: "b"}}}, "share one tls_server_name"},
		{Config{Listen: "0.0.0.0:53", Upstreams: []config.Upstream{
			{Address: "tls://10.0.0.1:853", TLSServerName: "a", TLSCA: "/ca1.pem"},
			{Address: "tls://10.0.0.2:853", TLSServerName: "a", TLSCA: "/ca2.pem"}}}, "share one tls_ca"},
	} {
		if _, err := Corefile(tt.cfg, "x"); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%+v: got %v, want error containing %q", tt.cfg, err, tt.err)
		}
	}
}

// startUpstream runs a plain DNS server on loopback that answers every A query with
// 192.0.2.1 and counts queries.
func startUpstream(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		n.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.1")}}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), &n
}

func newFilter(t *testing.T) *dnsfilter.Filter {
	t.Helper()
	cfg, err := config.Load([]byte(`
dns: {listen: "127.0.0.1:5353", upstreams: [{address: "127.0.0.1:53"}]}
segments: [{name: lo, subnets: [127.0.0.0/8], profile: p}]
profiles: [{name: p, block_categories: [gambling]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	gambling, _ := category.SetOf("gambling")
	b := lists.NewSetBuilder(1)
	b.Add("bet365.com", 0)
	cat := &lists.Catalog{Domains: b.Build(nil), Protected: lists.NewSetBuilder(0).Build(nil),
		Tags: []lists.Tag{{Categories: gambling, Lists: []string{"gambling"}}}}
	snap, err := policy.Compile(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(policy.Config{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	f, err := dnsfilter.New(dnsfilter.Config{Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func query(addr, name, network string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// queryRetry asks like a stub resolver: a short timeout, then one more try.
func queryRetry(addr, name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		r, _, err = c.Exchange(m, addr)
	}
	return r, err
}

func TestServeAndReconfigure(t *testing.T) {
	up, asked := startUpstream(t)
	cfg := Config{Listen: "127.0.0.1:0", Upstreams: []config.Upstream{{Address: up}}, Filter: newFilter(t)}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	udp, tcp := s.Addrs()
	for _, tt := range []struct{ network, addr string }{{"udp", udp.String()}, {"tcp", tcp.String()}} {
		r, err := query(tt.addr, "bet365.com", tt.network)
		if err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("%s bet365.com: got %v %v, want NXDOMAIN", tt.network, r, err)
		}
		r, err = query(tt.addr, "example.org", tt.network)
		if err != nil || len(r.Answer) != 1 {
			t.Errorf("%s example.org: got %v %v, want the upstream's answer", tt.network, r, err)
		}
	}
	if asked.Load() != 1 {
		t.Errorf("upstream asked %d times, want 1 (second answer from cache, blocked never forwarded)", asked.Load())
	}

	// A graceful restart with a new cache size while queries flow: no client may see a
	// failure. CoreDNS hands its sockets over, but a UDP query read by the old server at the
	// instant it stops can go unanswered (coredns/coredns#1666), so the clients here retry
	// once after a short timeout, as every stub resolver does. Policy and list reloads never
	// restart CoreDNS at all.
	var wg sync.WaitGroup
	var failures atomic.Int64
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := queryRetry(udp.String(), "example.org")
				if err != nil || r.Rcode != dns.RcodeSuccess {
					failures.Add(1)
					t.Logf("failed during restart: %v %v", r, err)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	next := cfg
	next.Listen = udp.String() // keep the bound port
	next.CacheSize = 2000
	if err := s.Reconfigure(next); err != nil {
		t.Fatalf("reconfigure: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d queries failed during the restart", failures.Load())
	}
	if r, err := query(udp.String(), "bet365.com", "udp"); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("after restart: got %v %v, want NXDOMAIN", r, err)
	}
}

func TestNoFilterBaseline(t *testing.T) {
	up, _ := startUpstream(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Upstreams: []config.Upstream{{Address: up}}, NoFilter: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	udp, _ := s.Addrs()
	r, err := query(udp.String(), "bet365.com", "udp")
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("without the filter bet365.com is forwarded: got %v %v", r, err)
	}
}

func TestParseLogLine(t *testing.T) {
	for in, want := range map[string]string{
		"[ERROR] plugin/errors: 2 x. A: timeout": "ERROR|plugin/errors: 2 x. A: timeout",
		"[INFO] Reloading":                       "INFO|Reloading",
		"[WARNING] x":                            "WARN|x",
		"plain line":                             "INFO|plain line",
	} {
		l, msg := parseLogLine(in)
		if got := l.String() + "|" + msg; got != want {
			t.Errorf("parseLogLine(%q) = %q, want %q", in, got, want)
		}
	}
}
