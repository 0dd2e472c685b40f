package nettest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ClientOptions configure the HTTP clients of a namespace.
type ClientOptions struct {
	// TLS is the client's TLS configuration, typically Inet.TLSConfig(). Nil uses Go's
	// defaults, which do not trust the test CA.
	TLS *tls.Config
	// Hosts maps host names in URLs to the address to connect to, like curl's --resolve;
	// the TLS server name and Host header stay the URL's. Hosts not listed must be IP
	// addresses.
	Hosts map[string]netip.Addr
	// Timeout bounds each request; zero means 10 seconds.
	Timeout time.Duration
}

func (o ClientOptions) timeout() time.Duration {
	if o.Timeout == 0 {
		return 10 * time.Second
	}
	return o.Timeout
}

// resolve rewrites host:port through Hosts.
func (o ClientOptions) resolve(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if a, ok := o.Hosts[host]; ok {
		return net.JoinHostPort(a.String(), port), nil
	}
	return addr, nil
}

// HTTPClient returns an HTTP/1.1 and HTTP/2 client whose connections are made inside the
// namespace.
func (n *NS) HTTPClient(opts ClientOptions) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			addr, err := opts.resolve(addr)
			if err != nil {
				return nil, err
			}
			return n.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   opts.TLS,
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true, // every request is a new flow, as the packet path sees it
	}
	return &http.Client{Transport: tr, Timeout: opts.timeout()}
}

// HTTP3Client returns an HTTP/3 client whose UDP socket lives in the namespace. Call
// close when done: it closes the QUIC connections and the socket.
func (n *NS) HTTP3Client(opts ClientOptions) (c *http.Client, close func() error, err error) {
	pc, err := n.ListenPacket("udp", ":0")
	if err != nil {
		return nil, nil, fmt.Errorf("opening udp socket in %s: %w", n.Name, err)
	}
	qt := &quic.Transport{Conn: pc}
	h3 := &http3.Transport{
		TLSClientConfig: opts.TLS,
		Dial: func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
			addr, err := opts.resolve(addr)
			if err != nil {
				return nil, err
			}
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dialing %s: %w", addr, ErrNeedIP)
			}
			return qt.DialEarly(ctx, net.UDPAddrFromAddrPort(ap), tlsConf, conf)
		},
	}
	close = func() error {
		return errors.Join(h3.Close(), qt.Close(), pc.Close())
	}
	return &http.Client{Transport: h3, Timeout: opts.timeout()}, close, nil
}

// Ping sends ICMP echo requests to dst from inside the namespace, one every 200 ms, until a
// reply comes back (nil) or ctx is done (an error).
func (n *NS) Ping(ctx context.Context, dst netip.Addr) error {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	pc, err := n.ListenPacket(network, laddr)
	if err != nil {
		return fmt.Errorf("opening icmp socket in %s: %w", n.Name, err)
	}
	defer pc.Close()

	// A raw socket sees every ICMP packet of the namespace: the ID tells ours apart.
	id := (os.Getpid() ^ int(time.Now().UnixNano())) & 0xffff
	to := &net.IPAddr{IP: dst.AsSlice()}
	buf := make([]byte, 1500)
	for seq := 1; ; seq++ {
		req := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("nettest")}}
		b, err := req.Marshal(nil) // the kernel fills in the ICMPv6 checksum
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo(b, to); err != nil {
			return fmt.Errorf("pinging %s from %s: %w", dst, n.Name, err)
		}
		wait := time.Now().Add(200 * time.Millisecond)
		for ctx.Err() == nil && time.Now().Before(wait) {
			pc.SetReadDeadline(wait)
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(proto, buf[:k])
			if err != nil || m.Type != replyType {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && from.String() == to.String() {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pinging %s from %s: no reply: %w", dst, n.Name, ctx.Err())
		}
	}
}
