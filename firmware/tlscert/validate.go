package tlscert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Limits on what Install accepts.
const (
	MaxPEMSize     = 1 << 20 // bytes, for each of the certificate and key files
	MaxChainLength = 10      // certificates in the certificate file
	MinRSABits     = 2048
	// MaxRSABits: bigger keys make every handshake slow on a small board, and
	// Go clients refuse them.
	MaxRSABits = 8192

	// maxKeyDER bounds a key before it is parsed, so that a hostile upload
	// cannot make the RSA consistency checks work on enormous numbers. An
	// 8192-bit RSA key is under 5 KiB.
	maxKeyDER = 16 << 10
)

// Errors of a refused upload. Install returns them inside a *RejectError,
// whose message is the sentence to show; check them with errors.Is.
var (
	// ErrRejected matches every refused upload (as opposed to a disk failure).
	ErrRejected = errors.New("certificate not accepted")

	// ErrTooLarge: a file is over MaxPEMSize.
	ErrTooLarge = errors.New("file too large")
	// ErrNoCertificate: the certificate file is empty, or not PEM.
	ErrNoCertificate = errors.New("no certificate")
	// ErrBadCertificate: a certificate cannot be parsed, a PEM block is
	// damaged, or the file holds something other than certificates.
	ErrBadCertificate = errors.New("unreadable or unsupported certificate")
	// ErrTooManyCertificates: more than MaxChainLength certificates.
	ErrTooManyCertificates = errors.New("too many certificates")
	// ErrNoKey: the key file is empty, not PEM, or holds only a public key.
	ErrNoKey = errors.New("no private key")
	// ErrBadKey: the key cannot be parsed, is encrypted, is of a type
	// browsers do not support (Ed25519, P-521), or there are several.
	ErrBadKey = errors.New("unreadable or unsupported private key")
	// ErrWeakKey: RSA under MinRSABits, or an ECDSA curve under P-256.
	ErrWeakKey = errors.New("private key too weak")
	// ErrKeyMismatch: the key belongs to no certificate in the file.
	ErrKeyMismatch = errors.New("private key does not belong to the certificate")
	// ErrNotYetValid: the certificate's NotBefore is after the gateway's clock.
	ErrNotYetValid = errors.New("certificate not valid yet")
	// ErrExpired: the certificate, or an intermediate, has expired.
	ErrExpired = errors.New("certificate expired")
	// ErrNotServerCert: no TLS server usage, no digital signature usage, or
	// no subject alternative names.
	ErrNotServerCert = errors.New("certificate not usable for a web server")
	// ErrWeakSignature: signed with MD5 or SHA-1.
	ErrWeakSignature = errors.New("certificate signed with an insecure algorithm")
	// ErrChain: the certificates are in the wrong order or an intermediate
	// did not sign the certificate before it.
	ErrChain = errors.New("certificate chain in the wrong order or incomplete")
)

// RejectError is a refused upload. Message is a sentence for the technician
// saying what is wrong and what to do; Reason is one of the Err… values
// (ErrKeyMismatch, ErrExpired, …). errors.Is matches both Reason and
// ErrRejected.
type RejectError struct {
	Reason  error
	Message string
}

func (e *RejectError) Error() string { return e.Message }

// Unwrap lets errors.Is see Reason and ErrRejected.
func (e *RejectError) Unwrap() []error { return []error{e.Reason, ErrRejected} }

func reject(reason error, format string, args ...any) error {
	return &RejectError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

var (
	utf8BOM  = []byte("\xef\xbb\xbf") // Windows editors put it before the PEM text
	pemBegin = []byte("-----BEGIN")
)

// checkUpload validates an uploaded chain and key at time now and returns
// them ready to serve.
func checkUpload(certPEM, keyPEM []byte, now time.Time) (*current, error) {
	// Sizes first, before any parsing.
	if len(certPEM) > MaxPEMSize {
		return nil, reject(ErrTooLarge, "the certificate file is too large (%d bytes); at most %s is accepted", len(certPEM), fmtSize(MaxPEMSize))
	}
	if len(keyPEM) > MaxPEMSize {
		return nil, reject(ErrTooLarge, "the key file is too large (%d bytes); at most %s is accepted", len(keyPEM), fmtSize(MaxPEMSize))
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if err := checkKeyStrength(key); err != nil {
		return nil, err
	}
	if err := checkKeyMatches(chain, key); err != nil {
		return nil, err
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) {
		return nil, reject(ErrNotYetValid, "the certificate is not valid until %s, and the gateway's clock says %s; upload it from then on, or check the gateway's clock",
			fmtTime(leaf.NotBefore), fmtTime(now))
	}
	if now.After(leaf.NotAfter) {
		return nil, reject(ErrExpired, "the certificate expired on %s (the gateway's clock says %s); upload a renewed certificate",
			fmtTime(leaf.NotAfter), fmtTime(now))
	}
	if len(leaf.ExtKeyUsage) > 0 || len(leaf.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return nil, reject(ErrNotServerCert, "the certificate is not for web servers (its extended key usage lacks TLS web server authentication); ask the certificate authority for a server certificate")
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, reject(ErrNotServerCert, "the certificate's key usage does not include digital signatures, which browsers require of a web server's certificate; ask the certificate authority for a server certificate")
	}
	if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 {
		return nil, reject(ErrNotServerCert, "the certificate names no host: it has no subject alternative names, and browsers ignore the common name; ask for one that lists the gateway's name or address")
	}
	if weakSignature(leaf.SignatureAlgorithm) {
		return nil, reject(ErrWeakSignature, "the certificate is signed with %v, which browsers no longer accept; ask the certificate authority for one signed with SHA-256", leaf.SignatureAlgorithm)
	}
	for i := 0; i+1 < len(chain); i++ {
		child, parent := chain[i], chain[i+1]
		if pub, ok := parent.PublicKey.(*rsa.PublicKey); ok && pub.N.BitLen() > MaxRSABits {
			return nil, reject(ErrBadCertificate, "certificate %d (%s) has an RSA key of %d bits; at most %d are supported",
				i+2, name(parent), pub.N.BitLen(), MaxRSABits)
		}
		if err := child.CheckSignatureFrom(parent); err != nil {
			return nil, reject(ErrChain, "certificate %d (%s) is not signed by the next one in the file, certificate %d (%s): the intermediate certificates are in the wrong order or do not belong to this certificate (%v)",
				i+1, name(child), i+2, name(parent), err)
		}
		if now.After(parent.NotAfter) {
			return nil, reject(ErrExpired, "intermediate certificate %d (%s) expired on %s; get the current intermediate certificate from the certificate authority",
				i+2, name(parent), fmtTime(parent.NotAfter))
		}
	}
	return newCurrent(chain, key), nil
}

// parseCertificates reads a PEM chain: CERTIFICATE blocks only, text around
// them ignored (openssl writes "subject=" lines and bag attributes).
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(data) > MaxPEMSize {
		return nil, reject(ErrTooLarge, "the certificate file is too large (%d bytes); at most %s is accepted", len(data), fmtSize(MaxPEMSize))
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, reject(ErrNoCertificate, "no certificate was given; choose the certificate file (PEM text starting with -----BEGIN CERTIFICATE-----)")
	}
	var chain []*x509.Certificate
	blocks := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		switch {
		case b.Type == "CERTIFICATE":
			if len(chain) == MaxChainLength {
				return nil, reject(ErrTooManyCertificates, "the certificate file holds more than %d certificates; it should hold only the server's certificate followed by its intermediate certificates", MaxChainLength)
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, reject(ErrBadCertificate, "certificate %d in the certificate file cannot be read (%v); export it again in PEM format", len(chain)+1, err)
			}
			chain = append(chain, c)
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, reject(ErrBadCertificate, "the certificate file contains a private key; give the key separately as the key file, and the certificate file without it")
		case b.Type == "PKCS7":
			return nil, reject(ErrBadCertificate, "the certificate file is a PKCS#7 bundle; convert it with: openssl pkcs7 -print_certs -in bundle.p7b -out chain.pem")
		default:
			return nil, reject(ErrBadCertificate, "the certificate file contains a %q block; only CERTIFICATE blocks belong in it", clip(b.Type))
		}
	}
	if bytes.Count(data, pemBegin) > blocks {
		return nil, reject(ErrBadCertificate, "the certificate file has a damaged PEM block (cut short or edited); copy the file again")
	}
	if len(chain) == 0 {
		if trimmed[0] == 0x30 { // an ASN.1 SEQUENCE: DER or PKCS#12
			return nil, reject(ErrNoCertificate, "the certificate file is binary, not PEM text; convert a .cer/.der file with: openssl x509 -inform der -in certificate.cer -out certificate.pem, or a .pfx/.p12 file with: openssl pkcs12 -in file.pfx -nokeys -out chain.pem")
		}
		return nil, reject(ErrNoCertificate, "no certificate found in the certificate file; it must be PEM text starting with -----BEGIN CERTIFICATE-----")
	}
	return chain, nil
}

// parsePrivateKey reads one unencrypted PEM private key, PKCS#8, SEC 1 (EC)
// or PKCS#1 (RSA), and returns it if it is ECDSA or RSA.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	if len(data) > MaxPEMSize {
		return nil, reject(ErrTooLarge, "the key file is too large (%d bytes); at most %s is accepted", len(data), fmtSize(MaxPEMSize))
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, reject(ErrNoKey, "no private key was given; choose the key file that belongs to the certificate")
	}
	const passphrase = "the private key is protected by a passphrase; remove it with: openssl pkey -in key.pem -out key-plain.pem, and upload key-plain.pem"
	var key *pem.Block
	blocks := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks++
		switch b.Type {
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if _, ok := b.Headers["DEK-Info"]; ok || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
				return nil, reject(ErrBadKey, passphrase)
			}
			if key != nil {
				return nil, reject(ErrBadKey, "the key file holds more than one private key; give only the key that belongs to the certificate")
			}
			key = b
		case "ENCRYPTED PRIVATE KEY":
			return nil, reject(ErrBadKey, passphrase)
		case "EC PARAMETERS":
			// openssl ecparam -genkey writes these before the key, which
			// names its curve itself.
		case "CERTIFICATE":
			return nil, reject(ErrBadKey, "the key file contains a certificate; give the certificates as the certificate file, and only the private key as the key file")
		case "OPENSSH PRIVATE KEY":
			return nil, reject(ErrBadKey, "the key file holds an SSH key, not the private key of a certificate")
		case "PUBLIC KEY", "RSA PUBLIC KEY":
			return nil, reject(ErrNoKey, "the key file holds a public key; the private key that belongs to the certificate is needed")
		default:
			return nil, reject(ErrBadKey, "the key file contains a %q block; it must hold one PRIVATE KEY block", clip(b.Type))
		}
	}
	if bytes.Count(data, pemBegin) > blocks {
		return nil, reject(ErrBadKey, "the key file has a damaged PEM block (cut short or edited); copy the file again")
	}
	if key == nil {
		if trimmed[0] == 0x30 {
			return nil, reject(ErrNoKey, "the key file is binary, not PEM text; convert a .der key with: openssl pkey -inform der -in key.der -out key.pem, or take the key out of a .pfx/.p12 file with: openssl pkcs12 -in file.pfx -nocerts -nodes -out key.pem")
		}
		return nil, reject(ErrNoKey, "no private key found in the key file; it must be PEM text starting with -----BEGIN PRIVATE KEY----- (or EC PRIVATE KEY, or RSA PRIVATE KEY)")
	}
	if len(key.Bytes) > maxKeyDER {
		return nil, reject(ErrBadKey, "the private key is too large; RSA keys of up to %d bits and ECDSA keys are supported", MaxRSABits)
	}
	// Try the parser the label names first, then the others: mislabelled
	// blocks are common and harmless.
	parsers := []func([]byte) (any, error){
		x509.ParsePKCS8PrivateKey,
		func(der []byte) (any, error) { return x509.ParseECPrivateKey(der) },
		func(der []byte) (any, error) { return x509.ParsePKCS1PrivateKey(der) },
	}
	switch key.Type {
	case "EC PRIVATE KEY":
		parsers[0], parsers[1] = parsers[1], parsers[0]
	case "RSA PRIVATE KEY":
		parsers[0], parsers[2] = parsers[2], parsers[0]
	}
	var k any
	var firstErr error
	for _, parse := range parsers {
		// A failed parse returns a typed nil inside the interface, so only
		// err tells success.
		parsed, err := parse(key.Bytes)
		if err == nil {
			k = parsed
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if k == nil {
		return nil, reject(ErrBadKey, "the private key cannot be read (%v); export it again as an unencrypted PEM key", firstErr)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return nil, reject(ErrBadKey, "Ed25519 keys are not supported by web browsers; use an ECDSA P-256 or an RSA key")
	default:
		return nil, reject(ErrBadKey, "the private key is of an unsupported type (%T); use an ECDSA P-256 or an RSA key", k)
	}
}

// checkKeyStrength refuses keys browsers refuse or that are too weak.
func checkKeyStrength(key crypto.Signer) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		switch bits := k.N.BitLen(); {
		case bits < MinRSABits:
			return reject(ErrWeakKey, "the RSA key has %d bits, which is too weak; at least %d are needed, so ask for a new certificate with a longer key", bits, MinRSABits)
		case bits > MaxRSABits:
			return reject(ErrBadKey, "the RSA key has %d bits; at most %d are supported, as longer keys make every connection slow", bits, MaxRSABits)
		}
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
		case elliptic.P521():
			return reject(ErrBadKey, "ECDSA keys on curve P-521 are refused by some browsers; use P-256 or P-384")
		default:
			return reject(ErrWeakKey, "the ECDSA key's curve %s is too weak; use P-256 or P-384", k.Curve.Params().Name)
		}
	}
	return nil
}

// checkKeyMatches checks that key belongs to the first certificate, and
// explains the commonest mistake, a chain in the wrong order.
func checkKeyMatches(chain []*x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return reject(ErrBadKey, "the private key is of an unsupported type (%T)", key)
	}
	if pub.Equal(chain[0].PublicKey) {
		return nil
	}
	for i, c := range chain[1:] {
		if pub.Equal(c.PublicKey) {
			return reject(ErrChain, "the certificates are in the wrong order: the private key belongs to certificate %d (%s), but the server's own certificate must come first in the certificate file",
				i+2, name(c))
		}
	}
	return reject(ErrKeyMismatch, "the private key does not belong to this certificate; choose the key file that was made together with it (or with its certificate request)")
}

func weakSignature(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return true
	}
	return false
}

// name identifies a certificate in a message by its subject.
func name(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return clip(c.Subject.CommonName)
	}
	return clip(c.Subject.String())
}

// clip shortens text taken from an upload and replaces control characters
// before it goes into a message.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func fmtSize(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
