package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// generate makes a self-signed ECDSA P-256 certificate for the given names,
// the kind every browser accepts once its warning is acknowledged.
func generate(dns []string, ips []netip.Addr, now time.Time) (*current, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the web certificate's key: %w", err)
	}
	// 128 random bits, so that no two generated certificates share a serial
	// (browsers refuse a second certificate with the issuer and serial of
	// one they have seen).
	var b [16]byte
	rand.Read(b[:])
	serial := new(big.Int).SetBytes(b[:])
	if serial.Sign() == 0 {
		serial.SetInt64(1)
	}
	end := now
	if end.Before(clockFloor) {
		end = clockFloor
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         "schoolgate",
			Organization:       []string{"schoolgate"},
			OrganizationalUnit: []string{generatedOU},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              end.AddDate(validityYears, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              dns,
	}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("generating the web certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("generating the web certificate: %w", err)
	}
	return newCurrent([]*x509.Certificate{leaf}, key), nil
}
