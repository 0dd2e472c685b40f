package dnssvc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/config"
)

// Probe asks an upstream resolver for the root's name servers, the way the forwarder talks
// to it (plain DNS over UDP, or DNS over TLS with its server name and CA), and returns how
// long the answer took. The dashboard shows whether the upstreams are reachable: when none
// is, every allowed name fails to resolve although filtering itself is healthy.
func Probe(ctx context.Context, u config.Upstream) (time.Duration, error) {
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	addr, isTLS := strings.CutPrefix(u.Address, "tls://")
	if isTLS {
		tc := &tls.Config{ServerName: u.TLSServerName, MinVersion: tls.VersionTLS12}
		if u.TLSCA != "" {
			pem, err := os.ReadFile(u.TLSCA)
			if err != nil {
				return 0, err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return 0, fmt.Errorf("%s: no certificate in it", u.TLSCA)
			}
		}
		c.Net, c.TLSConfig = "tcp-tls", tc
	}
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.RecursionDesired = true
	r, rtt, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return 0, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return rtt, errors.New("answered " + dns.RcodeToString[r.Rcode])
	}
	return rtt, nil
}
