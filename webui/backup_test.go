package webui

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/backup"
)

// fileBackuper backs up one file with the real format, as the daemon backs up its state.
type fileBackuper struct {
	dir      string
	restored []backup.Manifest
}

func (f *fileBackuper) Backup(_ context.Context, w io.Writer, pass string, _ bool) error {
	p := filepath.Join(f.dir, "config.yaml")
	os.WriteFile(p, []byte("appliance: {name: Test}\n"), 0o600)
	return backup.Write(w, pass, backup.Manifest{Appliance: "Test School"}, []backup.File{{Name: "config/config.yaml", Path: p}})
}

func (f *fileBackuper) Restore(_ context.Context, r io.Reader, pass string) (backup.Manifest, error) {
	dir, _ := os.MkdirTemp(f.dir, "restore-")
	m, err := backup.Read(r, pass, dir, backup.Limits{})
	if err == nil {
		f.restored = append(f.restored, m)
	}
	return m, err
}

func TestBackupAndRestoreForms(t *testing.T) {
	fb := &fileBackuper{dir: t.TempDir()}
	restarts := 0
	e := newEnvWith(t, func(c *Config) { c.Backup, c.Restart = fb, func() { restarts++ } })
	e.withAccounts()
	b := e.browser()
	csrf := b.login("tech")
	resp, page := b.post("/system/backup", url.Values{"csrf": {csrf}, "passphrase": {"short"}, "passphrase2": {"short"}, "reason": {"moving to the new box"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="passphrase-error"`) || !strings.Contains(page, "moving to the new box") {
		t.Fatalf("short passphrase: %d", resp.StatusCode)
	}
	const pass = "correct horse battery staple"
	resp, file := b.post("/system/backup", url.Values{"csrf": {csrf}, "passphrase": {pass}, "passphrase2": {pass}, "reason": {"moving to the new box"}})
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), ".sgbackup") || !strings.HasPrefix(file, "schoolgate-backup v1") {
		t.Fatalf("backup: %d %v %q", resp.StatusCode, resp.Header, file[:min(len(file), 40)])
	}
	restore := func(pass, reason string, data []byte) (*http.Response, string) {
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		w.WriteField("csrf", csrf)
		w.WriteField("restore-passphrase", pass)
		w.WriteField("reason", reason)
		if data != nil {
			fw, _ := w.CreateFormFile("file", "school.sgbackup")
			fw.Write(data)
		}
		w.Close()
		req, _ := http.NewRequest("POST", e.ts.URL+"/system/restore", &body)
		req.Header.Set("Content-Type", w.FormDataContentType())
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, string(out)
	}
	if resp, page := restore("wrong horse battery staple", "new box", []byte(file)); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "The passphrase does not open this backup") {
		t.Errorf("wrong passphrase: %d", resp.StatusCode)
	}
	if resp, page := restore(pass, "new box", []byte("not a backup at all")); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="file-error"`) {
		t.Errorf("garbage file: %d", resp.StatusCode)
	}
	if restarts != 0 || len(fb.restored) != 0 {
		t.Fatal("a refused restore restarted or restored")
	}
	if resp, page := restore(pass, "new box", []byte(file)); resp.StatusCode != http.StatusOK || restarts != 1 || len(fb.restored) != 1 ||
		!strings.Contains(page, "is being restored") || !strings.Contains(page, `http-equiv="refresh"`) {
		t.Errorf("restore: %d, %d restarts", resp.StatusCode, restarts)
	}
	var actions []string
	for _, a := range e.auditEntries() {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "system.backup system.restore") {
		t.Errorf("audit: %s", got)
	}
}
