package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
)

// auditDir makes a data directory holding a trail of three entries and
// returns it with the newest entry.
func auditDir(t *testing.T) (string, audit.Entry) {
	t.Helper()
	dir := t.TempDir()
	now := time.Date(2026, 3, 2, 10, 15, 30, 0, time.UTC)
	l, err := audit.New(audit.Config{Path: filepath.Join(dir, audit.FileName), Now: func() time.Time {
		now = now.Add(time.Minute)
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var last audit.Entry
	for _, e := range []audit.Entry{
		{Actor: "alice", Role: "technician", Action: "config.save", Object: "config v2", Summary: "pupils: gaming blocked"},
		{Actor: "bob", Role: "dsl", Action: "exception.approve", Object: "exception 1", Summary: "allow youtube.com for 2 h", Reason: "history lesson"},
		{Actor: audit.ActorSystem, Action: "exception.expire", Object: "exception 1", Summary: "expired"},
	} {
		if last, err = l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return dir, last
}

func TestAuditExportVerify(t *testing.T) {
	dir, last := auditDir(t)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	var out bytes.Buffer
	ctx := context.Background()
	if err := run(ctx, []string{"audit", "export", "-data-dir", dir, "-appliance", "St Mary's", "-o", file}, &out, &out); err != nil {
		t.Fatalf("export: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "wrote "+file+"\nOK: 3 entries, chain intact, head "+last.Hash+"\n") {
		t.Errorf("export output:\n%s", out.String())
	}

	out.Reset()
	if err := run(ctx, []string{"audit", "verify", file}, &out, &out); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	anchor := "3:" + last.Hash
	lines := strings.Split(out.String(), "\n")
	if len(lines) != 4 || lines[3] != "" ||
		lines[0] != "OK: 3 entries, chain intact, head "+last.Hash ||
		!strings.HasPrefix(lines[1], "  exported ") || !strings.HasSuffix(lines[1], " UTC from \"St Mary's\"") ||
		lines[2] != "  a later export must still contain this head: schoolgate audit verify -anchor "+anchor+" LATER-FILE" {
		t.Errorf("verify output:\n%s", out.String())
	}

	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "-anchor", anchor, file}, &out, &out); err != nil {
		t.Errorf("verify with its own head as anchor: %v\n%s", err, out.String())
	}
	out.Reset()
	err := run(ctx, []string{"audit", "verify", "-anchor", "4:" + last.Hash, file}, &out, &out)
	if !errors.Is(err, errBroken) || !strings.HasPrefix(out.String(), "BROKEN at entry 4: entry 4 missing: the anchor 4:") {
		t.Errorf("verify with a newer anchor: %v\n%s", err, out.String())
	}

	// Exporting to standard output writes the same file.
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"audit", "export", "-data-dir", dir, "-appliance", "St Mary's"}, &stdout, &stderr); err != nil {
		t.Fatalf("export to stdout: %v\n%s", err, stderr.String())
	}
	res, err := audit.VerifyExport(&stdout)
	if err != nil || !res.OK || res.Entries != 3 {
		t.Errorf("export to stdout: %+v, %v", res, err)
	}
}

func TestAuditVerifyBroken(t *testing.T) {
	dir, _ := auditDir(t)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "export", "-data-dir", dir, "-o", file}, &out, &out); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	tampered := bytes.Replace(data, []byte("allow youtube.com for 2 h"), []byte("allow youtube.com for 2 d"), 1)
	if bytes.Equal(tampered, data) {
		t.Fatal("nothing to tamper with")
	}
	os.WriteFile(file, tampered, 0o644)

	out.Reset()
	err := run(ctx, []string{"audit", "verify", file}, &out, &out)
	if !errors.Is(err, errBroken) {
		t.Errorf("got %v, want errBroken (non-zero exit)", err)
	}
	if want := "BROKEN at entry 2: hash does not match its contents\n"; out.String() != want {
		t.Errorf("output: got %q, want %q", out.String(), want)
	}
}

func TestAuditErrors(t *testing.T) {
	ctx := context.Background()
	notExport := filepath.Join(t.TempDir(), "x.jsonl")
	os.WriteFile(notExport, []byte("hello\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "help requested"},
		{[]string{"audit", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"audit", "verify"}, "want one export file"},
		{[]string{"audit", "verify", "-anchor", "17", notExport}, "want SEQ:HASH"},
		{[]string{"audit", "verify", notExport}, "not a schoolgate audit export"},
		{[]string{"audit", "verify", filepath.Join(t.TempDir(), "missing")}, "no such file"},
		{[]string{"audit", "export", "-data-dir", t.TempDir()}, "no audit trail in"},
		{[]string{"audit", "export", "extra"}, `unexpected argument "extra"`},
	} {
		var out bytes.Buffer
		err := run(ctx, tc.args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1234: "1,234",
		123456: "123,456", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
