package dnssvc

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/config"
)

// A real resolver on loopback answers the probe; a port where nothing listens does not; a
// resolver that refuses is reported as such.
func TestProbe(t *testing.T) {
	start := func(rcode int) string {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(r, rcode)
			w.WriteMsg(m)
		})}
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
		return pc.LocalAddr().String()
	}
	ok := start(dns.RcodeSuccess)
	if _, err := Probe(context.Background(), config.Upstream{Address: ok}); err != nil {
		t.Errorf("a working upstream: %v", err)
	}
	if _, err := Probe(context.Background(), config.Upstream{Address: start(dns.RcodeRefused)}); err == nil || err.Error() != "answered REFUSED" {
		t.Errorf("a refusing upstream: %v", err)
	}
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	if _, err := Probe(context.Background(), config.Upstream{Address: dead}); err == nil {
		t.Error("no upstream listening, yet the probe succeeded")
	}
}
