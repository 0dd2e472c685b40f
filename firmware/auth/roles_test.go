package auth

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/permissions.golden and the fuzz seed corpora")

// The issue's "Accounts" section, role by role, and the permissions each
// line grants. Anything not listed here must be refused.
var issueRoles = []struct {
	role  Role
	issue string
	perms []Permission
}{
	{Technician, "technician: everything", Permissions()},
	{DSL, "dsl: dashboard, logs, devices, alerts and reports, exceptions (create, approve, deny), audit trail; policy read-only",
		[]Permission{DashboardRead, LogsRead, DevicesRead, AlertsRead, ReportsRead,
			ExceptionRead, ExceptionCreate, ExceptionApprove, ExceptionReadOwn, AuditRead, PolicyRead, OwnAccount}},
	{Teacher, "teacher: request an exception for a lesson, see their own requests",
		[]Permission{ExceptionRequest, ExceptionReadOwn, OwnAccount}},
	{Viewer, "viewer (e.g. governor): dashboard, reports and audit trail, read-only",
		[]Permission{DashboardRead, ReportsRead, AuditRead, OwnAccount}},
}

func TestPermissionsMatchIssue(t *testing.T) {
	for _, r := range issueRoles {
		for _, p := range Permissions() {
			if got, want := Can(r.role, p), slices.Contains(r.perms, p); got != want {
				t.Errorf("Can(%s, %s) = %v, want %v (issue: %q)", r.role, p, got, want, r.issue)
			}
		}
	}
	if len(issueRoles) != len(Roles()) {
		t.Errorf("issue table covers %d roles, Roles() has %d", len(issueRoles), len(Roles()))
	}
}

// TestPermissionMatrix prints the matrix and keeps it in
// testdata/permissions.golden, so that any change to grants shows up in
// review as a readable diff.
func TestPermissionMatrix(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "| %-17s |", "permission")
	for _, r := range Roles() {
		fmt.Fprintf(&b, " %-10s |", r)
	}
	b.WriteString("\n|-------------------|")
	for range Roles() {
		b.WriteString("------------|")
	}
	b.WriteString("\n")
	for _, p := range Permissions() {
		fmt.Fprintf(&b, "| %-17s |", p)
		for _, r := range Roles() {
			mark := ""
			if Can(r, p) {
				mark = "yes"
			}
			fmt.Fprintf(&b, " %-10s |", mark)
		}
		b.WriteString("\n")
	}
	got := b.String()
	t.Logf("role × permission matrix:\n%s", got)
	golden := filepath.Join("testdata", "permissions.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("matrix differs from %s (run with -update if intended):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

func TestPermissionNames(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Permissions() {
		name := p.String()
		if name == "" || strings.HasPrefix(name, "Permission(") || seen[name] {
			t.Errorf("permission %d: bad or duplicate name %q", p, name)
		}
		seen[name] = true
	}
	if got := Permission(0).String(); got != "Permission(0)" {
		t.Errorf("Permission(0).String() = %q", got)
	}
	if got, want := len(Permissions()), int(numPermissions)-1; got != want {
		t.Errorf("Permissions() has %d, want %d", got, want)
	}
}

func TestCanRefusesUnknown(t *testing.T) {
	for _, tc := range []struct {
		role Role
		p    Permission
	}{
		{"", DashboardRead},
		{"root", AccountsManage},
		{"Technician", AccountsManage}, // roles are case-sensitive once parsed
		{Technician, 0},
		{Technician, numPermissions},
		{Technician, 255},
	} {
		if Can(tc.role, tc.p) {
			t.Errorf("Can(%q, %d) = true, want false", tc.role, tc.p)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Role
		ok   bool
	}{
		{"technician", Technician, true},
		{" DSL ", DSL, true},
		{"Teacher", Teacher, true},
		{"viewer", Viewer, true},
		{"admin", "", false},
		{"", "", false},
	} {
		got, err := ParseRole(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseRole(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
