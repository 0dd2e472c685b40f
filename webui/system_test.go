package webui

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/tlscert"
)

// storeConfig keeps the configuration in a real config.Store, as the daemon does.
type storeConfig struct{ s *config.Store }

func (c storeConfig) EditableConfig() (*config.Config, error) {
	cfg, _, err := c.s.Current()
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c storeConfig) SaveConfig(_ context.Context, cfg *config.Config, ch Change) (config.Version, error) {
	return c.s.Save(cfg, config.VersionMeta{Author: ch.Actor, Comment: ch.Reason})
}

func newSystemEnv(t *testing.T) (*env, *config.Store, *tlscert.Manager, *atomic.Int32) {
	dir := t.TempDir()
	store, err := config.NewStore(filepath.Join(dir, "config.yaml"), filepath.Join(dir, "versions"), 0)
	if err != nil {
		t.Fatal(err)
	}
	demo, _ := config.Demo()
	if _, err := store.Save(demo, config.VersionMeta{Author: "installer", Comment: "first"}); err != nil {
		t.Fatal(err)
	}
	cert, err := tlscert.Open(tlscert.Config{Dir: filepath.Join(dir, "tls"), Hosts: []string{"10.0.10.1"}})
	if err != nil {
		t.Fatal(err)
	}
	restarts := &atomic.Int32{}
	e := newEnvWith(t, func(c *Config) {
		c.Config, c.Versions, c.Certificate = storeConfig{store}, store, cert
		c.Restart = func() { restarts.Add(1) }
	})
	return e, store, cert, restarts
}

func TestSystemVersionsAndRollback(t *testing.T) {
	e, store, _, _ := newSystemEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	cfg, _, _ := store.Current()
	cfg.Profiles[0].Allow = append(cfg.Profiles[0].Allow, "scratch.mit.edu")
	if _, err := store.Save(cfg, config.VersionMeta{Author: "tech", Comment: "coding club"}); err != nil {
		t.Fatal(err)
	}
	_, page := b.get("/system")
	for _, want := range []string{`href="/system/versions/2"`, "2</a> (current)", "coding club", "installer", `id="fingerprint"`} {
		if !strings.Contains(page, want) {
			t.Errorf("system page lacks %q", want)
		}
	}
	_, page = b.get("/system/versions/1")
	if !strings.Contains(page, `<span class="del">-      - scratch.mit.edu</span>`) {
		t.Fatalf("version 1 does not show what rolling back would remove:\n%s", page)
	}
	base := hidden(t, page, "base")
	resp, page := b.post("/system/versions/1/rollback", map[string][]string{"csrf": {csrf}, "base": {base}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="reason-error"`) {
		t.Errorf("roll-back without a reason: %d", resp.StatusCode)
	}
	resp, _ = b.post("/system/versions/1/rollback", map[string][]string{"csrf": {csrf}, "base": {base}, "reason": {"club cancelled"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("roll-back: %d", resp.StatusCode)
	}
	now, v, _ := store.Current()
	if v.Number != 3 || strings.Contains(strings.Join(now.Profiles[0].Allow, " "), "scratch") || v.Comment != "club cancelled" {
		t.Errorf("after roll-back: version %+v, allow %v", v, now.Profiles[0].Allow)
	}
	if resp, _ := b.get("/system/versions/99"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown version: %d", resp.StatusCode)
	}
	d := e.browser()
	d.login("dsl1")
	if resp, _ := d.get("/system"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("DSL on the system page: %d", resp.StatusCode)
	}
}

// testCert makes a certificate and key for name, signed by itself.
func testCert(t *testing.T, name string, notAfter time.Time) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func (b *browser) upload(path string, fields map[string]string, files map[string][]byte) (*http.Response, string) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	for k, v := range files {
		f, _ := w.CreateFormFile(k, k+".pem")
		f.Write(v)
	}
	w.Close()
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.ts.URL+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func TestSystemCertificateAndRestart(t *testing.T) {
	e, _, cert, restarts := newSystemEnv(t)
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	old := cert.Info().Fingerprint

	// A key that is not the certificate's is refused next to the key field; nothing changes.
	c1, _ := testCert(t, "gateway.school.example", time.Now().AddDate(1, 0, 0))
	_, k2 := testCert(t, "gateway.school.example", time.Now().AddDate(1, 0, 0))
	resp, page := b.upload("/system/certificate", map[string]string{"csrf": csrf}, map[string][]byte{"cert": c1, "key": k2})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="key-error"`) || cert.Info().Fingerprint != old {
		t.Fatalf("mismatched key: %d\n%s", resp.StatusCode, page)
	}
	c3, k3 := testCert(t, "gateway.school.example", time.Now().AddDate(1, 0, 0))
	resp, _ = b.upload("/system/certificate", map[string]string{"csrf": csrf}, map[string][]byte{"cert": c3, "key": k3})
	if resp.StatusCode != http.StatusSeeOther || cert.Info().Fingerprint == old || cert.Info().DNSNames[0] != "gateway.school.example" {
		t.Fatalf("upload: %d, %+v", resp.StatusCode, cert.Info())
	}
	_, page = b.get("/system?done=certificate")
	if !strings.Contains(page, cert.Info().Fingerprint) || !strings.Contains(page, "The new certificate is in use") {
		t.Error("the system page does not show the new certificate")
	}
	resp, _ = b.post("/system/certificate/regenerate", map[string][]string{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || !cert.Info().SelfSigned {
		t.Errorf("regenerate: %d %+v", resp.StatusCode, cert.Info())
	}

	// Restart needs a reason, and is recorded before it happens.
	if resp, page := b.post("/system/restart", map[string][]string{"csrf": {csrf}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "restart-reason-error") {
		t.Errorf("restart without a reason: %d", resp.StatusCode)
	}
	if restarts.Load() != 0 {
		t.Fatal("restarted without a reason")
	}
	// The answer is the page saying so, which reloads itself: a redirect would be followed
	// after the server had gone.
	resp, page = b.post("/system/restart", map[string][]string{"csrf": {csrf}, "reason": {"new pupils VLAN"}})
	if resp.StatusCode != http.StatusOK || restarts.Load() != 1 || !strings.Contains(page, "schoolgate is restarting") ||
		!strings.Contains(page, `<meta http-equiv="refresh" content="10;url=/system">`) {
		t.Errorf("restart: %d, %d restarts", resp.StatusCode, restarts.Load())
	}
	var actions []string
	for _, a := range e.auditEntries() {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "system.certificate system.certificate system.restart") {
		t.Errorf("audit: %s", got)
	}
}
