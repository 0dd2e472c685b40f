package tlscert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type seed struct{ cert, key string }

// fuzzSeeds are the committed corpus of FuzzInstall. They hold no private
// key: garbage, cut-off PEM, and one public certificate whose key was thrown
// away. TestFuzzSeeds checks they are on disk; `go test -run TestFuzzSeeds
// ./firmware/tlscert -update` writes them.
func fuzzSeeds(t testing.TB) []seed {
	return []seed{
		{"", ""},
		{"garbage", "garbage"},
		{"-----BEGIN CERTIFICATE-----\nMIIB", "-----BEGIN PRIVATE KEY-----\n"},
		{"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"},
		{"\xef\xbb\xbf-----BEGIN CERTIFICATE-----\r\nMA==\r\n-----END CERTIFICATE-----\r\n", "-----BEGIN RSA PRIVATE KEY-----\r\nMAA=\r\n-----END RSA PRIVATE KEY-----\r\n"},
		{"\x30\x82\x01\x0a\x02\x82\x01\x01\x00", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"},
		{publicCertOnly(t), "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"},
	}
}

// publicCertOnly is a self-signed certificate whose key is discarded.
func publicCertOnly(t testing.TB) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fuzz seed"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		DNSNames:     []string{"seed.example"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pemCert(der))
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzInstall")
	seeds := fuzzSeeds(t)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			data := "go test fuzz v1\n[]byte(" + strconv.Quote(s.cert) + ")\n[]byte(" + strconv.Quote(s.key) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) < len(seeds) {
		t.Fatalf("seed corpus %s has %d files, want %d (run with -update): %v", dir, len(entries), len(seeds), err)
	}
	// Committed seeds must never contain a usable private key.
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			t.Errorf("%s: not a two-argument go test fuzz v1 file", e.Name())
			continue
		}
		for _, l := range lines[1:] {
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(l, "[]byte("), ")"))
			if err != nil {
				t.Errorf("%s: %v", e.Name(), err)
				continue
			}
			if _, err := parsePrivateKey([]byte(s)); err == nil {
				t.Errorf("%s holds a private key; seeds must not", e.Name())
			}
		}
	}
}

// Uploads are hostile input: whatever Install is given, it must not panic,
// and unless it accepts, the certificate served and the files on disk stay
// as they were.
func FuzzInstall(f *testing.F) {
	// A valid upload, made now and never committed, so that mutations reach
	// the checks after parsing.
	_, chainPEM, keyPEM := validUpload(f, t0)
	f.Add(chainPEM, keyPEM)

	dir := filepath.Join(f.TempDir(), "tls")
	cfg := Config{Dir: dir, Hosts: testHosts, Now: func() time.Time { return t0 }}
	m, err := Open(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		before, _ := m.GetCertificate(nil)
		beforeCert, _ := os.ReadFile(filepath.Join(dir, CertFile))
		info, err := m.Install(certPEM, keyPEM)
		after, _ := m.GetCertificate(nil)
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) || !errors.Is(err, ErrRejected) || re.Reason == nil {
				t.Fatalf("Install: %v (%T), want a *RejectError", err, err)
			}
			if re.Message == "" || strings.ContainsAny(re.Message, "\n\r") {
				t.Fatalf("message %q is empty or spans lines", re.Message)
			}
			if after != before {
				t.Fatalf("a refused upload (%v) changed the certificate served", err)
			}
			if nowCert, _ := os.ReadFile(filepath.Join(dir, CertFile)); !bytes.Equal(nowCert, beforeCert) {
				t.Fatalf("a refused upload (%v) changed %s", err, CertFile)
			}
			return
		}
		if after == before || Fingerprint(after.Certificate[0]) != info.Fingerprint {
			t.Fatalf("accepted upload %s is not the one served", info.Fingerprint)
		}
		signer, ok := after.PrivateKey.(crypto.Signer)
		if !ok || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(after.Leaf.PublicKey) {
			t.Fatalf("accepted upload %s is served with a key that does not match", info.Fingerprint)
		}
		again, err := Open(cfg)
		if err != nil || again.Info().Fingerprint != info.Fingerprint {
			t.Fatalf("accepted upload not kept: %v", err)
		}
	})
}
