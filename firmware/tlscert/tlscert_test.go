package tlscert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpora")

// t0 is the gateway's clock in most tests.
var t0 = time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC)

var testHosts = []string{"schoolgate.lan", "10.0.10.1", "127.0.0.1"}

// logBuf collects log output; handlers may write from several goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	dir  string
	now  time.Time
	logs *logBuf
}

func newEnv(t *testing.T) *env {
	return &env{dir: filepath.Join(t.TempDir(), "tls"), now: t0, logs: &logBuf{}}
}

func (e *env) config(hosts ...string) Config {
	if hosts == nil {
		hosts = testHosts
	}
	return Config{
		Dir:    e.dir,
		Hosts:  hosts,
		Now:    func() time.Time { return e.now },
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func (e *env) open(t *testing.T, hosts ...string) *Manager {
	t.Helper()
	m, err := Open(e.config(hosts...))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return m
}

func served(t *testing.T, m *Manager) *tls.Certificate {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "schoolgate.lan"})
	if err != nil || c == nil || len(c.Certificate) == 0 {
		t.Fatalf("GetCertificate = %v, %v", c, err)
	}
	return c
}

// opensslStyle is the fingerprint as `openssl x509 -fingerprint -sha256` prints it.
func opensslStyle(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func servedFingerprint(t *testing.T, m *Manager) string {
	t.Helper()
	return opensslStyle(served(t, m).Certificate[0])
}

// snapshot returns every file in dir with its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func keyMode(t *testing.T, dir string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// ---- test certificates, made afresh by every run (no keys in the repo) ----

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	rsa2048 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsa1024 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func serial() *big.Int {
	var b [16]byte
	rand.Read(b[:])
	return new(big.Int).SetBytes(b[:])
}

func newCA(t testing.TB, cn string, now time.Time) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Test Trust"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pemCert(der)}
}

type leafSpec struct {
	key       crypto.Signer // nil: a new P-256 key
	notBefore time.Time     // zero: now - 1h
	notAfter  time.Time     // zero: now + 1 year
	eku       []x509.ExtKeyUsage
	noEKU     bool
	keyUsage  x509.KeyUsage // zero: DigitalSignature
	dns       []string      // nil: schoolgate.example.org
	noSAN     bool
	isCA      bool
}

// issue makes a leaf certificate signed by ca and returns the leaf's DER and key.
func (ca *testCA) issue(t testing.TB, now time.Time, s leafSpec) ([]byte, crypto.Signer) {
	t.Helper()
	if s.key == nil {
		s.key = newKey(t)
	}
	if s.notBefore.IsZero() {
		s.notBefore = now.Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = now.AddDate(1, 0, 0)
	}
	if s.eku == nil && !s.noEKU {
		s.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if s.keyUsage == 0 {
		s.keyUsage = x509.KeyUsageDigitalSignature
	}
	if s.dns == nil && !s.noSAN {
		s.dns = []string{"schoolgate.example.org"}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "schoolgate.example.org"},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              s.keyUsage,
		ExtKeyUsage:           s.eku,
		DNSNames:              s.dns,
		BasicConstraintsValid: true,
		IsCA:                  s.isCA,
	}
	if !s.noSAN {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, s.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, s.key
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t testing.TB, key crypto.Signer, typ string) []byte {
	t.Helper()
	var der []byte
	var err error
	switch typ {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(key)
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	default:
		t.Fatalf("pemKey: unknown type %q", typ)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// validUpload is a CA-issued leaf with its intermediate and its key.
func validUpload(t testing.TB, now time.Time) (ca *testCA, chainPEM, keyPEM []byte) {
	ca = newCA(t, "Test Trust Issuing CA", now)
	der, key := ca.issue(t, now, leafSpec{})
	return ca, append(pemCert(der), ca.pem...), pemKey(t, key, "PRIVATE KEY")
}

// ---- tests ----

func TestGeneratedCertificateIsKept(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	info := m.Info()
	leaf := served(t, m).Leaf

	if !info.SelfSigned || !info.Generated || info.Expired {
		t.Errorf("Info: SelfSigned %v, Generated %v, Expired %v; want true, true, false", info.SelfSigned, info.Generated, info.Expired)
	}
	if !strings.Contains(info.Subject, "CN=schoolgate") || info.Subject != info.Issuer {
		t.Errorf("Subject %q, Issuer %q; want CN=schoolgate, self-issued", info.Subject, info.Issuer)
	}
	if got, want := info.DNSNames, []string{"schoolgate.lan"}; !slices.Equal(got, want) {
		t.Errorf("DNSNames = %v, want %v", got, want)
	}
	wantIPs := []netip.Addr{netip.MustParseAddr("10.0.10.1"), netip.MustParseAddr("127.0.0.1")}
	if !slices.Equal(info.IPs, wantIPs) {
		t.Errorf("IPs = %v, want %v", info.IPs, wantIPs)
	}
	if want := t0.Add(-time.Hour); !info.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", info.NotBefore, want)
	}
	if want := t0.AddDate(10, 0, 0); !info.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", info.NotAfter, want)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("IsCA %v, KeyUsage %v, ExtKeyUsage %v; want false, DigitalSignature, [ServerAuth]", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() < 100 {
		t.Errorf("serial %v: want a positive random 128-bit number", leaf.SerialNumber)
	}
	if got := keyMode(t, e.dir); got != 0o600 {
		t.Errorf("%s mode %v, want 0600", KeyFile, got)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "web certificate generated") || !strings.Contains(logs, info.Fingerprint) {
		t.Errorf("log does not announce the generated certificate's fingerprint:\n%s", logs)
	}

	files := snapshot(t, e.dir)
	again := e.open(t)
	if got := again.Info().Fingerprint; got != info.Fingerprint {
		t.Errorf("second Open serves %s, want the kept %s", got, info.Fingerprint)
	}
	if after := snapshot(t, e.dir); !mapsEqual(after, files) {
		t.Errorf("second Open changed the files: %v → %v", keys(files), keys(after))
	}
	if logs := e.logs.String(); !strings.Contains(logs, `msg="web certificate loaded"`) {
		t.Errorf("second Open did not log the loaded certificate:\n%s", logs)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestFingerprintFormat(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	fp := m.Info().Fingerprint
	if want := opensslStyle(served(t, m).Certificate[0]); fp != want {
		t.Errorf("Fingerprint = %s, want %s", fp, want)
	}
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("Fingerprint %q is not 32 upper-case hex pairs joined by ':'", fp)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed; compared with the fingerprint computed here only")
		return
	}
	out, err := exec.Command(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", filepath.Join(e.dir, CertFile)).Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	// "sha256 Fingerprint=AB:CD:…" (OpenSSL 3) or "SHA256 Fingerprint=…"
	_, got, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	if got != fp {
		t.Errorf("openssl says %s, Info says %s", got, fp)
	}
}

// handshake connects to a TLS server using m and returns what the client saw.
func handshake(t *testing.T, addr string, roots *x509.CertPool, serverName string) tls.ConnectionState {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs:    roots,
		ServerName: serverName,
		Time:       func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatalf("handshake with %s as %q: %v", addr, serverName, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "ok" {
		t.Fatalf("read %q, %v; want ok", b, err)
	}
	return conn.ConnectionState()
}

func serveTLS(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: m.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestHandshakeOverLoopback(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	addr := serveTLS(t, m)

	// A browser that the technician told to trust the self-signed
	// certificate, by name and by address.
	roots := x509.NewCertPool()
	roots.AddCert(served(t, m).Leaf)
	for _, name := range []string{"schoolgate.lan", "127.0.0.1"} {
		st := handshake(t, addr, roots, name)
		if got, want := opensslStyle(st.PeerCertificates[0].Raw), m.Info().Fingerprint; got != want {
			t.Errorf("as %s: peer sees %s, Info says %s", name, got, want)
		}
	}

	// An uploaded certificate is served by the same listener at once, with
	// its intermediate.
	ca, chainPEM, keyPEM := validUpload(t, t0)
	info, err := m.Install(chainPEM, keyPEM)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	caRoots := x509.NewCertPool()
	caRoots.AddCert(ca.cert)
	st := handshake(t, addr, caRoots, "schoolgate.example.org")
	if got := opensslStyle(st.PeerCertificates[0].Raw); got != info.Fingerprint {
		t.Errorf("after Install: peer sees %s, Install said %s", got, info.Fingerprint)
	}
	if len(st.PeerCertificates) != 2 {
		t.Errorf("after Install: peer got %d certificates, want leaf and intermediate", len(st.PeerCertificates))
	}

	// And back to self-signed.
	info, err = m.Regenerate()
	if err != nil {
		t.Fatalf("Regenerate: %v", err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(served(t, m).Leaf)
	st = handshake(t, addr, roots, "schoolgate.lan")
	if got := opensslStyle(st.PeerCertificates[0].Raw); got != info.Fingerprint {
		t.Errorf("after Regenerate: peer sees %s, Regenerate said %s", got, info.Fingerprint)
	}
}

func TestInstall(t *testing.T) {
	ca := newCA(t, "Test Trust Issuing CA", t0)
	ecDER, ecKey := ca.issue(t, t0, leafSpec{})
	rsaDER, rsaKey := ca.issue(t, t0, leafSpec{key: rsa2048(), keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})
	noEKUDER, noEKUKey := ca.issue(t, t0, leafSpec{noEKU: true})

	tests := []struct {
		name      string
		cert, key []byte
		chainLen  int
	}{
		{"ECDSA PKCS#8 with intermediate", append(pemCert(ecDER), ca.pem...), pemKey(t, ecKey, "PRIVATE KEY"), 2},
		{"ECDSA SEC 1 leaf only", pemCert(ecDER), pemKey(t, ecKey, "EC PRIVATE KEY"), 1},
		{"RSA-2048 PKCS#1", append(pemCert(rsaDER), ca.pem...), pemKey(t, rsaKey, "RSA PRIVATE KEY"), 2},
		{"no extended key usage", pemCert(noEKUDER), pemKey(t, noEKUKey, "PRIVATE KEY"), 1},
		{"Windows: BOM, CRLF, text around the blocks",
			[]byte("\xef\xbb\xbfsubject=CN = schoolgate.example.org\r\n" + strings.ReplaceAll(string(pemCert(ecDER)), "\n", "\r\n") + "\r\nissuer=…\r\n" + strings.ReplaceAll(string(ca.pem), "\n", "\r\n")),
			[]byte("\xef\xbb\xbf-----BEGIN EC PARAMETERS-----\r\nBggqhkjOPQMBBw==\r\n-----END EC PARAMETERS-----\r\n" + strings.ReplaceAll(string(pemKey(t, ecKey, "EC PRIVATE KEY")), "\n", "\r\n")),
			2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.open(t)
			info, err := m.Install(tt.cert, tt.key)
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			c := served(t, m)
			if got := opensslStyle(c.Certificate[0]); got != info.Fingerprint || m.Info().Fingerprint != got {
				t.Errorf("served %s; Install said %s, Info says %s", got, info.Fingerprint, m.Info().Fingerprint)
			}
			if len(c.Certificate) != tt.chainLen {
				t.Errorf("serving %d certificates, want %d", len(c.Certificate), tt.chainLen)
			}
			if info.SelfSigned || info.Generated || info.Expired {
				t.Errorf("Info: SelfSigned %v, Generated %v, Expired %v; want all false", info.SelfSigned, info.Generated, info.Expired)
			}
			if info.Issuer != ca.cert.Subject.String() || !strings.Contains(info.Subject, "CN=schoolgate.example.org") {
				t.Errorf("Subject %q, Issuer %q", info.Subject, info.Issuer)
			}
			if got := keyMode(t, e.dir); got != 0o600 {
				t.Errorf("%s mode %v, want 0600", KeyFile, got)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "web certificate installed") || !strings.Contains(logs, info.Fingerprint) {
				t.Errorf("Install was not logged with its fingerprint:\n%s", logs)
			}
			// Kept across a restart, even though it does not name the
			// configured hosts: it is the school's, not ours to replace.
			again := e.open(t)
			if got := again.Info(); got.Fingerprint != info.Fingerprint || got.Generated {
				t.Errorf("after reopening: %s (generated %v), want the installed %s", got.Fingerprint, got.Generated, info.Fingerprint)
			}
			if got := len(served(t, again).Certificate); got != tt.chainLen {
				t.Errorf("after reopening: serving %d certificates, want %d", got, tt.chainLen)
			}
		})
	}
}

func TestInstallRefuses(t *testing.T) {
	ca := newCA(t, "Test Trust Issuing CA", t0)
	otherCA := newCA(t, "Some Other CA", t0)
	leafDER, leafKey := ca.issue(t, t0, leafSpec{})
	leafPEM := pemCert(leafDER)
	keyPEM := pemKey(t, leafKey, "PRIVATE KEY")
	chain := append(slices.Clone(leafPEM), ca.pem...)

	expiredDER, expiredKey := ca.issue(t, t0, leafSpec{notBefore: t0.AddDate(-1, 0, 0), notAfter: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)})
	futureDER, futureKey := ca.issue(t, t0, leafSpec{notBefore: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)})
	weakDER, _ := ca.issue(t, t0, leafSpec{key: rsa1024()})
	clientDER, clientKey := ca.issue(t, t0, leafSpec{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	noSANDER, noSANKey := ca.issue(t, t0, leafSpec{noSAN: true})
	encipherDER, encipherKey := ca.issue(t, t0, leafSpec{key: rsa2048(), keyUsage: x509.KeyUsageKeyEncipherment})
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p521DER, _ := ca.issue(t, t0, leafSpec{key: p521})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := ca.issue(t, t0, leafSpec{key: edKey})
	strayDER, strayKey := otherCA.issue(t, t0, leafSpec{})

	var eleven []byte
	for range 11 {
		eleven = append(eleven, ca.pem...)
	}
	huge := append(slices.Clone(chain), bytes.Repeat([]byte("#"), MaxPEMSize)...)
	truncated := chain[:len(leafPEM)+len(ca.pem)/2]

	tests := []struct {
		name      string
		cert, key []byte
		want      error
		msg       string // in the message shown to the technician
	}{
		{"key of another certificate", chain, pemKey(t, newKey(t), "PRIVATE KEY"), ErrKeyMismatch, "the private key does not belong to this certificate"},
		{"expired", pemCert(expiredDER), pemKey(t, expiredKey, "PRIVATE KEY"), ErrExpired, "expired on 2026-01-15 12:00 UTC"},
		{"not yet valid", pemCert(futureDER), pemKey(t, futureKey, "PRIVATE KEY"), ErrNotYetValid, "not valid until 2026-04-01 00:00 UTC, and the gateway's clock says 2026-03-02 10:00 UTC"},
		{"garbage", []byte("this is not a certificate\n"), keyPEM, ErrNoCertificate, "no certificate found"},
		{"no certificate", nil, keyPEM, ErrNoCertificate, "no certificate was given"},
		{"missing key", chain, nil, ErrNoKey, "no private key was given"},
		{"garbage key", chain, []byte("hunter2"), ErrNoKey, "no private key found"},
		{"RSA-1024", pemCert(weakDER), pemKey(t, rsa1024(), "RSA PRIVATE KEY"), ErrWeakKey, "1024 bits"},
		{"certificate file too large", huge, keyPEM, ErrTooLarge, "at most 1 MiB"},
		{"key file too large", chain, append(slices.Clone(keyPEM), bytes.Repeat([]byte(" "), MaxPEMSize)...), ErrTooLarge, "the key file is too large"},
		{"eleven certificates", append(slices.Clone(leafPEM), eleven...), keyPEM, ErrTooManyCertificates, "more than 10 certificates"},
		{"DER instead of PEM", leafDER, keyPEM, ErrNoCertificate, "openssl x509 -inform der"},
		{"truncated chain", truncated, keyPEM, ErrBadCertificate, "damaged PEM block"},
		{"truncated header", []byte("-----BEGIN CERTIFI"), keyPEM, ErrBadCertificate, "damaged PEM block"},
		{"key in the certificate file", append(slices.Clone(chain), keyPEM...), keyPEM, ErrBadCertificate, "contains a private key"},
		{"certificate in the key file", chain, append(slices.Clone(keyPEM), leafPEM...), ErrBadKey, "the key file contains a certificate"},
		{"two keys", chain, append(slices.Clone(keyPEM), pemKey(t, newKey(t), "PRIVATE KEY")...), ErrBadKey, "more than one private key"},
		{"encrypted key", chain, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), ErrBadKey, "passphrase"},
		{"legacy encrypted key", chain, []byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nMIIBAAAA\n-----END EC PRIVATE KEY-----\n"), ErrBadKey, "passphrase"},
		{"chain in the wrong order", append(slices.Clone(ca.pem), leafPEM...), keyPEM, ErrChain, "wrong order"},
		{"intermediate of another CA", append(slices.Clone(leafPEM), otherCA.pem...), keyPEM, ErrChain, "not signed by the next one"},
		{"leaf of another CA with our intermediate", append(pemCert(strayDER), ca.pem...), pemKey(t, strayKey, "PRIVATE KEY"), ErrChain, "not signed by the next one"},
		{"client certificate", pemCert(clientDER), pemKey(t, clientKey, "PRIVATE KEY"), ErrNotServerCert, "not for web servers"},
		{"no subject alternative names", pemCert(noSANDER), pemKey(t, noSANKey, "PRIVATE KEY"), ErrNotServerCert, "no subject alternative names"},
		{"key encipherment only", pemCert(encipherDER), pemKey(t, encipherKey, "RSA PRIVATE KEY"), ErrNotServerCert, "digital signatures"},
		{"P-521", pemCert(p521DER), pemKey(t, p521, "PRIVATE KEY"), ErrBadKey, "P-521"},
		{"Ed25519", pemCert(edDER), pemKey(t, edKey, "PRIVATE KEY"), ErrBadKey, "Ed25519"},
		{"public key as key", chain, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, leafKey.Public())}), ErrNoKey, "public key"},
	}

	e := newEnv(t)
	m := e.open(t)
	before := servedFingerprint(t, m)
	files := snapshot(t, e.dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := m.Install(tt.cert, tt.key)
			if err == nil {
				t.Fatalf("Install accepted it: %+v", info)
			}
			t.Log(err) // what the technician reads; see them with -v
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrRejected) {
				t.Errorf("error %q is not %v and ErrRejected", err, tt.want)
			}
			var re *RejectError
			if !errors.As(err, &re) || re.Message != err.Error() {
				t.Errorf("error %#v is not a *RejectError", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not say %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q spans lines", err)
			}
			if got := servedFingerprint(t, m); got != before {
				t.Errorf("serving %s after a refused upload, want the previous %s", got, before)
			}
			if after := snapshot(t, e.dir); !mapsEqual(after, files) {
				t.Errorf("a refused upload changed the files: %v → %v", keys(files), keys(after))
			}
		})
	}
}

func mustPKIX(t *testing.T, pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestBrokenFilesAreMovedAside(t *testing.T) {
	// A pair that works, to break in different ways.
	good := newEnv(t)
	good.open(t)
	goodFiles := snapshot(t, good.dir)
	other := newEnv(t)
	other.open(t)
	otherFiles := snapshot(t, other.dir)

	tests := []struct {
		name      string
		cert, key *string // nil: file absent
		reason    string
	}{
		{"garbage certificate", ptr("garbage\x00\xff"), ptr(goodFiles[KeyFile]), "no certificate found"},
		{"truncated key", ptr(goodFiles[CertFile]), ptr(goodFiles[KeyFile][:len(goodFiles[KeyFile])/2]), "damaged PEM block"},
		{"pair does not match", ptr(goodFiles[CertFile]), ptr(otherFiles[KeyFile]), "does not belong"},
		{"key missing", ptr(goodFiles[CertFile]), nil, "web.key is missing"},
		{"certificate missing", nil, ptr(goodFiles[KeyFile]), "web.crt is missing"},
		{"empty files", ptr(""), ptr(""), "no certificate was given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if err := os.MkdirAll(e.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string]*string{CertFile: tt.cert, KeyFile: tt.key} {
				if content != nil {
					if err := os.WriteFile(filepath.Join(e.dir, name), []byte(*content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			m := e.open(t)
			info := m.Info()
			if !info.Generated || info.Fingerprint == good.open(t).Info().Fingerprint {
				t.Errorf("serving %s (generated %v); want a newly generated certificate", info.Fingerprint, info.Generated)
			}
			files := snapshot(t, e.dir)
			const stamp = ".broken-20260302T100000Z"
			for name, content := range map[string]*string{CertFile: tt.cert, KeyFile: tt.key} {
				moved, ok := files[name+stamp]
				switch {
				case content == nil && ok:
					t.Errorf("%s appeared, but there was no %s", name+stamp, name)
				case content != nil && !ok:
					t.Errorf("%s was not moved aside; files: %v", name, keys(files))
				case content != nil && moved != *content:
					t.Errorf("%s does not hold the old %s", name+stamp, name)
				}
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, tt.reason) || !strings.Contains(logs, info.Fingerprint) {
				t.Errorf("log lacks a warning saying %q, or the new fingerprint:\n%s", tt.reason, logs)
			}
			// The replacement is kept.
			if got := e.open(t).Info().Fingerprint; got != info.Fingerprint {
				t.Errorf("reopened: %s, want %s", got, info.Fingerprint)
			}
		})
	}

	t.Run("twice in one second", func(t *testing.T) {
		e := newEnv(t)
		e.open(t)
		for range 2 {
			os.WriteFile(filepath.Join(e.dir, CertFile), []byte("garbage"), 0o644)
			e.open(t)
		}
		files := snapshot(t, e.dir)
		for _, name := range []string{"web.crt.broken-20260302T100000Z", "web.crt.broken-20260302T100000Z-2", "web.key.broken-20260302T100000Z-2"} {
			if _, ok := files[name]; !ok {
				t.Errorf("no %s; files: %v", name, keys(files))
			}
		}
	})
}

func ptr(s string) *string { return &s }

func TestExpiry(t *testing.T) {
	t.Run("generated certificate is renewed", func(t *testing.T) {
		e := newEnv(t)
		old := e.open(t).Info()
		e.now = old.NotAfter.Add(time.Hour)
		m := e.open(t)
		info := m.Info()
		if info.Fingerprint == old.Fingerprint || info.Expired || !info.NotAfter.After(e.now) {
			t.Errorf("after expiry: %s until %v (expired %v); want a new, valid certificate", info.Fingerprint, info.NotAfter, info.Expired)
		}
		if !strings.Contains(e.logs.String(), "expired or about to") {
			t.Errorf("renewal not logged:\n%s", e.logs)
		}
	})
	t.Run("generated certificate is renewed 30 days before", func(t *testing.T) {
		e := newEnv(t)
		old := e.open(t).Info()
		e.now = old.NotAfter.Add(-29 * 24 * time.Hour)
		if got := e.open(t).Info().Fingerprint; got == old.Fingerprint {
			t.Error("a generated certificate 29 days from expiry was kept")
		}
		e.now = e.now.AddDate(1, 0, 0)
		kept := e.open(t).Info()
		if again := e.open(t).Info().Fingerprint; again != kept.Fingerprint {
			t.Error("a renewed certificate was replaced again")
		}
	})
	t.Run("uploaded certificate is kept and reported", func(t *testing.T) {
		e := newEnv(t)
		m := e.open(t)
		_, chainPEM, keyPEM := validUpload(t, t0)
		installed, err := m.Install(chainPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if m.Info().Expired {
			t.Error("Expired before expiry")
		}
		e.now = installed.NotAfter.Add(time.Minute)
		if !m.Info().Expired {
			t.Error("Info().Expired is false after NotAfter")
		}
		m = e.open(t)
		info := m.Info()
		if info.Fingerprint != installed.Fingerprint || !info.Expired {
			t.Errorf("after expiry: serving %s (expired %v); want the uploaded %s, reported expired", info.Fingerprint, info.Expired, installed.Fingerprint)
		}
		if logs := e.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "has expired") {
			t.Errorf("expired upload not warned about:\n%s", logs)
		}
	})
}

func TestHostsChange(t *testing.T) {
	e := newEnv(t)
	first := e.open(t, "schoolgate.lan", "10.0.10.1").Info().Fingerprint
	if got := e.open(t, "10.0.10.1", "SchoolGate.LAN.", "10.0.10.1").Info().Fingerprint; got != first {
		t.Errorf("same hosts in another order, case and with duplicates: new certificate %s", got)
	}
	m := e.open(t, "schoolgate.lan", "10.0.20.1")
	info := m.Info()
	if info.Fingerprint == first || !slices.Equal(info.IPs, []netip.Addr{netip.MustParseAddr("10.0.20.1")}) {
		t.Errorf("after the address changed: %s for %v; want a new certificate for 10.0.20.1", info.Fingerprint, info.IPs)
	}
	if !strings.Contains(e.logs.String(), "names other hosts") {
		t.Errorf("regeneration for new hosts not logged:\n%s", e.logs)
	}
}

func TestRegenerate(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	_, chainPEM, keyPEM := validUpload(t, t0)
	installed, err := m.Install(chainPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	info, err := m.Regenerate()
	if err != nil {
		t.Fatal(err)
	}
	if !info.Generated || !info.SelfSigned || info.Fingerprint == installed.Fingerprint {
		t.Errorf("Regenerate: %+v", info)
	}
	if got := servedFingerprint(t, m); got != info.Fingerprint {
		t.Errorf("serving %s, Regenerate said %s", got, info.Fingerprint)
	}
	if got := keyMode(t, e.dir); got != 0o600 {
		t.Errorf("%s mode %v, want 0600", KeyFile, got)
	}
	if got := e.open(t).Info().Fingerprint; got != info.Fingerprint {
		t.Errorf("reopened: %s, want %s", got, info.Fingerprint)
	}
	files := snapshot(t, e.dir)
	if len(files) != 2 {
		t.Errorf("files left behind: %v", keys(files))
	}
}

func TestKeyFileMode(t *testing.T) {
	e := newEnv(t)
	e.open(t)
	name := filepath.Join(e.dir, KeyFile)
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	e.open(t)
	if got := keyMode(t, e.dir); got != 0o600 {
		t.Errorf("after Open: mode %v, want 0600", got)
	}
	if !strings.Contains(e.logs.String(), "readable by others") {
		t.Errorf("loose key mode not warned about:\n%s", e.logs)
	}
	fi, err := os.Stat(e.dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}

func TestInterruptedSave(t *testing.T) {
	// The state just after the key was renamed into place and before the
	// certificate was: the next Open finishes the save.
	t.Run("after the commit point", func(t *testing.T) {
		e := newEnv(t)
		m := e.open(t)
		old := snapshot(t, e.dir)
		_, chainPEM, keyPEM := validUpload(t, t0)
		installed, err := m.Install(chainPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		newFiles := snapshot(t, e.dir)
		write(t, e.dir, CertFile, old[CertFile])
		write(t, e.dir, CertFile+".new", newFiles[CertFile])

		if got := e.open(t).Info().Fingerprint; got != installed.Fingerprint {
			t.Errorf("serving %s, want the certificate whose save was interrupted, %s", got, installed.Fingerprint)
		}
		if files := snapshot(t, e.dir); !mapsEqual(files, newFiles) {
			t.Errorf("files %v, want %v", keys(files), keys(newFiles))
		}
	})
	// Before it: the new files are discarded and the old pair stays.
	t.Run("before the commit point", func(t *testing.T) {
		e := newEnv(t)
		m := e.open(t)
		old := snapshot(t, e.dir)
		fp := m.Info().Fingerprint
		_, chainPEM, _ := validUpload(t, t0)
		write(t, e.dir, CertFile+".new", string(chainPEM))
		write(t, e.dir, KeyFile+".new", "-----BEGIN PRIVATE KEY-----\nMIGH")
		if got := e.open(t).Info().Fingerprint; got != fp {
			t.Errorf("serving %s, want the previous %s", got, fp)
		}
		if files := snapshot(t, e.dir); !mapsEqual(files, old) {
			t.Errorf("files %v, want %v", keys(files), keys(old))
		}
		if !strings.Contains(e.logs.String(), "discarding an incomplete save") {
			t.Errorf("discarded save not logged:\n%s", e.logs)
		}
	})
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Whatever happens, key material never reaches the log.
func TestLogsNoKeyMaterial(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	var keyPEMs []string
	keyPEMs = append(keyPEMs, snapshot(t, e.dir)[KeyFile])
	_, chainPEM, keyPEM := validUpload(t, t0)
	keyPEMs = append(keyPEMs, string(keyPEM))
	if _, err := m.Install(chainPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	m.Install(chainPEM[:100], keyPEM)
	m.Regenerate()
	keyPEMs = append(keyPEMs, snapshot(t, e.dir)[KeyFile])
	write(t, e.dir, CertFile, "garbage")
	e.open(t)

	logs := e.logs.String()
	if strings.Contains(logs, "PRIVATE") {
		t.Errorf("log mentions a private key block:\n%s", logs)
	}
	for _, k := range keyPEMs {
		for line := range strings.Lines(k) {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "-----") && len(line) > 8 && strings.Contains(logs, line) {
				t.Errorf("log contains key material %q", line)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	_, chainPEM, keyPEM := validUpload(t, t0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := m.GetCertificate(nil)
				if err != nil || c.Leaf == nil {
					t.Errorf("GetCertificate = %v, %v", c, err)
					return
				}
				if info := m.Info(); info.Fingerprint == "" {
					t.Error("empty Info")
					return
				}
			}
		})
	}
	for i := range 10 {
		var err error
		if i%2 == 0 {
			_, err = m.Install(chainPEM, keyPEM)
		} else {
			_, err = m.Regenerate()
		}
		if err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestOpenRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"no directory", Config{Hosts: testHosts}, "no directory"},
		{"bad host", Config{Dir: t.TempDir(), Hosts: []string{"schoolgate.lan", "bad host!"}}, `"bad host!" is neither a DNS name nor an IP address`},
		{"address with zone", Config{Dir: t.TempDir(), Hosts: []string{"fe80::1%eth0"}}, "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Open(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Open = %v, %v; want an error saying %q", m, err, tt.msg)
			}
		})
	}
}

// A board without a real-time clock may generate before NTP has answered:
// the certificate must not then expire ten years after 1970.
func TestGenerateWithUnsetClock(t *testing.T) {
	e := newEnv(t)
	e.now = time.Unix(0, 0).UTC()
	info := e.open(t).Info()
	if want := e.now.Add(-time.Hour); !info.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", info.NotBefore, want)
	}
	if want := clockFloor.AddDate(10, 0, 0); !info.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", info.NotAfter, want)
	}
	// When the clock is right again, it is kept.
	e.now = t0
	if got := e.open(t).Info().Fingerprint; got != info.Fingerprint {
		t.Error("certificate generated with an unset clock was replaced once the clock was set")
	}
}
