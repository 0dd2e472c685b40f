package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/config"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, config.DemoYAML(), 0o644)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", good}, &out, &out); err != nil {
		t.Fatalf("demo config: %v", err)
	}
	if !strings.Contains(out.String(), "valid (3 segments, 3 profiles") {
		t.Errorf("output: %q", out.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("profiles:\n  - name: p\n    youtube: sometimes\n"), 0o644)
	err := run(context.Background(), []string{"check", bad}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "profiles[0].youtube") {
		t.Errorf("bad config: got %v, want the field and line", err)
	}
}

func TestExplain(t *testing.T) {
	dataDir := t.TempDir()
	os.WriteFile(filepath.Join(dataDir, "api-token"), []byte("tok-0123456789\n"), 0o600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-0123456789" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"log in first"}`))
			return
		}
		if r.URL.Query().Get("client") != "10.20.0.5" || r.URL.Query().Get("name") != "facebook.com" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"bad query"}`))
			return
		}
		w.Write([]byte(`{"summary":"blocked for profile \"pupils\": category social","steps":["client is a pupil"]}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"explain", "-api", srv.URL, "-data-dir", dataDir, "10.20.0.5", "facebook.com"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if want := "blocked for profile \"pupils\": category social\n  - client is a pupil\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if err := run(context.Background(), []string{"explain", "-api", srv.URL, "-data-dir", dataDir, "10.9.9.9", "x.org"}, &out, &out); err == nil || !strings.Contains(err.Error(), "bad query") {
		t.Errorf("error answer: got %v", err)
	}
}

func TestExplainNeedsTheToken(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"explain", "-data-dir", t.TempDir(), "10.20.0.5", "x.org"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "API token") {
		t.Errorf("without a token: %v", err)
	}
}
