package tlscert

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	newSuffix    = ".new"
	brokenSuffix = ".broken-"
)

// errNone: neither web.crt nor web.key exists (first start).
var errNone = errors.New("no web certificate kept")

func (m *Manager) path(name string) string { return filepath.Join(m.dir, name) }

// readKept loads web.crt and web.key. It returns errNone if both are missing
// and otherwise any error as the reason they are unusable.
func (m *Manager) readKept() (*current, error) {
	certPEM, cerr := readLimited(m.path(CertFile))
	keyPEM, kerr := readLimited(m.path(KeyFile))
	switch {
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
		return nil, errNone
	case errors.Is(cerr, fs.ErrNotExist):
		return nil, fmt.Errorf("%s is missing but %s is there", CertFile, KeyFile)
	case errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("%s is missing but %s is there", KeyFile, CertFile)
	case cerr != nil:
		return nil, cerr
	case kerr != nil:
		return nil, kerr
	}
	return loadPair(certPEM, keyPEM)
}

// loadPair parses a kept pair. Unlike an upload it is not judged by date,
// usage or key strength: what was accepted once is served until replaced.
func loadPair(certPEM, keyPEM []byte) (*current, error) {
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if err := checkKeyMatches(chain, key); err != nil {
		return nil, err
	}
	return newCurrent(chain, key), nil
}

// readLimited reads a regular file of at most MaxPEMSize bytes.
func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(name), err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(name))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(name), err)
	}
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(name), MaxPEMSize)
	}
	return data, nil
}

// moveAside renames unusable files to *.broken-<time> so that nothing a
// technician may want back is overwritten.
func (m *Manager) moveAside(reason error) error {
	stamp := m.now().UTC().Format("20060102T150405Z")
	suffix := brokenSuffix + stamp
	for i := 2; exists(m.path(CertFile+suffix)) || exists(m.path(KeyFile+suffix)); i++ {
		suffix = fmt.Sprintf("%s%s-%d", brokenSuffix, stamp, i)
	}
	var moved []string
	for _, name := range []string{CertFile, KeyFile} {
		err := os.Rename(m.path(name), m.path(name+suffix))
		switch {
		case err == nil:
			moved = append(moved, name+suffix)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("moving the unusable web certificate aside (%v): %w", reason, err)
		}
	}
	if err := syncDir(m.dir); err != nil {
		return err
	}
	m.log.Warn("web certificate files unusable, moved aside; generating a new self-signed certificate",
		"reason", reason.Error(), "moved_to", moved, "dir", m.dir)
	return nil
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}

// save writes c's chain and key in place of web.crt and web.key. Both are
// first written complete as *.new and synced; that is the commit point, after
// which finishPending completes an interrupted save. If the second rename
// fails (a disk error), the files stay half-way until the next Open finishes
// them, and the caller keeps serving the previous certificate.
func (m *Manager) save(c *current) (err error) {
	var certPEM []byte
	for _, der := range c.cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding the web certificate's key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	clear(keyDER)

	certNew, keyNew := m.path(CertFile+newSuffix), m.path(KeyFile+newSuffix)
	committed := false
	defer func() {
		if err != nil && !committed {
			os.Remove(certNew)
			os.Remove(keyNew)
		}
	}()
	if err := writeFile(certNew, certPEM, 0o644); err != nil {
		return err
	}
	err = writeFile(keyNew, keyPEM, 0o600)
	clear(keyPEM)
	if err != nil {
		return err
	}
	if err := syncDir(m.dir); err != nil {
		return err
	}
	if err := os.Rename(keyNew, m.path(KeyFile)); err != nil {
		return fmt.Errorf("saving the web certificate: %w", err)
	}
	committed = true
	if err := os.Rename(certNew, m.path(CertFile)); err != nil {
		return fmt.Errorf("saving the web certificate (it will be completed at the next start): %w", err)
	}
	return syncDir(m.dir)
}

// finishPending completes or discards a save interrupted by a crash or power
// cut: if the *.new files, together with whichever of the kept files they
// replace, form a matching pair, they were complete and are renamed into
// place; otherwise they are torn and removed.
func (m *Manager) finishPending() error {
	certNew, keyNew := m.path(CertFile+newSuffix), m.path(KeyFile+newSuffix)
	haveCert, haveKey := exists(certNew), exists(keyNew)
	if !haveCert && !haveKey {
		return nil
	}
	certName, keyName := m.path(CertFile), m.path(KeyFile)
	if haveCert {
		certName = certNew
	}
	if haveKey {
		keyName = keyNew
	}
	certPEM, err := readLimited(certName)
	var keyPEM []byte
	if err == nil {
		keyPEM, err = readLimited(keyName)
	}
	if err == nil {
		_, err = loadPair(certPEM, keyPEM)
	}
	clear(keyPEM)
	if err != nil {
		m.log.Warn("discarding an incomplete save of the web certificate (interrupted by a restart)", "reason", err.Error())
		for _, name := range []string{certNew, keyNew} {
			if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing an incomplete web certificate: %w", err)
			}
		}
		return syncDir(m.dir)
	}
	if haveKey {
		if err := os.Rename(keyNew, m.path(KeyFile)); err != nil {
			return fmt.Errorf("completing an interrupted save of the web certificate: %w", err)
		}
	}
	if haveCert {
		if err := os.Rename(certNew, m.path(CertFile)); err != nil {
			return fmt.Errorf("completing an interrupted save of the web certificate: %w", err)
		}
	}
	m.log.Info("completed a save of the web certificate interrupted by a restart")
	return syncDir(m.dir)
}

// fixKeyMode makes a kept key file 0600 again if someone loosened it.
func (m *Manager) fixKeyMode() {
	name := m.path(KeyFile)
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().Perm() == 0o600 {
		return
	}
	if err := os.Chmod(name, 0o600); err != nil {
		m.log.Warn("web certificate key file is readable by others and its mode cannot be fixed",
			"file", name, "mode", fi.Mode().Perm().String(), "err", err)
		return
	}
	m.log.Warn("web certificate key file was readable by others; mode set to 0600",
		"file", name, "was", fi.Mode().Perm().String())
}

// writeFile creates name afresh with exactly perm, writes data and syncs it.
func writeFile(name string, data []byte, perm os.FileMode) (err error) {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", name, cerr)
		}
	}()
	if err := f.Chmod(perm); err != nil { // the umask may have taken bits off
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	return nil
}

// syncDir makes renames and creations in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
