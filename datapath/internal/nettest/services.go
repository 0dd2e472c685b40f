package nettest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Zone maps host names to the A and AAAA answers of the internet's authoritative DNS
// server. Names are matched without case and without the trailing dot.
type Zone map[string][]netip.Addr

// UDP ports on which StartInet echoes datagrams back: the VPN protocols schoolgate can
// block (WireGuard, OpenVPN, IKE and IKE over NAT) and DNS over QUIC.
const (
	PortWireGuard = 51820
	PortOpenVPN   = 1194
	PortIKE       = 500
	PortIKENAT    = 4500
	PortDoQ       = 853
)

// EchoPorts lists the UDP ports with an echo server.
func EchoPorts() []int { return []int{PortWireGuard, PortOpenVPN, PortIKE, PortIKENAT, PortDoQ} }

// DNSName is the name in the servers' certificate for the DNS server, for DoT clients
// that verify a name (it is not in any Zone).
const DNSName = "dns.nettest.test"

// Inet describes the running internet services of a topology.
type Inet struct {
	CA    *x509.CertPool // the test CA that signed every server certificate
	CAPEM []byte

	// DNS answers Zone on UDP and TCP port 53, at 203.0.113.53 and 2001:db8:1::53 only.
	DNS, DNS6 netip.AddrPort
	// DoT is DNS over TLS at the same addresses (certificate for DNSName and the IPs); the
	// DoT server answers on port 853 of every inet address, as public resolvers' do.
	DoT, DoT6 netip.AddrPort

	Zone Zone // the zone served, names lowercased without a trailing dot
}

// Addrs returns the zone's addresses for name.
func (i *Inet) Addrs(name string) []netip.Addr { return i.Zone[canonical(name)] }

// TLSConfig returns a client configuration that trusts the test CA.
func (i *Inet) TLSConfig() *tls.Config { return &tls.Config{RootCAs: i.CA} }

// StartInet starts the internet's servers in the inet namespace and stops them in
// tb.Cleanup. On every inet address (InetAddr4/6; not IperfAddrs) it serves:
//   - HTTPS on TCP 443 (TLS 1.3; any SNI or none gets the one certificate, valid for every
//     zone name), HTTP/3 on UDP 443 and HTTP on TCP 80, each answering "hello from <host>";
//   - DNS over TLS on TCP 853 and UDP echo on EchoPorts.
//
// The zone's addresses should be InetAddrs; the authoritative DNS is at Inet.DNS/DNS6.
func (t *Topology) StartInet(tb testing.TB, zone Zone) *Inet {
	tb.Helper()
	inet, err := t.startInet(tb, zone)
	if err != nil {
		tb.Fatalf("starting inet services: %v", err)
	}
	return inet
}

func (t *Topology) startInet(tb testing.TB, zone Zone) (*Inet, error) {
	canon := Zone{}
	names := []string{DNSName}
	for name, addrs := range zone {
		c := canonical(name)
		if _, ok := dns.IsDomainName(c); !ok || c == "" {
			return nil, fmt.Errorf("zone name %q is not a domain name", name)
		}
		canon[c] = append(canon[c], addrs...)
		names = append(names, c)
	}
	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.issue(names, append([]netip.Addr{dns4, dns6}, t.serverAddrs()...))
	if err != nil {
		return nil, err
	}
	inet := &Inet{
		CA: ca.pool, CAPEM: ca.pem,
		DNS: netip.AddrPortFrom(dns4, 53), DNS6: netip.AddrPortFrom(dns6, 53),
		DoT: netip.AddrPortFrom(dns4, 853), DoT6: netip.AddrPortFrom(dns6, 853),
		Zone: canon,
	}

	s := &servers{ns: t.Inet}
	tb.Cleanup(s.close)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	hello := helloHandler()

	// Wildcard listeners ("tcp", ":443") are dual-stack and cover every inet address.
	// Replies to UDP on a wildcard socket need the right source address (the appliance's
	// NAT only matches replies from the address the client wrote to): quic-go, miekg/dns
	// and the echo servers set it from the packet's destination.
	httpsConf := tlsConf.Clone()
	httpsConf.NextProtos = []string{"h2", "http/1.1"}
	s.serveHTTP("tcp", ":443", &http.Server{Handler: hello, TLSConfig: httpsConf})
	s.serveHTTP("tcp", ":80", &http.Server{Handler: hello})
	s.serveHTTP3(":443", &http3.Server{Handler: hello, TLSConfig: http3.ConfigureTLSConfig(tlsConf.Clone())})

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		_ = w.WriteMsg(answer(canon, req))
	})
	for _, a := range []netip.Addr{dns4, dns6} {
		ap := netip.AddrPortFrom(a, 53).String()
		s.serveDNS("udp", ap, handler, nil)
		s.serveDNS("tcp", ap, handler, nil)
	}
	dotConf := tlsConf.Clone()
	dotConf.NextProtos = []string{"dot"}
	s.serveDNS("tcp", ":853", handler, dotConf)

	for _, port := range EchoPorts() {
		s.serveEcho(port)
	}
	if err := errors.Join(s.errs...); err != nil {
		return nil, err
	}
	return inet, nil
}

// serverAddrs are the addresses the servers answer on (for the certificate's IP SANs).
func (t *Topology) serverAddrs() []netip.Addr {
	var addrs []netip.Addr
	for i := range InetAddrCount {
		addrs = append(addrs, t.InetAddrs(i)...)
	}
	return addrs
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// BigPath is a path every web server answers with BigSize bytes after the greeting, for
// tests of what happens to the many packets of an established flow.
const (
	BigPath = "/big"
	BigSize = 1 << 20
)

// helloHandler names the host asked for, so a test can tell which site it reached and that
// it reached it at all.
func helloHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Nettest-Proto", r.Proto)
		fmt.Fprintf(w, "hello from %s", host)
		if r.URL.Path == BigPath {
			w.Write(bytes.Repeat([]byte{'.'}, BigSize))
		}
	})
}

// answer is the authoritative DNS server's reply to req: the zone's A or AAAA records,
// an empty answer for other types of a known name, NXDOMAIN for unknown names.
func answer(zone Zone, req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return m.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return m.SetRcode(req, dns.RcodeFormatError)
	}
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	addrs, ok := zone[canonical(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
		return m
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	for _, a := range addrs {
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			h := hdr
			h.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: h, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			h := hdr
			h.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: a.AsSlice()})
		}
	}
	return m
}

// servers starts servers in a namespace and stops them all; the first errors are kept.
type servers struct {
	ns      *NS
	errs    []error
	closers []func()
	wg      sync.WaitGroup
}

func (s *servers) fail(err error) { s.errs = append(s.errs, err) }

func (s *servers) close() {
	for _, c := range s.closers {
		c()
	}
	s.wg.Wait()
}

func (s *servers) listen(network, addr string) net.Listener {
	l, err := s.ns.Listen(network, addr)
	if err != nil {
		s.fail(fmt.Errorf("listening on %s %s: %w", network, addr, err))
		return nil
	}
	return l
}

func (s *servers) listenPacket(network, addr string) net.PacketConn {
	pc, err := s.ns.ListenPacket(network, addr)
	if err != nil {
		s.fail(fmt.Errorf("listening on %s %s: %w", network, addr, err))
		return nil
	}
	return pc
}

func (s *servers) serveHTTP(network, addr string, srv *http.Server) {
	l := s.listen(network, addr)
	if l == nil {
		return
	}
	s.goServe(func() {
		if srv.TLSConfig != nil {
			srv.ServeTLS(l, "", "")
		} else {
			srv.Serve(l)
		}
	}, func() { srv.Close() })
}

func (s *servers) serveHTTP3(addr string, srv *http3.Server) {
	pc := s.listenPacket("udp", addr)
	if pc == nil {
		return
	}
	s.goServe(func() { srv.Serve(pc) }, func() { srv.Close(); pc.Close() })
}

// serveDNS serves DNS on a UDP or TCP socket, over TLS when tlsConf is set.
func (s *servers) serveDNS(network, addr string, h dns.Handler, tlsConf *tls.Config) {
	srv := &dns.Server{Handler: h}
	if network == "udp" {
		srv.PacketConn = s.listenPacket(network, addr)
		if srv.PacketConn == nil {
			return
		}
	} else {
		l := s.listen(network, addr)
		if l == nil {
			return
		}
		if tlsConf != nil {
			l = tls.NewListener(l, tlsConf)
		}
		srv.Listener = l
	}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	s.goServe(func() {
		if err := srv.ActivateAndServe(); err != nil {
			select {
			case <-started:
			default:
				close(started) // failed before starting: do not wait below
			}
		}
	}, func() { srv.Shutdown() })
	// Wait until the UDP server has asked for the packets' destination addresses, so the
	// first reply already comes from the right one.
	<-started
}

// serveEcho echoes datagrams on port, from the address they were sent to.
func (s *servers) serveEcho(port int) {
	if pc := s.listenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port)); pc != nil {
		p := ipv4.NewPacketConn(pc)
		if err := p.SetControlMessage(ipv4.FlagDst, true); err != nil {
			s.fail(fmt.Errorf("asking for destination addresses on udp4 %d: %w", port, err))
		}
		s.goServe(func() {
			buf := make([]byte, 65535)
			for {
				n, cm, from, err := p.ReadFrom(buf)
				if err != nil {
					return
				}
				var reply *ipv4.ControlMessage
				if cm != nil {
					reply = &ipv4.ControlMessage{Src: cm.Dst}
				}
				p.WriteTo(buf[:n], reply, from)
			}
		}, func() { pc.Close() })
	}
	if pc := s.listenPacket("udp6", fmt.Sprintf("[::]:%d", port)); pc != nil {
		p := ipv6.NewPacketConn(pc)
		if err := p.SetControlMessage(ipv6.FlagDst, true); err != nil {
			s.fail(fmt.Errorf("asking for destination addresses on udp6 %d: %w", port, err))
		}
		s.goServe(func() {
			buf := make([]byte, 65535)
			for {
				n, cm, from, err := p.ReadFrom(buf)
				if err != nil {
					return
				}
				var reply *ipv6.ControlMessage
				if cm != nil {
					reply = &ipv6.ControlMessage{Src: cm.Dst}
				}
				p.WriteTo(buf[:n], reply, from)
			}
		}, func() { pc.Close() })
	}
}

func (s *servers) goServe(serve, stop func()) {
	s.closers = append(s.closers, stop)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		serve()
	}()
}
