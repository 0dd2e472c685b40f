package webui

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/config"
	_ "modernc.org/sqlite"
)

func TestAuditPage(t *testing.T) {
	e := newEnv(t)
	e.withAccounts()
	ctx := context.Background()
	diff := config.Diff("before", "after", []byte("profiles:\n  - social\n  - games\n"), []byte("profiles:\n  - games\n"))
	if _, err := e.audit.Append(ctx, audit.Entry{Actor: "tech", Role: "technician", Action: "config.change", Object: "config.yaml",
		Summary: "categories: pupils: unblocked social", Reason: "media studies", Detail: diff}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login("view1") // governors read the trail
	_, page := b.get("/audit")
	for _, want := range []string{"categories: pupils: unblocked social", "media studies", `<span class="del">-  - social</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	_, page = b.get("/audit?action=account.")
	if strings.Contains(page, "config.change") {
		t.Error("the kind filter does not filter")
	}
	if resp, page := b.get("/audit?from=23/11/2026&action=nonsense"); resp.StatusCode != 200 || !strings.Contains(page, `id="from-error"`) || !strings.Contains(page, `id="action-error"`) {
		t.Errorf("bad filter values not reported next to their fields")
	}
	_, page = b.get("/audit?verify=1")
	if !strings.Contains(page, "The audit trail is intact") {
		t.Fatalf("verify of an intact trail:\n%s", page)
	}

	// Export: a file the offline checker accepts; taking it is itself recorded.
	resp, body := b.get("/audit/export")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	res, err := audit.VerifyExport(bytes.NewReader([]byte(body)))
	if err != nil || !res.OK || res.Entries != 1 {
		t.Errorf("exported file: %+v, %v", res, err)
	}
	if last := e.auditEntries(); last[len(last)-1].Action != "audit.export" || last[len(last)-1].Actor != "view1" {
		t.Errorf("export not recorded: %+v", last[len(last)-1])
	}

	// Someone with the file alters a row: the check names it.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.auditDir, audit.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The file's triggers refuse updates; someone editing the file drops them first.
	for _, q := range []string{"DROP TRIGGER entries_no_update", "UPDATE entries SET reason = 'nothing to see' WHERE action = 'config.change'"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var seq int64
	db.QueryRow("SELECT seq FROM entries WHERE action = 'config.change'").Scan(&seq)
	_, page = b.get("/audit?verify=1")
	if !strings.Contains(page, "The audit trail is broken at entry "+strconv.FormatInt(seq, 10)) {
		t.Errorf("verify after tampering with entry %d:\n%s", seq, page)
	}
	teacher := e.browser()
	teacher.login("teach1")
	if resp, _ := teacher.get("/audit"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("teacher reads the audit trail: %d", resp.StatusCode)
	}
}
