// Package tlscert keeps the certificate the web UI is served with, so that
// the UI is only ever reached over HTTPS.
//
// The certificate lives on the data partition, in the directory given as
// Config.Dir: web.crt holds the PEM chain (the server's certificate first,
// then any intermediates) and web.key its PEM private key (PKCS#8, mode
// 0600). Policy:
//
//   - First start: there is no certificate, so Open generates a self-signed
//     ECDSA P-256 one for the names and addresses in Config.Hosts, valid for
//     ten years, and keeps it. Every later start serves the same one, so a
//     browser exception made once stays valid. Its SHA-256 fingerprint is
//     logged and shown by Info, so a technician can compare it with the one
//     in the browser's warning before accepting it; that comparison is what
//     makes a self-signed certificate safe to trust.
//   - Upload: Install takes the school's own certificate and key (for example
//     from their trust's CA), treats them as hostile input, checks them
//     (readable PEM, at most MaxPEMSize bytes and MaxChainLength
//     certificates, a supported key of sufficient strength that belongs to
//     the first certificate, currently valid, usable for a web server, a
//     chain whose certificates sign each other) and only then replaces the
//     files and the certificate being served. A refused upload changes
//     nothing and returns a *RejectError whose message tells the technician
//     what is wrong. Regenerate goes back to a fresh self-signed certificate.
//   - Generated certificates are the gateway's own to replace: Open makes a
//     new one when the kept one has expired (or will within 30 days) or no
//     longer names exactly Config.Hosts (the gateway's address changed).
//     Uploaded certificates are never replaced behind the technician's back:
//     an expired one is still served, logged as a warning and reported by
//     Info.Expired, because a browser warning about an expired certificate
//     is better than silently swapping in a certificate the school's devices
//     do not trust, and because a board without a real-time clock may simply
//     not know the date yet.
//   - Broken files (unreadable, not PEM, a key that does not belong to the
//     certificate, one of the two missing) are not overwritten: they are
//     renamed to web.crt.broken-<UTC time> and web.key.broken-<UTC time>, a
//     warning names the reason, and a new self-signed certificate is
//     generated, because the web UI must come up for the technician to see
//     what happened. The new fingerprint is logged.
//
// Files are written through web.crt.new and web.key.new, each synced, and
// then renamed into place. A save interrupted by a power cut after both new
// files were complete is finished by the next Open; one interrupted earlier
// is discarded, leaving the previous certificate.
//
// Certificates are swapped live: GetCertificate, for tls.Config, always
// returns the current one and is safe for concurrent use. Keys are never
// logged.
package tlscert

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names inside Config.Dir.
const (
	CertFile = "web.crt"
	KeyFile  = "web.key"
)

// Config configures a Manager.
type Config struct {
	// Dir is the directory on the data partition holding web.crt and
	// web.key; it is created (0700) if missing.
	Dir string
	// Hosts are the DNS names and IP literals ("schoolgate.lan",
	// "10.0.10.1") a generated certificate names as subject alternative
	// names. They do not restrict uploaded certificates. With none, the
	// certificate names no host and browsers add a name mismatch to their
	// warning.
	Hosts []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the fingerprint of every certificate generated, loaded
	// or installed, and warnings about broken files; nil discards.
	Logger *slog.Logger
}

// Info describes the certificate being served, for the web UI.
type Info struct {
	Subject   string // RFC 2253 form, e.g. "CN=schoolgate,OU=…,O=schoolgate"
	Issuer    string
	DNSNames  []string
	IPs       []netip.Addr
	NotBefore time.Time
	NotAfter  time.Time
	// Fingerprint is the SHA-256 of the certificate (DER) as upper-case hex
	// pairs joined by ':', as `openssl x509 -fingerprint -sha256` and
	// browsers show it.
	Fingerprint string
	// SelfSigned: the certificate is signed by its own key, so browsers warn
	// unless it was added to their trust store.
	SelfSigned bool
	// Generated: the certificate was made by this package (rather than
	// uploaded), so Open may replace it when it expires or the hosts change.
	Generated bool
	// Expired: the certificate's NotAfter is past, by the gateway's clock.
	Expired bool
}

// Manager holds the current web certificate. Its methods are safe for
// concurrent use.
type Manager struct {
	dir string
	dns []string     // from Config.Hosts, lowercased, deduplicated
	ips []netip.Addr // from Config.Hosts, unmapped, deduplicated
	now func() time.Time
	log *slog.Logger
	mu  sync.Mutex // serialises writers (Install, Regenerate)
	cur atomic.Pointer[current]
}

// current is one certificate ready to serve, with its description.
type current struct {
	cert *tls.Certificate
	info Info // Expired is computed by Manager.Info
}

const (
	// validity of a generated certificate. Browsers do not apply the public
	// CAs' 398-day limit to certificates a user accepted by hand, and a
	// short one would change the fingerprint the technician checked.
	validityYears = 10
	// backdate covers clients whose clocks are slightly behind.
	backdate = time.Hour
	// renewBefore: a generated certificate this close to expiry is replaced
	// at Open, so it does not expire between two restarts.
	renewBefore = 30 * 24 * time.Hour
	// generatedOU marks certificates made by this package.
	generatedOU = "self-signed web UI certificate"
)

// clockFloor is a date before which the clock is taken to be unset (a board
// without a real-time clock before NTP has answered). A certificate generated
// then is still valid from now, but its end is counted from clockFloor so it
// does not expire in 1980.
var clockFloor = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Open loads the certificate kept in cfg.Dir, or generates and keeps a
// self-signed one if there is none, or if the kept one is broken (moved
// aside, see the package comment) or is a generated one that expired or names
// other hosts. Errors are configuration mistakes and disk failures.
func Open(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("no directory given for the web certificate (Config.Dir)")
	}
	dns, ips, err := parseHosts(cfg.Hosts)
	if err != nil {
		return nil, err
	}
	m := &Manager{dir: cfg.Dir, dns: dns, ips: ips, now: cfg.Now, log: cfg.Logger}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the web certificate directory: %w", err)
	}
	if err := m.finishPending(); err != nil {
		return nil, err
	}

	c, err := m.readKept()
	switch {
	case errors.Is(err, errNone):
		m.log.Info("no web certificate yet, generating a self-signed one", "dir", m.dir)
		return m.withGenerated()
	case err != nil:
		if err := m.moveAside(err); err != nil {
			return nil, err
		}
		return m.withGenerated()
	}
	m.fixKeyMode()

	now := m.now()
	info := c.info
	if info.Generated {
		switch {
		case now.After(info.NotAfter.Add(-renewBefore)):
			m.log.Info("self-signed web certificate expired or about to, generating a new one",
				"not_after", info.NotAfter, "old_fingerprint", info.Fingerprint)
			return m.withGenerated()
		case !m.namesHosts(info):
			m.log.Info("self-signed web certificate names other hosts than configured, generating a new one",
				"dns_names", info.DNSNames, "ips", info.IPs, "old_fingerprint", info.Fingerprint)
			return m.withGenerated()
		}
	}
	m.cur.Store(c)
	m.logCert(slog.LevelInfo, "web certificate loaded", info)
	switch {
	case info.Generated:
	case now.After(info.NotAfter):
		m.log.Warn("uploaded web certificate has expired; browsers will refuse it until a renewed one is uploaded (it is kept, not replaced)",
			"not_after", info.NotAfter, "fingerprint", info.Fingerprint)
	case now.Before(info.NotBefore):
		m.log.Warn("uploaded web certificate is not valid yet by the gateway's clock; check the clock",
			"not_before", info.NotBefore, "now", now, "fingerprint", info.Fingerprint)
	}
	return m, nil
}

// GetCertificate returns the certificate being served; it is meant for
// tls.Config.GetCertificate and ignores the ClientHello.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := m.cur.Load()
	if c == nil {
		return nil, errors.New("no web certificate loaded")
	}
	return c.cert, nil
}

// Info describes the certificate being served.
func (m *Manager) Info() Info {
	info := m.cur.Load().info
	info.DNSNames = slices.Clone(info.DNSNames)
	info.IPs = slices.Clone(info.IPs)
	info.Expired = m.now().After(info.NotAfter)
	return info
}

// Install checks an uploaded certificate chain and private key (see the
// package comment) and, if they are acceptable, keeps them and serves them
// from now on. A refused upload returns a *RejectError (errors.Is with
// ErrRejected and with the specific Err… value) and changes nothing; other
// errors are disk failures, after which the previous certificate is still
// served.
func (m *Manager) Install(certPEM, keyPEM []byte) (Info, error) {
	c, err := checkUpload(certPEM, keyPEM, m.now())
	if err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.save(c); err != nil {
		return Info{}, err
	}
	m.cur.Store(c)
	m.logCert(slog.LevelInfo, "web certificate installed", c.info)
	return m.Info(), nil
}

// Regenerate replaces the certificate with a new self-signed one for
// Config.Hosts: the technician's way back from an uploaded certificate, or to
// a new key. The fingerprint changes.
func (m *Manager) Regenerate() (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.replaceWithGenerated(); err != nil {
		return Info{}, err
	}
	return m.Info(), nil
}

// withGenerated ends Open with a new self-signed certificate.
func (m *Manager) withGenerated() (*Manager, error) {
	if err := m.replaceWithGenerated(); err != nil {
		return nil, err
	}
	return m, nil
}

// replaceWithGenerated makes, keeps and serves a new self-signed certificate.
func (m *Manager) replaceWithGenerated() error {
	c, err := generate(m.dns, m.ips, m.now())
	if err != nil {
		return err
	}
	if err := m.save(c); err != nil {
		return err
	}
	m.cur.Store(c)
	m.logCert(slog.LevelInfo, "web certificate generated", c.info)
	return nil
}

func (m *Manager) logCert(level slog.Level, msg string, info Info) {
	m.log.Log(context.Background(), level, msg,
		"fingerprint", info.Fingerprint,
		"subject", info.Subject,
		"issuer", info.Issuer,
		"dns_names", info.DNSNames,
		"ips", info.IPs,
		"not_after", info.NotAfter,
		"self_signed", info.SelfSigned,
		"generated", info.Generated)
}

// namesHosts reports whether a certificate names exactly the configured hosts.
func (m *Manager) namesHosts(info Info) bool {
	dns := make([]string, len(info.DNSNames))
	for i, n := range info.DNSNames {
		dns[i] = strings.ToLower(n)
	}
	slices.Sort(dns)
	ips := slices.Clone(info.IPs)
	slices.SortFunc(ips, netip.Addr.Compare)
	want := slices.Clone(m.dns)
	slices.Sort(want)
	wantIPs := slices.Clone(m.ips)
	slices.SortFunc(wantIPs, netip.Addr.Compare)
	return slices.Equal(slices.Compact(dns), want) && slices.Equal(slices.Compact(ips), wantIPs)
}

// newCurrent builds what is served from a parsed chain and its key, which
// the caller has checked belong together.
func newCurrent(chain []*x509.Certificate, key any) *current {
	leaf := chain[0]
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	selfSigned := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
	info := Info{
		Subject:     leaf.Subject.String(),
		Issuer:      leaf.Issuer.String(),
		DNSNames:    slices.Clone(leaf.DNSNames),
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
		Fingerprint: Fingerprint(leaf.Raw),
		SelfSigned:  selfSigned,
		Generated:   selfSigned && slices.Equal(leaf.Subject.OrganizationalUnit, []string{generatedOU}),
	}
	for _, ip := range leaf.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			info.IPs = append(info.IPs, a.Unmap())
		}
	}
	return &current{
		cert: &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		info: info,
	}
}

// Fingerprint formats the SHA-256 of a DER certificate the way openssl and
// browsers show it: upper-case hex pairs joined by ':'.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(h) * 3 / 2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// parseHosts splits Config.Hosts into DNS names and addresses.
func parseHosts(hosts []string) ([]string, []netip.Addr, error) {
	var dns []string
	var ips []netip.Addr
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() != "" {
				return nil, nil, fmt.Errorf("web certificate host %q: an address with a zone cannot be put in a certificate; give it without %%%s", h, a.Zone())
			}
			if a = a.Unmap(); !slices.Contains(ips, a) {
				ips = append(ips, a)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(name) {
			return nil, nil, fmt.Errorf("web certificate host %q is neither a DNS name nor an IP address", h)
		}
		if !slices.Contains(dns, name) {
			dns = append(dns, name)
		}
	}
	return dns, ips, nil
}

// validDNSName accepts lowercase LDH host names (no wildcards: a generated
// certificate names the gateway itself).
func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
